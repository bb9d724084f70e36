//! The broker inbox: RabbitMQ delivers, each message with an
//! acknowledgement owed until its effect is recorded. A link that cannot
//! take a delivery now (behind a dead letter, a full window, or an earlier
//! message the broker has not delivered yet) has it parked in the store,
//! durably, so the broker's prefetch window never fills with one link's
//! messages; parked messages come back in order as the link frees.

use super::backlog::{Backlog, Waiting};
use super::dispatcher::Dispatcher;
use super::done::Done;
use super::gap::{gap_due, note_gap, Gap};
use super::work::{ack_all, Work};
use crate::bus::ack::Ack;
use crate::store::{Envelope, QueueKey, Store, StoreError};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

pub(super) struct BrokerInbox {
    /// Links with messages parked in the store; new deliveries of theirs
    /// are parked behind them, in order.
    parked: HashSet<Uuid>,
    /// Seqs parked while their delivery was under way; its end takes the
    /// parked copy off (the delivery may have recorded its end before the
    /// copy was written).
    held_in_flight: HashSet<u64>,
    /// Parked links whose next message waits for an earlier one.
    gaps: HashMap<Uuid, Gap>,
    /// Links that went on without an earlier message (the operator's
    /// replay or discard), and from which seq.
    went_on: HashMap<Uuid, u64>,
    /// Since when the consumer's channel is (or may be) new. The broker
    /// may still hold messages on a connection that just died until it
    /// notices (its heartbeat timeout): empty readings of the queue prove
    /// nothing missing before `order_wait` has passed.
    connected_at: tokio::time::Instant,
}

impl BrokerInbox {
    /// Links with parked messages take them first (`refill_stalled`
    /// refills each one that is not blocked).
    pub(super) fn open(d: &Dispatcher) -> Result<BrokerInbox, StoreError> {
        let connected_at = tokio::time::Instant::now();
        let parked = d
            .store
            .held(&d.dest)?
            .into_iter()
            .map(|(_, e)| e.link_id)
            .collect();
        Ok(BrokerInbox {
            parked,
            held_in_flight: HashSet::new(),
            gaps: HashMap::new(),
            went_on: d.store.went_on(&d.dest)?,
            connected_at,
        })
    }

    /// A parked link with nothing in memory takes its next messages from
    /// the store.
    pub(super) fn refill_stalled(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
    ) -> Result<(), StoreError> {
        let stalled: Vec<Uuid> = self
            .parked
            .iter()
            .filter(|l| {
                !work.blocked.contains(*l)
                    && !work.busy.contains(*l)
                    && work.backlog.link_len(**l) == 0
                    && self.gaps.get(*l).is_none_or(|g| g.recheck)
            })
            .copied()
            .collect();
        for link in stalled {
            self.refill(d, work, link)?;
        }
        Ok(())
    }

    /// Takes the link's parked messages into memory (see `refill`) and
    /// keeps what it found of their order.
    fn refill(&mut self, d: &Dispatcher, work: &mut Work, link: Uuid) -> Result<(), StoreError> {
        let found = refill(
            &d.store,
            &d.dest,
            link,
            d.link_window,
            &mut work.backlog,
            &work.owed,
            &mut self.parked,
        )?;
        note_gap(&mut self.gaps, &d.dest, link, found, d.order_wait);
        Ok(())
    }

