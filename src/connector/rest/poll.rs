//! The REST source: every `poll_secs`, list the tickets changed since the
//! cursor, read their history, turn new entries into events and hand them
//! to ingest together with the new cursor (one transaction).
//!
//! Event ids are derived from the product's own ids (and the entry's time,
//! so they stay time-ordered): reading an entry twice (the cursor looks
//! back a few seconds, a crash repeats a round) gives the same event,
//! which ingest takes once.

use super::profile::Profile;
use super::template::Vars;
use super::{as_text, text_at, RestEndpoint};
use crate::blob::BlobStore;
use crate::event::{strip_markers, Audience, Author, Comment, Event, EventKind, Ticket};
use crate::ingest::Ingest;
use crate::retry::{Retry, RetryPolicy};
use crate::store::Store;
use chrono::{DateTime, SecondsFormat, SubsecRound as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// How far each round looks back before the cursor: a change committed a
/// moment after a later one was listed is still seen.
const LOOKBACK: chrono::Duration = chrono::Duration::seconds(5);

/// The most tickets one round lists from a list filtered by change time.
const MAX_LISTED: u64 = 10_000;

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

/// Without the product's clock (no `Date` header), deskbridge's, taken
/// this much earlier: a product's clock may be behind.
const SKEW: chrono::Duration = chrono::Duration::seconds(60);

impl Cursor {
    /// Changes at or after this time are read in the next round, looking
    /// back `lookback_secs` (the profile's; default 5 s).
    pub fn window(&self, lookback_secs: Option<u32>) -> DateTime<Utc> {
        let back = lookback_secs.map_or(LOOKBACK, |s| chrono::Duration::seconds(s.into()));
        (self.since - back).max(self.floor)
    }
}

/// Whom the credentials belong to.
#[derive(Clone, Debug)]
pub struct Identity {
    pub user_id: String,
    pub login: String,
    /// The kind of user (`identity.kind`).
    pub kind: Option<String>,
}

/// Turns a ticket as the product answers it into events.
pub struct Reader<'a> {
    pub endpoint: &'a str,
    pub profile: &'a Profile,
    pub statuses: &'a super::profile::StatusMap,
    /// Where the ticket's fields are, and how their changes are named.
    pub places: &'a super::fields::Places,
    pub me: &'a Identity,
    /// The name deskbridge's own writes are given (the endpoint's
    /// `service_account`), so ingest recognises them as its echo.
    pub service_account: &'a str,
}

pub use crate::event::stable_id;

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
        super::time_at(v, pointer, self.profile.time_format.as_deref())
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
        ev.source_id =
            text_at(ticket, &tp.updated_at).map(|u| super::sink::status_source_id(&tid, &u));
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
        let due = fields
            .remove("due")
            .and_then(|d| super::fields::parse_due(&d));
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
                    .is_some_and(|r| !super::files::entry_files(r, ticket, entry).is_empty())
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

/// The list's last page: not full, or no link to a next one (`list_changes.next`).
fn last_page(lp: &super::profile::ListRequest, answer: &Value, n: usize) -> bool {
    n < lp.page_size as usize
        || lp
            .next
            .as_deref()
            .is_some_and(|p| answer.pointer(p).is_none_or(Value::is_null))
}

/// A ticket listed with an update time before `from`: nothing new in it
/// (for lists the product does not filter, `list_changes.unfiltered`).
fn listed_before(item: &Value, updated_ptr: &str, tf: Option<&str>, from: DateTime<Utc>) -> bool {
    super::time_at(item, updated_ptr, tf).is_some_and(|u| u < from)
}

/// The values of one list_changes request: changes since `from`, the page
/// at `offset`.
pub fn list_vars(ep: &RestEndpoint, from: DateTime<Utc>, offset: u64) -> Vars {
    let lp = &ep.profile.list_changes;
    ep.vars(&[
        (
            "since",
            match &lp.since_format {
                Some(f) => from.format(f).to_string(),
                None => from.to_rfc3339_opts(SecondsFormat::Secs, true),
            },
        ),
        ("offset", offset.to_string()),
        ("page", (offset / lp.page_size as u64 + 1).to_string()),
        ("limit", lp.page_size.to_string()),
        ("last", (offset + lp.page_size as u64 - 1).to_string()),
    ])
}

/// One page of the changes since `from`, as list_changes answers it.
pub async fn list_page(
    ep: &RestEndpoint,
    from: DateTime<Utc>,
    offset: u64,
) -> Result<super::client::Answer, crate::connector::sink::SinkError> {
    let lp = &ep.profile.list_changes;
    ep.client
        .call(
            "list changes",
            lp.method,
            &lp.path,
            None,
            &list_vars(ep, from, offset),
        )
        .await
}

/// What one round listed: the items oldest first, when the product
/// answered (its `Date`), how many list requests it took, and whether
/// more changes wait for the next round.
pub struct Listed {
    pub items: Vec<Value>,
    pub date: Option<DateTime<Utc>>,
    pub requests: u64,
    pub more: bool,
}

