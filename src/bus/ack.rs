//! A delivery's acknowledgement, as the relay sees it: a handle that the
//! broker side creates for each delivery and whose owner settles it once
//! the delivery's effect is recorded (or it is parked). It knows nothing of
//! the broker: it names the delivery and tells its consumer how it ended.

use tokio::sync::mpsc;

/// A delivery's acknowledgement, owed until its effect is recorded. The
/// consumer that received the delivery sends it, in runs where it can.
/// Dropped unsent, or sent once its channel is gone, it leaves the delivery
/// to the broker, which delivers it again.
pub struct Ack {
    tag: u64,
    to: mpsc::UnboundedSender<Settle>,
}

/// How a delivery ends at the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack(u64),
    /// Rejected without requeue: the broker moves it to the destination's
    /// dead-letter queue (`{p}.{dest}.dead`).
    Reject(u64),
}

impl Ack {
    /// The acknowledgement of delivery `tag`, settled through `to`.
    pub fn new(tag: u64, to: mpsc::UnboundedSender<Settle>) -> Ack {
        Ack { tag, to }
    }

    pub fn ack(self) {
        let _ = self.to.send(Settle::Ack(self.tag));
    }

    /// Gives the delivery to the broker's dead-letter queue: for a message
    /// that is not this deskbridge's to deliver (its link is in another
    /// deskbridge's store), which must be neither applied nor dropped.
    pub fn reject(self) {
        let _ = self.to.send(Settle::Reject(self.tag));
    }
}
