//! One e-mail endpoint's settings resolved at start: tokens, Message-IDs,
//! allowed senders, the threads it knows; and what its mailbox reader did.

use super::address::{default_keywords, normalize_address, normalize_keyword};
use super::config::EmailConfig;
use crate::event::Status;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How long a reply to a freshly mailed transfer waits for the link to
/// learn the token (after that it is reported as unmatched).
const RECENT_THREAD: std::time::Duration = std::time::Duration::from_secs(600);

/// The settings of one e-mail endpoint, resolved once at start.
#[derive(Clone, Debug)]
pub struct MailEndpoint {
    pub name: String,
    pub cfg: EmailConfig,
    /// `from`, normalized.
    pub from: String,
    pub domain: String,
    /// Lowercased keyword line → status.
    pub keywords: BTreeMap<String, Status>,
    /// Where thread records live: `data_dir/mail/<endpoint>`.
    pub dir: PathBuf,
}

impl MailEndpoint {
    pub fn from_config(name: &str, cfg: &EmailConfig, data_dir: &Path) -> MailEndpoint {
        let from = normalize_address(&cfg.from);
        let domain = cfg
            .message_id_domain
            .clone()
            .unwrap_or_else(|| from.rsplit('@').next().unwrap_or("localhost").to_string());
        let mut keywords = default_keywords();
        for (k, s) in &cfg.status_keywords {
            keywords.insert(normalize_keyword(k), *s);
        }
        MailEndpoint {
            name: name.into(),
            cfg: cfg.clone(),
            from,
            domain,
            keywords,
            dir: data_dir.join("mail").join(name),
        }
    }

    /// The token of a ticket handed to this endpoint over `link`.
    pub fn token_for_link(&self, link: uuid::Uuid) -> String {
        self.token_from(link.as_bytes())
    }

    /// The token of a ticket created here by a dispatch mail.
    pub fn token_for_message(&self, message_id: &str) -> String {
        self.token_from(message_id.as_bytes())
    }

    fn token_from(&self, seed: &[u8]) -> String {
        let d = sha2::Sha256::digest([self.name.as_bytes(), b"\0", seed].concat());
        format!("{}-{}", self.cfg.token_prefix, hex::encode_upper(&d[..4]))
    }

    /// The thread root of a token (without angle brackets).
    pub fn root_id(&self, token: &str) -> String {
        format!("deskbridge.{token}@{}", self.domain)
    }

    /// The Message-ID of the mail carrying one event (without brackets).
    pub fn message_id(&self, token: &str, event: uuid::Uuid) -> String {
        format!("deskbridge.{token}.{}@{}", event.simple(), self.domain)
    }

