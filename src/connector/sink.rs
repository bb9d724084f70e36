//! The sink half of a connector: applies one event in a partner's system,
//! and says whether a failure is worth another try.

use crate::blob::BlobStore;
use crate::link::Link;
use crate::store::{Applied, Envelope};
use futures::future::BoxFuture;
use std::time::Duration;

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkError {
    /// The partner is down, slow or busy: retry with backoff.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The partner refused the change itself: dead letter, with its text.
    #[error("{message}")]
    Permanent { message: String },
}

/// One event to apply in the destination system.
pub struct Delivery<'a> {
    pub envelope: &'a Envelope,
    pub link: &'a Link,
    /// The ticket in the destination; `None` for a transfer not yet created.
    pub ticket: Option<&'a str>,
    pub blobs: &'a BlobStore,
}

pub trait Sink: Send + Sync {
    /// Applies the event. Must be safe to call again with the same event
    /// after a crash: the connector's marker makes the repeat a no-op.
    fn apply<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<Applied, SinkError>>;
}
