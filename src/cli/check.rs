//! The commands that read the configuration and the world without running
//! the daemon: `check`, `probe`, `schemas`.

use super::args::ConfigArg;
use super::outcome::Outcome;
use anyhow::Result;
use deskbridge::config::Config;
use std::path::Path;

/// Validates the configuration; every problem is named by its path.
pub fn check(c: &ConfigArg) -> Outcome {
    match Config::load(&c.config) {
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
                return Outcome::Exit(1);
            }
            Outcome::Done
        }
        Err(e) => {
            for p in e.problems() {
                eprintln!("{}: {p}", c.config.display());
            }
            Outcome::Exit(1)
        }
    }
}

/// Checks an endpoint, or the broker; exits 1 when a check fails.
pub async fn probe(c: &ConfigArg, endpoint: Option<String>, bus: bool) -> Result<Outcome> {
    let config = c.load()?;
    let report = match endpoint {
        Some(e) if !bus => deskbridge::tools::probe::probe(&config, &e).await,
        _ => deskbridge::tools::probe::probe_bus(&config).await,
    }
    // Its text alone, as before: no "Caused by" lines under it.
    .map_err(|e| anyhow::Error::msg(e.to_string()))?;
    for line in &report.lines {
        println!("{line}");
    }
    if !report.ok {
        return Ok(Outcome::Exit(1));
    }
    Ok(Outcome::Done)
}

pub fn schemas(dir: &Path) -> Result<()> {
    deskbridge::schema::write_all(dir)?;
    println!("schemas written to {}", dir.display());
    Ok(())
}