/// The items of one list_changes answer.
fn page_items(ep: &RestEndpoint, answer: &Value) -> Vec<Value> {
    let lp = &ep.profile.list_changes;
    answer
        .pointer(lp.list.as_deref().unwrap_or(&ep.profile.ticket.list))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A list that runs oldest change first, read from its last page back to
/// the first page that starts before `from` (`list_changes.from_end`): the
/// pages with changes at or after `from`, oldest first. Items added while
/// it reads only lengthen the list at its end, so the pages counted back
/// from the first answer's count keep their items.
pub async fn list_from_end(
    ep: &RestEndpoint,
    fe: &super::profile::FromEnd,
    from: DateTime<Utc>,
) -> Result<Listed, crate::connector::sink::SinkError> {
    list_back(ep, fe, |_| from).await
}

/// As `list_from_end`, the window's start given by the product's clock
/// (its first answer's `Date`, when it sends one).
async fn list_back(
    ep: &RestEndpoint,
    fe: &super::profile::FromEnd,
    window: impl Fn(Option<DateTime<Utc>>) -> DateTime<Utc>,
) -> Result<Listed, crate::connector::sink::SinkError> {
    // (The first request's `since`, if the path has one, is not filtered on.)
    let from = window(None);
    let lp = &ep.profile.list_changes;
    let updated_ptr = lp
        .updated_at
        .as_deref()
        .unwrap_or(&ep.profile.ticket.updated_at);
    let tf = ep.profile.time_format.as_deref();
    let mut vars = list_vars(ep, from, 0);
    vars.insert("page".into(), fe.last.clone());
    let answer = ep
        .client
        .call("list changes", lp.method, &lp.path, None, &vars)
        .await?;
    let count = answer
        .json
        .pointer(&fe.count)
        .and_then(|c| c.as_u64().or_else(|| as_text(c)?.parse().ok()))
        .ok_or_else(|| crate::connector::sink::SinkError::Permanent {
            message: format!(
                "{}: list_changes answered without a count at {} (list_changes.from_end.count)",
                ep.name, fe.count
            ),
        })?;
    let from = window(answer.date);
    let size = u64::from(lp.page_size);
    let mut page = count.div_ceil(size).max(1);
    let mut pages = vec![page_items(ep, &answer.json)];
    let mut requests = 1;
    // Back while the oldest item read is still in the window.
    while page > 1
        && pages
            .last()
            .and_then(|p| p.first())
            .is_none_or(|t| !listed_before(t, updated_ptr, tf, from))
    {
        page -= 1;
        let a = list_page(ep, from, (page - 1) * size).await?;
        requests += 1;
        pages.push(page_items(ep, &a.json));
    }
    Ok(Listed {
        items: pages.into_iter().rev().flatten().collect(),
        date: answer.date,
        requests,
        more: false,
    })
}

/// The history entries of every ticket listed since `since` (by
/// deskbridge's clock, translated to the product's by its `Date`, a
/// minute earlier), oldest first, where the list is one of entries read
/// from its end (`list_changes.entries` and `from_end`); `None` elsewhere.
/// The sink looks for its own writes there: no ticket is read.
pub async fn recent_entries(
    ep: &RestEndpoint,
    since: DateTime<Utc>,
) -> Result<Option<Vec<Value>>, crate::connector::sink::SinkError> {
    let lp = &ep.profile.list_changes;
    let (Some(fe), Some(_)) = (&lp.from_end, &lp.entries) else {
        return Ok(None);
    };
    let asked = Utc::now();
    let window = |date: Option<DateTime<Utc>>| {
        // Without the product's clock, a margin for it: its `Date` is
        // whole seconds, and a product's clock may be behind.
        let skew = date.map_or(-SKEW, |d| d - asked);
        since + skew - chrono::Duration::seconds(60)
    };
    Ok(Some(list_back(ep, fe, window).await?.items))
}

/// What a REST endpoint's poller did, for `deskbridge status`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PollStatus {
    /// Rounds that read the product's changes.
    pub rounds: u64,
    /// Events taken from the product.
    pub taken: u64,
    /// Tickets read in the last round (listed and changed since read;
    /// an idle product: none).
    #[serde(default)]
    pub last_round_reads: u64,
    /// List requests in the last round (an idle product: the list's pages,
    /// or only its last one where it is read from the end).
    #[serde(default)]
    pub last_round_pages: u64,
    /// How long the last round took, in milliseconds.
    #[serde(default)]
    pub last_round_ms: u64,
    /// When a round last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok: Option<DateTime<Utc>>,
    /// Why the product cannot be read now, while it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<String>,
    /// The product's webhooks that woke the poll, and those refused.
    pub webhooks: u64,
    pub webhooks_refused: u64,
}

pub type PollBoard = crate::connector::board::Board<PollStatus>;

pub struct Poller {
    pub board: PollBoard,
    pub ep: Arc<RestEndpoint>,
    pub ingest: Ingest,
    pub store: Store,
    /// Where the files of the product's comments are downloaded to.
    pub blobs: BlobStore,
    pub service_account: String,
}

/// Why a round failed, and when to try again.
struct RoundError {
    message: String,
    retry_after: Option<Duration>,
}

impl From<crate::connector::sink::SinkError> for RoundError {
    fn from(e: crate::connector::sink::SinkError) -> Self {
        match e {
            crate::connector::sink::SinkError::Transient {
                message,
                retry_after,
            } => RoundError {
                message,
                retry_after,
            },
            crate::connector::sink::SinkError::Permanent { message } => RoundError {
                message,
                retry_after: None,
            },
        }
    }
}

fn round_error(e: impl std::fmt::Display) -> RoundError {
    RoundError {
        message: e.to_string(),
        retry_after: None,
    }
}

/// What one round did (`Poller::round`).
#[derive(Default)]
struct Round {
    /// Events taken.
    taken: usize,
    /// More changes wait: the next round runs at once.
    more: bool,
    /// Tickets read.
    reads: usize,
    /// List requests.
    pages: u64,
}

/// What a round builds up while it takes the listed tickets.
struct RoundState {
    since: DateTime<Utc>,
    statuses: BTreeMap<String, String>,
    edge: BTreeMap<String, Edge>,
    events: Vec<Event>,
    reads: usize,
}

impl Poller {
    async fn identity(&self) -> Result<Identity, RoundError> {
        Ok(self.ep.identity(&self.service_account).await?)
    }

    /// One polling round now, as `run` does them: the events taken, and
    /// whether more changes wait.
    pub async fn poll_now(&self) -> Result<(usize, bool), String> {
        let me = self.identity().await.map_err(|e| e.message)?;
        let r = self.round(&me).await.map_err(|e| e.message)?;
        Ok((r.taken, r.more))
    }