    /// The token in one of deskbridge's own Message-IDs, if it is one.
    pub fn token_of_own_id(&self, id: &str) -> Option<String> {
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = id.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return None;
        }
        let rest = local.strip_prefix("deskbridge.")?;
        let token = rest.split('.').next()?;
        self.valid_token(token).then(|| token.to_string())
    }

    fn valid_token(&self, t: &str) -> bool {
        t.strip_prefix(&self.cfg.token_prefix)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|h| h.len() == 8 && h.chars().all(|c| c.is_ascii_hexdigit()))
    }

    /// The token in a subject: `Re: [DB-1A2B3C4D] Scale broken`.
    pub fn token_in_subject(&self, subject: &str) -> Option<String> {
        // ASCII upper-casing keeps byte offsets: `[db-…]` is found too.
        let upper = subject.to_ascii_uppercase();
        let open = format!("[{}-", self.cfg.token_prefix);
        let mut from = 0;
        while let Some(at) = upper[from..].find(&open) {
            let cand = &upper[from + at + 1..];
            if let Some(end) = cand.find(']') {
                if self.valid_token(&cand[..end]) {
                    return Some(cand[..end].to_string());
                }
            }
            from += at + open.len();
        }
        None
    }

    /// Whether mail from `address` may become comments and tickets.
    pub fn sender_allowed(&self, address: &str) -> bool {
        let a = normalize_address(address);
        let domain = a.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        self.cfg
            .partner
            .iter()
            .chain(self.cfg.allowed_senders.iter())
            .any(|s| {
                let s = normalize_address(s);
                match s.strip_prefix('@') {
                    Some(d) => d == domain,
                    None => s == a,
                }
            })
    }

    fn thread_path(&self, token: &str) -> PathBuf {
        self.dir.join("threads").join(format!("{token}.json"))
    }

    /// The thread a token's mails belong to, if one was recorded.
    pub fn thread(&self, token: &str) -> Option<Thread> {
        let bytes = std::fs::read(self.thread_path(token)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether the sink recorded this thread lately: its transfer mail
    /// may be out while the link does not know the token yet.
    pub fn thread_is_recent(&self, token: &str) -> bool {
        std::fs::metadata(self.thread_path(token))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < RECENT_THREAD)
    }

    /// Records a thread durably (written aside, synced, then renamed, so a
    /// crash leaves the old record or the new one).
    pub fn put_thread(&self, token: &str, t: &Thread) -> std::io::Result<()> {
        use std::io::Write as _;
        let path = self.thread_path(token);
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{token}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(t).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

/// What each mailbox reader has done, for `deskbridge status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MailboxStatus {
    /// Mails that became comments, status changes or tickets.
    pub taken: u64,
    /// Automatic replies and bounces, left alone (deskbridge's own mail,
    /// such as the blind copies of what it sends, is not counted).
    pub left_alone: u64,
    /// Mail from senders not allowed, or answering no known ticket.
    pub not_applied: u64,
    /// The latest of those, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_not_applied: Option<String>,
    /// Why the mailbox cannot be read now, while it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<String>,
}

pub type MailboxBoard = crate::connector::board::Board<MailboxStatus>;

/// What a reply in a thread needs: where it goes and what it answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// The subject without the token and `Re:`.
    pub subject: String,
    /// The Message-ID replies answer (without brackets).
    pub root: String,
    /// Recipients of replies.
    pub to: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> MailEndpoint {
        let cfg: EmailConfig = toml::from_str(
            r##"
from = "Desk <desk@acme.example>"
partner = ["vendor@contoso.example"]
allowed_senders = ["boss@contoso.example", "@branch.contoso.example"]
status_keywords = { "#Статус   Готово" = "resolved" }
[smtp]
host = "127.0.0.1"
"##,
        )
        .unwrap();
        MailEndpoint::from_config("vendor", &cfg, Path::new("/tmp"))
    }

    #[test]
    fn tokens_and_message_ids_are_found_again() {
        let e = ep();
        let link = uuid::Uuid::now_v7();
        let token = e.token_for_link(link);
        assert!(token.starts_with("DB-") && token.len() == 11, "{token}");
        assert_eq!(token, e.token_for_link(link));
        let ev = uuid::Uuid::now_v7();
        let id = e.message_id(&token, ev);
        assert_eq!(e.token_of_own_id(&format!("<{id}>")), Some(token.clone()));
        assert_eq!(e.token_of_own_id(&e.root_id(&token)), Some(token.clone()));
        assert_eq!(
            e.token_of_own_id(&id.replace("acme.example", "evil.example")),
            None
        );
        let subject = format!("RE: AW: [{}] Весы врут", token.to_lowercase());
        assert_eq!(e.token_in_subject(&subject), Some(token.clone()));
        assert_eq!(e.token_in_subject("[DB-XYZ] nothing"), None);
        assert_eq!(e.token_in_subject("[DB-12345678"), None);
    }

    #[test]
    fn senders_are_allowed_by_address_or_domain() {
        let e = ep();
        assert!(e.sender_allowed("Vendor <VENDOR@contoso.example>"));
        assert!(e.sender_allowed("boss@contoso.example"));
        assert!(e.sender_allowed("anyone@branch.contoso.example"));
        assert!(!e.sender_allowed("stranger@contoso.example"));
        assert!(!e.sender_allowed("x@evil.example"));
    }

    #[test]
    fn configured_keywords_add_to_the_built_in_ones() {
        let e = ep();
        assert_eq!(e.keywords.get("#статус готово"), Some(&Status::Resolved));
        assert_eq!(e.keywords.get("#status resolved"), Some(&Status::Resolved));
        assert_eq!(e.keywords.get("#статус решено"), Some(&Status::Resolved));
        assert_eq!(e.domain, "acme.example");
        assert_eq!(e.from, "desk@acme.example");
    }
}
