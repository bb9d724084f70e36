//! The tools' commands: `demo` (the three-party story) and `bench` (the
//! pipeline's figures).

use super::args::BenchBus;
use super::logging::{asked_for, init_logging};
use anyhow::Result;

pub async fn demo() -> Result<()> {
    if asked_for() {
        init_logging(false);
    }
    deskbridge::tools::demo::run(&mut std::io::stdout()).await?;
    Ok(())
}

/// `deskbridge bench --outage`.
pub async fn outage(events: usize, links: usize, json: bool) -> Result<()> {
    let r = deskbridge::tools::bench::outage(events, links).await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "partner down: {} events over {} links taken at {:.0} events/s; daemon peak memory {:.0} MiB; data dir {:.0} MiB\n\
             restart with the backlog waiting: {:.1} s to answer, peak memory {:.0} MiB\n\
             partner back: drained in {:.1} s ({:.0} events/s), peak memory {:.0} MiB; every link in order: {}; repeats: {}",
            r.events,
            r.links,
            r.ingest_per_s,
            r.outage_rss_peak_mib,
            r.data_dir_mib,
            r.restart_secs,
            r.restart_rss_peak_mib,
            r.drain_secs,
            r.drain_per_s,
            r.drain_rss_peak_mib,
            if r.in_order { "yes" } else { "NO" },
            r.repeats,
        );
    }
    Ok(())
}

pub async fn bench(
    bus: BenchBus,
    events: usize,
    links: usize,
    amqp_url: String,
    rate: Option<f64>,
    json: bool,
) -> Result<()> {
    if asked_for() {
        init_logging(false);
    }
    let kind = match bus {
        BenchBus::Embedded => deskbridge::config::BusKind::Embedded,
        BenchBus::Amqp => deskbridge::config::BusKind::Amqp,
    };
    let r = deskbridge::tools::bench::run(kind, events, links, Some(amqp_url), rate).await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        if let Some(rate) = r.rate {
            println!(
                "held {rate:.0} events/s: latency added p50 {:.1} ms, p99 {:.1} ms (from each event's due time)",
                r.p50_ms, r.p99_ms
            );
        }
        println!(
            "{} bus: {} events over {} links in {:.2} s: {:.0} events/s, p50 {:.1} ms, p99 {:.1} ms; bare lapin {}; ratio {}; CPU per event: {} µs here, {} µs in the broker (bare lapin: {} and {}); peak memory {} MiB (bare lapin: {}); context switches per event {} (bare lapin: {}); {} disk flushes ({:.1} callers each, {:.2} s)",
            r.bus,
            r.events,
            r.links,
            r.seconds,
            r.events_per_s,
            r.p50_ms,
            r.p99_ms,
            r.baseline_events_per_s.map(|b| format!("{b:.0} events/s")).unwrap_or("n/a".into()),
            r.ratio.map(|x| format!("{x:.2}")).unwrap_or("n/a".into()),
            r.cpu_us_per_event.map(|x| format!("{x:.0}")).unwrap_or("n/a".into()),
            r.broker_cpu_us_per_event.map(|x| format!("{x:.0}")).unwrap_or("n/a".into()),
            r.baseline_cpu_us_per_event.map(|x| format!("{x:.0}")).unwrap_or("n/a".into()),
            r.baseline_broker_cpu_us_per_event.map(|x| format!("{x:.0}")).unwrap_or("n/a".into()),
            r.rss_peak_mib.map(|x| format!("{x:.0}")).unwrap_or("n/a".into()),
            r.baseline_rss_peak_mib.map(|x| format!("{x:.0}")).unwrap_or("n/a".into()),
            r.switches_per_event.map(|x| format!("{x:.1}")).unwrap_or("n/a".into()),
            r.baseline_switches_per_event.map(|x| format!("{x:.1}")).unwrap_or("n/a".into()),
            r.flushes,
            r.flush_callers_per_write,
            r.flush_seconds,
        );
    }
    Ok(())
}
