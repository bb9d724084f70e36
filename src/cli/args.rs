//! The command line's arguments (clap): the commands and their options.

use clap::{Parser, Subcommand};
use deskbridge::config::Config;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "deskbridge",
    version,
    about = "Links tickets across independent help desk systems"
)]
pub struct Cli {
    #[command(flatten)]
    pub c: ConfigArg,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Args, Clone)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "DESKBRIDGE_CONFIG",
        default_value = "deskbridge.toml",
        global = true
    )]
    pub config: PathBuf,
}

#[derive(Subcommand)]
pub enum Cmd {
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
        /// Hold this many events per second (all links together) and
        /// report the latency added at that rate; without it, flat out.
        #[arg(long)]
        rate: Option<f64>,
        /// Instead: the partner is down while the source sends --events;
        /// prints the daemon's memory during the outage and after a
        /// restart, then the drain when the partner is back.
        #[arg(long)]
        outage: bool,
    },
    /// Write the JSON Schemas of the config and the event into a directory.
    Schemas {
        #[arg(default_value = "schemas")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BenchBus {
    Embedded,
    Amqp,
}

#[derive(Subcommand)]
pub enum LinksCmd {
    Show { id: String },
}

impl ConfigArg {
    /// Loads the configuration file, its name in front of any problem.
    pub fn load(&self) -> anyhow::Result<Config> {
        Config::load(&self.config).map_err(|e| anyhow::anyhow!("{}: {e}", self.config.display()))
    }
}
