//! One polling round: list what changed since the cursor, read the
//! tickets with news (or take listed entries of known ones), and hand the
//! events to ingest together with the new cursor (one transaction).

use super::cursor::{Cursor, Edge};
use super::list::{list_forward, list_from_end, listed_before, SKEW};
use super::poller::{round_error, Poller, RoundError};
use super::reader::Reader;
use crate::connector::rest::identity::Identity;
use crate::connector::rest::json::{parse_time, text_at, time_at};
use crate::event::Event;
use chrono::{DateTime, SubsecRound as _, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use tracing::{debug, warn};

/// What one round did (`Poller::round`).
#[derive(Default)]
pub(super) struct Round {
    /// Events taken.
    pub(super) taken: usize,
    /// More changes wait: the next round runs at once.
    pub(super) more: bool,
    /// Tickets read.
    pub(super) reads: usize,
    /// List requests.
    pub(super) pages: u64,
}

/// What a round builds up while it takes the listed tickets.
pub(super) struct RoundState {
    pub(super) since: DateTime<Utc>,
    pub(super) statuses: BTreeMap<String, String>,
    pub(super) edge: BTreeMap<String, Edge>,
    pub(super) events: Vec<Event>,
    pub(super) reads: usize,
}

impl Poller {
    /// One round: the events taken, whether more changes wait, and what
    /// it cost.
    pub(super) async fn round(&self, me: &Identity) -> Result<Round, RoundError> {
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
            None => list_forward(&self.ep, cursor.since, from).await?,
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
        // The look-back itself, not `since - from`: near the floor the
        // window is clamped, and the next round's is wider than this one's.
        let back = cursor.lookback(lp.lookback_secs);
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
                    if let Some(u) = time_at(e, updated_ptr, tf) {
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
                let settled = parse_time(u, tf)
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
        // Only what the next round's look-back can list again: its window
        // as the next round computes it.
        let next_from = Cursor {
            since: st.since,
            ..cursor.clone()
        }
        .window(lp.lookback_secs);
        st.edge
            .retain(|_, e| parse_time(&e.updated, tf).is_none_or(|t| t >= next_from));
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

    pub(super) async fn commit(
        &self,
        events: Vec<Event>,
        cursor: &Cursor,
    ) -> Result<(), RoundError> {
        let bytes = serde_json::to_vec(cursor).map_err(round_error)?;
        self.ingest
            .accept_polled(&self.ep.name, None, events, Some(&bytes))
            .await
            .map_err(round_error)?;
        Ok(())
    }
}
