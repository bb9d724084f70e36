//! Tells each destination's relay what happened to its messages: a new one
//! on the store's outbox (written in the ingest transaction, so nothing is
//! re-scanned), a delivery from the broker, a lost broker channel, an
//! operator's replay. The messages themselves live in the store (or at the
//! broker); this only carries the news.

use crate::bus::ack::Ack;
use crate::store::{Envelope, QueueKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

/// What a destination's dispatcher is told.
pub enum Notice {
    /// A durable message is on the outbox (embedded bus).
    Queued(QueueKey, Box<Envelope>),
    /// A message came from the broker; acknowledge it once its effect is
    /// recorded (or it is parked).
    Delivered(QueueKey, Box<Envelope>, Ack),
    /// The broker channel was lost: whatever it delivered and we did not
    /// acknowledge comes again on the next one.
    Reset,
    /// The destination's queue at the broker held this many ready
    /// messages when last read (every few seconds while connected).
    Depth(u32),
    /// An operator put a dead letter back, or gave it up: its link may
    /// move again.
    Unblocked(uuid::Uuid),
}

/// The destinations' notice channels, by name, and the broker publisher's
/// wake-up.
#[derive(Clone, Default)]
pub struct Notifier {
    senders: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Notice>>>>,
    /// Wakes the broker publisher (when there is one) to drain the outbox.
    publisher: Arc<Notify>,
}

impl Notifier {
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
        self.publisher.notify_one();
        if let Some(tx) = self.lock().get(&key.dest) {
            let _ = tx.send(Notice::Queued(key, Box::new(env)));
        }
    }

    /// Resolves when new messages were announced since the last call.
    pub async fn announced(&self) {
        self.publisher.notified().await
    }

    /// A sender for the broker consumer of `dest` to feed its dispatcher.
    pub fn sender(&self, dest: &str) -> Option<mpsc::UnboundedSender<Notice>> {
        self.lock().get(dest).cloned()
    }

    pub fn unblock(&self, dest: &str, link: uuid::Uuid) {
        if let Some(tx) = self.lock().get(dest) {
            let _ = tx.send(Notice::Unblocked(link));
        }
    }
}
