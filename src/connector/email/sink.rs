//! The SMTP sink: a transfer becomes a new mail thread to the partner,
//! later public comments, files and status changes replies in it.
//!
//! Sending is not idempotent at the server, so the Message-ID is: it is
//! derived from the ticket token and the event id, and the Date from the
//! event. With `imap`, every mail is copied to the Sent folder before it
//! is sent and looked up there first (see `sent.rs`), so a delivery
//! repeated after a crash (SMTP accepted, deskbridge died before
//! recording it) does not send it again. Without `imap` there is nowhere
//! to look: the repeat sends the very same mail again, which mail clients
//! recognise by its Message-ID.

use super::config::Security;
use super::endpoint::{MailEndpoint, Thread};
use super::error::MailError;
use super::parse::OWN_HEADER;
use super::sent::{Copy, SentFolder};
use crate::connector::error::BuildError;
use crate::connector::sink::{Delivery, Sink, SinkError};
use crate::event::{Audience, Event, EventKind, Status, Ticket};
use crate::store::Applied;
use chrono::Utc;
use futures::future::BoxFuture;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

pub struct MailSink {
    pub ep: Arc<MailEndpoint>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The record of what went out; `None` without `imap`.
    sent: Option<SentFolder>,
}

fn permanent(message: String) -> SinkError {
    SinkError::Permanent { message }
}

fn transient(message: String) -> SinkError {
    SinkError::Transient {
        message,
        retry_after: None,
    }
}

/// A Sent folder step that failed: the mail waits, its text the same.
fn mail_transient(e: MailError) -> SinkError {
    transient(e.to_string())
}

/// A failed send, and whether the server certainly did not take it.
struct NotSent(SinkError, bool);

/// A connection refused: nothing was said to the server.
fn connection_refused(e: &lettre::transport::smtp::Error) -> bool {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        src = s.source();
    }
    false
}

/// A status as a person reads it.
pub fn status_words(s: Status) -> String {
    s.as_str().replace('_', " ")
}

