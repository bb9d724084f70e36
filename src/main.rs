//! The command line: thin, turning arguments into library calls.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use deskbridge::config::Config;
use deskbridge::ops::{DeadView, LinkView, Ops, StatusView, TransferRequest};
use std::path::PathBuf;
use std::sync::Arc;

// glibc's malloc took about 15% of the CPU under load, much of it waiting
// on its arena lock between the runtime's threads; mimalloc keeps
// per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "deskbridge",
    version,
    about = "Links tickets across independent help desk systems"
)]
struct Cli {
    #[command(flatten)]
    c: ConfigArg,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct ConfigArg {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "DESKBRIDGE_CONFIG",
        default_value = "deskbridge.toml",
        global = true
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon.
    Run,
    /// Validate a configuration file; every problem is named by its path.
    Check,
    /// List links, or show one (`links show ID`).
    Links {
        #[command(subcommand)]
        show: Option<LinksCmd>,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// List dead letters: events a partner refused, with its reason.
    Dead {
        #[arg(long)]
        json: bool,
    },
    /// Re-run a dead letter after its cause is fixed.
    Replay { id: String },
    /// Give up a dead letter for good so that its link moves on; or, with
    /// --queued-for, every message still queued for an endpoint removed
    /// from the configuration.
    Discard {
        #[arg(required_unless_present = "queued_for")]
        id: Option<String>,
        /// An endpoint no longer in the configuration (`deskbridge status`
        /// lists those that still have messages).
        #[arg(long, conflicts_with = "id")]
        queued_for: Option<String>,
    },
    /// Hand a ticket to a partner: `--from ENDPOINT:TICKET --to ENDPOINT`.
    Transfer {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Check an endpoint's connectivity and credentials, and say what
    /// deskbridge will do there; or, with --bus, the broker's. Only reads;
    /// exits 1 when a check fails.
    Probe {
        #[arg(long, required_unless_present = "bus", conflicts_with = "bus")]
        endpoint: Option<String>,
        /// Check the broker instead: URL, TLS, login, and the topology
        /// (read passively; nothing is declared).
        #[arg(long)]
        bus: bool,
    },
    /// Queues, failures and dead letters per destination.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run the three-party story in-process (no broker, no external desk).
    Demo,
    /// Measure the full pipeline (and bare lapin on the same broker).
    Bench {
        #[arg(long, value_enum, default_value = "embedded")]
        bus: BenchBus,
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Tickets sending at once, each its events in order: a gateway
        /// serves many tickets at a time.
        #[arg(long, env = "DESKBRIDGE_BENCH_LINKS", default_value_t = 64)]
        links: usize,
        /// The broker for `--bus amqp` and for the baseline.
        #[arg(
            long,
            env = "DESKBRIDGE_BENCH_AMQP_URL",
            default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
        )]
        amqp_url: String,
        #[arg(long)]
        json: bool,
    },
    /// Write the JSON Schemas of the config and the event into a directory.
    Schemas {
        #[arg(default_value = "schemas")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchBus {
    Embedded,
    Amqp,
}

#[derive(Subcommand)]
enum LinksCmd {
    Show { id: String },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run(cli))
}

fn load(c: &ConfigArg) -> Result<Config> {
    Config::load(&c.config).map_err(|e| anyhow::anyhow!("{}: {e}", c.config.display()))
}

/// Talks to the running daemon's admin API, or opens the data dir itself
/// when no daemon runs.
enum Target {
    Remote(reqwest::Client, String),
    Local(Box<Ops>),
}

async fn target(config: Config) -> Result<Target> {
    let base = format!("http://{}", config.daemon.admin_listen);
    let client = reqwest::Client::new();
    match client.get(format!("{base}/status")).send().await {
        Ok(_) => Ok(Target::Remote(client, base)),
        Err(e) if e.is_connect() => {
            let ops = deskbridge::daemon::open(Arc::new(config), Default::default(), None)
                .context("no daemon answers on admin_listen, and the data dir cannot be opened")?;
            Ok(Target::Local(Box::new(ops)))
        }
        Err(e) => Err(e).context("admin API"),
    }
}

impl Target {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let Target::Remote(c, base) = self else {
            unreachable!("remote only")
        };
        decode(c.get(format!("{base}{path}")).send().await?).await
    }

