//! A destination's relay as the daemon sets it up: its sink, its store, its
//! limits, and where its messages come from. `scheduler.rs` runs it.

use super::status::StatusBoard;
use crate::blob::BlobStore;
use crate::connector::sink::Sink;
use crate::retry::RetryPolicy;
use crate::store::{DeadLetter, QueueKey, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where a destination's messages come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The outbox in sled is the queue.
    Embedded,
    /// RabbitMQ delivers; a blocked link's messages are parked in sled.
    Broker,
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
    /// Embedded bus: most waiting messages held in memory; the rest wait
    /// in the store's queue.
    pub window: usize,
    /// Most messages of one link held in memory; more are parked
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

impl Dispatcher {
    pub(super) fn key(&self, seq: u64) -> QueueKey {
        QueueKey {
            dest: self.dest.clone(),
            seq,
        }
    }

    /// Tells whoever copies dead letters (the broker's dead-letter queue).
    pub(super) fn tell_dead(&self, dead: (QueueKey, DeadLetter)) {
        if let Some(tx) = &self.on_dead {
            let _ = tx.send(dead);
        }
    }
}
