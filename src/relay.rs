//! Relay: one dispatcher per destination endpoint. Ordered per link,
//! concurrent across links; a failing event holds back only the later
//! events of its own link. Apply, record, then take off the queue (or
//! acknowledge to the broker).

use crate::blob::BlobStore;
use crate::bus::amqp::Ack;
use crate::bus::embedded::Notice;
use crate::connector::sink::{Delivery, Sink, SinkError};
use crate::event::EventKind;
use crate::retry::{Retry, RetryPolicy};
use crate::store::{Applied, DeadLetter, Envelope, QueueKey, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, info_span, warn, Instrument};
use uuid::Uuid;

/// What an operator sees of one destination (`deskbridge status`).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct DestStatus {
    pub queued: usize,
    pub in_flight: usize,
    pub blocked_links: usize,
    /// Broker: links whose later messages wait in the store (behind a slow
    /// or failing delivery) rather than in the broker's prefetch window.
    #[serde(default)]
    pub parked_links: usize,
    /// Broker: the messages parked in the store.
    #[serde(default)]
    pub parked: usize,
    /// Broker: links whose next message came before an earlier one of
    /// theirs that the broker has not delivered yet; it waits parked.
    #[serde(default)]
    pub waiting_links: usize,
    /// Broker: messages waiting in the destination's queue at the broker,
    /// as last read (none while its consumer is not connected).
    #[serde(default)]
    pub at_broker: Option<u32>,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Broker: messages since start for links this deskbridge does not
    /// know (another deskbridge on the same `bus.prefix`, or a data_dir
    /// replaced under a queue that still held messages), moved to the
    /// broker's dead-letter queue of the destination.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub foreign: u64,
    /// Deliveries currently between retries.
    pub retrying: usize,
    /// The last transient failure while any delivery retries, and since when.
    pub failing: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    /// When the oldest message waiting for this destination was accepted:
    /// how far behind it is. Queued (in flight included, embedded) or
    /// parked in the store, and with a broker, in flight while deliveries
    /// fail; messages held back behind a dead letter count too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_waiting_since: Option<DateTime<Utc>>,
    /// The endpoint is no longer in the configuration: its queued and
    /// parked messages wait, undelivered, until it is back or they are
    /// discarded (`deskbridge discard --queued-for`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unconfigured: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub type StatusBoard = Arc<Mutex<BTreeMap<String, DestStatus>>>;

pub fn with_status(board: &StatusBoard, dest: &str, f: impl FnOnce(&mut DestStatus)) {
    let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
    f(b.entry(dest.to_string()).or_default());
}

/// Where a destination's messages come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The outbox in sled is the queue.
    Embedded,
    /// RabbitMQ delivers; a blocked link's messages are parked in sled.
    Broker,
}

enum Done {
    Delivered,
    /// Stopped between attempts: left queued (or unacknowledged) for the
    /// next start.
    Returned,
    Dead(Box<(QueueKey, DeadLetter)>),
    Failed(StoreError),
}

/// One waiting message, with the broker acknowledgements it owes (a
/// republished duplicate shares the seq and is acknowledged together).
struct Waiting {
    env: Envelope,
    acks: Vec<Ack>,
    /// Broker: its copy in the store (parked) is what counts; a lost
    /// channel takes only the acknowledgements of a repeat, not it.
    stored: bool,
}

impl Waiting {
    fn new(env: Envelope) -> Waiting {
        Waiting {
            env,
            acks: vec![],
            stored: false,
        }
    }

    fn parked(env: Envelope) -> Waiting {
        Waiting {
            stored: true,
            ..Waiting::new(env)
        }
    }
}

pub struct Dispatcher {
    pub dest: String,
    pub sink: Arc<dyn Sink>,
    pub store: Store,
    pub blobs: BlobStore,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub board: StatusBoard,
    pub source: Source,
    /// Told of each new dead letter (the broker copies it to its
    /// dead-letter queue for its own tools).
    pub on_dead: Option<mpsc::UnboundedSender<(QueueKey, DeadLetter)>>,
    /// How long a stop waits for deliveries in flight to finish.
    pub grace: Duration,
    /// Broker: most messages of one link held in memory; more are parked
    /// in the store so that a stuck link cannot fill the prefetch window
    /// and stall the destination's other links.
    pub link_window: usize,
    /// Broker: how long a message delivered before its link's earlier one
    /// waits for it before it becomes a dead letter.
    pub order_wait: Duration,
    /// Passes what was set on a ticket on along its other links (statuses
    /// climbing a chain); `None` where nothing goes on (tests, tools).
    pub onward: Option<crate::ingest::Ingest>,
}

/// The messages not yet handed to a worker, per link in queue order; the
/// links that may be able to start one, in the order they became so; and
/// how many messages wait in all. Handing out work and reporting it then
/// cost the same with ten links as with ten thousand.
#[derive(Default)]
struct Backlog {
    by_link: HashMap<Uuid, BTreeMap<u64, Waiting>>,
    /// A hint, not a promise: `next` skips a listed link that is busy,
    /// blocked or empty; whatever frees a link lists it again (`wake`).
    ready: VecDeque<Uuid>,
    listed: HashSet<Uuid>,
    len: usize,
}

impl Backlog {
    fn wake(&mut self, link: Uuid) {
        if self.listed.insert(link) {
            self.ready.push_back(link);
        }
    }

    /// The waiting message `seq` of `link`, added by `make` if new.
    fn entry(&mut self, link: Uuid, seq: u64, make: impl FnOnce() -> Waiting) -> &mut Waiting {
        if !self.contains(link, seq) {
            self.len += 1;
            self.wake(link);
        }
        self.by_link
            .entry(link)
            .or_default()
            .entry(seq)
            .or_insert_with(make)
    }

    fn contains(&self, link: Uuid, seq: u64) -> bool {
        self.by_link
            .get(&link)
            .is_some_and(|q| q.contains_key(&seq))
    }

    fn last_seq(&self, link: Uuid) -> Option<u64> {
        self.by_link
            .get(&link)
            .and_then(|q| q.last_key_value())
            .map(|(seq, _)| *seq)
    }

    fn link_len(&self, link: Uuid) -> usize {
        self.by_link.get(&link).map_or(0, |q| q.len())
    }

    /// The first waiting message of the longest-ready link that `free`
    /// accepts.
    fn next(&mut self, free: impl Fn(&Uuid) -> bool) -> Option<(Uuid, u64, Waiting)> {
        while let Some(link) = self.ready.pop_front() {
            self.listed.remove(&link);
            if !free(&link) {
                continue;
            }
            let Some(q) = self.by_link.get_mut(&link) else {
                continue;
            };
            let Some((seq, w)) = q.pop_first() else {
                continue;
            };
            if q.is_empty() {
                self.by_link.remove(&link);
            }
            self.len -= 1;
            return Some((link, seq, w));
        }
        None
    }

    /// The link's waiting messages that still owe the broker an
    /// acknowledgement, each with those acknowledgements (taken out).
    fn take_acks(&mut self, link: Uuid) -> Vec<(u64, &Envelope, Vec<Ack>)> {
        self.by_link.get_mut(&link).map_or_else(Vec::new, |q| {
            q.iter_mut()
                .filter(|(_, w)| !w.acks.is_empty())
                .map(|(seq, w)| {
                    w.stored = true;
                    (*seq, &w.env, std::mem::take(&mut w.acks))
                })
                .collect()
        })
    }

