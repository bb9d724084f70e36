//! Messages of the outbox that wait on disk, not in the relay's memory:
//! the queued messages of a link beyond its window, or of a link held by a
//! dead letter. One key per message, `dest \0 link seq`, so a link's are
//! read back in queue order without reading the destination's whole
//! queue. A hint only: the outbox says whether the message is still
//! queued, and the relay writes them again from the outbox at each start.

use super::codec::from_slice;
use super::db::Store;
use super::error::StoreError;
use super::keys::{dest_prefix, tail_key, QueueKey};
use super::records::Envelope;
use uuid::Uuid;

fn waiting_key(dest: &str, link: Uuid, seq: u64) -> Vec<u8> {
    let mut k = tail_key(dest, link);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl Store {
    /// Notes that message `seq` of `link` waits in the outbox. No flush:
    /// what a crash loses is written again at the next start.
    pub fn hint_waiting(&self, dest: &str, link: Uuid, seq: u64) -> Result<(), StoreError> {
        self.waiting.insert(waiting_key(dest, link, seq), &[])?;
        Ok(())
    }

    /// Up to `limit` of the noted messages of `link`, in queue order, each
    /// taken off the notes; `None` for one no longer queued.
    pub fn take_waiting(
        &self,
        dest: &str,
        link: Uuid,
        limit: usize,
    ) -> Result<Vec<(u64, Option<Envelope>)>, StoreError> {
        let prefix = tail_key(dest, link);
        let mut out = Vec::new();
        for kv in self.waiting.scan_prefix(&prefix).take(limit) {
            let (k, _) = kv?;
            let Some(seq) = k
                .get(prefix.len()..)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            let key = QueueKey {
                dest: dest.to_string(),
                seq,
            };
            let env = match self.outbox.get(key.encode())? {
                Some(v) => Some(from_slice("outbox", &v)?),
                None => None,
            };
            self.waiting.remove(&k)?;
            out.push((seq, env));
        }
        Ok(out)
    }

    /// Whether `link` has noted messages left (for tests: the relay keeps
    /// its own set of links with notes).
    #[cfg(test)]
    pub fn has_waiting(&self, dest: &str, link: Uuid) -> Result<bool, StoreError> {
        Ok(self
            .waiting
            .scan_prefix(tail_key(dest, link))
            .next()
            .transpose()?
            .is_some())
    }

    /// Forgets every note of `dest` (the relay reads its queue again).
    pub fn clear_waiting(&self, dest: &str) -> Result<(), StoreError> {
        for kv in self.waiting.scan_prefix(dest_prefix(dest)) {
            let (k, _) = kv?;
            self.waiting.remove(k)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Link;
    use crate::store::testing::env;

    #[test]
    fn a_links_waiting_messages_come_back_in_queue_order_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (la, lb) = (Link::new("a", "T1", "b"), Link::new("a", "T2", "b"));
        let queue = |link: &Link, dest: &str| {
            store
                .ingest_tx(|tx| tx.enqueue(&mut env(link, dest)))
                .unwrap()
        };
        let keys: Vec<QueueKey> = [&la, &lb, &la, &la].iter().map(|l| queue(l, "b")).collect();
        // A destination whose name starts like this one's is not read.
        queue(&la, "bb");
        assert_eq!(store.queued_after("b", None, 10).unwrap().len(), 4);
        let after = store.queued_after("b", Some(keys[1].seq), 10).unwrap();
        assert_eq!(
            after.iter().map(|(k, _)| k.seq).collect::<Vec<_>>(),
            [keys[2].seq, keys[3].seq]
        );
        assert!(store
            .queued_after("b", Some(keys[3].seq), 10)
            .unwrap()
            .is_empty());
        for k in [&keys[3], &keys[0], &keys[2]] {
            store.hint_waiting("b", la.id, k.seq).unwrap();
        }
        assert!(store.has_waiting("b", la.id).unwrap());
        assert!(!store.has_waiting("b", lb.id).unwrap());
        let first = store.take_waiting("b", la.id, 2).unwrap();
        assert_eq!(
            first
                .iter()
                .map(|(s, e)| (*s, e.is_some()))
                .collect::<Vec<_>>(),
            [(keys[0].seq, true), (keys[2].seq, true)]
        );
        store.published(&[keys[3].clone()]).unwrap();
        let rest = store.take_waiting("b", la.id, 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert!(rest[0].1.is_none(), "no longer queued");
        assert!(!store.has_waiting("b", la.id).unwrap());
        store.hint_waiting("b", lb.id, keys[1].seq).unwrap();
        store.clear_waiting("b").unwrap();
        assert!(!store.has_waiting("b", lb.id).unwrap());
    }
}
