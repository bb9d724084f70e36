//! `/metrics`: the figures of `deskbridge status` in the Prometheus /
//! OpenMetrics text format, encoded by `prometheus-client` (label values
//! escaped, one family per name). Built from a status snapshot on each
//! scrape: the figures live in the store and the status boards, not in
//! long-lived metric objects.

use crate::connector::rest::poll::PollStatus;
use crate::ops::StatusView;
use crate::relay::DestStatus;
use crate::store::FlushStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The content type of `render`'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Dest {
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Endpoint {
    endpoint: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// What a family is: its name, help and how a value is set on it.
trait Kind: Default + Clone + std::fmt::Debug + Send + Sync + 'static {
    fn put(&self, v: f64);
}
impl Kind for Gauge {
    fn put(&self, v: f64) {
        self.set(v as i64);
    }
}
impl Kind for FloatGauge {
    fn put(&self, v: f64) {
        self.set(v);
    }
}
impl Kind for Counter {
    fn put(&self, v: f64) {
        self.inc_by(v as u64);
    }
}
impl Kind for FloatCounter {
    fn put(&self, v: f64) {
        self.inc_by(v);
    }
}

struct Out {
    reg: Registry,
}

impl Out {
    /// One value without labels. A counter's name is given without
    /// `_total`: the encoder adds it.
    fn one<
        M: Kind + prometheus_client::metrics::TypedMetric + prometheus_client::encoding::EncodeMetric,
    >(
        &mut self,
        name: &str,
        help: &str,
        v: f64,
    ) {
        let m = M::default();
        m.put(v);
        self.reg.register(name, help, m);
    }

    /// One value per destination; a destination where `f` gives nothing
    /// is absent from the family.
    fn per_dest<M>(
        &mut self,
        s: &StatusView,
        name: &str,
        help: &str,
        f: impl Fn(&DestStatus) -> Option<f64>,
    ) where
        M: Kind
            + prometheus_client::metrics::TypedMetric
            + prometheus_client::encoding::EncodeMetric,
    {
        let fam = Family::<Dest, M>::default();
        for (d, v) in &s.destinations {
            if let Some(x) = f(v) {
                fam.get_or_create(&Dest {
                    destination: d.clone(),
                })
                .put(x);
            }
        }
        self.reg.register(name, help, fam);
    }

