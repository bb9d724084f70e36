//! Durability: flushes to disk, grouped so that the callers waiting at
//! the same time share one disk write (group commit), and the figures of
//! how well they are grouped.

use super::db::Store;
use super::error::StoreError;
use serde::Serialize;

/// How well flushes are grouped: `served / writes` callers share each disk
/// write. Shown by `/metrics` and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FlushStats {
    pub writes: u64,
    pub served: u64,
    pub seconds: f64,
}

/// How often a flush leader yields before it writes (see `flush`).
const GROUP_YIELDS: usize = 2;

impl Store {
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

    /// Tells when a disk write has failed, with why: from then on the store
    /// can keep no promise (see `Flusher::broken`).
    pub fn broken(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.flusher.broken.subscribe()
    }

    /// Notes writes that need no flush now (nobody is told they are
    /// durable; a crash before the next flush only repeats idempotent
    /// work): the next group flush covers them, or `flush_unflushed`.
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
}
