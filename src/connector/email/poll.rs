//! The IMAP source: reads the endpoint's mailbox from a UID cursor, turns
//! partners' replies into events and dispatch mail into new tickets, and
//! hands them to ingest together with the new cursor (one transaction).
//! Only then is the mail flagged \Seen: a crash in between reads it again,
//! and its events (ids derived from its Message-ID) are taken once.
//!
//! IMAP IDLE is used where the server offers it (new mail is taken at
//! once); otherwise the mailbox is looked at every `poll_secs`. When the
//! mailbox's UIDVALIDITY changes (it was recreated), the cursor starts
//! over, taking the mail not yet flagged \Seen.

use super::endpoint::{MailEndpoint, MailboxBoard, Thread};
use super::error::MailError;
use super::imap::{connect, Conn};
use super::parse::{self, Mail, Skip};
use crate::blob::BlobStore;
use crate::connector::board::with_entry as with_mailbox;
use crate::event::stable_id;
use crate::event::{
    strip_markers, Attachment, Audience, Author, Comment, Event, EventKind, Ticket,
};
use crate::ingest::Ingest;
use crate::retry::{Retry, RetryPolicy};
use crate::store::Store;
use async_imap::Session;
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Mails fetched per round: bounds memory; a full batch is followed at once.
const BATCH: u32 = 20;

/// Where reading stands, stored with the events it produced.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub uid_validity: u32,
    /// The first UID not yet read.
    pub next_uid: u32,
}

pub struct MailPoller {
    pub ep: Arc<MailEndpoint>,
    pub ingest: Ingest,
    pub store: Store,
    pub blobs: BlobStore,
    pub board: MailboxBoard,
}

/// What one round did.
struct Round {
    taken: usize,
    more: bool,
}

