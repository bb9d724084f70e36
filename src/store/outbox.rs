//! The outbox: one ordered queue per destination, the embedded bus (and,
//! in broker mode, what waits to be published).

use super::codec::from_slice;
use super::db::Store;
use super::error::StoreError;
use super::keys::{dest_prefix, QueueKey};
use super::records::Envelope;
use super::scan::{count_of, each_queued, scan};

impl Store {
    /// The queue of one destination, in order.
    pub fn pending(&self, dest: &str) -> Result<Vec<(QueueKey, Envelope)>, StoreError> {
        scan(&self.outbox, "outbox", dest)
    }

    /// A destination's queue from `from` to `upto`, both included, in
    /// order; each message read only if `read` wants it.
    pub fn pending_between(
        &self,
        dest: &str,
        from: u64,
        upto: u64,
        read: impl Fn(u64) -> bool,
    ) -> Result<Vec<(QueueKey, Option<Envelope>)>, StoreError> {
        let key = |seq| {
            QueueKey {
                dest: dest.to_string(),
                seq,
            }
            .encode()
        };
        each_queued(self.outbox.range(key(from)..=key(upto)), |key, v| {
            let env = if read(key.seq) {
                Some(from_slice("outbox", v)?)
            } else {
                None
            };
            Ok((key, env))
        })
    }

    /// Up to `limit` messages of `dest`'s queue after `after` (from the
    /// start with `None`), in order: the embedded relay's window.
    pub fn queued_after(
        &self,
        dest: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(QueueKey, Envelope)>, StoreError> {
        let key = |seq| {
            QueueKey {
                dest: dest.to_string(),
                seq,
            }
            .encode()
        };
        let from = match after {
            // Nothing comes after the last seq there is.
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(s) => s + 1,
            None => 0,
        };
        let mut out = Vec::new();
        for kv in self.outbox.range(key(from)..=key(u64::MAX)).take(limit) {
            let (k, v) = kv?;
            if let Some(key) = QueueKey::decode(&k) {
                out.push((key, from_slice("outbox", &v)?));
            }
        }
        Ok(out)
    }

    /// A destination's oldest outbox messages, in order, for the broker
    /// publisher.
    pub fn outbox_batch(
        &self,
        dest: &str,
        limit: usize,
    ) -> Result<Vec<(QueueKey, sled::IVec)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.outbox.scan_prefix(dest_prefix(dest)).take(limit) {
            let (k, v) = kv?;
            if let Some(key) = QueueKey::decode(&k) {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// Takes published messages off the outbox. No flush: a removal lost
    /// in a crash only republishes, and the applied set absorbs that.
    /// One key at a time, not as a batch: nothing needs them together, and
    /// a batch would cost two log writes and wait for a running flush.
    pub fn published(&self, keys: &[QueueKey]) -> Result<(), StoreError> {
        for k in keys {
            self.outbox.remove(k.encode())?;
        }
        Ok(())
    }

    pub fn is_queued(&self, key: &QueueKey) -> Result<bool, StoreError> {
        Ok(self.outbox.contains_key(key.encode())?)
    }

    pub fn queue_len(&self, dest: &str) -> usize {
        count_of(&self.outbox, dest)
    }
}
