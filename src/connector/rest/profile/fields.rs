//! Where a product keeps the ticket's fields beyond subject and
//! description (priority, due time, custom fields), and its priorities to
//! and from the canonical ones. How they are written and read is
//! `rest::fields`.

use super::requests::Request;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The canonical priorities every profile maps to and from; any other
/// value crosses as text.
pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

/// Where the product keeps the fields it has a place for.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldPlaces {
    /// The ticket's priority (values through `[priorities]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<FieldPlace>,
    /// The ticket's due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<FieldPlace>,
    /// The product's custom fields: the endpoint's `custom_fields` names
    /// which canonical field goes into which of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomPlace>,
    /// The request that changes fields of an existing ticket (`{{ticket}}`);
    /// its body is each changed field's `write`, merged into this body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Request>,
}

/// One field's place in the product.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldPlace {
    /// Pointer to the value in a ticket (read_ticket's answer at
    /// `ticket.root`).
    pub read: String,
    /// JSON merged into create_ticket's body and into `update`'s:
    /// `{{value}}` is the product's value.
    pub write: Value,
    /// The field's name in the history's changes (`journal.change_field`),
    /// where the product records its changes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// How the product writes the time (chrono strftime, UTC), for `due`:
    /// `%Y-%m-%d` for a date. RFC 3339 without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The product's custom fields: an array of items (Redmine's, RT's), or
/// keys of the ticket itself (django-helpdesk's `custom_site`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomPlace {
    /// Pointer to the array of the ticket's custom fields; without it,
    /// `value` is a pointer into the ticket naming `{{id}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// In one item: its id (what the endpoint's `custom_fields` names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// In one item: its value (or, without `list`, in the ticket:
    /// `/custom_{{id}}`).
    pub value: String,
    /// JSON merged into the bodies for each field: `{{id}}`, `{{value}}`.
    pub write: Value,
    /// A change's field name in the history, `{{id}}` being the custom
    /// field's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// The product's priorities to and from the canonical ones (low, normal,
/// high, urgent).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityMap {
    /// Product value → canonical priority.
    #[serde(default)]
    pub inbound: BTreeMap<String, String>,
    /// For a numeric scale (RT's 0–99): each canonical priority from the
    /// value given on, e.g. `{ "0" = "low", "25" = "normal" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inbound_from: BTreeMap<String, String>,
    /// Canonical priority → product value.
    #[serde(default)]
    pub outbound: BTreeMap<String, String>,
}

impl PriorityMap {
    /// The canonical priority of a product value; the value itself when the
    /// map has none (it then crosses as text).
    pub fn to_canonical(&self, value: &str) -> String {
        if let Some(c) = self.inbound.get(value) {
            return c.clone();
        }
        if let Ok(n) = value.trim().parse::<f64>() {
            let from = self
                .inbound_from
                .iter()
                .filter_map(|(k, c)| Some((k.parse::<f64>().ok()?, c)))
                .filter(|(k, _)| *k <= n)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, c)) = from {
                return c.clone();
            }
        }
        value.to_string()
    }

    pub fn extend(&mut self, other: &PriorityMap) {
        self.inbound.extend(other.inbound.clone());
        self.inbound_from.extend(other.inbound_from.clone());
        self.outbound.extend(other.outbound.clone());
    }
}
