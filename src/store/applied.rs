//! The applied set: what each delivery did at its destination, and
//! completing a delivery (its effect recorded, its message taken off).

use super::codec::{corrupt, from_slice, to_vec};
use super::db::Store;
use super::error::{tx_err, StoreError};
use super::keys::{applied_key, applied_key_of, pair_key, QueueKey};
use super::records::{Applied, Envelope};
use super::tx::index_link;
use crate::link::Link;
use chrono::Utc;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

impl Store {
    /// Whether the message `env` names as its link's previous one is done:
    /// applied, or discarded by the operator. True when it names none.
    pub fn after_done(&self, env: &Envelope) -> Result<bool, StoreError> {
        Ok(match env.after {
            None => true,
            Some(a) => self
                .applied
                .contains_key(applied_key(a.event, env.link_id, &env.dest))?,
        })
    }

    /// Whether this (event, destination, link) was applied already.
    pub fn applied(&self, env: &Envelope) -> Result<Option<Applied>, StoreError> {
        match self.applied.get(applied_key_of(env))? {
            Some(b) => Ok(Some(from_slice("applied", &b)?)),
            None => Ok(None),
        }
    }

    /// Records the effect at the destination and takes the message off its
    /// queue (atomically, or record first: see `complete_plain`): after
    /// this, a redelivery is impossible.
    pub fn complete(
        &self,
        key: &QueueKey,
        env: &Envelope,
        applied: &Applied,
    ) -> Result<(), StoreError> {
        let changes_link = !applied.discarded
            && (applied.ticket.is_some()
                || matches!(
                    env.event.kind,
                    crate::event::EventKind::StatusChanged { .. }
                ));
        if !changes_link && applied.remote_ids.is_empty() {
            return self.complete_plain(key, env, applied);
        }
        self.gated(|| {
            (
                &self.outbox,
                &self.applied,
                &self.created,
                &self.links,
                &self.link_idx,
                &self.held,
            )
                .transaction(|(outbox, applied_t, created, links, link_idx, held)| {
                    let mut link: Link = match links.get(env.link_id.as_bytes())? {
                        Some(b) => corrupt("links", &b)?,
                        None => {
                            return Err(ConflictableTransactionError::Abort(format!(
                                "link {} vanished",
                                env.link_id
                            )))
                        }
                    };
                    let link_id = link.id;
                    if let Some(side) = link.side_mut(&env.dest) {
                        if let Some(t) = &applied.ticket {
                            side.ticket = Some(t.clone());
                            side.got_at.get_or_insert_with(Utc::now);
                            index_link(link_idx, &env.dest, t, link_id)?;
                        }
                        if let crate::event::EventKind::StatusChanged { status } = env.event.kind {
                            side.set_status(status, Utc::now(), true);
                        }
                    }
                    links.insert(link.id.as_bytes(), to_vec(&link))?;
                    for id in &applied.remote_ids {
                        created.insert(pair_key(&env.dest, id), env.event.id.as_bytes())?;
                    }
                    applied_t.insert(applied_key_of(env), to_vec(applied))?;
                    outbox.remove(key.encode())?;
                    held.remove(key.encode())?;
                    Ok(())
                })
                .map_err(tx_err)
        })
    }

    /// `complete` for an effect that changes neither the link nor the echo
    /// records (a comment to a webhook): plain single-key writes, no
    /// transaction. A sled transaction costs two synchronous log writes and
    /// the store-wide write lock; these cost neither. The record goes first,
    /// so a crash between the writes leaves the message queued with its
    /// record, and the relay completes it on sight without applying again.
    /// (Links are never removed, so the link is not read back.)
    fn complete_plain(
        &self,
        key: &QueueKey,
        env: &Envelope,
        applied: &Applied,
    ) -> Result<(), StoreError> {
        self.applied.insert(applied_key_of(env), to_vec(applied))?;
        let k = key.encode();
        // Broker mode usually finds nothing to take off: no write then.
        if self.outbox.contains_key(&k)? {
            self.outbox.remove(&k)?;
        }
        if self.held.contains_key(&k)? {
            self.held.remove(&k)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::store::testing::env;

    #[test]
    fn a_plain_completion_records_then_takes_off_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let link = Link::new("a", "T1", "b");
        let mut e = env(&link, "b");
        e.event.kind = EventKind::Comment {
            comment: crate::event::Comment {
                body: "hello".into(),
                audience: crate::event::Audience::Public,
                attachments: vec![],
            },
        };
        let key = store
            .ingest_tx(|tx| {
                tx.put_link(&link)?;
                tx.enqueue(&mut e.clone())
            })
            .unwrap();
        // The state a crash between the two writes leaves: the record and
        // the message both there; completing again finishes the job.
        store
            .applied
            .insert(applied_key_of(&e), to_vec(&Applied::default()))
            .unwrap();
        assert_eq!(store.applied(&e).unwrap(), Some(Applied::default()));
        assert_eq!(store.pending("b").unwrap().len(), 1);
        store.complete(&key, &e, &Applied::default()).unwrap();
        assert!(store.pending("b").unwrap().is_empty());
        assert_eq!(store.applied(&e).unwrap(), Some(Applied::default()));
    }
}
