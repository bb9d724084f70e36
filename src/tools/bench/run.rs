//! The bench's run: the baseline, then the pipeline, summed up in a
//! report.

use super::baseline::baseline;
use super::pipeline::pipeline;
use super::report::{err, BenchError, Report};
use crate::config::BusKind;
use std::time::Duration;
use uuid::Uuid;

pub async fn run(
    bus: BusKind,
    events: usize,
    links: usize,
    amqp_url: Option<String>,
    rate: Option<f64>,
) -> Result<Report, BenchError> {
    // On the runtime's workers, the run and the baseline alike, not on the
    // thread that waits for them: each wake-up of a thread outside the
    // workers costs a context switch.
    tokio::spawn(run_on_workers(bus, events, links, amqp_url, rate))
        .await
        .map_err(err)?
}

async fn run_on_workers(
    bus: BusKind,
    events: usize,
    links: usize,
    amqp_url: Option<String>,
    rate: Option<f64>,
) -> Result<Report, BenchError> {
    if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(BenchError(
            "--rate must be a number of events per second above 0".into(),
        ));
    }
    if links == 0 || links > events {
        return Err(BenchError(format!(
            "--links must be between 1 and --events ({events}), not {links}"
        )));
    }
    let payload_bytes = 600usize;
    // The baseline first: its peak memory is then lapin's alone, not what
    // the pipeline left behind in the allocator.
    let base = match (&amqp_url, bus) {
        (Some(url), BusKind::Amqp) => Some(baseline(url, events, payload_bytes).await?),
        // The embedded bus is compared with the broker when one answers.
        (Some(url), BusKind::Embedded) => match baseline(url, events, payload_bytes).await {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("no broker baseline: {e}");
                None
            }
        },
        (None, _) => None,
    };
    let dir = std::env::temp_dir().join(format!("deskbridge-bench-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).map_err(err)?;
    let result = pipeline(
        &dir,
        bus,
        events,
        links,
        payload_bytes,
        amqp_url.clone(),
        rate,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let (seconds, mut latencies, flush, spent) = result?;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let events_per_s = events as f64 / seconds;
    let per_event = |d: Duration| d.as_secs_f64() * 1e6 / events as f64;
    let baseline = base.as_ref().map(|b| b.events_per_s);
    Ok(Report {
        bus: match bus {
            BusKind::Embedded => "embedded".into(),
            BusKind::Amqp => "amqp".into(),
        },
        events,
        links,
        rate,
        payload_bytes,
        seconds,
        events_per_s,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        baseline_events_per_s: baseline,
        ratio: baseline.map(|b| events_per_s / b),
        cpu_us_per_event: spent.cpu.map(per_event),
        baseline_cpu_us_per_event: base.as_ref().and_then(|b| b.spent.cpu).map(per_event),
        broker_cpu_us_per_event: spent.broker_cpu.map(per_event),
        baseline_broker_cpu_us_per_event: base
            .as_ref()
            .and_then(|b| b.spent.broker_cpu)
            .map(per_event),
        rss_peak_mib: spent.rss_peak_mib,
        baseline_rss_peak_mib: base.as_ref().and_then(|b| b.spent.rss_peak_mib),
        switches_per_event: spent.switches.map(|n| n as f64 / events as f64),
        baseline_switches_per_event: base
            .as_ref()
            .and_then(|b| b.spent.switches)
            .map(|n| n as f64 / events as f64),
        flushes: flush.writes,
        flush_callers_per_write: flush.served as f64 / flush.writes.max(1) as f64,
        flush_seconds: flush.seconds,
    })
}
