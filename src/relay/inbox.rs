//! Where a destination's messages come from, behind one interface: the
//! store's outbox (embedded bus) or the broker's deliveries. The scheduler
//! tells its inbox what happened; the inbox puts work in the backlog.

use super::broker::BrokerInbox;
use super::dispatcher::{Dispatcher, Source};
use super::done::Done;
use super::outbox::OutboxInbox;
use super::work::Work;
use crate::bus::ack::Ack;
use crate::store::{Envelope, QueueKey, StoreError};
use std::collections::HashSet;
use uuid::Uuid;

pub(super) enum Inbox {
    Outbox(OutboxInbox),
    Broker(BrokerInbox),
}

impl Inbox {
    /// The inbox of `d.source`, with what waited since the last run.
    pub(super) fn open(d: &Dispatcher, work: &mut Work) -> Result<Inbox, StoreError> {
        Ok(match d.source {
            Source::Embedded => Inbox::Outbox(OutboxInbox::open(d, work)?),
            Source::Broker => Inbox::Broker(BrokerInbox::open(d)?),
        })
    }

    /// Work the inbox holds outside memory (parked, with a broker) that
    /// free links can take now.
    pub(super) fn refill_stalled(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
    ) -> Result<(), StoreError> {
        match self {
            Inbox::Outbox(_) => Ok(()),
            Inbox::Broker(b) => b.refill_stalled(d, work),
        }
    }

    /// Ingest put `key` on the outbox. With a broker, the publisher takes
    /// it there, and it comes back as a delivery.
    pub(super) fn queued(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        key: QueueKey,
        env: Envelope,
    ) -> Result<(), StoreError> {
        match self {
            Inbox::Outbox(o) => o.queued(d, work, key, env),
            Inbox::Broker(_) => Ok(()),
        }
    }

    /// The broker delivered `key`. Only a broker's consumer sends these:
    /// an outbox has none (the dropped acknowledgement would leave the
    /// message to the broker).
    pub(super) async fn delivered(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        key: QueueKey,
        env: Envelope,
        ack: Ack,
    ) -> Result<(), StoreError> {
        match self {
            Inbox::Outbox(_) => Ok(()),
            Inbox::Broker(b) => b.delivered(d, work, key, env, ack).await,
        }
    }

    /// The broker channel was lost.
    pub(super) fn reset(&mut self, work: &mut Work) {
        if let Inbox::Broker(b) = self {
            b.reset(work);
        }
    }

    /// The broker's queue held `ready` messages when last read.
    pub(super) async fn depth(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        ready: u32,
    ) -> Result<(), StoreError> {
        match self {
            Inbox::Outbox(_) => Ok(()),
            Inbox::Broker(b) => b.depth(d, work, ready).await,
        }
    }

    /// An operator dealt with a dead letter of `link`: first told before
    /// the scheduler looks whether another one holds the link.
    pub(super) fn may_have_gone_on(
        &mut self,
        d: &Dispatcher,
        link: Uuid,
    ) -> Result<(), StoreError> {
        match self {
            Inbox::Outbox(_) => Ok(()),
            Inbox::Broker(b) => b.may_have_gone_on(d, link),
        }
    }

    /// `link` is no longer blocked: its messages (a replayed letter among
    /// them) come back as work.
    pub(super) fn unblocked(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        link: Uuid,
    ) -> Result<(), StoreError> {
        match self {
            Inbox::Outbox(o) => o.unblocked(d, work, link),
            Inbox::Broker(b) => b.unblocked(d, work, link),
        }
    }

    /// Delivery `seq` of `link` ended with `done`.
    pub(super) fn finished(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        link: Uuid,
        seq: u64,
        done: &Done,
    ) -> Result<(), StoreError> {
        match self {
            // A dead letter's link takes no more (see `buried`).
            Inbox::Outbox(o) => o.finished(d, work, link, seq, !matches!(done, Done::Dead(_))),
            Inbox::Broker(b) => b.finished(d, seq, done),
        }
    }

    /// A dead letter (`seq`) now holds `link`.
    pub(super) fn buried(
        &mut self,
        d: &Dispatcher,
        work: &mut Work,
        link: Uuid,
        seq: u64,
    ) -> Result<(), StoreError> {
        match self {
            Inbox::Outbox(o) => o.buried(d, work, link, seq),
            Inbox::Broker(b) => {
                b.buried(link);
                Ok(())
            }
        }
    }

    pub(super) fn parked_links(&self) -> usize {
        match self {
            Inbox::Outbox(_) => 0,
            Inbox::Broker(b) => b.parked_links(),
        }
    }

    pub(super) fn waiting_links(&self, blocked: &HashSet<Uuid>) -> usize {
        match self {
            Inbox::Outbox(_) => 0,
            Inbox::Broker(b) => b.waiting_links(blocked),
        }
    }

    /// Fires when a message waiting for its link's earlier one has waited
    /// long enough; never without one.
    pub(super) async fn gap_due(&self) {
        match self {
            Inbox::Outbox(_) => std::future::pending().await,
            Inbox::Broker(b) => b.gap_due().await,
        }
    }

    pub(super) fn gaps_due(&mut self) {
        if let Inbox::Broker(b) = self {
            b.gaps_due();
        }
    }
}
