//! Turns a ticket and its history, as the product answers them, into
//! canonical events: its creation, comments with their audience, status
//! and field changes; deskbridge's own writes named by its service account.
//!
//! Event ids are derived from the product's own ids (and the entry's time,
//! so they stay time-ordered): reading an entry twice (the cursor looks
//! back a few seconds, a crash repeats a round) gives the same event,
//! which ingest takes once.

use crate::connector::rest::download;
use crate::connector::rest::fields::{self, Places};
use crate::connector::rest::identity::Identity;
use crate::connector::rest::json::{as_text, text_at, time_at};
use crate::connector::rest::profile::{Profile, StatusMap};
use crate::connector::rest::remote_id::status_source_id;
use crate::event::{stable_id, strip_markers, Audience, Author, Comment, Event, EventKind, Ticket};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::warn;

/// Turns a ticket as the product answers it into events.
pub struct Reader<'a> {
    pub endpoint: &'a str,
    pub profile: &'a Profile,
    pub statuses: &'a StatusMap,
    /// Where the ticket's fields are, and how their changes are named.
    pub places: &'a Places,
    pub me: &'a Identity,
    /// The name deskbridge's own writes are given (the endpoint's
    /// `service_account`), so ingest recognises them as its echo.
    pub service_account: &'a str,
}

