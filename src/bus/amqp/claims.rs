//! Which destination queues this deskbridge holds at the broker, so that
//! two deskbridges on one `bus.prefix` never share a queue.

use super::error::AmqpError;
use super::topology::{is_locked, Topology};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Channel;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Which destination queues this deskbridge holds. Each consumer holds its
/// queue's lock (`Topology::lock`, an exclusive queue: the broker lets one
/// connection have it, and drops it with that connection), so that two
/// deskbridges with one `bus.prefix` (a copied config) never share a queue:
/// each would get messages for links that only the other's store knows.
#[derive(Clone, Debug, Default)]
pub(super) struct ClaimState {
    /// Destinations whose lock our consumer holds now: the publisher sends
    /// only to these (a queue another deskbridge holds would take ours to
    /// its relay).
    pub(super) held: BTreeSet<String>,
    /// Destinations not yet claimed once since start. While any is, a
    /// refused lock means another deskbridge was there first: this one
    /// must stop. Later, it is our own old connection that the broker has
    /// not yet found dead (or another deskbridge that came in between):
    /// the consumer waits and tries again.
    pub(super) unclaimed: BTreeSet<String>,
    /// Why this deskbridge may not use the queues (refused at start).
    pub(super) refused: Option<String>,
    /// A connection failed before every destination was claimed: the
    /// start does not wait for the broker (see `Broker::claimed`).
    pub(super) trouble: bool,
    /// When a lock was first refused at start: it is tried again for
    /// `START_RETRY` before this deskbridge gives up (the broker may not
    /// yet have closed the connection of this deskbridge's own previous
    /// run, killed a moment ago).
    pub(super) first_refused: Option<tokio::time::Instant>,
}

/// See `ClaimState::first_refused`.
const START_RETRY: Duration = Duration::from_secs(3);

/// The claims, shared by the broker's tasks: the consumers make them, the
/// publisher sends only to held queues, the daemon's start waits on them.
#[derive(Clone)]
pub(super) struct Claims(Arc<watch::Sender<ClaimState>>);

impl Claims {
    pub(super) fn new() -> Claims {
        Claims(Arc::new(watch::channel(ClaimState::default()).0))
    }

    /// The destinations whose queues this deskbridge's consumers will
    /// claim: until each has been claimed once, the daemon is starting.
    pub(super) fn expect(&self, dests: impl IntoIterator<Item = String>) {
        self.0.send_modify(|c| c.unclaimed.extend(dests));
    }

    /// Waits until every destination's queue has been claimed once (Ok),
    /// a claim was refused (the reason, with what to change), or a
    /// connection failed first (Ok: the broker is away, and the claims are
    /// made, or refused, when it is back; see `refused`).
    pub(super) async fn claimed(&self) -> Result<(), AmqpError> {
        let mut rx = self.0.subscribe();
        let refused = rx
            .wait_for(|c| c.unclaimed.is_empty() || c.refused.is_some() || c.trouble)
            .await
            .map(|c| c.refused.clone())
            .map_err(|_| AmqpError::TasksEnded)?;
        match refused {
            Some(why) => Err(AmqpError::Taken(why)),
            None => Ok(()),
        }
    }

    /// Fires when a claim was refused before every destination was claimed
    /// once: another deskbridge uses this prefix's queues, and this one
    /// must stop. Never otherwise.
    pub(super) async fn refused(&self) -> String {
        let mut rx = self.0.subscribe();
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
    pub(super) async fn claim(
        &self,
        topology: &Topology,
        ch: &Channel,
        dest: &str,
    ) -> Result<(), AmqpError> {
        let lock = topology.lock(dest);
        let opts = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        match ch.queue_declare(&lock, opts, FieldTable::default()).await {
            Ok(_) => {
                self.0.send_modify(|c| {
                    c.held.insert(dest.to_string());
                    c.unclaimed.remove(dest);
                });
                Ok(())
            }
            Err(e) if is_locked(&e) => {
                let queue = topology.queue(dest);
                let starting = self.0.borrow().unclaimed.contains(dest);
                let mut give_up = false;
                if starting {
                    self.0.send_modify(|c| {
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
                    self.0.send_modify(|c| c.refused = Some(why.clone()));
                }
                Err(AmqpError::Taken(why))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Our consumer's session on `dest` ended: its lock went with it.
    pub(super) fn unclaim(&self, dest: &str) {
        self.0.send_modify(|c| {
            c.held.remove(dest);
        });
    }

    /// A connection failed: the start does not wait for a broker that is
    /// away.
    pub(super) fn broker_away(&self) {
        self.0.send_if_modified(|c| {
            let news = !c.trouble && !c.unclaimed.is_empty();
            c.trouble |= news;
            news
        });
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<ClaimState> {
        self.0.subscribe()
    }
}
