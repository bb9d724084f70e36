//! The link store on sled: links (found from either side), the remote ids
//! deskbridge created (echo suppression), source cursors, the applied set,
//! the outbox (one ordered queue per destination), broker mode's parked
//! messages, and dead letters. One concept per file; this file only
//! declares them and re-exports what the rest of the crate uses.

mod applied;
mod backlog;
mod codec;
mod commit;
mod db;
mod dead;
mod error;
mod flush;
mod group;
mod keys;
mod links;
mod outbox;
mod parked;
mod records;
mod scan;
mod sources;
mod tx;
mod waiting;

pub use db::Store;
pub use error::{StoreError, TxResult};
pub use flush::FlushStats;
pub use keys::QueueKey;
pub use records::{After, Applied, DeadLetter, Envelope};
pub use tx::Tx;

#[cfg(test)]
mod testing;
