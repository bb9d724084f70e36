//! The embedded inbox: the store's outbox is the destination's queue, read
//! at start and then as ingest announces each message.

use super::backlog::Waiting;
use super::dispatcher::Dispatcher;
use super::work::Work;
use crate::store::{Envelope, QueueKey, StoreError};
use std::collections::HashSet;
use uuid::Uuid;

#[derive(Default)]
pub(super) struct OutboxInbox {
    /// Seqs loaded or announced, so a late notice is not taken twice.
    known: HashSet<u64>,
    /// The queue is read up to here. Announcements from one group flush
    /// may come in any order: an announced seq brings the ones before it
    /// with it, so a link's later event cannot start before its earlier
    /// one is even known.
    read_upto: Option<u64>,
}

impl OutboxInbox {
    /// Takes what is queued for the destination.
    pub(super) fn open(d: &Dispatcher, work: &mut Work) -> Result<OutboxInbox, StoreError> {
        let mut me = OutboxInbox::default();
        for (key, env) in d.store.pending(&d.dest)? {
            me.known.insert(key.seq);
            me.read_upto = me.read_upto.max(Some(key.seq));
            work.backlog
                .entry(env.link_id, key.seq, || Waiting::new(env));
        }
        Ok(me)
    }

    /// Ingest queued `key`: it, and whatever came before it unannounced,
    /// is work.
    pub(super) fn queued(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        key: QueueKey,
        env: Envelope,
    ) -> Result<(), StoreError> {
        // A notice may trail the start-up load: only what is still queued
        // is work.
        if self.read_upto.is_none_or(|r| key.seq > r) {
            let from = self.read_upto.map_or(0, |r| r + 1);
            let announced = key.seq;
            // The announced one comes with its message; only earlier ones
            // not yet announced are read.
            let mut env = Some(env);
            for (key, read) in d
                .store
                .pending_between(&d.dest, from, announced, |s| s != announced)?
            {
                if let Some(e) = read.or_else(|| env.take()) {
                    if self.known.insert(key.seq) {
                        work.backlog.entry(e.link_id, key.seq, || Waiting::new(e));
                    }
                }
            }
            self.read_upto = Some(announced);
        } else if !self.known.contains(&key.seq) && d.store.is_queued(&key)? {
            self.known.insert(key.seq);
            work.backlog
                .entry(env.link_id, key.seq, || Waiting::new(env));
        }
        Ok(())
    }

    /// A replayed letter is back in the outbox: the link's queued messages
    /// not under way are work again.
    pub(super) fn unblocked(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        link: Uuid,
    ) -> Result<(), StoreError> {
        for (key, env) in d.store.pending(&d.dest)? {
            if env.link_id == link && !work.owed.contains_key(&key.seq) {
                self.known.insert(key.seq);
                work.backlog.entry(link, key.seq, || Waiting::new(env));
            }
        }
        Ok(())
    }

    /// A delivery ended: its seq is off the queue (or returned to it).
    pub(super) fn finished(&mut self, seq: u64) {
        self.known.remove(&seq);
    }
}
