//! What ingest keeps about its sources, read outside a transaction: each
//! endpoint's cursor, which tickets it holds a snapshot of, the dedupe
//! keys it has seen (and forgetting old ones).

use super::db::Store;
use super::error::StoreError;
use super::keys::pair_key;
use chrono::{DateTime, Utc};

impl Store {
    pub fn cursor(&self, endpoint: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.cursors.get(endpoint)?.map(|v| v.to_vec()))
    }

    /// Whether ingest keeps a snapshot of the ticket (it saw the ticket
    /// created, or learnt it): outside a transaction, a hint.
    pub fn knows_ticket(&self, endpoint: &str, ticket: &str) -> Result<bool, StoreError> {
        Ok(self.tickets.get(pair_key(endpoint, ticket))?.is_some())
    }

    /// Whether ingest already took a key (outside a transaction: a hint
    /// to skip work for what ingest would drop anyway).
    pub fn was_seen(&self, scope: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.seen.get(pair_key(scope, key))?.is_some())
    }

    /// Forgets dedupe keys older than `before` (replays that old are
    /// refused by the timestamp check anyway).
    pub fn prune_seen(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let cutoff = before.timestamp();
        let mut n = 0;
        for kv in self.seen.iter() {
            let (k, v) = kv?;
            let ts = v
                .as_ref()
                .try_into()
                .map(i64::from_be_bytes)
                .unwrap_or(i64::MIN);
            if ts < cutoff {
                self.seen.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sight_dedupes_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.ingest_tx(|tx| tx.first_sight("hook", "m1")).unwrap());
        assert!(!store.ingest_tx(|tx| tx.first_sight("hook", "m1")).unwrap());
        assert_eq!(
            store
                .prune_seen(Utc::now() + chrono::Duration::seconds(5))
                .unwrap(),
            1
        );
        assert!(store.ingest_tx(|tx| tx.first_sight("hook", "m1")).unwrap());
    }
}
