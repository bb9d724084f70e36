//! How a delivery ended, as its task reports it to the scheduler.

use crate::store::{DeadLetter, QueueKey, StoreError};

pub(super) enum Done {
    Delivered,
    /// Stopped between attempts: left queued (or unacknowledged) for the
    /// next start.
    Returned,
    Dead(Box<(QueueKey, DeadLetter)>),
    Failed(StoreError),
}