    /// Forgets the messages that came from a lost broker channel (they
    /// come again on the next one) and its acknowledgements of parked ones
    /// (which stay).
    fn forget_delivered(&mut self) {
        for q in self.by_link.values_mut() {
            q.retain(|_, w| {
                if w.stored {
                    w.acks.clear();
                }
                w.acks.is_empty()
            });
        }
        self.by_link.retain(|_, q| !q.is_empty());
        self.len = self.by_link.values().map(|q| q.len()).sum();
    }
}

/// A parked link's next message, waiting for the one its link sent before
/// it, which the broker has not delivered yet (it refused it from a
/// publish batch whose later message it took, say).
struct Gap {
    key: QueueKey,
    env: Envelope,
    missing: u64,
    until: tokio::time::Instant,
    /// The missing one arrived: look again.
    recheck: bool,
    /// Waited `order_wait`; given up once the broker's queue is read empty
    /// twice in a row (see `Notice::Depth`).
    due: bool,
    empty_reads: u8,
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

/// Keeps what `refill` found of a link's order: a gap keeps its clock
/// while it is the same one.
fn note_gap(
    gaps: &mut HashMap<Uuid, Gap>,
    dest: &str,
    link: Uuid,
    found: Option<(QueueKey, Envelope, u64)>,
    wait: Duration,
) {
    let Some((key, env, missing)) = found else {
        gaps.remove(&link);
        return;
    };
    match gaps.get_mut(&link) {
        Some(g) if g.key == key && g.missing == missing => g.recheck = false,
        _ => {
            info!(dest, link = %link, waiting = %key.id(), missing, "a message came before its link's earlier one; it waits for it, parked");
            gaps.insert(
                link,
                Gap {
                    key,
                    env,
                    missing,
                    until: tokio::time::Instant::now() + wait,
                    recheck: false,
                    due: false,
                    empty_reads: 0,
                },
            );
        }
    }
}

/// Fires at the earliest deadline of a gap not yet due; never while there
/// is none.
async fn gap_due(gaps: &HashMap<Uuid, Gap>) {
    match gaps.values().filter(|g| !g.due).map(|g| g.until).min() {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A partner's "not before": shared by every delivery to one destination,
/// since a rate limit is the partner's, not one link's. And what its
/// failures have told the log, for the same reason: a partner down all
/// night is one outage, not one per link and attempt.
#[derive(Default)]
struct Pause(
    Mutex<Option<tokio::time::Instant>>,
    Mutex<crate::retry::Said>,
);

impl Pause {
    fn until(&self) -> Option<tokio::time::Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this failure is news for the log (see `Said`), and the
    /// destination's failed attempts so far.
    fn worth_saying(&self, message: &str) -> (bool, u64) {
        self.1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed(message)
    }

    fn outage_over(&self) {
        *self.1.lock().unwrap_or_else(|p| p.into_inner()) = Default::default();
    }

    fn extend(&self, d: Duration) {
        let t = tokio::time::Instant::now() + d;
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none_or(|old| old < t) {
            *g = Some(t);
        }
    }
}

/// Sleeps until `t`; false at once if the daemon stops meanwhile. A
/// delivery between attempts has nothing to finish: a stop returns it
/// rather than sit out its backoff (or the grace).
async fn wait_unless_stopped(
    t: tokio::time::Instant,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(t) => true,
        stopped = async { stop.wait_for(|s| *s).await.is_ok() } => {
            if !stopped {
                // No one can stop us any more: just wait.
                tokio::time::sleep_until(t).await;
            }
            !stopped
        }
    }
}

/// How long a stop waits for deliveries in flight to finish.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Hands the acknowledgements to their consumer, which sends them. A lost
/// one means the channel is gone: the broker delivers again and the
/// applied set turns the repeat into a no-op.
fn ack_all(acks: Vec<Ack>) {
    for a in acks {
        a.ack();
    }
}

impl Dispatcher {
    /// Runs until `shutdown` fires: then takes no new work, gives deliveries
    /// in flight `grace` to finish, and leaves the rest queued (or
    /// unacknowledged, so the broker keeps it) for the next start.
    pub async fn run(
        self,
        mut notices: mpsc::UnboundedReceiver<Notice>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let me = Arc::new(self);
        let pause = Arc::new(Pause::default());
        let mut backlog = Backlog::default();
        // Embedded: seqs loaded or announced, so a late notice is not taken twice.
        let mut known: HashSet<u64> = HashSet::new();
        // Embedded: the queue is read up to here. Announcements from one
        // group flush may come in any order: an announced seq brings the
        // ones before it with it, so a link's later event cannot start
        // before its earlier one is even known.
        let mut read_upto: Option<u64> = None;
        // Broker: acknowledgements owed for seqs being delivered right now.
        let mut owed: HashMap<u64, Vec<Ack>> = HashMap::new();
        let mut busy: HashSet<Uuid> = HashSet::new();
        let mut blocked: HashSet<Uuid> = me
            .store
            .dead_letters()?
            .into_iter()
            .filter(|(k, _)| k.dest == me.dest)
            .map(|(_, dl)| dl.envelope.link_id)
            .collect();
        // Broker: links with messages parked in the store; new deliveries
        // of theirs are parked behind them, in order.
        let mut parked: HashSet<Uuid> = HashSet::new();
        // Broker: seqs parked while their delivery was under way; its end
        // takes the parked copy off (the delivery may have recorded its
        // end before the copy was written).
        let mut held_in_flight: HashSet<u64> = HashSet::new();
        // Broker: parked links whose next message waits for an earlier one.
        let mut gaps: HashMap<Uuid, Gap> = HashMap::new();
        // Broker: links that went on without an earlier message (the
        // operator's replay or discard), and from which seq.
        let mut went_on: HashMap<Uuid, u64> = HashMap::new();
        // Broker: since when the consumer's channel is (or may be) new.
        // The broker may still hold messages on a connection that just
        // died until it notices (its heartbeat timeout): empty readings of
        // the queue prove nothing missing before `order_wait` has passed.
        let mut connected_at = tokio::time::Instant::now();
        match me.source {
            Source::Embedded => {
                for (key, env) in me.store.pending(&me.dest)? {
                    known.insert(key.seq);
                    read_upto = read_upto.max(Some(key.seq));
                    backlog.entry(env.link_id, key.seq, || Waiting::new(env));
                }
            }
            // Parked messages of links no longer blocked are delivered first.
            // Links with parked messages take them first (the loop below
            // refills each one that is not blocked).
            Source::Broker => {
                parked.extend(me.store.held(&me.dest)?.into_iter().map(|(_, e)| e.link_id));
                went_on = me.store.went_on(&me.dest)?;
            }
        }
        let mut workers: JoinSet<(Uuid, u64, Done)> = JoinSet::new();
        // The link, seq and message of each delivery task, to know what a
        // panicking one was doing.
        let mut running: HashMap<tokio::task::Id, (Uuid, u64, Arc<Envelope>)> = HashMap::new();
        loop {
            // A parked link with nothing in memory takes its next messages
            // from the store.
            let stalled: Vec<Uuid> = parked
                .iter()
                .filter(|l| {
                    !blocked.contains(*l)
                        && !busy.contains(*l)
                        && backlog.link_len(**l) == 0
                        && gaps.get(*l).is_none_or(|g| g.recheck)
                })
                .copied()
                .collect();
            for link in stalled {
                let found = refill(
                    &me.store,
                    &me.dest,
                    link,
                    me.link_window,
                    &mut backlog,
                    &owed,
                    &mut parked,
                )?;
                note_gap(&mut gaps, &me.dest, link, found, me.order_wait);
            }
            // Hand out work: the first waiting message of every free link.
            // A stop takes no new work (its branch below may come a turn
            // after a returned delivery's).
            while workers.len() < me.concurrency && !*shutdown.borrow() {
                let Some((link, seq, w)) =
                    backlog.next(|l| !busy.contains(l) && !blocked.contains(l))
                else {
                    break;
                };
                busy.insert(link);
                owed.insert(seq, w.acks);
                let me2 = me.clone();
                let pause = pause.clone();
                let env = Arc::new(w.env);
                let stop = shutdown.clone();
                let span = info_span!("deliver", dest = %me.dest, link = %link, event = %env.event.id, kind = env.event.kind.name());
                let task = workers.spawn({
                    let env = env.clone();
                    async move {
                        let key = me2.key(seq);
                        let done = me2.deliver(&key, &env, &pause, stop).await;
                        (link, seq, done)
                    }
                    .instrument(span)
                });
                running.insert(task.id(), (link, seq, env));
            }
            let queued = backlog.len;
            with_status(&me.board, &me.dest, |s| {
                s.queued = queued + workers.len();
                s.in_flight = workers.len();
                s.blocked_links = blocked.len();
                s.parked_links = parked.len();
                s.waiting_links = gaps.keys().filter(|l| !blocked.contains(*l)).count();
                // Only while deliveries fail are those in flight old; with
                // a broker they are in no store tree (see `ops::status`).
                s.oldest_waiting_since = if s.retrying > 0 {
                    running
                        .values()
                        .map(|(_, _, env)| env.accepted_at.unwrap_or(env.event.occurred_at))
                        .min()
                } else {
                    None
                };
            });
            tokio::select! {
                _ = shutdown.changed() => {
                    let _ = tokio::time::timeout(me.grace, async {
                        while let Some(joined) = workers.join_next().await {
                            match joined {
                                Ok((_, seq, Done::Delivered)) if me.store.flush().await.is_ok() => {
                                    ack_all(owed.remove(&seq).unwrap_or_default());
                                }
                                // Recorded and flushed by its task: its copy
                                // for the broker's dead-letter queue, then the
                                // acknowledgement, as in the run.
                                Ok((_, seq, Done::Dead(dead))) => {
                                    if let Some(tx) = &me.on_dead {
                                        let _ = tx.send(*dead);
                                    }
                                    ack_all(owed.remove(&seq).unwrap_or_default());
                                }
                                _ => {}
                            }
                        }
                    })
                    .await;
                    workers.abort_all();
                    // Completions recorded before the stop wait on a flush
                    // to release their acknowledgements: do it now.
                    let _ = me.store.flush().await;
                    return Ok(());
                }
                notice = notices.recv() => match notice {
                    Some(Notice::Queued(_, _)) if me.source != Source::Embedded => {}
                    Some(Notice::Queued(key, env)) => {
                        // A notice may trail the start-up load: only what is
                        // still queued is work.
                        if read_upto.is_none_or(|r| key.seq > r) {
                            let from = read_upto.map_or(0, |r| r + 1);
                            let announced = key.seq;
                            // The announced one comes with its message; only
                            // earlier ones not yet announced are read.
                            let mut env = Some(*env);
                            for (key, read) in me.store.pending_between(&me.dest, from, announced, |s| s != announced)? {
                                if let Some(e) = read.or_else(|| env.take()) {
                                    if known.insert(key.seq) {
                                        backlog.entry(e.link_id, key.seq, || Waiting::new(e));
                                    }
                                }
                            }
                            read_upto = Some(announced);
                        } else if !known.contains(&key.seq) && me.store.is_queued(&key)? {
                            known.insert(key.seq);
                            backlog.entry(env.link_id, key.seq, || Waiting::new(*env));
                        }
                    }
                    Some(Notice::Delivered(key, env, acker)) => {
                        // Not this deskbridge's to deliver: checked first,
                        // as its seq is another store's and may equal one
                        // of ours under way.
                        if !me.store.has_link(env.link_id)? {
                            me.not_ours(&key, &env);
                            acker.reject();
                            continue;
                        }
                        let link = env.link_id;
                        let in_memory = backlog.link_len(link);
                        let known_here = owed.contains_key(&key.seq)
                            || backlog.contains(link, key.seq);
                        if let Some(g) = gaps.get_mut(&link) {
                            g.recheck |= g.missing == key.seq;
                        }
                        // Its link went on without it (the operator's replay
                        // or discard of the one that waited for it): not
                        // applied behind its successors unasked.
                        let late = !known_here
                            && went_on.get(&link).is_some_and(|at| key.seq < *at)
                            // A repeat of one that went through after all.
                            && me.store.applied(&env)?.is_none();
                        if late {
                            let at = me.key(went_on[&link]);
                            let dead = me.came_late(&key, *env, &at).await?;
                            blocked.insert(link);
                            gaps.remove(&link);
                            if let Some(tx) = &me.on_dead {
                                let _ = tx.send(dead);
                            }
                            acker.ack();
                            continue;
                        }
                        // Out of order (the broker delivered it before its
                        // link's previous message): parked, it waits there
                        // for that one (see `refill`).
                        if !known_here
                            && (blocked.contains(&link)
                                || parked.contains(&link)
                                || in_memory >= me.link_window
                                || me.store.is_held(&key)?
                                || !follows(&me.store, &env, &backlog, &owed)?)
                        {
                            // Park it behind its link's earlier messages (or
                            // its dead letter), durably, then free the
                            // broker's prefetch slot. The earlier ones the
                            // broker still has unacknowledged (waiting here
                            // or in flight) are parked with it: a parked
                            // link must owe the broker nothing older than
                            // what the store holds, or after a restart or a
                            // lost channel the store's later messages would
                            // go before the broker's redelivered earlier ones.
                            let mut acks = vec![acker];
                            for (seq, env, a) in backlog.take_acks(link) {
                                me.store.hold(&me.key(seq), env)?;
                                acks.extend(a);
                            }
                            for (l, seq, env) in running.values() {
                                match owed.get_mut(seq) {
                                    Some(a) if *l == link && !a.is_empty() => {
                                        me.store.hold(&me.key(*seq), env)?;
                                        acks.append(a);
                                        held_in_flight.insert(*seq);
                                    }
                                    _ => {}
                                }
                            }
                            me.store.hold(&key, &env)?;
                            me.store.flush().await?;
                            parked.insert(link);
                            ack_all(acks);
                        } else if let Some(acks) = owed.get_mut(&key.seq) {
                            acks.push(acker);
                        } else {
                            backlog
                                .entry(link, key.seq, || Waiting::new(*env))
                                .acks
                                .push(acker);
                        }
                    }
                    Some(Notice::Reset) => {
                        connected_at = tokio::time::Instant::now();
                        for g in gaps.values_mut() {
                            g.empty_reads = 0;
                        }
                        // Unacknowledged deliveries come again: forget them.
                        backlog.forget_delivered();
                        for acks in owed.values_mut() {
                            acks.clear();
                        }
                    }
                    Some(Notice::Depth(ready)) => {
                        let settled = connected_at.elapsed() >= me.order_wait;
                        let due: Vec<Uuid> = gaps.iter().filter(|(_, g)| g.due).map(|(l, _)| *l).collect();
                        for link in due {
                            let Some(g) = gaps.get_mut(&link) else { continue };
                            g.empty_reads = if ready == 0 && settled { g.empty_reads.saturating_add(1) } else { 0 };
                            if g.empty_reads < 2 || g.recheck || blocked.contains(&link) {
                                continue;
                            }
                            let missing = me.key(g.missing);
                            // Still to come: not yet published (the broker
                            // was down, say), or here by now.
                            if me.store.is_queued(&missing)?
                                || me.store.is_held(&missing)?
                                || follows(&me.store, &g.env, &backlog, &owed)?
                            {
                                g.recheck = true;
                                // Readings taken while it was still to come
                                // prove nothing.
                                g.empty_reads = 0;
                                continue;
                            }
                            let Some(g) = gaps.remove(&link) else { continue };
                            let dead = me.gave_up_waiting(g).await?;
                            blocked.insert(link);
                            if let Some(tx) = &me.on_dead {
                                let _ = tx.send(dead);
                            }
                        }
                    }
                    Some(Notice::Unblocked(link)) => {
                        // A replay or discard may have let it go on without
                        // an earlier message.
                        if me.source == Source::Broker {
                            if let Some(at) = me.store.went_on_at(&me.dest, link)? {
                                went_on.insert(link, at);
                            }
                        }
                        // Another dead letter of the link may remain.
                        let still_dead = me.store.dead_letters()?.iter().any(|(k, dl)| k.dest == me.dest && dl.envelope.link_id == link);
                        if still_dead {
                            continue;
                        }
                        blocked.remove(&link);
                        gaps.remove(&link);
                        // A replayed letter is back in the outbox (embedded)
                        // or parked with the link's later messages (broker).
                        match me.source {
                            Source::Embedded => {
                                for (key, env) in me.store.pending(&me.dest)? {
                                    if env.link_id == link && !owed.contains_key(&key.seq) {
                                        known.insert(key.seq);
                                        backlog.entry(link, key.seq, || Waiting::new(env));
                                    }
                                }
                            }
                            Source::Broker => {
                                let found = refill(&me.store, &me.dest, link, me.link_window, &mut backlog, &owed, &mut parked)?;
                                note_gap(&mut gaps, &me.dest, link, found, me.order_wait);
                            }
                        }
                        // Its messages may all have waited in memory.
                        backlog.wake(link);
                    }
                    None => return Ok(()),
                },
                _ = gap_due(&gaps) => {
                    // Due: given up only on proof that the broker's queue
                    // does not hold it either (`Notice::Depth`), so that a
                    // broker that is down, or a queue backed up behind a
                    // slow partner, is waited for.
                    let now = tokio::time::Instant::now();
                    for g in gaps.values_mut().filter(|g| !g.due && g.until <= now) {
                        g.due = true;
                        g.empty_reads = 0;
                    }
                }
                Some(joined) = workers.join_next_with_id(), if !workers.is_empty() => {
                    let (link, seq, done) = match joined {
                        Ok((id, r)) => {
                            running.remove(&id);
                            r
                        }
                        Err(e) => {
                            let Some((link, seq, env)) = running.remove(&e.id()) else {
                                // Every task is listed when spawned: a bug.
                                tracing::error!(dest = %me.dest, "an unknown delivery task failed: {e}");
                                continue;
                            };
                            // A panicking delivery is a bug, and would
                            // likely panic again: its message becomes a
                            // dead letter (seen in `deskbridge dead`,
                            // replayable once fixed) rather than holding
                            // its link busy, unseen, for ever.
                            let dead = me.bury_panicked(seq, &env, e).await?;
                            (link, seq, dead)
                        }
                    };
                    busy.remove(&link);
                    backlog.wake(link);
                    known.remove(&seq);
                    // Returned by a stop: its parked copy is what remains.
                    if held_in_flight.remove(&seq) && !matches!(done, Done::Returned) {
                        me.store.unhold(&me.key(seq))?;
                    }
                    let acks = owed.remove(&seq).unwrap_or_default();

                    match done {
                        Done::Delivered if acks.is_empty() => {
                            // Nobody waits on this record (embedded bus): a
                            // crash before it is flushed leaves the message
                            // queued, and its repeat is applied once by the
                            // receiver (message id, marker), as for a crash
                            // between the effect and the record.
                            me.store.flush_later();
                        }
                        Done::Delivered => {
                            // Acknowledged once the effect's record is
                            // durable, by the next flush (started by ingest
                            // or the daemon's tick, not for this alone).
                            let durable = me.store.flushed();
                            tokio::spawn(async move {
                                durable.await;
                                ack_all(acks);
                            });
                        }
                        Done::Dead(dead) => {
                            blocked.insert(link);
                            gaps.remove(&link);
                            if let Some(tx) = &me.on_dead {
                                let _ = tx.send(*dead);
                            }
                            ack_all(acks);
                        }
                        Done::Failed(e) => return Err(e),
                        // The stop under way handles the rest; unacknowledged,
                        // the broker keeps it.
                        Done::Returned => {}
                    }
                }
            }
        }
    }

    fn key(&self, seq: u64) -> QueueKey {
        QueueKey {
            dest: self.dest.clone(),
            seq,
        }
    }

    /// A broker message for a link that is not in this deskbridge's store
    /// goes to the destination's dead-letter queue at the broker, where
    /// whoever owns it can take it back (its link and seq are another
    /// store's: a dead letter here could be neither replayed nor told from
    /// ours). Not a stop: the daemon's own links go on.
    fn not_ours(&self, key: &QueueKey, env: &Envelope) {
        warn!(
            dest = %self.dest, link = %env.link_id, event = %env.event.id, message = %key.id(),
            "a message arrived for a link this deskbridge does not know, likely from another deskbridge on the same bus.prefix (give each its own bus.prefix), or its data_dir was replaced; moved to the broker's dead-letter queue of {}",
            self.dest
        );
        with_status(&self.board, &self.dest, |s| s.foreign += 1);
    }

    /// A message that waited `order_wait` for its link's earlier one, which
    /// the broker never delivered, becomes a dead letter that says so; its
    /// link waits behind it for the operator.
    async fn gave_up_waiting(&self, g: Gap) -> Result<(QueueKey, DeadLetter), StoreError> {
        let error = format!(
            "the broker delivered this before {}, the message its link sent before it, which has not arrived in {} s and is not in the broker's queue either (did the broker lose it?). \
             `deskbridge replay` applies this one without it (if it arrives meanwhile, it goes first); `deskbridge discard` drops this one",
            self.key(g.missing).id(),
            self.order_wait.as_secs()
        );
        warn!(dest = %self.dest, link = %g.env.link_id, event = %g.env.event.id, %error, "dead letter");
        let dl = DeadLetter {
            envelope: g.env,
            error,
            attempts: 0,
            at: Utc::now(),
            waited_for: Some(g.missing),
        };
        self.store.kill(&g.key, &dl)?;
        self.store.flush().await?;
        with_status(&self.board, &self.dest, |s| s.dead_lettered += 1);
        Ok((g.key, dl))
    }

    /// A message that arrived after its link went on without it becomes a
    /// dead letter: the operator decides whether it still applies.
    async fn came_late(
        &self,
        key: &QueueKey,
        env: Envelope,
        by: &QueueKey,
    ) -> Result<(QueueKey, DeadLetter), StoreError> {
        let error = format!(
            "arrived from the broker after its link went on without it (the operator replayed or discarded {}, which waited for an earlier message). \
             `deskbridge replay` applies it now: after its link's messages already applied, before those still waiting; `deskbridge discard` drops it",
            by.id()
        );
        warn!(dest = %self.dest, link = %env.link_id, event = %env.event.id, %error, "dead letter");
        self.dead_letter(key, env, error, 0).await
    }

    /// Moves a message to the dead letters, durably, and counts it.
    async fn dead_letter(
        &self,
        key: &QueueKey,
        envelope: Envelope,
        error: String,
        attempts: u32,
    ) -> Result<(QueueKey, DeadLetter), StoreError> {
        let dl = DeadLetter {
            envelope,
            error,
            attempts,
            at: Utc::now(),
            waited_for: None,
        };
        self.store.kill(key, &dl)?;
        self.store.flush().await?;
        with_status(&self.board, &self.dest, |s| s.dead_lettered += 1);
        Ok((key.clone(), dl))
    }

    /// A message whose link is not in the store, as a dead letter.
    async fn unknown_link(
        &self,
        key: &QueueKey,
        env: &Envelope,
        attempts: u32,
    ) -> Result<Done, StoreError> {
        let error = format!(
            "link {} is not in this deskbridge's store: the message came from another deskbridge (give each its own bus.prefix), or the data_dir was replaced. `deskbridge discard` drops it",
            env.link_id
        );
        warn!(dest = %self.dest, link = %env.link_id, event = %env.event.id, %error, "dead letter");
        let dead = self.dead_letter(key, env.clone(), error, attempts).await?;
        Ok(Done::Dead(Box::new(dead)))
    }

    /// Makes the message of a delivery task that panicked a dead letter.
    async fn bury_panicked(
        &self,
        seq: u64,
        env: &Envelope,
        e: tokio::task::JoinError,
    ) -> Result<Done, StoreError> {
        let why = match e.try_into_panic() {
            Ok(p) => p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into()),
            Err(e) => e.to_string(),
        };
        let error = format!(
            "deskbridge failed while delivering this (a bug; please report it with the log): {why}"
        );
        warn!(dest = %self.dest, link = %env.link_id, event = %env.event.id, %error, "dead letter");
        let key = self.key(seq);
        let dl = DeadLetter {
            envelope: env.clone(),
            error,
            attempts: 1,
            at: Utc::now(),
            waited_for: None,
        };
        self.store.kill(&key, &dl)?;
        self.store.flush().await?;
        with_status(&self.board, &self.dest, |s| s.dead_lettered += 1);
        Ok(Done::Dead(Box::new((key, dl))))
    }

    async fn deliver(
        &self,
        key: &QueueKey,
        env: &Envelope,
        pause: &Pause,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Done {
        /// Takes a retrying delivery off the status when it ends, however
        /// it ends: done, failed, panicked or aborted by a stop.
        /// The last one's end ends the outage, for the log too: the next
        /// failure is news again.
        struct Retrying<'a>(&'a Dispatcher, &'a Pause, bool);
        impl Drop for Retrying<'_> {
            fn drop(&mut self) {
                if self.2 {
                    with_status(&self.0.board, &self.0.dest, |s| {
                        s.retrying = s.retrying.saturating_sub(1);
                        if s.retrying == 0 {
                            s.failing = None;
                            s.failing_since = None;
                            s.oldest_waiting_since = None;
                            // Under the board's lock, so that a failure
                            // that starts the next outage finds it reset
                            // (the order is always board, then Said).
                            self.1.outage_over();
                        }
                    });
                }
            }
        }
        let mut retrying = Retrying(self, pause, false);
        match self
            .try_deliver(key, env, pause, &mut stop, &mut retrying.2)
            .await
        {
            Ok(d) => d,
            Err(e) => Done::Failed(e),
        }
    }

    async fn try_deliver(
        &self,
        key: &QueueKey,
        env: &Envelope,
        pause: &Pause,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        retrying: &mut bool,
    ) -> Result<Done, StoreError> {
        // Applied before a crash that came before the queue was updated.
        if let Some(applied) = self.store.applied(env)? {
            self.store.complete(key, env, &applied)?;
            self.store.flush().await?;
            return Ok(Done::Delivered);
        }
        let mut retry = Retry::new(self.retry);
        let mut attempts = 0u32;
        loop {
            if let Some(t) = pause.until() {
                if !wait_unless_stopped(t, stop).await {
                    return Ok(Done::Returned);
                }
            }
            attempts += 1;
            // Checked at delivery (broker); from the outbox a link always
            // comes with its events. Should one be missing all the same,
            // it is a dead letter that says so, not a stopped daemon.
            let Some(link) = self.store.link(env.link_id)? else {
                return self.unknown_link(key, env, attempts).await;
            };
            let ticket = link
                .sides(&self.dest)
                .and_then(|(mine, _)| mine.ticket.clone());
            let is_create = matches!(env.event.kind, EventKind::TicketCreated { .. });
            let result = match (&ticket, is_create) {
                // Replayed after it went through: the ticket is there.
                (Some(_), true) => Ok(Applied::default()),
                (None, false) => Err(SinkError::Permanent {
                    message: format!(
                        "the partner ticket in {} was never created (its transfer is a dead letter or was discarded)",
                        self.dest
                    ),
                }),
                _ => {
                    self.sink
                        .apply(Delivery {
                            envelope: env,
                            link: &link,
                            ticket: ticket.as_deref(),
                            blobs: &self.blobs,
                        })
                        .await
                }
            };
            match result {
                Ok(applied) => {
                    // Before the record: a crash between the two repeats
                    // the delivery, and the onward copy is taken once.
                    // (A transfer's ticket is the one it just created.)
                    if let (Some(o), Some(t)) =
                        (&self.onward, applied.ticket.as_ref().or(ticket.as_ref()))
                    {
                        o.onward(&self.dest, t, env.link_id, &env.event)
                            .await
                            .map_err(|e| match e {
                                crate::ingest::IngestError::Store(s) => s,
                                other => StoreError::Rejected(other.to_string()),
                            })?;
                    }
                    // Recorded, not yet flushed: the link may go on at once
                    // (its next effect comes after this one anyway); the
                    // broker is acknowledged only after the group flush. A
                    // crash before it redelivers, and the receiver applies
                    // a repeated message id once.
                    self.store.complete(key, env, &applied)?;
                    with_status(&self.board, &self.dest, |s| s.delivered += 1);
                    info!(attempts, "delivered");
                    return Ok(Done::Delivered);
                }
                Err(SinkError::Permanent { message }) => {
                    warn!(error = %message, "dead letter");
                    let dead = self
                        .dead_letter(key, env.clone(), message, attempts)
                        .await?;
                    return Ok(Done::Dead(Box::new(dead)));
                }
                Err(SinkError::Transient {
                    message,
                    retry_after,
                }) => {
                    let wait = retry.next_delay(retry_after);
                    if let Some(hint) = retry_after {
                        pause.extend(hint.min(wait));
                    }
                    let wait_ms = wait.as_millis() as u64;
                    match pause.worth_saying(&message) {
                        (true, failures) => {
                            warn!(error = %message, attempts, failures, wait_ms, "will retry")
                        }
                        (false, failures) => {
                            debug!(error = %message, attempts, failures, wait_ms, "will retry")
                        }
                    }
                    let first = !*retrying;
                    *retrying = true;
                    let accepted = env.accepted_at.unwrap_or(env.event.occurred_at);
                    with_status(&self.board, &self.dest, |s| {
                        if first {
                            s.retrying += 1;
                        }
                        s.failing = Some(message);
                        s.failing_since.get_or_insert_with(Utc::now);
                        // The dispatcher's next turn has the exact figure.
                        s.oldest_waiting_since =
                            Some(s.oldest_waiting_since.map_or(accepted, |o| o.min(accepted)));
                    });
                    if !wait_unless_stopped(tokio::time::Instant::now() + wait, stop).await {
                        return Ok(Done::Returned);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Ticket};
    use crate::link::Link;
    use futures::future::BoxFuture;

    /// Creates tickets, except for one link, where it fails once, then
    /// panics (a bug).
    struct PanicsFor(Uuid, std::sync::atomic::AtomicBool);

    impl Sink for PanicsFor {
        fn apply<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<Applied, SinkError>> {
            let bad = d.envelope.link_id == self.0;
            Box::pin(async move {
                if bad && !self.1.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    return Err(SinkError::Transient {
                        message: "503".into(),
                        retry_after: None,
                    });
                }
                if bad {
                    panic!("index out of range in the field mapping");
                }
                Ok(Applied {
                    ticket: Some("B-1".into()),
                    remote_ids: vec![],
                    ..Applied::default()
                })
            })
        }
    }

    fn waiting(acks: usize) -> Waiting {
        let link = Link::new("a", "T1", "b");
        Waiting {
            env: Envelope {
                link_id: link.id,
                dest: "b".into(),
                origin: "a".into(),
                accepted_at: None,
                after: None,
                event: Event::new(
                    "T1",
                    EventKind::TicketCreated {
                        ticket_data: Ticket::default(),
                    },
                ),
            },
            acks: (0..acks)
                .map(|i| Ack::for_test(i as u64 + 1, mpsc::unbounded_channel().0))
                .collect(),
            stored: false,
        }
    }

    #[test]
    fn the_backlog_hands_out_each_links_first_message_in_the_order_links_became_ready() {
        let (l1, l2, l3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut b = Backlog::default();
        b.entry(l2, 5, || waiting(0));
        b.entry(l1, 3, || waiting(0));
        b.entry(l1, 1, || waiting(0));
        b.entry(l3, 9, || waiting(1));
        // A repeat is the same message, not a new one.
        b.entry(l1, 1, || waiting(0));
        assert_eq!(b.len, 4);
        let busy: HashSet<Uuid> = [l1].into();
        let (l, seq, _) = b.next(|l| !busy.contains(l)).unwrap();
        assert_eq!((l, seq), (l2, 5));
        // l1 was busy: it waits to be woken; l3 is next.
        let (l, seq, _) = b.next(|l| !busy.contains(l)).unwrap();
        assert_eq!((l, seq), (l3, 9));
        assert!(b.next(|_| true).is_none());
        b.wake(l1);
        b.wake(l1);
        let (l, seq, _) = b.next(|_| true).unwrap();
        assert_eq!((l, seq), (l1, 1));
        assert_eq!((b.len, b.link_len(l1)), (1, 1));
        assert!(b.contains(l1, 3) && !b.contains(l1, 1));
        b.entry(l3, 10, || waiting(2));
        b.forget_delivered();
        assert_eq!((b.len, b.link_len(l3)), (1, 0));
        b.wake(l1);
        assert_eq!(b.next(|_| true).map(|(l, s, _)| (l, s)), Some((l1, 3)));
        assert_eq!(b.len, 0);
    }

    #[tokio::test]
    async fn a_panicking_delivery_becomes_a_dead_letter_and_frees_its_link() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let blobs = BlobStore::open(dir.path().join("blobs"), 1 << 20).unwrap();
        let (bad, good) = (Link::new("a", "T1", "b"), Link::new("a", "T2", "b"));
        let created = |link: &Link| Envelope {
            link_id: link.id,
            dest: "b".into(),
            origin: "a".into(),
            accepted_at: None,
            after: None,
            event: Event::new(
                link.upstream.ticket.clone().unwrap(),
                EventKind::TicketCreated {
                    ticket_data: Ticket::default(),
                },
            ),
        };
        for link in [&bad, &good] {
            store
                .ingest_tx(|tx| {
                    tx.put_link(link)?;
                    tx.enqueue(&mut created(link))
                })
                .unwrap();
        }
        let (dead_tx, mut dead_rx) = mpsc::unbounded_channel();
        let board = StatusBoard::default();
        let dispatcher = Dispatcher {
            dest: "b".into(),
            sink: Arc::new(PanicsFor(bad.id, Default::default())),
            store: store.clone(),
            blobs,
            concurrency: 4,
            retry: RetryPolicy {
                initial: Duration::from_millis(10),
                max_interval: Duration::from_millis(50),
            },
            board: board.clone(),
            source: Source::Embedded,
            on_dead: Some(dead_tx),
            grace: Duration::from_secs(1),
            link_window: 8,
            order_wait: Duration::from_secs(300),
            onward: None,
        };
        let (_notices_tx, notices) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let run = tokio::spawn(dispatcher.run(notices, stopped));
        let (_, dl) = tokio::time::timeout(Duration::from_secs(10), dead_rx.recv())
            .await
            .expect("a dead letter within 10 s")
            .unwrap();
        assert_eq!(dl.envelope.link_id, bad.id);
        assert!(dl.error.contains("a bug"), "{}", dl.error);
        assert!(dl.error.contains("index out of range"), "{}", dl.error);
        // The other link went through; nothing is left queued or in flight.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let s = board.lock().unwrap().get("b").cloned().unwrap_or_default();
            if s.delivered == 1 && s.in_flight == 0 {
                assert_eq!((s.dead_lettered, s.blocked_links, s.queued), (1, 1, 0));
                // The retry before the panic is over too.
                assert_eq!((s.retrying, s.failing.as_deref()), (0, None), "{s:?}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{s:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.dead_letters().unwrap().len(), 1);
        assert!(store.pending("b").unwrap().is_empty());
        stop.send(true).unwrap();
        run.await.unwrap().unwrap();
    }

    /// Applies `FieldChanged` values in the order it is called; one value
    /// may fail permanently the first time (after a while), or be slow.
    struct Order {
        got: Mutex<Vec<String>>,
        dies_once: Option<&'static str>,
        died: std::sync::atomic::AtomicBool,
        slow: Option<&'static str>,
    }

    impl Order {
        fn new(dies_once: Option<&'static str>, slow: Option<&'static str>) -> Arc<Order> {
            Arc::new(Order {
                got: Default::default(),
                dies_once,
                died: Default::default(),
                slow,
            })
        }

        fn got(&self) -> Vec<String> {
            self.got.lock().unwrap().clone()
        }
    }

    impl Sink for Order {
        fn apply<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<Applied, SinkError>> {
            Box::pin(async move {
                let v = match &d.envelope.event.kind {
                    EventKind::FieldChanged { value, .. } => value.clone(),
                    _ => "?".into(),
                };
                if self.slow == Some(v.as_str()) || self.dies_once == Some(v.as_str()) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if self.dies_once == Some(v.as_str())
                    && !self.died.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    return Err(SinkError::Permanent {
                        message: "422".into(),
                    });
                }
                self.got.lock().unwrap().push(v);
                Ok(Applied::default())
            })
        }
    }

    /// A dispatcher for one link whose partner ticket exists.
    struct OneLink {
        store: Store,
        board: StatusBoard,
        link: Link,
        notices: mpsc::UnboundedSender<Notice>,
        acks: mpsc::UnboundedSender<crate::bus::amqp::Settle>,
        dead: mpsc::UnboundedReceiver<(QueueKey, DeadLetter)>,
        stop: tokio::sync::watch::Sender<bool>,
        run: tokio::task::JoinHandle<Result<(), StoreError>>,
        _dir: tempfile::TempDir,
    }

    impl OneLink {
        /// Broker mode, with messages parked before the start.
        fn start(sink: Arc<Order>, link_window: usize, held: &[&str]) -> OneLink {
            OneLink::start_on(Source::Broker, sink, link_window, held)
        }

        fn start_on(
            source: Source,
            sink: Arc<Order>,
            link_window: usize,
            held: &[&str],
        ) -> OneLink {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("db")).unwrap();
            let blobs = BlobStore::open(dir.path().join("blobs"), 1 << 20).unwrap();
            let mut link = Link::new("a", "T1", "b");
            link.downstream.ticket = Some("B-1".into());
            store.ingest_tx(|tx| tx.put_link(&link)).unwrap();
            let (on_dead, dead) = mpsc::unbounded_channel();
            let board = StatusBoard::default();
            let mut one = OneLink {
                store: store.clone(),
                board: board.clone(),
                link,
                notices: mpsc::unbounded_channel().0,
                acks: mpsc::unbounded_channel().0,
                dead,
                stop: tokio::sync::watch::channel(false).0,
                run: tokio::spawn(async { Ok(()) }),
                _dir: dir,
            };
            for (i, v) in held.iter().enumerate() {
                store.hold(&one.key(i as u64 + 1), &one.env(v)).unwrap();
            }
            let d = Dispatcher {
                dest: "b".into(),
                sink,
                store,
                blobs,
                concurrency: 4,
                retry: RetryPolicy {
                    initial: Duration::from_millis(10),
                    max_interval: Duration::from_millis(50),
                },
                board,
                source,
                on_dead: Some(on_dead),
                grace: Duration::from_secs(1),
                link_window,
                order_wait: ORDER_WAIT,
                onward: None,
            };
            let (notices, rx) = mpsc::unbounded_channel();
            let (stop, stopped) = tokio::sync::watch::channel(false);
            one.notices = notices;
            one.stop = stop;
            one.run = tokio::spawn(d.run(rx, stopped));
            one
        }

        fn key(&self, seq: u64) -> QueueKey {
            QueueKey {
                dest: "b".into(),
                seq,
            }
        }

        /// The same event for the same value (a repeat is the same event).
        fn env(&self, v: &str) -> Envelope {
            let mut event = Event::new(
                "T1",
                EventKind::FieldChanged {
                    field: "f".into(),
                    value: v.into(),
                },
            );
            event.id = Uuid::from_u128(v.parse().unwrap());
            Envelope {
                link_id: self.link.id,
                dest: "b".into(),
                origin: "a".into(),
                accepted_at: None,
                after: None,
                event,
            }
        }

        /// The broker delivers seq `seq` (value `v`).
        fn deliver(&self, seq: u64, v: &str) {
            self.deliver_env(seq, self.env(v));
        }

        fn deliver_env(&self, seq: u64, env: Envelope) {
            let ack = Ack::for_test(seq, self.acks.clone());
            let n = Notice::Delivered(self.key(seq), Box::new(env), ack);
            self.notices.send(n).unwrap();
        }

        /// Seq `seq` (value `v`), which its link sent after seq `seq - 1`
        /// (value `before`).
        fn deliver_after(&self, seq: u64, v: &str, before: &str) {
            let mut env = self.env(v);
            env.after = Some(crate::store::After {
                seq: seq - 1,
                event: self.env(before).event.id,
            });
            self.deliver_env(seq, env);
        }

        /// What `deskbridge replay` does (broker mode).
        fn replay(&self, key: &QueueKey) {
            self.store.replay(key, true).unwrap();
            self.notices.send(Notice::Unblocked(self.link.id)).unwrap();
        }

        /// What `deskbridge discard` does.
        fn discard(&self, key: &QueueKey) {
            self.store.discard(key).unwrap();
            self.notices.send(Notice::Unblocked(self.link.id)).unwrap();
        }

        async fn stop(self) {
            self.stop.send(true).unwrap();
            self.run.await.unwrap().unwrap();
        }
    }

    const ORDER_WAIT: Duration = Duration::from_millis(400);

    /// A message for a link this deskbridge does not know (another
    /// deskbridge's, on the same bus prefix, with a seq of its own store
    /// that equals one of ours) goes to the broker's dead-letter queue and
    /// is counted; the relay goes on and delivers its own, once.
    #[tokio::test]
    async fn a_message_for_an_unknown_link_is_rejected_and_the_relay_goes_on() {
        use crate::bus::amqp::Settle;
        let sink = Order::new(None, None);
        let mut one = OneLink::start(sink.clone(), 8, &[]);
        let (acks, mut settled) = mpsc::unbounded_channel();
        one.acks = acks;
        let mut theirs = one.env("7");
        theirs.link_id = Uuid::now_v7();
        one.deliver_env(1, theirs);
        one.deliver(1, "1");
        async fn next(settled: &mut mpsc::UnboundedReceiver<Settle>) -> Option<Settle> {
            tokio::time::timeout(Duration::from_secs(5), settled.recv())
                .await
                .expect("settled in time")
        }
        assert_eq!(next(&mut settled).await, Some(Settle::Reject(1)));
        let board = one.board.clone();
        let mut dead = std::mem::replace(&mut one.dead, mpsc::unbounded_channel().1);
        // The ack waits for a flush, which the stop makes.
        one.stop().await;
        assert_eq!(next(&mut settled).await, Some(Settle::Ack(1)));
        assert_eq!(sink.got(), ["1"]);
        assert!(dead.try_recv().is_err(), "no dead letter in this store");
        let b = board.lock().unwrap();
        assert_eq!((b["b"].foreign, b["b"].delivered), (1, 1));
    }

    /// The broker delivers a link's later message before its earlier one
    /// (it refused the earlier one from a publish batch and took the later,
    /// then took the earlier one's republish): the later one waits for it.
    #[tokio::test]
    async fn a_message_delivered_before_its_links_earlier_one_waits_for_it() {
        let sink = Order::new(None, None);
        let mut one = OneLink::start(sink.clone(), 8, &[]);
        one.deliver(1, "1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        one.deliver_after(3, "3", "2");
        one.deliver_after(4, "4", "3");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sink.got(), ["1"]);
        one.deliver_after(2, "2", "1");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(one.dead.try_recv().is_err());
        one.stop().await;
        assert_eq!(sink.got(), ["1", "2", "3", "4"]);
    }

    /// Gives up on the waiting message, as after `order_wait` with the
    /// broker's queue read empty twice.
    async fn give_up(one: &mut OneLink) -> (QueueKey, DeadLetter) {
        tokio::time::sleep(ORDER_WAIT + Duration::from_millis(100)).await;
        one.notices.send(Notice::Depth(0)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            one.dead.try_recv().is_err(),
            "one empty reading is not enough"
        );
        one.notices.send(Notice::Depth(0)).unwrap();
        tokio::time::timeout(Duration::from_secs(2), one.dead.recv())
            .await
            .unwrap()
            .unwrap()
    }

    /// The earlier message never comes (the broker lost it): after
    /// `order_wait`, and only once the broker's queue is read empty, the
    /// later one becomes a dead letter that says so, and holds its link;
    /// when the earlier one turns up after all, a replay sends both in
    /// order.
    #[tokio::test]
    async fn a_message_whose_earlier_one_never_comes_becomes_a_dead_letter() {
        let sink = Order::new(None, None);
        let mut one = OneLink::start(sink.clone(), 8, &[]);
        one.deliver(1, "1");
        one.deliver_after(3, "3", "2");
        // Messages wait at the broker: the missing one may be among them.
        tokio::time::sleep(ORDER_WAIT + Duration::from_millis(100)).await;
        for _ in 0..3 {
            one.notices.send(Notice::Depth(5)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(one.dead.try_recv().is_err());
        let s = one.board.lock().unwrap()["b"].clone();
        assert_eq!(s.waiting_links, 1);
        let (key, dl) = give_up(&mut one).await;
        assert_eq!((key.seq, dl.waited_for), (3, Some(2)));
        assert!(
            dl.error.contains("before b:2") && dl.error.contains("has not arrived"),
            "{}",
            dl.error
        );
        assert_eq!(sink.got(), ["1"]);
        one.deliver_after(2, "2", "1");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sink.got(), ["1"], "held behind the dead letter");
        one.replay(&key);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = one.board.lock().unwrap()["b"].clone();
        assert_eq!((s.waiting_links, s.blocked_links), (0, 0));
        one.stop().await;
        assert_eq!(sink.got(), ["1", "2", "3"]);
    }

    /// The missing message turns up after the operator replayed the one
    /// that waited for it: it becomes a dead letter, not an effect behind
    /// its successors. And a link with two dead letters stays held until
    /// both are dealt with.
    #[tokio::test]
    async fn a_message_that_comes_after_its_link_went_on_is_a_dead_letter() {
        let sink = Order::new(Some("4"), None);
        let mut one = OneLink::start(sink.clone(), 8, &[]);
        one.deliver(1, "1");
        one.deliver_after(3, "3", "2");
        let (waited, _) = give_up(&mut one).await;
        one.replay(&waited);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sink.got(), ["1", "3"]);
        // 4 is refused: a dead letter; then 2 comes after all.
        one.deliver_after(4, "4", "3");
        let (refused, _) = one.dead.recv().await.unwrap();
        assert_eq!(refused.seq, 4);
        one.deliver_after(2, "2", "1");
        let (late, dl) = tokio::time::timeout(Duration::from_secs(2), one.dead.recv())
            .await
            .expect("the late one is a dead letter")
            .unwrap();
        assert_eq!(late.seq, 2);
        assert!(
            dl.error
                .contains("went on without it (the operator replayed or discarded b:3,"),
            "{}",
            dl.error
        );
        // Replaying the late one does not free the link while 4 is dead.
        one.replay(&late);
        one.deliver_after(5, "5", "4");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sink.got(), ["1", "3"]);
        one.discard(&refused);
        tokio::time::sleep(Duration::from_millis(200)).await;
        one.stop().await;
        assert_eq!(sink.got(), ["1", "3", "2", "5"]);
    }

    /// Two messages lost, the third given up on and replayed: the first of
    /// the two turning up later is a dead letter too, not an effect behind
    /// the third. And empty readings of the queue just after the consumer
    /// reconnected prove nothing (the broker may still hold the missing
    /// message on the lost connection).
    #[tokio::test]
    async fn every_message_a_link_went_on_without_is_a_dead_letter_when_it_comes() {
        let sink = Order::new(None, None);
        let mut one = OneLink::start(sink.clone(), 8, &[]);
        one.deliver(1, "1");
        one.deliver_after(4, "4", "3");
        tokio::time::sleep(ORDER_WAIT + Duration::from_millis(100)).await;
        one.notices.send(Notice::Reset).unwrap();
        for _ in 0..3 {
            one.notices.send(Notice::Depth(0)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            one.dead.try_recv().is_err(),
            "given up just after a reconnect"
        );
        let (waited, _) = give_up(&mut one).await;
        assert_eq!(waited.seq, 4);
        one.replay(&waited);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sink.got(), ["1", "4"]);
        one.deliver_after(2, "2", "1");
        let (late, _) = tokio::time::timeout(Duration::from_secs(2), one.dead.recv())
            .await
            .expect("the late one is a dead letter")
            .unwrap();
        assert_eq!(late.seq, 2);
        one.stop().await;
        assert_eq!(sink.got(), ["1", "4"]);
    }

    /// Embedded bus: one group flush announces its events from several
    /// tasks, in any order; a link's later event must still wait for its
    /// earlier one.
    #[tokio::test]
    async fn announcements_out_of_order_still_apply_a_link_in_order() {
        let sink = Order::new(None, Some("1"));
        let one = OneLink::start_on(Source::Embedded, sink.clone(), 64, &[]);
        // Running (its start-up read of the queue done) before they come.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut queued = vec![];
        for v in ["1", "2", "3"] {
            let env = one.env(v);
            let key = one
                .store
                .ingest_tx(|tx| tx.enqueue(&mut env.clone()))
                .unwrap();
            queued.push((key, env));
        }
        for (key, env) in queued.into_iter().rev() {
            one.notices
                .send(Notice::Queued(key, Box::new(env)))
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        one.stop().await;
        assert_eq!(sink.got(), ["1", "2", "3"]);
    }

    /// A dead letter replayed while its link's later message fills the
    /// memory window still goes first.
    #[tokio::test]
    async fn a_replayed_dead_letter_goes_before_a_later_message_in_a_full_window() {
        let sink = Order::new(Some("1"), None);
        let mut one = OneLink::start(sink.clone(), 1, &[]);
        one.deliver(1, "1");
        tokio::time::sleep(Duration::from_millis(5)).await;
        one.deliver(2, "2");
        let (key, _) = one.dead.recv().await.unwrap();
        assert_eq!(key.seq, 1);
        one.replay(&key);
        tokio::time::sleep(Duration::from_millis(300)).await;
        one.stop().await;
        assert_eq!(sink.got(), ["1", "2"]);
    }

    /// A repeat of a parked message (a republish, or a redelivery whose
    /// park acknowledgement was lost) and then a lost channel: the parked
    /// message stays in line.
    #[tokio::test]
    async fn a_lost_channel_keeps_a_parked_message_that_a_repeat_reached() {
        let sink = Order::new(None, Some("5"));
        let one = OneLink::start(sink.clone(), 3, &["5", "6", "7"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        one.deliver(2, "6");
        one.notices.send(Notice::Reset).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        one.deliver(2, "6");
        tokio::time::sleep(Duration::from_millis(300)).await;
        one.stop().await;
        assert_eq!(sink.got(), ["5", "6", "7"]);
    }
}
