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
            upstream: Side {
                endpoint: upstream_endpoint.into(),
                ticket: Some(upstream_ticket.into()),
                status: None,
            },
            downstream: Side {
                endpoint: downstream_endpoint.into(),
                ticket: None,
                status: None,
            },
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
