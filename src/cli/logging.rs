//! The log's setup: `DESKBRIDGE_LOG` filters (else `RUST_LOG`; info by
//! default: what changed, and a summary every `daemon.log_summary_secs`;
//! `debug` adds a line per event), on stderr, in text or JSON. Colours
//! only on a terminal: a log file or the journal gets plain text.

use std::io::IsTerminal;

/// The filter: `DESKBRIDGE_LOG`, else `RUST_LOG`, else `info`.
fn filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("DESKBRIDGE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Whether a tool (`demo`, `bench`) was asked for a log: it keeps its
/// output clean otherwise.
pub fn asked_for() -> bool {
    std::env::var_os("DESKBRIDGE_LOG").is_some() || std::env::var_os("RUST_LOG").is_some()
}

pub fn init_logging(json: bool) {
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}
