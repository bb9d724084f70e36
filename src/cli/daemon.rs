//! `deskbridge run`: the daemon, until a signal, a broker's refusal or a
//! store that cannot write stops it.

use super::args::ConfigArg;
use super::logging::init_logging;
use super::outcome::Outcome;
use anyhow::Result;

pub async fn run(c: &ConfigArg) -> Result<Outcome> {
    let config = c.load()?;
    init_logging(config.daemon.log_json);
    let running = deskbridge::daemon::start(config, Default::default()).await?;
    let refused = tokio::select! {
        _ = wait_for_signal() => None,
        why = running.refused() => Some(why),
        why = running.fatal() => {
            // Nothing more can be promised; what was answered 2xx
            // is in the store, and the supervisor starts us again.
            tracing::error!("{why}; stopping (exit 3)");
            // Exit at once, as on a crash: nothing is stopped or flushed
            // on the way out (a flush could only fail the same way).
            std::mem::forget(running);
            return Ok(Outcome::Exit(3));
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
        return Ok(Outcome::Exit(3));
    }
    Ok(Outcome::Done)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
