//! A link: two tickets in two endpoints that are the same piece of work.

use crate::event::Status;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One end of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    pub endpoint: String,
    /// The ticket id in that endpoint; `None` until the transfer created it.
    pub ticket: Option<String>,
    /// The ticket's status as last seen by deskbridge.
    pub status: Option<Status>,
    /// Since when it has that status, by deskbridge's clock: when it saw
    /// the change, or made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_at: Option<DateTime<Utc>>,
    /// Whether deskbridge set that status here, relaying a partner's
    /// (rather than the company changing it itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status_relayed: bool,
    /// When this side first called the work done (resolved, closed or
    /// cancelled); cleared when it reopens. From `got_at`, how long this
    /// company held it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<DateTime<Utc>>,
    /// When deskbridge created this side's ticket: the hand-over landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub got_at: Option<DateTime<Utc>>,
}

impl Side {
    fn new(endpoint: &str, ticket: Option<&str>) -> Side {
        Side {
            endpoint: endpoint.into(),
            ticket: ticket.map(str::to_owned),
            status: None,
            status_at: None,
            status_relayed: false,
            done_at: None,
            got_at: None,
        }
    }

    /// Whether both are the same ticket (one not created yet is none).
    pub fn same_ticket(&self, other: &Side) -> bool {
        self.ticket.is_some() && self.endpoint == other.endpoint && self.ticket == other.ticket
    }

    /// Notes a status seen (or, `relayed`, set by deskbridge) at `at`. The
    /// same status again keeps its first time; done stays at its first
    /// time through resolved, closed or cancelled.
    pub fn set_status(&mut self, status: Status, at: DateTime<Utc>, relayed: bool) {
        if self.status != Some(status) {
            self.status = Some(status);
            self.status_at = Some(at);
            self.status_relayed = relayed;
        }
        if status.is_done() {
            self.done_at.get_or_insert(at);
        } else {
            self.done_at = None;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub id: Uuid,
    /// The side that handed the work over.
    pub upstream: Side,
    /// The side that does it.
    pub downstream: Side,
    pub created_at: DateTime<Utc>,
}

impl Link {
    pub fn new(upstream_endpoint: &str, upstream_ticket: &str, downstream_endpoint: &str) -> Link {
        Link {
            id: Uuid::now_v7(),
            upstream: Side::new(upstream_endpoint, Some(upstream_ticket)),
            downstream: Side::new(downstream_endpoint, None),
            created_at: Utc::now(),
        }
    }

    /// The side in `endpoint`, and the other one.
    pub fn sides(&self, endpoint: &str) -> Option<(&Side, &Side)> {
        if self.upstream.endpoint == endpoint {
            Some((&self.upstream, &self.downstream))
        } else if self.downstream.endpoint == endpoint {
            Some((&self.downstream, &self.upstream))
        } else {
            None
        }
    }

    pub fn side_mut(&mut self, endpoint: &str) -> Option<&mut Side> {
        if self.upstream.endpoint == endpoint {
            Some(&mut self.upstream)
        } else if self.downstream.endpoint == endpoint {
            Some(&mut self.downstream)
        } else {
            None
        }
    }

    /// Whether an event from `endpoint` travels downstream.
    pub fn is_upstream(&self, endpoint: &str) -> bool {
        self.upstream.endpoint == endpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A status keeps its first time; done is the first of resolved,
    /// closed or cancelled, and a reopening clears it.
    #[test]
    fn a_side_keeps_since_when_and_when_it_was_done() {
        let t = |m: u32| Utc.with_ymd_and_hms(2026, 12, 1, 9, m, 0).unwrap();
        let mut s = Side::new("vendor", Some("V-1"));
        s.set_status(Status::InProgress, t(0), false);
        s.set_status(Status::InProgress, t(5), true);
        assert_eq!(
            (s.status_at, s.done_at, s.status_relayed),
            (Some(t(0)), None, false)
        );
        s.set_status(Status::Resolved, t(10), true);
        s.set_status(Status::Closed, t(20), false);
        assert_eq!(s.status, Some(Status::Closed));
        assert_eq!((s.status_at, s.done_at), (Some(t(20)), Some(t(10))));
        s.set_status(Status::Reopened, t(30), true);
        assert_eq!(
            (s.status_at, s.done_at, s.status_relayed),
            (Some(t(30)), None, true)
        );
        s.set_status(Status::Cancelled, t(40), false);
        assert_eq!(s.done_at, Some(t(40)));
        // Stored before these fields were kept: still read.
        let old: Side =
            serde_json::from_str(r#"{"endpoint":"a","ticket":"1","status":"new"}"#).unwrap();
        assert_eq!((old.status_at, old.done_at), (None, None));
    }
}
