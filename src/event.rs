//! The canonical event: what every connector turns its product's changes into,
//! and what crosses the bus and the gateway-to-gateway webhook.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One change seen in one endpoint's ticket. (No deny_unknown_fields here:
/// serde cannot combine it with the flattened kind.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// UUID v7 (time-ordered), minted where the change was first seen.
    pub id: Uuid,
    /// The ticket's id in the namespace of the endpoint the event came from.
    pub ticket: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    /// The origin system's own id of what changed (a comment id, a
    /// transaction id): how echoes of deskbridge's own writes are recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// Set on events relayed from a partner: who they are and their own
    /// ticket id, so each side sees its partner's ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<PartnerRef>,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerRef {
    /// The partner company's name.
    pub party: String,
    /// The partner's own ticket id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A ticket appeared (or is handed over): the content of a transfer.
    TicketCreated {
        ticket_data: Ticket,
    },
    /// A comment, with who may see it and the files it carries.
    Comment {
        comment: Comment,
    },
    StatusChanged {
        status: Status,
    },
    FieldChanged {
        field: String,
        value: String,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::TicketCreated { .. } => "ticket_created",
            EventKind::Comment { .. } => "comment",
            EventKind::StatusChanged { .. } => "status_changed",
            EventKind::FieldChanged { .. } => "field_changed",
        }
    }
}

/// The content of a ticket that may be handed to a partner.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    pub subject: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<DateTime<Utc>>,
    /// Further fields: client contact, site, equipment, product-specific
    /// values. Which of them may leave is the sending side's allowlist.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// Who may see a comment in the system where it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Visible to the ticket's requester in its own system.
    Public,
    /// Written by staff for the partner (marked by the product's convention).
    Partner,
    /// Staff only; never leaves its system.
    Internal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comment {
    pub body: String,
    pub audience: Audience,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A file, stored by content (sha256) in the blob store while in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub name: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Inline content (base64) as it travels over a webhook; deskbridge moves
    /// it into the blob store on ingest and keeps only the digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
}

fn default_content_type() -> String {
    "application/octet-stream".into()
}

/// The canonical status set every profile maps to and from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Accepted,
    InProgress,
    Waiting,
    Resolved,
    Closed,
    Reopened,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::New,
        Status::Accepted,
        Status::InProgress,
        Status::Waiting,
        Status::Resolved,
        Status::Closed,
        Status::Reopened,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Accepted => "accepted",
            Status::InProgress => "in_progress",
            Status::Waiting => "waiting",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Reopened => "reopened",
            Status::Cancelled => "cancelled",
        }
    }

    /// The work is over on that side: resolved, closed or cancelled.
    pub fn is_done(self) -> bool {
        matches!(self, Status::Resolved | Status::Closed | Status::Cancelled)
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    pub fn new(ticket: impl Into<String>, kind: EventKind) -> Event {
        Event {
            id: Uuid::now_v7(),
            ticket: ticket.into(),
            occurred_at: Utc::now(),
            author: None,
            source_id: None,
            partner: None,
            kind,
        }
    }

    /// The files the event carries, if its kind carries any.
    pub fn attachments_mut(&mut self) -> Option<&mut Vec<Attachment>> {
        match &mut self.kind {
            EventKind::TicketCreated { ticket_data } => Some(&mut ticket_data.attachments),
            EventKind::Comment { comment } => Some(&mut comment.attachments),
            EventKind::StatusChanged { .. } | EventKind::FieldChanged { .. } => None,
        }
    }

    pub fn attachments(&self) -> &[Attachment] {
        match &self.kind {
            EventKind::TicketCreated { ticket_data } => &ticket_data.attachments,
            EventKind::Comment { comment } => &comment.attachments,
            EventKind::StatusChanged { .. } | EventKind::FieldChanged { .. } => &[],
        }
    }
}

/// The same id for the same thing seen again (an entry read twice, an
/// effect passed on twice); time-ordered by `at`.
pub fn stable_id(endpoint: &str, what: &str, id: &str, at: DateTime<Utc>) -> Uuid {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{endpoint}\0{what}\0{id}").as_bytes());
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

/// A due time as events carry it (`field_changed` of `due`).
pub fn canonical_due(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A due time from an event's text: RFC 3339, or a date (its midnight UTC).
pub fn parse_due(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// The ticket's fields beyond subject and description, canonical name and
/// value, in the order they read best: priority, due, then the others.
pub fn ticket_fields(t: &Ticket) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(p) = &t.priority {
        out.push(("priority".to_string(), p.clone()));
    }
    if let Some(d) = t.due {
        out.push(("due".to_string(), canonical_due(d)));
    }
    out.extend(t.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// A field's name as people read it: `serial_number` → "Serial number".
pub fn label(field: &str) -> String {
    let name = field.replace('_', " ");
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => name,
    }
}

/// A field's value as people read it (a due time without seconds).
pub fn shown(field: &str, value: &str) -> String {
    match (field, parse_due(value)) {
        ("due", Some(t)) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        _ => value.to_string(),
    }
}

const MARKER_OPEN: &str = "[deskbridge:";

/// The small marker a relayed comment carries, so that the relay can find
/// it after a crash and the source can tell it is deskbridge's own.
pub fn marker(event_id: Uuid) -> String {
    format!("{MARKER_OPEN}{}]", event_id.simple())
}

/// The event id in a comment body's marker, if it has one.
pub fn find_marker(body: &str) -> Option<Uuid> {
    let start = body.rfind(MARKER_OPEN)? + MARKER_OPEN.len();
    let rest = &body[start..];
    let end = rest.find(']')?;
    Uuid::try_parse(&rest[..end]).ok()
}

/// A partner's text may quote one of deskbridge's comments: the quoted
/// marker must not make the partner's words look like deskbridge's own.
pub fn strip_markers(body: &str) -> String {
    let mut out = body.to_string();
    while let Some(id) = find_marker(&out) {
        let cleaned = out.replace(&marker(id), "");
        if cleaned == out {
            break;
        }
        out = cleaned;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_event_roundtrips_with_flat_type_tag() {
        let mut ev = Event::new(
            "T-1",
            EventKind::Comment {
                comment: Comment {
                    body: "hello".into(),
                    audience: Audience::Partner,
                    attachments: vec![],
                },
            },
        );
        ev.source_id = Some("c9".into());
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["type"], "comment");
        assert_eq!(json["comment"]["audience"], "partner");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn marker_is_found_again() {
        let id = Uuid::now_v7();
        let body = format!("Replaced the board.\n\n{}", marker(id));
        assert_eq!(find_marker(&body), Some(id));
        assert_eq!(find_marker("[deskbridge:nonsense]"), None);
        assert_eq!(find_marker("plain text"), None);
    }

    #[test]
    fn status_names_roundtrip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Status::parse("done"), None);
    }
}
