//! RabbitMQ transport (lapin). The sled outbox stays the first durable
//! home of every event; a publisher drains it to the broker with publisher
//! confirms, and one consumer per destination feeds that destination's
//! dispatcher with manual acknowledgements.
//!
//! Topology (all names start with `bus.prefix`, default `deskbridge`):
//! - exchange `{p}.events` (direct, durable): routing key = destination;
//! - queue `{p}.{dest}` per destination: quorum (replicated, durable,
//!   FIFO, built for data safety; ordering per link needs FIFO), with
//!   dead-lettering to `{p}.dead`;
//! - exchange `{p}.dead` (direct, durable) and queue `{p}.{dest}.dead`:
//!   a copy of every dead letter, with the reason in headers, for the
//!   broker's own tools. `deskbridge dead` reads deskbridge's store.

use crate::config::BusConfig;
use crate::retry::{Retry, RetryPolicy};
use crate::store::{DeadLetter, Envelope, QueueKey, Store};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::bus::ack::{Ack, Settle};
use crate::bus::notify::{Notice, Notifier};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a settled delivery may wait behind an older unsettled one
/// before it is acknowledged on its own.
const ACK_LINGER: Duration = Duration::from_millis(10);
/// A broker frame not written by then means the connection is gone.
const ACK_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a consumer reads its queue's depth for the status.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// Which acknowledgements to send. Deliveries settle in any order, and a
/// `multiple` ack covers every unacknowledged tag up to its own, so one
/// frame (and one broker operation) can cover a run only where no older
/// delivery is still unsettled.
#[derive(Default)]
struct AckRuns {
    open: BTreeSet<u64>,
    done: BTreeSet<u64>,
}

impl AckRuns {
    fn delivered(&mut self, tag: u64) {
        self.open.insert(tag);
    }

    fn settled(&mut self, tag: u64) {
        if self.open.remove(&tag) {
            self.done.insert(tag);
        }
    }

    /// Rejected (already sent): no ack may name or cover it, and it no
    /// longer holds back the run behind it.
    fn rejected(&mut self, tag: u64) {
        self.open.remove(&tag);
    }

    /// The acks to send now, as (tag, multiple): the settled run below the
    /// oldest open delivery as one; with `all`, the settled ones behind it
    /// too, one by one, so that a delivery stuck on a slow link does not
    /// hold the others' prefetch slots.
    fn take(&mut self, all: bool) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        let end = match self.open.first() {
            Some(&oldest) => self.done.range(..oldest).next_back().copied(),
            None => self.done.last().copied(),
        };
        if let Some(end) = end {
            let later = self.done.split_off(&(end + 1));
            let run = std::mem::replace(&mut self.done, later);
            out.push((end, run.len() > 1));
        }
        if all {
            out.extend(
                std::mem::take(&mut self.done)
                    .into_iter()
                    .map(|t| (t, false)),
            );
        }
        out
    }

    fn waiting(&self) -> usize {
        self.done.len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("broker: {0}")]
    Broker(String),
    #[error("broker returned a message as unroutable: is queue {0} missing?")]
    Unroutable(String),
    /// Another connection holds a destination's lock.
    #[error("{0}")]
    Taken(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<lapin::Error> for AmqpError {
    fn from(e: lapin::Error) -> Self {
        // lapin's errors name hosts and protocol states, never the password.
        AmqpError::Broker(e.to_string())
    }
}

/// Whether deskbridge is connected, for logs and `deskbridge status`.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct BrokerStatus {
    /// Every connection deskbridge needs (the publisher, one consumer per
    /// destination) is up.
    pub connected: bool,
    /// The connections that are not up.
    #[serde(default)]
    pub down: std::collections::BTreeSet<String>,
    /// Why not, while it waits.
    pub waiting: Option<String>,
    pub waiting_since: Option<DateTime<Utc>>,
    /// Messages taken off the outbox after the broker confirmed them.
    pub published: u64,
    /// Messages ready in each destination's queue at the broker (not yet
    /// handed to deskbridge), as last read by its consumer (every few
    /// seconds while connected; absent while it is not).
    #[serde(default)]
    pub ready: std::collections::BTreeMap<String, u32>,
}

pub type BrokerBoard = Arc<Mutex<BrokerStatus>>;

/// `[bus] ca_file` and `client_certificate`, for amqps:// (no Debug: it
/// holds the certificate's password).
#[derive(Clone, Default)]
struct Tls {
    cert_chain: Option<String>,
    identity: Option<(Vec<u8>, String)>,
}

