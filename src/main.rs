//! The command line: parses the arguments, runs the command (each one's
//! body is in `cli/`), and turns how it ended into the exit code.

mod cli;

use anyhow::Result;
use clap::Parser;
use cli::args::{Cli, Cmd};
use cli::outcome::Outcome;

// glibc's malloc took about 15% of the CPU under load, much of it waiting
// on its arena lock between the runtime's threads; mimalloc keeps
// per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An error exits 1 with its message; a command that said why itself
/// exits with its own code, at once (nothing stopped or flushed, as before
/// this split: the daemon's fatal exit 3 relies on it).
fn main() -> Result<()> {
    let args = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    match rt.block_on(dispatch(args))? {
        Outcome::Done => Ok(()),
        Outcome::Exit(code) => std::process::exit(code),
    }
}

async fn dispatch(args: Cli) -> Result<Outcome> {
    let c = &args.c;
    let done = |r: Result<()>| r.map(|()| Outcome::Done);
    match args.cmd {
        Cmd::Run => cli::daemon::run(c).await,
        Cmd::Check => Ok(cli::check::check(c)),
        Cmd::Links { show, json } => done(cli::operator::links(c, show, json).await),
        Cmd::Dead { json } => done(cli::operator::dead(c, json).await),
        Cmd::Replay { id } => done(cli::operator::replay(c, id).await),
        Cmd::Discard { id, queued_for } => done(cli::operator::discard(c, id, queued_for).await),
        Cmd::Transfer { from, to } => done(cli::operator::transfer(c, from, to).await),
        Cmd::Probe { endpoint, bus } => cli::check::probe(c, endpoint, bus).await,
        Cmd::Status { json } => done(cli::operator::status(c, json).await),
        Cmd::Demo => done(cli::tools::demo().await),
        Cmd::Bench {
            events,
            links,
            json,
            outage: true,
            ..
        } => done(cli::tools::outage(events, links, json).await),
        Cmd::Bench {
            bus,
            events,
            links,
            amqp_url,
            json,
            rate,
            outage: false,
        } => done(cli::tools::bench(bus, events, links, amqp_url, rate, json).await),
        Cmd::Schemas { dir } => done(cli::check::schemas(&dir)),
    }
}
