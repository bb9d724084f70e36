//! The links, read outside a transaction: all of them, one by id, those
//! at a ticket (through the link index), and how many there are.

use super::codec::from_slice;
use super::db::Store;
use super::error::StoreError;
use super::keys::pair_key;
use crate::link::Link;
use uuid::Uuid;

impl Store {
    /// Counts without reading the records (`/status` and `/metrics` are
    /// asked often, and a long-lived deployment holds many links).
    pub fn link_count(&self) -> usize {
        self.link_total.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn links(&self) -> Result<Vec<Link>, StoreError> {
        self.links
            .iter()
            .values()
            .map(|v| from_slice("links", &v?))
            .collect()
    }

    /// Whether the link is in this store (a key lookup, nothing read).
    pub fn has_link(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(self.links.contains_key(id.as_bytes())?)
    }

    pub fn link(&self, id: Uuid) -> Result<Option<Link>, StoreError> {
        match self.links.get(id.as_bytes())? {
            Some(b) => Ok(Some(from_slice("links", &b)?)),
            None => Ok(None),
        }
    }

    /// Links that have a side at (endpoint, ticket), outside a transaction.
    pub fn links_of(&self, endpoint: &str, ticket: &str) -> Result<Vec<Link>, StoreError> {
        let ids: Vec<Uuid> = match self.link_idx.get(pair_key(endpoint, ticket))? {
            Some(b) => from_slice("link_idx", &b)?,
            None => return Ok(vec![]),
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(l) = self.link(id)? {
                out.push(l);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::error::TxResult;
    use sled::transaction::ConflictableTransactionError;

    #[test]
    fn the_link_count_follows_new_links_not_updates_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Store::open(&path).unwrap();
        let mut a = Link::new("a", "T1", "b");
        let b = Link::new("a", "T2", "b");
        store.ingest_tx(|tx| tx.put_link(&a)).unwrap();
        // Two in one transaction, one of them again: one more.
        store
            .ingest_tx(|tx| {
                tx.put_link(&b)?;
                tx.put_link(&b)
            })
            .unwrap();
        a.downstream.ticket = Some("B-1".into());
        store.ingest_tx(|tx| tx.put_link(&a)).unwrap();
        // An aborted transaction counts nothing.
        let c = Link::new("a", "T3", "b");
        let aborted = store.ingest_tx(|tx| -> TxResult<()> {
            tx.put_link(&c)?;
            Err(ConflictableTransactionError::Abort("no".into()))
        });
        assert!(aborted.is_err());
        assert_eq!(store.link_count(), 2);
        drop(store);
        assert_eq!(Store::open(&path).unwrap().link_count(), 2);
    }
}
