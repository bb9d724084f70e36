//! A private SMTP + IMAP pair per test (scripts/services/mail.sh), and
//! the partner's side of it: reading its Maildir, sending as its client.

use deskbridge::connector::email::parse::{self, Mail};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::free_port;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services/mail.sh");

/// A private SMTP + IMAP pair; users agent, vendor, chain and stranger
/// (password `<name>pw`), addresses `<name>@localhost`.
pub struct MailServer {
    pub dir: tempfile::TempDir,
    pub smtp: u16,
    pub imap: u16,
    /// With TLS: IMAP over TLS here, SMTP with STARTTLS and a login.
    pub imaps: Option<u16>,
}

impl MailServer {
    pub fn start() -> MailServer {
        MailServer::start_with(false)
    }

    /// TLS everywhere, with certificates of a throwaway CA (`ca()`).
    pub fn start_tls() -> MailServer {
        MailServer::start_with(true)
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("tls").join("ca.pem")
    }

    pub fn start_with(tls: bool) -> MailServer {
        MailServer::start_delayed(tls, 0.0)
    }

    /// The SMTP server waits `accept_delay` seconds between delivering a
    /// mail and answering "250": a client killed then has sent it without
    /// knowing.
    pub fn start_delayed(tls: bool, accept_delay: f64) -> MailServer {
        let dir = tempfile::tempdir().unwrap();
        let (smtp, imap) = (free_port(), free_port());
        let imaps = tls.then(free_port);
        let out = Command::new("bash")
            .env("SMTP_ACCEPT_DELAY", accept_delay.to_string())
            .args([SCRIPT, "instance", "start"])
            .arg(dir.path())
            .args([smtp.to_string(), imap.to_string()])
            .args(imaps.map(|p| p.to_string()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mail servers did not start (run `bash scripts/services/mail.sh start` as root once):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        MailServer {
            dir,
            smtp,
            imap,
            imaps,
        }
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }

    /// Every mail in a user's mailbox, decoded, with its raw text and
    /// whether it is flagged \Seen.
    pub fn mails(&self, user: &str) -> Vec<(Mail, String, bool)> {
        self.mails_in(user, "")
    }

    /// The same for a folder (`.Sent`), with whether it is flagged \Draft
    /// in place of \Seen.
    pub fn mails_in(&self, user: &str, folder: &str) -> Vec<(Mail, String, bool)> {
        let mut out = Vec::new();
        let flag = if folder.is_empty() { 'S' } else { 'D' };
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir(user).join(folder).join(sub)) else {
                continue;
            };
            for e in entries {
                let path = e.unwrap().path();
                let raw = std::fs::read(&path).unwrap();
                let seen = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split_once(":2,"))
                    .is_some_and(|(_, flags)| flags.contains(flag));
                let mail = parse::read(&raw).expect("a mail");
                out.push((mail, String::from_utf8_lossy(&raw).into_owned(), seen));
            }
        }
        // Dates are whole seconds: a thread's first mail goes first.
        out.sort_by_key(|m| (m.0.date, m.0.subject.starts_with("Re:")));
        out
    }

    /// Sends a raw mail over SMTP, as a partner's mail client would (with
    /// TLS: STARTTLS and the sender's login).
    pub async fn send(&self, from: &str, to: &str, raw: &str) {
        let mut b =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("localhost").port(self.smtp);
        if self.imaps.is_some() {
            use lettre::transport::smtp::authentication::Credentials;
            use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
            let ca = Certificate::from_pem(&std::fs::read(self.ca()).unwrap()).unwrap();
            let params = TlsParameters::builder("localhost".into())
                .add_root_certificate(ca)
                .build_rustls()
                .unwrap();
            let user = from.split('@').next().unwrap().to_string();
            b = b
                .tls(Tls::Required(params))
                .credentials(Credentials::new(user.clone(), format!("{user}pw")));
        }
        let t = b.build();
        let env =
            lettre::address::Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()])
                .unwrap();
        t.send_raw(&env, raw.replace('\n', "\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// The `[endpoints.ID]` table of a mail endpoint reading `user`'s
    /// mailbox; the password goes to a file in `dir`.
    pub fn endpoint(
        &self,
        dir: &Path,
        id: &str,
        party: &str,
        user: &str,
        email: &str,
        policy: &str,
    ) -> String {
        let pw = dir.join(format!("{id}.imap.pw"));
        std::fs::write(&pw, format!("{user}pw")).unwrap();
        // Plain on loopback, or TLS with the throwaway CA and an SMTP login.
        let (host, smtp_tls, imap_port, imap_tls) = match self.imaps {
            None => (
                "127.0.0.1",
                "security = \"none\"".to_string(),
                self.imap,
                "security = \"none\"".to_string(),
            ),
            Some(p) => {
                let ca = format!("ca_file = \"{}\"", self.ca().display());
                (
                    "localhost",
                    format!(
                        "security = \"starttls\"\n{ca}\nuser = \"{user}\"\npassword = {{ file = \"{}\" }}",
                        pw.display()
                    ),
                    p,
                    format!("security = \"tls\"\n{ca}"),
                )
            }
        };
        format!(
            r#"
[endpoints.{id}]
party = "{party}"
kind = "email"
[endpoints.{id}.email]
from = "Acme Desk <{user}@localhost>"
message_id_domain = "acme.test"
{email}
[endpoints.{id}.email.smtp]
host = "{host}"
port = {smtp}
{smtp_tls}
timeout_secs = 5
[endpoints.{id}.email.imap]
host = "{host}"
port = {imap_port}
{imap_tls}
user = "{user}"
password = {{ file = "{pw}" }}
poll_secs = 1
timeout_secs = 5
[endpoints.{id}.policy]
{policy}
"#,
            smtp = self.smtp,
            pw = pw.display()
        )
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([SCRIPT, "instance", "stop"])
            .arg(self.dir.path())
            .output();
    }
}
