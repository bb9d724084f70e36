//! The embedded inbox: the store's outbox is the destination's queue. Only
//! a window of it is in memory: at most `window` waiting messages, and at
//! most `link_window` of any one link, so a partner down for a week costs
//! disk, not memory. What lies past a link's window, or behind its dead
//! letter, is noted in the store (`waiting`) and read back in order when
//! the link has room; what lies past the whole window is read from the
//! queue as the window empties.

use super::backlog::Waiting;
use super::dispatcher::Dispatcher;
use super::work::Work;
use crate::store::{Envelope, QueueKey, StoreError};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Messages read from the queue at once.
const BATCH: usize = 256;

#[derive(Default)]
pub(super) struct OutboxInbox {
    /// Seqs in memory (waiting or under way), so a late notice is not
    /// taken twice.
    known: HashSet<u64>,
    /// The queue is read up to here: every queued message at or before it
    /// is in memory, under way, or noted as waiting on disk. Announcements
    /// from one group flush may come in any order: an announced seq brings
    /// the ones before it with it, so a link's later event cannot start
    /// before its earlier one is even known.
    read_upto: Option<u64>,
    /// The queue may hold messages past `read_upto` that the full window
    /// left there.
    more: bool,
    /// Links with messages noted as waiting on disk: a later message of
    /// theirs waits there too, behind them.
    noted: HashSet<Uuid>,
    /// The seqs of each blocked link's dead letters, to find a replayed
    /// one back in the queue.
    dead: HashMap<Uuid, Vec<u64>>,
}

impl OutboxInbox {
    /// Reads the start of the destination's queue.
    pub(super) fn open(d: &Dispatcher, work: &mut Work) -> Result<OutboxInbox, StoreError> {
        let mut me = OutboxInbox {
            more: true,
            ..OutboxInbox::default()
        };
        for (k, dl) in d.store.dead_letters()? {
            if k.dest == d.dest {
                me.dead.entry(dl.envelope.link_id).or_default().push(k.seq);
            }
        }
        // Notes are a cache of the queue: written again as it is read.
        d.store.clear_waiting(&d.dest)?;
        me.fill(d, work)?;
        Ok(me)
    }

    fn full(d: &Dispatcher, work: &Work) -> bool {
        work.backlog.len >= d.window
    }

    /// Takes a message read from the queue: into memory if its link may
    /// start it in order and has room, else noted to wait on disk.
    fn take(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        key: QueueKey,
        env: Envelope,
    ) -> Result<(), StoreError> {
        let link = env.link_id;
        if work.blocked.contains(&link)
            || self.noted.contains(&link)
            || work.backlog.link_len(link) >= d.link_window
        {
            d.store.hint_waiting(&d.dest, link, key.seq)?;
            self.noted.insert(link);
        } else if self.known.insert(key.seq) {
            work.backlog.entry(link, key.seq, || Waiting::new(env));
        }
        Ok(())
    }

    /// Reads the queue past `read_upto` until the window is full or the
    /// queue ends.
    fn fill(&mut self, d: &Dispatcher, work: &mut Work) -> Result<(), StoreError> {
        while self.more && !Self::full(d, work) {
            let batch = d.store.queued_after(&d.dest, self.read_upto, BATCH)?;
            if batch.len() < BATCH {
                self.more = false;
            }
            for (key, env) in batch {
                if Self::full(d, work) {
                    self.more = true;
                    break;
                }
                self.read_upto = Some(key.seq);
                self.take(d, work, key, env)?;
            }
        }
        Ok(())
    }

    /// Ingest queued `key`: it, and whatever came before it unannounced,
    /// is work, as far as the window goes.
    pub(super) fn queued(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        key: QueueKey,
        env: Envelope,
    ) -> Result<(), StoreError> {
        if self.read_upto.is_none_or(|r| key.seq > r) {
            if self.more || Self::full(d, work) {
                // Read in queue order when the window has room.
                self.more = true;
                return self.fill(d, work);
            }
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
                    self.take(d, work, key, e)?;
                }
            }
            self.read_upto = Some(announced);
        } else if !self.known.contains(&key.seq) && d.store.is_queued(&key)? {
            // Committed after the queue was read past it.
            self.take(d, work, key, env)?;
        }
        Ok(())
    }

    /// Reads back the link's messages noted on disk, as its window allows.
    fn refill_link(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        link: Uuid,
    ) -> Result<(), StoreError> {
        if !self.noted.contains(&link) || work.blocked.contains(&link) {
            return Ok(());
        }
        let room = d.link_window.saturating_sub(work.backlog.link_len(link));
        if room == 0 {
            return Ok(());
        }
        let taken = d.store.take_waiting(&d.dest, link, room)?;
        if taken.len() < room {
            self.noted.remove(&link);
        }
        for (seq, env) in taken {
            // One no longer queued was delivered or buried meanwhile.
            if let Some(env) = env {
                if self.known.insert(seq) {
                    work.backlog.entry(link, seq, || Waiting::new(env));
                }
            }
        }
        Ok(())
    }

    /// A replayed letter is back in the outbox: the link's queued messages
    /// are work again, in order, from the disk's notes.
    pub(super) fn unblocked(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        link: Uuid,
    ) -> Result<(), StoreError> {
        for seq in self.dead.remove(&link).unwrap_or_default() {
            let key = d.key(seq);
            if !self.known.contains(&seq) && d.store.is_queued(&key)? {
                d.store.hint_waiting(&d.dest, link, seq)?;
                self.noted.insert(link);
            }
        }
        self.refill_link(d, work, link)
    }

    /// A dead letter now holds `link` (its seq `seq`): its waiting
    /// messages leave memory for the disk's notes.
    pub(super) fn buried(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        link: Uuid,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.dead.entry(link).or_default().push(seq);
        for (s, _) in work.backlog.take_link(link) {
            self.known.remove(&s);
            d.store.hint_waiting(&d.dest, link, s)?;
            self.noted.insert(link);
        }
        self.fill(d, work)
    }

    /// A delivery of `link` ended: its seq is off the queue (or returned
    /// to it), and the link and the window may have room.
    pub(super) fn finished(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        link: Uuid,
        seq: u64,
        goes_on: bool,
    ) -> Result<(), StoreError> {
        self.known.remove(&seq);
        if goes_on {
            self.refill_link(d, work, link)?;
        }
        if work.backlog.len < d.window / 2 {
            self.fill(d, work)?;
        }
        Ok(())
    }
}
