//! The baseline: bare lapin on the same broker, with the same number of
//! messages of the same size.

use super::partner::payload;
use super::report::{err, BenchError};
use super::usage::{CpuMark, Spent};
use crate::event::{Audience, Comment, Event, EventKind};
use futures::StreamExt;
use std::time::Instant;
use uuid::Uuid;

/// Bare lapin: the same number of persistent messages of the same size,
/// published with confirms `window` in flight onto a durable quorum queue,
/// consumed with manual acks and the same prefetch.
/// The baseline's rate, and the CPU this process and the broker spent
/// while it ran.
pub(super) struct Baseline {
    pub(super) events_per_s: f64,
    pub(super) spent: Spent,
}

pub(super) async fn baseline(
    url: &str,
    events: usize,
    payload_bytes: usize,
) -> Result<Baseline, BenchError> {
    use lapin::options::*;
    use lapin::types::{AMQPValue, FieldTable};
    let conn = lapin::Connection::connect(url, crate::bus::amqp::on_tokio())
        .await
        .map_err(err)?;
    let pubc = conn.create_channel().await.map_err(err)?;
    let subc = conn.create_channel().await.map_err(err)?;
    let queue = format!("deskbridge-bench-baseline-{}", Uuid::now_v7().simple());
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    pubc.queue_declare(
        &queue,
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .map_err(err)?;
    pubc.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(err)?;
    subc.basic_qos(256, BasicQosOptions::default())
        .await
        .map_err(err)?;
    let mut consumer = subc
        .basic_consume(
            &queue,
            "bench",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    // The same bytes the pipeline carries: an envelope with a comment.
    let body = serde_json::to_vec(&Event::new(
        "T0",
        EventKind::Comment {
            comment: Comment {
                body: payload(payload_bytes, 0),
                audience: Audience::Public,
                attachments: vec![],
            },
        },
    ))
    .map_err(err)?;
    let cpu_start = CpuMark::now();
    let start = Instant::now();
    let consume = async {
        let mut n = 0;
        while n < events {
            match consumer.next().await {
                Some(Ok(d)) => {
                    d.ack(BasicAckOptions::default()).await.map_err(err)?;
                    n += 1;
                }
                Some(Err(e)) => return Err(err(e)),
                None => return Err(BenchError("baseline consumer ended".into())),
            }
        }
        Ok(())
    };
    let publish = async {
        let window = 256;
        let mut i = 0;
        while i < events {
            let mut confirms = Vec::with_capacity(window);
            for _ in 0..window.min(events - i) {
                confirms.push(
                    pubc.basic_publish(
                        "",
                        &queue,
                        BasicPublishOptions::default(),
                        &body,
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .map_err(err)?,
                );
                i += 1;
            }
            for c in confirms {
                c.await.map_err(err)?;
            }
        }
        Ok::<(), BenchError>(())
    };
    let (p, c) = tokio::join!(publish, consume);
    p?;
    c?;
    let secs = start.elapsed().as_secs_f64();
    let spent = cpu_start.spent();
    let _ = pubc
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bench done").await;
    Ok(Baseline {
        events_per_s: events as f64 / secs,
        spent,
    })
}
