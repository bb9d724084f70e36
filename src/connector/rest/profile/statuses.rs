//! The product's statuses to and from deskbridge's canonical set.

use crate::event::Status;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The product's statuses to and from the canonical set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusMap {
    /// Product status value → canonical status.
    #[serde(default)]
    pub inbound: BTreeMap<String, Status>,
    /// Canonical status → product status value.
    #[serde(default)]
    pub outbound: BTreeMap<Status, String>,
    /// Canonical status → the status read back after setting it, where it
    /// differs from the value sent (Jira sets a status by a transition id).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub readback: BTreeMap<Status, String>,
}
