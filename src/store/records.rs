//! The records the store keeps as values: a queued message (`Envelope`,
//! with its link's previous one, `After`), what applying it did
//! (`Applied`), and a message given up on (`DeadLetter`).

use crate::event::Event;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One message on a destination's queue: an event as it should land, on
/// one link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub link_id: Uuid,
    pub dest: String,
    /// The endpoint the event came from.
    pub origin: String,
    /// The event as routed by policy; its `ticket` is the origin's ticket.
    pub event: Event,
    /// When deskbridge accepted the event, by its own clock: a write made
    /// for it at the destination cannot be older, so the search for one
    /// after a crash starts there. `None` in envelopes stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    /// The message its link sent to the same destination just before it,
    /// set when queued. A broker may hand out a link's messages out of
    /// order (it refused the earlier one of a publish batch and took the
    /// later): the relay applies this one only after that one. `None` for
    /// a link's first message, for envelopes stored before, and for a
    /// replayed dead letter (the operator's decision stands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<After>,
}

/// A link's previous message to a destination: its place in the queue,
/// and its event (whose record in the applied set says it is done).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct After {
    pub seq: u64,
    pub event: Uuid,
}

impl After {
    pub(super) fn encode(&self) -> [u8; 24] {
        let mut b = [0; 24];
        b[..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..].copy_from_slice(self.event.as_bytes());
        b
    }

    pub(super) fn decode(b: &[u8]) -> Option<After> {
        Some(After {
            seq: u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            event: Uuid::from_slice(b.get(8..24)?).ok()?,
        })
    }
}

/// What applying an envelope created at the destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The ticket created by a transfer.
    pub ticket: Option<String>,
    /// Ids of what was written (comments, transactions), for echo checks.
    pub remote_ids: Vec<String>,
    /// Given up by the operator, not applied: a late copy is absorbed,
    /// and changes nothing on the link (a status never set there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discarded: bool,
}

impl Applied {
    pub fn discarded() -> Applied {
        Applied {
            discarded: true,
            ..Applied::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub envelope: Envelope,
    /// The partner's own error text.
    pub error: String,
    pub attempts: u32,
    pub at: DateTime<Utc>,
    /// Broker: it gave up waiting for this message of its link (the seq),
    /// which the broker delivered neither before it nor since. Should that
    /// one come after the operator's replay or discard, it becomes a dead
    /// letter itself rather than land behind its successors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_for: Option<u64>,
}
