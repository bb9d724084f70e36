//! Reading the trees keyed by `QueueKey` (outbox, held): a destination's
//! records in order, how many it has, which destinations have any.

use super::codec::from_slice;
use super::error::StoreError;
use super::keys::{dest_prefix, QueueKey};
use super::records::Envelope;

/// A destination's records of `tree` (named `name` in errors), in order.
pub(super) fn scan(
    tree: &sled::Tree,
    name: &'static str,
    dest: &str,
) -> Result<Vec<(QueueKey, Envelope)>, StoreError> {
    each_queued(tree.scan_prefix(dest_prefix(dest)), |key, v| {
        Ok((key, from_slice(name, v)?))
    })
}

/// `each` of every record of a tree keyed by `QueueKey`, in key order.
pub(super) fn each_queued<T>(
    records: sled::Iter,
    mut each: impl FnMut(QueueKey, &sled::IVec) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for kv in records {
        let (k, v) = kv?;
        if let Some(key) = QueueKey::decode(&k) {
            out.push(each(key, &v)?);
        }
    }
    Ok(out)
}

/// A destination's records in a tree keyed by `QueueKey`.
pub(super) fn count_of(tree: &sled::Tree, dest: &str) -> usize {
    tree.scan_prefix(dest_prefix(dest)).count()
}

/// The destinations a tree keyed by `QueueKey` holds records for, reading
/// one key per destination (a key is `dest\0seq`: `dest\x01` is past them).
pub(super) fn dests_of(tree: &sled::Tree) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut from = Vec::new();
    while let Some(kv) = tree.range(from.as_slice()..).next() {
        let (k, _) = kv?;
        let dest_len = k.iter().position(|b| *b == 0).unwrap_or(k.len());
        out.push(String::from_utf8_lossy(&k[..dest_len]).into_owned());
        from = k[..dest_len].to_vec();
        from.push(1);
    }
    Ok(out)
}