    async fn post<T: serde::de::DeserializeOwned, B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let Target::Remote(c, base) = self else {
            unreachable!("remote only")
        };
        decode(c.post(format!("{base}{path}")).json(body).send().await?).await
    }
}

async fn decode<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T> {
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(text);
        bail!("{msg}");
    }
    Ok(serde_json::from_str(&text)?)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_link(l: &LinkView) {
    let side = |s: &deskbridge::ops::SideView| {
        format!(
            "{} ({}) ticket {} [{}]",
            s.endpoint,
            s.party,
            s.ticket.as_deref().unwrap_or("(being created)"),
            s.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into())
        )
    };
    println!(
        "{}  {}  ->  {}",
        l.id,
        side(&l.upstream),
        side(&l.downstream)
    );
}

/// Where the work stands at each company of the link's chain, and how
/// long each has held it.
fn print_chain(l: &LinkView) {
    if l.chain.len() < 2 {
        return;
    }
    println!("chain (the work, from the company it came from):");
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    for s in &l.chain {
        let mut line = format!(
            "  {:indent$}{} ({}) ticket {}",
            "",
            s.endpoint,
            s.party,
            s.ticket.as_deref().unwrap_or("(being created)"),
            indent = s.depth * 2
        );
        let relayed = if s.status_relayed {
            " (relayed from its partner)"
        } else {
            ""
        };
        match (s.status, s.status_at) {
            (Some(st), Some(at)) => line.push_str(&format!(", {st}{relayed} since {}", time(at))),
            (Some(st), None) => line.push_str(&format!(", {st}{relayed}")),
            _ => {}
        }
        if let (Some(got), Some(held)) = (s.got_at, s.held_secs) {
            line.push_str(&format!(
                ", handed the work {}, held it {}{}",
                time(got),
                duration(held),
                if s.done_at.is_some() { "" } else { " so far" }
            ));
        }
        if Some(&l.id) == s.link.as_ref() {
            line.push_str("  <- this link");
        }
        println!("{line}");
    }
}

