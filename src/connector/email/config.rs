//! `[endpoints.ID.email]`: the addresses, the SMTP server that sends and the
//! IMAP mailbox that partners reply to.

use super::address::{looks_like_address, normalize_keyword};
use crate::config::secret::SecretSource;
use crate::connector::kind::{KindConfig, Lands};
use crate::event::Status;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[endpoints.ID.email]`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The address deskbridge sends from and partners reply to (the
    /// mailbox that `imap` reads).
    pub from: String,
    /// The name shown with `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    /// The partner's addresses: transfers and replies go to them, and mail
    /// from them is taken.
    #[serde(default)]
    pub partner: Vec<String>,
    /// Further senders whose mail is taken: addresses, or `@domain` for a
    /// whole domain. Mail from anyone else is reported, not applied.
    #[serde(default)]
    pub allowed_senders: Vec<String>,
    pub smtp: SmtpConfig,
    /// The mailbox partners reply to; without it the endpoint only sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<ImapConfig>,
    /// A dispatch mailbox: new mail from an allowed sender that answers no
    /// thread creates a ticket here (and a transfer rule hands it on).
    #[serde(default)]
    pub dispatch: bool,
    /// A line of a reply → the status it sets, e.g. `"#статус решено" =
    /// "resolved"`; added to the built-in English and Russian ones.
    #[serde(default)]
    pub status_keywords: BTreeMap<String, Status>,
    /// The domain of deskbridge's Message-IDs; `from`'s domain by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id_domain: Option<String>,
    /// The letters before the ticket token in subjects (`[DB-1A2B3C4D]`).
    #[serde(default = "default_token_prefix")]
    pub token_prefix: String,
}

fn default_token_prefix() -> String {
    "DB".into()
}

