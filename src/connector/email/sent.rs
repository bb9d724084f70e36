//! The Sent folder as the record of what went out, so that a partner
//! with only a mailbox never gets the same mail twice after a crash.
//!
//! SMTP cannot be asked whether it took a mail, and a crash between its
//! "250 OK" and deskbridge's record of the delivery repeats the delivery.
//! So every mail is first appended to `imap.sent_mailbox` flagged
//! `\Draft` ("pending"), then sent with a blind copy to deskbridge's own
//! address, then un-flagged `\Draft` ("sent"). A delivery looks its
//! Message-ID up there first (one IMAP SEARCH per mail: the relay does not
//! tell a sink whether a delivery is a repeat):
//!
//! - sent: it went out; not sent again;
//! - pending: a crash came between the copy and the flag. The blind copy
//!   decides: arrived in `imap.mailbox`, the server took it; not arrived
//!   yet, the delivery waits (a transient error) up to `unsure_wait_secs`
//!   after the copy was made, and only then sends again under the same
//!   Message-ID (a copy that never arrives means the server never took
//!   it, or `from` is not delivered to this mailbox: then a repeat is
//!   possible, never a loss);
//! - absent: never tried; copied, then sent.

use super::endpoint::MailEndpoint;
use super::error::MailError;
use super::imap::{connect, Conn};
use async_imap::types::Flag;
use async_imap::Session;
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// What the Sent folder knows of one Message-ID.
#[derive(Debug, Clone, PartialEq)]
pub enum Copy {
    /// Never tried (or a failed try was taken back).
    Absent,
    /// Copied, and the send's outcome unknown; when the copy was made.
    Pending(Option<DateTime<Utc>>),
    /// Sent.
    Sent,
}

/// One IMAP session for the endpoint's sink, opened when needed and
/// dropped on any error (the next use reconnects).
pub struct SentFolder {
    ep: Arc<MailEndpoint>,
    session: Mutex<Option<Session<Conn>>>,
}

/// A Message-ID as IMAP SEARCH takes it: quoted, with its brackets.
fn search_for(message_id: &str) -> String {
    let id = message_id.replace(['"', '\\', '\r', '\n'], "");
    format!("HEADER Message-ID \"<{id}>\"")
}

impl SentFolder {
    pub fn new(ep: Arc<MailEndpoint>) -> SentFolder {
        SentFolder {
            ep,
            session: Mutex::new(None),
        }
    }

    fn names(&self) -> (&str, &str, u64) {
        match &self.ep.cfg.imap {
            Some(i) => (&i.sent_mailbox, &i.mailbox, i.timeout_secs),
            None => ("Sent", "INBOX", 30),
        }
    }

    /// How long an unsure mail waits for its blind copy.
    pub fn unsure_wait(&self) -> Duration {
        Duration::from_secs(
            self.ep
                .cfg
                .imap
                .as_ref()
                .map_or(300, |i| i.unsure_wait_secs),
        )
    }

