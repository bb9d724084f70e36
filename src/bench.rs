//! `deskbridge bench`: the full pipeline on loopback (signed webhook in,
//! store, bus, relay, signed webhook out to an instant destination), and in
//! the same run a bare-lapin baseline on the same broker with the same
//! payloads. Prints figures; asserts nothing.

use crate::config::{BusKind, Config};
use crate::connector::webhook::sign::{self, Secret};
use crate::event::{Audience, Comment, Event, EventKind, Ticket};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct Report {
    pub bus: String,
    pub events: usize,
    pub links: usize,
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
pub struct BenchError(String);

fn err<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError(e.to_string())
}

#[derive(Clone, Default)]
struct Arrivals {
    /// event id → when the destination was called.
    at: Arc<Mutex<HashMap<Uuid, Instant>>>,
    tickets: Arc<Mutex<u64>>,
}

/// The instant destination's answer to one call.
fn destination(a: &Arrivals, body: &[u8]) -> Bytes {
    let now = Instant::now();
    // Only the id and type are needed; the rest is the payload's weight.
    #[derive(serde::Deserialize)]
    struct Head {
        id: Uuid,
        #[serde(rename = "type")]
        kind: String,
    }
    let Ok(h) = serde_json::from_slice::<Head>(body) else {
        return Bytes::from_static(b"{}");
    };
    if h.kind == "ticket_created" {
        let mut n = a.tickets.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        return Bytes::from(format!("{{\"ticket\":\"B-{}\"}}", *n));
    }
    a.at.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(h.id, now);
    Bytes::from_static(b"{}")
}

/// Serves the instant destination on `listener`: bare hyper, one task per
/// connection (the bench measures deskbridge, not a web framework).
fn serve_destination(listener: tokio::net::TcpListener, arrivals: Arrivals) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let arrivals = arrivals.clone();
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let arrivals = arrivals.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let mut res =
                            hyper::Response::new(Full::new(destination(&arrivals, &body)));
                        res.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, hyper::Error>(res)
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

/// The partner that sends the webhooks, over one keep-alive connection.
struct Partner {
    send: SendRequest<Full<Bytes>>,
    secret: Secret,
    host: String,
}

impl Partner {
    async fn connect(addr: std::net::SocketAddr, secret: &Secret) -> Result<Partner, BenchError> {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(err)?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(err)?;
        tokio::spawn(conn);
        Ok(Partner {
            send,
            secret: secret.clone(),
            host: addr.to_string(),
        })
    }

    /// Posts one signed event and waits for ingest's answer.
    async fn post(&mut self, ev: Event) -> Result<(), BenchError> {
        let body = serde_json::to_vec(&ev).expect("event serializes");
        let id = format!("msg_{}", ev.id.simple());
        let ts = chrono::Utc::now().timestamp();
        let sig = sign::sign(&self.secret, &id, ts, &body);
        let req = hyper::Request::post("/hooks/src")
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(sign::HEADER_ID, id)
            .header(sign::HEADER_TIMESTAMP, ts.to_string())
            .header(sign::HEADER_SIGNATURE, sig)
            .body(Full::new(Bytes::from(body)))
            .map_err(err)?;
        self.send.ready().await.map_err(err)?;
        let r = self.send.send_request(req).await.map_err(err)?;
        let status = r.status();
        // Read the answer to the end so the connection can carry the next.
        r.into_body().collect().await.map_err(err)?;
        if !status.is_success() {
            return Err(BenchError(format!("ingest answered {status}")));
        }
        Ok(())
    }
}

/// A comment body of about `n` bytes.
fn payload(n: usize, i: usize) -> String {
    let mut s = format!("event {i}: ");
    while s.len() < n {
        s.push_str("the till prints blank receipts after the update; ");
    }
    s.truncate(n);
    s
}