/// How a connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// TLS from the first byte (SMTP 465, IMAP 993).
    Tls,
    /// Plain, then STARTTLS, required (SMTP 587, IMAP 143).
    Starttls,
    /// No encryption: only for a server on the same machine or network.
    None,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 465 with `tls`, 587 with `starttls`, 25 with `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default = "default_smtp_security")]
    pub security: Security,
    /// The login; with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretSource>,
    /// Seconds before a send is abandoned and retried.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// A PEM file of certificate authorities to trust besides the public
    /// ones (a company's own CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_smtp_security() -> Security {
    Security::Starttls
}
fn default_imap_security() -> Security {
    Security::Tls
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_mailbox() -> String {
    "INBOX".into()
}
fn default_true() -> bool {
    true
}
fn default_poll_secs() -> u64 {
    60
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    pub host: String,
    /// Default: 993 with `tls`, 143 otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default = "default_imap_security")]
    pub security: Security,
    pub user: String,
    pub password: SecretSource,
    /// The folder partners' mail arrives in.
    #[serde(default = "default_mailbox")]
    pub mailbox: String,
    /// Wait with IMAP IDLE when the server offers it (new mail is taken at
    /// once); otherwise look every `poll_secs`.
    #[serde(default = "default_true")]
    pub idle: bool,
    /// Seconds between looks without IDLE; the longest IDLE wait with it.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
    /// Seconds before a connection attempt or command is abandoned.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// A PEM file of certificate authorities to trust besides the public
    /// ones (a company's own CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// The folder every mail deskbridge sends is copied to before it is
    /// sent (created if missing): after a crash, a mail found there is not
    /// sent again. Must not be `mailbox`.
    #[serde(default = "default_sent_mailbox")]
    pub sent_mailbox: String,
    /// Seconds a mail that a crash left unsure (copied to `sent_mailbox`,
    /// not known to be sent) waits for its blind copy to arrive in
    /// `mailbox` before it is sent again.
    #[serde(default = "default_unsure_wait_secs")]
    pub unsure_wait_secs: u64,
}

fn default_sent_mailbox() -> String {
    "Sent".into()
}
fn default_unsure_wait_secs() -> u64 {
    300
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::None => 25,
        })
    }
}

impl ImapConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 993,
            Security::Starttls | Security::None => 143,
        })
    }
}

/// Every problem of an `[endpoints.X.email]` table, by path.
pub fn config_problems(at: &str, e: &EmailConfig, p: &mut Vec<String>) {
    let at = format!("{at}.email");
    if !looks_like_address(&e.from) {
        p.push(format!(
            "{at}.from: not an e-mail address like deskbridge@example.com (got {:?})",
            e.from
        ));
    }
    for (i, a) in e.partner.iter().enumerate() {
        if !looks_like_address(a) {
            p.push(format!(
                "{at}.partner[{i}]: not an e-mail address (got {a:?})"
            ));
        }
    }
    for (i, a) in e.allowed_senders.iter().enumerate() {
        let ok = match a.trim().strip_prefix('@') {
            Some(d) => !d.is_empty() && !d.contains('@') && !d.contains(char::is_whitespace),
            None => looks_like_address(a),
        };
        if !ok {
            p.push(format!(
                "{at}.allowed_senders[{i}]: an address or @domain (got {a:?})"
            ));
        }
    }
    if e.partner.is_empty() && !e.dispatch {
        p.push(format!(
            "{at}.partner: name the partner's address (where tickets are mailed), or set dispatch = true"
        ));
    }
    if e.dispatch && e.imap.is_none() {
        p.push(format!(
            "{at}.imap: dispatch = true reads new tickets from a mailbox: give [{at}.imap]"
        ));
    }
    if e.dispatch && e.partner.is_empty() && e.allowed_senders.is_empty() {
        p.push(format!(
            "{at}.allowed_senders: a dispatch mailbox takes mail only from listed senders: name them"
        ));
    }
    if e.token_prefix.is_empty()
        || e.token_prefix.len() > 8
        || !e.token_prefix.chars().all(|c| c.is_ascii_uppercase())
    {
        p.push(format!(
            "{at}.token_prefix: 1 to 8 capital letters A-Z (got {:?})",
            e.token_prefix
        ));
    }
    if let Some(d) = &e.message_id_domain {
        if d.is_empty()
            || !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            p.push(format!(
                "{at}.message_id_domain: a domain name like example.com (got {d:?})"
            ));
        }
    }
    for k in e.status_keywords.keys() {
        if normalize_keyword(k).is_empty() {
            p.push(format!("{at}.status_keywords: a keyword must not be empty"));
        }
    }
    let cas = [("smtp", e.smtp.ca_file.as_ref())]
        .into_iter()
        .chain(e.imap.iter().map(|i| ("imap", i.ca_file.as_ref())));
    for (side, ca) in cas {
        if let Some(path) = ca {
            match std::fs::read_to_string(path) {
                Ok(t) if t.contains("-----BEGIN CERTIFICATE-----") => {}
                Ok(_) => p.push(format!(
                    "{at}.{side}.ca_file: {} holds no PEM certificate",
                    path.display()
                )),
                Err(err) => p.push(format!(
                    "{at}.{side}.ca_file: cannot read {}: {err}",
                    path.display()
                )),
            }
        }
    }
    let s = &e.smtp;
    if s.host.trim().is_empty() {
        p.push(format!("{at}.smtp.host: must not be empty"));
    }
    if s.port == Some(0) {
        p.push(format!("{at}.smtp.port: must be more than 0"));
    }
    if s.timeout_secs == 0 {
        p.push(format!("{at}.smtp.timeout_secs: must be more than 0"));
    }
    match (&s.user, &s.password) {
        (Some(_), None) => p.push(format!(
            "{at}.smtp.password: smtp.user is given: give its password as {{ env = \"VAR\" }} or {{ file = \"/path\" }}"
        )),
        (None, Some(_)) => p.push(format!(
            "{at}.smtp.user: smtp.password is given: give the login too"
        )),
        (Some(_), Some(pw)) => {
            if let Err(err) = pw.resolve() {
                p.push(format!("{at}.smtp.password: {err}"));
            }
        }
        (None, None) => {}
    }
    if let Some(i) = &e.imap {
        if i.host.trim().is_empty() {
            p.push(format!("{at}.imap.host: must not be empty"));
        }
        if i.port == Some(0) {
            p.push(format!("{at}.imap.port: must be more than 0"));
        }
        if i.user.trim().is_empty() {
            p.push(format!("{at}.imap.user: must not be empty"));
        }
        if let Err(err) = i.password.resolve() {
            p.push(format!("{at}.imap.password: {err}"));
        }
        if i.mailbox.trim().is_empty() || i.mailbox.contains('"') {
            p.push(format!(
                "{at}.imap.mailbox: a folder name like INBOX (got {:?})",
                i.mailbox
            ));
        }
        if i.poll_secs == 0 {
            p.push(format!("{at}.imap.poll_secs: must be more than 0"));
        }
        if i.timeout_secs == 0 {
            p.push(format!("{at}.imap.timeout_secs: must be more than 0"));
        }
        if i.sent_mailbox.trim().is_empty() || i.sent_mailbox.contains(['"', '\\', '\r', '\n']) {
            p.push(format!(
                "{at}.imap.sent_mailbox: a folder name like Sent (got {:?})",
                i.sent_mailbox
            ));
        } else if i.sent_mailbox.eq_ignore_ascii_case(&i.mailbox) {
            p.push(format!(
                "{at}.imap.sent_mailbox: must differ from imap.mailbox ({:?}): the copies of sent mail would be taken for proof that they arrived",
                i.mailbox
            ));
        }
    }
}

impl KindConfig for EmailConfig {
    fn problems(&self, at: &str, p: &mut Vec<String>) {
        config_problems(at, self, p)
    }
    fn reads(&self, name: &str, _field: &str) -> Result<(), String> {
        Err(format!(
            "{name} reads mail: only the subject, text and files"
        ))
    }
    fn lands(&self, field: &str) -> Lands {
        match field {
            "subject" => Lands::Field("the mail's subject".into()),
            "attachments" => Lands::Field("the mail's files".into()),
            _ => Lands::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_problem_of_an_email_endpoint_is_named_by_path() {
        let text = r#"
[parties.a]
name = "A"
role = "vendor"
[endpoints.mail]
party = "a"
kind = "email"
[endpoints.mail.email]
from = "not an address"
partner = ["vendor@"]
allowed_senders = ["@"]
dispatch = true
token_prefix = "db"
[endpoints.mail.email.smtp]
host = "smtp.example"
user = "desk"
[endpoints.mail.webhook]
"#;
        let problems = crate::config::Config::parse(text).unwrap_err().problems();
        let all = problems.join("\n");
        for want in [
            "endpoints.mail.email.from: not an e-mail address",
            "endpoints.mail.email.partner[0]: not an e-mail address",
            "endpoints.mail.email.allowed_senders[0]: an address or @domain",
            "endpoints.mail.email.imap: dispatch = true reads new tickets from a mailbox",
            "endpoints.mail.email.token_prefix: 1 to 8 capital letters",
            "endpoints.mail.email.smtp.password: smtp.user is given",
            "endpoints.mail.webhook: only used with kind = \"webhook\"",
        ] {
            assert!(all.contains(want), "{want:?} not in:\n{all}");
        }
        assert_eq!(problems.len(), 7, "{all}");

        // A password variable that is not set is named, its value never.
        let text = r#"
[parties.a]
name = "A"
role = "vendor"
[endpoints.mail]
party = "a"
kind = "email"
[endpoints.mail.email]
from = "desk@acme.example"
partner = ["vendor@contoso.example"]
[endpoints.mail.email.smtp]
host = "smtp.example"
[endpoints.mail.email.imap]
host = "imap.example"
user = "desk"
password = { env = "DESKBRIDGE_TEST_UNSET_IMAP_PASSWORD" }
"#;
        let all = crate::config::Config::parse(text).unwrap_err().to_string();
        assert!(
            all.contains("endpoints.mail.email.imap.password: environment variable DESKBRIDGE_TEST_UNSET_IMAP_PASSWORD is not set"),
            "{all}"
        );
        let pw = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(pw.path(), "imap-password").unwrap();
        let ok = crate::config::Config::parse(&text.replace(
            "password = { env = \"DESKBRIDGE_TEST_UNSET_IMAP_PASSWORD\" }",
            &format!("password = {{ file = \"{}\" }}", pw.path().display()),
        ))
        .unwrap();
        assert!(ok.can_receive("mail"));
        let imap = ok.endpoints["mail"].email().unwrap().imap.clone().unwrap();
        assert_eq!(
            (imap.port(), imap.mailbox.as_str(), imap.idle),
            (993, "INBOX", true)
        );
        assert_eq!(
            (imap.sent_mailbox.as_str(), imap.unsure_wait_secs),
            ("Sent", 300)
        );
        // The Sent folder cannot be the one read: its copies would pass
        // for the blind copies that prove a mail went out.
        let all = crate::config::Config::parse(&text.replace(
            "password = { env = \"DESKBRIDGE_TEST_UNSET_IMAP_PASSWORD\" }",
            &format!(
                "password = {{ file = \"{}\" }}\nsent_mailbox = \"inbox\"",
                pw.path().display()
            ),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            all.contains("endpoints.mail.email.imap.sent_mailbox: must differ from imap.mailbox"),
            "{all}"
        );
    }
}
