//! The embedded durable bus: messages live in the store's outbox (written
//! in the ingest transaction); this only tells each destination's relay
//! that a new message is there, so nothing is re-scanned.

use crate::store::{Envelope, QueueKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What a destination's dispatcher is told.
#[derive(Debug)]
pub enum Notice {
    /// A durable message is on the queue.
    Queued(QueueKey, Box<Envelope>),
    /// An operator put a dead letter back, or gave it up: its link may
    /// move again.
    Unblocked(uuid::Uuid),
}

#[derive(Clone, Default)]
pub struct Queues {
    senders: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Notice>>>>,
}

impl Queues {
    /// Registers a destination; its dispatcher reads the receiver.
    pub fn register(&self, dest: &str) -> mpsc::UnboundedReceiver<Notice> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(dest.to_string(), tx);
        rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Notice>>> {
        // A panic elsewhere must not stop delivery: the map stays valid.
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the destination's dispatcher. A destination without one (no
    /// sink configured, or not running) finds the message on its next start.
    pub fn announce(&self, key: QueueKey, env: Envelope) {
        if let Some(tx) = self.lock().get(&key.dest) {
            let _ = tx.send(Notice::Queued(key, Box::new(env)));
        }
    }

    pub fn unblock(&self, dest: &str, link: uuid::Uuid) {
        if let Some(tx) = self.lock().get(dest) {
            let _ = tx.send(Notice::Unblocked(link));
        }
    }
}
