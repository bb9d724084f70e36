//! The canonical event: what every connector turns its product's changes into,
//! and what crosses the bus and the gateway-to-gateway webhook.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One change seen in one endpoint's ticket. Unknown fields are refused at
/// every level, this one included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
// Read through EventWire: serde's deny_unknown_fields does not work beside
// the flattened kind, which took every unknown top-level key silently.
#[serde(try_from = "EventWire")]
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
    /// On a relayed event: the id the change has in the system where it
    /// was made (that system's `source_id`), for settlements and audits.
    /// Never used to recognise echoes: it is an id in another system's
    /// namespace than the one the event arrives from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_source_id: Option<String>,
    /// Set on events relayed from a partner: who they are and their own
    /// ticket id, so each side sees its partner's ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<PartnerRef>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// An event as read: every top-level key named, so that one nobody knows
/// (a misspelt `source_id`) is refused as it is inside the event.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventWire {
    id: Uuid,
    ticket: String,
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    author: Option<Author>,
    #[serde(default)]
    source_id: Option<String>,
    #[serde(default)]
    origin_source_id: Option<String>,
    #[serde(default)]
    partner: Option<PartnerRef>,
    #[serde(rename = "type")]
    kind: KindName,
    #[serde(default)]
    ticket_data: Option<Ticket>,
    #[serde(default)]
    comment: Option<Comment>,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindName {
    TicketCreated,
    Comment,
    StatusChanged,
    FieldChanged,
}

/// The top-level keys that belong to the kinds (beside `type`).
pub const KIND_KEYS: [&str; 5] = ["ticket_data", "comment", "status", "field", "value"];

/// An event's keys that do not fit its `type`, in serde's own words.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A kind's key beside another kind's `type`.
    #[error("unknown field `{key}` for type `{kind}`, expected {expected}")]
    Unknown {
        key: &'static str,
        kind: &'static str,
        expected: String,
    },
    #[error("missing field `{0}`")]
    Missing(&'static str),
}

impl TryFrom<EventWire> for Event {
    type Error = WireError;

    fn try_from(w: EventWire) -> Result<Event, WireError> {
        let present = [
            w.ticket_data.is_some(),
            w.comment.is_some(),
            w.status.is_some(),
            w.field.is_some(),
            w.value.is_some(),
        ];
        let (name, own): (&'static str, &[&str]) = match w.kind {
            KindName::TicketCreated => ("ticket_created", &["ticket_data"]),
            KindName::Comment => ("comment", &["comment"]),
            KindName::StatusChanged => ("status_changed", &["status"]),
            KindName::FieldChanged => ("field_changed", &["field", "value"]),
        };
        for (key, there) in KIND_KEYS.iter().zip(present) {
            if there && !own.contains(key) {
                return Err(WireError::Unknown {
                    key,
                    kind: name,
                    expected: own
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and "),
                });
            }
        }
        let missing = WireError::Missing;
        let kind = match w.kind {
            KindName::TicketCreated => EventKind::TicketCreated {
                ticket_data: w.ticket_data.ok_or_else(|| missing("ticket_data"))?,
            },
            KindName::Comment => EventKind::Comment {
                comment: w.comment.ok_or_else(|| missing("comment"))?,
            },
            KindName::StatusChanged => EventKind::StatusChanged {
                status: w.status.ok_or_else(|| missing("status"))?,
            },
            KindName::FieldChanged => EventKind::FieldChanged {
                field: w.field.ok_or_else(|| missing("field"))?,
                value: w.value.ok_or_else(|| missing("value"))?,
            },
        };
        Ok(Event {
            id: w.id,
            ticket: w.ticket,
            occurred_at: w.occurred_at,
            author: w.author,
            source_id: w.source_id,
            origin_source_id: w.origin_source_id,
            partner: w.partner,
            kind,
        })
    }
}

/// The event's JSON Schema says what EventWire does: no key beside the
/// named ones (draft 7 counts only the `properties` beside
/// `additionalProperties`, so the kinds' keys are named there too; their
/// shapes stay in the `oneOf`).
pub fn close_schema(schema: &mut schemars::schema::SchemaObject) {
    let object = schema.object();
    for key in std::iter::once("type").chain(KIND_KEYS) {
        object
            .properties
            .entry(key.to_string())
            .or_insert(schemars::schema::Schema::Bool(true));
    }
    object.additional_properties = Some(Box::new(schemars::schema::Schema::Bool(false)));
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

/// What is wrong with a file name, by the one rule every connector
/// follows: a plain name (no directory), without control characters (a
/// CR or LF would end a mail or multipart header), not `.` or `..`.
pub fn file_name_problem(name: &str) -> Option<&'static str> {
    let name = name.trim();
    if name.is_empty() {
        Some("must not be empty")
    } else if name == "." || name == ".." {
        Some("must not be . or ..")
    } else if name.contains(['/', '\\']) {
        Some("must be a plain file name, without a directory")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters (CR, LF, NUL, ...)")
    } else {
        None
    }
}

/// A name that keeps the rule above, from any: the last path component,
/// without control characters; "attachment" when nothing is left.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "attachment".into()
    } else {
        clean.to_string()
    }
}

/// A content type fit for a header: cut at its first control character
/// (what follows a CR or LF would be another header), and
/// application/octet-stream for anything that is not `type/subtype`.
pub fn clean_content_type(ct: &str) -> String {
    let clean = ct
        .split(|c: char| c.is_control())
        .next()
        .unwrap_or("")
        .trim();
    let essence = clean.split(';').next().unwrap_or("").trim();
    match essence.split_once('/') {
        Some((t, sub)) if !t.trim().is_empty() && !sub.trim().is_empty() => clean.to_string(),
        _ => default_content_type(),
    }
}