    /// Runs until `shutdown` fires.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let name = self.ep.name.clone();
        let mut retry = Retry::new(RetryPolicy::default());
        let mut said = crate::retry::Said::default();
        let me = loop {
            match self.identity().await {
                Ok(me) => break me,
                Err(e) => {
                    crate::connector::board::with_entry(&self.board, &name, |s| {
                        s.failing = Some(format!("cannot learn who deskbridge is: {}", e.message))
                    });
                    let wait = retry.next_delay(e.retry_after);
                    let (news, failures) = said.failed(&e.message);
                    if news {
                        warn!(endpoint = %name, error = %e.message, failures, "cannot learn who deskbridge is here; will retry");
                    } else {
                        debug!(endpoint = %name, error = %e.message, failures, "cannot learn who deskbridge is here; will retry");
                    }
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        };
        if me.login != self.service_account {
            warn!(endpoint = %name, login = %me.login, service_account = %self.service_account,
                "the credentials belong to another user than service_account");
        }
        info!(endpoint = %name, user = %me.login, "polling every {:?}", self.ep.poll);
        let mut retry = Retry::new(RetryPolicy::default());
        let mut said = crate::retry::Said::default();
        loop {
            // `deaf`: after a failure, the backoff (and a Retry-After)
            // holds even when the product's webhooks ask for more.
            let began = std::time::Instant::now();
            let (wait, deaf) = match self.round(&me).await {
                Ok(Round {
                    taken: n,
                    more,
                    reads,
                    pages,
                }) => {
                    retry = Retry::new(RetryPolicy::default());
                    said = Default::default();
                    crate::connector::board::with_entry(&self.board, &name, |s| {
                        s.rounds += 1;
                        s.taken += n as u64;
                        s.last_round_reads = reads as u64;
                        s.last_round_pages = pages;
                        s.last_round_ms = began.elapsed().as_millis() as u64;
                        s.last_ok = Some(Utc::now());
                        s.failing = None;
                    });
                    if n > 0 {
                        debug!(endpoint = %name, events = n, "polled");
                    }
                    let wait = if more { Duration::ZERO } else { self.ep.poll };
                    (wait, Duration::ZERO)
                }
                Err(e) => {
                    crate::connector::board::with_entry(&self.board, &name, |s| {
                        s.failing = Some(e.message.clone())
                    });
                    let backoff = retry.next_delay(e.retry_after);
                    let wait = backoff.max(self.ep.poll);
                    let wait_ms = wait.as_millis() as u64;
                    let (news, failures) = said.failed(&e.message);
                    if news {
                        warn!(endpoint = %name, error = %e.message, failures, wait_ms, "poll failed; will retry");
                    } else {
                        debug!(endpoint = %name, error = %e.message, failures, wait_ms, "poll failed; will retry");
                    }
                    (wait, backoff)
                }
            };
            let woken = async {
                tokio::time::sleep(deaf).await;
                // A wake during a round is kept: the next one runs at once.
                self.ep.wake.notified().await
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = woken => {}
            }
        }
    }

    /// One round: the events taken, whether more changes wait, and what
    /// it cost.
    async fn round(&self, me: &Identity) -> Result<Round, RoundError> {
        let name = &self.ep.name;
        let stored = self.store.cursor(name).map_err(round_error)?;
        let cursor = match stored.as_deref().map(serde_json::from_slice::<Cursor>) {
            Some(Ok(c)) => c,
            other => {
                if let Some(Err(e)) = other {
                    warn!(endpoint = %name, "unreadable poll cursor ({e}): starting from now");
                }
                // First start: what happened before deskbridge was there
                // is not replayed. Products give times in whole seconds: a
                // change in this very second is taken.
                let now = Utc::now().trunc_subsecs(0);
                let c = Cursor {
                    since: now,
                    floor: now,
                    statuses: BTreeMap::new(),
                    edge: BTreeMap::new(),
                };
                self.commit(vec![], &c).await?;
                return Ok(Round::default());
            }
        };
        let lp = &self.ep.profile.list_changes;
        let from = cursor.window(lp.lookback_secs);
        let tp = &self.ep.profile.ticket;
        let tf = self.ep.profile.time_format.as_deref();
        let id_ptr = lp.id.as_deref().unwrap_or(&tp.id);
        let updated_ptr = lp.updated_at.as_deref().unwrap_or(&tp.updated_at);
        let listed = match &lp.from_end {
            Some(fe) => list_from_end(&self.ep, fe, from).await?,
            None => self.list_forward(&cursor, from).await?,
        };
        // When this round read, by the product's clock: the tickets are
        // read after it.
        let read_at = listed.date.unwrap_or_else(|| Utc::now() - SKEW);
        let reader = Reader {
            endpoint: name,
            profile: &self.ep.profile,
            statuses: &self.ep.statuses,
            places: &self.ep.places,
            me,
            service_account: &self.service_account,
        };
        let mut st = RoundState {
            since: cursor.since,
            statuses: cursor.statuses.clone(),
            edge: BTreeMap::new(),
            events: Vec::new(),
            reads: 0,
        };
        let back = cursor.since - from;
        let unfiltered = lp.unfiltered || lp.from_end.is_some();
        let mut skipped = 0usize;
        // A list of history entries: each ticket's entries together, in
        // the order of their first entry.
        let mut tickets: Vec<(String, Option<String>, Vec<Value>)> = Vec::new();
        for item in &listed.items {
            if unfiltered && listed_before(item, updated_ptr, tf, from) {
                continue;
            }
            let id = match &lp.entries {
                Some(tptr) => text_at(item, tptr),
                None => text_at(item, id_ptr),
            };
            let Some(id) = id else {
                continue;
            };
            let updated = text_at(item, updated_ptr);
            match tickets.iter_mut().find(|(t, _, _)| *t == id) {
                // Listed again (the list moved under the paging): as last listed.
                Some((_, u, entries)) => {
                    *u = updated;
                    if lp.entries.is_some() {
                        entries.push(item.clone());
                    }
                }
                None => tickets.push((id, updated, vec![item.clone()])),
            }
        }
        for (id, listed_at, entries) in tickets {
            if lp.entries.is_some() && self.store.knows_ticket(name, &id).map_err(round_error)? {
                // Known: its listed entries are its news, no read.
                let opening = cursor.edge.get(&id).and_then(|e| e.opening.clone());
                if let Some(e) = cursor.edge.get(&id) {
                    st.edge.insert(id.clone(), e.clone());
                }
                for e in &entries {
                    if let Some(u) = super::time_at(e, updated_ptr, tf) {
                        st.since = st.since.max(u);
                    }
                }
                let mut evs =
                    reader.entry_events(&id, &Value::Null, &entries, from, opening.as_deref());
                for ev in &mut evs {
                    self.attach_files(&Value::Null, &entries, ev).await?;
                }
                st.events.extend(evs);
                continue;
            }
            // Read before at this very update time, long enough after it
            // that nothing of that time can still appear: the look-back
            // lists it again, but there is nothing new to read.
            if let (Some(e), Some(u)) = (cursor.edge.get(&id), &listed_at) {
                // (A second more: products write whole seconds.)
                let settled = super::parse_time(u, tf)
                    .is_some_and(|t| e.read_at >= t + back + chrono::Duration::seconds(1));
                if &e.updated == u && settled {
                    st.edge.insert(id.clone(), e.clone());
                    skipped += 1;
                    continue;
                }
            }
            self.read_one(&reader, &mut st, &id, listed_at, from, read_at)
                .await?;
        }
        if skipped > 0 {
            debug!(endpoint = %name, skipped, "tickets listed again with nothing new: not read");
        }
        // Only what the next round's look-back can list again.
        let next_from = (st.since - back).max(cursor.floor);
        st.edge
            .retain(|_, e| super::parse_time(&e.updated, tf).is_none_or(|t| t >= next_from));
        // What ingest took before (listed again in the look-back) is not
        // counted as taken again.
        let mut events = st.events;
        events.retain(|ev| {
            !self
                .store
                .was_seen(name, &format!("event:{}", ev.id))
                .unwrap_or(false)
        });
        let n = events.len();
        self.commit(
            events,
            &Cursor {
                since: st.since,
                statuses: st.statuses,
                edge: st.edge,
                ..cursor
            },
        )
        .await?;
        Ok(Round {
            taken: n,
            more: listed.more,
            reads: st.reads,
            pages: listed.requests,
        })
    }

    /// The list walked forward from its first page: to its end when the
    /// product does not filter it, else up to a page past the cursor.
    async fn list_forward(
        &self,
        cursor: &Cursor,
        from: DateTime<Utc>,
    ) -> Result<Listed, RoundError> {
        let name = &self.ep.name;
        let lp = &self.ep.profile.list_changes;
        let tp = &self.ep.profile.ticket;
        let tf = self.ep.profile.time_format.as_deref();
        let id_ptr = lp.id.as_deref().unwrap_or(&tp.id);
        let updated_ptr = lp.updated_at.as_deref().unwrap_or(&tp.updated_at);
        let mut listed = Vec::new();
        let mut offset = 0u64;
        let mut date = None;
        let mut requests = 0;
        let mut first_of_last_page: Option<String> = None;
        let more = loop {
            let answer = list_page(&self.ep, from, offset).await?;
            requests += 1;
            date = date.or(Some(answer.date.unwrap_or_else(|| Utc::now() - SKEW)));
            let page = page_items(&self.ep, &answer.json);
            let n = page.len();
            // A product that ignores the paging answers the same page
            // again: what was read is taken, the rest waits for the next
            // round.
            let first = page.first().and_then(|t| text_at(t, id_ptr));
            if offset > 0 && first.is_some() && first == first_of_last_page {
                warn!(endpoint = %name, "list_changes: the product answered the same page for the next one (it ignores the paging?); going on in the next round");
                break true;
            }
            first_of_last_page = first;
            listed.extend(page);
            if last_page(lp, &answer.json, n) {
                break false;
            }
            // A full page: take it, and come back at once for the rest,
            // unless it made no progress (a page of one second's changes).
            let last = listed
                .last()
                .and_then(|t| super::time_at(t, updated_ptr, tf));
            // An unfiltered list starts from its first page every round:
            // it is walked to the end, or later pages are never reached.
            if !lp.unfiltered && last.is_some_and(|l| l > cursor.since) {
                break true;
            }
            offset += lp.page_size as u64;
            // A filtered list this long is a second with more changes than
            // one round takes: the rest next round. An unfiltered one is
            // walked to its end however large the desk (a round that
            // stopped early would never reach the later tickets).
            if !lp.unfiltered && offset >= MAX_LISTED {
                warn!(endpoint = %name, "list_changes: {MAX_LISTED} tickets changed in one second, or the product ignores the paging; going on in the next round");
                break true;
            }
        };
        Ok(Listed {
            items: listed,
            date,
            requests,
            more,
        })
    }

    /// Reads one listed ticket and takes its events. A ticket deskbridge
    /// sees for the first time, created before the window (before
    /// deskbridge started), is learnt as it stands: transfer rules and
    /// `deskbridge transfer` can hand it over.
    async fn read_one(
        &self,
        reader: &Reader<'_>,
        st: &mut RoundState,
        id: &str,
        listed_at: Option<String>,
        from: DateTime<Utc>,
        read_at: DateTime<Utc>,
    ) -> Result<(), RoundError> {
        let name = &self.ep.name;
        let tp = &self.ep.profile.ticket;
        let tf = self.ep.profile.time_format.as_deref();
        st.reads += 1;
        let ticket = match self.ep.read_ticket(id).await {
            Ok(t) => t,
            Err(e @ crate::connector::sink::SinkError::Transient { .. }) => return Err(e.into()),
            Err(e) => {
                warn!(endpoint = %name, ticket = %id, "{e}");
                return Ok(());
            }
        };
        if let Some(u) = super::time_at(&ticket, &tp.updated_at, tf) {
            st.since = st.since.max(u);
        }
        let entries = self.ep.entries(id, &ticket, Some(from)).await?;
        if let Some(updated) = listed_at {
            let opening = reader.opening(&entries);
            st.edge.insert(
                id.to_string(),
                Edge {
                    updated,
                    read_at,
                    opening,
                },
            );
        }
        let mut evs = reader.events(&ticket, &entries, from);
        for ev in &mut evs {
            self.attach_files(&ticket, &entries, ev).await?;
        }
        if !evs
            .iter()
            .any(|e| matches!(e.kind, EventKind::TicketCreated { .. }))
        {
            self.ingest
                .learn(name, id, reader.ticket_data(&ticket, &entries))
                .map_err(round_error)?;
        }
        st.events.extend(evs);
        let snapshot = self.ep.profile.journal.status_field.is_none()
            && self.ep.profile.journal.status_value.is_none();
        if snapshot {
            let last = st.statuses.get(id).map(String::as_str);
            st.events
                .extend(reader.status_snapshot(&ticket, last, from));
            if let Some(now) = text_at(&ticket, &tp.status) {
                st.statuses.insert(id.to_string(), now);
            }
        }
        Ok(())
    }

    /// Downloads the files of a comment (or a new ticket) of the
    /// product's own users into the file store and lists them on its event.
    /// Not for deskbridge's own writes (their files came from the file
    /// store), nor for internal notes (they never leave, so their files
    /// are not even copied). A file that cannot cross is named in the text.
    async fn attach_files(
        &self,
        ticket: &Value,
        entries: &[Value],
        ev: &mut Event,
    ) -> Result<(), RoundError> {
        let Some(read) = self.ep.profile.files.as_ref().and_then(|f| f.read.as_ref()) else {
            return Ok(());
        };
        let own = ev
            .author
            .as_ref()
            .is_some_and(|a| a.name == self.service_account);
        // Read again in a later round's look-back: ingest drops the event
        // by its id, so its files are not fetched again.
        let taken = || {
            self.store
                .was_seen(&self.ep.name, &format!("event:{}", ev.id))
                .map_err(round_error)
        };
        if own || taken()? {
            return Ok(());
        }
        let jp = &self.ep.profile.journal;
        let source = ev.source_id.clone().unwrap_or_default();
        let (refs, files, text) = match &mut ev.kind {
            EventKind::Comment { comment } if comment.audience != Audience::Internal => {
                let Some(jid) = source.strip_prefix("journal-") else {
                    return Ok(());
                };
                let Some(entry) = entries
                    .iter()
                    .find(|e| text_at(e, &jp.id).as_deref() == Some(jid))
                else {
                    return Ok(());
                };
                (
                    super::files::entry_files(read, ticket, entry),
                    &mut comment.attachments,
                    &mut comment.body,
                )
            }
            EventKind::TicketCreated { ticket_data } => (
                super::files::creation_files(read, jp, ticket, entries),
                &mut ticket_data.attachments,
                &mut ticket_data.description,
            ),
            _ => return Ok(()),
        };
        let mut not_sent = Vec::new();
        for f in refs {
            match super::files::download(&self.ep, read, &f, &self.blobs).await {
                Ok(Ok(blob)) => files.push(crate::event::Attachment {
                    name: f.name,
                    content_type: f.content_type,
                    sha256: Some(blob.sha256),
                    size: Some(blob.size),
                    content_base64: None,
                }),
                Ok(Err(why)) => not_sent.push(format!("{} ({why})", f.name)),
                Err(e @ crate::connector::sink::SinkError::Transient { .. }) => {
                    return Err(e.into())
                }
                Err(crate::connector::sink::SinkError::Permanent { message }) => {
                    warn!(endpoint = %self.ep.name, "{message}");
                    not_sent.push(format!("{} (cannot be read: {message})", f.name));
                }
            }
        }
        super::files::name_not_sent(text, &not_sent);
        Ok(())
    }

    async fn commit(&self, events: Vec<Event>, cursor: &Cursor) -> Result<(), RoundError> {
        let bytes = serde_json::to_vec(cursor).map_err(round_error)?;
        self.ingest
            .accept_polled(&self.ep.name, None, events, Some(&bytes))
            .await
            .map_err(round_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod fixtures {
    //! What the Redmine and RT profile tests below both need.
    use super::*;
    use crate::connector::rest::template::Vars;

    pub fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// `p` read as the endpoint "vendor" whose service account "deskbridge"
    /// has the product's user id `my_id`.
    pub fn read(
        p: &Profile,
        my_id: &str,
        ticket: &Value,
        entries: &[Value],
        from: &str,
    ) -> Vec<Event> {
        let me = Identity {
            user_id: my_id.into(),
            login: "deskbridge".into(),
            kind: None,
        };
        let r = Reader {
            endpoint: "vendor",
            profile: p,
            statuses: &p.statuses,
            places: &super::super::fields::Places::of_profile(p),
            me: &me,
            service_account: "deskbridge",
        };
        r.events(ticket, entries, t(from))
    }

    pub fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Every product status comes back to the canonical status it came from,
    /// or to one mapped to the same product status.
    pub fn assert_outbound_round_trips(p: &Profile) {
        for (canonical, value) in &p.statuses.outbound {
            let back = p.statuses.inbound[value];
            assert_eq!(p.statuses.outbound[&back], *value, "{canonical}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::event::find_marker;
    use crate::event::Status;

    /// `GET /issues/7.json?include=journals` as Redmine 5.0 answers it.
    const ISSUE: &str = r#"{"issue":{"id":7,"project":{"id":1,"name":"Deskbridge"},
      "tracker":{"id":3,"name":"Support"},"status":{"id":3,"name":"Resolved","is_closed":false},
      "priority":{"id":2,"name":"Normal"},"author":{"id":5,"name":"Desk Bridge"},
      "subject":"Scale shows wrong weight","description":"Calibration lost\r\n\r\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e5f]",
      "start_date":"2024-05-01","due_date":null,"done_ratio":0,"is_private":false,
      "estimated_hours":null,"total_estimated_hours":null,
      "created_on":"2024-05-01T10:00:00Z","updated_on":"2024-05-01T10:05:00Z","closed_on":null,
      "journals":[
        {"id":11,"user":{"id":5,"name":"Desk Bridge"},"notes":"Dana (Service Co) wrote:\n\nUrgent\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e60]","created_on":"2024-05-01T10:01:00Z","private_notes":false,"details":[]},
        {"id":12,"user":{"id":1,"name":"Redmine Admin"},"notes":"We ordered the part.","created_on":"2024-05-01T10:02:00Z","private_notes":false,"details":[]},
        {"id":13,"user":{"id":1,"name":"Redmine Admin"},"notes":"cost 40 EUR","created_on":"2024-05-01T10:03:00Z","private_notes":true,"details":[]},
        {"id":14,"user":{"id":1,"name":"Redmine Admin"},"notes":"","created_on":"2024-05-01T10:04:00Z","private_notes":false,
         "details":[{"property":"attr","name":"status_id","old_value":"1","new_value":"3"},
                    {"property":"attr","name":"done_ratio","old_value":"0","new_value":"100"}]},
        {"id":15,"user":{"id":1,"name":"Redmine Admin"},"notes":"> Dana wrote: [deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e60]\n\nAgreed.","created_on":"2024-05-01T10:05:00Z","private_notes":false,"details":[]}
      ]}}"#;

    fn profile() -> Profile {
        Profile::load(Some("redmine"), None).unwrap()
    }

    fn events(from: &str) -> Vec<Event> {
        let v: Value = serde_json::from_str(ISSUE).unwrap();
        let issue = v.pointer("/issue").unwrap();
        let entries = issue["journals"].as_array().unwrap().clone();
        read(&profile(), "5", issue, &entries, from)
    }

    #[test]
    fn journals_become_events_with_audience_status_and_own_writes_named() {
        let evs = events("2024-05-01T09:00:00Z");
        let kinds: Vec<&str> = evs.iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            kinds,
            [
                "ticket_created",
                "comment",
                "comment",
                "comment",
                "status_changed",
                "comment"
            ]
        );
        // deskbridge's own writes carry the service account's name
        assert_eq!(evs[0].author.as_ref().unwrap().name, "deskbridge");
        assert_eq!(evs[1].author.as_ref().unwrap().name, "deskbridge");
        assert_eq!(evs[0].source_id.as_deref(), Some("ticket-7"));
        let EventKind::TicketCreated { ticket_data } = &evs[0].kind else {
            panic!()
        };
        assert_eq!(ticket_data.status, Some(Status::Resolved));
        assert_eq!(ticket_data.priority.as_deref(), Some("normal"));
        let comment = |e: &Event| match &e.kind {
            EventKind::Comment { comment } => comment.clone(),
            _ => panic!("not a comment"),
        };
        assert_eq!(comment(&evs[2]).audience, Audience::Public);
        assert_eq!(comment(&evs[2]).body, "We ordered the part.");
        assert_eq!(evs[2].author.as_ref().unwrap().name, "Redmine Admin");
        assert_eq!(evs[2].source_id.as_deref(), Some("journal-12"));
        assert_eq!(comment(&evs[3]).audience, Audience::Internal);
        assert!(matches!(
            evs[4].kind,
            EventKind::StatusChanged {
                status: Status::Resolved
            }
        ));
        // the marker deskbridge wrote stays on its own note; a quote of it
        // in someone else's loses it (or ingest would take it for an echo)
        assert!(find_marker(&comment(&evs[1]).body).is_some());
        assert_eq!(find_marker(&comment(&evs[5]).body), None);
        assert!(comment(&evs[5]).body.contains("Agreed."));
    }

    #[test]
    fn entries_before_the_window_are_not_taken_again_and_ids_are_stable() {
        let all = events("2024-05-01T09:00:00Z");
        let later = events("2024-05-01T10:03:00Z");
        assert_eq!(later.len(), 3, "journals 13, 14, 15");
        let ids: Vec<uuid::Uuid> = all.iter().map(|e| e.id).collect();
        for e in &later {
            assert!(ids.contains(&e.id), "the same entry keeps its event id");
        }
        assert_eq!(all[2].id.get_version_num(), 7);
        // time-ordered like every event id
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
    }

    #[test]
    fn without_status_history_the_ticket_status_is_compared_with_the_last_seen() {
        // Redmine's profile read as if its journals had no status changes.
        let mut p = profile();
        p.journal.status_field = None;
        let me = Identity {
            user_id: "5".into(),
            login: "deskbridge".into(),
            kind: None,
        };
        let r = Reader {
            endpoint: "vendor",
            profile: &p,
            statuses: &p.statuses,
            places: &super::super::fields::Places::of_profile(&p),
            me: &me,
            service_account: "deskbridge",
        };
        let v: Value = serde_json::from_str(ISSUE).unwrap();
        let issue = v.pointer("/issue").unwrap();
        let entries = issue["journals"].as_array().unwrap().clone();
        let evs = r.events(issue, &entries, t("2024-05-01T09:00:00Z"));
        assert!(!evs.iter().any(|e| e.kind.name() == "status_changed"));
        // created in the window and never seen: its creation tells
        assert!(r
            .status_snapshot(issue, None, t("2024-05-01T09:00:00Z"))
            .is_none());
        // unchanged
        let later = t("2024-05-01T10:30:00Z");
        assert!(r.status_snapshot(issue, Some("3"), later).is_none());
        // changed since last seen, or never seen on an older ticket
        for last in [Some("2"), None] {
            let ev = r.status_snapshot(issue, last, later).unwrap();
            assert!(matches!(
                ev.kind,
                EventKind::StatusChanged {
                    status: Status::Resolved
                }
            ));
            assert_eq!(ev.occurred_at, t("2024-05-01T10:05:00Z"));
            assert_eq!(ev.author, None);
        }
        // the same change read again is the same event
        assert_eq!(
            r.status_snapshot(issue, Some("2"), later).unwrap().id,
            r.status_snapshot(issue, Some("1"), later).unwrap().id
        );
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

    #[test]
    fn statuses_map_both_ways() {
        let p = profile();
        assert_eq!(p.statuses.inbound.get("3"), Some(&Status::Resolved));
        assert_eq!(p.statuses.inbound.get("4"), Some(&Status::Waiting));
        assert_eq!(
            p.statuses
                .outbound
                .get(&Status::Cancelled)
                .map(String::as_str),
            Some("6")
        );
        assert_outbound_round_trips(&p);
    }

    #[test]
    fn create_and_status_requests_render_as_redmine_expects() {
        use super::super::template::{render_json, render_path};
        let p = profile();
        let vars = vars(&[
            ("project", "deskbridge"),
            ("tracker_id", "3"),
            ("subject", "Printer \"on fire\""),
            ("description", "It burns.\n\n[deskbridge:x]"),
            ("priority", ""),
            ("ticket", "7"),
            ("status", "99"),
        ]);
        assert_eq!(
            render_json(p.create_ticket.body.as_ref().unwrap(), &vars).unwrap(),
            serde_json::json!({"issue": {"project_id": "deskbridge", "tracker_id": "3",
                "subject": "Printer \"on fire\"", "description": "It burns.\n\n[deskbridge:x]"}})
        );
        assert_eq!(
            render_json(p.add_internal_note.body.as_ref().unwrap(), &{
                let mut v = vars.clone();
                v.insert("text".into(), "n".into());
                v
            })
            .unwrap(),
            serde_json::json!({"issue": {"notes": "n", "private_notes": true}})
        );
        assert_eq!(
            render_json(p.set_status.body.as_ref().unwrap(), &vars).unwrap(),
            serde_json::json!({"issue": {"status_id": "99"}})
        );
        assert_eq!(
            render_path(&p.set_status.path, &vars).unwrap(),
            "/issues/7.json"
        );
    }
}

#[cfg(test)]
mod rt_tests {
    //! The Request Tracker 5 profile on answers shaped as RT 5.0.3's REST2
    //! gives them (recorded from a live RT, ids and times kept).
    use super::super::content_text;
    use super::super::template::{render_json, render_path};
    use super::fixtures::*;
    use super::*;
    use crate::event::find_marker;
    use crate::event::Status;

    /// `GET /ticket/12`, trimmed of `_hyperlinks` and empty role lists.
    const TICKET: &str = r#"{"Cc":[],"Started":"1970-01-01T00:00:00Z","AdminCc":[],
      "InitialPriority":"0","Resolved":"2024-05-01T10:05:00Z",
      "Creator":{"type":"user","id":"deskbridge","_url":"http://127.0.0.1:8081/REST/2.0/user/deskbridge"},
      "Due":"1970-01-01T00:00:00Z","LastUpdated":"2024-05-01T10:05:00Z","Starts":"1970-01-01T00:00:00Z",
      "Priority":"0","TimeWorked":"0","TimeLeft":"0",
      "LastUpdatedBy":{"type":"user","id":"root","_url":"http://127.0.0.1:8081/REST/2.0/user/root"},
      "Created":"2024-05-01T10:00:00Z","Type":"ticket","FinalPriority":"0",
      "Queue":{"type":"queue","id":"3","_url":"http://127.0.0.1:8081/REST/2.0/queue/3"},
      "Status":"resolved","id":12,
      "EffectiveId":{"_url":"http://127.0.0.1:8081/REST/2.0/ticket/12","id":"12","type":"ticket"},
      "CustomFields":[],"Requestor":[],
      "Owner":{"type":"user","id":"Nobody","_url":"http://127.0.0.1:8081/REST/2.0/user/Nobody"},
      "TimeEstimated":"0","Subject":"Scale shows wrong weight"}"#;

    /// `GET /ticket/12/history?fields=Type,Creator,Created,Field,OldValue,NewValue&page=1&per_page=100`.
    const HISTORY: &str = r#"{"per_page":100,"count":8,"page":1,"pages":1,"total":8,"items":[
      {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/49","id":"49","Type":"Create","type":"transaction","Created":"2024-05-01T10:00:00Z","Field":"","OldValue":"","NewValue":"",
       "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/deskbridge","id":"deskbridge","type":"user"}},
      {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/50","id":"50","Type":"Correspond","type":"transaction","Created":"2024-05-01T10:01:00Z","Field":"","OldValue":"","NewValue":"",
       "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/deskbridge","id":"deskbridge","type":"user"}},
      {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/51","id":"51","Type":"Status","type":"transaction","Created":"2024-05-01T10:01:00Z","Field":"Status","OldValue":"new","NewValue":"open",
       "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/RT_System","id":"RT_System","type":"user"}},
      {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/52","id":"52","Type":"Correspond","type":"transaction","Created":"2024-05-01T10:02:00Z","Field":"","OldValue":"","NewValue":"",
       "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}},
      {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/53","id":"53","Type":"Comment","type":"transaction","Created":"2024-05-01T10:03:00Z","Field":"","OldValue":"","NewValue":"",
       "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}},
      {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/54","id":"54","Type":"AddWatcher","type":"transaction","Created":"2024-05-01T10:03:30Z","Field":"AdminCc","OldValue":"","NewValue":"14",
       "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}},
      {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/55","id":"55","Type":"Status","type":"transaction","Created":"2024-05-01T10:04:00Z","Field":"Status","OldValue":"open","NewValue":"resolved",
       "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}},
      {"_url":"http://127.0.0.1:8081/REST/2.0/transaction/56","id":"56","Type":"Correspond","type":"transaction","Created":"2024-05-01T10:05:00Z","Field":"","OldValue":"","NewValue":"",
       "Creator":{"_url":"http://127.0.0.1:8081/REST/2.0/user/root","id":"root","type":"user"}}
    ]}"#;

    /// `GET /transaction/52/attachments?fields=ContentType,Content&per_page=100`
    /// for a correspond that came in by mail as text and HTML.
    const ATTACHMENTS: &str = r#"{"total":3,"items":[
      {"id":"20","_url":"http://127.0.0.1:8081/REST/2.0/attachment/20","type":"attachment","ContentType":"multipart/alternative","Content":""},
      {"id":"21","_url":"http://127.0.0.1:8081/REST/2.0/attachment/21","type":"attachment","ContentType":"text/html","Content":"<p>We ordered the part.</p>"},
      {"id":"22","_url":"http://127.0.0.1:8081/REST/2.0/attachment/22","type":"attachment","ContentType":"text/plain","Content":"We ordered the part."}
    ],"page":1,"count":3,"per_page":100,"pages":1}"#;

    fn profile() -> Profile {
        Profile::load(Some("rt"), None).unwrap()
    }

    /// The history as `RestEndpoint::entries` gives it: the texts read
    /// from each transaction's attachments put at `journal.text`.
    fn entries(p: &Profile) -> Vec<Value> {
        let v: Value = serde_json::from_str(HISTORY).unwrap();
        let mut items = v
            .pointer(&p.journal.list)
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        let c = p.entry_content.as_ref().unwrap();
        let texts = [
            ("49", "Calibration lost\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e5f]"),
            ("50", "Dana (Service Co) wrote:\n\nUrgent\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e60]"),
            ("52", &content_text(c, &serde_json::from_str(ATTACHMENTS).unwrap(), None).unwrap()),
            ("53", "cost 40 EUR"),
            ("56", "> Dana wrote: [deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e60]\n\nAgreed."),
        ];
        for item in &mut items {
            let id = item["id"].as_str().unwrap().to_string();
            if let Some((_, text)) = texts.iter().find(|(i, _)| *i == id) {
                super::super::set_at(item, &p.journal.text, Value::String(text.to_string()));
            }
        }
        items
    }

    fn events(from: &str) -> Vec<Event> {
        let p = profile();
        let ticket: Value = serde_json::from_str(TICKET).unwrap();
        read(&p, "deskbridge", &ticket, &entries(&p), from)
    }

    #[test]
    fn transactions_become_events_correspond_public_comment_internal() {
        let evs = events("2024-05-01T09:00:00Z");
        let kinds: Vec<&str> = evs.iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            kinds,
            [
                "ticket_created",
                "comment",
                "status_changed",
                "comment",
                "comment",
                "status_changed",
                "comment"
            ]
        );
        let EventKind::TicketCreated { ticket_data } = &evs[0].kind else {
            panic!()
        };
        // the description is the Create transaction's text, not a comment
        assert!(ticket_data.description.starts_with("Calibration lost"));
        assert_eq!(ticket_data.status, Some(Status::Resolved));
        assert_eq!(ticket_data.subject, "Scale shows wrong weight");
        assert_eq!(evs[0].source_id.as_deref(), Some("ticket-12"));
        // deskbridge's own writes carry the service account's name
        assert_eq!(evs[0].author.as_ref().unwrap().name, "deskbridge");
        assert_eq!(evs[1].author.as_ref().unwrap().name, "deskbridge");
        let comment = |e: &Event| match &e.kind {
            EventKind::Comment { comment } => comment.clone(),
            _ => panic!("not a comment"),
        };
        // RT opening the ticket on the first correspond is RT_System's change
        assert!(matches!(
            evs[2].kind,
            EventKind::StatusChanged {
                status: Status::InProgress
            }
        ));
        assert_eq!(evs[2].author.as_ref().unwrap().name, "RT_System");
        assert_eq!(comment(&evs[3]).audience, Audience::Public);
        assert_eq!(
            comment(&evs[3]).body,
            "We ordered the part.",
            "text/plain part"
        );
        assert_eq!(evs[3].author.as_ref().unwrap().name, "root");
        assert_eq!(evs[3].source_id.as_deref(), Some("journal-52"));
        assert_eq!(comment(&evs[4]).audience, Audience::Internal);
        assert!(matches!(
            evs[5].kind,
            EventKind::StatusChanged {
                status: Status::Resolved
            }
        ));
        assert!(find_marker(&comment(&evs[1]).body).is_some());
        assert_eq!(find_marker(&comment(&evs[6]).body), None);
        assert!(comment(&evs[6]).body.contains("Agreed."));
        // the window: only transactions at or after it
        let later = events("2024-05-01T10:03:00Z");
        assert_eq!(later.len(), 3, "53 (comment), 55 (status), 56 (correspond)");
    }

