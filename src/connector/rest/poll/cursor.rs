//! Where polling stands between rounds, stored with the events a round
//! produced: the latest change seen, the look-back window before it, and
//! the tickets read at the window's edge.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far each round looks back before the cursor: a change committed a
/// moment after a later one was listed is still seen.
const LOOKBACK: chrono::Duration = chrono::Duration::seconds(5);

/// Where polling stands, stored with the events it produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The latest change time seen.
    pub since: DateTime<Utc>,
    /// When polling began: nothing older is ever taken.
    pub floor: DateTime<Utc>,
    /// For products whose history has no status changes: each ticket's
    /// status as last seen, by ticket id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, String>,
    /// Tickets read in the look-back at the edge of the window: by id, the
    /// update time they were read at and when deskbridge read them. Listed
    /// again round after round while nothing newer happens, such a ticket
    /// is not read again once it was read well after that update time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub edge: BTreeMap<String, Edge>,
}

/// A ticket read at the window's edge (`Cursor::edge`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// Its update time as the product wrote it.
    pub updated: String,
    /// When deskbridge read it.
    pub read_at: DateTime<Utc>,
    /// The history entry that opened it (its description), while that
    /// entry can still be listed: never taken for a comment when its
    /// entries are read without the ticket (`list_changes.entries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening: Option<String>,
}

impl Cursor {
    /// Changes at or after this time are read in the next round, looking
    /// back `lookback_secs` (the profile's; default 5 s).
    pub fn window(&self, lookback_secs: Option<u32>) -> DateTime<Utc> {
        (self.since - self.lookback(lookback_secs)).max(self.floor)
    }

    /// How far each round looks back before `since`.
    pub fn lookback(&self, lookback_secs: Option<u32>) -> chrono::Duration {
        lookback_secs.map_or(LOOKBACK, |s| chrono::Duration::seconds(s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cursor_window_looks_back_but_not_before_the_start() {
        let c = Cursor {
            since: t("2024-05-01T10:00:00Z"),
            floor: t("2024-05-01T09:59:58Z"),
            statuses: BTreeMap::new(),
            edge: BTreeMap::new(),
        };
        assert_eq!(c.window(None), t("2024-05-01T09:59:58Z"));
        let c = Cursor {
            since: t("2024-05-01T10:00:00Z"),
            floor: t("2024-05-01T09:00:00Z"),
            statuses: BTreeMap::new(),
            edge: BTreeMap::new(),
        };
        assert_eq!(c.window(None), t("2024-05-01T09:59:55Z"));
        assert_eq!(c.window(Some(300)), t("2024-05-01T09:55:00Z"));
    }
}
