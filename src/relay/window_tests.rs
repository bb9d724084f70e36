//! The embedded inbox's window: a backlog far larger than the window is
//! delivered whole, in order per link, while a stuck link holds back only
//! itself and memory holds the window, not the backlog.

use super::dispatcher::{Dispatcher, Source};
use super::status::StatusBoard;
use crate::blob::BlobStore;
use crate::bus::notify::Notice;
use crate::connector::sink::{Delivery, Sink, SinkError};
use crate::event::{Event, EventKind};
use crate::link::Link;
use crate::retry::RetryPolicy;
use crate::store::{Applied, Envelope, QueueKey, Store};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

const WINDOW: usize = 8;
const LINK_WINDOW: usize = 2;
const CONCURRENCY: usize = 2;

/// Records each link's values in the order applied; the stuck link's
/// deliveries wait until it is let go, and one value fails for good once.
struct Recorder {
    got: Mutex<HashMap<Uuid, Vec<u32>>>,
    stuck: Uuid,
    go: watch::Receiver<bool>,
    dies: Mutex<Option<(Uuid, u32)>>,
}

impl Sink for Recorder {
    fn apply<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<Applied, SinkError>> {
        Box::pin(async move {
            let link = d.envelope.link_id;
            let v: u32 = match &d.envelope.event.kind {
                EventKind::FieldChanged { value, .. } => value.parse().unwrap(),
                _ => unreachable!(),
            };
            if link == self.stuck {
                let mut go = self.go.clone();
                let _ = go.wait_for(|g| *g).await;
            }
            let mut dies = self.dies.lock().unwrap();
            if *dies == Some((link, v)) {
                *dies = None;
                return Err(SinkError::Permanent {
                    message: "422 refused".into(),
                });
            }
            drop(dies);
            self.got.lock().unwrap().entry(link).or_default().push(v);
            Ok(Applied::default())
        })
    }
}

fn env(link: Uuid, v: u32) -> Envelope {
    Envelope {
        link_id: link,
        dest: "b".into(),
        origin: "a".into(),
        accepted_at: None,
        after: None,
        event: Event::new(
            "T1",
            EventKind::FieldChanged {
                field: "f".into(),
                value: v.to_string(),
            },
        ),
    }
}

fn queue(store: &Store, link: Uuid, v: u32) -> (QueueKey, Envelope) {
    store
        .ingest_tx(|tx| {
            let mut e = env(link, v);
            Ok((tx.enqueue(&mut e)?, e))
        })
        .unwrap()
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_past_the_window_is_delivered_whole_in_order_around_a_stuck_link() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let blobs = BlobStore::open(dir.path().join("blobs"), 1 << 20).unwrap();
    let links: Vec<Link> = (0..22)
        .map(|i| {
            let mut l = Link::new("a", &format!("T{i}"), "b");
            l.downstream.ticket = Some(format!("B-{i}"));
            store.ingest_tx(|tx| tx.put_link(&l)).unwrap();
            l
        })
        .collect();
    let ids: Vec<Uuid> = links.iter().map(|l| l.id).collect();
    let (stuck, dying) = (ids[0], ids[21]);
    // The stuck link's 40 messages come first, then the others' five each,
    // then the dying link's: all queued before the relay starts.
    let mut queued = 0;
    for v in 0..40 {
        queue(&store, stuck, v);
        queued += 1;
    }
    for v in 0..5 {
        for &l in &ids[1..] {
            queue(&store, l, v);
            queued += 1;
        }
    }
    let (go_tx, go) = watch::channel(false);
    let sink = std::sync::Arc::new(Recorder {
        got: Default::default(),
        stuck,
        go,
        dies: Mutex::new(Some((dying, 1))),
    });
    let board = StatusBoard::default();
    let (on_dead, mut dead) = mpsc::unbounded_channel();
    let d = Dispatcher {
        dest: "b".into(),
        sink: sink.clone(),
        store: store.clone(),
        blobs,
        concurrency: CONCURRENCY,
        retry: RetryPolicy {
            initial: Duration::from_millis(10),
            max_interval: Duration::from_millis(50),
        },
        board: board.clone(),
        source: Source::Embedded,
        on_dead: Some(on_dead),
        grace: Duration::from_secs(1),
        window: WINDOW,
        link_window: LINK_WINDOW,
        order_wait: Duration::from_millis(400),
        onward: None,
    };
    let (notices, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    let run = tokio::spawn(d.run(rx, stopped));
    // More comes while the relay runs, announced as ingest does.
    for v in 5..10 {
        for &l in &ids[1..21] {
            let (key, e) = queue(&store, l, v);
            notices.send(Notice::Queued(key, Box::new(e))).unwrap();
            queued += 1;
        }
    }
    let count = |l: &Uuid| sink.got.lock().unwrap().get(l).map_or(0, Vec::len);
    let most_in_memory = WINDOW + LINK_WINDOW + CONCURRENCY;
    let bounded = || {
        let q = board.lock().unwrap().get("b").map_or(0, |s| s.queued);
        assert!(q <= most_in_memory, "{q} messages in memory");
    };
    // The others are delivered whole while the stuck link waits.
    until("the other links' messages", || {
        bounded();
        ids[1..21].iter().all(|l| count(l) == 10)
    })
    .await;
    // The dying link's message 1 became a dead letter; 2..4 wait behind it.
    let (key, _) = dead.recv().await.unwrap();
    assert_eq!(count(&dying), 1);
    assert_eq!(count(&stuck), 0);
    assert!(
        store.has_waiting("b", stuck).unwrap(),
        "the stuck link's rest waits on disk"
    );
    // Replayed, it goes first, then the rest of its link.
    store.replay(&key, false).unwrap();
    notices.send(Notice::Unblocked(dying)).unwrap();
    until("the replayed link", || count(&dying) == 5).await;
    go_tx.send(true).unwrap();
    until("the stuck link's messages", || {
        bounded();
        count(&stuck) == 40
    })
    .await;
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(got[&stuck], (0..40).collect::<Vec<_>>());
    assert_eq!(got[&dying], (0..5).collect::<Vec<_>>());
    for l in &ids[1..21] {
        assert_eq!(got[l], (0..10).collect::<Vec<_>>(), "in order, once");
    }
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), queued);
    assert_eq!(store.queue_len("b"), 0);
    stop.send(true).unwrap();
    run.await.unwrap().unwrap();
}
