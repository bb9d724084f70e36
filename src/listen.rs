//! Serving an HTTP listener so that slow and idle clients cannot take it
//! over: a cap on open connections, a deadline for a request's headers and
//! one for its body. axum::serve has neither (a client that sends half a
//! request holds its connection, and its file descriptor, for ever).
//!
//! At the cap, a newcomer takes the place of the oldest connection that is
//! not inside a request (still sending headers, or idle between requests):
//! a flood of half-open connections then only pushes its own older ones
//! out, and an honest sender gets in at once. Only when every connection
//! is inside a request (each bounded by the body deadline) is a newcomer
//! closed at once.

use axum::body::{Body, Bytes};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// What one listener allows.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// From a connection's first wait for a request to its last header line.
    pub header_read_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_read_timeout: Duration,
}

/// The body did not arrive within the listener's body deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (daemon.listener.body_read_timeout_secs)")]
pub struct BodyTimedOut(pub Duration);

/// Whether a body read failed on the body deadline (the handler answers
/// 408, not "too large").
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// File descriptors kept for everything but the listeners: the store,
/// files in flight, the broker, outbound HTTP, mail.
pub const FD_RESERVE: u64 = 128;

/// The connection caps that fit the process's open-file limit: raises the
/// soft limit as far as needed (and allowed), else lowers the partner
/// listener's cap (never the admin's) and says so. Returns (partner, admin).
pub fn fit_file_limit(partner: usize, admin: usize) -> (usize, usize) {
    let need = partner as u64 + admin as u64 + FD_RESERVE;
    let Some(soft) = raise_nofile(need) else {
        return (partner, admin);
    };
    if soft >= need {
        return (partner, admin);
    }
    // At least a few partner connections, even on a tiny limit.
    let fits = soft.saturating_sub(admin as u64 + FD_RESERVE).max(8) as usize;
    let capped = partner.min(fits);
    warn!(
        open_file_limit = soft,
        configured = partner,
        capped,
        "the open-file limit is too low for daemon.listener.max_connections: the partner listener takes at most {capped} connections; raise the limit (ulimit -n, systemd LimitNOFILE=) to at least {need}"
    );
    (capped, admin)
}

/// Raises RLIMIT_NOFILE's soft limit towards `need` (up to the hard
/// limit); the soft limit now in force, or None where it cannot be read.
#[cfg(unix)]
// rlim_t is u64 on Linux, not on every unix.
#[allow(clippy::unnecessary_cast)]
fn raise_nofile(need: u64) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let cur = lim.rlim_cur as u64;
    if cur >= need || lim.rlim_cur == libc::RLIM_INFINITY {
        return Some(need.max(cur));
    }
    let want = if lim.rlim_max == libc::RLIM_INFINITY {
        need
    } else {
        need.min(lim.rlim_max as u64)
    };
    let raised = libc::rlimit {
        rlim_cur: want as libc::rlim_t,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if want > cur && unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Some(want);
    }
    Some(cur)
}

#[cfg(not(unix))]
fn raise_nofile(_need: u64) -> Option<u64> {
    None
}

/// One open connection, as the cap sees it.
struct Conn {
    /// Requests being read or answered on it right now.
    busy: Arc<AtomicUsize>,
    evict: CancellationToken,
}

/// The open connections by age (a counter: lower is older).
#[derive(Default)]
struct Table {
    next: u64,
    conns: BTreeMap<u64, Conn>,
}