impl MailSink {
    pub fn new(ep: Arc<MailEndpoint>) -> Result<MailSink, BuildError> {
        let s = &ep.cfg.smtp;
        let at = format!("endpoints.{}.email.smtp", ep.name);
        let params = || {
            let mut b = TlsParameters::builder(s.host.clone());
            if let Some(path) = &s.ca_file {
                let pem = std::fs::read(path).map_err(|source| BuildError::ReadFile {
                    at: format!("{at}.ca_file"),
                    path: path.clone(),
                    source,
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| BuildError::Invalid {
                    at: format!("{at}.ca_file"),
                    reason: format!("{}: {e}", path.display()),
                })?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| BuildError::Invalid {
                at: at.clone(),
                reason: format!("cannot set up TLS for {}: {e}", s.host),
            })
        };
        let tls = match s.security {
            Security::None => Tls::None,
            Security::Starttls => Tls::Required(params()?),
            Security::Tls => Tls::Wrapper(params()?),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port())
            .timeout(Some(Duration::from_secs(s.timeout_secs)))
            .tls(tls);
        if let (Some(user), Some(pw)) = (&s.user, &s.password) {
            let pw = pw.resolve().map_err(|source| BuildError::Secret {
                at: format!("{at}.password"),
                source,
            })?;
            b = b.credentials(Credentials::new(user.clone(), pw));
        }
        Ok(MailSink {
            transport: b.build(),
            sent: ep.cfg.imap.is_some().then(|| SentFolder::new(ep.clone())),
            ep,
        })
    }

    /// Connects (with TLS and the login as configured) and says NOOP: what
    /// `deskbridge probe` checks.
    pub async fn test_connection(&self) -> Result<(), MailError> {
        let s = &self.ep.cfg.smtp;
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::NoNoop {
                host: s.host.clone(),
                port: s.port(),
            }),
            Err(source) => Err(MailError::Smtp {
                host: s.host.clone(),
                port: s.port(),
                source,
            }),
        }
    }

    fn mailbox(&self, addr: &str, name: Option<&str>) -> Result<Mailbox, SinkError> {
        let a = super::address::normalize_address(addr)
            .parse()
            .map_err(|e| {
                permanent(format!(
                    "{}: {addr:?} is not a usable address: {e}",
                    self.ep.name
                ))
            })?;
        Ok(Mailbox::new(name.map(str::to_string), a))
    }

    /// The thread a ticket's replies go to: recorded on transfer or on a
    /// dispatch mail, else the partner addresses and the token's root.
    fn thread(&self, token: &str) -> Thread {
        self.ep.thread(token).unwrap_or_else(|| Thread {
            subject: String::new(),
            root: self.ep.root_id(token),
            to: self.ep.cfg.partner.clone(),
        })
    }

    /// The event's files from the store. lettre builds a mail in memory,
    /// so each is read whole; `daemon.max_file_bytes` bounds them.
    async fn files(&self, d: &Delivery<'_>) -> Result<Vec<(String, String, Vec<u8>)>, SinkError> {
        let mut out = Vec::new();
        for a in d.envelope.event.attachments() {
            let Some(sha) = &a.sha256 else {
                warn!(endpoint = %self.ep.name, file = %a.name, "a file without content: not attached");
                continue;
            };
            let bytes = d
                .blobs
                .read_all(sha)
                .await
                .map_err(|e| permanent(format!("file {}: {e}", a.name)))?;
            out.push((a.name.clone(), a.content_type.clone(), bytes));
        }
        Ok(out)
    }

    /// Builds one mail of a thread; `message_id` is the root's for a
    /// transfer (the first mail is the thread).
    #[allow(clippy::too_many_arguments)]
    fn compose(
        &self,
        ev: &Event,
        thread: &Thread,
        token: &str,
        message_id: &str,
        reply: bool,
        text: String,
        files: Vec<(String, String, Vec<u8>)>,
    ) -> Result<Message, SinkError> {
        if thread.to.is_empty() {
            return Err(permanent(format!(
                "{}: no recipient for ticket {token} (set endpoints.{}.email.partner)",
                self.ep.name, self.ep.name
            )));
        }
        let subject = if thread.subject.is_empty() {
            format!("[{token}]")
        } else {
            format!("[{token}] {}", thread.subject)
        };
        let mut b = Message::builder()
            .from(self.mailbox(&self.ep.cfg.from, self.ep.cfg.from_name.as_deref())?)
            .subject(if reply {
                format!("Re: {subject}")
            } else {
                subject
            })
            .message_id(Some(format!("<{message_id}>")))
            .date(std::time::SystemTime::from(ev.occurred_at))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(OWN_HEADER),
                ev.id.to_string(),
            ));
        for to in &thread.to {
            b = b.to(self.mailbox(to, None)?);
        }
        if reply {
            b = b
                .in_reply_to(format!("<{}>", thread.root))
                .references(format!("<{}>", thread.root));
        }
        let body = SinglePart::plain(text);
        let built = if files.is_empty() {
            b.singlepart(body)
        } else {
            let mut m = MultiPart::mixed()
                .boundary(format!("deskbridge-{}", ev.id.simple()))
                .singlepart(body);
            for (name, ct, bytes) in files {
                let ct = ContentType::parse(&ct).unwrap_or_else(|_| {
                    ContentType::parse("application/octet-stream").expect("valid")
                });
                m = m.singlepart(Attachment::new(name).body(bytes, ct));
            }
            b.multipart(m)
        };
        built.map_err(|e| permanent(format!("{}: cannot build the mail: {e}", self.ep.name)))
    }

    /// Sends a mail once: with a Sent folder, looked up there first and
    /// copied there before it goes (see `sent.rs`).
    async fn send(&self, m: Message, message_id: &str) -> Result<(), SinkError> {
        let name = &self.ep.name;
        let raw = m.formatted();
        let mut envelope = m.envelope().clone();
        let Some(sent) = &self.sent else {
            return self
                .smtp(&envelope, &raw, message_id)
                .await
                .map_err(|f| f.0);
        };
        // The IMAP server down is a retry, never a send without its record.
        match sent.look(message_id).await.map_err(mail_transient)? {
            Copy::Sent => {
                info!(endpoint = %name, message_id, "found in the Sent folder: sent before a restart, not sent again");
                return Ok(());
            }
            Copy::Pending(copied) => {
                if sent.arrived(message_id).await.map_err(mail_transient)? {
                    info!(endpoint = %name, message_id, "a restart left it unsure; its blind copy arrived, so it was sent: not sent again");
                    self.settle(sent, message_id, true).await;
                    return Ok(());
                }
                let waited = copied
                    .map(|t| (Utc::now() - t).to_std().unwrap_or_default())
                    .unwrap_or_default();
                let wait = sent.unsure_wait();
                if waited < wait {
                    info!(endpoint = %name, message_id, "a restart left it unsure: waiting for its blind copy before sending again");
                    return Err(SinkError::Transient {
                        message: format!(
                            "{name}: {message_id} may have been sent before a restart: waiting up to {} s for its blind copy to arrive before sending it again",
                            wait.as_secs()
                        ),
                        retry_after: Some((wait - waited).min(Duration::from_secs(5))),
                    });
                }
                warn!(endpoint = %name, message_id, waited_secs = waited.as_secs(), "a restart left it unsure and no blind copy arrived: sending it again under the same Message-ID");
            }
            Copy::Absent => sent.append_pending(&raw).await.map_err(mail_transient)?,
        }
        // The blind copy to deskbridge's own mailbox is the proof, after a
        // crash, that the server took the mail (the Bcc is only in the
        // envelope: the mail itself is the one copied).
        if let Ok(own) = super::address::normalize_address(&self.ep.cfg.from).parse() {
            let mut to = envelope.to().to_vec();
            to.push(own);
            if let Ok(e) = lettre::address::Envelope::new(envelope.from().cloned(), to) {
                envelope = e;
            }
        }
        match self.smtp(&envelope, &raw, message_id).await {
            Ok(()) => {
                self.settle(sent, message_id, true).await;
                Ok(())
            }
            Err(NotSent(e, certain)) => {
                // Certainly not taken: the copy goes, and the retry need
                // not wait for a blind copy that cannot come.
                if certain {
                    self.settle(sent, message_id, false).await;
                }
                Err(e)
            }
        }
    }

    /// Marks the copy; a failure only costs a look for the blind copy if
    /// the delivery is ever repeated, so it is logged, not returned.
    async fn settle(&self, sent: &SentFolder, message_id: &str, ok: bool) {
        if let Err(e) = sent.settle(message_id, ok).await {
            warn!(endpoint = %self.ep.name, message_id, error = %e, "the Sent folder's copy is not marked");
        }
    }

    async fn smtp(
        &self,
        envelope: &lettre::address::Envelope,
        raw: &[u8],
        message_id: &str,
    ) -> Result<(), NotSent> {
        let s = &self.ep.cfg.smtp;
        match self.transport.send_raw(envelope, raw).await {
            Ok(_) => {
                debug!(endpoint = %self.ep.name, message_id, "mail sent");
                Ok(())
            }
            // 5xx: the server refuses this mail (an unknown recipient, a
            // size limit); trying again will not help.
            Err(e) if e.is_permanent() => Err(NotSent(
                permanent(format!(
                    "SMTP {}:{} refused the mail: {e}",
                    s.host,
                    s.port()
                )),
                true,
            )),
            // A 4xx, a TLS failure or no connection: certainly not taken.
            // A connection lost or timed out may have been after the
            // server took it: unsure.
            Err(e) => {
                let certain = e.is_transient() || e.is_tls() || connection_refused(&e);
                Err(NotSent(
                    transient(format!("SMTP {}:{}: {e}", s.host, s.port())),
                    certain,
                ))
            }
        }
    }

    fn transfer_text(&self, ev: &Event, t: &Ticket, token: &str) -> String {
        let mut out = String::new();
        if !t.description.trim().is_empty() {
            out.push_str(t.description.trim_end());
            out.push_str("\n\n");
        }
        for (k, v) in crate::event::ticket_fields(t) {
            out.push_str(&format!(
                "{}: {}\n",
                crate::event::label(&k),
                crate::event::shown(&k, &v)
            ));
        }
        let from = ev
            .partner
            .as_ref()
            .map(|p| match &p.ticket {
                Some(t) => format!("{} (their ticket {t})", p.party),
                None => p.party.clone(),
            })
            .unwrap_or_else(|| "deskbridge".into());
        out.push_str(&format!(
            "\n-- \nTicket {token}, handed over by {from}. Answer this mail to comment; \
attach files as usual. A line of its own such as \"#status in_progress\" or \
\"#status resolved\" sets the ticket's status.\n"
        ));
        out
    }

    /// A transfer: the first mail of a new thread, its Message-ID the root.
    async fn transfer(&self, d: &Delivery<'_>, t: &Ticket) -> Result<Applied, SinkError> {
        let ev = &d.envelope.event;
        let token = self.ep.token_for_link(d.link.id);
        let thread = Thread {
            subject: t.subject.clone(),
            root: self.ep.root_id(&token),
            to: self.ep.cfg.partner.clone(),
        };
        // Recorded before sending: a reply may come back at once.
        self.ep
            .put_thread(&token, &thread)
            .map_err(|e| transient(format!("{}: cannot record the thread: {e}", self.ep.name)))?;
        let files = self.files(d).await?;
        let text = self.transfer_text(ev, t, &token);
        let m = self.compose(ev, &thread, &token, &thread.root, false, text, files)?;
        self.send(m, &thread.root).await?;
        Ok(Applied {
            ticket: Some(token),
            remote_ids: vec![thread.root],
            ..Applied::default()
        })
    }

    async fn apply_event(&self, d: Delivery<'_>) -> Result<Applied, SinkError> {
        let ev = &d.envelope.event;
        let name = &self.ep.name;
        let who = ev.sender();
        let text = match &ev.kind {
            EventKind::TicketCreated { ticket_data } => {
                return self.transfer(&d, ticket_data).await
            }
            EventKind::Comment { comment } if comment.audience == Audience::Internal => {
                // A mailbox has no internal notes: what lands as one here
                // would be read by the partner, so it stays home.
                warn!(
                    endpoint = %name,
                    ticket = d.ticket.unwrap_or_default(),
                    "an internal note for a mail partner is not sent (set endpoints.{name}.policy.partner_comments = \"public\" to mail a partner's replies)"
                );
                return Ok(Applied::default());
            }
            EventKind::Comment { comment } => {
                format!("{who} wrote:\n\n{}\n", comment.body.trim_end())
            }
            EventKind::StatusChanged { status } => {
                format!("{who} set the ticket to: {}.\n", status_words(*status))
            }
            // A mailbox keeps no fields: the thread itself is the
            // partner's ticket, named in every subject.
            EventKind::FieldChanged { field, .. } if crate::policy::is_partner_view(field) => {
                return Ok(Applied::default())
            }
            EventKind::FieldChanged { field, value } => format!(
                "{who} changed {}: {}\n",
                field.replace('_', " "),
                crate::event::shown(field, value)
            ),
        };
        let token = d
            .ticket
            .ok_or_else(|| permanent(format!("{name}: the event has no ticket here")))?;
        let thread = self.thread(token);
        let files = self.files(&d).await?;
        let id = self.ep.message_id(token, ev.id);
        let m = self.compose(ev, &thread, token, &id, true, text, files)?;
        self.send(m, &id).await?;
        Ok(Applied {
            ticket: None,
            remote_ids: vec![id],
            ..Applied::default()
        })
    }
}