/// A span of seconds to the operator's eye: "45 s", "3 min", "2 h 14 min",
/// "3 d 2 h".
fn duration(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

async fn run(cli: Cli) -> Result<()> {
    let c = cli.c;
    match cli.cmd {
        Cmd::Run => {
            let config = load(&c)?;
            init_logging(config.daemon.log_json);
            let running = deskbridge::daemon::start(config, Default::default()).await?;
            let refused = tokio::select! {
                _ = wait_for_signal() => None,
                why = running.refused() => Some(why),
                why = running.fatal() => {
                    // Nothing more can be promised; what was answered 2xx
                    // is in the store, and the supervisor starts us again.
                    tracing::error!("{why}; stopping (exit 3)");
                    std::process::exit(3);
                }
            };
            match &refused {
                Some(why) => tracing::error!("refused by the broker: {why}; stopping"),
                None => tracing::info!("shutting down"),
            }
            let stopped = running.stop().await;
            if let Some(why) = refused {
                // What was taken meanwhile stays in this data_dir's outbox,
                // for this deskbridge once it has a prefix of its own.
                if let Err(e) = stopped {
                    tracing::error!("the last flush failed: {e}");
                }
                anyhow::bail!("refused by the broker: {why}");
            }
            if let Err(e) = stopped {
                // As a failed write while running: the supervisor should
                // know (and start it again, where that helps).
                tracing::error!("the last flush failed: {e}");
                std::process::exit(3);
            }
        }
        Cmd::Check => match Config::load(&c.config) {
            Ok(config) => {
                println!(
                    "{}: valid ({} parties, {} endpoints, {} transfer rules)",
                    c.config.display(),
                    config.parties.len(),
                    config.endpoints.len(),
                    config.transfers.len()
                );
                // What each transfer hands over, and where it lands.
                let reports = deskbridge::handover::report(&config);
                print!("{}", deskbridge::handover::render(&reports));
                // A rule on a field the sending side never reads would
                // wait forever without a word.
                let never = deskbridge::handover::never_firing(&reports);
                for p in &never {
                    eprintln!("{}: {p}", c.config.display());
                }
                if !never.is_empty() {
                    std::process::exit(1);
                }
            }
            Err(e) => {
                for p in e.problems() {
                    eprintln!("{}: {p}", c.config.display());
                }
                std::process::exit(1);
            }
        },
        Cmd::Links { show, json } => {
            let t = target(load(&c)?).await?;
            match show {
                Some(LinksCmd::Show { id }) => {
                    let l: LinkView = match &t {
                        Target::Local(o) => o.link(&id)?,
                        _ => t.get(&format!("/links/{id}")).await?,
                    };
                    if json {
                        print_json(&l)?;
                    } else {
                        print_link(&l);
                        for (dest, n) in &l.queued {
                            println!("  queued for {dest}: {n}");
                        }
                        for d in &l.dead {
                            println!("  dead letter {} ({}): {}", d.id, d.kind, d.error);
                        }
                        print_chain(&l);
                    }
                }
                None => {
                    let ls: Vec<LinkView> = match &t {
                        Target::Local(o) => o.links()?,
                        _ => t.get("/links").await?,
                    };
                    if json {
                        print_json(&ls)?;
                    } else {
                        ls.iter().for_each(print_link);
                    }
                }
            }
        }
        Cmd::Dead { json } => {
            let t = target(load(&c)?).await?;
            let ds: Vec<DeadView> = match &t {
                Target::Local(o) => o.dead()?,
                _ => t.get("/dead").await?,
            };
            if json {
                print_json(&ds)?;
            } else if ds.is_empty() {
                println!("no dead letters");
            } else {
                for d in ds {
                    println!(
                        "{}  {} on link {}  after {} attempt(s) at {}\n    {}",
                        d.id, d.kind, d.link, d.attempts, d.at, d.error
                    );
                }
            }
        }
        Cmd::Replay { id } => {
            let t = target(load(&c)?).await?;
            let msg: String = match &t {
                Target::Local(o) => o.replay(&id).await?,
                _ => t.post(&format!("/dead/{id}/replay"), &()).await?,
            };
            println!("{msg}");
        }
        Cmd::Discard { id, queued_for } => {
            let t = target(load(&c)?).await?;
            let msg: String = match (&t, id, queued_for) {
                (Target::Local(o), Some(id), _) => o.discard(&id).await?,
                (Target::Local(o), None, Some(ep)) => o.discard_queued(&ep).await?,
                (_, Some(id), _) => t.post(&format!("/dead/{id}/discard"), &()).await?,
                (_, None, Some(ep)) => t.post(&format!("/queues/{ep}/discard"), &()).await?,
                (_, None, None) => unreachable!("clap requires one of them"),
            };
            println!("{msg}");
        }
        Cmd::Transfer { from, to } => {
            let (ep, ticket) = from
                .split_once(':')
                .context("--from takes ENDPOINT:TICKET, for example svc:42")?;
            let req = TransferRequest {
                from: ep.into(),
                ticket: ticket.into(),
                to,
            };
            let t = target(load(&c)?).await?;
            let l: LinkView = match &t {
                Target::Local(o) => o.transfer(&req).await?,
                _ => t.post("/transfer", &req).await?,
            };
            print_link(&l);
        }
        Cmd::Probe { endpoint, bus } => {
            let config = load(&c)?;
            let report = match endpoint {
                Some(e) if !bus => deskbridge::tools::probe::probe(&config, &e).await,
                _ => deskbridge::tools::probe::probe_bus(&config).await,
            }
            .map_err(anyhow::Error::msg)?;
            for line in &report.lines {
                println!("{line}");
            }
            if !report.ok {
                std::process::exit(1);
            }
        }
        Cmd::Status { json } => {
            let t = target(load(&c)?).await?;
            let s: StatusView = match &t {
                Target::Local(o) => o.status()?,
                _ => t.get("/status").await?,
            };
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "daemon {}; {} links, {} dead letters",
                    if s.running { "running" } else { "not running" },
                    s.links,
                    s.dead_letters
                );
                if let Some(b) = &s.broker {
                    match &b.waiting {
                        None => println!("  broker: connected, {} published", b.published),
                        Some(why) => println!(
                            "  broker: WAITING for the broker since {}: {why} (events are kept in the outbox)",
                            b.waiting_since.map(|t| t.to_rfc3339()).unwrap_or_default()
                        ),
                    }
                }
                for (name, d) in &s.destinations {
                    if d.unconfigured {
                        println!(
                            "  {name}: NOT CONFIGURED to receive, {} queued, {} parked{}: configure endpoints.{name} again to deliver them in order, or give them up with `deskbridge discard --queued-for {name}`",
                            d.queued,
                            d.parked,
                            d.oldest_waiting_since
                                .map(|t| format!(", the oldest waiting for {}", ago(t)))
                                .unwrap_or_default()
                        );
                        continue;
                    }
                    println!(
                        "  {name}: {} queued, {} in flight, {} delivered, {} blocked links{}{}{}",
                        d.queued,
                        d.in_flight,
                        d.delivered,
                        d.blocked_links,
                        d.oldest_waiting_since
                            .map(|t| format!(", the oldest waiting for {}", ago(t)))
                            .unwrap_or_default(),
                        broker_part(d),
                        d.failing
                            .as_ref()
                            .map(|f| format!(
                                ", failing since {}: {f}",
                                d.failing_since.map(|t| t.to_rfc3339()).unwrap_or_default()
                            ))
                            .unwrap_or_default()
                    );
                }
                for (name, p) in &s.pollers {
                    println!(
                        "  {name} polling: {} rounds (the last: {} list requests, {} tickets read, {} ms), {} events taken, last read {}; the product's webhooks: {} taken, {} refused{}",
                        p.rounds,
                        p.last_round_pages,
                        p.last_round_reads,
                        p.last_round_ms,
                        p.taken,
                        p.last_ok.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()),
                        p.webhooks,
                        p.webhooks_refused,
                        p.failing
                            .as_ref()
                            .map(|f| format!("; FAILING: {f}"))
                            .unwrap_or_default()
                    );
                }
                for (name, m) in &s.mailboxes {
                    println!(
                        "  {name} mailbox: {} mails taken, {} left alone (automatic, bounces, own), {} not applied{}{}",
                        m.taken,
                        m.left_alone,
                        m.not_applied,
                        m.last_not_applied
                            .as_ref()
                            .map(|l| format!(" (latest: {l})"))
                            .unwrap_or_default(),
                        m.failing
                            .as_ref()
                            .map(|f| format!("; FAILING: {f}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        Cmd::Demo => {
            if std::env::var_os("DESKBRIDGE_LOG").is_some() {
                init_logging(false);
            }
            deskbridge::tools::demo::run(&mut std::io::stdout()).await?;
        }
        Cmd::Bench {
            bus,
            events,
            links,
            amqp_url,
            json,
        } => {
            if std::env::var_os("DESKBRIDGE_LOG").is_some() {
                init_logging(false);
            }
            let kind = match bus {
                BenchBus::Embedded => deskbridge::config::BusKind::Embedded,
                BenchBus::Amqp => deskbridge::config::BusKind::Amqp,
            };
            let r = deskbridge::tools::bench::run(kind, events, links, Some(amqp_url)).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
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
        }
        Cmd::Schemas { dir } => {
            deskbridge::schema::write_all(&dir)?;
            println!("schemas written to {}", dir.display());
        }
    }
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DESKBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// How long ago `t` was, to the operator's eye.
fn ago(t: chrono::DateTime<chrono::Utc>) -> String {
    duration((chrono::Utc::now() - t).num_seconds())
}

/// The broker's side of a destination's status line: what waits at the
/// broker and what is parked in the store.
fn broker_part(d: &deskbridge::relay::DestStatus) -> String {
    let mut out = String::new();
    if let Some(n) = d.at_broker {
        out.push_str(&format!(", {n} waiting at the broker"));
    }
    if d.parked > 0 {
        out.push_str(&format!(
            ", {} parked in the store ({} links)",
            d.parked, d.parked_links
        ));
    }
    if d.waiting_links > 0 {
        out.push_str(&format!(
            ", {} links wait for an earlier message the broker has not delivered",
            d.waiting_links
        ));
    }
    if d.foreign > 0 {
        out.push_str(&format!(
            ", {} messages for links this deskbridge does not know moved to the broker's dead-letter queue (another deskbridge on the same bus.prefix?)",
            d.foreign
        ));
    }
    out
}
