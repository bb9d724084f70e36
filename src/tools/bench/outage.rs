//! `deskbridge bench --outage`: the partner is down while its source sends
//! flat out. The daemon runs as a child process, so what is measured is
//! its own memory: the peak while the backlog grows, the peak after a
//! restart with the backlog on disk, then the drain when the partner is
//! back, with every link's order and no repeat checked.

use super::partner::{payload, Partner};
use super::pipeline::config_text;
use super::report::{err, BenchError};
use super::usage::rss_peak_mib;
use crate::connector::webhook::sign::Secret;
use crate::event::{Audience, Comment, Event, EventKind, Ticket};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct OutageReport {
    pub events: usize,
    pub links: usize,
    /// Events taken per second while the partner was down.
    pub ingest_per_s: f64,
    /// The daemon's peak resident memory while the backlog grew.
    pub outage_rss_peak_mib: f64,
    /// The data dir once everything waited in it.
    pub data_dir_mib: f64,
    /// Seconds from the restart until the daemon answered `/health`.
    pub restart_secs: f64,
    /// The daemon's peak resident memory from its restart until the
    /// partner came back.
    pub restart_rss_peak_mib: f64,
    /// From the partner's return until the last event arrived.
    pub drain_secs: f64,
    pub drain_per_s: f64,
    /// The daemon's peak resident memory over the whole drain.
    pub drain_rss_peak_mib: f64,
    /// Every link's events arrived in the order sent, each once.
    pub in_order: bool,
    pub repeats: usize,
}

/// The partner: creates tickets always; answers 503 to the rest while
/// down; notes each ticket's comments in arrival order.
#[derive(Clone, Default)]
struct Downstream {
    up: Arc<AtomicBool>,
    tickets: Arc<Mutex<u64>>,
    seen: Arc<Mutex<HashSet<uuid::Uuid>>>,
    repeats: Arc<Mutex<usize>>,
    order: Arc<Mutex<HashMap<String, Vec<usize>>>>,
}

impl Downstream {
    fn answer(&self, body: &[u8]) -> (u16, Bytes) {
        let Ok(ev) = serde_json::from_slice::<Event>(body) else {
            return (400, Bytes::from_static(b"{}"));
        };
        if let EventKind::TicketCreated { .. } = ev.kind {
            let mut n = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            return (200, Bytes::from(format!("{{\"ticket\":\"B-{}\"}}", *n)));
        }
        if !self.up.load(Ordering::SeqCst) {
            return (503, Bytes::from_static(b"{\"error\":\"down\"}"));
        }
        if !self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ev.id)
        {
            *self.repeats.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            return (200, Bytes::from_static(b"{}"));
        }
        if let EventKind::Comment { comment } = &ev.kind {
            let i = comment.body.split(':').next().and_then(|h| {
                h.strip_prefix("event ")
                    .and_then(|n| n.parse::<usize>().ok())
            });
            if let Some(i) = i {
                self.order
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(ev.ticket.clone())
                    .or_default()
                    .push(i);
            }
        }
        (200, Bytes::from_static(b"{}"))
    }

    fn arrived(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let me = me.clone();
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let me = me.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            let (status, text) = me.answer(&body);
                            let mut res = hyper::Response::new(Full::new(text));
                            *res.status_mut() = hyper::StatusCode::from_u16(status)
                                .unwrap_or(hyper::StatusCode::OK);
                            Ok::<_, hyper::Error>(res)
                        }
                    },
                );
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    }
}

fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    Ok(l.local_addr().map_err(err)?.port())
}

/// The child daemon's peak resident memory since it started.
fn peak_mib(child: &Child) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| rss_peak_mib(&s))
        .unwrap_or(f64::NAN)
}

