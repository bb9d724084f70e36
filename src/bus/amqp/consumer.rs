//! A destination's consumer: claims its queue, hands each delivery with its
//! acknowledgement to the destination's relay, sends the acknowledgements
//! back, and reads the queue's depth for the status.

use super::acks::{lingered, reject, AckSender, ACK_SEND_TIMEOUT};
use super::broker::Broker;
use super::connection::{close_quietly, Sessions};
use super::error::AmqpError;
use super::topology::read_queue;
use crate::bus::ack::{Ack, Settle};
use crate::bus::notify::Notice;
use crate::store::{Envelope, QueueKey};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// How often a consumer reads its queue's depth for the status.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

impl Broker {
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
            self.claims.unclaim(&dest);
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
        self.claims.claim(&self.topology, ch, dest).await?;
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

/// Stops a helper task with the scope that started it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
