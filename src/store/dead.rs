//! Dead letters: messages that cannot be applied, kept in their place so
//! their link's later messages stay behind them, until the operator
//! replays or discards them.

use super::codec::{corrupt, from_slice, to_vec};
use super::db::Store;
use super::error::{tx_err, StoreError, TxResult};
use super::keys::{applied_key, applied_key_of, late_seq, tail_key, QueueKey};
use super::records::{Applied, DeadLetter, Envelope};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

impl Store {
    /// Moves a message that cannot be applied to the dead letters, keeping
    /// its place so the link's later events stay behind it.
    pub fn kill(&self, key: &QueueKey, dl: &DeadLetter) -> Result<(), StoreError> {
        self.gated(|| {
            (&self.outbox, &self.dead, &self.held)
                .transaction(|(outbox, dead, held)| {
                    outbox.remove(key.encode())?;
                    held.remove(key.encode())?;
                    dead.insert(key.encode(), to_vec(dl))?;
                    Ok(())
                })
                .map_err(tx_err)
        })
    }

    pub fn dead_letters(&self) -> Result<Vec<(QueueKey, DeadLetter)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.dead.iter() {
            let (k, v) = kv?;
            if let Some(key) = QueueKey::decode(&k) {
                out.push((key, from_slice("dead", &v)?));
            }
        }
        Ok(out)
    }

    pub fn dead_letter_count(&self) -> usize {
        self.dead.len()
    }

    /// Puts a dead letter back at its old place: on the outbox (embedded
    /// bus) or first among its link's held messages (broker), so that the
    /// link's order holds either way.
    pub fn replay(&self, key: &QueueKey, to_held: bool) -> Result<Envelope, StoreError> {
        // Without its `after`: a letter that gave up waiting for its link's
        // earlier message goes now, as the operator decided.
        self.take_dead(key, |outbox, held, _, dl| {
            let target = if to_held { held } else { outbox };
            let env = Envelope {
                after: None,
                ..dl.envelope.clone()
            };
            target.insert(key.encode(), to_vec(&env))?;
            Ok(())
        })
        .map(|dl| Envelope {
            after: None,
            ..dl.envelope
        })
    }

    /// Gives up on a dead letter for good (the operator's decision).
    pub fn discard(&self, key: &QueueKey) -> Result<DeadLetter, StoreError> {
        // A parked copy may survive a crash (parked while its delivery was
        // under way): discarded means gone from everywhere, at once. And a
        // late repeat from the broker (a republish, a redelivery) must not
        // bring it back: it is recorded as done, with no effect.
        self.take_dead(key, |_, held, applied, dl| {
            held.remove(key.encode())?;
            applied.insert(applied_key_of(&dl.envelope), to_vec(&Applied::discarded()))?;
            Ok(())
        })
    }

    /// Takes a dead letter off and, in the same transaction, does `then`
    /// with the outbox, held and applied trees; for one that waited for
    /// an earlier message, notes that its link goes on without it (`late`).
    fn take_dead(
        &self,
        key: &QueueKey,
        then: impl Fn(
            &TransactionalTree,
            &TransactionalTree,
            &TransactionalTree,
            &DeadLetter,
        ) -> TxResult<()>,
    ) -> Result<DeadLetter, StoreError> {
        self.gated(|| {
            // Asked first so that "no such letter" and "unreadable" differ.
            if !self.dead.contains_key(key.encode())? {
                return Err(StoreError::NoDeadLetter(key.id()));
            }
            (
                &self.outbox,
                &self.dead,
                &self.held,
                &self.applied,
                &self.late,
            )
                .transaction(|(outbox, dead, held, applied, late)| {
                    let Some(b) = dead.remove(key.encode())? else {
                        return Err(ConflictableTransactionError::Abort(format!(
                            "dead letter {} was taken meanwhile",
                            key.id()
                        )));
                    };
                    let dl: DeadLetter = corrupt("dead", &b)?;
                    then(outbox, held, applied, &dl)?;
                    // Unless it is here after all (parked behind this letter:
                    // it goes first) or done.
                    if let (Some(seq), Some(a)) = (dl.waited_for, dl.envelope.after) {
                        let missing = QueueKey {
                            dest: key.dest.clone(),
                            seq,
                        };
                        let done = applied
                            .get(applied_key(a.event, dl.envelope.link_id, &key.dest))?
                            .is_some();
                        if !done && held.get(missing.encode())?.is_none() {
                            let at = tail_key(&key.dest, dl.envelope.link_id);
                            let before = late.get(&at)?.and_then(|v| late_seq(&v));
                            if before.is_none_or(|b| b < key.seq) {
                                late.insert(at, &key.seq.to_be_bytes())?;
                            }
                        }
                    }
                    Ok(dl)
                })
                .map_err(tx_err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Link;
    use crate::store::testing::env;
    use chrono::Utc;

    #[test]
    fn enqueue_complete_and_dead_letter_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let link = Link::new("a", "T1", "b");
        let e = env(&link, "b");
        let key = store
            .ingest_tx(|tx| {
                tx.put_link(&link)?;
                tx.enqueue(&mut e.clone())
            })
            .unwrap();
        assert_eq!(store.links_of("a", "T1").unwrap(), vec![link.clone()]);
        assert_eq!(store.pending("b").unwrap(), vec![(key.clone(), e.clone())]);
        let applied = Applied {
            ticket: Some("77".into()),
            remote_ids: vec!["c1".into()],
            ..Applied::default()
        };
        store.complete(&key, &e, &applied).unwrap();
        let updated = store.link(link.id).unwrap().unwrap();
        assert_eq!(updated.downstream.ticket.as_deref(), Some("77"));
        assert_eq!(store.links_of("b", "77").unwrap().len(), 1);
        assert!(store.pending("b").unwrap().is_empty());
        assert_eq!(store.applied(&e).unwrap(), Some(applied));
        assert!(store.ingest_tx(|tx| tx.is_echo("b", "c1")).unwrap());

        let key2 = store.ingest_tx(|tx| tx.enqueue(&mut e.clone())).unwrap();
        let dl = DeadLetter {
            envelope: e.clone(),
            error: "422 bad status".into(),
            attempts: 1,
            at: Utc::now(),
            waited_for: None,
        };
        store.kill(&key2, &dl).unwrap();
        assert!(store.pending("b").unwrap().is_empty());
        assert_eq!(store.dead_letters().unwrap().len(), 1);
        store.replay(&key2, false).unwrap();
        assert_eq!(store.pending("b").unwrap().len(), 1);
        assert!(matches!(
            store.replay(&key2, false),
            Err(StoreError::NoDeadLetter(_))
        ));
    }

    /// Broker mode: a message parked while its delivery was under way may
    /// keep a parked copy past its dead letter (a crash between the two);
    /// discarding the letter takes the copy too and marks it done, replaying
    /// puts it back once.
    #[test]
    fn discard_takes_a_parked_copy_and_replay_parks_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let link = Link::new("a", "T1", "b");
        let e = env(&link, "b");
        let key = QueueKey {
            dest: "b".into(),
            seq: 9,
        };
        let dl = DeadLetter {
            envelope: e.clone(),
            error: "422".into(),
            attempts: 1,
            at: Utc::now(),
            waited_for: None,
        };
        store.kill(&key, &dl).unwrap();
        store.hold(&key, &e).unwrap();
        store.discard(&key).unwrap();
        assert!(store.held("b").unwrap().is_empty());
        // A late repeat finds it done, with no effect.
        assert_eq!(store.applied(&e).unwrap(), Some(Applied::discarded()));
        assert!(store.dead_letters().unwrap().is_empty());
        assert!(matches!(
            store.discard(&key),
            Err(StoreError::NoDeadLetter(_))
        ));

        store.kill(&key, &dl).unwrap();
        store.hold(&key, &e).unwrap();
        store.replay(&key, true).unwrap();
        assert_eq!(store.held("b").unwrap(), vec![(key.clone(), e)]);
        store.unhold(&key).unwrap();
        assert!(!store.is_held(&key).unwrap());
    }
}