    fn per_poller<M>(
        &mut self,
        s: &StatusView,
        name: &str,
        help: &str,
        f: impl Fn(&PollStatus) -> f64,
    ) where
        M: Kind
            + prometheus_client::metrics::TypedMetric
            + prometheus_client::encoding::EncodeMetric,
    {
        let fam = Family::<Endpoint, M>::default();
        for (e, v) in &s.pollers {
            fam.get_or_create(&Endpoint {
                endpoint: e.clone(),
            })
            .put(f(v));
        }
        self.reg.register(name, help, fam);
    }
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

/// The text of a scrape.
pub fn render(s: &StatusView, flush: &FlushStats, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut o = Out {
        reg: Registry::default(),
    };
    o.one::<Gauge>("deskbridge_links", "Links stored", s.links as f64);
    o.one::<Gauge>(
        "deskbridge_dead_letters",
        "Dead letters waiting for an operator",
        s.dead_letters as f64,
    );
    o.per_dest::<Gauge>(
        s,
        "deskbridge_queued",
        "Messages waiting per destination",
        |v| Some(v.queued as f64),
    );
    o.per_dest::<Gauge>(
        s,
        "deskbridge_in_flight",
        "Deliveries in progress per destination",
        |v| Some(v.in_flight as f64),
    );
    o.per_dest::<Gauge>(
        s,
        "deskbridge_blocked_links",
        "Links held back by a dead letter",
        |v| Some(v.blocked_links as f64),
    );
    o.per_dest::<Gauge>(
        s,
        "deskbridge_parked_links",
        "Broker: links whose later messages wait in the store behind a slow delivery",
        |v| Some(v.parked_links as f64),
    );
    o.per_dest::<Gauge>(
        s,
        "deskbridge_parked",
        "Broker: messages parked in the store behind a slow delivery of their link",
        |v| Some(v.parked as f64),
    );
    o.per_dest::<Gauge>(
        s,
        "deskbridge_waiting_links",
        "Broker: links whose next message waits for an earlier one the broker has not delivered",
        |v| Some(v.waiting_links as f64),
    );
    o.per_dest::<Gauge>(
        s,
        "deskbridge_at_broker",
        "Broker: messages ready in the destination's queue, as last read (absent while not connected)",
        |v| v.at_broker.map(|n| n as f64),
    );
    o.per_dest::<FloatGauge>(
        s,
        "deskbridge_oldest_waiting_seconds",
        "Age of the oldest message waiting for a destination (queued, parked, or in flight while deliveries fail): how far behind it is. Absent when nothing waits",
        |v| {
            v.oldest_waiting_since
                .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
        },
    );
    o.per_dest::<Gauge>(
        s,
        "deskbridge_unconfigured",
        "1 for a destination no longer in the configuration that still has messages queued or parked (they are not delivered)",
        |v| v.unconfigured.then_some(1.0),
    );
    o.per_dest::<Counter>(
        s,
        "deskbridge_delivered",
        "Deliveries applied since start",
        |v| Some(v.delivered as f64),
    );
    o.per_dest::<Counter>(
        s,
        "deskbridge_dead_lettered",
        "Deliveries dead-lettered since start",
        |v| Some(v.dead_lettered as f64),
    );
    o.per_dest::<Counter>(
        s,
        "deskbridge_retried",
        "Failed delivery attempts retried since start",
        |v| Some(v.retried as f64),
    );
    o.per_dest::<Counter>(
        s,
        "deskbridge_not_ours",
        "Broker messages since start for links this deskbridge does not know (another deskbridge on the same bus.prefix?), moved to the broker's dead-letter queue",
        |v| Some(v.foreign as f64),
    );
    o.per_dest::<Gauge>(
        s,
        "deskbridge_failing",
        "1 while the destination fails transiently",
        |v| Some(flag(v.failing.is_some())),
    );
    o.per_poller::<Gauge>(
        s,
        "deskbridge_poll_failing",
        "1 while a REST endpoint's changes cannot be read",
        |v| flag(v.failing.is_some()),
    );
    o.per_poller::<Counter>(
        s,
        "deskbridge_polled_events",
        "Events taken from a REST endpoint since start",
        |v| v.taken as f64,
    );
    o.per_poller::<Counter>(
        s,
        "deskbridge_product_webhooks",
        "The product's webhooks that woke the poll since start",
        |v| v.webhooks as f64,
    );
    o.per_poller::<Counter>(
        s,
        "deskbridge_product_webhooks_refused",
        "The product's webhooks refused (token or signature) since start",
        |v| v.webhooks_refused as f64,
    );
    if let Some(b) = &s.broker {
        o.one::<Gauge>(
            "deskbridge_broker_connected",
            "1 while every RabbitMQ connection is up (events wait in the outbox otherwise)",
            flag(b.connected),
        );
        o.one::<Counter>(
            "deskbridge_broker_published",
            "Events the broker confirmed and the outbox let go since start",
            b.published as f64,
        );
    }
    o.one::<Counter>(
        "deskbridge_store_flushes",
        "Disk writes (sled flushes) since start",
        flush.writes as f64,
    );
    o.one::<Counter>(
        "deskbridge_store_flush_callers",
        "Callers that waited for durability; callers / flushes is the group-commit factor",
        flush.served as f64,
    );
    o.one::<FloatCounter>(
        "deskbridge_store_flush_seconds",
        "Time spent writing to disk",
        flush.seconds,
    );
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &o.reg);
    text
}
