//! What can go wrong talking to the mail servers: the IMAP session the
//! source reads and the sink keeps its Sent folder in, and the SMTP
//! connection `deskbridge probe` checks. The texts name servers, folders
//! and users, never a password.

use crate::config::secret::SecretError;
use crate::ingest::IngestError;
use std::path::PathBuf;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{pem, InvalidDnsNameError};

type Imap = async_imap::error::Error;

/// `" {mailbox}"`, or nothing when the command names no mailbox.
fn in_mailbox(mailbox: &Option<String>) -> String {
    mailbox
        .as_ref()
        .map(|m| format!(" {m}"))
        .unwrap_or_default()
}

/// An IMAP or SMTP failure; `at` is the server (`IMAP host:port`).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The endpoint reads no mailbox.
    #[error("endpoints.{endpoint}.email.imap is not set")]
    NoImap { endpoint: String },
    /// The same, where the endpoint's name is not at hand.
    #[error("no imap settings")]
    NoImapSettings,
    #[error("endpoints.{endpoint}.email.imap.password: {source}")]
    Password {
        endpoint: String,
        source: SecretError,
    },
    /// `imap.ca_file` that cannot be read.
    #[error("ca_file {}: {source}", path.display())]
    CaFileRead { path: PathBuf, source: pem::Error },
    /// A certificate of `imap.ca_file` that is not usable.
    #[error("ca_file {}: {source}", path.display())]
    CaFileCert {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    #[error("TLS: {host} is not a server name: {source}")]
    ServerName {
        host: String,
        source: InvalidDnsNameError,
    },
    #[error("TLS handshake with {host}: {source}")]
    Handshake {
        host: String,
        source: std::io::Error,
    },
    #[error("{at}: cannot connect: {source}")]
    Connect { at: String, source: std::io::Error },
    #[error("{at}: closed before its greeting")]
    NoGreeting { at: String },
    #[error("{at}: {source}")]
    Greeting { at: String, source: std::io::Error },
    #[error("{at}: STARTTLS refused: {source}")]
    Starttls { at: String, source: Imap },
    #[error("{at}: login as {user} refused: {source}")]
    Login {
        at: String,
        user: String,
        source: Imap,
    },
    /// Connecting and logging in took longer than `imap.timeout_secs`.
    #[error("{at}: no answer within {secs} s")]
    ConnectTimeout { at: String, secs: u64 },
    /// A command on an open session took longer than `imap.timeout_secs`.
    #[error("no answer within {secs} s")]
    Timeout { secs: u64 },
    /// One round of reading the mailbox took longer than ten commands.
    #[error("a round took too long")]
    RoundTimeout,
    #[error("no IMAP session")]
    NoSession,
    #[error("CAPABILITY: {0}")]
    Capability(Imap),
    #[error("IDLE: {0}")]
    Idle(Imap),
    #[error("IDLE: no answer to DONE")]
    IdleDone,
    #[error("SELECT {mailbox}: {source}")]
    Select { mailbox: String, source: Imap },
    #[error("EXAMINE {mailbox}: {source}")]
    Examine { mailbox: String, source: Imap },
    /// The Sent folder is neither there nor creatable.
    #[error("folder {folder:?} is missing and cannot be created ({source}): create it, or set imap.sent_mailbox to the server's Sent folder")]
    NoSentFolder { folder: String, source: Imap },
    #[error("SEARCH{}: {source}", in_mailbox(.mailbox))]
    Search {
        mailbox: Option<String>,
        source: Imap,
    },
    #[error("FETCH{}: {source}", in_mailbox(.mailbox))]
    Fetch {
        mailbox: Option<String>,
        source: Imap,
    },
    /// Flagging the mail taken `\Seen`.
    #[error("STORE \\Seen: {0}")]
    MarkSeen(Imap),
    #[error("STORE {mailbox}: {source}")]
    Store { mailbox: String, source: Imap },
    #[error("UID EXPUNGE {mailbox}: {source}")]
    Expunge { mailbox: String, source: Imap },
    #[error("APPEND {mailbox}: {source}")]
    Append { mailbox: String, source: Imap },
    /// The cursor that cannot be written (never expected).
    #[error("{0}")]
    Cursor(serde_json::Error),
    #[error("cannot store what the mailbox brought: {0}")]
    Ingest(IngestError),
    /// A Sent folder step of endpoint `endpoint` (`what` it was doing).
    #[error("{endpoint}: {what}: {source}")]
    SentFolder {
        endpoint: String,
        what: &'static str,
        source: Box<MailError>,
    },
    #[error("SMTP {host}:{port}: the server did not answer NOOP")]
    NoNoop { host: String, port: u16 },
    #[error("SMTP {host}:{port}: {source}")]
    Smtp {
        host: String,
        port: u16,
        source: lettre::transport::smtp::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::MailError;

    fn no(text: &str) -> async_imap::error::Error {
        async_imap::error::Error::No(text.into())
    }

    #[test]
    fn the_texts_name_the_command_and_its_folder_where_there_is_one() {
        let search = |mailbox: Option<&str>| MailError::Search {
            mailbox: mailbox.map(str::to_string),
            source: no("busy"),
        };
        assert_eq!(search(None).to_string(), format!("SEARCH: {}", no("busy")));
        assert_eq!(
            search(Some("Sent")).to_string(),
            format!("SEARCH Sent: {}", no("busy"))
        );
        assert_eq!(
            MailError::MarkSeen(no("x")).to_string(),
            format!("STORE \\Seen: {}", no("x"))
        );
        let step = MailError::SentFolder {
            endpoint: "acme".into(),
            what: "copying to the Sent folder",
            source: Box::new(MailError::Timeout { secs: 30 }),
        };
        assert_eq!(
            step.to_string(),
            "acme: copying to the Sent folder: no answer within 30 s"
        );
        assert_eq!(
            MailError::NoSentFolder {
                folder: "Sent".into(),
                source: no("x"),
            }
            .to_string(),
            format!("folder \"Sent\" is missing and cannot be created ({}): create it, or set imap.sent_mailbox to the server's Sent folder", no("x"))
        );
    }
}
