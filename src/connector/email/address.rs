//! Addresses and status keywords as mails are compared by them.

use crate::event::Status;
use std::collections::BTreeMap;

/// A bare address, lowercased: `Dana <Dana@Example.com>` → `dana@example.com`.
pub fn normalize_address(s: &str) -> String {
    let s = s.trim();
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    inner.trim().to_lowercase()
}

pub fn looks_like_address(s: &str) -> bool {
    let a = normalize_address(s);
    match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !a.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

/// Built-in status keywords: `#status <canonical>` and Russian forms.
pub fn default_keywords() -> BTreeMap<String, Status> {
    let mut k: BTreeMap<String, Status> = Status::ALL
        .into_iter()
        .map(|s| (format!("#status {}", s.as_str()), s))
        .collect();
    for (word, s) in [
        ("#status in progress", Status::InProgress),
        ("#статус принято", Status::Accepted),
        ("#статус в работе", Status::InProgress),
        ("#статус ожидание", Status::Waiting),
        ("#статус решено", Status::Resolved),
        ("#статус закрыто", Status::Closed),
        ("#статус открыто снова", Status::Reopened),
        ("#статус отменено", Status::Cancelled),
    ] {
        k.insert(word.to_string(), s);
    }
    k
}

/// A keyword as it is compared: trimmed, lowercased, single spaces.
pub fn normalize_keyword(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}
