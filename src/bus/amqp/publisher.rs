//! The publisher: drains the store's outbox to the broker with publisher
//! confirms, and copies dead letters to the broker's dead-letter queues.

use super::acks::lingered;
use super::broker::Broker;
use super::connection::{close_quietly, Sessions, SESSION_RETRY};
use super::error::AmqpError;
use crate::bus::notify::Notifier;
use crate::retry::Retry;
use crate::store::{DeadLetter, QueueKey, Store};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

fn props(key: &QueueKey) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"))
        .with_message_id(ShortString::from(key.id()))
}

impl Broker {
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
}

/// A destination whose queue refuses publishes: when to try it again.
struct Refusing {
    retry: Retry,
    until: tokio::time::Instant,
}