impl Attachment {
    /// Applies the file name and content type rules above.
    pub fn clean(&mut self) {
        self.name = clean_file_name(&self.name);
        self.content_type = clean_content_type(&self.content_type);
    }
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
    /// "Dana (Service Co)", "Service Co" or "deskbridge".
    pub fn sender(&self) -> String {
        match (&self.author, &self.partner) {
            (Some(a), Some(p)) => format!("{} ({})", a.name, p.party),
            (None, Some(p)) => p.party.clone(),
            (Some(a), None) => a.name.clone(),
            (None, None) => "deskbridge".into(),
        }
    }

    pub fn new(ticket: impl Into<String>, kind: EventKind) -> Event {
        Event {
            id: Uuid::now_v7(),
            ticket: ticket.into(),
            occurred_at: Utc::now(),
            author: None,
            source_id: None,
            origin_source_id: None,
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

/// A ticket's text as deskbridge read it back from a product, without the
/// markers deskbridge wrote there: what is handed on down a chain is the
/// company's text, not deskbridge's bookkeeping.
pub fn clean_text(text: &str) -> String {
    let stripped = strip_markers(&text.replace("\r\n", "\n"));
    let mut out = String::with_capacity(stripped.len());
    let mut blank = 0;
    for line in stripped.trim().lines() {
        let line = line.trim_end();
        blank = if line.is_empty() { blank + 1 } else { 0 };
        // The marker's own paragraph leaves a run of blank lines behind.
        if blank < 2 {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_back_text_loses_deskbridges_markers_and_their_blank_lines() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let text = format!(
            "Prints blank receipts.\r\n\r\n{}\r\n\r\n{}\n\nSerial number: SN-9\n",
            marker(a),
            marker(b)
        );
        assert_eq!(
            clean_text(&text),
            "Prints blank receipts.\n\nSerial number: SN-9"
        );
        assert_eq!(clean_text("One.\n\nTwo."), "One.\n\nTwo.");
    }

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

    fn event_json() -> serde_json::Value {
        serde_json::json!({
            "id": "0192f0c0-0000-7000-8000-000000000001",
            "ticket": "R-1",
            "occurred_at": "2026-11-23T10:00:00Z",
            "type": "status_changed",
            "status": "resolved",
        })
    }

    #[test]
    fn unknown_fields_are_refused_at_the_top_level_too() {
        let ok: Event = serde_json::from_value(event_json()).unwrap();
        assert_eq!(
            ok.kind,
            EventKind::StatusChanged {
                status: Status::Resolved
            }
        );
        let mut misspelt = event_json();
        misspelt["sourceid"] = "c9".into();
        let err = serde_json::from_value::<Event>(misspelt)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `sourceid`"), "{err}");
        // Another kind's key is as unknown as any other.
        let mut foreign = event_json();
        foreign["comment"] = serde_json::json!({ "body": "hi", "audience": "public" });
        let err = serde_json::from_value::<Event>(foreign)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `comment` for type `status_changed`"),
            "{err}"
        );
        let mut missing = event_json();
        missing.as_object_mut().unwrap().remove("status");
        let err = serde_json::from_value::<Event>(missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `status`"), "{err}");
        // Inside, as before.
        let mut inner = event_json();
        inner["author"] = serde_json::json!({ "name": "Ann", "mail": "a@b" });
        let err = serde_json::from_value::<Event>(inner)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `mail`"), "{err}");
    }

    #[test]
    fn every_kind_roundtrips() {
        let kinds = [
            EventKind::TicketCreated {
                ticket_data: Ticket {
                    subject: "s".into(),
                    ..Ticket::default()
                },
            },
            EventKind::StatusChanged {
                status: Status::Waiting,
            },
            EventKind::FieldChanged {
                field: "site".into(),
                value: "Main St 1".into(),
            },
        ];
        for kind in kinds {
            let mut ev = Event::new("T-1", kind);
            ev.origin_source_id = Some("42".into());
            let back: Event = serde_json::from_value(serde_json::to_value(&ev).unwrap()).unwrap();
            assert_eq!(back, ev);
        }
    }

    #[test]
    fn the_schema_allows_exactly_the_keys_the_reader_takes() {
        let schema = serde_json::to_value(schemars::schema_for!(Event)).unwrap();
        let mut root = schemars::schema_for!(Event);
        close_schema(&mut root.schema);
        let closed = serde_json::to_value(&root).unwrap();
        assert!(schema.get("additionalProperties").is_none());
        assert_eq!(closed["additionalProperties"], false);
        let keys: Vec<&str> = closed["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "id",
            "ticket",
            "occurred_at",
            "author",
            "source_id",
            "origin_source_id",
            "partner",
            "type",
            "ticket_data",
            "comment",
            "status",
            "field",
            "value",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert_eq!(keys.len(), 13, "{keys:?}");
    }

    #[test]
    fn one_file_name_rule() {
        for bad in [
            "",
            " ",
            ".",
            "..",
            "a/b.pdf",
            "..\\x",
            "a\r\nBcc: x",
            "nul\0",
        ] {
            assert!(file_name_problem(bad).is_some(), "{bad:?}");
            let clean = clean_file_name(bad);
            assert_eq!(file_name_problem(&clean), None, "{bad:?} -> {clean:?}");
        }
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name(".."), "attachment");
        assert_eq!(clean_file_name("report\r\n.pdf"), "report.pdf");
        assert_eq!(file_name_problem("Rechnung März.pdf"), None);
        assert_eq!(clean_content_type("text/plain\r\nX-Evil: 1"), "text/plain");
        assert_eq!(clean_content_type("image/png; name=a"), "image/png; name=a");
        assert_eq!(clean_content_type("garbage"), "application/octet-stream");
        assert_eq!(clean_content_type(""), "application/octet-stream");
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