    #[test]
    fn statuses_map_both_ways() {
        let p = profile();
        for (rt, canonical) in [
            ("new", Status::New),
            ("open", Status::InProgress),
            ("stalled", Status::Waiting),
            ("resolved", Status::Resolved),
            ("rejected", Status::Cancelled),
            ("deleted", Status::Cancelled),
        ] {
            assert_eq!(p.statuses.inbound.get(rt), Some(&canonical), "{rt}");
        }
        assert_outbound_round_trips(&p);
    }

    #[test]
    fn requests_render_as_rt_expects() {
        let p = profile();
        let vars = vars(&[
            ("project", "deskbridge"),
            ("subject", "it's \"on fire\""),
            ("description", "It burns.\n\n[deskbridge:x]"),
            ("priority", ""),
            ("ticket", "12"),
            ("status", "stalled"),
            ("marker", "[deskbridge:x]"),
            ("since", "2024-05-01T10:00:00+00:00"),
            ("page", "2"),
            ("limit", "100"),
            ("offset", "100"),
            ("entry", "52"),
        ]);
        assert_eq!(
            render_json(p.create_ticket.body.as_ref().unwrap(), &vars).unwrap(),
            serde_json::json!({"Queue": "deskbridge", "Subject": "it's \"on fire\"",
                "Content": "It burns.\n\n[deskbridge:x]", "ContentType": "text/plain"})
        );
        assert_eq!(
            render_path(&p.add_comment.path, &vars).unwrap(),
            "/ticket/12/correspond"
        );
        assert_eq!(
            render_path(&p.add_internal_note.path, &vars).unwrap(),
            "/ticket/12/comment"
        );
        assert_eq!(
            render_json(p.set_status.body.as_ref().unwrap(), &vars).unwrap(),
            serde_json::json!({"Status": "stalled"})
        );
        let query = |path: String| -> String {
            let url = url::Url::parse(&format!("http://x{path}")).unwrap();
            url.query_pairs()
                .find(|(k, _)| k == "query")
                .map(|(_, v)| v.to_string())
                .unwrap()
        };
        assert_eq!(
            query(render_path(&p.find_ticket.path, &vars).unwrap()),
            r#"Queue='deskbridge' AND Creator='__CurrentUser__' AND Subject='it\'s "on fire"'"#
        );
        let list = render_path(&p.list_changes.path, &vars).unwrap();
        assert_eq!(
            query(list.clone()),
            "Queue='deskbridge' AND LastUpdated >= '2024-05-01T10:00:00+00:00'"
        );
        assert!(list.ends_with("&page=2&per_page=100"), "{list}");
        // "Z" is misread by TicketSQL: the offset is written out
        let since = t("2024-05-01T10:00:00Z")
            .format(p.list_changes.since_format.as_deref().unwrap())
            .to_string();
        assert_eq!(since, "2024-05-01T10:00:00+00:00");
        assert_eq!(
            render_path(&p.history.as_ref().unwrap().path, &vars).unwrap(),
            "/ticket/12/history?fields=Type,Creator,Created,Field,OldValue,NewValue&page=2&per_page=100"
        );
        assert_eq!(
            render_path(&p.entry_content.as_ref().unwrap().path, &vars).unwrap(),
            "/transaction/52/attachments?fields=ContentType,Filename,ContentLength&per_page=100"
        );
    }