impl Tls {
    fn config(&self) -> lapin::tcp::OwnedTLSConfig {
        lapin::tcp::OwnedTLSConfig {
            identity: self
                .identity
                .as_ref()
                .map(|(der, password)| lapin::tcp::OwnedIdentity {
                    der: der.clone(),
                    password: password.clone(),
                }),
            cert_chain: self.cert_chain.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Broker {
    url: String,
    tls: Tls,
    pub topology: Topology,
    pub board: BrokerBoard,
    pub prefetch: u16,
    pub window: usize,
    claims: Arc<watch::Sender<Claims>>,
}

/// Which destination queues this deskbridge holds. Each consumer holds its
/// queue's lock (`Topology::lock`, an exclusive queue: the broker lets one
/// connection have it, and drops it with that connection), so that two
/// deskbridges with one `bus.prefix` (a copied config) never share a queue:
/// each would get messages for links that only the other's store knows.
#[derive(Clone, Debug, Default)]
struct Claims {
    /// Destinations whose lock our consumer holds now: the publisher sends
    /// only to these (a queue another deskbridge holds would take ours to
    /// its relay).
    held: BTreeSet<String>,
    /// Destinations not yet claimed once since start. While any is, a
    /// refused lock means another deskbridge was there first: this one
    /// must stop. Later, it is our own old connection that the broker has
    /// not yet found dead (or another deskbridge that came in between):
    /// the consumer waits and tries again.
    unclaimed: BTreeSet<String>,
    /// Why this deskbridge may not use the queues (refused at start).
    refused: Option<String>,
    /// A connection failed before every destination was claimed: the
    /// start does not wait for the broker (see `Broker::claimed`).
    trouble: bool,
    /// When a lock was first refused at start: it is tried again for
    /// `START_RETRY` before this deskbridge gives up (the broker may not
    /// yet have closed the connection of this deskbridge's own previous
    /// run, killed a moment ago).
    first_refused: Option<tokio::time::Instant>,
}

/// See `Claims::first_refused`.
const START_RETRY: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct Topology {
    pub prefix: String,
}

impl Topology {
    pub fn exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub fn queue(&self, dest: &str) -> String {
        format!("{}.{dest}", self.prefix)
    }
    pub fn dead_queue(&self, dest: &str) -> String {
        format!("{}.{dest}.dead", self.prefix)
    }
    /// The exclusive queue that the deskbridge consuming `dest` holds
    /// (see `Claims`); never carries messages.
    pub fn lock(&self, dest: &str) -> String {
        format!("{}.{dest}.lock", self.prefix)
    }

    /// Declares everything; safe to repeat. A queue that exists with other
    /// arguments is a clear error, not a silent mismatch.
    pub async fn declare(&self, ch: &Channel, dests: &[String]) -> Result<(), AmqpError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for ex in [self.exchange(), self.dead_exchange()] {
            ch.exchange_declare(&ex, ExchangeKind::Direct, durable, FieldTable::default())
                .await?;
        }
        let qopts = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for dest in dests {
            let mut args = FieldTable::default();
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
            // One consumer at a time, and a new one only once the old one's
            // unacknowledged messages are back in the queue: otherwise a
            // consumer that reconnects (or a restarted deskbridge, or any
            // consumer after a broker restart) gets the ready messages
            // before the ones its predecessor held, and a link's later
            // events overtake its earlier ones.
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(self.dead_exchange().into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(dest.as_str().into()),
            );
            let q = self.queue(dest);
            ch.queue_declare(&q, qopts, args).await.map_err(|e| {
                AmqpError::Broker(format!(
                    "cannot declare queue {q} ({e}); if it exists with other arguments, delete it or change bus.prefix"
                ))
            })?;
            ch.queue_bind(
                &q,
                &self.exchange(),
                dest,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
            let mut dargs = FieldTable::default();
            dargs.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
            let dq = self.dead_queue(dest);
            ch.queue_declare(&dq, qopts, dargs).await?;
            ch.queue_bind(
                &dq,
                &self.dead_exchange(),
                dest,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }
}

fn props(key: &QueueKey) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"))
        .with_message_id(ShortString::from(key.id()))
}

impl Broker {
    pub fn new(cfg: &BusConfig) -> Result<Broker, String> {
        let url = cfg
            .url
            .as_ref()
            .ok_or("bus.url: missing")?
            .resolve()
            .map_err(|e| format!("bus.url: {e}"))?;
        let cert_chain = match &cfg.ca_file {
            Some(f) => {
                Some(crate::config::read_ca_file(f).map_err(|e| format!("bus.ca_file: {e}"))?)
            }
            None => None,
        };
        let identity = match &cfg.client_certificate {
            Some(c) => Some(
                c.load()
                    .map_err(|e| format!("bus.client_certificate: {e}"))?,
            ),
            None => None,
        };
        Ok(Broker {
            url,
            tls: Tls {
                cert_chain,
                identity,
            },
            topology: Topology {
                prefix: cfg.prefix.clone(),
            },
            // Not connected until a connection is made: a broker that
            // accepts the TCP connection and does not answer must not read
            // as connected in `deskbridge status`.
            board: Arc::new(Mutex::new(BrokerStatus {
                waiting: Some("connecting".into()),
                waiting_since: Some(Utc::now()),
                ..BrokerStatus::default()
            })),
            prefetch: cfg.prefetch,
            window: cfg.publish_window,
            claims: Arc::new(watch::channel(Claims::default()).0),
        })
    }

    /// The destinations whose queues this deskbridge's consumers will
    /// claim: until each has been claimed once, the daemon is starting.
    pub fn will_claim(&self, dests: impl IntoIterator<Item = String>) {
        self.claims.send_modify(|c| c.unclaimed.extend(dests));
    }

    /// Waits until every destination's queue has been claimed once (Ok),
    /// a claim was refused (the reason, with what to change), or a
    /// connection failed first (Ok: the broker is away, and the claims are
    /// made, or refused, when it is back; see `refused`).
    pub async fn claimed(&self) -> Result<(), String> {
        let mut rx = self.claims.subscribe();
        let refused = rx
            .wait_for(|c| c.unclaimed.is_empty() || c.refused.is_some() || c.trouble)
            .await
            .map(|c| c.refused.clone())
            .map_err(|_| "the broker's tasks ended".to_string())?;
        match refused {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Fires when a claim was refused before every destination was claimed
    /// once: another deskbridge uses this prefix's queues, and this one
    /// must stop. Never otherwise.
    pub async fn refused(&self) -> String {
        let mut rx = self.claims.subscribe();
        let refused = rx
            .wait_for(|c| c.refused.is_some())
            .await
            .map(|c| c.refused.clone().unwrap_or_default());
        match refused {
            Ok(why) => why,
            Err(_) => std::future::pending().await,
        }
    }

    /// Takes `dest`'s lock on this connection, or says who has it.
    async fn claim(&self, ch: &Channel, dest: &str) -> Result<(), AmqpError> {
        let lock = self.topology.lock(dest);
        let opts = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        match ch.queue_declare(&lock, opts, FieldTable::default()).await {
            Ok(_) => {
                self.claims.send_modify(|c| {
                    c.held.insert(dest.to_string());
                    c.unclaimed.remove(dest);
                });
                Ok(())
            }
            Err(e) if is_locked(&e) => {
                let queue = self.topology.queue(dest);
                let starting = self.claims.borrow().unclaimed.contains(dest);
                let mut give_up = false;
                if starting {
                    self.claims.send_modify(|c| {
                        let now = tokio::time::Instant::now();
                        give_up = now - *c.first_refused.get_or_insert(now) >= START_RETRY;
                    });
                }
                let why = if starting {
                    format!(
                        "another deskbridge consumes queue {queue} at this broker (it holds {lock}): two deskbridges must not share a queue, as each would get events for links that only the other knows. \
                         Give this one its own bus.prefix (a copied config keeps the other's), or stop the other. \
                         If this is the same deskbridge restarted after its machine or network failed, the broker drops the old connection within a minute or two (heartbeat timeout): start it again then"
                    )
                } else {
                    format!(
                        "queue {queue} is held by another connection (its lock {lock}): this deskbridge's own earlier one, until the broker finds it dead (heartbeat timeout), or another deskbridge with the same bus.prefix; trying again"
                    )
                };
                if give_up {
                    self.claims.send_modify(|c| c.refused = Some(why.clone()));
                }
                Err(AmqpError::Taken(why))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Our consumer's session on `dest` ended: its lock went with it.
    fn unclaim(&self, dest: &str) {
        self.claims.send_modify(|c| {
            c.held.remove(dest);
        });
    }

    fn set(&self, f: impl FnOnce(&mut BrokerStatus)) {
        f(&mut self.board.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Names the connections to come, so that none reads as connected
    /// before all are.
    pub fn expect(&self, roles: impl IntoIterator<Item = String>) {
        self.set(|s| s.down.extend(roles));
    }

    fn up(&self, who: &str) {
        self.set(|s| {
            s.down.remove(who);
            if s.down.is_empty() {
                if s.waiting.is_some() {
                    info!("connected to the broker");
                }
                s.connected = true;
                s.waiting = None;
                s.waiting_since = None;
            }
        });
    }

    fn down(&self, who: &str, why: String) {
        self.set(|s| {
            s.down.insert(who.to_string());
            s.connected = false;
            s.waiting_since.get_or_insert_with(Utc::now);
            s.waiting = Some(format!("{who}: {why}"));
        });
    }

    /// One connection attempt; the error says what to do where it can.
    pub async fn connect_once(&self, who: &str) -> Result<Connection, String> {
        let props = on_tokio().with_connection_name(format!("deskbridge {who}").into());
        // A broker that accepts the socket and never answers must not
        // hold us forever.
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect_with_config(&self.url, props, self.tls.config()),
        )
        .await;
        match attempt {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => {
                let msg = e.to_string();
                Err(match tls_hint(&msg) {
                    Some(hint) => format!("{msg} ({hint})"),
                    None => msg,
                })
            }
            Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
        }
    }

    /// The broker's address as an operator may see it: no password.
    pub fn address(&self) -> String {
        match self.url.parse::<lapin::uri::AMQPUri>() {
            Ok(u) => format!(
                "{}://{}@{}:{}/{}",
                match u.scheme {
                    lapin::uri::AMQPScheme::AMQPS => "amqps",
                    lapin::uri::AMQPScheme::AMQP => "amqp",
                },
                if u.query.auth_mechanism == Some(lapin::auth::SASLMechanism::External) {
                    "(client certificate)"
                } else {
                    &u.authority.userinfo.username
                },
                u.authority.host,
                u.authority.port,
                // Never a password that leaked into the path (the config
                // check refuses such URLs; this is the second line).
                if u.vhost.contains('@') {
                    "…".to_string()
                } else {
                    u.vhost.replace('/', "%2f")
                }
            ),
            Err(_) => "(an unreadable URL)".into(),
        }
    }

    /// Connects, retrying with backoff for as long as it takes; the daemon
    /// never exits because the broker went away. `None` on shutdown.
    pub async fn connect(
        &self,
        who: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Connection> {
        let mut retry = Retry::new(SESSION_RETRY);
        let mut hinted = None;
        let mut said = crate::retry::Said::default();
        loop {
            let attempt = tokio::select! {
                r = self.connect_once(who) => r,
                _ = shutdown.changed() => return None,
            };
            match attempt {
                Ok(c) => {
                    self.up(who);
                    return Some(c);
                }
                Err(msg) => {
                    // The start does not wait for a broker that is away.
                    self.claims.send_if_modified(|c| {
                        let news = !c.trouble && !c.unclaimed.is_empty();
                        c.trouble |= news;
                        news
                    });
                    let (news, attempts) = said.failed(&msg);
                    if news {
                        warn!(who, error = %msg, attempts, "waiting for the broker");
                    } else {
                        debug!(who, error = %msg, attempts, "waiting for the broker");
                    }
                    self.down(who, keep_hint(msg, &mut hinted));
                    tokio::select! {
                        _ = tokio::time::sleep(retry.next_delay(None)) => {}
                        _ = shutdown.changed() => return None,
                    }
                }
            }
        }
    }

    fn lost(&self, who: &str, e: &AmqpError) {
        warn!(who, error = %e, "broker connection lost; reconnecting");
        self.down(who, e.to_string());
    }

    /// Drains the outbox to the broker: persistent messages, confirms
    /// pipelined `window` at a time, each message off the outbox only after
    /// its confirm. Dead letters are copied to the dead-letter queue.
    pub async fn run_publisher(
        self,
        store: Store,
        queues: Notifier,
        dests: Vec<String>,
        mut dead: mpsc::UnboundedReceiver<(QueueKey, DeadLetter)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut sessions = Sessions::new();
        loop {
            let Some(conn) = self.connect("publisher", &mut shutdown).await else {
                return;
            };
            sessions.start();
            match self
                .publish_on(&conn, &store, &queues, &dests, &mut dead, &mut shutdown)
                .await
            {
                Ok(()) => {
                    let _ = conn.close(200, "shutting down").await;
                    return;
                }
                Err(e) => {
                    self.lost("publisher", &e);
                    // A channel error leaves the connection open: close it.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        conn.close(200, "reconnecting"),
                    )
                    .await;
                    if !sessions.pause(&mut shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    async fn publish_on(
        &self,
        conn: &Connection,
        store: &Store,
        queues: &Notifier,
        dests: &[String],
        dead: &mut mpsc::UnboundedReceiver<(QueueKey, DeadLetter)>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), AmqpError> {
        let ch = conn.create_channel().await?;
        let result = self
            .publish_with(&ch, store, queues, dests, dead, shutdown)
            .await;
        if result.is_ok() {
            close_quietly(&ch).await;
        }
        result
    }

    async fn publish_with(
        &self,
        ch: &Channel,
        store: &Store,
        queues: &Notifier,
        dests: &[String],
        dead: &mut mpsc::UnboundedReceiver<(QueueKey, DeadLetter)>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), AmqpError> {
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        self.topology.declare(ch, dests).await?;
        let exchange = self.topology.exchange();
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        // Destinations whose queue refuses publishes, each with its own
        // pause: one full queue must not hold up the others.
        let mut refusing: HashMap<String, Refusing> = HashMap::new();
        let mut claims = self.claims.subscribe();
        loop {
            // Only to queues our consumers hold: another deskbridge's
            // relay cannot deliver ours. The rest wait in the outbox.
            let held = claims.borrow_and_update().held.clone();
            // Copies for the broker's dead-letter queues go even while the
            // outbox never empties.
            while let Ok((key, dl)) = dead.try_recv() {
                self.copy_dead(ch, &key, &dl).await?;
            }
            let now = tokio::time::Instant::now();
            let mut batch = Vec::new();
            for dest in dests {
                if !held.contains(dest) || refusing.get(dest).is_some_and(|r| r.until > now) {
                    continue;
                }
                let some = store.outbox_batch(dest, self.window)?;
                // Its refused messages left the outbox another way.
                if some.is_empty() && refusing.remove(dest).is_some() {
                    self.refusal_changed(&refusing);
                }
                batch.extend(some);
            }
            if batch.is_empty() {
                let next_try = refusing.values().map(|r| r.until).min();
                tokio::select! {
                    _ = shutdown.changed() => return Ok(()),
                    _ = queues.announced() => {}
                    _ = claims.changed() => {}
                    Some((key, dl)) = dead.recv() => self.copy_dead(ch, &key, &dl).await?,
                    _ = lingered(next_try) => {}
                    // A notice may be missed between the scan and the wait.
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
            let publishes = batch
                .iter()
                .map(|(key, payload)| {
                    Box::pin(ch.basic_publish(&exchange, &key.dest, mandatory, payload, props(key)))
                })
                .collect::<Vec<_>>();
            // A publish queues its frames (and takes its confirm number) on
            // its first poll, then waits for the write: awaited together,
            // first polled in order, a batch goes out in outbox order in a
            // few writes, where awaiting each in turn cost a wake of lapin's
            // I/O thread per message.
            let confirms = futures::future::try_join_all(publishes).await?;
            // Every confirm is awaited: lapin keeps one dropped unresolved
            // for the channel's life.
            let mut done = Vec::with_capacity(batch.len());
            let mut unroutable = None;
            let mut nacked = BTreeSet::new();
            for ((key, _), confirm) in batch.iter().zip(confirms) {
                match confirm.await? {
                    Confirmation::Ack(None) | Confirmation::NotRequested => done.push(key.clone()),
                    Confirmation::Ack(Some(_)) => unroutable = Some(key.dest.clone()),
                    // It goes again; a later one of its link that the
                    // broker took waits for it at the relay (`after`).
                    Confirmation::Nack(_) => {
                        nacked.insert(key.dest.clone());
                    }
                }
            }
            store.published(&done)?;
            self.set(|s| s.published += done.len() as u64);
            if let Some(dest) = unroutable {
                return Err(AmqpError::Unroutable(self.topology.queue(&dest)));
            }
            let published: BTreeSet<&String> = batch.iter().map(|(k, _)| &k.dest).collect();
            let mut changed = false;
            for dest in published {
                if nacked.contains(dest) {
                    let r = refusing.entry(dest.clone()).or_insert_with(|| {
                        changed = true;
                        warn!(queue = %self.topology.queue(dest), "the broker refuses publishes (nack); they stay in the outbox");
                        Refusing {
                            retry: Retry::new(SESSION_RETRY),
                            until: now,
                        }
                    });
                    r.until = tokio::time::Instant::now() + r.retry.next_delay(None);
                } else if refusing.remove(dest).is_some() {
                    info!(queue = %self.topology.queue(dest), "the broker takes publishes again");
                    changed = true;
                }
            }
            if changed {
                self.refusal_changed(&refusing);
            }
        }
    }

    /// The publisher's part of the status while queues refuse publishes.
    fn refusal_changed(&self, refusing: &HashMap<String, Refusing>) {
        if refusing.is_empty() {
            self.up("publisher");
            return;
        }
        let queues: BTreeSet<String> = refusing.keys().map(|d| self.topology.queue(d)).collect();
        self.down(
            "publisher",
            format!(
                "the broker refuses publishes to queue {} (nack): full (a max-length policy with overflow reject-publish) or without a quorum? They stay in the outbox and are tried again",
                queues.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
    }

    async fn copy_dead(
        &self,
        ch: &Channel,
        key: &QueueKey,
        dl: &DeadLetter,
    ) -> Result<(), AmqpError> {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-deskbridge-error".into(),
            AMQPValue::LongString(LongString::from(dl.error.as_str())),
        );
        headers.insert(
            "x-deskbridge-attempts".into(),
            AMQPValue::LongUInt(dl.attempts),
        );
        let body = serde_json::to_vec(&dl.envelope).unwrap_or_default();
        // Best effort: the store holds the dead letter that counts.
        let _ = ch
            .basic_publish(
                &self.topology.dead_exchange(),
                &key.dest,
                BasicPublishOptions::default(),
                &body,
                props(key).with_headers(headers),
            )
            .await?
            .await?;
        Ok(())
    }

    /// Consumes one destination's queue and hands each delivery, with its
    /// acknowledgement, to the destination's dispatcher.
    pub async fn run_consumer(
        self,
        dest: String,
        notices: mpsc::UnboundedSender<Notice>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let who = format!("consumer {dest}");
        let mut sessions = Sessions::new();
        loop {
            let Some(conn) = self.connect(&who, &mut shutdown).await else {
                return;
            };
            sessions.start();
            let result = self.consume_on(&conn, &dest, &notices, &mut shutdown).await;
            self.unclaim(&dest);
            self.set(|s| {
                s.ready.remove(&dest);
            });
            // Whatever was delivered and not acknowledged comes again.
            let _ = notices.send(Notice::Reset);
            match result {
                Ok(()) => {
                    let _ = conn.close(200, "shutting down").await;
                    return;
                }
                Err(e) => {
                    self.lost(&who, &e);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        conn.close(200, "reconnecting"),
                    )
                    .await;
                    if !sessions.pause(&mut shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Reads the destination queue's depth now and then for the status: a
    /// partner that is down shows as messages piling up at the broker,
    /// not as an empty queue. A passive declare: changes nothing.
    async fn watch_depth(self, ch: Channel, dest: String, notices: mpsc::UnboundedSender<Notice>) {
        let queue = self.topology.queue(&dest);
        loop {
            match tokio::time::timeout(ACK_SEND_TIMEOUT, read_queue(&ch, &queue)).await {
                Ok(Ok(q)) => {
                    self.set(|s| {
                        s.ready.insert(dest.clone(), q.message_count());
                    });
                    // The dispatcher's cue that a message it waits for is
                    // not in the queue either.
                    let _ = notices.send(Notice::Depth(q.message_count()));
                }
                // Unknown until the consumer's next connection reads again.
                _ => {
                    self.set(|s| {
                        s.ready.remove(&dest);
                    });
                    return;
                }
            }
            tokio::time::sleep(DEPTH_EVERY).await;
        }
    }

    async fn consume_on(
        &self,
        conn: &Connection,
        dest: &str,
        notices: &mpsc::UnboundedSender<Notice>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), AmqpError> {
        let ch = conn.create_channel().await?;
        let depth_ch = conn.create_channel().await?;
        let result = self
            .consume_with(&ch, &depth_ch, dest, notices, shutdown)
            .await;
        if result.is_ok() {
            close_quietly(&depth_ch).await;
            close_quietly(&ch).await;
        }
        result
    }

    async fn consume_with(
        &self,
        ch: &Channel,
        depth_ch: &Channel,
        dest: &str,
        notices: &mpsc::UnboundedSender<Notice>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), AmqpError> {
        self.topology.declare(ch, &[dest.to_string()]).await?;
        self.claim(ch, dest).await?;
        // Nothing is taken off any queue until every one is this
        // deskbridge's (at start), or it stops, refused.
        let mut claims = self.claims.subscribe();
        let go = tokio::select! {
            c = claims.wait_for(|c| c.unclaimed.is_empty() || c.refused.is_some()) => {
                c.is_ok_and(|c| c.refused.is_none())
            }
            _ = shutdown.changed() => false,
        };
        if !go {
            return Ok(());
        }
        ch.basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let mut consumer = ch
            .basic_consume(
                &self.topology.queue(dest),
                &format!("deskbridge-{dest}"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        // Its own channel: a failed read closes it, not the consumer's.
        // It ends only when a read fails, and then so does this consumer
        // (it reconnects): the dispatcher waits for readings to give up on
        // a missing message, and the status shows them.
        let mut depth = AbortOnDrop(tokio::spawn(self.clone().watch_depth(
            depth_ch.clone(),
            dest.to_string(),
            notices.clone(),
        )));
        let (settle, mut settled) = mpsc::unbounded_channel::<Settle>();
        let mut acks = AckSender::new(ch);
        loop {
            let next = tokio::select! {
                _ = shutdown.changed() => break,
                Some(t) = settled.recv() => {
                    acks.settled(t, &mut settled).await?;
                    continue;
                }
                _ = lingered(acks.linger) => {
                    acks.send(true);
                    continue;
                }
                Some(r) = acks.sending.next(), if !acks.sending.is_empty() => {
                    r?;
                    continue;
                }
                _ = &mut depth.0 => {
                    return Err(AmqpError::Broker(format!(
                        "cannot read the depth of queue {}",
                        self.topology.queue(dest)
                    )));
                }
                n = consumer.next() => n,
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(AmqpError::Broker("consumer cancelled by the broker".into())),
            };
            let tag = delivery.delivery_tag;
            let key = delivery
                .properties
                .message_id()
                .as_ref()
                .and_then(|id| QueueKey::parse_id(id.as_str()));
            let env: Option<Envelope> = serde_json::from_slice(&delivery.data).ok();
            match (key, env) {
                (Some(key), Some(env)) if key.dest == dest => {
                    acks.runs.delivered(tag);
                    let ack = Ack::new(tag, settle.clone());
                    if notices
                        .send(Notice::Delivered(key, Box::new(env), ack))
                        .is_err()
                    {
                        break;
                    }
                }
                _ => {
                    // Not ours (another tool published here): keep it for a
                    // person, on the dead-letter queue. Awaited here, so it
                    // is settled before any later multiple ack; bounded, as
                    // lapin may never answer once its connection is gone.
                    warn!(dest, "unreadable message moved to the dead-letter queue");
                    reject(ch, tag).await?;
                }
            }
        }
        // Stopping. No cancel: a cancelled consumer keeps its unacknowledged
        // messages while single-active-consumer already hands the queue to
        // the next one, whose later events would overtake them. The
        // dispatcher finishes what it has within its grace and drops the
        // rest, which closes `settled`; closing the connection returns
        // whatever is left to the queue, in order.
        drop(settle);
        let deadline =
            tokio::time::Instant::now() + crate::shutdown::STOP_GRACE + Duration::from_secs(5);
        loop {
            tokio::select! {
                t = settled.recv() => match t {
                    Some(t) => {
                        if acks.settled(t, &mut settled).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => break,
                },
                _ = lingered(acks.linger) => acks.send(true),
                Some(r) = acks.sending.next(), if !acks.sending.is_empty() => {
                    if r.is_err() {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        acks.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while acks.sending.next().await.is_some() {}
        })
        .await;
        Ok(())
    }
}

/// A destination whose queue refuses publishes: when to try it again.
struct Refusing {
    retry: Retry,
    until: tokio::time::Instant,
}

/// Pauses between connection attempts, between broker sessions that end
/// in an error, and between publishes the broker refuses.
const SESSION_RETRY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(200),
    max_interval: Duration::from_secs(10),
};

/// Backoff between sessions that fail: one that fails at once again and
/// again (a queue declared elsewhere with other arguments, say) must not
/// become a tight reconnect loop; after one that ran a while, the next
/// starts quickly.
struct Sessions {
    retry: Retry,
    started: tokio::time::Instant,
}

impl Sessions {
    fn new() -> Sessions {
        Sessions {
            retry: Retry::new(SESSION_RETRY),
            started: tokio::time::Instant::now(),
        }
    }

    fn start(&mut self) {
        self.started = tokio::time::Instant::now();
    }

    /// False when the daemon stops meanwhile.
    async fn pause(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        if self.started.elapsed() > Duration::from_secs(30) {
            self.retry = Retry::new(SESSION_RETRY);
        }
        tokio::select! {
            _ = tokio::time::sleep(self.retry.next_delay(None)) => true,
            _ = shutdown.changed() => false,
        }
    }
}

/// Stops a helper task with the scope that started it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type AckSend = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), AmqpError>> + Send>>;

/// Sends a consumer's acknowledgements as `AckRuns` decides: the run below
/// the oldest open delivery at once, the rest after `ACK_LINGER`.
struct AckSender {
    ch: Channel,
    runs: AckRuns,
    /// When the settled deliveries behind an open one go out anyway.
    linger: Option<tokio::time::Instant>,
    /// Not awaited inline: lapin resolves an ack once written.
    sending: futures::stream::FuturesUnordered<AckSend>,
}

impl AckSender {
    fn new(ch: &Channel) -> AckSender {
        AckSender {
            ch: ch.clone(),
            runs: AckRuns::default(),
            linger: None,
            sending: Default::default(),
        }
    }

    /// Takes `first` and whatever else has settled meanwhile, and sends
    /// the run that can go now. A reject is sent (and awaited) before any
    /// later ack is made: a multiple ack must not cover it, or the message
    /// is gone instead of dead-lettered.
    async fn settled(
        &mut self,
        first: Settle,
        more: &mut mpsc::UnboundedReceiver<Settle>,
    ) -> Result<(), AmqpError> {
        let mut next = Some(first);
        while let Some(s) = next {
            match s {
                Settle::Ack(t) => self.runs.settled(t),
                Settle::Reject(t) => {
                    reject(&self.ch, t).await?;
                    self.runs.rejected(t);
                }
            }
            next = more.try_recv().ok();
        }
        self.send(false);
        Ok(())
    }

    fn send(&mut self, all: bool) {
        for (t, multiple) in self.runs.take(all) {
            let ch = self.ch.clone();
            self.sending.push(Box::pin(async move {
                match tokio::time::timeout(
                    ACK_SEND_TIMEOUT,
                    ch.basic_ack(t, BasicAckOptions { multiple }),
                )
                .await
                {
                    Ok(r) => r.map_err(AmqpError::from),
                    // lapin never answers once its connection is gone.
                    Err(_) => Err(AmqpError::Broker(
                        "an acknowledgement was not sent in time".into(),
                    )),
                }
            }));
        }
        self.linger = match (self.runs.waiting(), self.linger) {
            (0, _) => None,
            (_, Some(at)) => Some(at),
            (_, None) => Some(tokio::time::Instant::now() + ACK_LINGER),
        };
    }
}

/// Rejects a delivery without requeue (to the dead-letter queue); bounded,
/// as lapin may never answer once its connection is gone.
async fn reject(ch: &Channel, tag: u64) -> Result<(), AmqpError> {
    tokio::time::timeout(
        ACK_SEND_TIMEOUT,
        ch.basic_reject(tag, BasicRejectOptions { requeue: false }),
    )
    .await
    .map_err(|_| AmqpError::Broker("a reject was not sent in time".into()))??;
    Ok(())
}

/// Fires once settled deliveries have waited `ACK_LINGER` behind an open
/// one; never while none wait.
/// Closes a channel before its connection, and waits for the broker's
/// answer: a channel left to close itself when dropped races the
/// connection's close, and lapin logs the loser at ERROR ("invalid channel
/// state: Closing") on every clean stop. Bounded: the broker may be gone.
async fn close_quietly(ch: &Channel) {
    if ch.status().connected() {
        let _ = tokio::time::timeout(Duration::from_secs(5), ch.close(200, "shutting down")).await;
    }
}

async fn lingered(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What `deskbridge probe --bus` read of one exchange or queue.
pub enum Found {
    Exchange(String),
    Queue {
        name: String,
        /// The dead-letter copies' queue.
        dead: bool,
        messages: u32,
        consumers: u32,
    },
    /// Whether a running deskbridge holds a destination's queue (its
    /// lock, `Topology::lock`, is another connection's).
    Holder {
        queue: String,
        held: bool,
    },
    /// Not declared yet (the daemon declares it on start).
    Missing(String),
    /// Declared, but the broker refused to show it (permissions).
    Refused(String, String),
}

impl Topology {
    /// Reads the topology of `dests` passively: declares nothing, changes
    /// nothing. A missing name closes the channel (404), so each check
    /// gets its own.
    pub async fn inspect(&self, conn: &Connection, dests: &[String]) -> Vec<Found> {
        use lapin::options::ExchangeDeclareOptions;
        let mut out = Vec::new();
        for x in [self.exchange(), self.dead_exchange()] {
            let opts = ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let name: &str = &x;
            let r = on_own_channel(conn, |ch| async move {
                ch.exchange_declare(name, ExchangeKind::Direct, opts, FieldTable::default())
                    .await
            })
            .await;
            out.push(match r {
                Ok(()) => Found::Exchange(x),
                Err(e) => missing_or_refused(e, x),
            });
        }
        for d in dests {
            for (q, dead) in [(self.queue(d), false), (self.dead_queue(d), true)] {
                let name: &str = &q;
                let r = on_own_channel(conn, |ch| async move { read_queue(&ch, name).await }).await;
                out.push(match r {
                    Ok(info) => Found::Queue {
                        name: q,
                        dead,
                        messages: info.message_count(),
                        consumers: info.consumer_count(),
                    },
                    Err(e) => missing_or_refused(e, q),
                });
            }
            let lock = self.lock(d);
            let name: &str = &lock;
            let r = on_own_channel(conn, |ch| async move { read_queue(&ch, name).await }).await;
            let queue = self.queue(d);
            out.push(match r {
                Err(e) if is_locked(&e) => Found::Holder { queue, held: true },
                Err(e) => match missing_or_refused(e, lock) {
                    Found::Missing(_) => Found::Holder { queue, held: false },
                    other => other,
                },
                // Declared, and not exclusive: not deskbridge's.
                Ok(_) => Found::Refused(
                    lock,
                    "exists, declared by something else (deskbridge's is exclusive to one connection): delete it, or a deskbridge is refused this queue".into(),
                ),
            });
        }
        out
    }
}

/// A queue's counts by a passive declare: declares nothing. A queue that
/// does not exist closes the channel (404).
async fn read_queue(ch: &Channel, name: &str) -> Result<lapin::Queue, lapin::Error> {
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(name, opts, FieldTable::default()).await
}

/// Runs one passive check on a channel of its own, closed after.
async fn on_own_channel<T, F, Fut>(conn: &Connection, check: F) -> Result<T, lapin::Error>
where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, lapin::Error>>,
{
    let ch = conn.create_channel().await?;
    let r = check(ch.clone()).await;
    let _ = ch.close(200, "probe").await;
    r
}

/// A refusal because another connection has the queue exclusively
/// (405 RESOURCE_LOCKED).
fn is_locked(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(e, lapin::Error::ProtocolError(p)
        if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED))
}

fn missing_or_refused(e: lapin::Error, name: String) -> Found {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    match &e {
        lapin::Error::ProtocolError(p)
            if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) =>
        {
            Found::Missing(name)
        }
        _ => Found::Refused(name, e.to_string()),
    }
}

/// The status line for a failed attempt. A refused TLS handshake often
/// shows as a bare "Broken pipe" on the next attempt (the client was still
/// writing when the alert came): the hint seen earlier in the same wait
/// stays shown beside it.
fn keep_hint(msg: String, hinted: &mut Option<String>) -> String {
    if tls_hint(&msg).is_some() {
        *hinted = Some(msg.clone());
        return msg;
    }
    match hinted {
        Some(h) => format!("{msg}; an earlier attempt: {h}"),
        None => msg,
    }
}

/// What to do about a failed TLS handshake, for the operator who reads it
/// in `deskbridge status`.
fn tls_hint(error: &str) -> Option<&'static str> {
    if error.contains("UnknownIssuer") {
        Some("if a CA of your own signed the broker's certificate, name its PEM file in [bus] ca_file")
    } else if error.contains("NotValidForName") {
        Some("the broker's certificate is for another name: use that name in bus.url")
    } else if error.contains("Expired") || error.contains("NotValidYet") {
        Some("the broker's certificate is out of its validity dates (or this machine's clock is)")
    } else if error.contains("CertificateRequired") || error.contains("HandshakeFailure") {
        Some("the broker may ask for a client certificate: [bus] client_certificate")
    } else if error.contains("BadCertificate") || error.contains("UnknownCA") {
        Some("the broker refused [bus] client_certificate: is it signed by a CA the broker trusts?")
    } else {
        None
    }
}

/// Connection properties that run lapin's tasks and I/O on the current
/// tokio runtime (not on threads of its own).
pub fn on_tokio() -> ConnectionProperties {
    ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
}

/// Deletes a deployment's queues and exchanges (benches and tests clean up
/// after themselves on a shared broker). Best effort.
pub async fn remove_topology(url: &str, prefix: &str, dests: &[&str]) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let Ok(conn) = Connection::connect(url, on_tokio()).await else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let t = Topology {
            prefix: prefix.to_string(),
        };
        for d in dests {
            for q in [t.queue(d), t.dead_queue(d)] {
                let _ = ch.queue_delete(&q, QueueDeleteOptions::default()).await;
            }
        }
        for e in [t.exchange(), t.dead_exchange()] {
            let _ = ch
                .exchange_delete(&e, ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = conn.close(200, "done").await;
}

#[cfg(test)]
mod tests {
    use super::{keep_hint, AckRuns};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_tls_hint_stays_shown_beside_a_later_bare_transport_error() {
        let mut hinted = None;
        assert_eq!(
            keep_hint("Connection refused".into(), &mut hinted),
            "Connection refused"
        );
        let refused = "invalid peer certificate: UnknownIssuer (if a CA of your own ...)";
        assert_eq!(keep_hint(refused.into(), &mut hinted), refused);
        assert_eq!(
            keep_hint("Broken pipe (os error 32)".into(), &mut hinted),
            format!("Broken pipe (os error 32); an earlier attempt: {refused}")
        );
        // A newer hint replaces the older one.
        let cert = "received fatal alert: CertificateRequired (the broker may ask ...)";
        assert_eq!(keep_hint(cert.into(), &mut hinted), cert);
        assert!(keep_hint("EOF".into(), &mut hinted).ends_with(cert));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Deliver,
        /// An unreadable message: rejected at once, never in the runs.
        Reject,
        Settle(prop::sample::Index),
        /// Its token is dropped: the delivery stays open for good.
        Drop(prop::sample::Index),
        /// Not this deskbridge's (an unknown link): rejected by the
        /// dispatcher, to the dead-letter queue.
        Refuse(prop::sample::Index),
        Take(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Deliver),
            1 => Just(Op::Reject),
            3 => any::<prop::sample::Index>().prop_map(Op::Settle),
            1 => any::<prop::sample::Index>().prop_map(Op::Drop),
            1 => any::<prop::sample::Index>().prop_map(Op::Refuse),
            2 => any::<bool>().prop_map(Op::Take),
        ]
    }

    proptest! {
        /// Whatever the order deliveries come, settle, are rejected or
        /// dropped in, the acks sent name only unacknowledged tags (the
        /// broker closes the channel on an unknown one), cover only settled
        /// deliveries (an early ack loses the message in a crash), and in
        /// the end cover every settled one.
        #[test]
        fn acks_cover_each_settled_delivery_once(ops in proptest::collection::vec(op(), 1..120)) {
            let mut runs = AckRuns::default();
            let mut next = 1u64;
            let mut open: Vec<u64> = Vec::new();
            // The broker's view: delivered and neither acked nor rejected.
            let mut unacked = BTreeSet::new();
            let mut settled = BTreeSet::new();
            let apply = |acks: Vec<(u64, bool)>, unacked: &mut BTreeSet<u64>, settled: &BTreeSet<u64>| {
                for (t, multiple) in acks {
                    prop_assert!(unacked.contains(&t), "tag {t} is not unacknowledged");
                    let covered: Vec<u64> = if multiple {
                        unacked.range(..=t).copied().collect()
                    } else {
                        vec![t]
                    };
                    for c in covered {
                        prop_assert!(settled.contains(&c), "tag {c} acknowledged before it settled");
                        unacked.remove(&c);
                    }
                }
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Deliver => {
                        runs.delivered(next);
                        open.push(next);
                        unacked.insert(next);
                        next += 1;
                    }
                    Op::Reject => next += 1,
                    Op::Settle(i) if !open.is_empty() => {
                        let t = open.remove(i.index(open.len()));
                        runs.settled(t);
                        settled.insert(t);
                    }
                    Op::Drop(i) if !open.is_empty() => {
                        open.remove(i.index(open.len()));
                    }
                    Op::Refuse(i) if !open.is_empty() => {
                        // The reject goes out before any later ack.
                        let t = open.remove(i.index(open.len()));
                        runs.rejected(t);
                        unacked.remove(&t);
                    }
                    Op::Take(all) => apply(runs.take(all), &mut unacked, &settled)?,
                    _ => {}
                }
            }
            apply(runs.take(true), &mut unacked, &settled)?;
            let left: Vec<u64> = unacked.intersection(&settled).copied().collect();
            prop_assert!(left.is_empty(), "settled, never acknowledged: {left:?}");
        }
    }

    #[test]
    fn a_run_goes_as_one_frame() {
        let mut runs = AckRuns::default();
        for t in 1..=5 {
            runs.delivered(t);
        }
        for t in [2, 1, 3, 5] {
            runs.settled(t);
        }
        // 4 is still open: 1..=3 go as one, 5 waits unless forced.
        assert_eq!(runs.take(false), vec![(3, true)]);
        assert_eq!(runs.waiting(), 1);
        assert_eq!(runs.take(true), vec![(5, false)]);
        runs.settled(4);
        assert_eq!(runs.take(false), vec![(4, false)]);
    }
}
