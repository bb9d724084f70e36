//! The e-mail connector: a partner with only a mailbox. SMTP out (a
//! transfer is a new thread, later changes are replies in it), IMAP in
//! (replies become comments, files and status changes; a dispatch mailbox
//! turns new mail into new tickets).
//!
//! Threading: every ticket crossing by mail has a short token (`DB-1A2B3C4D`)
//! in the subject, and every mail deskbridge sends has a Message-ID derived
//! from the token and the event id: `<deskbridge.DB-1A2B3C4D.EVENT@domain>`,
//! the thread root `<deskbridge.DB-1A2B3C4D@domain>`. A repeat after a crash
//! re-sends the same Message-ID, never a new one, so mail clients and
//! deskbridge's own inbound side see one mail. A reply is matched by its
//! In-Reply-To / References first, then by the token in its subject.

pub mod address;
pub mod component;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod imap;
pub mod parse;
pub mod poll;
pub mod sent;
pub mod sink;
pub mod source;

pub use address::{default_keywords, normalize_address, normalize_keyword};
pub use config::{config_problems, EmailConfig, ImapConfig, Security, SmtpConfig};
pub use endpoint::{MailEndpoint, MailboxBoard, MailboxStatus, Thread};
pub use error::MailError;
