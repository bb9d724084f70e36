//! The `Store`: sled's trees, opened from the data dir, and the shared
//! state of its flushes and grouped transactions. What it does lives in
//! the sibling files, each an `impl Store` of one concept.
//!
//! What must move together is written in one sled transaction; writes
//! that need not (a crash between them is harmless in the order they are
//! made) are single-key writes, since every sled transaction costs two
//! synchronous log writes and the store-wide write lock.

use super::error::StoreError;
use super::group::Grouper;
use std::path::Path;

/// sled's page cache when no size is configured.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct Store {
    pub(super) db: sled::Db,
    pub(super) links: sled::Tree,
    pub(super) link_idx: sled::Tree,
    pub(super) created: sled::Tree,
    pub(super) applied: sled::Tree,
    pub(super) outbox: sled::Tree,
    pub(super) dead: sled::Tree,
    /// Broker mode: messages of a link held back by its dead letter,
    /// taken off the broker and kept here in order.
    pub(super) held: sled::Tree,
    pub(super) cursors: sled::Tree,
    pub(super) seen: sled::Tree,
    pub(super) tickets: sled::Tree,
    /// Per (destination, link): the last message queued (`After`).
    pub(super) tails: sled::Tree,
    /// Broker: per (destination, link), the seq at which the link went on
    /// without an earlier message (a replayed or discarded dead letter
    /// that `waited_for` one): any of its messages below that seq that
    /// comes later is late.
    pub(super) late: sled::Tree,
    /// Queued messages waiting on disk, not in the relay's memory, by
    /// (destination, link, seq): see `waiting.rs`.
    pub(super) waiting: sled::Tree,
    /// How many links there are: counted once at open, then kept (status
    /// and metrics ask often; a long-lived deployment holds many links).
    pub(super) link_total: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub(super) gate: std::sync::Arc<std::sync::RwLock<()>>,
    pub(super) flusher: std::sync::Arc<Flusher>,
    pub(super) grouper: std::sync::Arc<Grouper>,
}

/// Group commit: (tickets taken, a flush running) and the last ticket
/// known durable.
pub(super) struct Flusher {
    pub(super) state: std::sync::Mutex<(u64, bool)>,
    pub(super) done: tokio::sync::watch::Sender<u64>,
    /// Writes left for a later flush (`flush_later`), and the wake-up of
    /// the task that makes sure one comes (`run_later_flushes`).
    pub(super) unflushed: std::sync::atomic::AtomicBool,
    pub(super) later: tokio::sync::Notify,
    /// Disk writes done, callers they served, and time spent in them.
    pub(super) writes: std::sync::atomic::AtomicU64,
    pub(super) served: std::sync::atomic::AtomicU64,
    pub(super) micros: std::sync::atomic::AtomicU64,
    /// Set by the first disk write that failed: sled refuses every write
    /// after one (a full disk, say), so the store is done for until the
    /// process starts again.
    pub(super) broken: tokio::sync::watch::Sender<Option<String>>,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens the store with sled's page cache held to `cache_bytes` (its
    /// own default is 1 GiB, which a long backlog fills).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("store"))
            .cache_capacity(cache_bytes)
            // Durability comes from our explicit, grouped flushes.
            .flush_every_ms(None)
            .open()?;
        let links = db.open_tree("links")?;
        Ok(Store {
            link_total: std::sync::Arc::new(links.len().into()),
            links,
            link_idx: db.open_tree("link_idx")?,
            created: db.open_tree("created")?,
            applied: db.open_tree("applied")?,
            outbox: db.open_tree("outbox")?,
            dead: db.open_tree("dead")?,
            held: db.open_tree("held")?,
            cursors: db.open_tree("cursors")?,
            seen: db.open_tree("seen")?,
            tickets: db.open_tree("tickets")?,
            tails: db.open_tree("tails")?,
            late: db.open_tree("late")?,
            waiting: db.open_tree("waiting")?,
            gate: Default::default(),
            flusher: std::sync::Arc::new(Flusher {
                state: std::sync::Mutex::new((0, false)),
                done: tokio::sync::watch::channel(0).0,
                unflushed: Default::default(),
                later: Default::default(),
                writes: Default::default(),
                served: Default::default(),
                micros: Default::default(),
                broken: tokio::sync::watch::channel(None).0,
            }),
            grouper: Default::default(),
            db,
        })
    }

    /// Every sled transaction runs through here (see `flush`).
    pub(super) fn gated<T>(&self, f: impl FnOnce() -> T) -> T {
        let _g = match self.gate.try_read() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            // A flush is running: wait for it without holding one of the
            // runtime's few worker threads hostage.
            Err(std::sync::TryLockError::WouldBlock) => {
                let multi = tokio::runtime::Handle::try_current().is_ok_and(|h| {
                    h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                });
                let wait = || self.gate.read().unwrap_or_else(|p| p.into_inner());
                if multi {
                    tokio::task::block_in_place(wait)
                } else {
                    wait()
                }
            }
        };
        f()
    }
}