impl Sink for MailSink {
    fn apply<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<Applied, SinkError>> {
        Box::pin(self.apply_event(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Comment, PartnerRef};
    use std::collections::BTreeMap;

    fn sink(dir: &std::path::Path) -> MailSink {
        let cfg: super::super::config::EmailConfig = toml::from_str(
            r#"
from = "desk@acme.example"
from_name = "Acme Desk"
partner = ["Vendor <vendor@contoso.example>"]
[smtp]
host = "127.0.0.1"
security = "none"
"#,
        )
        .unwrap();
        MailSink::new(Arc::new(MailEndpoint::from_config("vendor", &cfg, dir))).unwrap()
    }

    #[test]
    fn replies_thread_under_stable_ids_and_carry_the_loop_header() {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path());
        let token = s.ep.token_for_link(uuid::Uuid::now_v7());
        let thread = Thread {
            subject: "Весы врут".into(),
            root: s.ep.root_id(&token),
            to: s.ep.cfg.partner.clone(),
        };
        let mut ev = Event::new(
            "T",
            EventKind::Comment {
                comment: Comment {
                    body: "Replaced".into(),
                    audience: Audience::Public,
                    attachments: vec![],
                },
            },
        );
        ev.partner = Some(PartnerRef {
            party: "Acme".into(),
            ticket: None,
        });
        let id = s.ep.message_id(&token, ev.id);
        let files = vec![(
            "акт.txt".to_string(),
            "text/plain".to_string(),
            b"x".to_vec(),
        )];
        let build = || {
            s.compose(
                &ev,
                &thread,
                &token,
                &id,
                true,
                "Replaced\n".into(),
                files.clone(),
            )
            .unwrap()
            .formatted()
        };
        let raw = build();
        // The same event gives the same mail, byte for byte.
        assert_eq!(raw, build());
        let m = super::super::parse::read(&raw).unwrap();
        assert_eq!(m.message_id, id);
        assert_eq!(m.subject, format!("Re: [{token}] Весы врут"));
        assert_eq!(m.answers, vec![thread.root.clone(), thread.root.clone()]);
        assert!(m.marked, "the loop header is missing");
        assert_eq!(m.files[0].name, "акт.txt");
        assert_eq!(
            super::super::parse::classify(&m, &s.ep),
            Err(super::super::parse::Skip::Own)
        );
    }

    #[test]
    fn the_transfer_mail_shows_what_the_policy_let_out() {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path());
        let t = Ticket {
            subject: "Scale".into(),
            description: "Wrong weight".into(),
            priority: Some("high".into()),
            fields: BTreeMap::from([
                ("site".to_string(), "Shop 12".to_string()),
                ("equipment".to_string(), "SC-200".to_string()),
            ]),
            ..Ticket::default()
        };
        let ev = Event::new(
            "T",
            EventKind::TicketCreated {
                ticket_data: t.clone(),
            },
        );
        let text = s.transfer_text(&ev, &t, "DB-00000000");
        assert!(text.starts_with("Wrong weight\n\n"), "{text}");
        for line in ["Site: Shop 12", "Equipment: SC-200", "Priority: high"] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(text.contains("#status resolved"), "{text}");
    }
}
