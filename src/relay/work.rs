//! A destination's work by link: what waits, what is being delivered (with
//! the broker acknowledgements it owes), which links are busy or held by a
//! dead letter. The scheduler and both inboxes share it.

use super::backlog::Backlog;
use crate::bus::ack::Ack;
use crate::store::Envelope;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Default)]
pub(super) struct Work {
    pub(super) backlog: Backlog,
    /// The seqs being delivered right now, each with the broker
    /// acknowledgements it owes (none from the outbox).
    pub(super) owed: HashMap<u64, Vec<Ack>>,
    /// Links with a delivery under way: one at a time per link.
    pub(super) busy: HashSet<Uuid>,
    /// Links held behind a dead letter until the operator deals with it.
    pub(super) blocked: HashSet<Uuid>,
    /// The link, seq and message of each delivery task, to know what a
    /// panicking one was doing (and, with a broker, what to park).
    pub(super) running: HashMap<tokio::task::Id, (Uuid, u64, Arc<Envelope>)>,
}

/// Hands the acknowledgements to their consumer, which sends them. A lost
/// one means the channel is gone: the broker delivers again and the
/// applied set turns the repeat into a no-op.
pub(super) fn ack_all(acks: Vec<Ack>) {
    for a in acks {
        a.ack();
    }
}