    #[test]
    fn entry_text_is_the_first_plain_part_and_set_at_makes_the_path() {
        let p = profile();
        let c = p.entry_content.as_ref().unwrap();
        let a: Value = serde_json::from_str(ATTACHMENTS).unwrap();
        assert_eq!(
            content_text(c, &a, None).as_deref(),
            Some("We ordered the part.")
        );
        let html_only =
            serde_json::json!({"items": [{"ContentType": "text/html", "Content": "<p>x</p>"}]});
        assert_eq!(content_text(c, &html_only, None), None);
        // a text file attached is not the comment's text
        let file_first = serde_json::json!({"items": [
            {"ContentType": "text/plain", "Filename": "readings.txt", "Content": "12.5 kg"},
            {"ContentType": "text/plain", "Filename": "", "Content": "Readings attached"}]});
        assert_eq!(
            content_text(c, &file_first, Some("/Filename")).as_deref(),
            Some("Readings attached")
        );
        let charset = serde_json::json!({"items": [{"ContentType": "text/plain; charset=utf-8", "Content": "x"}]});
        assert_eq!(content_text(c, &charset, None).as_deref(), Some("x"));
        let mut v = serde_json::json!({"id": "1"});
        super::super::set_at(&mut v, "/a/b", Value::String("t".into()));
        assert_eq!(v, serde_json::json!({"id": "1", "a": {"b": "t"}}));
    }
}

