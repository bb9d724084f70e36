//! What an operator sees of each destination's relay (`deskbridge status`,
//! the metrics, the log's summary): the status board the dispatchers keep
//! up to date.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What an operator sees of one destination (`deskbridge status`).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct DestStatus {
    pub queued: usize,
    pub in_flight: usize,
    pub blocked_links: usize,
    /// Broker: links whose later messages wait in the store (behind a slow
    /// or failing delivery) rather than in the broker's prefetch window.
    #[serde(default)]
    pub parked_links: usize,
    /// Broker: the messages parked in the store.
    #[serde(default)]
    pub parked: usize,
    /// Broker: links whose next message came before an earlier one of
    /// theirs that the broker has not delivered yet; it waits parked.
    #[serde(default)]
    pub waiting_links: usize,
    /// Broker: messages waiting in the destination's queue at the broker,
    /// as last read (none while its consumer is not connected).
    #[serde(default)]
    pub at_broker: Option<u32>,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Failed attempts since start that were retried (a partner down or
    /// slowing down); with `delivered` and `dead_lettered`, what the log's
    /// summary counts.
    #[serde(default)]
    pub retried: u64,
    /// Broker: messages since start for links this deskbridge does not
    /// know (another deskbridge on the same `bus.prefix`, or a data_dir
    /// replaced under a queue that still held messages), moved to the
    /// broker's dead-letter queue of the destination.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub foreign: u64,
    /// Deliveries currently between retries.
    pub retrying: usize,
    /// The last transient failure while any delivery retries, and since when.
    pub failing: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    /// When the oldest message waiting for this destination was accepted:
    /// how far behind it is. Queued (in flight included, embedded) or
    /// parked in the store, and with a broker, in flight while deliveries
    /// fail; messages held back behind a dead letter count too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_waiting_since: Option<DateTime<Utc>>,
    /// The endpoint is no longer in the configuration: its queued and
    /// parked messages wait, undelivered, until it is back or they are
    /// discarded (`deskbridge discard --queued-for`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unconfigured: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub type StatusBoard = Arc<Mutex<BTreeMap<String, DestStatus>>>;

pub fn with_status(board: &StatusBoard, dest: &str, f: impl FnOnce(&mut DestStatus)) {
    let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
    f(b.entry(dest.to_string()).or_default());
}