impl Table {
    /// Makes room for a newcomer: false when every connection is inside a
    /// request.
    fn make_room(&mut self, max: usize) -> bool {
        if self.conns.len() < max {
            return true;
        }
        let idle = self
            .conns
            .iter()
            .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| self.conns.remove(&id)) {
            Some(c) => {
                c.evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` turns
/// true, then lets requests in progress finish.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let table = Arc::new(Mutex::new(Table::default()));
    // One per open socket, given back when its task has closed it: an
    // evicted connection closes on its own task, and a flood must not
    // outrun those closes into the open-file limit.
    let sockets = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut conns = tokio::task::JoinSet::new();
    let mut refused: u64 = 0;
    loop {
        let stream = tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors, most likely: wait a little
                    // for some to be given back instead of spinning.
                    warn!(listener = name, "cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (id, busy, evict) = {
            let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
            if !t.make_room(limits.max_connections) {
                refused += 1;
                // Once per hundred, not once per connection of a flood.
                if refused % 100 == 1 {
                    warn!(
                        listener = name,
                        max_connections = limits.max_connections,
                        refused,
                        "every connection is busy with a request: closing new ones"
                    );
                }
                drop(stream);
                continue;
            }
            let id = t.next;
            t.next += 1;
            let busy = Arc::new(AtomicUsize::new(0));
            let evict = CancellationToken::new();
            t.conns.insert(
                id,
                Conn {
                    busy: busy.clone(),
                    evict: evict.clone(),
                },
            );
            (id, busy, evict)
        };
        let Ok(socket) = sockets.clone().acquire_owned().await else {
            // Never closed; were it, nothing more can be served.
            break;
        };
        let service = ConnService {
            router: router.clone(),
            busy,
            body_read_timeout: limits.body_read_timeout,
        };
        let table = table.clone();
        let mut shutdown = shutdown.clone();
        conns.spawn(async move {
            // The socket is closed at the end of this block.
            {
                let _ = stream.set_nodelay(true);
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout);
                let conn = http.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = evict.cancelled() => Ok(()),
                    _ = shutdown.changed() => {
                        // Finish the request in progress, take no more.
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = result {
                    debug!(listener = name, "connection closed: {e}");
                }
            }
            table
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .conns
                .remove(&id);
            drop(socket);
        });
    }
    drop(listener);
    // Connections waiting for a request close now; the others finish it.
    while conns.join_next().await.is_some() {}
}

/// The router, seen by one connection: marks the connection busy while a
/// request is in progress, and puts the body deadline on its body.
#[derive(Clone)]
struct ConnService {
    router: Router,
    busy: Arc<AtomicUsize>,
    body_read_timeout: Duration,
}

impl hyper::service::Service<axum::http::Request<Incoming>> for ConnService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: axum::http::Request<Incoming>) -> Self::Future {
        let guard = Busy::new(self.busy.clone());
        let timeout = self.body_read_timeout;
        let req = req.map(|b| {
            Body::new(TimedBody {
                inner: b,
                deadline: Box::pin(tokio::time::sleep(timeout)),
                timeout,
            })
        });
        let fut =
            hyper::service::Service::call(&TowerToHyperService::new(self.router.clone()), req);
        Box::pin(async move {
            let _busy = guard;
            fut.await
        })
    }
}

/// Counts a request in progress for as long as it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(n: Arc<AtomicUsize>) -> Busy {
        n.fetch_add(1, Ordering::AcqRel);
        Busy(n)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request body that fails once its deadline passes.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(busy: usize) -> Conn {
        Conn {
            busy: Arc::new(AtomicUsize::new(busy)),
            evict: CancellationToken::new(),
        }
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let mut t = Table::default();
        t.conns.insert(0, conn(1));
        t.conns.insert(1, conn(0));
        t.conns.insert(2, conn(0));
        let one = t.conns[&1].evict.clone();
        assert!(t.make_room(3));
        assert!(one.is_cancelled(), "the oldest idle one goes");
        assert_eq!(t.conns.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert!(t.make_room(3), "below the cap: nothing to do");
        assert_eq!(t.conns.len(), 2);
    }

    #[test]
    fn at_the_cap_with_every_connection_busy_the_newcomer_is_refused() {
        let mut t = Table::default();
        t.conns.insert(0, conn(1));
        t.conns.insert(1, conn(2));
        assert!(!t.make_room(2));
        assert_eq!(t.conns.len(), 2);
    }

    #[test]
    fn a_timeout_is_found_through_the_error_chain() {
        let inner: Box<dyn std::error::Error + Send + Sync> =
            Box::new(BodyTimedOut(Duration::from_secs(1)));
        let wrapped = axum::Error::new(inner);
        assert!(timed_out(&wrapped));
        let other = axum::Error::new(std::io::Error::other("reset"));
        assert!(!timed_out(&other));
    }
}
