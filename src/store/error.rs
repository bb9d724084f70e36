//! The store's errors: what went wrong, and what the operator can do about it.

use sled::transaction::{
    ConflictableTransactionError, TransactionError, UnabortableTransactionError,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("link store: {0}{hint}", hint = sled_hint(.0))]
    Sled(#[from] sled::Error),
    #[error("link store holds an unreadable record in {tree}: {source}")]
    Corrupt {
        tree: &'static str,
        source: serde_json::Error,
    },
    #[error("no dead letter {0}; `deskbridge dead` lists them")]
    NoDeadLetter(String),
    #[error("{0}")]
    Rejected(String),
}

/// What a step inside a sled transaction returns; an abort carries the
/// text the caller gets as `StoreError::Rejected`.
pub type TxResult<T> = Result<T, ConflictableTransactionError<String>>;

/// What to do about a store error, where its cause says.
fn sled_hint(e: &sled::Error) -> &'static str {
    match e {
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            " (the disk holding data_dir is full: free space there, then start deskbridge again; what was answered 2xx is kept, what was refused the senders send again)"
        }
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::QuotaExceeded => {
            " (the disk quota of the user running deskbridge is used up: raise it or free space, then start deskbridge again)"
        }
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
            " (the file system holding data_dir is read-only: mount it writable, then start deskbridge again)"
        }
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            " (deskbridge may not write data_dir: check its owner and permissions)"
        }
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            " (is another deskbridge using the same data_dir?)"
        }
        _ => "",
    }
}

/// A finished transaction's failure, as the caller sees it.
pub(super) fn tx_err(e: TransactionError<String>) -> StoreError {
    match e {
        TransactionError::Abort(msg) => StoreError::Rejected(msg),
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl From<UnabortableTransactionError> for StoreError {
    fn from(e: UnabortableTransactionError) -> Self {
        match e {
            UnabortableTransactionError::Storage(e) => StoreError::Sled(e),
            UnabortableTransactionError::Conflict => {
                StoreError::Rejected("transaction conflict".into())
            }
        }
    }
}
