//! `[daemon]`: the data directory, the two listeners and their limits.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where the link store, the queues and the files live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Partner-facing listener: inbound webhooks at `/hooks/{endpoint}`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Operator listener: links, dead letters, status. Keep it on loopback.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Largest file that may cross, in bytes.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Messages per destination the relay holds in memory (embedded bus);
    /// the rest wait in the store, so a partner down for days costs disk,
    /// not memory.
    #[serde(default = "default_queue_window")]
    pub queue_window: usize,
    /// The store's page cache, in MiB: what of the data dir is kept in
    /// memory. More makes reads of a large store faster.
    #[serde(default = "default_store_cache_mib")]
    pub store_cache_mib: u64,
    /// Log lines as JSON (for log shippers) instead of text.
    #[serde(default)]
    pub log_json: bool,
    /// Seconds between the log's summaries: one info line per destination
    /// that delivered, retried or dead-lettered since the last one, or has
    /// messages waiting (and per poller or mailbox that took something).
    /// An idle daemon logs nothing. 0 turns the summaries off. Each event's
    /// own lines are at debug level (`DESKBRIDGE_LOG=debug`).
    #[serde(default = "default_log_summary_secs")]
    pub log_summary_secs: u64,
    /// What the two listeners allow a client: connections, read deadlines.
    #[serde(default)]
    pub listener: ListenerConfig,
}

/// Slow and idle clients are cut off so that they cannot hold the
/// listeners (and the process's file descriptors).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Open connections on the partner-facing listener. At the cap a new
    /// connection replaces the oldest one not inside a request; it is
    /// closed only when every connection is inside one. Lowered at start
    /// (with a warning) if the open-file limit cannot hold it.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections on the admin listener: a budget of its own, so
    /// that the operator gets in while partners fill theirs.
    #[serde(default = "default_admin_max_connections")]
    pub admin_max_connections: usize,
    /// Seconds a client has to send a request's headers (also how long an
    /// idle kept-alive connection stays open).
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's body, once its headers
    /// are in. Large files on slow links need more.
    #[serde(default = "default_body_read_timeout_secs")]
    pub body_read_timeout_secs: u64,
}

fn default_max_connections() -> usize {
    512
}
fn default_admin_max_connections() -> usize {
    32
}
fn default_header_read_timeout_secs() -> u64 {
    10
}
fn default_body_read_timeout_secs() -> u64 {
    60
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            max_connections: default_max_connections(),
            admin_max_connections: default_admin_max_connections(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
            body_read_timeout_secs: default_body_read_timeout_secs(),
        }
    }
}

impl ListenerConfig {
    /// The partner listener's and the admin listener's limits.
    pub fn limits(&self) -> (crate::listen::Limits, crate::listen::Limits) {
        let l = |max_connections| crate::listen::Limits {
            max_connections,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            body_read_timeout: std::time::Duration::from_secs(self.body_read_timeout_secs),
        };
        (l(self.max_connections), l(self.admin_max_connections))
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("deskbridge-data")
}
fn default_listen() -> String {
    "127.0.0.1:8700".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:8701".into()
}
fn default_store_cache_mib() -> u64 {
    64
}

fn default_queue_window() -> usize {
    1024
}

fn default_max_file_bytes() -> u64 {
    25 * 1024 * 1024
}
fn default_log_summary_secs() -> u64 {
    300
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            data_dir: default_data_dir(),
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            max_file_bytes: default_max_file_bytes(),
            queue_window: default_queue_window(),
            store_cache_mib: default_store_cache_mib(),
            log_json: false,
            log_summary_secs: default_log_summary_secs(),
            listener: ListenerConfig::default(),
        }
    }
}

pub(super) fn listener_problems(l: &ListenerConfig, p: &mut Vec<String>) {
    let at = "daemon.listener";
    for (key, v) in [
        ("max_connections", l.max_connections),
        ("admin_max_connections", l.admin_max_connections),
    ] {
        // Beyond what any open-file limit allows in practice.
        if v == 0 || v > 1_000_000 {
            p.push(format!(
                "{at}.{key}: must be between 1 and 1000000 (got {v})"
            ));
        }
    }
    for (key, v) in [
        ("header_read_timeout_secs", l.header_read_timeout_secs),
        ("body_read_timeout_secs", l.body_read_timeout_secs),
    ] {
        // 0 would cut off every client; a day is no deadline at all.
        if v == 0 || v > 86_400 {
            p.push(format!(
                "{at}.{key}: must be between 1 and 86400 seconds (got {v})"
            ));
        }
    }
}
