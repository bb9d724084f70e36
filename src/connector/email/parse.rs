//! Inbound mail as deskbridge reads it: decoded (MIME, quoted-printable,
//! base64, RFC 2047 subjects, RFC 2231 file names, UTF-8, windows-1251,
//! KOI8-R; HTML turned into text), classified (auto-replies, bounces,
//! deskbridge's own mail, senders not allowed), and cleaned (the quoted
//! previous message and the signature cut, status keyword lines taken out).
//! Pure functions: no I/O here.

use super::address::{normalize_address, normalize_keyword};
use super::endpoint::MailEndpoint;
use crate::event::Status;
use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders as _};
use std::collections::BTreeMap;

/// A file carried by a mail.
#[derive(Clone, Debug, PartialEq)]
pub struct MailFile {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One inbound mail, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Mail {
    /// Without angle brackets; made from the content when the mail has none.
    pub message_id: String,
    /// In-Reply-To, then References newest first (without brackets).
    pub answers: Vec<String>,
    pub subject: String,
    /// The sender's bare address, lowercased.
    pub from: String,
    pub from_name: Option<String>,
    pub date: Option<DateTime<Utc>>,
    /// The whole text body (HTML converted to text).
    pub text: String,
    pub files: Vec<MailFile>,
    /// Why this is an automatic mail, if it is one.
    pub automatic: Option<String>,
    /// A bounce or delivery report.
    pub bounce: bool,
    /// It carries deskbridge's own header.
    pub marked: bool,
}

/// Why a mail is left alone.
#[derive(Clone, Debug, PartialEq)]
pub enum Skip {
    AutoReply(String),
    Bounce,
    Own,
    NotAllowed(String),
    /// From an allowed sender, but answering no ticket deskbridge knows.
    Unmatched(String),
    /// Answering a ticket whose transfer is being recorded: read it later.
    NotYet,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::AutoReply(why) => write!(f, "an automatic reply ({why})"),
            Skip::Bounce => f.write_str("a bounce or delivery report"),
            Skip::Own => f.write_str("deskbridge's own mail"),
            Skip::NotAllowed(who) => write!(
                f,
                "from {who}, who is not a partner address nor in allowed_senders"
            ),
            Skip::Unmatched(why) => write!(f, "it answers no ticket deskbridge knows ({why})"),
            Skip::NotYet => f.write_str("its ticket is still being handed over"),
        }
    }
}

/// The header deskbridge puts on every mail it sends (loop detection).
pub const OWN_HEADER: &str = "X-Deskbridge-Event";