    /// Runs `op` on the session (connecting first if needed), within the
    /// timeout; an error drops the session.
    async fn with<T>(
        &self,
        what: &'static str,
        op: impl for<'s> FnOnce(
            &'s mut Session<Conn>,
        ) -> futures::future::BoxFuture<'s, Result<T, MailError>>,
    ) -> Result<T, MailError> {
        let (_, _, timeout) = self.names();
        let mut guard = self.session.lock().await;
        if guard.is_none() {
            *guard = Some(connect(&self.ep).await?);
        }
        let Some(s) = guard.as_mut() else {
            return Err(MailError::NoSession);
        };
        let r = match tokio::time::timeout(Duration::from_secs(timeout), op(s)).await {
            Ok(r) => r,
            Err(_) => Err(MailError::Timeout { secs: timeout }),
        };
        if r.is_err() {
            *guard = None;
        }
        r.map_err(|e| MailError::SentFolder {
            endpoint: self.ep.name.clone(),
            what,
            source: Box::new(e),
        })
    }

    /// Selects the Sent folder, creating it when the server has none.
    async fn select_sent(s: &mut Session<Conn>, sent: &str) -> Result<(), MailError> {
        if s.select(sent).await.is_ok() {
            return Ok(());
        }
        s.create(sent)
            .await
            .map_err(|source| MailError::NoSentFolder {
                folder: sent.to_string(),
                source,
            })?;
        s.select(sent)
            .await
            .map(|_| ())
            .map_err(|source| MailError::Select {
                mailbox: sent.to_string(),
                source,
            })
    }

    /// The UIDs (an IMAP set) of the Sent folder's copies matching
    /// `query`; `None` when there are none.
    async fn copies(
        s: &mut Session<Conn>,
        sent: &str,
        query: &str,
    ) -> Result<Option<String>, MailError> {
        Self::select_sent(s, sent).await?;
        let uids = s
            .uid_search(query)
            .await
            .map_err(|source| MailError::Search {
                mailbox: Some(sent.to_string()),
                source,
            })?;
        if uids.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            uids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ))
    }

    /// What the Sent folder knows of `message_id`.
    pub async fn look(&self, message_id: &str) -> Result<Copy, MailError> {
        let (sent, _, _) = self.names();
        let (sent, query) = (sent.to_string(), search_for(message_id));
        self.with("looking in the Sent folder", move |s| {
            Box::pin(async move {
                let Some(set) = Self::copies(s, &sent, &query).await? else {
                    return Ok(Copy::Absent);
                };
                let fetch = |source| MailError::Fetch {
                    mailbox: Some(sent.clone()),
                    source,
                };
                let fetched: Vec<_> = s
                    .uid_fetch(set, "(UID FLAGS INTERNALDATE)")
                    .await
                    .map_err(fetch)?
                    .try_collect()
                    .await
                    .map_err(fetch)?;
                let mut pending = None;
                for f in &fetched {
                    if f.flags().any(|fl| matches!(fl, Flag::Deleted)) {
                        continue;
                    }
                    if !f.flags().any(|fl| matches!(fl, Flag::Draft)) {
                        return Ok(Copy::Sent);
                    }
                    pending = Some(f.internal_date().map(|d| d.with_timezone(&Utc)));
                }
                Ok(pending.map_or(Copy::Absent, Copy::Pending))
            })
        })
        .await
    }

    /// Whether the blind copy of `message_id` arrived in the mailbox that
    /// `imap` reads: proof that the SMTP server took the mail.
    pub async fn arrived(&self, message_id: &str) -> Result<bool, MailError> {
        let (_, inbox, _) = self.names();
        let (inbox, query) = (inbox.to_string(), search_for(message_id));
        self.with("looking for the blind copy", move |s| {
            Box::pin(async move {
                s.examine(&inbox)
                    .await
                    .map_err(|source| MailError::Examine {
                        mailbox: inbox.clone(),
                        source,
                    })?;
                let uids = s
                    .uid_search(&query)
                    .await
                    .map_err(|source| MailError::Search {
                        mailbox: Some(inbox.clone()),
                        source,
                    })?;
                Ok(!uids.is_empty())
            })
        })
        .await
    }

    /// Appends the exact mail, flagged pending (`\Draft`).
    pub async fn append_pending(&self, raw: &[u8]) -> Result<(), MailError> {
        let (sent, _, _) = self.names();
        let (sent, raw) = (sent.to_string(), raw.to_vec());
        self.with("copying to the Sent folder", move |s| {
            Box::pin(async move {
                Self::select_sent(s, &sent).await?;
                s.append(&sent, Some("(\\Seen \\Draft)"), None, &raw)
                    .await
                    .map_err(|source| MailError::Append {
                        mailbox: sent.clone(),
                        source,
                    })
            })
        })
        .await
    }

    /// Sets the copy of `message_id` to sent (`sent`), or takes it back
    /// after a send the server refused (not `sent`).
    pub async fn settle(&self, message_id: &str, sent_ok: bool) -> Result<(), MailError> {
        let (sent, _, _) = self.names();
        let (sent, query) = (sent.to_string(), search_for(message_id));
        self.with("marking the Sent folder's copy", move |s| {
            Box::pin(async move {
                let Some(set) = Self::copies(s, &sent, &query).await? else {
                    return Ok(());
                };
                let change = if sent_ok {
                    "-FLAGS.SILENT (\\Draft)"
                } else {
                    "+FLAGS.SILENT (\\Deleted)"
                };
                let store = |source| MailError::Store {
                    mailbox: sent.clone(),
                    source,
                };
                let _: Vec<_> = s
                    .uid_store(&set, change)
                    .await
                    .map_err(store)?
                    .try_collect()
                    .await
                    .map_err(store)?;
                if !sent_ok {
                    // Only these UIDs: a person's deleted mail in the
                    // same folder is theirs to expunge.
                    let expunge = |source| MailError::Expunge {
                        mailbox: sent.clone(),
                        source,
                    };
                    let _: Vec<_> = s
                        .uid_expunge(&set)
                        .await
                        .map_err(expunge)?
                        .try_collect()
                        .await
                        .map_err(expunge)?;
                }
                Ok(())
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_message_id_is_searched_quoted_with_its_brackets() {
        assert_eq!(
            super::search_for("deskbridge.DB-1.x@acme.test"),
            "HEADER Message-ID \"<deskbridge.DB-1.x@acme.test>\""
        );
        assert_eq!(
            super::search_for("a\"b\r\n@c"),
            "HEADER Message-ID \"<ab@c>\""
        );
    }
}
