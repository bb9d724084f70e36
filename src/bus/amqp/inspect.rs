//! What `deskbridge probe --bus` reads of a deployment's topology, passively,
//! and the clean-up that benches and tests do on a shared broker.

use super::connection::on_tokio;
use super::topology::{is_locked, read_queue, Topology};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ExchangeKind};

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
