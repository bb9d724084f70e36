//! Broker: a parked link's next message that came before its link's earlier
//! one, and how long it waits for it.

use crate::store::{Envelope, QueueKey};
use std::collections::HashMap;
use std::time::Duration;
use tracing::debug;
use uuid::Uuid;

/// A parked link's next message, waiting for the one its link sent before
/// it, which the broker has not delivered yet (it refused it from a
/// publish batch whose later message it took, say).
pub(super) struct Gap {
    pub(super) key: QueueKey,
    pub(super) env: Envelope,
    pub(super) missing: u64,
    pub(super) until: tokio::time::Instant,
    /// The missing one arrived: look again.
    pub(super) recheck: bool,
    /// Waited `order_wait`; given up once the broker's queue is read empty
    /// twice in a row (see `Notice::Depth`).
    pub(super) due: bool,
    pub(super) empty_reads: u8,
}

/// Keeps what `refill` found of a link's order: a gap keeps its clock
/// while it is the same one.
pub(super) fn note_gap(
    gaps: &mut HashMap<Uuid, Gap>,
    dest: &str,
    link: Uuid,
    found: Option<(QueueKey, Envelope, u64)>,
    wait: Duration,
) {
    let Some((key, env, missing)) = found else {
        gaps.remove(&link);
        return;
    };
    match gaps.get_mut(&link) {
        Some(g) if g.key == key && g.missing == missing => g.recheck = false,
        _ => {
            debug!(dest, link = %link, waiting = %key.id(), missing, "a message came before its link's earlier one; it waits for it, parked");
            gaps.insert(
                link,
                Gap {
                    key,
                    env,
                    missing,
                    until: tokio::time::Instant::now() + wait,
                    recheck: false,
                    due: false,
                    empty_reads: 0,
                },
            );
        }
    }
}

/// Fires at the earliest deadline of a gap not yet due; never while there
/// is none.
pub(super) async fn gap_due(gaps: &HashMap<Uuid, Gap>) {
    match gaps.values().filter(|g| !g.due).map(|g| g.until).min() {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
