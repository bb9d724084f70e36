//! Broker mode's own trees: messages parked (held) behind their link's
//! dead letter or earlier messages, and where a link went on without an
//! earlier message (`late`).

use super::codec::to_vec;
use super::db::Store;
use super::error::StoreError;
use super::keys::{dest_prefix, late_seq, tail_key, QueueKey};
use super::records::Envelope;
use super::scan::{count_of, scan};
use std::collections::HashMap;
use uuid::Uuid;

impl Store {
    /// Parks a broker message behind its link's dead letter or its earlier
    /// messages (a link that holds its window).
    pub fn hold(&self, key: &QueueKey, env: &Envelope) -> Result<(), StoreError> {
        self.held.insert(key.encode(), to_vec(env))?;
        Ok(())
    }

    /// Takes a parked copy off (its delivery has ended).
    pub fn unhold(&self, key: &QueueKey) -> Result<(), StoreError> {
        self.held.remove(key.encode())?;
        Ok(())
    }

    pub fn is_held(&self, key: &QueueKey) -> Result<bool, StoreError> {
        Ok(self.held.contains_key(key.encode())?)
    }

    /// A destination's held messages, in order.
    pub fn held(&self, dest: &str) -> Result<Vec<(QueueKey, Envelope)>, StoreError> {
        scan(&self.held, "held", dest)
    }

    /// Broker mode: a destination's parked messages.
    pub fn held_len(&self, dest: &str) -> usize {
        count_of(&self.held, dest)
    }

    /// Where each link of `dest` went on without an earlier message (see
    /// `late`).
    pub fn went_on(&self, dest: &str) -> Result<HashMap<Uuid, u64>, StoreError> {
        let mut out = HashMap::new();
        let prefix = dest_prefix(dest);
        for kv in self.late.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let link = Uuid::from_slice(&k[prefix.len()..]).ok();
            let seq = late_seq(&v);
            if let (Some(link), Some(seq)) = (link, seq) {
                out.insert(link, seq);
            }
        }
        Ok(out)
    }

    /// The same for one link.
    pub fn went_on_at(&self, dest: &str, link: Uuid) -> Result<Option<u64>, StoreError> {
        Ok(self
            .late
            .get(tail_key(dest, link))?
            .and_then(|v| late_seq(&v)))
    }
}
