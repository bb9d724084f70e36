//! An endpoint's visibility policy and the transfer rules between endpoints.

use crate::event::Status;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The endpoint's own side of the visibility rules. The sending side owns
/// what leaves; the receiving side owns how it lands.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Ticket content that may leave this system besides the subject:
    /// `description`, `priority`, `due`, `attachments`, `author_name` (who
    /// wrote a comment or opened the ticket; without it partners see this
    /// company's name), `author_email` (with `author_name`), or
    /// a key of the ticket's fields (`site`, `equipment`, `client_phone`...);
    /// `"*"` for everything (a partner gateway that filtered already).
    #[serde(default = "default_allowed_fields")]
    pub allowed_fields: Vec<String>,
    /// Public comments here are the conversation with this ticket's
    /// requester (the client); they go downstream only when this is true.
    #[serde(default)]
    pub share_client_conversation: bool,
    /// How comments from a downstream partner land here: `internal`
    /// (a note marked with the partner's name) or `public` (forwarded to
    /// the requester).
    #[serde(default = "default_partner_comments")]
    pub partner_comments: Landing,
    /// This system's status changes are sent to partners.
    #[serde(default = "default_true")]
    pub share_status: bool,
    /// Partner status → status set here; a status not listed is mirrored,
    /// one mapped to nothing is only noted.
    #[serde(default)]
    pub status_from_partner: BTreeMap<Status, Option<Status>>,
    /// This system shows its partner's ticket id and status: in the
    /// fields `partner_ticket` and `partner_status` (a REST endpoint's
    /// custom fields where `custom_fields` names them, else an internal
    /// note per change; a webhook's `field_changed` events; a new ticket
    /// carries its upstream ticket's id in its fields). A REST endpoint
    /// that also names `upstream_ticket` and `upstream_status` shows the
    /// company that handed the work over there, apart from the partner it
    /// was handed on to (a ticket in the middle of a chain has both).
    #[serde(default = "default_true")]
    pub show_partner: bool,
}

fn default_allowed_fields() -> Vec<String> {
    ["description", "priority", "due", "attachments"]
        .map(String::from)
        .to_vec()
}
fn default_partner_comments() -> Landing {
    Landing::Internal
}
fn default_true() -> bool {
    true
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            allowed_fields: default_allowed_fields(),
            share_client_conversation: false,
            partner_comments: default_partner_comments(),
            share_status: true,
            status_from_partner: BTreeMap::new(),
            show_partner: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Landing {
    Internal,
    Public,
}

/// Hands a ticket of `from` to `to` when it appears (or when it matches
/// `when`), creating the linked ticket and the link.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRule {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// All given parts must hold for the ticket as last seen.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Field name → required value.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}
