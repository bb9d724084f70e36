//! How records are written (JSON) and read back, inside a transaction or
//! outside one, with the error an unreadable one gives.

use super::error::{StoreError, TxResult};
use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::ConflictableTransactionError;

pub(super) fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own types always serialize; a failure here is a bug, not input.
    serde_json::to_vec(v).expect("store record serializes")
}

pub(super) fn from_slice<T: DeserializeOwned>(
    tree: &'static str,
    b: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|source| StoreError::Corrupt { tree, source })
}

/// `from_slice` inside a transaction: an unreadable record aborts it.
pub(super) fn corrupt<T>(tree: &'static str, b: &[u8]) -> TxResult<T>
where
    T: DeserializeOwned,
{
    serde_json::from_slice(b).map_err(|e| {
        ConflictableTransactionError::Abort(format!("unreadable record in {tree}: {e}"))
    })
}
