//! The REST source as the daemon sees it: the poller of one endpoint,
//! what it did (for `deskbridge status`), and why a round failed.

use crate::blob::BlobStore;
use crate::connector::rest::endpoint::RestEndpoint;
use crate::connector::sink::SinkError;
use crate::ingest::Ingest;
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// What a REST endpoint's poller did, for `deskbridge status`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PollStatus {
    /// Rounds that read the product's changes.
    pub rounds: u64,
    /// Events taken from the product.
    pub taken: u64,
    /// Tickets read in the last round (listed and changed since read;
    /// an idle product: none).
    #[serde(default)]
    pub last_round_reads: u64,
    /// List requests in the last round (an idle product: the list's pages,
    /// or only its last one where it is read from the end).
    #[serde(default)]
    pub last_round_pages: u64,
    /// How long the last round took, in milliseconds.
    #[serde(default)]
    pub last_round_ms: u64,
    /// When a round last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok: Option<DateTime<Utc>>,
    /// Why the product cannot be read now, while it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<String>,
    /// The partner's pause of every request to the endpoint, as the last
    /// round began or ended ("paused until T by the partner's
    /// Retry-After"), whichever request it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    /// The product's webhooks that woke the poll, and those refused.
    pub webhooks: u64,
    pub webhooks_refused: u64,
}

pub type PollBoard = crate::connector::board::Board<PollStatus>;

pub struct Poller {
    pub board: PollBoard,
    pub ep: Arc<RestEndpoint>,
    pub ingest: Ingest,
    pub store: Store,
    /// Where the files of the product's comments are downloaded to.
    pub blobs: BlobStore,
    pub service_account: String,
}

/// Why a round failed (the text names the request and the product's
/// answer), and when to try again.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RoundError {
    pub(super) message: String,
    pub(super) retry_after: Option<Duration>,
}

impl From<SinkError> for RoundError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Transient {
                message,
                retry_after,
            } => RoundError {
                message,
                retry_after,
            },
            SinkError::Permanent { message } => RoundError {
                message,
                retry_after: None,
            },
        }
    }
}

pub(super) fn round_error(e: impl std::fmt::Display) -> RoundError {
    RoundError {
        message: e.to_string(),
        retry_after: None,
    }
}