/// A flag as products write it: `true`, `1`, `"1"`, `"true"`.
fn flag_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.as_str() {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl Reader<'_> {
    fn time_at(&self, v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
        time_at(v, pointer, self.profile.time_format.as_deref())
    }

    /// A status change seen by comparing the ticket's status with the one
    /// seen last (`journal.status_field` unset); `None` when unchanged, or
    /// when first seen on a ticket created in the window (its creation
    /// carries its status; for a ticket deskbridge created, that status is
    /// its own doing). A ticket first seen later reports its status, which
    /// ingest drops when the link already has it.
    pub fn status_snapshot(
        &self,
        ticket: &Value,
        last: Option<&str>,
        from: DateTime<Utc>,
    ) -> Option<Event> {
        let tp = &self.profile.ticket;
        let tid = text_at(ticket, &tp.id)?;
        let now = text_at(ticket, &tp.status)?;
        let new_ticket = self
            .time_at(ticket, &tp.created_at)
            .is_some_and(|c| c >= from);
        if last == Some(now.as_str()) || (last.is_none() && new_ticket) {
            return None;
        }
        let Some(status) = self.statuses.inbound.get(&now) else {
            warn!(
                endpoint = self.endpoint,
                ticket = %tid,
                "status {now} has no canonical status (endpoints.{}.rest.statuses.inbound): not relayed",
                self.endpoint
            );
            return None;
        };
        let at = self.time_at(ticket, &tp.updated_at).unwrap_or(from);
        let mut ev = Event::new(&tid, EventKind::StatusChanged { status: *status });
        // The same change read twice is the same event.
        ev.id = stable_id(self.endpoint, "status", &format!("{tid}@{now}@{at}"), at);
        ev.occurred_at = at;
        // A status deskbridge set is known by this id (the sink records it
        // with the update time it read back): its echo.
        ev.source_id = text_at(ticket, &tp.updated_at).map(|u| status_source_id(&tid, &u));
        Some(ev)
    }

    fn author(
        &self,
        v: &Value,
        id_ptr: &str,
        name_ptr: &str,
        kind_ptr: Option<&str>,
    ) -> (Option<Author>, bool) {
        let id = text_at(v, id_ptr);
        let kind_matches = match (kind_ptr, &self.me.kind) {
            (Some(p), Some(mine)) => text_at(v, p).as_deref() == Some(mine.as_str()),
            _ => true,
        };
        if kind_matches && id.as_deref() == Some(self.me.user_id.as_str()) {
            let a = Author {
                name: self.service_account.to_string(),
                email: None,
            };
            return (Some(a), true);
        }
        let a = text_at(v, name_ptr).map(|name| Author { name, email: None });
        (a, false)
    }

    /// The ticket as it stands, as a transfer hands it over.
    pub fn ticket_data(&self, ticket: &Value, entries: &[Value]) -> Ticket {
        let tp = &self.profile.ticket;
        let jp = &self.profile.journal;
        let status = text_at(ticket, &tp.status).and_then(|s| self.statuses.inbound.get(&s));
        let mut fields = self
            .places
            .read(ticket, self.profile.time_format.as_deref());
        let priority = fields
            .remove("priority")
            .or_else(|| tp.priority.as_deref().and_then(|p| text_at(ticket, p)));
        let due = fields.remove("due").and_then(|d| fields::parse_due(&d));
        let first = self.opening(entries);
        Ticket {
            subject: text_at(ticket, &tp.subject).unwrap_or_default(),
            description: text_at(ticket, &tp.description)
                .or_else(|| {
                    entries
                        .iter()
                        .find(|e| self.is_description(e, first.as_deref()))
                        .and_then(|e| text_at(e, &jp.text))
                })
                .unwrap_or_default(),
            status: status.copied(),
            priority,
            due,
            fields,
            ..Ticket::default()
        }
    }

    /// The id of the entry that opened the ticket, where the first entry
    /// is its description (`journal.first_is_description`).
    pub fn opening(&self, entries: &[Value]) -> Option<String> {
        let jp = &self.profile.journal;
        if jp.first_is_description {
            entries.first().and_then(|e| text_at(e, &jp.id))
        } else {
            None
        }
    }

    /// An entry that is the ticket's description, never a comment: of a
    /// description kind, or the opening entry.
    fn is_description(&self, entry: &Value, opening: Option<&str>) -> bool {
        let jp = &self.profile.journal;
        let kind = jp.kind.as_deref().and_then(|k| text_at(entry, k));
        (!jp.description_kinds.is_empty()
            && kind.is_some_and(|k| jp.description_kinds.contains(&k)))
            || (opening.is_some() && text_at(entry, &jp.id).as_deref() == opening)
    }

    /// Events of one ticket (the object at the profile's `ticket.root`)
    /// from entries at or after `from`, oldest first.
    /// `entries` is the ticket's history (`RestEndpoint::entries`).
    pub fn events(&self, ticket: &Value, entries: &[Value], from: DateTime<Utc>) -> Vec<Event> {
        let tp = &self.profile.ticket;
        let Some(tid) = text_at(ticket, &tp.id) else {
            return vec![];
        };
        let mut out = Vec::new();
        if let Some(created) = self.time_at(ticket, &tp.created_at).filter(|t| *t >= from) {
            let data = self.ticket_data(ticket, entries);
            let mut ev = Event::new(&tid, EventKind::TicketCreated { ticket_data: data });
            ev.id = stable_id(self.endpoint, "ticket", &tid, created);
            ev.occurred_at = created;
            ev.source_id = Some(format!("ticket-{tid}"));
            ev.author = self.author(ticket, &tp.author_id, &tp.author_name, None).0;
            out.push(ev);
        }
        let opening = self.opening(entries);
        out.extend(self.entry_events(&tid, ticket, entries, from, opening.as_deref()));
        out.sort_by_key(|e| (e.occurred_at, e.id));
        out
    }

    /// Events of ticket `tid`'s history entries at or after `from`, oldest
    /// first; `opening` is the entry that opened the ticket (its
    /// description, never a comment). `ticket` may be `Null`: entries
    /// listed without their ticket (`list_changes.entries`).
    pub fn entry_events(
        &self,
        tid: &str,
        ticket: &Value,
        entries: &[Value],
        from: DateTime<Utc>,
        opening: Option<&str>,
    ) -> Vec<Event> {
        let tp = &self.profile.ticket;
        let jp = &self.profile.journal;
        let mut out = Vec::new();
        let kind_of = |entry: &Value| jp.kind.as_deref().and_then(|k| text_at(entry, k));
        let is_description = |entry: &Value| self.is_description(entry, opening);
        for entry in entries {
            let Some(jid) = text_at(entry, &jp.id) else {
                continue;
            };
            // Without a time: in every window; its id keeps it once. Its
            // event is dated by the ticket's last update.
            let (at, id_at) = match self.time_at(entry, &jp.created_at) {
                Some(at) if at < from => continue,
                Some(at) => (at, at),
                None => (
                    self.time_at(ticket, &tp.updated_at).unwrap_or(from),
                    DateTime::<Utc>::UNIX_EPOCH,
                ),
            };
            let (author, own) = self.author(
                entry,
                &jp.author_id,
                &jp.author_name,
                jp.author_kind.as_deref(),
            );
            let source_id = format!("journal-{jid}");
            let make = |what: &str, kind: EventKind| {
                let mut ev = Event::new(tid, kind);
                ev.id = stable_id(self.endpoint, what, &jid, id_at);
                ev.occurred_at = at;
                ev.author = author.clone();
                ev.source_id = Some(source_id.clone());
                ev
            };
            let kind = kind_of(entry);
            let carries_comment = !is_description(entry)
                && (jp.comment_kinds.is_empty()
                    || kind.as_ref().is_some_and(|k| jp.comment_kinds.contains(k)));
            // An entry with files and no text (a file added alone) is a
            // comment too: its files travel with it.
            let with_files = || {
                self.profile
                    .files
                    .as_ref()
                    .and_then(|f| f.read.as_ref())
                    .filter(|r| r.entry_list.is_some())
                    .is_some_and(|r| !download::entry_files(r, ticket, entry).is_empty())
            };
            let text = text_at(entry, &jp.text).unwrap_or_default();
            let text =
                (carries_comment && (!text.trim().is_empty() || with_files())).then_some(text);
            if let Some(text) = text {
                let flag = |p: &Option<String>| {
                    p.as_deref()
                        .and_then(|p| entry.pointer(p))
                        .and_then(flag_value)
                };
                // Without a clear "public", a comment stays internal.
                let not_public = jp.public.is_some() && flag(&jp.public) != Some(true);
                let internal = flag(&jp.internal).unwrap_or(false)
                    || not_public
                    || kind.as_ref().is_some_and(|k| jp.internal_kinds.contains(k));
                let body = if own { text } else { strip_markers(&text) };
                out.push(make(
                    "comment",
                    EventKind::Comment {
                        comment: Comment {
                            body,
                            audience: if internal {
                                Audience::Internal
                            } else {
                                Audience::Public
                            },
                            attachments: vec![],
                        },
                    },
                ));
            }
            // A history whose entries carry the status they set.
            if let Some(v) = jp
                .status_value
                .as_deref()
                .and_then(|p| entry.pointer(p))
                .and_then(as_text)
            {
                match self.statuses.inbound.get(&v) {
                    Some(status) => {
                        out.push(make("status", EventKind::StatusChanged { status: *status }))
                    }
                    None => warn!(
                        endpoint = self.endpoint,
                        ticket = %tid,
                        "status {v} has no canonical status (endpoints.{}.rest.statuses.inbound): not relayed",
                        self.endpoint
                    ),
                }
            }
            let status_field = jp.status_field.as_deref();
            if status_field.is_none() && !self.places.has_changes() {
                continue;
            }
            let changes = if jp.changes.is_empty() {
                vec![entry.clone()]
            } else {
                entry
                    .pointer(&jp.changes)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            for ch in &changes {
                let Some(name) = text_at(ch, &jp.change_field) else {
                    continue;
                };
                if Some(name.as_str()) != status_field {
                    let value = ch.pointer(&jp.change_value).and_then(as_text);
                    let tf = self.profile.time_format.as_deref();
                    if let Some((field, value)) = self.places.change(&name, value.as_deref(), tf) {
                        let what = format!("field-{field}");
                        out.push(make(&what, EventKind::FieldChanged { field, value }));
                    }
                    continue;
                }
                let Some(value) = ch.pointer(&jp.change_value).and_then(as_text) else {
                    continue;
                };
                match self.statuses.inbound.get(&value) {
                    Some(status) => {
                        out.push(make("status", EventKind::StatusChanged { status: *status }))
                    }
                    None => warn!(
                        endpoint = self.endpoint,
                        ticket = %tid,
                        "status {value} has no canonical status (endpoints.{}.rest.statuses.inbound): not relayed",
                        self.endpoint
                    ),
                }
            }
        }
        out.sort_by_key(|e| (e.occurred_at, e.id));
        out
    }
}
