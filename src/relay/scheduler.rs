//! The relay's scheduler: one loop per destination that takes notices from
//! its inbox, hands each free link's next message to a delivery task, and
//! records how each ended. Ordered per link, concurrent across links; a
//! failing event holds back only the later events of its own link. Apply,
//! record, then take off the queue (or acknowledge to the broker).

use super::dispatcher::Dispatcher;
use super::done::Done;
use super::inbox::Inbox;
use super::pause::Pause;
use super::status::with_status;
use super::work::{ack_all, Work};
use crate::bus::notify::Notice;
use crate::store::StoreError;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};
use tracing::{info_span, Instrument};
use uuid::Uuid;

impl Dispatcher {
    /// Runs until `shutdown` fires: then takes no new work, gives deliveries
    /// in flight `grace` to finish, and leaves the rest queued (or
    /// unacknowledged, so the broker keeps it) for the next start.
    pub async fn run(
        self,
        notices: mpsc::UnboundedReceiver<Notice>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        Scheduler::open(self, notices, shutdown)?.run().await
    }
}

/// What a delivery task returns: its link, its seq and how it ended.
type Finished = (Uuid, u64, Done);

struct Scheduler {
    d: Arc<Dispatcher>,
    /// The partner's "not before", shared by the destination's deliveries.
    pause: Arc<Pause>,
    work: Work,
    inbox: Inbox,
    workers: JoinSet<Finished>,
    notices: mpsc::UnboundedReceiver<Notice>,
    shutdown: watch::Receiver<bool>,
}

