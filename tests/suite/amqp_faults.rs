//! The RabbitMQ transport under faults, against the real binary:
//! - the broker is SIGKILLed and restarted mid-stream, and so is the
//!   daemon; every event still lands exactly once and in order per link,
//!   and while the broker is down ingest goes on and `status` says so;
//! - a destination that hangs, and one that answers 503, for the whole run
//!   do not stop another destination;
//! - SIGTERM with deliveries in flight exits 0, and after a restart
//!   everything lands exactly once.
//!
//! Tests that kill the broker use a private node
//! (scripts/rabbitmq-private-node.sh: own ports, data dir and cookie),
//! behind a TCP relay that reattaches the daemon the moment the broker is
//! back (see `front`); the others use the machine's broker
//! (127.0.0.1:5672, guest/guest, or DESKBRIDGE_TEST_AMQP_URL) with a
//! unique prefix, and delete their queues at the end. Exactly-once is
//! counted by what the destination desk holds, not by raw deliveries.

use crate::common::{eventually, free_port, Gateway, Party, PARTIES};
use deskbridge::bus::amqp::{on_tokio, Topology};
use deskbridge::event::Audience;
use deskbridge::tools::sample_desk::{Fault, SampleDesk};
use futures::StreamExt;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::Connection;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/rabbitmq-private-node.sh"
);

/// A private RabbitMQ node in a temporary directory on free ports; killed
/// when dropped, panics included.
struct PrivateBroker {
    dir: tempfile::TempDir,
    ports: [u16; 3],
    /// An AMQPS listener besides the plain one (its CA: `ca_file`), on a
    /// port of its own; it asks for a client certificate (`client_p12`).
    tls_port: Option<u16>,
}

impl PrivateBroker {
    async fn start() -> PrivateBroker {
        PrivateBroker::start_with(None).await
    }

    async fn start_with(tls_port: Option<u16>) -> PrivateBroker {
        let b = PrivateBroker {
            dir: tempfile::tempdir().unwrap(),
            ports: [free_port(), free_port(), free_port()],
            tls_port,
        };
        b.run("start").await;
        b
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    /// deskbridge's client certificate, of the same CA (password: test).
    fn client_p12(&self) -> std::path::PathBuf {
        self.dir.path().join("tls/client.p12")
    }

    fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new(SCRIPT);
        if let Some(p) = self.tls_port {
            c.env("RABBITMQ_PRIVATE_TLS_PORT", p.to_string());
            c.env("RABBITMQ_PRIVATE_TLS_VERIFY", "1");
            c.env("RABBITMQ_PRIVATE_TLS_EXTERNAL", "1");
        }
        c.arg(cmd).arg(self.dir.path());
        for p in self.ports {
            c.arg(p.to_string());
        }
        c
    }

    /// rabbitmqctl on the node; what it printed.
    async fn ctl(&self, args: &[&str]) -> String {
        self.run_with("ctl", args).await
    }

    /// Runs the script off the runtime's threads (the sample desks live on
    /// them) and fails the test when it fails.
    async fn run(&self, cmd: &str) {
        self.run_with(cmd, &[]).await;
    }

    async fn run_with(&self, cmd: &str, args: &[&str]) -> String {
        let mut c = self.command(cmd);
        c.args(args);
        let what = format!("rabbitmq-private-node.sh {cmd}");
        let out = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.command("kill9").output();
    }
}

