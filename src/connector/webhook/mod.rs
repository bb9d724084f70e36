//! The webhook connector: signed inbound events (a retail chain's dispatch
//! system, another deskbridge) and signed outbound deliveries.

pub mod component;
pub mod config;
pub mod inbound;
pub mod sign;
pub mod sink;
pub mod source;

use serde::{Deserialize, Serialize};

/// What a receiver answers to a delivery, all optional: the ticket it
/// created (for a transfer) and the id of what it wrote (for echo checks).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}