    /// The broker delivered `key`: work, an addition to the
    /// acknowledgements of one here, parked, or a dead letter.
    pub(super) async fn delivered(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        key: QueueKey,
        env: Envelope,
        acker: Ack,
    ) -> Result<(), StoreError> {
        // Not this deskbridge's to deliver: checked first, as its seq is
        // another store's and may equal one of ours under way.
        if !d.store.has_link(env.link_id)? {
            d.not_ours(&key, &env);
            acker.reject();
            return Ok(());
        }
        let link = env.link_id;
        let in_memory = work.backlog.link_len(link);
        let known_here = work.owed.contains_key(&key.seq) || work.backlog.contains(link, key.seq);
        if let Some(g) = self.gaps.get_mut(&link) {
            g.recheck |= g.missing == key.seq;
        }
        // Its link went on without it (the operator's replay or discard of
        // the one that waited for it): not applied behind its successors
        // unasked.
        let late = !known_here
            && self.went_on.get(&link).is_some_and(|at| key.seq < *at)
            // A repeat of one that went through after all.
            && d.store.applied(&env)?.is_none();
        if late {
            let at = d.key(self.went_on[&link]);
            let dead = d.came_late(&key, env, &at).await?;
            work.blocked.insert(link);
            self.gaps.remove(&link);
            d.tell_dead(dead);
            acker.ack();
            return Ok(());
        }
        // Out of order (the broker delivered it before its link's previous
        // message): parked, it waits there for that one (see `refill`).
        if !known_here
            && (work.blocked.contains(&link)
                || self.parked.contains(&link)
                || in_memory >= d.link_window
                || d.store.is_held(&key)?
                || !follows(&d.store, &env, &work.backlog, &work.owed)?)
        {
            self.park(d, work, key, env, acker).await
        } else if let Some(acks) = work.owed.get_mut(&key.seq) {
            acks.push(acker);
            Ok(())
        } else {
            work.backlog
                .entry(link, key.seq, || Waiting::new(env))
                .acks
                .push(acker);
            Ok(())
        }
    }

    /// Parks a delivery behind its link's earlier messages (or its dead
    /// letter), durably, then frees the broker's prefetch slot. The earlier
    /// ones the broker still has unacknowledged (waiting here or in flight)
    /// are parked with it: a parked link must owe the broker nothing older
    /// than what the store holds, or after a restart or a lost channel the
    /// store's later messages would go before the broker's redelivered
    /// earlier ones.
    async fn park(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        key: QueueKey,
        env: Envelope,
        acker: Ack,
    ) -> Result<(), StoreError> {
        let link = env.link_id;
        let mut acks = vec![acker];
        for (seq, env, a) in work.backlog.take_acks(link) {
            d.store.hold(&d.key(seq), env)?;
            acks.extend(a);
        }
        for (l, seq, env) in work.running.values() {
            match work.owed.get_mut(seq) {
                Some(a) if *l == link && !a.is_empty() => {
                    d.store.hold(&d.key(*seq), env)?;
                    acks.append(a);
                    self.held_in_flight.insert(*seq);
                }
                _ => {}
            }
        }
        d.store.hold(&key, &env)?;
        d.store.flush().await?;
        self.parked.insert(link);
        ack_all(acks);
        Ok(())
    }

    /// The consumer's channel was lost: unacknowledged deliveries come
    /// again, so they are forgotten here.
    pub(super) fn reset(&mut self, work: &mut Work) {
        self.connected_at = tokio::time::Instant::now();
        for g in self.gaps.values_mut() {
            g.empty_reads = 0;
        }
        work.backlog.forget_delivered();
        for acks in work.owed.values_mut() {
            acks.clear();
        }
    }

    /// The broker's queue held `ready` messages: a due gap whose missing
    /// message is not there either, twice in a row, is given up on.
    pub(super) async fn depth(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        ready: u32,
    ) -> Result<(), StoreError> {
        let settled = self.connected_at.elapsed() >= d.order_wait;
        let due: Vec<Uuid> = self
            .gaps
            .iter()
            .filter(|(_, g)| g.due)
            .map(|(l, _)| *l)
            .collect();
        for link in due {
            let Some(g) = self.gaps.get_mut(&link) else {
                continue;
            };
            g.empty_reads = if ready == 0 && settled {
                g.empty_reads.saturating_add(1)
            } else {
                0
            };
            if g.empty_reads < 2 || g.recheck || work.blocked.contains(&link) {
                continue;
            }
            let missing = d.key(g.missing);
            // Still to come: not yet published (the broker was down, say),
            // or here by now.
            if d.store.is_queued(&missing)?
                || d.store.is_held(&missing)?
                || follows(&d.store, &g.env, &work.backlog, &work.owed)?
            {
                g.recheck = true;
                // Readings taken while it was still to come prove nothing.
                g.empty_reads = 0;
                continue;
            }
            let Some(g) = self.gaps.remove(&link) else {
                continue;
            };
            let dead = d.gave_up_waiting(g).await?;
            work.blocked.insert(link);
            d.tell_dead(dead);
        }
        Ok(())
    }

    /// A replay or discard may have let the link go on without an earlier
    /// message: later deliveries of that one are dead letters.
    pub(super) fn may_have_gone_on(
        &mut self,
        d: &Dispatcher,
        link: Uuid,
    ) -> Result<(), StoreError> {
        if let Some(at) = d.store.went_on_at(&d.dest, link)? {
            self.went_on.insert(link, at);
        }
        Ok(())
    }