fn dir_mib(dir: &std::path::Path) -> f64 {
    fn size(p: &std::path::Path) -> u64 {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|r| r.flatten().map(|e| size(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    size(dir) as f64 / (1024.0 * 1024.0)
}

/// Starts the daemon and waits until it answers `/health`.
async fn start(config: &std::path::Path, hooks: u16) -> Result<(Child, f64), BenchError> {
    let t = Instant::now();
    let log = config.with_extension("log");
    let mut child = Command::new(std::env::current_exe().map_err(err)?)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(err)?)
        .spawn()
        .map_err(err)?;
    let client = reqwest::Client::new();
    for _ in 0..600 {
        let health = client
            .get(format!("http://127.0.0.1:{hooks}/health"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return Ok((child, t.elapsed().as_secs_f64()));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(BenchError(format!("the daemon ended ({status}): {said}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    Err(BenchError(
        "the daemon did not answer /health within 30 s".into(),
    ))
}

fn stop(mut child: Child) {
    // SIGTERM: the daemon's own stop, as an operator's restart.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

async fn until(what: &str, secs: u64, f: impl Fn() -> bool) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if Instant::now() > deadline {
            return Err(BenchError(format!("{what} did not happen within {secs} s")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub async fn outage(events: usize, links: usize) -> Result<OutageReport, BenchError> {
    if links == 0 || links > events {
        return Err(BenchError(format!(
            "--links must be between 1 and --events ({events}), not {links}"
        )));
    }
    let dir = std::env::temp_dir().join(format!(
        "deskbridge-outage-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(err)?;
    let r = run(&dir, events, links).await;
    let _ = std::fs::remove_dir_all(&dir);
    r
}

async fn run(
    dir: &std::path::Path,
    events: usize,
    links: usize,
) -> Result<OutageReport, BenchError> {
    let down = Downstream::default();
    down.up.store(true, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err)?;
    let dest = listener.local_addr().map_err(err)?;
    down.serve(listener);
    let (_, in_secret) = Secret::generate();
    let (_, out_secret) = Secret::generate();
    std::fs::write(dir.join("in"), &in_secret).map_err(err)?;
    std::fs::write(dir.join("out"), &out_secret).map_err(err)?;
    let (hooks, admin) = (free_port()?, free_port()?);
    let config = dir.join("deskbridge.toml");
    let ports = (hooks.to_string(), admin.to_string());
    let text = config_text(dir, "", (&ports.0, &ports.1), dest, None);
    std::fs::write(&config, text).map_err(err)?;
    let (child, _) = start(&config, hooks).await?;
    let secret = Secret::parse(&in_secret).map_err(err)?;
    let hooks_addr: std::net::SocketAddr = format!("127.0.0.1:{hooks}").parse().map_err(err)?;
    let mut setup = Partner::connect(hooks_addr, &secret).await?;
    for l in 0..links {
        let ticket = Ticket {
            subject: format!("outage ticket {l}"),
            ..Ticket::default()
        };
        setup
            .post(Event::new(
                format!("T{l}"),
                EventKind::TicketCreated {
                    ticket_data: ticket,
                },
            ))
            .await?;
    }
    let tickets = down.tickets.clone();
    until("the tickets' creation", 120, || {
        *tickets.lock().unwrap_or_else(|p| p.into_inner()) >= links as u64
    })
    .await?;
    down.up.store(false, Ordering::SeqCst);
    let mut conns = Vec::with_capacity(links);
    for _ in 0..links {
        conns.push(Partner::connect(hooks_addr, &secret).await?);
    }
    let start_send = Instant::now();
    // Per link in order, links side by side; each event built as sent.
    let results: Vec<Result<(), BenchError>> = futures::stream::iter(
        conns
            .into_iter()
            .enumerate()
            .map(|(l, mut conn)| async move {
                let mut i = l;
                while i < events {
                    let comment = Comment {
                        body: payload(600, i),
                        audience: Audience::Public,
                        attachments: vec![],
                    };
                    conn.post(Event::new(format!("T{l}"), EventKind::Comment { comment }))
                        .await?;
                    i += links;
                }
                Ok(())
            }),
    )
    .buffer_unordered(links)
    .collect()
    .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    let ingest_per_s = events as f64 / start_send.elapsed().as_secs_f64();
    let outage_rss_peak_mib = peak_mib(&child);
    stop(child);
    let data_dir_mib = dir_mib(&dir.join("data"));
    let (child, restart_secs) = start(&config, hooks).await?;
    // Let it settle with the backlog waiting (its retries go on).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restart_rss_peak_mib = peak_mib(&child);
    let back = Instant::now();
    down.up.store(true, Ordering::SeqCst);
    let d2 = down.clone();
    until("the drain", 3600, || d2.arrived() >= events).await?;
    let drain_secs = back.elapsed().as_secs_f64();
    let drain_rss_peak_mib = peak_mib(&child);
    stop(child);
    let order = down.order.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let in_order = order.len() == links
        && order.values().all(|v| v.windows(2).all(|w| w[0] < w[1]))
        && order.values().map(Vec::len).sum::<usize>() == events;
    let repeats = *down.repeats.lock().unwrap_or_else(|p| p.into_inner());
    Ok(OutageReport {
        events,
        links,
        ingest_per_s,
        outage_rss_peak_mib,
        data_dir_mib,
        restart_secs,
        restart_rss_peak_mib,
        drain_secs,
        drain_per_s: events as f64 / drain_secs,
        drain_rss_peak_mib,
        in_order,
        repeats,
    })
}