/// A TCP relay in front of the private broker. It accepts at once and
/// connects upstream as soon as the broker listens, so a client that
/// tried while the broker was down is attached the moment it is back: the
/// quickest reconnect a client can make, when the broker has just
/// recovered its queues and not yet cleaned up the consumers of before
/// the crash. Returns the URL to give the daemon.
async fn front(broker: &PrivateBroker) -> String {
    let upstream = ("127.0.0.1", broker.ports[0]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut server = loop {
                    match tokio::net::TcpStream::connect(upstream).await {
                        Ok(s) => break s,
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

fn shared_broker_url() -> String {
    std::env::var("DESKBRIDGE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn unique_prefix() -> String {
    format!("dbfault-{}", uuid::Uuid::now_v7().simple())
}

/// The `[bus]` table; the URL (it carries a password) goes to a file.
fn bus(dir: &Path, url: &str, prefix: &str) -> String {
    let file = dir.join("amqp.url");
    std::fs::write(&file, url).unwrap();
    format!(
        "\n[bus]\nkind = \"amqp\"\nurl = {{ file = \"{}\" }}\nprefix = \"{prefix}\"\n",
        file.display()
    )
}

/// A test's exchanges and queues on the shared broker, deleted when
/// dropped (panics included) so that test runs do not pile up quorum
/// queues there. Declare it before the Gateway: it must go after the
/// daemon, which would declare them again.
struct SharedTopology {
    topology: Topology,
    dests: Vec<String>,
}

impl SharedTopology {
    fn new(dests: &[&str]) -> SharedTopology {
        SharedTopology {
            topology: Topology {
                prefix: unique_prefix(),
            },
            dests: dests.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn prefix(&self) -> &str {
        &self.topology.prefix
    }
}

impl Drop for SharedTopology {
    fn drop(&mut self) {
        let t = self.topology.clone();
        let dests = self.dests.clone();
        // A runtime of its own on a thread of its own: drop may run
        // inside the test's runtime, which cannot be blocked on.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let conn = Connection::connect(&shared_broker_url(), on_tokio()).await?;
                let ch = conn.create_channel().await?;
                for d in &dests {
                    for q in [t.queue(d), t.dead_queue(d)] {
                        ch.queue_delete(&q, QueueDeleteOptions::default()).await?;
                    }
                }
                for e in [t.exchange(), t.dead_exchange()] {
                    ch.exchange_delete(&e, ExchangeDeleteOptions::default())
                        .await?;
                }
                conn.close(200, "test done").await
            })
        })
        .join();
    }
}

/// The desk's ticket linked to `upstream`.
fn partner_ticket(desk: &SampleDesk, upstream: &str) -> Option<String> {
    desk.tickets()
        .into_iter()
        .find(|t| t.partner.as_ref().and_then(|p| p.1.as_deref()) == Some(upstream))
        .map(|t| t.id)
}

/// Comment bodies on the desk's ticket linked to `upstream`, in order.
fn comments(desk: &SampleDesk, upstream: &str) -> Vec<String> {
    partner_ticket(desk, upstream)
        .and_then(|id| desk.ticket(&id))
        .map(|t| t.comments.into_iter().map(|c| c.body).collect())
        .unwrap_or_default()
}

/// Comments on all of the desk's tickets.
fn total_comments(desk: &SampleDesk) -> usize {
    desk.tickets().iter().map(|t| t.comments.len()).sum()
}

fn body(link: usize, i: usize) -> String {
    format!("link {link} note {i:05}")
}

/// A few tickets in `src`, and numbered partner notes written on them
/// round-robin, a chunk at a time.
struct Stream {
    tickets: Vec<String>,
    /// Notes per ticket in the end.
    per_link: Vec<usize>,
    /// Notes written so far per ticket.
    written: Vec<usize>,
}

impl Stream {
    fn open(src: &SampleDesk, per_link: &[usize]) -> Stream {
        let tickets = (0..per_link.len())
            .map(|l| src.create_ticket(&format!("Link {l}"), "streamed", &[], "alice"))
            .collect();
        Stream {
            tickets,
            per_link: per_link.to_vec(),
            written: vec![0; per_link.len()],
        }
    }

    fn total(&self) -> usize {
        self.per_link.iter().sum()
    }

    /// Writes `n` more notes (fewer when the stream ends).
    fn write(&mut self, src: &SampleDesk, mut n: usize) {
        while n > 0 && self.written != self.per_link {
            for l in 0..self.tickets.len() {
                if n > 0 && self.written[l] < self.per_link[l] {
                    let body = body(l, self.written[l]);
                    src.comment(&self.tickets[l], &body, Audience::Partner, "alice", &[]);
                    self.written[l] += 1;
                    n -= 1;
                }
            }
        }
    }

    /// Every note at `dst` once, in order; `src` holds only its own notes
    /// (no echo came back).
    fn check(&self, src: &SampleDesk, dst: &SampleDesk) {
        assert_eq!(
            dst.tickets().len(),
            self.tickets.len(),
            "one ticket per link"
        );
        for (l, t) in self.tickets.iter().enumerate() {
            let got = comments(dst, t);
            let want: Vec<String> = (0..self.per_link[l]).map(|i| body(l, i)).collect();
            if got != want {
                let first = got
                    .iter()
                    .zip(&want)
                    .position(|(g, w)| g != w)
                    .unwrap_or(got.len().min(want.len()));
                panic!(
                    "link {l}: {} notes at the destination, {} expected; first difference at {first}: {:?} vs {:?}",
                    got.len(),
                    want.len(),
                    got.get(first),
                    want.get(first)
                );
            }
            assert_eq!(
                src.ticket(t).unwrap().comments.len(),
                self.per_link[l],
                "link {l}: something came back to the source"
            );
        }
    }
}

/// Sender and receiver have handed everything over and nothing is queued
/// or in flight.
async fn settled(gw: &Gateway, src: &Party, dst: &Party) -> bool {
    src.desk.unsent() == 0 && dst.desk.unsent() == 0 && gw.idle().await
}

/// `deskbridge status --json` from the CLI (a blocking child process).
fn status_cli(gw: &Gateway) -> Value {
    let out = tokio::task::block_in_place(|| gw.cli(&["status", "--json"]));
    assert!(
        out.status.success(),
        "deskbridge status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The daemon's pid, from the state file it writes once it listens (a
/// killed daemon leaves its file behind: poll with `running_daemon`).
fn daemon_pid(gw: &Gateway) -> Option<u32> {
    let text = std::fs::read(gw.dir.path().join("data/daemon.json")).ok()?;
    let info: Value = serde_json::from_slice(&text).ok()?;
    info["pid"].as_u64().map(|p| p as u32)
}

/// Waits until the daemon's state file names a live process other than
/// `not` (a daemon killed before), and returns its pid.
async fn running_daemon(gw: &Gateway, not: Option<u32>) -> u32 {
    eventually("the daemon's pid", 30, || async {
        daemon_pid(gw).is_some_and(|p| Some(p) != not && alive(p))
    })
    .await;
    daemon_pid(gw).unwrap()
}

/// Whether the process runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

fn src_dst_config(dir: &Path, url: &str, prefix: &str, src: &Party, dst: &Party) -> String {
    format!(
        "{}{PARTIES}{}{}\n[[transfers]]\nfrom = \"src\"\nto = \"dst\"\n",
        bus(dir, url, prefix),
        src.toml(dir, "svc", ""),
        dst.toml(dir, "vendor", "")
    )
}

fn log_tail(gw: &Gateway) -> String {
    let log = gw.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// SIGKILLs of the daemon in the first burst.
const DAEMON_KILLS: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn broker_and_daemon_killed_mid_stream_every_event_lands_once_in_order() {
    let started = Instant::now();
    let broker = PrivateBroker::start().await;
    let broker_up = started.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let src = Party::start("src").await;
    let dst = Party::start("dst").await;
    let url = front(&broker).await;
    let conf = src_dst_config(dir.path(), &url, &unique_prefix(), &src, &dst);
    let mut gw = Gateway::start_with(dir, &conf);
    src.connect(&gw);
    dst.connect(&gw);
    let mut stream = Stream::open(&src.desk, &[1667, 1667, 1666]);
    let total = stream.total();
    let mut kills: Vec<String> = vec![];
    let delivered = || total_comments(&dst.desk);
    // Waits until `n` more notes have landed since `from`.
    async fn progress(dst: &SampleDesk, from: usize, n: usize, what: &str) {
        eventually(what, 90, || async { total_comments(dst) >= from + n }).await;
    }

    // 1. A burst, so that the queue holds more than the consumer's
    // prefetch; the daemon dies with deliveries under way. Its successor
    // must not take the queue's later messages before the ones the dead
    // consumer held.
    stream.write(&src.desk, 2500);
    let mut mark = 0;
    for _ in 0..DAEMON_KILLS {
        progress(&dst.desk, mark, 250, "notes delivered").await;
        gw.kill9();
        mark = delivered();
        kills.push(format!("daemon at {mark}"));
        gw.spawn();
    }
    progress(&dst.desk, mark, 250, "delivery after the daemon's restart").await;

    // 2. The broker dies mid-stream.
    broker.run("kill9").await;
    let at_broker_kill = delivered();
    kills.push(format!("broker at {at_broker_kill}"));
    assert!(at_broker_kill < total, "the broker died mid-stream");

    // 3. While it is down: the daemon says so, keeps taking events (the
    // source's webhooks are answered 2xx) and does not exit.
    stream.write(&src.desk, 1000);
    let pid = running_daemon(&gw, None).await;
    eventually("status shows the broker down", 30, || async {
        let s = gw.status().await;
        s["broker"]["connected"] == false && s["broker"]["waiting"].is_string()
    })
    .await;
    eventually("ingest drains while the broker is down", 90, || async {
        src.desk.unsent() == 0
    })
    .await;
    let s = status_cli(&gw);
    assert_eq!(s["running"], true, "{s}");
    assert_eq!(s["broker"]["connected"], false, "{s}");
    assert!(s["broker"]["waiting"].is_string(), "{s}");
    assert!(s["broker"]["waiting_since"].is_string(), "{s}");
    assert!(
        s["destinations"]["dst"]["queued"].as_u64().unwrap() >= 1000,
        "events wait in the outbox: {s}"
    );
    assert!(alive(pid), "the daemon exited while the broker was down");
    let text = tokio::task::block_in_place(|| gw.cli(&["status"]));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("WAITING for the broker"), "{text}");

    // 4. The daemon dies too, and starts while the broker is still down.
    gw.kill9();
    kills.push(format!("daemon at {} (broker down)", delivered()));
    gw.spawn();
    running_daemon(&gw, Some(pid)).await;
    eventually("the restarted daemon waits for the broker", 30, || async {
        gw.status().await["broker"]["waiting"].is_string()
    })
    .await;

    // 5. The broker comes back; delivery resumes from the backlog.
    broker.run("start").await;
    eventually("status shows the broker back", 30, || async {
        gw.status().await["broker"]["connected"] == true
    })
    .await;
    let mark = delivered();
    progress(&dst.desk, mark, 300, "delivery resumes").await;

    // 6. The rest; the broker dies once more while the backlog streams.
    stream.write(&src.desk, total);
    let mark = delivered();
    progress(&dst.desk, mark, 300, "more notes delivered").await;
    broker.run("kill9").await;
    kills.push(format!("broker at {}", delivered()));
    broker.run("start").await;

    eventually("every note delivered", 120, || async {
        delivered() >= total && settled(&gw, &src, &dst).await
    })
    .await;
    // Nothing trails in after the count was reached.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream.check(&src.desk, &dst.desk);
    let s = gw.status().await;
    assert_eq!(s["broker"]["connected"], true, "{s}");
    assert_eq!(s["dead_letters"], 0, "{s}");
    assert!(daemon_pid(&gw).is_some_and(alive));
    let events = total + stream.tickets.len();
    eprintln!(
        "broker+daemon kills: {events} events ({total} notes + {} transfers) over {} links; \
         {} raw deliveries at dst ({} repeats); SIGKILLs: {}; private broker up in {broker_up:.1?}; total {:.1?}",
        stream.tickets.len(),
        stream.tickets.len(),
        dst.desk.received(),
        dst.desk.received() as usize - events,
        kills.join(", "),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_and_a_failing_destination_do_not_stop_another() {
    let started = Instant::now();
    let shared = SharedTopology::new(&["src", "hang", "ok", "down"]);
    let dir = tempfile::tempdir().unwrap();
    let src = Party::start("src").await;
    let hang = Party::start("hang").await;
    let ok = Party::start("ok").await;
    let down = Party::start("down").await;
    hang.desk.set_fault(Some(Fault::Hang), None);
    down.desk
        .set_fault(Some(Fault::Status(503, "maintenance".into())), None);
    let mut conf = format!(
        "{}{PARTIES}{}{}{}{}",
        bus(dir.path(), &shared_broker_url(), shared.prefix()),
        src.toml(dir.path(), "client", ""),
        hang.toml(dir.path(), "svc", "")
            .replace("timeout_secs = 2", "timeout_secs = 1"),
        ok.toml(dir.path(), "vendor", ""),
        down.toml(dir.path(), "vendor", ""),
    );
    for to in ["hang", "ok", "down"] {
        conf.push_str(&format!("\n[[transfers]]\nfrom = \"src\"\nto = \"{to}\"\n"));
    }
    let gw = Gateway::start_with(dir, &conf);
    src.connect(&gw);
    ok.connect(&gw);
    let mut stream = Stream::open(&src.desk, &[300, 300, 300]);
    stream.write(&src.desk, stream.total());

    eventually("every note at the healthy destination", 60, || async {
        total_comments(&ok.desk) >= stream.total()
            && src.desk.unsent() == 0
            && ok.desk.unsent() == 0
    })
    .await;
    stream.check(&src.desk, &ok.desk);
    let healthy = started.elapsed();
    // The other two were tried all along and hold everything.
    let s = gw.status().await;
    let d = &s["destinations"];
    assert_eq!(d["ok"]["queued"], 0, "{s}");
    assert_eq!(d["ok"]["delivered"], stream.total() + 3, "{s}");
    for name in ["hang", "down"] {
        assert!(d[name]["failing"].is_string(), "{name}: {s}");
        assert_eq!(d[name]["delivered"], 0, "{name}: {s}");
        assert!(d[name]["in_flight"].as_u64().unwrap() > 0, "{name}: {s}");
    }
    assert!(
        d["hang"]["failing"].as_str().unwrap().contains("timeout"),
        "{s}"
    );
    assert!(
        d["down"]["failing"].as_str().unwrap().contains("503"),
        "{s}"
    );
    // How far behind each is: the oldest message waiting (in flight at
    // the relay, with a broker) is as old as the run, and said so in
    // the metrics too; nothing waits for the healthy one.
    for name in ["hang", "down"] {
        let since: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(d[name]["oldest_waiting_since"].clone())
                .unwrap_or_else(|e| panic!("{name}: {e}: {s}"));
        let age = chrono::Utc::now() - since;
        assert!(
            age > chrono::Duration::from_std(healthy / 2).unwrap(),
            "{name}: {age} after {healthy:?}: {s}"
        );
    }
    assert!(d["ok"].get("oldest_waiting_since").is_none(), "{s}");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("deskbridge_oldest_waiting_seconds{destination=\"down\"}")
            && !metrics.contains("deskbridge_oldest_waiting_seconds{destination=\"ok\"}"),
        "{metrics}"
    );
    assert!(hang.desk.tickets().is_empty() && down.desk.tickets().is_empty());
    assert!(hang.desk.received() > 0 && down.desk.received() > 0);
    assert_eq!(s["broker"]["connected"], true, "{s}");
    assert_eq!(s["dead_letters"], 0, "{s}");
    let (hung, refused) = (hang.desk.received(), down.desk.received());

    // Both come back: they get everything they missed, once and in order.
    hang.desk.set_fault(None, None);
    down.desk.set_fault(None, None);
    eventually("the two others catch up", 60, || async {
        total_comments(&hang.desk) >= stream.total()
            && total_comments(&down.desk) >= stream.total()
            && gw.idle().await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.check(&src.desk, &hang.desk);
    stream.check(&src.desk, &down.desk);
    stream.check(&src.desk, &ok.desk);
    eprintln!(
        "isolation: {} notes + 3 transfers at the healthy destination in {healthy:.1?} \
         while the others failed {hung} (hang) and {refused} (503) deliveries; \
         both caught up once in order by {:.1?}",
        stream.total(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_deliveries_in_flight_exits_0_and_nothing_is_lost_or_doubled() {
    let started = Instant::now();
    let shared = SharedTopology::new(&["src", "dst"]);
    let dir = tempfile::tempdir().unwrap();
    let src = Party::start("src").await;
    let dst = Party::start("dst").await;
    let conf = src_dst_config(
        dir.path(),
        &shared_broker_url(),
        shared.prefix(),
        &src,
        &dst,
    );
    let mut gw = Gateway::start_with(dir, &conf);
    src.connect(&gw);
    dst.connect(&gw);
    let mut stream = Stream::open(&src.desk, &[400, 400, 400]);
    stream.write(&src.desk, stream.total());
    eventually("notes flowing", 60, || async {
        total_comments(&dst.desk) >= 150
    })
    .await;
    // The next delivery hangs (until timeout_secs = 2 abandons it): it is
    // certainly in flight when the signal comes.
    let before = dst.desk.received();
    dst.desk.set_fault(Some(Fault::Hang), Some(1));
    eventually("a delivery hangs", 30, || async {
        dst.desk.received() > before
    })
    .await;
    let s = gw.status().await;
    assert!(
        s["destinations"]["dst"]["in_flight"].as_u64().unwrap() > 0,
        "{s}"
    );
    let at_term = total_comments(&dst.desk);
    let t = Instant::now();
    let code = tokio::task::block_in_place(|| gw.terminate());
    let stop_took = t.elapsed();
    assert!(code.success(), "exit status {code}:\n{}", log_tail(&gw));
    // The hung delivery is abandoned after 2 s and retried; the stop must
    // not sit out the whole 10 s grace (as it did while acknowledgements
    // on the closed connection never resolved).
    assert!(
        stop_took < Duration::from_secs(8),
        "stop took {stop_took:?}"
    );
    assert!(at_term < stream.total(), "stopped mid-stream");

    gw.spawn();
    eventually("every note delivered after the restart", 90, || async {
        total_comments(&dst.desk) >= stream.total() && settled(&gw, &src, &dst).await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream.check(&src.desk, &dst.desk);
    assert!(gw.log().contains("shutting down"));
    eprintln!(
        "sigterm: {} events, {} raw deliveries at dst; SIGTERM at {at_term} notes, exit 0 in {stop_took:.1?}; total {:.1?}",
        stream.total() + 3,
        dst.desk.received(),
        started.elapsed()
    );
}

/// src → dst on the shared broker with prefetch 8 (a window of 2 messages
/// per link), running. Bind all four, `_shared` first: the daemon then
/// stops before its topology is removed.
struct SmallWindow {
    gw: Gateway,
    src: Party,
    dst: Party,
    _shared: SharedTopology,
}

impl SmallWindow {
    async fn start() -> SmallWindow {
        SmallWindow::start_with("").await
    }

    /// With more `[bus]` settings.
    async fn start_with(bus_extra: &str) -> SmallWindow {
        let shared = SharedTopology::new(&["src", "dst"]);
        let dir = tempfile::tempdir().unwrap();
        let src = Party::start("src").await;
        let dst = Party::start("dst").await;
        let conf = format!(
            "{}prefetch = 8\n{bus_extra}{PARTIES}{}{}\n[[transfers]]\nfrom = \"src\"\nto = \"dst\"\n",
            bus(dir.path(), &shared_broker_url(), shared.prefix()),
            src.toml(dir.path(), "svc", ""),
            dst.toml(dir.path(), "vendor", "")
        );
        let gw = Gateway::start_with(dir, &conf);
        src.connect(&gw);
        dst.connect(&gw);
        SmallWindow {
            gw,
            src,
            dst,
            _shared: shared,
        }
    }
}

/// A ticket opened in `src`, once it is at `dst`: both ids.
async fn ticket_at_dst(src: &Party, dst: &Party, subject: &str) -> (String, String) {
    let t = src.desk.create_ticket(subject, "", &[], "Ann");
    eventually("the ticket at dst", 20, || async {
        partner_ticket(&dst.desk, &t).is_some()
    })
    .await;
    let at_dst = partner_ticket(&dst.desk, &t).unwrap();
    (t, at_dst)
}

/// One link that keeps failing at a destination must not fill the
/// consumer's prefetch window and stall that destination's other links:
/// its extra messages are parked in the store, in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_link_does_not_stall_the_other_links_of_its_destination() {
    // A small window makes the stall certain without the parking.
    let SmallWindow {
        _shared,
        src,
        dst,
        gw,
    } = SmallWindow::start().await;
    let stuck = src.desk.create_ticket("stuck", "", &[], "Ann");
    let moving = src.desk.create_ticket("moving", "", &[], "Ann");
    eventually("both tickets at dst", 20, || async {
        partner_ticket(&dst.desk, &stuck).is_some() && partner_ticket(&dst.desk, &moving).is_some()
    })
    .await;
    let stuck_at_dst = partner_ticket(&dst.desk, &stuck).unwrap();
    dst.desk.set_ticket_fault(
        &stuck_at_dst,
        Some(Fault::Status(503, "this ticket is locked".into())),
    );
    let n = 60;
    for i in 0..n {
        src.desk
            .comment(&stuck, &body(0, i), Audience::Partner, "Ann", &[]);
        src.desk
            .comment(&moving, &body(1, i), Audience::Partner, "Ann", &[]);
    }
    let expected = |link: usize| (0..n).map(|i| body(link, i)).collect::<Vec<_>>();
    eventually(
        "the moving link's notes all arrive while the other is stuck",
        60,
        || async { comments(&dst.desk, &moving).len() >= n },
    )
    .await;
    assert_eq!(comments(&dst.desk, &moving), expected(1));
    assert!(comments(&dst.desk, &stuck).is_empty());
    let s = gw.status().await;
    let d = &s["destinations"]["dst"];
    assert!(
        d["failing"].as_str().unwrap_or("").contains("locked"),
        "{s}"
    );
    // Where the stuck link's notes wait, for the operator: parked in the
    // store (the few in memory too); the broker's queue is read too.
    assert_eq!(d["parked_links"], 1, "{s}");
    let parked = d["parked"].as_u64().unwrap();
    assert!(parked > n as u64 / 2 && parked <= n as u64, "{s}");
    assert!(d["at_broker"].is_u64(), "{s}");
    let text = String::from_utf8(gw.cli(&["status"]).stdout).unwrap();
    assert!(
        text.contains(&format!("{parked} parked in the store (1 links)"))
            && text.contains("waiting at the broker"),
        "{text}"
    );

    dst.desk.set_ticket_fault(&stuck_at_dst, None);
    eventually("the stuck link catches up", 60, || async {
        comments(&dst.desk, &stuck).len() >= n && gw.idle().await
    })
    .await;
    assert_eq!(comments(&dst.desk, &stuck), expected(0));
    assert_eq!(comments(&dst.desk, &moving), expected(1));
    let s = gw.status().await;
    let d = &s["destinations"]["dst"];
    assert_eq!(
        (&d["parked"], &d["parked_links"]),
        (&0.into(), &0.into()),
        "{s}"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("deskbridge_parked{destination=\"dst\"} 0")
            && metrics.contains("deskbridge_at_broker{destination=\"dst\"} "),
        "{metrics}"
    );
}

/// A stuck link's later messages wait in the store while its earlier ones
/// are still the broker's (in flight or in the window, unacknowledged).
/// When the daemon dies (SIGKILL) or stops (SIGTERM) then, its successor
/// must not deliver the parked ones before the earlier ones come back.
#[tokio::test(flavor = "multi_thread")]
async fn a_parked_link_keeps_its_order_across_sigkill_and_sigterm() {
    // Window of 2 per link: a few notes are enough to park it.
    let SmallWindow {
        _shared,
        src,
        dst,
        mut gw,
    } = SmallWindow::start().await;
    let (t, at_dst) = ticket_at_dst(&src, &dst, "stuck").await;
    let per_round = 20;
    for (round, how) in ["SIGKILL", "SIGTERM"].into_iter().enumerate() {
        dst.desk.set_ticket_fault(
            &at_dst,
            Some(Fault::Status(503, "this ticket is locked".into())),
        );
        for i in round * per_round..(round + 1) * per_round {
            src.desk
                .comment(&t, &body(0, i), Audience::Partner, "Ann", &[]);
        }
        eventually("every note taken in, the link parked", 30, || async {
            let s = gw.status().await;
            src.desk.unsent() == 0 && s["destinations"]["dst"]["parked_links"] == 1
        })
        .await;
        match how {
            "SIGKILL" => gw.kill9(),
            _ => {
                let t = Instant::now();
                let code = tokio::task::block_in_place(|| gw.terminate());
                assert!(code.success(), "exit status {code}:\n{}", log_tail(&gw));
                // The delivery waiting between attempts is returned at
                // once, not waited for through the 10 s grace.
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "stop took {:?}",
                    t.elapsed()
                );
            }
        }
        dst.desk.set_ticket_fault(&at_dst, None);
        gw.spawn();
        let n = (round + 1) * per_round;
        eventually(
            &format!("every note after the {how} restart"),
            60,
            || async { comments(&dst.desk, &t).len() >= n && gw.idle().await },
        )
        .await;
        assert_eq!(
            comments(&dst.desk, &t),
            (0..n).map(|i| body(0, i)).collect::<Vec<_>>(),
            "after {how}"
        );
    }
}

/// Waits until `n` notes of link 0 are at `dst` on `t` and nothing is
/// left to do, then asserts they are notes 0 to n-1, once each, in order.
async fn all_notes_in_order(gw: &Gateway, dst: &Party, t: &str, n: usize, what: &str, secs: u64) {
    eventually(what, secs, || async {
        comments(&dst.desk, t).len() >= n && gw.idle().await
    })
    .await;
    assert_eq!(
        comments(&dst.desk, t),
        (0..n).map(|i| body(0, i)).collect::<Vec<_>>(),
        "{what}"
    );
}

/// The one dead letter's id, if there is exactly one.
async fn dead_letter(gw: &Gateway) -> Option<String> {
    let dead = gw.get("/dead").await;
    let dead = dead.as_array().unwrap();
    (dead.len() == 1).then(|| dead[0]["id"].as_str().unwrap().to_string())
}

/// Note `refused` of link 0 on `t` becomes a dead letter at `dst`, then
/// notes `later` wait parked behind it; its dead letter's id.
async fn refused_then_parked(
    gw: &Gateway,
    src: &Party,
    dst: &Party,
    (t, at_dst): (&str, &str),
    refused: usize,
    later: std::ops::Range<usize>,
) -> String {
    let say = |i| {
        src.desk
            .comment(t, &body(0, i), Audience::Partner, "Ann", &[])
    };
    dst.desk
        .set_ticket_fault(at_dst, Some(Fault::Status(400, "field required".into())));
    say(refused);
    eventually("a dead letter", 20, || async {
        dead_letter(gw).await.is_some()
    })
    .await;
    dst.desk.set_ticket_fault(at_dst, None);
    let parked = later.len();
    for i in later {
        say(i);
    }
    eventually("the later notes parked behind it", 20, || async {
        let s = gw.status().await;
        src.desk.unsent() == 0 && s["destinations"]["dst"]["parked"] == parked
    })
    .await;
    dead_letter(gw).await.unwrap()
}

/// Broker mode: a refused note becomes a dead letter that holds its link,
/// the link's later notes wait parked in the store (across a SIGKILL
/// restart), `deskbridge replay` puts it back first, and `deskbridge
/// discard` lets the link move on without it.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_holds_its_link_and_replay_or_discard_keep_the_order() {
    let SmallWindow {
        _shared,
        src,
        dst,
        mut gw,
    } = SmallWindow::start().await;
    let (t, at_dst) = ticket_at_dst(&src, &dst, "refused").await;
    // One refused note, then ten that must wait behind it.
    let id = refused_then_parked(&gw, &src, &dst, (&t, &at_dst), 0, 1..11).await;
    assert!(comments(&dst.desk, &t).is_empty());
    gw.kill9();
    gw.spawn();
    let s = gw.status().await;
    assert_eq!(s["destinations"]["dst"]["blocked_links"], 1, "{s}");
    assert!(comments(&dst.desk, &t).is_empty());
    let out = gw.cli(&["replay", &id]);
    assert!(out.status.success(), "{out:?}");
    all_notes_in_order(&gw, &dst, &t, 11, "the link caught up after the replay", 30).await;

    // Again, and this time the operator gives up on the refused note.
    let id = refused_then_parked(&gw, &src, &dst, (&t, &at_dst), 11, 12..16).await;
    let out = gw.cli(&["discard", &id]);
    assert!(out.status.success(), "{out:?}");
    eventually("the link moved on without it", 30, || async {
        comments(&dst.desk, &t).len() >= 15 && gw.idle().await
    })
    .await;
    let want: Vec<String> = (0..16).filter(|i| *i != 11).map(|i| body(0, i)).collect();
    assert_eq!(comments(&dst.desk, &t), want);
    let s = gw.status().await;
    let d = &s["destinations"]["dst"];
    assert_eq!(
        (&d["parked"], &d["blocked_links"]),
        (&0.into(), &0.into()),
        "{s}"
    );
}

/// Stands in for a broker that hands a link's messages out of order: takes
/// the next `notes.len()` messages of `dst`'s queue before the daemon's
/// consumer can (the daemon is stopped meanwhile, and the queue has one
/// active consumer at a time), for notes `notes` written on `t`, then
/// takes them off the queue and lets the daemon's consumer have it again.
/// The daemon runs again when it returns; `put_back` publishes them again,
/// in whatever order the test likes.
async fn steal(
    gw: &mut Gateway,
    shared: &SharedTopology,
    src: &Party,
    t: &str,
    notes: std::ops::Range<usize>,
) -> Stolen {
    let code = tokio::task::block_in_place(|| gw.terminate());
    assert!(code.success(), "exit status {code}:\n{}", log_tail(gw));
    let conn = Connection::connect(&shared_broker_url(), on_tokio())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let queue = shared.topology.queue("dst");
    let mut consumer = ch
        .basic_consume(&queue, "thief", Default::default(), Default::default())
        .await
        .unwrap();
    let n = notes.len();
    for i in notes {
        src.desk
            .comment(t, &body(0, i), Audience::Partner, "Ann", &[]);
    }
    tokio::task::block_in_place(|| gw.spawn());
    let mut got = vec![];
    while got.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("the daemon publishes the notes")
            .unwrap()
            .unwrap();
        d.ack(Default::default()).await.unwrap();
        got.push((d.data, d.properties));
    }
    conn.close(200, "done").await.unwrap();
    let conn = Connection::connect(&shared_broker_url(), on_tokio())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    Stolen {
        _conn: conn,
        ch,
        queue,
        got,
    }
}

/// Messages taken off a queue (see `steal`).
struct Stolen {
    _conn: Connection,
    ch: lapin::Channel,
    queue: String,
    got: Vec<(Vec<u8>, lapin::BasicProperties)>,
}

impl Stolen {
    /// Puts message `i` back at the queue's tail (a publish, confirmed).
    async fn put_back(&self, i: usize) {
        let (data, props) = &self.got[i];
        let confirm = self
            .ch
            .basic_publish("", &self.queue, Default::default(), data, props.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
}

/// The broker hands a link's later note out before its earlier one (as
/// when it refuses the earlier one of a publish batch and takes the later,
/// and the earlier one's republish comes after): the later one waits for
/// it. And when the earlier one does not come at all, the later one
/// becomes a dead letter after `order_wait_secs` that says why; when the
/// earlier one turns up after all, a replay applies both in order.
#[tokio::test(flavor = "multi_thread")]
async fn notes_the_broker_hands_out_of_order_are_applied_in_order() {
    let SmallWindow {
        _shared,
        src,
        dst,
        mut gw,
    } = SmallWindow::start_with("order_wait_secs = 3\n").await;
    let (t, _) = ticket_at_dst(&src, &dst, "reordered").await;

    let stolen = steal(&mut gw, &_shared, &src, &t, 0..2).await;
    stolen.put_back(1).await;
    stolen.put_back(0).await;
    eventually("both notes at dst", 30, || async {
        comments(&dst.desk, &t).len() >= 2 && gw.idle().await
    })
    .await;
    assert_eq!(comments(&dst.desk, &t), [body(0, 0), body(0, 1)]);
    assert!(dead_letter(&gw).await.is_none());

    // Note 2 is lost at the broker; note 3 comes.
    let stolen = steal(&mut gw, &_shared, &src, &t, 2..4).await;
    stolen.put_back(1).await;
    eventually("note 3 waits for note 2", 10, || async {
        gw.status().await["destinations"]["dst"]["waiting_links"] == 1
    })
    .await;
    let text = String::from_utf8(gw.cli(&["status"]).stdout).unwrap();
    assert!(
        text.contains("1 links wait for an earlier message"),
        "{text}"
    );
    // After order_wait_secs, and two readings of the queue (5 s apart)
    // that find it empty.
    eventually("note 3 a dead letter", 30, || async {
        dead_letter(&gw).await.is_some()
    })
    .await;
    let dead = gw.get("/dead").await;
    let why = dead[0]["error"].as_str().unwrap();
    assert!(why.contains("has not arrived in 3 s"), "{why}");
    assert_eq!(comments(&dst.desk, &t).len(), 2);
    // It turns up after all: it waits behind the dead letter.
    stolen.put_back(0).await;
    eventually("note 2 parked behind it", 20, || async {
        gw.status().await["destinations"]["dst"]["parked"] == 1
    })
    .await;
    let id = dead_letter(&gw).await.unwrap();
    let out = gw.cli(&["replay", &id]);
    assert!(out.status.success(), "{out:?}");
    all_notes_in_order(&gw, &dst, &t, 4, "all four notes at dst", 30).await;
}

/// A broker that refuses publishes (nacks: here its queue is full, under a
/// max-length policy with reject-publish) loses and doubles nothing: the
/// refused events stay in the outbox, the status says why, the publisher
/// retries at a pause (no reconnect loop) while the other destination's
/// events go on (more of the refused ones wait than a publish window
/// holds), and once the broker takes them again each note lands once, in
/// order.
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_refuses_publishes_loses_and_doubles_nothing() {
    let broker = PrivateBroker::start().await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.ports[0]);
    let prefix = unique_prefix();
    let dir = tempfile::tempdir().unwrap();
    let src = Party::start("src").await;
    let dst = Party::start("dst").await;
    let ok = Party::start("ok").await;
    let mut conf = format!(
        "{}publish_window = 4\n{PARTIES}{}{}{}",
        bus(dir.path(), &url, &prefix),
        src.toml(dir.path(), "svc", ""),
        dst.toml(dir.path(), "vendor", ""),
        ok.toml(dir.path(), "vendor", ""),
    );
    for to in ["dst", "ok"] {
        conf.push_str(&format!("\n[[transfers]]\nfrom = \"src\"\nto = \"{to}\"\n"));
    }
    let mut gw = Gateway::start_with(dir, &conf);
    src.connect(&gw);
    dst.connect(&gw);
    ok.connect(&gw);
    let (t, _) = ticket_at_dst(&src, &dst, "refused").await;
    eventually("the ticket at ok", 20, || async {
        partner_ticket(&ok.desk, &t).is_some()
    })
    .await;
    let queue = Topology {
        prefix: prefix.clone(),
    }
    .queue("dst");
    broker
        .ctl(&[
            "set_policy",
            "--apply-to",
            "queues",
            "full",
            &format!("^{}$", queue.replace('.', "\\.")),
            r#"{"max-length":2,"overflow":"reject-publish"}"#,
        ])
        .await;
    // Another consumer holds the queue (one at a time may), with one
    // message unacknowledged: the queue fills and the broker refuses.
    let code = tokio::task::block_in_place(|| gw.terminate());
    assert!(code.success(), "exit status {code}:\n{}", log_tail(&gw));
    let conn = Connection::connect(&url, on_tokio()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(1, Default::default()).await.unwrap();
    let _holder = ch
        .basic_consume(&queue, "holder", Default::default(), Default::default())
        .await
        .unwrap();
    let n = 12;
    for i in 0..n {
        src.desk
            .comment(&t, &body(0, i), Audience::Partner, "Ann", &[]);
    }
    tokio::task::block_in_place(|| gw.spawn());
    eventually("the status says the broker refuses", 30, || async {
        gw.status().await["broker"]["waiting"]
            .as_str()
            .is_some_and(|w| w.contains("refuses publishes") && w.contains(&queue))
    })
    .await;
    let text = String::from_utf8(gw.cli(&["status"]).stdout).unwrap();
    assert!(text.contains("WAITING for the broker"), "{text}");
    eventually("every note at ok meanwhile", 30, || async {
        comments(&ok.desk, &t).len() >= n
    })
    .await;
    assert_eq!(
        comments(&ok.desk, &t),
        (0..n).map(|i| body(0, i)).collect::<Vec<_>>()
    );
    // Refused again and again, at a pause: not one reconnect per refusal.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = gw.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("refuses publishes"))
            .count(),
        1,
        "{}",
        log_tail(&gw)
    );
    assert!(!log.contains("reconnecting"), "{}", log_tail(&gw));
    assert!(comments(&dst.desk, &t).is_empty());
    conn.close(200, "done").await.unwrap();
    all_notes_in_order(&gw, &dst, &t, n, "every note at dst", 60).await;
    let s = gw.status().await;
    assert_eq!(s["broker"]["connected"], true, "{s}");
    assert!(gw.log().contains("the broker takes publishes again"));
}

/// A broker reached over TLS (amqps://) whose certificate a company's own
/// CA signed, and which asks for a client certificate: until the daemon
/// has `ca_file` and `client_certificate` it waits and says why (and exits
/// on SIGTERM as usual); with both, events cross.
#[tokio::test(flavor = "multi_thread")]
async fn amqps_with_the_companys_own_ca_and_a_client_certificate() {
    let tls_port = free_port();
    let broker = PrivateBroker::start_with(Some(tls_port)).await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("p12.password");
    std::fs::write(&password, "test\n").unwrap();
    let src = Party::start("src").await;
    let dst = Party::start("dst").await;
    let prefix = unique_prefix();
    let url = format!("amqps://guest:guest@localhost:{tls_port}/%2f");
    let conf = src_dst_config(dir.path(), &url, &prefix, &src, &dst);
    let mut gw = Gateway::start_with(dir, &conf);
    src.connect(&gw);
    dst.connect(&gw);
    let t = src
        .desk
        .create_ticket("Till offline", "since 9:00", &[], "Ann");
    // Each stage's [bus] additions, and what the daemon must say without them.
    let stages = [
        (String::new(), Some("ca_file")),
        (
            format!("ca_file = \"{}\"\n", broker.ca_file().display()),
            Some("client_certificate"),
        ),
        (
            format!(
                "ca_file = \"{}\"\n[bus.client_certificate]\npkcs12_file = \"{}\"\npassword = {{ file = \"{}\" }}\n",
                broker.ca_file().display(),
                broker.client_p12().display(),
                password.display()
            ),
            None,
        ),
    ];
    let config = std::fs::read_to_string(&gw.config).unwrap();
    let at = format!("prefix = \"{prefix}\"\n");
    for (i, (extra, hint)) in stages.iter().enumerate() {
        if i > 0 {
            let code = tokio::task::block_in_place(|| gw.terminate());
            assert!(code.success(), "exit status {code}:\n{}", log_tail(&gw));
            let staged = config.replacen(&at, &format!("{at}{extra}"), 1);
            assert_ne!(config, staged);
            std::fs::write(&gw.config, staged).unwrap();
            gw.spawn();
        }
        let Some(hint) = hint else { break };
        eventually(&format!("the daemon names {hint}"), 30, || async {
            let s = gw.status().await;
            s["broker"]["waiting"]
                .as_str()
                .is_some_and(|w| w.contains(hint))
        })
        .await;
        let s = gw.status().await;
        assert_eq!(s["broker"]["connected"], false, "{s}");
        let m = gw.metrics().await;
        assert!(m.contains("deskbridge_broker_connected 0"), "{m}");
        eprintln!("amqps, stage {i}: {}", s["broker"]["waiting"]);
        // Neither the URL's password nor the certificate's is shown.
        assert!(!s.to_string().contains("guest:guest"), "{s}");
        assert!(!gw.log().contains("guest:guest"));
    }
    src.desk.comment(
        &t,
        "rebooted it, still blank",
        Audience::Partner,
        "Ann",
        &[],
    );
    eventually("the ticket and its note cross over TLS", 60, || async {
        comments(&dst.desk, &t) == vec!["rebooted it, still blank".to_string()]
    })
    .await;
    let s = gw.status().await;
    assert_eq!(s["broker"]["connected"], true, "{s}");
    let m = gw.metrics().await;
    assert!(m.contains("deskbridge_broker_connected 1"), "{m}");
    // The broker may deliver before the publisher has taken in its confirm.
    // Three: the ticket and the note to the destination, and the new
    // ticket's id back to the source desk (show_partner).
    eventually("every event counted as published", 10, || async {
        gw.metrics()
            .await
            .contains("deskbridge_broker_published_total 3")
    })
    .await;

    // A login by the certificate alone (EXTERNAL): no user or password in
    // the URL; the certificate's name is the broker's user.
    broker.ctl(&["add_user", "deskbridge", "never-used"]).await;
    broker
        .ctl(&["set_permissions", "-p", "/", "deskbridge", ".*", ".*", ".*"])
        .await;
    let code = tokio::task::block_in_place(|| gw.terminate());
    assert!(code.success(), "exit status {code}:\n{}", log_tail(&gw));
    std::fs::write(
        gw.dir.path().join("amqp.url"),
        format!("amqps://localhost:{tls_port}/%2f?auth_mechanism=external"),
    )
    .unwrap();
    gw.spawn();
    src.desk
        .comment(&t, "swapped the printer", Audience::Partner, "Ann", &[]);
    eventually(
        "a note crosses with the certificate's login",
        60,
        || async { comments(&dst.desk, &t).len() == 2 },
    )
    .await;
    // The broker lists the stopped daemon's connections for a moment
    // after they closed (a second or more on a busy machine).
    eventually(
        "only the certificate's connections at the broker",
        30,
        || async {
            let conns = broker
                .ctl(&["list_connections", "user", "auth_mechanism"])
                .await;
            conns.contains("deskbridge\tEXTERNAL") && !conns.contains("guest")
        },
    )
    .await;
    let text = String::from_utf8(gw.cli(&["status"]).stdout).unwrap();
    assert!(text.contains("broker: connected"), "{text}");
}
