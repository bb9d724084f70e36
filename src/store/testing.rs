//! What the store's unit tests share.

use super::records::Envelope;
use crate::event::{Event, EventKind, Status};
use crate::link::Link;

/// A status change on `link`, for `dest`.
pub(super) fn env(link: &Link, dest: &str) -> Envelope {
    Envelope {
        link_id: link.id,
        dest: dest.into(),
        origin: "a".into(),
        accepted_at: None,
        after: None,
        event: Event::new(
            "T1",
            EventKind::StatusChanged {
                status: Status::Resolved,
            },
        ),
    }
}