#[cfg(test)]
mod djhd_tests {
    //! The django-helpdesk 2.6 profile on a ticket as 2.6.1's API answers
    //! it (recorded from a live instance; the service account is user 2).
    use super::fixtures::*;
    use super::*;
    use crate::event::Status;

    /// `GET /api/tickets/1/`: opened by deskbridge, a public and an
    /// internal follow-up by the superuser (1), then resolved by it.
    const TICKET: &str = r#"{"id":1,"queue":1,"title":"t1","description":"d1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e5f]",
      "resolution":null,"submitter_email":"deskbridge@example.invalid","assigned_to":null,"status":3,
      "on_hold":false,"priority":3,"due_date":null,"merged_to":null,"followup_set":[
      {"id":1,"ticket":1,"user":2,"title":"Ticket Opened","comment":"d1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e5f]","public":true,"new_status":null,"time_spent":null,"followupattachment_set":[],"date":"2024-05-01T10:00:00.831393Z","message_id":null,"email_recipients":[]},
      {"id":2,"ticket":1,"user":1,"title":"t1","comment":"on site Friday","public":true,"new_status":null,"time_spent":null,"followupattachment_set":[],"date":"2024-05-01T10:01:00.326403Z","message_id":null,"email_recipients":[]},
      {"id":3,"ticket":1,"user":1,"title":"t1","comment":"cost 40 EUR","public":false,"new_status":null,"time_spent":null,"followupattachment_set":[],"date":"2024-05-01T10:02:00Z","message_id":null,"email_recipients":[]},
      {"id":4,"ticket":1,"user":1,"title":"t1 and Resolved","comment":"","public":false,"new_status":3,"time_spent":null,"followupattachment_set":[],"date":"2024-05-01T10:03:00.5Z","message_id":null,"email_recipients":[]}]}"#;

    fn profile() -> Profile {
        Profile::load(Some("django-helpdesk"), None).unwrap()
    }

    #[test]
    fn follow_ups_are_comments_by_their_public_flag_and_the_opening_is_no_comment() {
        let v: Value = serde_json::from_str(TICKET).unwrap();
        let entries = v["followup_set"].as_array().unwrap().clone();
        let evs = read(&profile(), "2", &v, &entries, "2024-05-01T09:00:00Z");
        let kinds: Vec<&str> = evs.iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            kinds,
            ["ticket_created", "comment", "comment", "status_changed"]
        );
        let EventKind::TicketCreated { ticket_data } = &evs[0].kind else {
            panic!()
        };
        assert!(ticket_data.description.starts_with("d1"));
        assert_eq!(ticket_data.status, Some(Status::Resolved));
        assert_eq!(evs[0].occurred_at, t("2024-05-01T10:00:00.831393Z"));
        let audience = |e: &Event| match &e.kind {
            EventKind::Comment { comment } => comment.audience,
            _ => panic!("not a comment"),
        };
        assert_eq!(audience(&evs[1]), Audience::Public);
        assert_eq!(audience(&evs[2]), Audience::Internal);
        // the follow-up with new_status is the status change
        let EventKind::StatusChanged { status } = &evs[3].kind else {
            panic!()
        };
        assert_eq!(*status, Status::Resolved);
        assert_eq!(evs[3].occurred_at, t("2024-05-01T10:03:00.5Z"));
        // the window starts after the opening: only what is newer
        let later = read(&profile(), "2", &v, &entries, "2024-05-01T10:01:30Z");
        assert_eq!(later.len(), 2);
    }

    /// The follow-ups as `GET /api/followups/?page=last` lists them, read
    /// without their ticket: the same events as from the ticket, by the
    /// same ids; the opening is no comment where it is known.
    #[test]
    fn listed_follow_ups_read_without_the_ticket_give_the_same_events() {
        let p = profile();
        let lp = &p.list_changes;
        assert_eq!(lp.entries.as_deref(), Some("/ticket"));
        let fe = lp.from_end.as_ref().unwrap();
        assert_eq!((fe.last.as_str(), fe.count.as_str()), ("last", "/count"));
        let v: Value = serde_json::from_str(TICKET).unwrap();
        let listed = v["followup_set"].as_array().unwrap().clone();
        let updated = lp.updated_at.as_deref().unwrap();
        assert_eq!(
            super::super::time_at(&listed[3], updated, None),
            Some(t("2024-05-01T10:03:00.5Z"))
        );
        assert!(listed_before(
            &listed[0],
            updated,
            None,
            t("2024-05-01T10:00:01Z")
        ));
        assert_eq!(text_at(&listed[0], "/ticket").as_deref(), Some("1"));
        let me = Identity {
            user_id: "2".into(),
            login: "deskbridge".into(),
            kind: None,
        };
        let r = Reader {
            endpoint: "vendor",
            profile: &p,
            statuses: &p.statuses,
            places: &super::super::fields::Places::of_profile(&p),
            me: &me,
            service_account: "deskbridge",
        };
        let from = t("2024-05-01T09:00:00Z");
        let whole = r.events(&v, &listed, from);
        let alone = r.entry_events("1", &Value::Null, &listed, from, Some("1"));
        let ids = |evs: &[Event]| -> Vec<uuid::Uuid> {
            evs.iter()
                .filter(|e| !matches!(e.kind, EventKind::TicketCreated { .. }))
                .map(|e| e.id)
                .collect()
        };
        assert_eq!(ids(&whole), ids(&alone));
        assert_eq!(alone.len(), 3);
        // Without the opening known, it would be a comment: deskbridge's own.
        let unknown = r.entry_events("1", &Value::Null, &listed, from, None);
        assert_eq!(unknown.len(), 4);
        assert_eq!(unknown[0].author.as_ref().unwrap().name, "deskbridge");
        // An old ticket read for the first time is learnt as it stands.
        let data = r.ticket_data(&v, &listed);
        assert_eq!(data.subject, "t1");
        assert_eq!(data.status, Some(Status::Resolved));
    }

    #[test]
    fn a_full_page_without_a_next_link_is_the_last() {
        let mut lp = profile().list_changes;
        lp.next = Some("/next".into());
        lp.page_size = 2;
        let page = |next: Value| serde_json::json!({"count": 2, "next": next, "results": [{}, {}]});
        assert!(last_page(&lp, &page(Value::Null), 2));
        assert!(!last_page(
            &lp,
            &page("http://h/api/tickets/?page=2".into()),
            2
        ));
        assert!(last_page(
            &lp,
            &page("http://h/api/tickets/?page=2".into()),
            1
        ));
        lp.next = None;
        assert!(!last_page(&lp, &page(Value::Null), 2));
    }

    #[test]
    fn writes_send_numbers_where_django_helpdesk_wants_them() {
        let p = profile();
        let vars = vars(&[
            ("ticket", "7"),
            ("text", "hi"),
            ("status", "4"),
            ("project", "1"),
            ("user_id", "2"),
            ("submitter_email", "d@example.invalid"),
            ("subject", "s"),
            ("description", "d"),
        ]);
        let body = super::super::template::render_json(p.set_status.body.as_ref().unwrap(), &vars)
            .unwrap();
        assert_eq!(body["ticket"], 7);
        assert_eq!(body["new_status"], 4);
        assert_eq!(body["public"], false);
        let body = super::super::template::render_json(p.add_comment.body.as_ref().unwrap(), &vars)
            .unwrap();
        assert_eq!(body["public"], true);
        let body =
            super::super::template::render_json(p.create_ticket.body.as_ref().unwrap(), &vars)
                .unwrap();
        assert_eq!(body["queue"], 1);
        assert_outbound_round_trips(&p);
    }
}
