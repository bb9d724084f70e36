//! A destination's waiting messages as a whole, queued or parked: how far
//! behind it is, destinations no longer configured, and giving all of a
//! destination's messages up.

use super::codec::{corrupt, from_slice, to_vec};
use super::db::Store;
use super::error::{tx_err, StoreError};
use super::keys::{applied_key_of, dest_prefix};
use super::records::{Applied, Envelope};
use super::scan::dests_of;
use chrono::{DateTime, Utc};
use sled::Transactional;
use std::collections::BTreeMap;

impl Store {
    /// When the oldest message queued or parked for `dest` was accepted
    /// (its event's own time for envelopes stored before that was kept):
    /// how far behind a destination is. Reads one record per tree, the
    /// first in queue order.
    pub fn oldest_waiting(&self, dest: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut oldest: Option<DateTime<Utc>> = None;
        for (tree, name) in [(&self.outbox, "outbox"), (&self.held, "held")] {
            if let Some(kv) = tree.scan_prefix(dest_prefix(dest)).next() {
                let (_, v) = kv?;
                // A figure for the status: an unreadable record (its
                // delivery names it) must not take the whole status down.
                let env: Envelope = match from_slice(name, &v) {
                    Ok(env) => env,
                    Err(e) => {
                        tracing::warn!(dest, error = %e, "oldest waiting message: unreadable");
                        continue;
                    }
                };
                let at = env.accepted_at.unwrap_or(env.event.occurred_at);
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
        }
        Ok(oldest)
    }

    /// Destinations with messages queued or parked that `configured` does
    /// not know (an endpoint removed from the configuration): their
    /// messages wait, undelivered, until it is back or they are discarded.
    pub fn unconfigured(
        &self,
        configured: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, (usize, usize)>, StoreError> {
        let mut out = BTreeMap::new();
        for dest in dests_of(&self.outbox)?
            .into_iter()
            .chain(dests_of(&self.held)?)
        {
            if !configured(&dest) && !out.contains_key(&dest) {
                let counts = (self.queue_len(&dest), self.held_len(&dest));
                out.insert(dest, counts);
            }
        }
        Ok(out)
    }

    /// Gives up every message queued or parked for `dest`, as `discard`
    /// does a dead letter: each is recorded as done with no effect, so a
    /// copy still at the broker is absorbed should `dest` come back.
    /// Returns how many messages there were. A parked copy of a dead
    /// letter (a crash can leave one) only goes: the letter itself stays,
    /// to be replayed or discarded on its own.
    /// Synchronous and as long as the backlog: call it off the runtime.
    pub fn discard_queued(&self, dest: &str) -> Result<usize, StoreError> {
        // Batches keep each transaction (and its memory) bounded.
        const BATCH: usize = 512;
        let mut total = 0;
        loop {
            let mut keys: Vec<sled::IVec> = Vec::new();
            for tree in [&self.outbox, &self.held] {
                for kv in tree.scan_prefix(dest_prefix(dest)).take(BATCH) {
                    let (k, _) = kv?;
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            if keys.is_empty() {
                return Ok(total);
            }
            total += self.gated(|| {
                (&self.outbox, &self.held, &self.applied, &self.dead)
                    .transaction(|(outbox, held, applied, dead)| {
                        let mut n = 0;
                        for k in &keys {
                            let from_outbox = outbox.remove(k)?;
                            let from_held = held.remove(k)?;
                            let env: Envelope = match (from_outbox, from_held) {
                                (Some(b), _) => corrupt("outbox", &b)?,
                                (None, Some(b)) => corrupt("held", &b)?,
                                (None, None) => continue,
                            };
                            if dead.get(k)?.is_some() {
                                continue;
                            }
                            applied.insert(applied_key_of(&env), to_vec(&Applied::discarded()))?;
                            n += 1;
                        }
                        Ok(n)
                    })
                    .map_err(tx_err)
            })?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Link;
    use crate::store::keys::QueueKey;
    use crate::store::records::{After, DeadLetter};
    use crate::store::testing::env;

    /// Destinations whose names prefix each other are told apart; what is
    /// given up is recorded as done and leaves the others alone.
    #[test]
    fn unconfigured_queues_are_listed_and_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let link = Link::new("a", "T1", "b");
        store.ingest_tx(|tx| tx.put_link(&link)).unwrap();
        let mut queued = Vec::new();
        for dest in ["b", "bb", "b2", "b", "c"] {
            let e = env(&link, dest);
            let key = store.ingest_tx(|tx| tx.enqueue(&mut e.clone())).unwrap();
            queued.push((key, e));
        }
        // A parked copy of one in the outbox, and one parked alone.
        store.hold(&queued[0].0, &queued[0].1).unwrap();
        let parked = QueueKey {
            dest: "bb".into(),
            seq: 999,
        };
        store.hold(&parked, &env(&link, "bb")).unwrap();
        // A parked copy a crash left beside its dead letter.
        let (dead_key, dead_env) = (
            QueueKey {
                dest: "b".into(),
                seq: 1000,
            },
            env(&link, "b"),
        );
        let dl = DeadLetter {
            envelope: dead_env.clone(),
            error: "422".into(),
            attempts: 1,
            at: Utc::now(),
            waited_for: None,
        };
        store.hold(&dead_key, &dead_env).unwrap();
        store.kill(&dead_key, &dl).unwrap();
        store.hold(&dead_key, &dead_env).unwrap();
        let left = store.unconfigured(|d| d == "c").unwrap();
        let want: BTreeMap<String, (usize, usize)> = [
            ("b".to_string(), (2, 2)),
            ("b2".to_string(), (1, 0)),
            ("bb".to_string(), (1, 1)),
        ]
        .into();
        assert_eq!(left, want);
        // How far behind: the first of each tree, parked or queued.
        let at = |e: &Envelope| e.event.occurred_at;
        assert_eq!(store.oldest_waiting("c").unwrap(), Some(at(&queued[4].1)));
        assert_eq!(store.oldest_waiting("b").unwrap(), Some(at(&queued[0].1)));
        assert_eq!(store.oldest_waiting("x").unwrap(), None);

        assert_eq!(store.discard_queued("b").unwrap(), 2);
        assert_eq!(store.discard_queued("bb").unwrap(), 2);
        assert_eq!(store.discard_queued("bb").unwrap(), 0);
        assert_eq!(
            store.applied(&queued[0].1).unwrap(),
            Some(Applied::discarded())
        );
        assert_eq!(store.applied(&queued[4].1).unwrap(), None);
        // The dead letter stays, to be replayed or discarded on its own.
        assert_eq!(store.applied(&dead_env).unwrap(), None);
        assert_eq!(store.dead_letters().unwrap().len(), 1);
        assert_eq!(store.held_len("b"), 0);
        let left = store.unconfigured(|d| d == "c").unwrap();
        assert_eq!(left.keys().collect::<Vec<_>>(), ["b2"]);
        assert_eq!(store.queue_len("c"), 1);

        // A late copy of a given-up status change is absorbed without
        // setting that status on the link.
        let (key, e) = &queued[0];
        let absorbed = store.applied(e).unwrap().unwrap();
        store.complete(key, e, &absorbed).unwrap();
        let l = store.link(link.id).unwrap().unwrap();
        assert_eq!(l.downstream.status, None);
        assert!(store
            .after_done(&Envelope {
                after: Some(After {
                    seq: key.seq,
                    event: e.event.id,
                }),
                ..e.clone()
            })
            .unwrap());
    }
}
