//! The log's setup: `DESKBRIDGE_LOG` filters (info by default), on stderr,
//! in text or JSON.

pub fn init_logging(json: bool) {
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
