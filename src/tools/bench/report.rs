//! What `deskbridge bench` reports, and how it fails.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub bus: String,
    pub events: usize,
    pub links: usize,
    /// The rate the sources held (`--rate`), if any: then p50/p99 are the
    /// latency added at that rate, counted from each event's due time.
    pub rate: Option<f64>,
    pub payload_bytes: usize,
    pub seconds: f64,
    pub events_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Bare lapin on the same broker: publish with confirms (same window),
    /// consume with manual ack (same prefetch). `None` without a broker.
    pub baseline_events_per_s: Option<f64>,
    pub ratio: Option<f64>,
    /// CPU time of this process per event during the run (deskbridge and
    /// the bench's own HTTP client and destination; not the broker's).
    pub cpu_us_per_event: Option<f64>,
    /// The same for the bare-lapin baseline (lapin only).
    pub baseline_cpu_us_per_event: Option<f64>,
    /// CPU time of the RabbitMQ nodes on this machine (every `beam.smp`
    /// process) per event, in the run and in the baseline: on one machine
    /// the broker shares the cores. `None` when none is visible.
    pub broker_cpu_us_per_event: Option<f64>,
    pub baseline_broker_cpu_us_per_event: Option<f64>,
    /// Peak resident memory of this process during the run, and during
    /// the baseline (counted from the start of each; the run's includes
    /// the bench's own client, destination and events in memory).
    pub rss_peak_mib: Option<f64>,
    pub baseline_rss_peak_mib: Option<f64>,
    /// Context switches of this process's threads per event, in the run
    /// and in the baseline: on two cores each hand-over between threads
    /// (runtime, lapin's I/O, sled's writers) costs CPU the baseline does
    /// not spend. Threads that ended meanwhile are not counted.
    pub switches_per_event: Option<f64>,
    pub baseline_switches_per_event: Option<f64>,
    /// Disk writes by the store during the run, and how many callers
    /// each served on average (group commit).
    pub flushes: u64,
    pub flush_callers_per_write: f64,
    pub flush_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("bench: {0}")]
pub struct BenchError(pub(super) String);

pub(super) fn err<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError(e.to_string())
}
