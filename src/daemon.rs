//! Wiring: open the store, start one relay per destination, serve the
//! webhooks and the admin API, stop everything on one shutdown signal.

use crate::api::{self, HookState};
use crate::blob::BlobStore;
use crate::bus::amqp::Broker;
use crate::bus::notify::Notifier;
use crate::config::{BusKind, Config};
use crate::connector::registry::Registry;
use crate::connector::source::Output;
use crate::ingest::Ingest;
use crate::ops::Ops;
use crate::relay::{Dispatcher, Source, StatusBoard};
use crate::retry::RetryPolicy;
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A connector that cannot be built from its configuration.
    #[error(transparent)]
    Build(#[from] crate::connector::error::BuildError),
    /// A broker that cannot be set up from `[bus]`.
    #[error(transparent)]
    Bus(#[from] crate::config::bus_error::BusSetupError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("file store: {0}")]
    Blob(#[from] crate::blob::BlobError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    /// Another deskbridge holds this one's queues at the broker.
    #[error("refused by the broker: {0}")]
    Refused(crate::bus::amqp::AmqpError),
}

/// How long a start waits for the broker to say whether the queues are
/// this deskbridge's, before pollers and listeners take work (a broker
/// that is away does not hold the start: it answers when it is back).
const CLAIM_WAIT: Duration = Duration::from_secs(15);

/// A running daemon: its bound addresses and a way to stop it.
pub struct Running {
    pub hooks_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub ops: Ops,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    broker: Option<Broker>,
    /// Why the daemon can keep no promise any more (the store cannot
    /// write, a relay stopped on a store error): `main` exits with 3.
    fatal: watch::Receiver<Option<String>>,
}

/// Records the first fatal reason; later ones add nothing.
fn set_fatal(tx: &watch::Sender<Option<String>>, why: String) {
    tx.send_if_modified(|v| {
        if v.is_some() {
            return false;
        }
        *v = Some(why);
        true
    });
}

/// The parts that exist with or without the daemon running.
pub fn open(
    config: Arc<Config>,
    queues: Notifier,
    board: Option<StatusBoard>,
) -> Result<Ops, DaemonError> {
    let dir = &config.daemon.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| DaemonError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let store = Store::open_with_cache(dir, config.daemon.store_cache_mib.saturating_mul(1 << 20))?;
    let blobs = BlobStore::open(dir.join("files"), config.daemon.max_file_bytes)?;
    let ingest = Ingest::new(config.clone(), store.clone(), blobs, queues.clone());
    Ok(Ops {
        config,
        store,
        ingest,
        queues,
        board,
        broker: None,
        mailboxes: None,
        pollers: None,
    })
}

pub async fn start(config: Config, retry: RetryPolicy) -> Result<Running, DaemonError> {
    let config = Arc::new(config);
    let registry = Registry::build(&config)?;
    let sinks = registry.sinks.clone();
    let queues = Notifier::default();
    let board = StatusBoard::default();
    let mut ops = open(config.clone(), queues.clone(), Some(board.clone()))?;
    let blobs = BlobStore::open(
        config.daemon.data_dir.join("files"),
        config.daemon.max_file_bytes,
    )?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (fatal_tx, fatal) = watch::channel::<Option<String>>(None);
    let fatal_tx = Arc::new(fatal_tx);
    let mut tasks = JoinSet::new();

    let broker = match config.bus.kind {
        BusKind::Embedded => None,
        BusKind::Amqp => Some(Broker::new(&config.bus)?),
    };
    ops.broker = broker.as_ref().map(|b| b.board.clone());
    let (dead_tx, dead_rx) = tokio::sync::mpsc::unbounded_channel();
    let dests = config.receivers();
    let sink_names: Vec<String> = sinks.keys().cloned().collect();
    if let Some(b) = &broker {
        // Before any connection is made: one that is up before it is
        // expected would read as down for good.
        b.expect(
            std::iter::once("publisher".to_string())
                .chain(sink_names.iter().map(|d| format!("consumer {d}"))),
        );
        b.will_claim(sink_names.iter().cloned());
    }
    for (dest, sink) in sinks {
        let notices = queues.register(&dest);
        let concurrency = config
            .endpoints
            .get(&dest)
            .map(|e| e.concurrency)
            .unwrap_or(1);
        let d = Dispatcher {
            dest: dest.clone(),
            sink,
            store: ops.store.clone(),
            blobs: blobs.clone(),
            concurrency,
            retry,
            board: board.clone(),
            source: if broker.is_some() {
                Source::Broker
            } else {
                Source::Embedded
            },
            on_dead: broker.as_ref().map(|_| dead_tx.clone()),
            grace: crate::shutdown::STOP_GRACE,
            window: config.daemon.queue_window.max(1),
            // A quarter of the prefetch per link: a few stuck links never
            // fill the window the healthy ones need.
            link_window: (usize::from(config.bus.prefetch) / 4).max(1),
            order_wait: Duration::from_secs(config.bus.order_wait_secs),
            onward: Some(ops.ingest.clone()),
        };
        let rx = shutdown_rx.clone();
        let name = dest.clone();
        let fatal_tx = fatal_tx.clone();
        tasks.spawn(async move {
            if let Err(e) = d.run(notices, rx).await {
                // The store failed under us: nothing more can be promised.
                set_fatal(&fatal_tx, format!("the relay for {name} stopped: {e}"));
            }
        });
        if let Some(b) = &broker {
            let tx = queues.sender(&dest).expect("registered above");
            tasks.spawn(
                b.clone()
                    .run_consumer(dest.clone(), tx, shutdown_rx.clone()),
            );
        }
    }
    // A second deskbridge on this bus prefix (a copied config) stops here,
    // before it polls, listens or publishes anything.
    if let Some(b) = &broker {
        if let Ok(Err(why)) = tokio::time::timeout(CLAIM_WAIT, b.claimed()).await {
            return Err(DaemonError::Refused(why));
        }
    }
    // Each endpoint's readers (pollers, mailboxes) and hooks, feeding ingest.
    let sources = registry.sources(&Output {
        ingest: ops.ingest.clone(),
        store: ops.store.clone(),
        blobs: blobs.clone(),
    });
    ops.pollers = Some(sources.pollers.clone());
    ops.mailboxes = Some(sources.mailboxes.clone());
    for reader in sources.readers {
        tasks.spawn(reader.run(shutdown_rx.clone()));
    }
    // What the relays and readers did, every few minutes, at info; each
    // event's own lines are at debug.
    tasks.spawn(crate::log_summary::run(
        ops.clone(),
        Duration::from_secs(config.daemon.log_summary_secs),
        shutdown_rx.clone(),
    ));
    if let Some(b) = &broker {
        tasks.spawn(b.clone().run_publisher(
            ops.store.clone(),
            queues.clone(),
            dests,
            dead_rx,
            shutdown_rx.clone(),
        ));
    }

    let bind = |addr: String| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| DaemonError::Listen { addr, source })
    };
    let hooks_listener = bind(config.daemon.listen.clone()).await?;
    let admin_listener = bind(config.daemon.admin_listen.clone()).await?;
    let hooks_addr = hooks_listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            addr: config.daemon.listen.clone(),
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            addr: config.daemon.admin_listen.clone(),
            source,
        })?;

    let hooks = api::hooks_router(HookState {
        endpoints: Arc::new(config.endpoints.keys().cloned().collect()),
        hooks: Arc::new(sources.hooks),
    });
    let admin = api::admin_router(ops.clone());
    let (mut hooks_limits, mut admin_limits) = config.daemon.listener.limits();
    (hooks_limits.max_connections, admin_limits.max_connections) =
        crate::listen::fit_file_limit(hooks_limits.max_connections, admin_limits.max_connections);
    for (name, listener, router, limits) in [
        ("partner", hooks_listener, hooks, hooks_limits),
        ("admin", admin_listener, admin, admin_limits),
    ] {
        tasks.spawn(crate::listen::serve(
            name,
            listener,
            router,
            limits,
            shutdown_rx.clone(),
        ));
    }

    // Records left for a later flush (`Store::flush_later`, `flushed`:
    // broker acknowledgements wait on it) reach the disk within a few
    // milliseconds even when no ingest flushes.
    let store = ops.store.clone();
    let rx = shutdown_rx.clone();
    tasks.spawn(async move { store.run_later_flushes(rx).await });

    // Dedupe keys older than any acceptable timestamp can go.
    let store = ops.store.clone();
    let mut rx = shutdown_rx.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = rx.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(600)) => {
                    let _ = store.prune_seen(chrono::Utc::now() - chrono::Duration::days(7));
                }
            }
        }
    });

    // Tests and scripts find the bound ports here (port 0 in the config).
    let state_file = config.daemon.data_dir.join("daemon.json");
    let info = serde_json::json!({
        "pid": std::process::id(),
        "listen": hooks_addr.to_string(),
        "admin_listen": admin_addr.to_string(),
    });
    std::fs::write(&state_file, info.to_string()).map_err(|source| DaemonError::Write {
        path: state_file.display().to_string(),
        source,
    })?;
    info!(%hooks_addr, %admin_addr, "deskbridge running");
    // `check` refuses these; a daemon started anyway says so.
    for p in crate::handover::never_firing(&crate::handover::report(&config)) {
        warn!("{p}");
    }
    // A store that cannot write keeps no promise: stop, so that the
    // supervisor starts deskbridge again (it waits until there is space,
    // say). Webhooks meanwhile get 503 or no answer, and are sent again.
    let mut broken = ops.store.broken();
    let store_fatal = fatal_tx.clone();
    tokio::spawn(async move {
        if let Ok(why) = broken.wait_for(Option::is_some).await {
            let why = format!(
                "the store cannot write: {}",
                why.as_deref().unwrap_or_default()
            );
            set_fatal(&store_fatal, why);
        }
    });

    // Said once at start, where whoever removed the endpoint looks first;
    // `deskbridge status` and /metrics go on saying it.
    let receives = |d: &str| config.can_receive(d);
    match ops.store.unconfigured(receives) {
        Ok(left) => {
            for (endpoint, (queued, parked)) in left {
                warn!(
                    %endpoint, queued, parked,
                    "messages wait for an endpoint that is no longer configured to receive (removed, or without its delivery settings): configure it again to deliver them, or give them up with `deskbridge discard --queued-for {endpoint}`"
                );
            }
        }
        Err(e) => warn!(error = %e, "could not list the queues of endpoints no longer configured"),
    }
    Ok(Running {
        hooks_addr,
        admin_addr,
        ops,
        shutdown,
        tasks,
        broker,
        fatal,
    })
}

impl Running {
    /// Fires when the daemon can keep no promise any more (the store
    /// cannot write): the reason. The caller stops the process with exit
    /// code 3, for its supervisor to start it again.
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.clone();
        let why = rx.wait_for(Option::is_some).await.map(|w| w.clone());
        match why {
            Ok(why) => why.unwrap_or_default(),
            // The daemon's tasks are gone: nothing fatal can come.
            Err(_) => std::future::pending().await,
        }
    }

    /// Fires when the broker refuses this deskbridge its queues after the
    /// start went on without it (the broker was away then): the reason,
    /// with what to change. Never with the embedded bus.
    pub async fn refused(&self) -> String {
        match &self.broker {
            Some(b) => b.refused().await,
            None => std::future::pending().await,
        }
    }

    /// Stops taking work, lets in-flight requests finish, flushes; says
    /// whether the last flush failed.
    pub async fn stop(mut self) -> Result<(), crate::store::StoreError> {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        let flushed = self.ops.store.flush().await;
        let _ = std::fs::remove_file(self.ops.config.daemon.data_dir.join("daemon.json"));
        flushed
    }
}
