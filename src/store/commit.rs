//! Ingest transactions: one request alone (`ingest_tx`), or the requests
//! that arrive together sharing one transaction and one flush
//! (`ingest_durably`, group commit).

use super::db::Store;
use super::error::{tx_err, StoreError, TxResult};
use super::group::Request;
use super::tx::Tx;
use sled::Transactional;

impl Store {
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
        let (request, answer) = Request::new(f);
        let lead = {
            let mut st = self.grouper.state.lock().unwrap_or_else(|p| p.into_inner());
            st.0.push(Box::new(request));
            !std::mem::replace(&mut st.1, true)
        };
        if lead {
            tokio::spawn(self.clone().run_groups());
        }
        answer
            .await
            .map_err(|_| StoreError::Rejected("the store stopped".into()))?
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
            let all = self.ingest_tx(|tx| jobs.iter().try_for_each(|j| j.run(tx)));
            let outcomes: Vec<Result<(), StoreError>> = match all {
                Ok(()) => jobs.iter().map(|_| Ok(())).collect(),
                Err(e) if jobs.len() == 1 => vec![Err(e)],
                Err(_) => jobs
                    .iter()
                    .map(|j| self.ingest_tx(|tx| j.run(tx)))
                    .collect(),
            };
            // Even a refused request waits: a repeat refused as seen may
            // be one whose first copy is not flushed yet.
            let flushed = self.flush().await.map_err(|e| e.to_string());
            // Every request of the group waited for that flush (the
            // group-commit figure counts requests, not leaders).
            self.flusher.served.fetch_add(
                jobs.len().saturating_sub(1) as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                job.answer(match &flushed {
                    Ok(()) => outcome,
                    Err(e) => Err(StoreError::Rejected(format!("store flush failed: {e}"))),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sled::transaction::ConflictableTransactionError;

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
}
