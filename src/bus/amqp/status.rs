//! What `deskbridge status` shows of the broker: connected or not, why,
//! and how much waits at it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// Whether deskbridge is connected, for logs and `deskbridge status`.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct BrokerStatus {
    /// Every connection deskbridge needs (the publisher, one consumer per
    /// destination) is up.
    pub connected: bool,
    /// The connections that are not up.
    #[serde(default)]
    pub down: std::collections::BTreeSet<String>,
    /// Why not, while it waits.
    pub waiting: Option<String>,
    pub waiting_since: Option<DateTime<Utc>>,
    /// Messages taken off the outbox after the broker confirmed them.
    pub published: u64,
    /// Messages ready in each destination's queue at the broker (not yet
    /// handed to deskbridge), as last read by its consumer (every few
    /// seconds while connected; absent while it is not).
    #[serde(default)]
    pub ready: std::collections::BTreeMap<String, u32>,
}

pub type BrokerBoard = Arc<Mutex<BrokerStatus>>;
