//! Waiting between attempts: a partner's "not before", shared by every
//! delivery to it, and a sleep that a stop cuts short.

use std::sync::Mutex;
use std::time::Duration;

/// A partner's "not before": shared by every delivery to one destination,
/// since a rate limit is the partner's, not one link's. And what its
/// failures have told the log, for the same reason: a partner down all
/// night is one outage, not one per link and attempt.
#[derive(Default)]
pub(super) struct Pause(
    Mutex<Option<tokio::time::Instant>>,
    Mutex<crate::retry::Said>,
);

impl Pause {
    pub(super) fn until(&self) -> Option<tokio::time::Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this failure is news for the log (see `Said`), and the
    /// destination's failed attempts so far.
    pub(super) fn worth_saying(&self, message: &str) -> (bool, u64) {
        self.1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed(message)
    }

    /// The last delivery that was retrying ended: the outage, if there
    /// was one, is over (the next failure is news again).
    pub(super) fn outage_over(&self) -> Option<crate::retry::Recovered> {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).recovered()
    }

    pub(super) fn extend(&self, d: Duration) {
        let t = tokio::time::Instant::now() + d;
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none_or(|old| old < t) {
            *g = Some(t);
        }
    }
}

/// Sleeps until `t`; false at once if the daemon stops meanwhile. A
/// delivery between attempts has nothing to finish: a stop returns it
/// rather than sit out its backoff (or the grace).
pub(super) async fn wait_unless_stopped(
    t: tokio::time::Instant,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(t) => true,
        stopped = async { stop.wait_for(|s| *s).await.is_ok() } => {
            if !stopped {
                // No one can stop us any more: just wait.
                tokio::time::sleep_until(t).await;
            }
            !stopped
        }
    }
}