    /// The link is free again: a replayed letter is parked with its later
    /// messages.
    pub(super) fn unblocked(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        link: Uuid,
    ) -> Result<(), StoreError> {
        self.gaps.remove(&link);
        self.refill(d, work, link)
    }

    /// A delivery ended. Returned by a stop, its parked copy is what
    /// remains; otherwise a copy parked while it was under way goes.
    pub(super) fn finished(
        &mut self,
        d: &Dispatcher,
        seq: u64,
        done: &Done,
    ) -> Result<(), StoreError> {
        if self.held_in_flight.remove(&seq) && !matches!(done, Done::Returned) {
            d.store.unhold(&d.key(seq))?;
        }
        Ok(())
    }

    /// The link is held by a dead letter: it waits for nothing else.
    pub(super) fn buried(&mut self, link: Uuid) {
        self.gaps.remove(&link);
    }

    pub(super) fn parked_links(&self) -> usize {
        self.parked.len()
    }

    /// Links whose next message waits for an earlier one (not those a dead
    /// letter holds anyway).
    pub(super) fn waiting_links(&self, blocked: &HashSet<Uuid>) -> usize {
        self.gaps.keys().filter(|l| !blocked.contains(*l)).count()
    }

    /// Fires when a gap has waited `order_wait`; never while there is none.
    pub(super) async fn gap_due(&self) {
        gap_due(&self.gaps).await
    }

    /// Due gaps are given up only on proof that the broker's queue does not
    /// hold the missing message either (`depth`), so that a broker that is
    /// down, or a queue backed up behind a slow partner, is waited for.
    pub(super) fn gaps_due(&mut self) {
        let now = tokio::time::Instant::now();
        for g in self.gaps.values_mut().filter(|g| !g.due && g.until <= now) {
            g.due = true;
            g.empty_reads = 0;
        }
    }
}

/// Moves a link's parked messages (in order) into memory, up to the window,
/// and up to one whose link's previous message is neither done nor here
/// (returned: it waits for that one); the link stays `parked` while some
/// remain in the store only.
fn refill(
    store: &Store,
    dest: &str,
    link: Uuid,
    window: usize,
    backlog: &mut Backlog,
    owed: &HashMap<u64, Vec<Ack>>,
    parked: &mut HashSet<Uuid>,
) -> Result<Option<(QueueKey, Envelope, u64)>, StoreError> {
    let held: Vec<(QueueKey, Envelope)> = store
        .held(dest)?
        .into_iter()
        .filter(|(_, e)| e.link_id == link)
        .collect();
    let held_seqs: HashSet<u64> = held.iter().map(|(k, _)| k.seq).collect();
    // One that goes before a message already in memory (a replayed dead
    // letter) comes in whatever the window: it must go first.
    let before = backlog.last_seq(link);
    let mut left = 0;
    let mut gap = None;
    for (key, env) in held {
        if owed.contains_key(&key.seq) || backlog.contains(link, key.seq) {
            continue;
        }
        let goes_first = before.is_some_and(|last| key.seq < last);
        if gap.is_some() || (backlog.link_len(link) >= window && !goes_first) {
            left += 1;
            continue;
        }
        if let Some(a) = env.after {
            // Parked too, it goes first.
            if !held_seqs.contains(&a.seq) && !follows(store, &env, backlog, owed)? {
                left += 1;
                gap = Some((key, env, a.seq));
                continue;
            }
        }
        backlog.entry(link, key.seq, || Waiting::parked(env));
    }
    if left == 0 {
        parked.remove(&link);
    } else {
        parked.insert(link);
    }
    Ok(gap)
}

/// Broker: whether `env` may take its place behind what is here: the
/// message its link sent before it is waiting or in flight here (it goes
/// first), or done.
fn follows(
    store: &Store,
    env: &Envelope,
    backlog: &Backlog,
    owed: &HashMap<u64, Vec<Ack>>,
) -> Result<bool, StoreError> {
    match env.after {
        None => Ok(true),
        Some(a) if backlog.contains(env.link_id, a.seq) || owed.contains_key(&a.seq) => Ok(true),
        Some(_) => store.after_done(env),
    }
}
