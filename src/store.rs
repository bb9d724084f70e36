//! The link store on sled: links (found from either side), the remote ids
//! deskbridge created (echo suppression), source cursors, the applied set,
//! the outbox (one ordered queue per destination) and dead letters.
//! What must move together is written in one sled transaction; writes
//! that need not (a crash between them is harmless in the order they are
//! made) are single-key writes, since every sled transaction costs two
//! synchronous log writes and the store-wide write lock.

use crate::event::Event;
use crate::link::Link;
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use uuid::Uuid;

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

/// One message on a destination's queue: an event as it should land, on
/// one link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub link_id: Uuid,
    pub dest: String,
    /// The endpoint the event came from.
    pub origin: String,
    /// The event as routed by policy; its `ticket` is the origin's ticket.
    pub event: Event,
    /// When deskbridge accepted the event, by its own clock: a write made
    /// for it at the destination cannot be older, so the search for one
    /// after a crash starts there. `None` in envelopes stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    /// The message its link sent to the same destination just before it,
    /// set when queued. A broker may hand out a link's messages out of
    /// order (it refused the earlier one of a publish batch and took the
    /// later): the relay applies this one only after that one. `None` for
    /// a link's first message, for envelopes stored before, and for a
    /// replayed dead letter (the operator's decision stands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<After>,
}

/// A link's previous message to a destination: its place in the queue,
/// and its event (whose record in the applied set says it is done).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct After {
    pub seq: u64,
    pub event: Uuid,
}

impl After {
    fn encode(&self) -> [u8; 24] {
        let mut b = [0; 24];
        b[..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..].copy_from_slice(self.event.as_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<After> {
        Some(After {
            seq: u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            event: Uuid::from_slice(b.get(8..24)?).ok()?,
        })
    }
}

/// What applying an envelope created at the destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The ticket created by a transfer.
    pub ticket: Option<String>,
    /// Ids of what was written (comments, transactions), for echo checks.
    pub remote_ids: Vec<String>,
    /// Given up by the operator, not applied: a late copy is absorbed,
    /// and changes nothing on the link (a status never set there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discarded: bool,
}

impl Applied {
    pub fn discarded() -> Applied {
        Applied {
            discarded: true,
            ..Applied::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub envelope: Envelope,
    /// The partner's own error text.
    pub error: String,
    pub attempts: u32,
    pub at: DateTime<Utc>,
    /// Broker: it gave up waiting for this message of its link (the seq),
    /// which the broker delivered neither before it nor since. Should that
    /// one come after the operator's replay or discard, it becomes a dead
    /// letter itself rather than land behind its successors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_for: Option<u64>,
}

/// Position of a message in a destination queue: `dest \0 seq`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub dest: String,
    pub seq: u64,
}

impl QueueKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = dest_prefix(&self.dest);
        k.extend_from_slice(&self.seq.to_be_bytes());
        k
    }

    pub fn decode(k: &[u8]) -> Option<QueueKey> {
        let split = k.iter().position(|b| *b == 0)?;
        let seq: [u8; 8] = k.get(split + 1..)?.try_into().ok()?;
        Some(QueueKey {
            dest: String::from_utf8(k[..split].to_vec()).ok()?,
            seq: u64::from_be_bytes(seq),
        })
    }

    /// The id an operator types: `vendor:42`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.dest, self.seq)
    }

    pub fn parse_id(s: &str) -> Option<QueueKey> {
        let (dest, seq) = s.rsplit_once(':')?;
        Some(QueueKey {
            dest: dest.into(),
            seq: seq.parse().ok()?,
        })
    }
}

fn scan(
    tree: &sled::Tree,
    name: &'static str,
    dest: &str,
) -> Result<Vec<(QueueKey, Envelope)>, StoreError> {
    each_queued(tree.scan_prefix(dest_prefix(dest)), |key, v| {
        Ok((key, from_slice(name, v)?))
    })
}