impl MailPoller {
    /// Runs until `shutdown` fires.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let name = self.ep.name.clone();
        let mut retry = Retry::new(RetryPolicy::default());
        let mut said = crate::retry::Said::default();
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.session(&mut shutdown, &mut retry, &mut said).await {
                Ok(()) => return,
                Err(e) => {
                    let e = e.to_string();
                    with_mailbox(&self.board, &name, |s| s.failing = Some(e.clone()));
                    let wait = retry.next_delay(None);
                    let wait_ms = wait.as_millis() as u64;
                    let (news, failures) = said.failed(&e);
                    if news {
                        warn!(endpoint = %name, error = %e, failures, wait_ms, "mailbox: will retry");
                    } else {
                        debug!(endpoint = %name, error = %e, failures, wait_ms, "mailbox: will retry");
                    }
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// One connection: rounds, and waits between them, until shutdown
    /// (Ok) or a failure (Err, the caller reconnects).
    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        retry: &mut Retry,
        said: &mut crate::retry::Said,
    ) -> Result<(), MailError> {
        let i = self.ep.cfg.imap.as_ref().ok_or(MailError::NoImapSettings)?;
        let limit = Duration::from_secs(i.timeout_secs);
        let poll = Duration::from_secs(i.poll_secs);
        let mut session = connect(&self.ep).await?;
        let idle = i.idle
            && session
                .capabilities()
                .await
                .map_err(MailError::Capability)?
                .has_str("IDLE");
        info!(endpoint = %self.ep.name, mailbox = %i.mailbox, idle, "reading the mailbox");
        loop {
            // A round moves up to BATCH mails with their files: more time
            // than one command.
            let round = tokio::time::timeout(limit * 10, self.round(&mut session))
                .await
                .map_err(|_| MailError::RoundTimeout)??;
            *retry = Retry::new(RetryPolicy::default());
            if let Some(r) = said.recovered() {
                info!(
                    endpoint = %self.ep.name, failures = r.failures, lasted_secs = r.lasted.as_secs(),
                    "the mailbox is read again after {} ({} failed attempts)",
                    crate::human::span(r.lasted), r.failures
                );
            }
            with_mailbox(&self.board, &self.ep.name, |s| s.failing = None);
            if round.taken > 0 {
                debug!(endpoint = %self.ep.name, mails = round.taken, "mailbox read");
            }
            if round.more {
                continue;
            }
            if idle {
                let mut handle = session.idle();
                handle.init().await.map_err(MailError::Idle)?;
                let (wait, stop) = handle.wait_with_timeout(poll);
                let stopped = tokio::select! {
                    r = wait => { r.map_err(MailError::Idle)?; false }
                    _ = shutdown.changed() => true,
                };
                drop(stop);
                if stopped {
                    return Ok(());
                }
                session = tokio::time::timeout(limit, handle.done())
                    .await
                    .map_err(|_| MailError::IdleDone)?
                    .map_err(MailError::Idle)?;
            } else {
                tokio::select! {
                    _ = shutdown.changed() => return Ok(()),
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }
    }

    fn cursor(&self) -> Option<Cursor> {
        let stored = self.store.cursor(&self.ep.name).ok().flatten()?;
        serde_json::from_slice(&stored).ok()
    }

    async fn round(&self, session: &mut Session<Conn>) -> Result<Round, MailError> {
        let i = self.ep.cfg.imap.as_ref().ok_or(MailError::NoImapSettings)?;
        // Unsolicited EXISTS/FETCH notes are not needed (each round looks
        // afresh); dropped so that their channel never fills.
        while session.unsolicited_responses.try_recv().is_ok() {}
        let mb = session
            .select(&i.mailbox)
            .await
            .map_err(|source| MailError::Select {
                mailbox: i.mailbox.clone(),
                source,
            })?;
        let validity = mb.uid_validity.unwrap_or(0);
        // Without a cursor for this UIDVALIDITY, mail already \Seen was
        // read before (by deskbridge or a person) and is not taken again.
        let (next, fresh) = match self.cursor() {
            Some(c) if c.uid_validity == validity => (c.next_uid.max(1), false),
            Some(c) => {
                warn!(endpoint = %self.ep.name, old = c.uid_validity, new = validity,
                    "the mailbox's UIDVALIDITY changed (it was recreated): taking the mail not yet flagged \\Seen");
                (1, true)
            }
            None => (1, true),
        };
        // UIDs first (cheap), then at most BATCH mails: a gap of expunged
        // UIDs is skipped, and a backlog is taken a batch at a time.
        let mut uids: Vec<u32> = session
            .uid_search(format!("UID {next}:*"))
            .await
            .map_err(|source| MailError::Search {
                mailbox: None,
                source,
            })?
            .into_iter()
            // `n:*` answers the last mail even below n when none is newer.
            .filter(|u| *u >= next)
            .collect();
        uids.sort_unstable();
        let more = uids.len() > BATCH as usize;
        uids.truncate(BATCH as usize);
        let fetched: Vec<_> = if uids.is_empty() {
            vec![]
        } else {
            let set = uids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let fetch = |source| MailError::Fetch {
                mailbox: None,
                source,
            };
            session
                .uid_fetch(set, "(UID FLAGS INTERNALDATE BODY.PEEK[])")
                .await
                .map_err(fetch)?
                .try_collect()
                .await
                .map_err(fetch)?
        };
        let mut mails = Vec::new();
        for f in &fetched {
            let Some(uid) = f.uid else { continue };
            if uid < next {
                continue;
            }
            let seen = f
                .flags()
                .any(|fl| matches!(fl, async_imap::types::Flag::Seen));
            let internal = f.internal_date().map(|d| d.with_timezone(&Utc));
            mails.push((uid, seen, internal, f.body().map(<[u8]>::to_vec)));
        }
        mails.sort_by_key(|m| m.0);
        let Some(max_uid) = mails.iter().map(|m| m.0).max() else {
            if fresh {
                let c = Cursor {
                    uid_validity: validity,
                    next_uid: mb.uid_next.unwrap_or(next).max(next),
                };
                self.commit(vec![], c).await?;
            }
            return Ok(Round {
                taken: 0,
                more: false,
            });
        };
        let mut events = Vec::new();
        let mut taken_uids = Vec::new();
        let mut next_uid = max_uid + 1;
        let mut more = more;
        for (uid, seen, internal, body) in mails {
            if fresh && seen {
                continue;
            }
            let Some(raw) = body else { continue };
            let Some(mail) = parse::read(&raw) else {
                warn!(endpoint = %self.ep.name, uid, "not a mail: left alone");
                continue;
            };
            match self.events_of(&mail, internal).await {
                Ok(evs) if evs.is_empty() => {}
                Ok(evs) => {
                    events.extend(evs);
                    taken_uids.push(uid);
                }
                Err(Skip::NotYet) => {
                    // Read again next round, with everything after it.
                    debug!(endpoint = %self.ep.name, uid, "a reply to a ticket still being created: later");
                    next_uid = uid;
                    more = false;
                    break;
                }
                // Every mail sent comes back as a blind copy (the proof
                // that it went, see `sent.rs`): nothing to report.
                Err(Skip::Own) => {
                    debug!(endpoint = %self.ep.name, uid, message_id = %mail.message_id, "deskbridge's own mail: left alone");
                }
                Err(skip) => {
                    report(&self.ep.name, uid, &mail, &skip);
                    with_mailbox(&self.board, &self.ep.name, |s| match &skip {
                        Skip::NotAllowed(_) | Skip::Unmatched(_) => {
                            s.not_applied += 1;
                            s.last_not_applied = Some(format!(
                                "{} {:?} ({}): {skip}",
                                mail.from, mail.subject, mail.message_id
                            ));
                        }
                        _ => s.left_alone += 1,
                    });
                }
            }
        }
        let cursor = Cursor {
            uid_validity: validity,
            next_uid,
        };
        let n = taken_uids.len();
        self.commit(events, cursor).await?;
        with_mailbox(&self.board, &self.ep.name, |s| s.taken += n as u64);
        if !taken_uids.is_empty() {
            let set = taken_uids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            // After the commit: \Seen means "deskbridge has it". A crash
            // before this only leaves the mail unflagged.
            let _: Vec<_> = session
                .uid_store(set, "+FLAGS.SILENT (\\Seen)")
                .await
                .map_err(MailError::MarkSeen)?
                .try_collect()
                .await
                .map_err(MailError::MarkSeen)?;
        }
        Ok(Round { taken: n, more })
    }

    async fn commit(&self, events: Vec<Event>, cursor: Cursor) -> Result<(), MailError> {
        let bytes = serde_json::to_vec(&cursor).map_err(MailError::Cursor)?;
        self.ingest
            .accept_polled(&self.ep.name, None, events, Some(&bytes))
            .await
            .map_err(MailError::Ingest)?;
        Ok(())
    }

    /// The ticket a mail answers: a thread deskbridge knows, by its
    /// headers first, then by the token in its subject. `Err(NotYet)` for
    /// a reply to a transfer mailed a moment ago whose link does not know
    /// its token yet (mailed, not yet recorded; or a crash in between).
    fn ticket_of(&self, mail: &Mail) -> Result<Option<String>, Skip> {
        let known = |t: &str| {
            self.store
                .links_of(&self.ep.name, t)
                .map(|l| !l.is_empty())
                .unwrap_or(false)
        };
        let mut pending = false;
        let own = mail
            .answers
            .iter()
            .filter_map(|id| self.ep.token_of_own_id(id));
        let dispatched = mail.answers.iter().map(|id| self.ep.token_for_message(id));
        let subject = self.ep.token_in_subject(&mail.subject);
        for token in own.chain(dispatched).chain(subject) {
            if known(&token) {
                return Ok(Some(token));
            }
            pending |= self.ep.thread_is_recent(&token);
        }
        if pending {
            return Err(Skip::NotYet);
        }
        Ok(None)
    }

    /// The events a mail brings, none when it is left alone (and why).
    async fn events_of(
        &self,
        mail: &Mail,
        internal: Option<DateTime<Utc>>,
    ) -> Result<Vec<Event>, Skip> {
        parse::classify(mail, &self.ep)?;
        let at = mail.date.or(internal).unwrap_or(DateTime::UNIX_EPOCH);
        let name = &self.ep.name;
        let author = Some(Author {
            name: mail.from_name.clone().unwrap_or_else(|| mail.from.clone()),
            email: Some(mail.from.clone()),
        });
        let make = |ticket: &str, what: &str, kind: EventKind| {
            let mut ev = Event::new(ticket, kind);
            ev.id = stable_id(name, what, &mail.message_id, at);
            ev.occurred_at = at;
            ev.author = author.clone();
            ev.source_id = Some(format!("mail-{what}-{}", mail.message_id));
            ev
        };
        let ticket = self.ticket_of(mail)?;
        let (files, notes) = self.files(mail).await;
        let with_notes = |text: String| {
            if notes.is_empty() {
                text
            } else {
                format!("{}\n\n{}", text.trim_end(), notes.join("\n"))
                    .trim_start()
                    .to_string()
            }
        };
        let Some(token) = ticket else {
            if !self.ep.cfg.dispatch {
                return Err(Skip::Unmatched(format!(
                    "no known Message-ID in its headers, no known [{}-…] token in its subject",
                    self.ep.cfg.token_prefix
                )));
            }
            let token = self.ep.token_for_message(&mail.message_id);
            let subject = parse::clean_subject(&mail.subject, None);
            // The thread first: a relayed answer may be mailed at once.
            if let Err(e) = self.ep.put_thread(
                &token,
                &Thread {
                    subject: subject.clone(),
                    root: mail.message_id.clone(),
                    to: vec![mail.from.clone()],
                },
            ) {
                warn!(endpoint = %name, "cannot record the thread of {token}: {e}");
            }
            let description = with_notes(strip_markers(&parse::clean_reply(&mail.text)));
            let ticket_data = Ticket {
                subject,
                description,
                attachments: files,
                fields: [("requester_email".to_string(), mail.from.clone())]
                    .into_iter()
                    .collect(),
                ..Ticket::default()
            };
            return Ok(vec![make(
                &token,
                "ticket",
                EventKind::TicketCreated { ticket_data },
            )]);
        };
        let cleaned = strip_markers(&parse::clean_reply(&mail.text));
        let (body, status) = parse::take_status(&cleaned, &self.ep.keywords);
        let body = with_notes(body);
        let mut out = Vec::new();
        if !body.trim().is_empty() || !files.is_empty() {
            out.push(make(
                &token,
                "comment",
                EventKind::Comment {
                    comment: Comment {
                        body,
                        // Everything in this mailbox is written for the
                        // partner (a dispatching chain's follow-ups too).
                        audience: Audience::Partner,
                        attachments: files,
                    },
                },
            ));
        }
        if let Some(status) = status {
            out.push(make(&token, "status", EventKind::StatusChanged { status }));
        }
        Ok(out)
    }

    /// The mail's files, moved into the file store, and a note on each
    /// file that could not be taken (too large), for the comment.
    async fn files(&self, mail: &Mail) -> (Vec<Attachment>, Vec<String>) {
        let mut out = Vec::new();
        let mut notes = Vec::new();
        for f in &mail.files {
            match self.blobs.put_bytes(&f.bytes).await {
                Ok(r) => out.push(Attachment {
                    name: f.name.clone(),
                    content_type: f.content_type.clone(),
                    sha256: Some(r.sha256),
                    size: Some(r.size),
                    content_base64: None,
                }),
                Err(e) => {
                    warn!(endpoint = %self.ep.name, file = %f.name, message_id = %mail.message_id,
                        "a file of the mail is not taken: {e}");
                    notes.push(format!("(file {} not transferred: {e})", f.name));
                }
            }
        }
        (out, notes)
    }
}

fn report(endpoint: &str, uid: u32, mail: &Mail, skip: &Skip) {
    match skip {
        Skip::NotAllowed(_) | Skip::Unmatched(_) => warn!(
            endpoint, uid, message_id = %mail.message_id, subject = %mail.subject,
            "mail not applied: {skip}"
        ),
        // Automatic replies, bounces, deskbridge's own blind copies: one
        // a mail, counted in the status.
        _ => debug!(
            endpoint, uid, message_id = %mail.message_id,
            "mail left alone: {skip}"
        ),
    }
}
