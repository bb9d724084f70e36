//! The broker's names and declarations: the exchanges, one quorum queue per
//! destination with its dead-letter queue, and each destination's lock.

use super::error::AmqpError;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

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

/// A queue's counts by a passive declare: declares nothing. A queue that
/// does not exist closes the channel (404).
pub(super) async fn read_queue(ch: &Channel, name: &str) -> Result<lapin::Queue, lapin::Error> {
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(name, opts, FieldTable::default()).await
}

/// A refusal because another connection has the queue exclusively
/// (405 RESOURCE_LOCKED).
pub(super) fn is_locked(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(e, lapin::Error::ProtocolError(p)
        if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED))
}
