//! The full pipeline on loopback: signed webhooks in, store, bus, relay,
//! signed webhooks out to the instant destination.

use super::destination::{serve_destination, Arrivals};
use super::partner::{payload, Partner};
use super::report::{err, BenchError};
use super::usage::{CpuMark, Spent};
use crate::config::{BusKind, Config};
use crate::connector::webhook::sign::Secret;
use crate::event::{Audience, Comment, Event, EventKind, Ticket};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Seconds, latencies, flushes, and the CPU and memory used.
pub(super) type Measured = (f64, Vec<f64>, crate::store::FlushStats, Spent);

pub(super) async fn pipeline(
    dir: &std::path::Path,
    bus: BusKind,
    events: usize,
    links: usize,
    payload_bytes: usize,
    amqp_url: Option<String>,
    rate: Option<f64>,
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
    let text = config_text(dir, &bus_toml, ("0", "0"), dest_addr, Some(links));
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
    // At a held rate, event i is due at start + i / rate, and its latency
    // counts from then: a send held up behind a slow answer is added
    // latency too, not a pause the figures leave out.
    let due = move |i: usize| rate.map(|r| start + Duration::from_secs_f64(i as f64 / r));
    let results: Vec<Result<(), BenchError>> =
        futures::stream::iter(per_link.into_iter().zip(conns).enumerate().map(
            |(l, (evs, mut conn))| {
                let sent = sent.clone();
                async move {
                    for (k, ev) in evs.into_iter().enumerate() {
                        let at = match due(l + k * links) {
                            Some(at) => {
                                tokio::time::sleep_until(at.into()).await;
                                at
                            }
                            None => Instant::now(),
                        };
                        sent.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(ev.id, at);
                        conn.post(ev).await?;
                    }
                    Ok(())
                }
            },
        ))
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

/// The bench's configuration: a webhook source `src` and a webhook
/// destination `dst` at `dest`, their secrets in `dir` (files `in` and
/// `out`), the listeners on the given ports of 127.0.0.1.
pub(super) fn config_text(
    dir: &std::path::Path,
    bus_toml: &str,
    (hooks, admin): (&str, &str),
    dest: std::net::SocketAddr,
    concurrency: Option<usize>,
) -> String {
    let concurrency = concurrency.map_or(String::new(), |c| format!("concurrency = {c}\n"));
    format!(
        r#"{bus_toml}
[daemon]
data_dir = "{data}"
listen = "127.0.0.1:{hooks}"
admin_listen = "127.0.0.1:{admin}"
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
{concurrency}[endpoints.dst.webhook]
url = "http://{dest}/in"
outbound_secret = {{ file = "{outf}" }}
[[transfers]]
from = "src"
to = "dst"
"#,
        data = dir.join("data").display(),
        inf = dir.join("in").display(),
        outf = dir.join("out").display(),
    )
}
