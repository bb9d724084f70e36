//! Relay: one dispatcher per destination endpoint. Ordered per link,
//! concurrent across links; a failing event holds back only the later
//! events of its own link. Apply, record, then take off the queue.

use crate::blob::BlobStore;
use crate::bus::embedded::Notice;
use crate::connector::{Delivery, Sink, SinkError};
use crate::event::EventKind;
use crate::retry::{Retry, RetryPolicy};
use crate::store::{Applied, DeadLetter, Envelope, QueueKey, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{info, info_span, warn, Instrument};
use uuid::Uuid;

/// What an operator sees of one destination (`deskbridge status`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DestStatus {
    pub queued: usize,
    pub in_flight: usize,
    pub blocked_links: usize,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// The last transient failure while it lasts, and since when.
    pub failing: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
}

pub type StatusBoard = Arc<Mutex<BTreeMap<String, DestStatus>>>;

fn with_status(board: &StatusBoard, dest: &str, f: impl FnOnce(&mut DestStatus)) {
    let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
    f(b.entry(dest.to_string()).or_default());
}

enum Done {
    Delivered,
    Dead,
    Failed(StoreError),
}

pub struct Dispatcher {
    pub dest: String,
    pub sink: Arc<dyn Sink>,
    pub store: Store,
    pub blobs: BlobStore,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub board: StatusBoard,
}

impl Dispatcher {
    /// Runs until `shutdown` fires. Deliveries in flight are dropped at
    /// their next await; their messages stay queued for the next start.
    pub async fn run(
        self,
        mut notices: mpsc::UnboundedReceiver<Notice>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let me = Arc::new(self);
        // Per link, the messages not yet handed to a worker, in queue order.
        let mut waiting: HashMap<Uuid, BTreeMap<u64, Envelope>> = HashMap::new();
        let mut known: HashSet<u64> = HashSet::new();
        let mut busy: HashSet<Uuid> = HashSet::new();
        let mut blocked: HashSet<Uuid> = me
            .store
            .dead_letters()?
            .into_iter()
            .filter(|(k, _)| k.dest == me.dest)
            .map(|(_, dl)| dl.envelope.link_id)
            .collect();
        for (key, env) in me.store.pending(&me.dest)? {
            known.insert(key.seq);
            waiting.entry(env.link_id).or_default().insert(key.seq, env);
        }
        let mut workers: JoinSet<(Uuid, u64, Done)> = JoinSet::new();
        loop {
            // Hand out work: the first waiting message of every free link.
            let free: Vec<Uuid> = waiting
                .iter()
                .filter(|(l, q)| !q.is_empty() && !busy.contains(*l) && !blocked.contains(*l))
                .map(|(l, _)| *l)
                .collect();
            for link in free {
                if workers.len() >= me.concurrency {
                    break;
                }
                let q = waiting.get_mut(&link).expect("link listed above");
                let (seq, env) = q.pop_first().expect("queue not empty");
                if q.is_empty() {
                    waiting.remove(&link);
                }
                busy.insert(link);
                let me2 = me.clone();
                let span = info_span!("deliver", dest = %me.dest, link = %link, event = %env.event.id, kind = env.event.kind.name());
                workers.spawn(
                    async move {
                        let key = QueueKey {
                            dest: me2.dest.clone(),
                            seq,
                        };
                        let done = me2.deliver(&key, &env).await;
                        (link, seq, done)
                    }
                    .instrument(span),
                );
            }
            let queued: usize = waiting.values().map(|q| q.len()).sum();
            with_status(&me.board, &me.dest, |s| {
                s.queued = queued + workers.len();
                s.in_flight = workers.len();
                s.blocked_links = blocked.len();
            });
            tokio::select! {
                _ = shutdown.changed() => {
                    workers.abort_all();
                    return Ok(());
                }
                notice = notices.recv() => match notice {
                    Some(Notice::Queued(key, env)) => {
                        // A notice may trail the start-up load: only what is
                        // still queued is work.
                        if !known.contains(&key.seq) && me.store.is_queued(&key)? {
                            known.insert(key.seq);
                            waiting.entry(env.link_id).or_default().insert(key.seq, *env);
                        }
                    }
                    Some(Notice::Unblocked(link)) => {
                        blocked.remove(&link);
                        // A replayed letter is back on the queue: reload it.
                        for (key, env) in me.store.pending(&me.dest)? {
                            if env.link_id == link && known.insert(key.seq) {
                                waiting.entry(link).or_default().insert(key.seq, env);
                            }
                        }
                    }
                    None => return Ok(()),
                },
                Some(joined) = workers.join_next(), if !workers.is_empty() => {
                    let (link, seq, done) = match joined {
                        Ok(r) => r,
                        Err(e) => {
                            // A panicking delivery is a bug; its message stays queued.
                            warn!(dest = %me.dest, "delivery task failed: {e}");
                            continue;
                        }
                    };
                    busy.remove(&link);
                    known.remove(&seq);
                    match done {
                        Done::Delivered => {}
                        Done::Dead => {
                            blocked.insert(link);
                        }
                        Done::Failed(e) => return Err(e),
                    }
                }
            }
        }
    }

    async fn deliver(&self, key: &QueueKey, env: &Envelope) -> Done {
        match self.try_deliver(key, env).await {
            Ok(d) => d,
            Err(e) => Done::Failed(e),
        }
    }

    async fn try_deliver(&self, key: &QueueKey, env: &Envelope) -> Result<Done, StoreError> {
        // Applied before a crash that came before the queue was updated.
        if let Some(applied) = self.store.applied(env)? {
            self.store.complete(key, env, &applied)?;
            self.store.flush().await?;
            return Ok(Done::Delivered);
        }
        let mut retry = Retry::new(self.retry);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let link = self
                .store
                .link(env.link_id)?
                .ok_or_else(|| StoreError::Rejected(format!("link {} is missing", env.link_id)))?;
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
                    self.store.complete(key, env, &applied)?;
                    self.store.flush().await?;
                    with_status(&self.board, &self.dest, |s| {
                        s.delivered += 1;
                        s.failing = None;
                        s.failing_since = None;
                    });
                    info!(attempts, "delivered");
                    return Ok(Done::Delivered);
                }
                Err(SinkError::Permanent { message }) => {
                    warn!(error = %message, "dead letter");
                    self.store.kill(
                        key,
                        &DeadLetter {
                            envelope: env.clone(),
                            error: message,
                            attempts,
                            at: Utc::now(),
                        },
                    )?;
                    self.store.flush().await?;
                    with_status(&self.board, &self.dest, |s| s.dead_lettered += 1);
                    return Ok(Done::Dead);
                }
                Err(SinkError::Transient {
                    message,
                    retry_after,
                }) => {
                    let wait = retry.next_delay(retry_after);
                    warn!(error = %message, attempts, wait_ms = wait.as_millis() as u64, "will retry");
                    with_status(&self.board, &self.dest, |s| {
                        s.failing = Some(message);
                        s.failing_since.get_or_insert_with(Utc::now);
                    });
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