/// `each` of every record of a tree keyed by `QueueKey`, in key order.
fn each_queued<T>(
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

/// The start of every `QueueKey` of `dest`.
fn dest_prefix(dest: &str) -> Vec<u8> {
    let mut prefix = dest.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

fn applied_key(event: Uuid, link: Uuid, dest: &str) -> Vec<u8> {
    let mut k = event.as_bytes().to_vec();
    k.extend_from_slice(link.as_bytes());
    k.extend_from_slice(dest.as_bytes());
    k
}

/// A `late` record's seq.
fn late_seq(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

fn tail_key(dest: &str, link: Uuid) -> Vec<u8> {
    let mut k = dest_prefix(dest);
    k.extend_from_slice(link.as_bytes());
    k
}

fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own types always serialize; a failure here is a bug, not input.
    serde_json::to_vec(v).expect("store record serializes")
}

fn from_slice<T: DeserializeOwned>(tree: &'static str, b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|source| StoreError::Corrupt { tree, source })
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    links: sled::Tree,
    link_idx: sled::Tree,
    created: sled::Tree,
    applied: sled::Tree,
    outbox: sled::Tree,
    dead: sled::Tree,
    /// Broker mode: messages of a link held back by its dead letter,
    /// taken off the broker and kept here in order.
    held: sled::Tree,
    cursors: sled::Tree,
    seen: sled::Tree,
    tickets: sled::Tree,
    /// Per (destination, link): the last message queued (`After`).
    tails: sled::Tree,
    /// Broker: per (destination, link), the seq at which the link went on
    /// without an earlier message (a replayed or discarded dead letter
    /// that `waited_for` one): any of its messages below that seq that
    /// comes later is late.
    late: sled::Tree,
    /// How many links there are: counted once at open, then kept (status
    /// and metrics ask often; a long-lived deployment holds many links).
    link_total: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    gate: std::sync::Arc<std::sync::RwLock<()>>,
    flusher: std::sync::Arc<Flusher>,
    grouper: std::sync::Arc<Grouper>,
}

/// One request's part of a shared ingest transaction, and where its
/// answer goes.
type GroupJob = Box<dyn Fn(&Tx<'_>) -> TxResult<Box<dyn std::any::Any + Send>> + Send>;
type GroupReply = tokio::sync::oneshot::Sender<Result<Box<dyn std::any::Any + Send>, StoreError>>;

/// Ingest requests waiting for a shared transaction, and whether a task
/// is running them.
#[derive(Default)]
struct Grouper {
    state: std::sync::Mutex<(Vec<(GroupJob, GroupReply)>, bool)>,
}

/// Group commit: (tickets taken, a flush running) and the last ticket
/// known durable.
struct Flusher {
    state: std::sync::Mutex<(u64, bool)>,
    done: tokio::sync::watch::Sender<u64>,
    /// Writes left for a later flush (`flush_later`), and the wake-up of
    /// the task that makes sure one comes (`run_later_flushes`).
    unflushed: std::sync::atomic::AtomicBool,
    later: tokio::sync::Notify,
    /// Disk writes done, callers they served, and time spent in them.
    writes: std::sync::atomic::AtomicU64,
    served: std::sync::atomic::AtomicU64,
    micros: std::sync::atomic::AtomicU64,
    /// Set by the first disk write that failed: sled refuses every write
    /// after one (a full disk, say), so the store is done for until the
    /// process starts again.
    broken: tokio::sync::watch::Sender<Option<String>>,
}

/// How well flushes are grouped: `served / writes` callers share each disk
/// write. Shown by `/metrics` and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FlushStats {
    pub writes: u64,
    pub served: u64,
    pub seconds: f64,
}

/// The trees an ingest transaction touches, with typed helpers.
pub struct Tx<'a> {
    links: &'a TransactionalTree,
    link_idx: &'a TransactionalTree,
    created: &'a TransactionalTree,
    outbox: &'a TransactionalTree,
    cursors: &'a TransactionalTree,
    seen: &'a TransactionalTree,
    tickets: &'a TransactionalTree,
    tails: &'a TransactionalTree,
    /// Links this attempt of the transaction created.
    new_links: &'a std::cell::Cell<usize>,
}

pub type TxResult<T> = Result<T, ConflictableTransactionError<String>>;

fn corrupt<T>(tree: &'static str, b: &[u8]) -> TxResult<T>
where
    T: DeserializeOwned,
{
    serde_json::from_slice(b).map_err(|e| {
        ConflictableTransactionError::Abort(format!("unreadable record in {tree}: {e}"))
    })
}

impl Tx<'_> {
    /// Links that have a side at (endpoint, ticket).
    pub fn links_of(&self, endpoint: &str, ticket: &str) -> TxResult<Vec<Link>> {
        let ids: Vec<Uuid> = match self.link_idx.get(pair_key(endpoint, ticket))? {
            Some(b) => corrupt("link_idx", &b)?,
            None => return Ok(vec![]),
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(b) = self.links.get(id.as_bytes())? {
                out.push(corrupt("links", &b)?);
            }
        }
        Ok(out)
    }

    pub fn link(&self, id: Uuid) -> TxResult<Option<Link>> {
        match self.links.get(id.as_bytes())? {
            Some(b) => Ok(Some(corrupt("links", &b)?)),
            None => Ok(None),
        }
    }

    pub fn put_link(&self, link: &Link) -> TxResult<()> {
        if self
            .links
            .insert(link.id.as_bytes(), to_vec(link))?
            .is_none()
        {
            self.new_links.set(self.new_links.get() + 1);
        }
        for side in [&link.upstream, &link.downstream] {
            if let Some(t) = &side.ticket {
                index_link(self.link_idx, &side.endpoint, t, link.id)?;
            }
        }
        Ok(())
    }

    /// Whether deskbridge itself wrote `source_id` in `endpoint`.
    pub fn is_echo(&self, endpoint: &str, source_id: &str) -> TxResult<bool> {
        Ok(self.created.get(pair_key(endpoint, source_id))?.is_some())
    }

    /// Marks a key as seen; false when it was seen before.
    pub fn first_sight(&self, scope: &str, key: &str) -> TxResult<bool> {
        let now = Utc::now().timestamp().to_be_bytes();
        Ok(self.seen.insert(pair_key(scope, key), &now)?.is_none())
    }

    pub fn ticket(&self, endpoint: &str, ticket: &str) -> TxResult<Option<crate::event::Ticket>> {
        match self.tickets.get(pair_key(endpoint, ticket))? {
            Some(b) => Ok(Some(corrupt("tickets", &b)?)),
            None => Ok(None),
        }
    }

    pub fn put_ticket(
        &self,
        endpoint: &str,
        ticket: &str,
        t: &crate::event::Ticket,
    ) -> TxResult<()> {
        self.tickets.insert(pair_key(endpoint, ticket), to_vec(t))?;
        Ok(())
    }

    /// Queues `env` for its destination, naming the link's previous
    /// message there in `env.after`.
    pub fn enqueue(&self, env: &mut Envelope) -> TxResult<QueueKey> {
        let key = QueueKey {
            dest: env.dest.clone(),
            seq: self.outbox.generate_id()?,
        };
        let this = After {
            seq: key.seq,
            event: env.event.id,
        };
        let before = self
            .tails
            .insert(tail_key(&env.dest, env.link_id), &this.encode())?;
        env.after = before.and_then(|b| After::decode(&b));
        self.outbox.insert(key.encode(), to_vec(env))?;
        Ok(key)
    }

    pub fn set_cursor(&self, endpoint: &str, cursor: &[u8]) -> TxResult<()> {
        self.cursors.insert(endpoint.as_bytes(), cursor)?;
        Ok(())
    }
}

fn index_link(
    idx: &TransactionalTree,
    endpoint: &str,
    ticket: &str,
    id: Uuid,
) -> Result<(), ConflictableTransactionError<String>> {
    let key = pair_key(endpoint, ticket);
    let mut ids: Vec<Uuid> = match idx.get(&key)? {
        Some(b) => corrupt("link_idx", &b)?,
        None => vec![],
    };
    if !ids.contains(&id) {
        ids.push(id);
        idx.insert(key, to_vec(&ids))?;
    }
    Ok(())
}

fn tx_err(e: TransactionError<String>) -> StoreError {
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

/// A destination's records in a tree keyed by `QueueKey`.
fn count_of(tree: &sled::Tree, dest: &str) -> usize {
    tree.scan_prefix(dest_prefix(dest)).count()
}

/// The destinations a tree keyed by `QueueKey` holds records for, reading
/// one key per destination (a key is `dest\0seq`: `dest\x01` is past them).
fn dests_of(tree: &sled::Tree) -> Result<Vec<String>, StoreError> {
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

/// How often a flush leader yields before it writes (see `flush`).
const GROUP_YIELDS: usize = 2;

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("store"))
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

    /// A place in the flush order for everything written so far (counted
    /// for the flush figures), and the flushes done to wait on.
    fn flush_ticket(&self) -> (u64, tokio::sync::watch::Receiver<u64>) {
        let f = &self.flusher;
        f.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ticket = {
            let mut st = f.state.lock().unwrap_or_else(|p| p.into_inner());
            st.0 += 1;
            st.0
        };
        (ticket, f.done.subscribe())
    }

    /// Makes everything written so far durable. Concurrent callers share
    /// the disk write (group commit).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let f = &self.flusher;
        // After a failed disk write, no later flush may say yes: sled
        // refuses them too, but this does not rest on its internals.
        if let Some(why) = f.broken.borrow().as_ref() {
            return Err(StoreError::Rejected(format!(
                "the store failed a disk write earlier: {why}"
            )));
        }
        // A ticket taken after our writes: any flush that starts later
        // covers them, so one disk write serves every caller waiting.
        let (ticket, mut done) = self.flush_ticket();
        loop {
            if *done.borrow_and_update() >= ticket {
                return Ok(());
            }
            let lead = {
                let mut st = f.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.1 {
                    None
                } else {
                    st.1 = true;
                    Some(st.0)
                }
            };
            match lead {
                Some(_) => {
                    // Let the tasks that are ready finish their writes and
                    // take tickets first: one disk write then serves them
                    // too (group commit without a timer).
                    for _ in 0..GROUP_YIELDS {
                        tokio::task::yield_now().await;
                    }
                    // This write covers whatever `flush_later` asked for
                    // before the target is read (see `flushed`).
                    f.unflushed
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    let target = f.state.lock().unwrap_or_else(|p| p.into_inner()).0;
                    let started = std::time::Instant::now();
                    let result = self.flush_now().await;
                    if let Err(e) = &result {
                        f.unflushed.store(true, std::sync::atomic::Ordering::SeqCst);
                        // A write sled failed (or a flush that panicked):
                        // nothing written after it can be trusted.
                        f.broken.send_modify(|b| {
                            b.get_or_insert_with(|| e.to_string());
                        });
                    }
                    f.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    f.micros.fetch_add(
                        started.elapsed().as_micros() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    f.state.lock().unwrap_or_else(|p| p.into_inner()).1 = false;
                    // Wakes the waiters either way; after a failure one of
                    // them leads the next attempt.
                    f.done.send_modify(|c| {
                        if result.is_ok() {
                            *c = (*c).max(target)
                        }
                    });
                    result?;
                }
                None => {
                    let _ = done.changed().await;
                }
            }
        }
    }

    /// Notes writes that need no flush now (nobody is told they are
    /// durable; a crash before the next flush only repeats idempotent
    /// work): the next group flush covers them, or `flush_unflushed`.
    /// Tells when a disk write has failed, with why: from then on the store
    /// can keep no promise (see `Flusher::broken`).
    pub fn broken(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.flusher.broken.subscribe()
    }

    pub fn flush_later(&self) {
        self.flusher
            .unflushed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.flusher.later.notify_one();
    }

    /// Makes sure what `flush_later` and `flushed` leave reaches the disk
    /// within a few milliseconds even when nothing else flushes; asleep
    /// while nothing is left. Runs until `shutdown`.
    pub async fn run_later_flushes(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = self.flusher.later.notified() => {}
            }
            // Time for a caller-facing flush to cover it first.
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(3)) => {}
            }
            if let Err(e) = self.flush_unflushed().await {
                tracing::error!("store flush failed: {e}");
            }
        }
    }

    /// Waits until everything written so far is durable, without starting
    /// a disk write: the next flush covers it (the ingest group's, or the
    /// daemon's `flush_unflushed` tick). For waits that hold no caller,
    /// such as a broker acknowledgement: a flush started for them would
    /// hold back the ingest transactions that caller-facing flushes serve.
    ///
    /// The place in the flush order is taken by the call, not when the
    /// future first runs: a task spawned with it just before a stop's
    /// last flush is covered by that flush, not left waiting for another.
    pub fn flushed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        // The ticket before the mark: a leader clears the mark before it
        // reads its target, so either its target covers this ticket or
        // the mark survives for the next flush.
        let (ticket, mut done) = self.flush_ticket();
        self.flush_later();
        async move {
            while *done.borrow_and_update() < ticket {
                if done.changed().await.is_err() {
                    return;
                }
            }
        }
    }

    /// Flushes if `flush_later` was called since the last flush.
    pub async fn flush_unflushed(&self) -> Result<(), StoreError> {
        if self
            .flusher
            .unflushed
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            self.flush().await?;
        }
        Ok(())
    }

    pub fn flush_stats(&self) -> FlushStats {
        use std::sync::atomic::Ordering::Relaxed;
        let f = &self.flusher;
        FlushStats {
            writes: f.writes.load(Relaxed),
            served: f.served.load(Relaxed),
            seconds: f.micros.load(Relaxed) as f64 / 1e6,
        }
    }

    async fn flush_now(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || {
            // sled 0.34 can deadlock when a transaction waits for its
            // write lock while a flush holds the read side waiting for
            // I/O: no transaction runs during a flush.
            let _g = gate.write().unwrap_or_else(|p| p.into_inner());
            db.flush()
        })
        .await
        .map_err(|e| StoreError::Rejected(format!("flush task failed: {e}")))??;
        Ok(())
    }

    /// Every sled transaction runs through here (see `flush`).
    fn gated<T>(&self, f: impl FnOnce() -> T) -> T {
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

    /// Runs `f` as one atomic transaction over the ingest trees; `f` may be
    /// re-run on conflict, so it must only act through `Tx`.
    pub fn ingest_tx<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T, StoreError> {
        let new_links = std::cell::Cell::new(0);
        let out = self.gated(|| {
            (
                &self.links,
                &self.link_idx,
                &self.created,
                &self.outbox,
                &self.cursors,
                &self.seen,
                &self.tickets,
                &self.tails,
            )
                .transaction(
                    |(links, link_idx, created, outbox, cursors, seen, tickets, tails)| {
                        // Counted again by each attempt.
                        new_links.set(0);
                        f(&Tx {
                            links,
                            link_idx,
                            created,
                            outbox,
                            cursors,
                            seen,
                            tickets,
                            tails,
                            new_links: &new_links,
                        })
                    },
                )
                .map_err(tx_err)
        });
        if out.is_ok() {
            self.link_total
                .fetch_add(new_links.get(), std::sync::atomic::Ordering::Relaxed);
        }
        out
    }

    /// As `ingest_tx`, then `flush`: returns once the writes are durable.
    /// The requests that arrive together share one transaction and one
    /// flush: each sled transaction costs two synchronous log writes and
    /// the store-wide write lock, whatever its size. Each request's writes
    /// stay atomic (they are inside the shared one); if any request aborts,
    /// each runs again alone, so one bad request fails only itself.
    pub async fn ingest_durably<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Tx<'_>) -> TxResult<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: GroupJob =
            Box::new(move |tx| f(tx).map(|v| Box::new(v) as Box<dyn std::any::Any + Send>));
        let lead = {
            let mut st = self.grouper.state.lock().unwrap_or_else(|p| p.into_inner());
            st.0.push((job, reply));
            !std::mem::replace(&mut st.1, true)
        };
        if lead {
            tokio::spawn(self.clone().run_groups());
        }
        let out = answer
            .await
            .map_err(|_| StoreError::Rejected("the store stopped".into()))??;
        Ok(*out
            .downcast::<T>()
            .expect("a job answers with its own type"))
    }

    /// Runs the waiting requests' transactions, all together, and flushes
    /// them, until none wait.
    async fn run_groups(self) {
        // Should a request's code panic here (its group's callers get an
        // error), the requests behind it must not wait for this leader.
        struct Unwinding<'a>(&'a Store);
        impl Drop for Unwinding<'_> {
            fn drop(&mut self) {
                if !std::thread::panicking() {
                    return;
                }
                let mut st = self
                    .0
                    .grouper
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if st.0.is_empty() {
                    st.1 = false;
                } else {
                    tokio::spawn(self.0.clone().run_groups());
                }
            }
        }
        let _unwinding = Unwinding(&self);
        loop {
            // Let the requests that are ready join this transaction.
            tokio::task::yield_now().await;
            let jobs = {
                let mut st = self.grouper.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.0.is_empty() {
                    st.1 = false;
                    return;
                }
                std::mem::take(&mut st.0)
            };
            let (jobs, replies): (Vec<GroupJob>, Vec<GroupReply>) = jobs.into_iter().unzip();
            let all = self.ingest_tx(|tx| jobs.iter().map(|j| j(tx)).collect::<TxResult<Vec<_>>>());
            let outs = match all {
                Ok(outs) => outs.into_iter().map(Ok).collect(),
                Err(e) if jobs.len() == 1 => vec![Err(e)],
                Err(_) => jobs.iter().map(|j| self.ingest_tx(j)).collect(),
            };
            // Even a refused request waits: a repeat refused as seen may
            // be one whose first copy is not flushed yet.
            let flushed = self.flush().await.map_err(|e| e.to_string());
            // Every request of the group waited for that flush (the
            // group-commit figure counts requests, not leaders).
            self.flusher.served.fetch_add(
                replies.len().saturating_sub(1) as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            for (reply, out) in replies.into_iter().zip(outs) {
                let _ = reply.send(match &flushed {
                    Ok(()) => out,
                    Err(e) => Err(StoreError::Rejected(format!("store flush failed: {e}"))),
                });
            }
        }
    }

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

    pub fn is_held(&self, key: &QueueKey) -> Result<bool, StoreError> {
        Ok(self.held.contains_key(key.encode())?)
    }

    /// A destination's held messages, in order.
    pub fn held(&self, dest: &str) -> Result<Vec<(QueueKey, Envelope)>, StoreError> {
        scan(&self.held, "held", dest)
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

    /// Broker mode: a destination's parked messages.
    pub fn held_len(&self, dest: &str) -> usize {
        count_of(&self.held, dest)
    }

    /// When the oldest message queued or parked for `dest` was accepted
    /// (its event's own time for envelopes stored before that was kept):
    /// how far behind a destination is. Reads one record per tree, the
    /// first in queue order.
    pub fn oldest_waiting(&self, dest: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut oldest: Option<DateTime<Utc>> = None;
        for (tree, name) in [(&self.outbox, "outbox"), (&self.held, "held")] {
            if let Some(kv) = tree.scan_prefix(dest_prefix(dest)).next() {
                let (_, v) = kv?;
                // A figure for the status: an unreadable record (its
                // delivery names it) must not take the whole status down.
                let env: Envelope = match from_slice(name, &v) {
                    Ok(env) => env,
                    Err(e) => {
                        tracing::warn!(dest, error = %e, "oldest waiting message: unreadable");
                        continue;
                    }
                };
                let at = env.accepted_at.unwrap_or(env.event.occurred_at);
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
        }
        Ok(oldest)
    }

    /// Destinations with messages queued or parked that `configured` does
    /// not know (an endpoint removed from the configuration): their
    /// messages wait, undelivered, until it is back or they are discarded.
    pub fn unconfigured(
        &self,
        configured: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, (usize, usize)>, StoreError> {
        let mut out = BTreeMap::new();
        for dest in dests_of(&self.outbox)?
            .into_iter()
            .chain(dests_of(&self.held)?)
        {
            if !configured(&dest) && !out.contains_key(&dest) {
                let counts = (self.queue_len(&dest), self.held_len(&dest));
                out.insert(dest, counts);
            }
        }
        Ok(out)
    }

    /// Gives up every message queued or parked for `dest`, as `discard`
    /// does a dead letter: each is recorded as done with no effect, so a
    /// copy still at the broker is absorbed should `dest` come back.
    /// Returns how many messages there were. A parked copy of a dead
    /// letter (a crash can leave one) only goes: the letter itself stays,
    /// to be replayed or discarded on its own.
    /// Synchronous and as long as the backlog: call it off the runtime.
    pub fn discard_queued(&self, dest: &str) -> Result<usize, StoreError> {
        // Batches keep each transaction (and its memory) bounded.
        const BATCH: usize = 512;
        let mut total = 0;
        loop {
            let mut keys: Vec<sled::IVec> = Vec::new();
            for tree in [&self.outbox, &self.held] {
                for kv in tree.scan_prefix(dest_prefix(dest)).take(BATCH) {
                    let (k, _) = kv?;
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            if keys.is_empty() {
                return Ok(total);
            }
            total += self.gated(|| {
                (&self.outbox, &self.held, &self.applied, &self.dead)
                    .transaction(|(outbox, held, applied, dead)| {
                        let mut n = 0;
                        for k in &keys {
                            let from_outbox = outbox.remove(k)?;
                            let from_held = held.remove(k)?;
                            let env: Envelope = match (from_outbox, from_held) {
                                (Some(b), _) => corrupt("outbox", &b)?,
                                (None, Some(b)) => corrupt("held", &b)?,
                                (None, None) => continue,
                            };
                            if dead.get(k)?.is_some() {
                                continue;
                            }
                            applied
                                .insert(Self::applied_key(&env), to_vec(&Applied::discarded()))?;
                            n += 1;
                        }
                        Ok(n)
                    })
                    .map_err(tx_err)
            })?;
        }
    }

    fn applied_key(env: &Envelope) -> Vec<u8> {
        applied_key(env.event.id, env.link_id, &env.dest)
    }

    /// Whether the message `env` names as its link's previous one is done:
    /// applied, or discarded by the operator. True when it names none.
    pub fn after_done(&self, env: &Envelope) -> Result<bool, StoreError> {
        Ok(match env.after {
            None => true,
            Some(a) => self
                .applied
                .contains_key(applied_key(a.event, env.link_id, &env.dest))?,
        })
    }

    /// Whether this (event, destination, link) was applied already.
    pub fn applied(&self, env: &Envelope) -> Result<Option<Applied>, StoreError> {
        match self.applied.get(Self::applied_key(env))? {
            Some(b) => Ok(Some(from_slice("applied", &b)?)),
            None => Ok(None),
        }
    }

    /// Records the effect at the destination and takes the message off its
    /// queue (atomically, or record first: see `complete_plain`): after
    /// this, a redelivery is impossible.
    pub fn complete(
        &self,
        key: &QueueKey,
        env: &Envelope,
        applied: &Applied,
    ) -> Result<(), StoreError> {
        let changes_link = !applied.discarded
            && (applied.ticket.is_some()
                || matches!(
                    env.event.kind,
                    crate::event::EventKind::StatusChanged { .. }
                ));
        if !changes_link && applied.remote_ids.is_empty() {
            return self.complete_plain(key, env, applied);
        }
        self.gated(|| {
            (
                &self.outbox,
                &self.applied,
                &self.created,
                &self.links,
                &self.link_idx,
                &self.held,
            )
                .transaction(|(outbox, applied_t, created, links, link_idx, held)| {
                    let mut link: Link = match links.get(env.link_id.as_bytes())? {
                        Some(b) => corrupt("links", &b)?,
                        None => {
                            return Err(ConflictableTransactionError::Abort(format!(
                                "link {} vanished",
                                env.link_id
                            )))
                        }
                    };
                    let link_id = link.id;
                    if let Some(side) = link.side_mut(&env.dest) {
                        if let Some(t) = &applied.ticket {
                            side.ticket = Some(t.clone());
                            side.got_at.get_or_insert_with(Utc::now);
                            index_link(link_idx, &env.dest, t, link_id)?;
                        }
                        if let crate::event::EventKind::StatusChanged { status } = env.event.kind {
                            side.set_status(status, Utc::now(), true);
                        }
                    }
                    links.insert(link.id.as_bytes(), to_vec(&link))?;
                    for id in &applied.remote_ids {
                        created.insert(pair_key(&env.dest, id), env.event.id.as_bytes())?;
                    }
                    applied_t.insert(Self::applied_key(env), to_vec(applied))?;
                    outbox.remove(key.encode())?;
                    held.remove(key.encode())?;
                    Ok(())
                })
                .map_err(tx_err)
        })
    }

    /// `complete` for an effect that changes neither the link nor the echo
    /// records (a comment to a webhook): plain single-key writes, no
    /// transaction. A sled transaction costs two synchronous log writes and
    /// the store-wide write lock; these cost neither. The record goes first,
    /// so a crash between the writes leaves the message queued with its
    /// record, and the relay completes it on sight without applying again.
    /// (Links are never removed, so the link is not read back.)
    fn complete_plain(
        &self,
        key: &QueueKey,
        env: &Envelope,
        applied: &Applied,
    ) -> Result<(), StoreError> {
        self.applied
            .insert(Self::applied_key(env), to_vec(applied))?;
        let k = key.encode();
        // Broker mode usually finds nothing to take off: no write then.
        if self.outbox.contains_key(&k)? {
            self.outbox.remove(&k)?;
        }
        if self.held.contains_key(&k)? {
            self.held.remove(&k)?;
        }
        Ok(())
    }

    /// Moves a message that cannot be applied to the dead letters, keeping
    /// its place so the link's later events stay behind it.
    pub fn kill(&self, key: &QueueKey, dl: &DeadLetter) -> Result<(), StoreError> {
        self.gated(|| {
            (&self.outbox, &self.dead, &self.held)
                .transaction(|(outbox, dead, held)| {
                    outbox.remove(key.encode())?;
                    held.remove(key.encode())?;
                    dead.insert(key.encode(), to_vec(dl))?;
                    Ok(())
                })
                .map_err(tx_err)
        })
    }

    pub fn dead_letters(&self) -> Result<Vec<(QueueKey, DeadLetter)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.dead.iter() {
            let (k, v) = kv?;
            if let Some(key) = QueueKey::decode(&k) {
                out.push((key, from_slice("dead", &v)?));
            }
        }
        Ok(out)
    }

    /// Puts a dead letter back at its old place: on the outbox (embedded
    /// bus) or first among its link's held messages (broker), so that the
    /// link's order holds either way.
    pub fn replay(&self, key: &QueueKey, to_held: bool) -> Result<Envelope, StoreError> {
        // Without its `after`: a letter that gave up waiting for its link's
        // earlier message goes now, as the operator decided.
        self.take_dead(key, |outbox, held, _, dl| {
            let target = if to_held { held } else { outbox };
            let env = Envelope {
                after: None,
                ..dl.envelope.clone()
            };
            target.insert(key.encode(), to_vec(&env))?;
            Ok(())
        })
        .map(|dl| Envelope {
            after: None,
            ..dl.envelope
        })
    }

    /// Gives up on a dead letter for good (the operator's decision).
    pub fn discard(&self, key: &QueueKey) -> Result<DeadLetter, StoreError> {
        // A parked copy may survive a crash (parked while its delivery was
        // under way): discarded means gone from everywhere, at once. And a
        // late repeat from the broker (a republish, a redelivery) must not
        // bring it back: it is recorded as done, with no effect.
        self.take_dead(key, |_, held, applied, dl| {
            held.remove(key.encode())?;
            applied.insert(
                Self::applied_key(&dl.envelope),
                to_vec(&Applied::discarded()),
            )?;
            Ok(())
        })
    }

    /// Takes a dead letter off and, in the same transaction, does `then`
    /// with the outbox, held and applied trees; for one that waited for
    /// an earlier message, notes that its link goes on without it (`late`).
    fn take_dead(
        &self,
        key: &QueueKey,
        then: impl Fn(
            &TransactionalTree,
            &TransactionalTree,
            &TransactionalTree,
            &DeadLetter,
        ) -> TxResult<()>,
    ) -> Result<DeadLetter, StoreError> {
        self.gated(|| {
            // Asked first so that "no such letter" and "unreadable" differ.
            if !self.dead.contains_key(key.encode())? {
                return Err(StoreError::NoDeadLetter(key.id()));
            }
            (
                &self.outbox,
                &self.dead,
                &self.held,
                &self.applied,
                &self.late,
            )
                .transaction(|(outbox, dead, held, applied, late)| {
                    let Some(b) = dead.remove(key.encode())? else {
                        return Err(ConflictableTransactionError::Abort(format!(
                            "dead letter {} was taken meanwhile",
                            key.id()
                        )));
                    };
                    let dl: DeadLetter = corrupt("dead", &b)?;
                    then(outbox, held, applied, &dl)?;
                    // Unless it is here after all (parked behind this letter:
                    // it goes first) or done.
                    if let (Some(seq), Some(a)) = (dl.waited_for, dl.envelope.after) {
                        let missing = QueueKey {
                            dest: key.dest.clone(),
                            seq,
                        };
                        let done = applied
                            .get(applied_key(a.event, dl.envelope.link_id, &key.dest))?
                            .is_some();
                        if !done && held.get(missing.encode())?.is_none() {
                            let at = tail_key(&key.dest, dl.envelope.link_id);
                            let before = late.get(&at)?.and_then(|v| late_seq(&v));
                            if before.is_none_or(|b| b < key.seq) {
                                late.insert(at, &key.seq.to_be_bytes())?;
                            }
                        }
                    }
                    Ok(dl)
                })
                .map_err(tx_err)
        })
    }

    /// Counts without reading the records (`/status` and `/metrics` are
    /// asked often, and a long-lived deployment holds many links).
    pub fn link_count(&self) -> usize {
        self.link_total.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn dead_letter_count(&self) -> usize {
        self.dead.len()
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
    use crate::event::{EventKind, Status};

    fn env(link: &Link, dest: &str) -> Envelope {
        Envelope {
            link_id: link.id,
            dest: dest.into(),
            origin: "a".into(),
            accepted_at: None,
            after: None,
            event: Event::new(
                "T1",
                EventKind::StatusChanged {
                    status: Status::Resolved,
                },
            ),
        }
    }

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

    #[test]
    fn queue_key_roundtrips_and_orders() {
        let a = QueueKey {
            dest: "v".into(),
            seq: 2,
        };
        let b = QueueKey {
            dest: "v".into(),
            seq: 256,
        };
        assert!(a.encode() < b.encode());
        assert_eq!(QueueKey::decode(&b.encode()), Some(b.clone()));
        assert_eq!(QueueKey::parse_id(&b.id()), Some(b));
    }

    #[test]
    fn enqueue_complete_and_dead_letter_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let link = Link::new("a", "T1", "b");
        let e = env(&link, "b");
        let key = store
            .ingest_tx(|tx| {
                tx.put_link(&link)?;
                tx.enqueue(&mut e.clone())
            })
            .unwrap();
        assert_eq!(store.links_of("a", "T1").unwrap(), vec![link.clone()]);
        assert_eq!(store.pending("b").unwrap(), vec![(key.clone(), e.clone())]);
        let applied = Applied {
            ticket: Some("77".into()),
            remote_ids: vec!["c1".into()],
            ..Applied::default()
        };
        store.complete(&key, &e, &applied).unwrap();
        let updated = store.link(link.id).unwrap().unwrap();
        assert_eq!(updated.downstream.ticket.as_deref(), Some("77"));
        assert_eq!(store.links_of("b", "77").unwrap().len(), 1);
        assert!(store.pending("b").unwrap().is_empty());
        assert_eq!(store.applied(&e).unwrap(), Some(applied));
        assert!(store.ingest_tx(|tx| tx.is_echo("b", "c1")).unwrap());

        let key2 = store.ingest_tx(|tx| tx.enqueue(&mut e.clone())).unwrap();
        let dl = DeadLetter {
            envelope: e.clone(),
            error: "422 bad status".into(),
            attempts: 1,
            at: Utc::now(),
            waited_for: None,
        };
        store.kill(&key2, &dl).unwrap();
        assert!(store.pending("b").unwrap().is_empty());
        assert_eq!(store.dead_letters().unwrap().len(), 1);
        store.replay(&key2, false).unwrap();
        assert_eq!(store.pending("b").unwrap().len(), 1);
        assert!(matches!(
            store.replay(&key2, false),
            Err(StoreError::NoDeadLetter(_))
        ));
    }

    /// Destinations whose names prefix each other are told apart; what is
    /// given up is recorded as done and leaves the others alone.
    #[test]
    fn unconfigured_queues_are_listed_and_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let link = Link::new("a", "T1", "b");
        store.ingest_tx(|tx| tx.put_link(&link)).unwrap();
        let mut queued = Vec::new();
        for dest in ["b", "bb", "b2", "b", "c"] {
            let e = env(&link, dest);
            let key = store.ingest_tx(|tx| tx.enqueue(&mut e.clone())).unwrap();
            queued.push((key, e));
        }
        // A parked copy of one in the outbox, and one parked alone.
        store.hold(&queued[0].0, &queued[0].1).unwrap();
        let parked = QueueKey {
            dest: "bb".into(),
            seq: 999,
        };
        store.hold(&parked, &env(&link, "bb")).unwrap();
        // A parked copy a crash left beside its dead letter.
        let (dead_key, dead_env) = (
            QueueKey {
                dest: "b".into(),
                seq: 1000,
            },
            env(&link, "b"),
        );
        let dl = DeadLetter {
            envelope: dead_env.clone(),
            error: "422".into(),
            attempts: 1,
            at: Utc::now(),
            waited_for: None,
        };
        store.hold(&dead_key, &dead_env).unwrap();
        store.kill(&dead_key, &dl).unwrap();
        store.hold(&dead_key, &dead_env).unwrap();
        let left = store.unconfigured(|d| d == "c").unwrap();
        let want: BTreeMap<String, (usize, usize)> = [
            ("b".to_string(), (2, 2)),
            ("b2".to_string(), (1, 0)),
            ("bb".to_string(), (1, 1)),
        ]
        .into();
        assert_eq!(left, want);
        // How far behind: the first of each tree, parked or queued.
        let at = |e: &Envelope| e.event.occurred_at;
        assert_eq!(store.oldest_waiting("c").unwrap(), Some(at(&queued[4].1)));
        assert_eq!(store.oldest_waiting("b").unwrap(), Some(at(&queued[0].1)));
        assert_eq!(store.oldest_waiting("x").unwrap(), None);

        assert_eq!(store.discard_queued("b").unwrap(), 2);
        assert_eq!(store.discard_queued("bb").unwrap(), 2);
        assert_eq!(store.discard_queued("bb").unwrap(), 0);
        assert_eq!(
            store.applied(&queued[0].1).unwrap(),
            Some(Applied::discarded())
        );
        assert_eq!(store.applied(&queued[4].1).unwrap(), None);
        // The dead letter stays, to be replayed or discarded on its own.
        assert_eq!(store.applied(&dead_env).unwrap(), None);
        assert_eq!(store.dead_letters().unwrap().len(), 1);
        assert_eq!(store.held_len("b"), 0);
        let left = store.unconfigured(|d| d == "c").unwrap();
        assert_eq!(left.keys().collect::<Vec<_>>(), ["b2"]);
        assert_eq!(store.queue_len("c"), 1);

        // A late copy of a given-up status change is absorbed without
        // setting that status on the link.
        let (key, e) = &queued[0];
        let absorbed = store.applied(e).unwrap().unwrap();
        store.complete(key, e, &absorbed).unwrap();
        let l = store.link(link.id).unwrap().unwrap();
        assert_eq!(l.downstream.status, None);
        assert!(store
            .after_done(&Envelope {
                after: Some(After {
                    seq: key.seq,
                    event: e.event.id,
                }),
                ..e.clone()
            })
            .unwrap());
    }

    /// Broker mode: a message parked while its delivery was under way may
    /// keep a parked copy past its dead letter (a crash between the two);
    /// discarding the letter takes the copy too and marks it done, replaying
    /// puts it back once.
    #[test]
    fn discard_takes_a_parked_copy_and_replay_parks_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let link = Link::new("a", "T1", "b");
        let e = env(&link, "b");
        let key = QueueKey {
            dest: "b".into(),
            seq: 9,
        };
        let dl = DeadLetter {
            envelope: e.clone(),
            error: "422".into(),
            attempts: 1,
            at: Utc::now(),
            waited_for: None,
        };
        store.kill(&key, &dl).unwrap();
        store.hold(&key, &e).unwrap();
        store.discard(&key).unwrap();
        assert!(store.held("b").unwrap().is_empty());
        // A late repeat finds it done, with no effect.
        assert_eq!(store.applied(&e).unwrap(), Some(Applied::discarded()));
        assert!(store.dead_letters().unwrap().is_empty());
        assert!(matches!(
            store.discard(&key),
            Err(StoreError::NoDeadLetter(_))
        ));

        store.kill(&key, &dl).unwrap();
        store.hold(&key, &e).unwrap();
        store.replay(&key, true).unwrap();
        assert_eq!(store.held("b").unwrap(), vec![(key.clone(), e)]);
        store.unhold(&key).unwrap();
        assert!(!store.is_held(&key).unwrap());
    }

    #[test]
    fn a_plain_completion_records_then_takes_off_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let link = Link::new("a", "T1", "b");
        let mut e = env(&link, "b");
        e.event.kind = EventKind::Comment {
            comment: crate::event::Comment {
                body: "hello".into(),
                audience: crate::event::Audience::Public,
                attachments: vec![],
            },
        };
        let key = store
            .ingest_tx(|tx| {
                tx.put_link(&link)?;
                tx.enqueue(&mut e.clone())
            })
            .unwrap();
        // The state a crash between the two writes leaves: the record and
        // the message both there; completing again finishes the job.
        store
            .applied
            .insert(Store::applied_key(&e), to_vec(&Applied::default()))
            .unwrap();
        assert_eq!(store.applied(&e).unwrap(), Some(Applied::default()));
        assert_eq!(store.pending("b").unwrap().len(), 1);
        store.complete(&key, &e, &Applied::default()).unwrap();
        assert!(store.pending("b").unwrap().is_empty());
        assert_eq!(store.applied(&e).unwrap(), Some(Applied::default()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_requests_stay_atomic_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b, c) = tokio::join!(
            store.ingest_durably(|tx| tx.first_sight("hook", "m1")),
            store.ingest_durably(|_| -> TxResult<bool> {
                Err(ConflictableTransactionError::Abort("refused".into()))
            }),
            store.ingest_durably(|tx| tx.first_sight("hook", "m1")),
        );
        // Exactly one of the two copies is the first sight.
        assert!(a.unwrap() ^ c.unwrap());
        assert!(matches!(b, Err(StoreError::Rejected(m)) if m == "refused"));
        assert!(store.was_seen("hook", "m1").unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_request_does_not_stop_the_next_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bug = store.ingest_durably(|_| -> TxResult<bool> { panic!("a bug in a request") });
        assert!(bug.await.is_err());
        assert!(store
            .ingest_durably(|tx| tx.first_sight("hook", "m2"))
            .await
            .unwrap());
    }

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