impl Scheduler {
    /// The links that dead letters hold, and what the inbox has waiting.
    fn open(
        d: Dispatcher,
        notices: mpsc::UnboundedReceiver<Notice>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Scheduler, StoreError> {
        let d = Arc::new(d);
        let mut work = Work {
            blocked: d
                .store
                .dead_letters()?
                .into_iter()
                .filter(|(k, _)| k.dest == d.dest)
                .map(|(_, dl)| dl.envelope.link_id)
                .collect(),
            ..Work::default()
        };
        let inbox = Inbox::open(&d, &mut work)?;
        Ok(Scheduler {
            d,
            pause: Arc::new(Pause::default()),
            work,
            inbox,
            workers: JoinSet::new(),
            notices,
            shutdown,
        })
    }

    async fn run(mut self) -> Result<(), StoreError> {
        loop {
            self.inbox.refill_stalled(&self.d, &mut self.work)?;
            self.hand_out();
            self.report();
            tokio::select! {
                _ = self.shutdown.changed() => {
                    self.stop().await;
                    return Ok(());
                }
                notice = self.notices.recv() => match notice {
                    Some(notice) => self.take(notice).await?,
                    None => return Ok(()),
                },
                _ = self.inbox.gap_due() => self.inbox.gaps_due(),
                Some(joined) = self.workers.join_next_with_id(), if !self.workers.is_empty() => {
                    self.finish(joined).await?;
                }
            }
        }
    }

    /// Hands out work: the first waiting message of every free link. A stop
    /// takes no new work (its branch in `run` may come a turn after a
    /// returned delivery's).
    fn hand_out(&mut self) {
        while self.workers.len() < self.d.concurrency && !*self.shutdown.borrow() {
            let work = &mut self.work;
            let Some((link, seq, w)) = work
                .backlog
                .next(|l| !work.busy.contains(l) && !work.blocked.contains(l))
            else {
                break;
            };
            work.busy.insert(link);
            work.owed.insert(seq, w.acks);
            let d = self.d.clone();
            let pause = self.pause.clone();
            let env = Arc::new(w.env);
            let stop = self.shutdown.clone();
            let span = info_span!("deliver", dest = %self.d.dest, link = %link, event = %env.event.id, kind = env.event.kind.name());
            let task = self.workers.spawn({
                let env = env.clone();
                async move {
                    let key = d.key(seq);
                    let done = d.deliver(&key, &env, &pause, stop).await;
                    (link, seq, done)
                }
                .instrument(span)
            });
            self.work.running.insert(task.id(), (link, seq, env));
        }
    }

    /// Shows the destination's queue on the status board.
    fn report(&self) {
        let work = &self.work;
        let queued = work.backlog.len;
        let in_flight = self.workers.len();
        let parked_links = self.inbox.parked_links();
        let waiting_links = self.inbox.waiting_links(&work.blocked);
        with_status(&self.d.board, &self.d.dest, |s| {
            s.queued = queued + in_flight;
            s.in_flight = in_flight;
            s.blocked_links = work.blocked.len();
            s.parked_links = parked_links;
            s.waiting_links = waiting_links;
            // Only while deliveries fail are those in flight old; with a
            // broker they are in no store tree (see `ops::status`).
            s.oldest_waiting_since = if s.retrying > 0 {
                work.running
                    .values()
                    .map(|(_, _, env)| env.accepted_at.unwrap_or(env.event.occurred_at))
                    .min()
            } else {
                None
            };
        });
    }

    /// Takes one notice from ingest, the broker's consumer or an operator.
    async fn take(&mut self, notice: Notice) -> Result<(), StoreError> {
        let (d, work) = (&self.d, &mut self.work);
        match notice {
            Notice::Queued(key, env) => self.inbox.queued(d, work, key, *env),
            Notice::Delivered(key, env, ack) => self.inbox.delivered(d, work, key, *env, ack).await,
            Notice::Reset => {
                self.inbox.reset(work);
                Ok(())
            }
            Notice::Depth(ready) => self.inbox.depth(d, work, ready).await,
            Notice::Unblocked(link) => self.unblocked(link),
        }
    }

    /// An operator put a dead letter of `link` back, or gave it up.
    fn unblocked(&mut self, link: Uuid) -> Result<(), StoreError> {
        let d = &self.d;
        self.inbox.may_have_gone_on(d, link)?;
        // Another dead letter of the link may remain.
        let still_dead = d
            .store
            .dead_letters()?
            .iter()
            .any(|(k, dl)| k.dest == d.dest && dl.envelope.link_id == link);
        if still_dead {
            return Ok(());
        }
        self.work.blocked.remove(&link);
        self.inbox.unblocked(d, &mut self.work, link)?;
        // Its messages may all have waited in memory.
        self.work.backlog.wake(link);
        Ok(())
    }

    /// Records how a delivery task ended, and settles what it owes.
    async fn finish(
        &mut self,
        joined: Result<(tokio::task::Id, Finished), JoinError>,
    ) -> Result<(), StoreError> {
        let d = self.d.clone();
        let (link, seq, done) = match joined {
            Ok((id, r)) => {
                self.work.running.remove(&id);
                r
            }
            Err(e) => {
                let Some((link, seq, env)) = self.work.running.remove(&e.id()) else {
                    // Every task is listed when spawned: a bug.
                    tracing::error!(dest = %d.dest, "an unknown delivery task failed: {e}");
                    return Ok(());
                };
                // A panicking delivery is a bug, and would likely panic
                // again: its message becomes a dead letter (seen in
                // `deskbridge dead`, replayable once fixed) rather than
                // holding its link busy, unseen, for ever.
                let dead = d.bury_panicked(seq, &env, e).await?;
                (link, seq, dead)
            }
        };
        self.work.busy.remove(&link);
        self.work.backlog.wake(link);
        self.inbox.finished(&d, &mut self.work, link, seq, &done)?;
        let acks = self.work.owed.remove(&seq).unwrap_or_default();
        match done {
            Done::Delivered if acks.is_empty() => {
                // Nobody waits on this record (embedded bus): a crash before
                // it is flushed leaves the message queued, and its repeat is
                // applied once by the receiver (message id, marker), as for
                // a crash between the effect and the record.
                d.store.flush_later();
            }
            Done::Delivered => {
                // Acknowledged once the effect's record is durable, by the
                // next flush (started by ingest or the daemon's tick, not
                // for this alone).
                let durable = d.store.flushed();
                tokio::spawn(async move {
                    durable.await;
                    ack_all(acks);
                });
            }
            Done::Dead(dead) => {
                self.work.blocked.insert(link);
                self.inbox.buried(&d, &mut self.work, link, seq)?;
                d.tell_dead(*dead);
                ack_all(acks);
            }
            Done::Failed(e) => return Err(e),
            // The stop under way handles the rest; unacknowledged, the
            // broker keeps it.
            Done::Returned => {}
        }
        Ok(())
    }

    /// Stopping: deliveries in flight get `grace` to finish; the rest stays
    /// queued (or unacknowledged, so the broker keeps it).
    async fn stop(&mut self) {
        let (d, workers, owed) = (&self.d, &mut self.workers, &mut self.work.owed);
        let _ = tokio::time::timeout(d.grace, async {
            while let Some(joined) = workers.join_next().await {
                match joined {
                    Ok((_, seq, Done::Delivered)) if d.store.flush().await.is_ok() => {
                        ack_all(owed.remove(&seq).unwrap_or_default());
                    }
                    // Recorded and flushed by its task: its copy for the
                    // broker's dead-letter queue, then the acknowledgement,
                    // as in the run.
                    Ok((_, seq, Done::Dead(dead))) => {
                        d.tell_dead(*dead);
                        ack_all(owed.remove(&seq).unwrap_or_default());
                    }
                    _ => {}
                }
            }
        })
        .await;
        workers.abort_all();
        // Completions recorded before the stop wait on a flush to release
        // their acknowledgements: do it now.
        let _ = d.store.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobStore;
    use crate::bus::ack::Ack;
    use crate::connector::sink::{Delivery, Sink, SinkError};
    use crate::event::{Event, EventKind, Ticket};
    use crate::link::Link;
    use crate::relay::dispatcher::Source;
    use crate::relay::status::StatusBoard;
    use crate::retry::RetryPolicy;
    use crate::store::{Applied, DeadLetter, Envelope, QueueKey, Store};
    use futures::future::BoxFuture;
    use std::sync::Mutex;
    use std::time::Duration;

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
            window: 1024,
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
        acks: mpsc::UnboundedSender<crate::bus::ack::Settle>,
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
                window: 1024,
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
            let ack = Ack::new(seq, self.acks.clone());
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
        use crate::bus::ack::Settle;
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