fn raw_header(msg: &mail_parser::Message<'_>, name: &str) -> Option<String> {
    let raw = msg.raw_message();
    msg.headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .and_then(|h| raw.get(h.offset_start()..h.offset_end()))
        .map(|b| {
            String::from_utf8_lossy(b)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
}

fn ids(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match v {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => vec![],
    }
}

/// Decodes a raw RFC 5322 message; `None` when it is not one.
pub fn read(raw: &[u8]) -> Option<Mail> {
    let msg = MessageParser::default().parse(raw)?;
    if msg.headers().is_empty() {
        return None;
    }
    let message_id = msg.message_id().map(str::to_string).unwrap_or_else(|| {
        use sha2::Digest as _;
        format!(
            "{}@no-message-id",
            hex::encode(&sha2::Sha256::digest(raw)[..16])
        )
    });
    let mut answers = ids(msg.in_reply_to());
    let mut refs = ids(msg.references());
    refs.reverse();
    answers.extend(refs);
    let from = msg.from().and_then(|a| a.first());
    let from_name = from
        .and_then(|a| a.name())
        .map(str::to_string)
        .filter(|n| !n.trim().is_empty());
    let from = from
        .and_then(|a| a.address())
        .map(normalize_address)
        .unwrap_or_default();
    let date = msg
        .date()
        .and_then(|d| DateTime::parse_from_rfc3339(&d.to_rfc3339()).ok())
        .map(|d| d.with_timezone(&Utc));
    let text = (0..msg.text_body_count())
        .filter_map(|i| msg.body_text(i))
        .collect::<Vec<_>>()
        .join("\n");
    let files = msg
        .attachments()
        .enumerate()
        .map(|(i, part)| {
            let content_type = part
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{s}", c.ctype()),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            let bytes = match part.message() {
                // A forwarded mail travels as the mail it is.
                Some(_) => raw
                    .get(part.raw_body_offset()..part.raw_end_offset())
                    .unwrap_or_default()
                    .to_vec(),
                None => part.contents().to_vec(),
            };
            MailFile {
                name: part
                    .attachment_name()
                    .map(crate::event::clean_file_name)
                    .unwrap_or_else(|| format!("attachment-{}", i + 1)),
                content_type,
                bytes,
            }
        })
        .collect();
    let automatic = automatic(&msg);
    let return_path_empty = raw_header(&msg, "Return-Path").is_some_and(|r| r == "<>");
    let local = from.split('@').next().unwrap_or("");
    let bounce = msg.root_part().is_content_type("multipart", "report")
        || return_path_empty
        || local.eq_ignore_ascii_case("mailer-daemon")
        || local.eq_ignore_ascii_case("postmaster");
    let marked = raw_header(&msg, OWN_HEADER).is_some();
    Some(Mail {
        message_id,
        answers,
        subject: msg.subject().unwrap_or_default().trim().to_string(),
        from,
        from_name,
        date,
        text,
        files,
        automatic,
        bounce,
        marked,
    })
}

/// RFC 3834 and the headers real responders set.
fn automatic(msg: &mail_parser::Message<'_>) -> Option<String> {
    if let Some(v) = raw_header(msg, "Auto-Submitted") {
        if !v.eq_ignore_ascii_case("no") {
            return Some(format!("Auto-Submitted: {v}"));
        }
    }
    for h in ["X-Autoreply", "X-Autorespond", "X-Autoresponder"] {
        if let Some(v) = raw_header(msg, h) {
            return Some(format!("{h}: {v}"));
        }
    }
    if let Some(v) = raw_header(msg, "Precedence") {
        if ["bulk", "auto_reply", "junk", "list"]
            .iter()
            .any(|p| v.eq_ignore_ascii_case(p))
        {
            return Some(format!("Precedence: {v}"));
        }
    }
    if let Some(v) = raw_header(msg, "X-Auto-Response-Suppress") {
        // Exchange marks its own out-of-office replies this way.
        if v.eq_ignore_ascii_case("all") || v.to_ascii_lowercase().contains("oof") {
            return Some(format!("X-Auto-Response-Suppress: {v}"));
        }
    }
    None
}

/// Whether the mail may be applied, or why not.
pub fn classify(mail: &Mail, ep: &MailEndpoint) -> Result<(), Skip> {
    let own_id = ep.token_of_own_id(&mail.message_id).is_some();
    if mail.marked || own_id || mail.from == ep.from {
        return Err(Skip::Own);
    }
    if mail.bounce {
        return Err(Skip::Bounce);
    }
    if let Some(why) = &mail.automatic {
        return Err(Skip::AutoReply(why.clone()));
    }
    if !ep.sender_allowed(&mail.from) {
        let who = if mail.from.is_empty() {
            "an unknown sender".to_string()
        } else {
            mail.from.clone()
        };
        return Err(Skip::NotAllowed(who));
    }
    Ok(())
}

fn is_attribution(line: &str) -> bool {
    let l = line.trim();
    let lower = l.to_lowercase();
    (lower.starts_with("on ") && lower.ends_with("wrote:"))
        || lower.ends_with("пишет:")
        || lower.ends_with("написал:")
        || lower.ends_with("написала:")
        || lower.ends_with("написал(а):")
        || (lower.starts_with("am ") && lower.ends_with("schrieb:"))
        || (lower.starts_with("le ") && lower.ends_with("a écrit :"))
}

fn is_separator(line: &str) -> bool {
    let l = line.trim();
    let lower = l.to_lowercase();
    let dashed = |s: &str| {
        let inner = s.trim_matches('-').trim();
        s.starts_with("---") && s.ends_with("---") && !inner.is_empty()
    };
    (dashed(l)
        && (lower.contains("original message")
            || lower.contains("исходное сообщение")
            || lower.contains("пересылаемое сообщение")
            || lower.contains("forwarded message")))
        || lower.starts_with("________________")
}

fn header_line(line: &str, names: &[&str]) -> bool {
    let lower = line.trim().to_lowercase();
    names.iter().any(|n| lower.starts_with(n))
}

/// An Outlook-style header block: `From: ...` followed by `Sent:`/`Date:`.
fn is_header_block(lines: &[&str], i: usize) -> bool {
    let from = ["from:", "от:", "von:", "de:"];
    let next = [
        "sent:",
        "date:",
        "to:",
        "отправлено:",
        "дата:",
        "кому:",
        "gesendet:",
        "envoyé :",
    ];
    header_line(lines[i], &from) && lines.get(i + 1).is_some_and(|l| header_line(l, &next))
}

/// The partner's own words: the quoted previous message, the attribution
/// line above it, forwarded/original-message blocks and the signature cut.
pub fn clean_reply(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_end();
        if t == "--" || line == "-- " || t == "—" {
            break;
        }
        if is_separator(t) || is_attribution(t) || is_header_block(&lines, i) {
            break;
        }
        // "On Mon, 1 Jan 2024 at 10:00, Dana <d@x>\nwrote:" (wrapped).
        if let Some(next) = lines.get(i + 1) {
            let joined = format!("{} {}", t.trim(), next.trim());
            if !t.trim().is_empty() && is_attribution(&joined) {
                break;
            }
        }
        if t.trim_start().starts_with('>') {
            i += 1;
            continue;
        }
        out.push(t);
        i += 1;
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    let start = out
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(out.len());
    out[start..].join("\n")
}

/// Takes status keyword lines out of a (cleaned) reply: the text without
/// them, and the status the last one sets.
pub fn take_status(text: &str, keywords: &BTreeMap<String, Status>) -> (String, Option<Status>) {
    let mut status = None;
    let mut kept = Vec::new();
    for line in text.lines() {
        let k = normalize_keyword(line.trim().trim_end_matches(['.', '!']));
        match keywords.get(&k) {
            Some(s) => status = Some(*s),
            None => kept.push(line),
        }
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    let start = kept
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(kept.len());
    (kept[start..].join("\n"), status)
}

/// A subject without reply/forward prefixes and without the token.
pub fn clean_subject(subject: &str, token: Option<&str>) -> String {
    let mut s = subject.trim().to_string();
    if let Some(t) = token {
        let upper = s.to_ascii_uppercase();
        if let Some(at) = upper.find(&format!("[{t}]")) {
            s.replace_range(at..at + t.len() + 2, "");
        }
    }
    loop {
        let trimmed = s.trim_start();
        let lower = trimmed.to_lowercase();
        let prefix = [
            "re:",
            "fw:",
            "fwd:",
            "aw:",
            "wg:",
            "tr:",
            "ответ:",
            "отв:",
            "пересл:",
        ]
        .iter()
        .find(|p| lower.starts_with(*p));
        match prefix {
            Some(p) => {
                let n = p.chars().count();
                s = trimmed.chars().skip(n).collect();
            }
            None => break,
        }
    }
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        "(no subject)".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_previous_message_and_signature_are_cut() {
        let cases = [
            (
                "Replaced the board.\nPlease check.\n\nOn Mon, 23 Nov 2026 at 10:00, Desk <desk@acme.example> wrote:\n> Scale shows wrong weight\n> [DB-1A2B3C4D]\n",
                "Replaced the board.\nPlease check.",
            ),
            (
                "Done.\n\n-- \nIvan Petrov\nContoso, +7 900 000 00 00\n",
                "Done.",
            ),
            (
                "Fixed it.\n\n-----Original Message-----\nFrom: Desk\nSent: Monday\n\nScale broken",
                "Fixed it.",
            ),
            (
                "Заменили плату.\n\n23.11.2026, 10:00, Desk <desk@acme.example> пишет:\n> Весы врут\n",
                "Заменили плату.",
            ),
            (
                "Ok\n\n________________________________\nFrom: Desk <desk@acme.example>\nSent: Monday\nTo: vendor\n",
                "Ok",
            ),
            (
                "See below\n\nОт: Desk <desk@acme.example>\nОтправлено: 23 ноября 2026 г. 10:00\nТема: Весы\n",
                "See below",
            ),
            (
                "Wrapped attribution follows\n\nOn Mon, 23 Nov 2026 at 10:00, Desk Team <desk@acme.example>\nwrote:\n> old\n",
                "Wrapped attribution follows",
            ),
            // interleaved: quoted lines go, the answers between stay
            ("> question one\nanswer one\n> question two\nanswer two", "answer one\nanswer two"),
        ];
        for (input, want) in cases {
            assert_eq!(clean_reply(input), want, "input: {input:?}");
        }
    }

    #[test]
    fn status_keywords_are_taken_out_in_any_configured_language() {
        let mut k = super::super::address::default_keywords();
        k.insert("#state done".into(), Status::Resolved);
        let (text, s) = take_status("Fixed.\n#status resolved\n", &k);
        assert_eq!((text.as_str(), s), ("Fixed.", Some(Status::Resolved)));
        let (text, s) = take_status("Готово.\n  #Статус   Решено.\nСпасибо", &k);
        assert_eq!(
            (text.as_str(), s),
            ("Готово.\nСпасибо", Some(Status::Resolved))
        );
        let (text, s) = take_status("#STATE DONE", &k);
        assert_eq!((text.as_str(), s), ("", Some(Status::Resolved)));
        let (_, s) = take_status("we will set #status resolved later", &k);
        assert_eq!(s, None, "only a line of its own counts");
        let (_, s) = take_status("#status in_progress\n#status waiting", &k);
        assert_eq!(s, Some(Status::Waiting), "the last one wins");
    }

    #[test]
    fn subjects_lose_prefixes_and_token() {
        assert_eq!(
            clean_subject("RE: Fwd: [DB-1A2B3C4D] Scale broken", Some("DB-1A2B3C4D")),
            "Scale broken"
        );
        assert_eq!(clean_subject("Ответ: Весы врут", None), "Весы врут");
        assert_eq!(clean_subject("Re:", None), "(no subject)");
    }

    fn fixture(name: &str) -> Mail {
        let path = format!("{}/tests/fixtures/mail/{name}", env!("CARGO_MANIFEST_DIR"));
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        read(&raw).unwrap_or_else(|| panic!("{path}: not a mail"))
    }

    #[test]
    fn windows_1251_subject_body_and_file_name_decode() {
        let m = fixture("cp1251-reply.eml");
        assert_eq!(m.subject, "Re: [DB-1A2B3C4D] Весы показывают неверный вес");
        assert_eq!(m.from, "vendor@contoso.example");
        assert_eq!(m.from_name.as_deref(), Some("Иван Петров"));
        assert_eq!(m.answers[0], "deskbridge.DB-1A2B3C4D.0193@acme.example");
        let clean = clean_reply(&m.text);
        assert!(clean.starts_with("Заменили датчик веса."), "{clean:?}");
        assert!(
            !clean.contains("Иван Петров\n"),
            "signature kept: {clean:?}"
        );
        assert_eq!(m.files.len(), 1);
        assert_eq!(m.files[0].name, "акт работ.txt");
        assert_eq!(m.files[0].bytes, "Акт выполненных работ".as_bytes());
    }

    #[test]
    fn koi8r_quoted_printable_decodes() {
        let m = fixture("koi8r-qp.eml");
        assert_eq!(m.subject, "Заявка: касса не печатает чек");
        assert!(m.text.contains("Касса 3 не печатает чеки"), "{:?}", m.text);
    }

    #[test]
    fn html_only_mail_becomes_readable_text() {
        let m = fixture("html-only.eml");
        let t = clean_reply(&m.text);
        assert!(t.contains("The printer is fixed"), "{t:?}");
        assert!(t.contains("Paper jam cleared"), "{t:?}");
        assert!(!t.contains('<'), "markup left: {t:?}");
    }

    #[test]
    fn automatic_mail_and_bounces_are_recognised() {
        let ooo = fixture("out-of-office.eml");
        assert!(ooo.automatic.is_some());
        assert!(!ooo.bounce);
        let dsn = fixture("bounce.eml");
        assert!(dsn.bounce);
        let plain = fixture("cp1251-reply.eml");
        assert!(plain.automatic.is_none() && !plain.bounce && !plain.marked);
    }
}
