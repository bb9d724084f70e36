//! Ingest requests waiting to share one transaction and one flush (group
//! commit), each keeping its own typed answer until the flush is done.

use super::error::{StoreError, TxResult};
use super::tx::Tx;
use std::cell::Cell;
use tokio::sync::oneshot;

/// One request's part of a shared ingest transaction, and where its
/// answer goes. The answer's type stays inside (`Request`), so requests
/// of different types share a group without a cast.
pub(super) trait Job: Send {
    /// Runs the request's writes in `tx`. The transaction may run it again
    /// (a conflict, or alone after another request aborted the group): the
    /// answer of the last run is the one kept.
    fn run(&self, tx: &Tx<'_>) -> TxResult<()>;

    /// Tells the caller: the kept answer if `outcome` is Ok (its run was
    /// committed and flushed), else the error.
    fn answer(self: Box<Self>, outcome: Result<(), StoreError>);
}

/// A caller's request: its writes, its latest answer, its caller.
pub(super) struct Request<T, F> {
    f: F,
    out: Cell<Option<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Request<T, F> {
    /// The request, and where its caller waits for the answer.
    pub(super) fn new(f: F) -> (Self, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let out = Cell::new(None);
        (Request { f, out, reply }, answer)
    }
}

impl<T, F> Job for Request<T, F>
where
    T: Send,
    F: Fn(&Tx<'_>) -> TxResult<T> + Send,
{
    fn run(&self, tx: &Tx<'_>) -> TxResult<()> {
        self.out.set(Some((self.f)(tx)?));
        Ok(())
    }

    fn answer(self: Box<Self>, outcome: Result<(), StoreError>) {
        let Request { out, reply, .. } = *self;
        let _ = reply.send(outcome.map(|()| {
            // An Ok outcome is that of a committed run, which set it.
            out.into_inner()
                .expect("a committed request keeps its answer")
        }));
    }
}

/// Ingest requests waiting for a shared transaction, and whether a task
/// is running them.
#[derive(Default)]
pub(super) struct Grouper {
    pub(super) state: std::sync::Mutex<(Vec<Box<dyn Job>>, bool)>,
}