pub async fn run(
    bus: BusKind,
    events: usize,
    links: usize,
    amqp_url: Option<String>,
) -> Result<Report, BenchError> {
    // On the runtime's workers, the run and the baseline alike, not on the
    // thread that waits for them: each wake-up of a thread outside the
    // workers costs a context switch.
    tokio::spawn(run_on_workers(bus, events, links, amqp_url))
        .await
        .map_err(err)?
}

async fn run_on_workers(
    bus: BusKind,
    events: usize,
    links: usize,
    amqp_url: Option<String>,
) -> Result<Report, BenchError> {
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
    let result = pipeline(&dir, bus, events, links, payload_bytes, amqp_url.clone()).await;
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

/// Seconds, latencies, flushes, and the CPU and memory used.
type Measured = (f64, Vec<f64>, crate::store::FlushStats, Spent);

async fn pipeline(
    dir: &std::path::Path,
    bus: BusKind,
    events: usize,
    links: usize,
    payload_bytes: usize,
    amqp_url: Option<String>,
) -> Result<Measured, BenchError> {
    let arrivals = Arrivals::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err)?;
    let dest_addr = listener.local_addr().map_err(err)?;
    serve_destination(listener, arrivals.clone());
    let (_, in_secret) = Secret::generate();
    let (_, out_secret) = Secret::generate();
    std::fs::write(dir.join("in"), &in_secret).map_err(err)?;
    std::fs::write(dir.join("out"), &out_secret).map_err(err)?;
    let prefix = format!("deskbridge-bench-{}", Uuid::now_v7().simple());
    let bus_toml = match (bus, &amqp_url) {
        (BusKind::Amqp, Some(url)) => {
            std::fs::write(dir.join("amqp"), url).map_err(err)?;
            format!(
                "[bus]\nkind = \"amqp\"\nurl = {{ file = \"{}\" }}\nprefix = \"{prefix}\"\n",
                dir.join("amqp").display(),
            )
        }
        (BusKind::Amqp, None) => return Err(BenchError("--bus amqp needs --amqp-url".into())),
        _ => String::new(),
    };
    let text = format!(
        r#"{bus_toml}
[daemon]
data_dir = "{data}"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[parties.a]
name = "A"
role = "service_company"
[parties.b]
name = "B"
role = "vendor"
[endpoints.src]
party = "a"
kind = "webhook"
[endpoints.src.webhook]
inbound_secrets = [{{ file = "{inf}" }}]
[endpoints.src.policy]
share_client_conversation = true
[endpoints.dst]
party = "b"
kind = "webhook"
concurrency = {links}
[endpoints.dst.webhook]
url = "http://{dest_addr}/in"
outbound_secret = {{ file = "{outf}" }}
[[transfers]]
from = "src"
to = "dst"
"#,
        data = dir.join("data").display(),
        inf = dir.join("in").display(),
        outf = dir.join("out").display(),
    );
    let config = Config::parse(&text).map_err(err)?;
    let running = crate::daemon::start(config, Default::default())
        .await
        .map_err(err)?;
    let secret = Secret::parse(&in_secret).map_err(err)?;
    let hooks_addr = running.hooks_addr;
    let mut setup = Partner::connect(hooks_addr, &secret).await?;
    for l in 0..links {
        setup
            .post(Event::new(
                format!("T{l}"),
                EventKind::TicketCreated {
                    ticket_data: Ticket {
                        subject: format!("bench ticket {l}"),
                        ..Ticket::default()
                    },
                },
            ))
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while *arrivals.tickets.lock().unwrap_or_else(|p| p.into_inner()) < links as u64 {
        if Instant::now() > deadline {
            return Err(BenchError(
                "the bench tickets were not created within 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let evs: Vec<Event> = (0..events)
        .map(|i| {
            Event::new(
                format!("T{}", i % links),
                EventKind::Comment {
                    comment: Comment {
                        body: payload(payload_bytes, i),
                        audience: Audience::Public,
                        attachments: vec![],
                    },
                },
            )
        })
        .collect();
    let mut conns = Vec::with_capacity(links);
    for _ in 0..links {
        conns.push(Partner::connect(hooks_addr, &secret).await?);
    }
    let sent: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let cpu_start = CpuMark::now();
    let start = Instant::now();
    // Per link in order (a partner sends a ticket's changes in order),
    // links side by side.
    let mut per_link: Vec<Vec<Event>> = vec![Vec::new(); links];
    for (i, ev) in evs.into_iter().enumerate() {
        per_link[i % links].push(ev);
    }
    let results: Vec<Result<(), BenchError>> =
        futures::stream::iter(per_link.into_iter().zip(conns).map(|(evs, mut conn)| {
            let sent = sent.clone();
            async move {
                for ev in evs {
                    sent.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(ev.id, Instant::now());
                    conn.post(ev).await?;
                }
                Ok(())
            }
        }))
        .buffer_unordered(links)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.at.lock().unwrap_or_else(|p| p.into_inner()).len() < events {
        if Instant::now() > deadline {
            return Err(BenchError("not every event arrived within 600 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let spent = cpu_start.spent();
    let at = arrivals
        .at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let end = at.values().max().copied().unwrap_or(start);
    let sent = sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let latencies = at
        .iter()
        .filter_map(|(id, t)| {
            sent.get(id)
                .map(|s| t.duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    let flush = running.ops.store.flush_stats();
    running
        .stop()
        .await
        .map_err(|e| BenchError(format!("the store's last flush failed: {e}")))?;
    if let (BusKind::Amqp, Some(url)) = (bus, &amqp_url) {
        // Leave the broker as the bench found it.
        crate::bus::amqp::remove_topology(url, &prefix, &["dst"]).await;
    }
    Ok((
        end.duration_since(start).as_secs_f64(),
        latencies,
        flush,
        spent,
    ))
}

/// CPU time used so far by this process and by the broker, to measure a
/// stretch of the run.
struct CpuMark {
    own: Option<Duration>,
    broker: Option<Duration>,
    switches: Option<u64>,
}

/// What a stretch of the run used: CPU time of this process and of the
/// broker, and this process's peak resident memory.
#[derive(Default)]
struct Spent {
    cpu: Option<Duration>,
    broker_cpu: Option<Duration>,
    rss_peak_mib: Option<f64>,
    switches: Option<u64>,
}

impl CpuMark {
    /// Marks the start of a stretch (and restarts the peak-memory count).
    fn now() -> CpuMark {
        // Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        CpuMark {
            own: cpu_used(),
            broker: broker_cpu_used(),
            switches: switches_so_far(),
        }
    }

    fn spent(&self) -> Spent {
        let since =
            |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| b.saturating_sub(a));
        Spent {
            cpu: since(self.own, cpu_used()),
            broker_cpu: since(self.broker, broker_cpu_used()),
            rss_peak_mib: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| rss_peak_mib(&s)),
            switches: self
                .switches
                .zip(switches_so_far())
                .map(|(a, b)| b.saturating_sub(a)),
        }
    }
}

/// Context switches (voluntary and not) of this process's live threads so
/// far; `None` where there is no /proc.
fn switches_so_far() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            total += switches(&status);
        }
    }
    Some(total)
}

/// Voluntary plus involuntary context switches from a /proc status file.
fn switches(status: &str) -> u64 {
    status
        .lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches:")
                || l.starts_with("nonvoluntary_ctxt_switches:")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// The peak resident set (VmHWM) from /proc/self/status, in MiB.
fn rss_peak_mib(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user and system) this process has used so far; `None` where
/// there is no /proc.
fn cpu_used() -> Option<Duration> {
    proc_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// CPU time used so far by the RabbitMQ nodes (`beam.smp`) on this
/// machine; `None` when none is visible.
fn broker_cpu_used() -> Option<Duration> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let path = entry.path();
        let is_beam =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim_end() == "beam.smp");
        if let Some(t) = is_beam
            .then(|| std::fs::read_to_string(path.join("stat")).ok())
            .flatten()
            .and_then(|s| proc_cpu(&s))
        {
            total = Some(total.unwrap_or_default() + t);
        }
    }
    total
}

/// User plus system time from a /proc/<pid>/stat line.
fn proc_cpu(stat: &str) -> Option<Duration> {
    // The command name is in parentheses and may hold spaces: count the
    // fields after it (the state is field 3, utime 14, stime 15).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, 100 per second on Linux whatever the kernel's HZ.
    Some(Duration::from_millis(ticks * 10))
}

/// Bare lapin: the same number of persistent messages of the same size,
/// published with confirms `window` in flight onto a durable quorum queue,
/// consumed with manual acks and the same prefetch.
/// The baseline's rate, and the CPU this process and the broker spent
/// while it ran.
struct Baseline {
    events_per_s: f64,
    spent: Spent,
}

async fn baseline(url: &str, events: usize, payload_bytes: usize) -> Result<Baseline, BenchError> {
    use lapin::options::*;
    use lapin::types::{AMQPValue, FieldTable};
    let conn = lapin::Connection::connect(url, crate::bus::amqp::on_tokio())
        .await
        .map_err(err)?;
    let pubc = conn.create_channel().await.map_err(err)?;
    let subc = conn.create_channel().await.map_err(err)?;
    let queue = format!("deskbridge-bench-baseline-{}", Uuid::now_v7().simple());
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    pubc.queue_declare(
        &queue,
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .map_err(err)?;
    pubc.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(err)?;
    subc.basic_qos(256, BasicQosOptions::default())
        .await
        .map_err(err)?;
    let mut consumer = subc
        .basic_consume(
            &queue,
            "bench",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    // The same bytes the pipeline carries: an envelope with a comment.
    let body = serde_json::to_vec(&Event::new(
        "T0",
        EventKind::Comment {
            comment: Comment {
                body: payload(payload_bytes, 0),
                audience: Audience::Public,
                attachments: vec![],
            },
        },
    ))
    .map_err(err)?;
    let cpu_start = CpuMark::now();
    let start = Instant::now();
    let consume = async {
        let mut n = 0;
        while n < events {
            match consumer.next().await {
                Some(Ok(d)) => {
                    d.ack(BasicAckOptions::default()).await.map_err(err)?;
                    n += 1;
                }
                Some(Err(e)) => return Err(err(e)),
                None => return Err(BenchError("baseline consumer ended".into())),
            }
        }
        Ok(())
    };
    let publish = async {
        let window = 256;
        let mut i = 0;
        while i < events {
            let mut confirms = Vec::with_capacity(window);
            for _ in 0..window.min(events - i) {
                confirms.push(
                    pubc.basic_publish(
                        "",
                        &queue,
                        BasicPublishOptions::default(),
                        &body,
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .map_err(err)?,
                );
                i += 1;
            }
            for c in confirms {
                c.await.map_err(err)?;
            }
        }
        Ok::<(), BenchError>(())
    };
    let (p, c) = tokio::join!(publish, consume);
    p?;
    c?;
    let secs = start.elapsed().as_secs_f64();
    let spent = cpu_start.spent();
    let _ = pubc
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bench done").await;
    Ok(Baseline {
        events_per_s: events as f64 / secs,
        spent,
    })
}

#[cfg(test)]
mod tests {
    use super::{proc_cpu, rss_peak_mib, switches};

    #[test]
    fn peak_memory_is_read_from_vmhwm() {
        let status =
            "Name:\tdeskbridge\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(rss_peak_mib(status), Some(50.0));
        assert_eq!(rss_peak_mib("Name:\tx\n"), None);
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(switches(status), 127);
    }
    use std::time::Duration;

    #[test]
    fn cpu_time_is_read_past_a_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let line = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 9 0";
        assert_eq!(proc_cpu(line), Some(Duration::from_millis(1750)));
        assert_eq!(proc_cpu("4242 (cut short) S 1 2"), None);
    }
}
