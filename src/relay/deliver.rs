//! One delivery: apply the message at the sink, record it, retry what is
//! transient (honouring the partner's pause) and bury what is permanent.

use super::dispatcher::Dispatcher;
use super::done::Done;
use super::pause::{wait_unless_stopped, Pause};
use super::status::with_status;
use crate::connector::{Delivery, SinkError};
use crate::event::EventKind;
use crate::retry::Retry;
use crate::store::{Applied, Envelope, QueueKey, StoreError};
use chrono::Utc;
use tracing::{debug, info, warn};

impl Dispatcher {
    pub(super) async fn deliver(
        &self,
        key: &QueueKey,
        env: &Envelope,
        pause: &Pause,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Done {
        /// Takes a retrying delivery off the status when it ends, however
        /// it ends: done, failed, panicked or aborted by a stop.
        /// The last one's end ends the outage, for the log too: said at
        /// info when the partner answered at last (delivered, or refused
        /// for good), not when a stop cut it short; the next failure is
        /// news again.
        struct Retrying<'a> {
            d: &'a Dispatcher,
            pause: &'a Pause,
            /// This delivery failed at least once.
            on: bool,
            /// The partner answered it at last.
            answered: bool,
        }
        impl Drop for Retrying<'_> {
            fn drop(&mut self) {
                if !self.on {
                    return;
                }
                let mut over = None;
                with_status(&self.d.board, &self.d.dest, |s| {
                    s.retrying = s.retrying.saturating_sub(1);
                    if s.retrying == 0 {
                        s.failing = None;
                        s.failing_since = None;
                        s.oldest_waiting_since = None;
                        // Under the board's lock, so that a failure
                        // that starts the next outage finds it reset
                        // (the order is always board, then Said).
                        over = self.pause.outage_over().map(|r| (r, s.queued));
                    }
                });
                if let (Some((r, waiting)), true) = (over, self.answered) {
                    outage_ended(&self.d.dest, r, waiting);
                }
            }
        }
        let mut retrying = Retrying {
            d: self,
            pause,
            on: false,
            answered: false,
        };
        match self
            .try_deliver(key, env, pause, &mut stop, &mut retrying.on)
            .await
        {
            Ok(d) => {
                retrying.answered = matches!(d, Done::Delivered | Done::Dead(_));
                d
            }
            Err(e) => Done::Failed(e),
        }
    }

    async fn try_deliver(
        &self,
        key: &QueueKey,
        env: &Envelope,
        pause: &Pause,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        retrying: &mut bool,
    ) -> Result<Done, StoreError> {
        // Applied before a crash that came before the queue was updated.
        if let Some(applied) = self.store.applied(env)? {
            self.store.complete(key, env, &applied)?;
            self.store.flush().await?;
            return Ok(Done::Delivered);
        }
        let mut retry = Retry::new(self.retry);
        let mut attempts = 0u32;
        loop {
            if let Some(t) = pause.until() {
                if !wait_unless_stopped(t, stop).await {
                    return Ok(Done::Returned);
                }
            }
            attempts += 1;
            // Checked at delivery (broker); from the outbox a link always
            // comes with its events. Should one be missing all the same,
            // it is a dead letter that says so, not a stopped daemon.
            let Some(link) = self.store.link(env.link_id)? else {
                return self.unknown_link(key, env, attempts).await;
            };
            let ticket = link
                .sides(&self.dest)
                .and_then(|(mine, _)| mine.ticket.clone());
            let is_create = matches!(env.event.kind, EventKind::TicketCreated { .. });
            let result = match (&ticket, is_create) {
                // Replayed after it went through: the ticket is there.
                (Some(_), true) => Ok(Applied::default()),
                (None, false) => Err(SinkError::Permanent {
                    message: format!(
                        "the partner ticket in {} was never created (its transfer is a dead letter or was discarded)",
                        self.dest
                    ),
                }),
                _ => {
                    self.sink
                        .apply(Delivery {
                            envelope: env,
                            link: &link,
                            ticket: ticket.as_deref(),
                            blobs: &self.blobs,
                        })
                        .await
                }
            };
            match result {
                Ok(applied) => {
                    // Before the record: a crash between the two repeats
                    // the delivery, and the onward copy is taken once.
                    // (A transfer's ticket is the one it just created.)
                    if let (Some(o), Some(t)) =
                        (&self.onward, applied.ticket.as_ref().or(ticket.as_ref()))
                    {
                        o.onward(&self.dest, t, env.link_id, &env.event)
                            .await
                            .map_err(|e| match e {
                                crate::ingest::IngestError::Store(s) => s,
                                other => StoreError::Rejected(other.to_string()),
                            })?;
                    }
                    // Recorded, not yet flushed: the link may go on at once
                    // (its next effect comes after this one anyway); the
                    // broker is acknowledged only after the group flush. A
                    // crash before it redelivers, and the receiver applies
                    // a repeated message id once.
                    self.store.complete(key, env, &applied)?;
                    with_status(&self.board, &self.dest, |s| s.delivered += 1);
                    // One line per event: debug (the summary counts them).
                    debug!(attempts, "delivered");
                    return Ok(Done::Delivered);
                }
                Err(SinkError::Permanent { message }) => {
                    warn!(error = %message, "dead letter");
                    let dead = self
                        .dead_letter(key, env.clone(), message, attempts)
                        .await?;
                    return Ok(Done::Dead(Box::new(dead)));
                }
                Err(SinkError::Transient {
                    message,
                    retry_after,
                }) => {
                    let wait = retry.next_delay(retry_after);
                    if let Some(hint) = retry_after {
                        pause.extend(hint.min(wait));
                    }
                    let wait_ms = wait.as_millis() as u64;
                    match pause.worth_saying(&message) {
                        (true, 1) => warn!(
                            error = %message, wait_ms,
                            "deliveries to {} fail, an outage begins: will retry until it answers",
                            self.dest
                        ),
                        (true, failures) => warn!(
                            error = %message, attempts, failures, wait_ms,
                            "deliveries to {} still fail: will retry", self.dest
                        ),
                        (false, failures) => {
                            debug!(error = %message, attempts, failures, wait_ms, "will retry")
                        }
                    }
                    let first = !*retrying;
                    *retrying = true;
                    let accepted = env.accepted_at.unwrap_or(env.event.occurred_at);
                    with_status(&self.board, &self.dest, |s| {
                        if first {
                            s.retrying += 1;
                        }
                        s.retried += 1;
                        s.failing = Some(message);
                        s.failing_since.get_or_insert_with(Utc::now);
                        // The dispatcher's next turn has the exact figure.
                        s.oldest_waiting_since =
                            Some(s.oldest_waiting_since.map_or(accepted, |o| o.min(accepted)));
                    });
                    if !wait_unless_stopped(tokio::time::Instant::now() + wait, stop).await {
                        return Ok(Done::Returned);
                    }
                }
            }
        }
    }
}

/// The end of a destination's outage, at info: how long it lasted, the
/// attempts that failed, and the messages that waited for it.
fn outage_ended(dest: &str, r: crate::retry::Recovered, waiting: usize) {
    info!(
        failures = r.failures,
        lasted_secs = r.lasted.as_secs(),
        waiting,
        "{dest} answers again after {}: the outage is over ({} failed attempts, {waiting} waiting)",
        crate::human::span(r.lasted),
        r.failures,
    );
}
