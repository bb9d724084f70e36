//! The profile's top table: every request, pointer and convention that
//! makes one help desk product's API usable by the one engine.

use super::auth::Auth;
use super::fields::{FieldPlaces, PriorityMap};
use super::files::Files;
use super::format::Format;
use super::pointers::{JournalPointers, TicketPointers};
use super::rate_limit::RateLimitHeaders;
use super::requests::{
    ContentRequest, CreateRequest, HistoryRequest, IdentityRequest, ListRequest, Request,
};
use super::statuses::StatusMap;
use super::webhook::WebhookProfile;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The product and version, as operators know it.
    pub product: String,
    /// Settings the endpoint must give (`project`, `queue`...), by name.
    #[serde(default)]
    pub required_settings: Vec<String>,
    /// Values of optional settings when the endpoint gives none.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    pub auth: Auth,
    pub identity: IdentityRequest,
    pub create_ticket: CreateRequest,
    pub find_ticket: Request,
    pub add_comment: Request,
    pub add_internal_note: Request,
    pub set_status: Request,
    pub read_ticket: Request,
    pub list_changes: ListRequest,
    /// Where the ticket's history is read when it is not inside the ticket
    /// (Request Tracker's transactions): paged, `journal.list` in each page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryRequest>,
    /// Where an entry's text is read when the history does not carry it
    /// (Request Tracker's transaction attachments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_content: Option<ContentRequest>,
    pub ticket: TicketPointers,
    pub journal: JournalPointers,
    pub statuses: StatusMap,
    /// Where the product keeps priority, due time and custom fields; what
    /// has no place here is written into the text.
    #[serde(default)]
    pub fields: FieldPlaces,
    /// The product's priorities to and from the canonical ones.
    #[serde(default)]
    pub priorities: PriorityMap,
    pub format: Format,
    /// How files cross. Without it, files are not sent: a comment names
    /// them instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Files>,
    /// How the product writes times that are not RFC 3339 (chrono
    /// strftime; read as UTC when it has no offset): ServiceNow's and
    /// GLPI's `2024-05-01 10:00:00`, Jira's `+0000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_format: Option<String>,
    /// The webhooks the product can send. A webhook only wakes the poll:
    /// what changed is always read through the API with deskbridge's own
    /// credentials, so a forged or replayed webhook costs a poll, never
    /// carries content, and a lost one costs at most `poll_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookProfile>,
    /// The product's quota headers, where it documents them: when an
    /// answer says none is left, every request waits for the reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitHeaders>,
}

impl Profile {
    /// Every setting name a template may use: the required ones and those
    /// with a default.
    pub fn setting_names(&self) -> Vec<&str> {
        self.required_settings
            .iter()
            .map(String::as_str)
            .chain(self.defaults.keys().map(String::as_str))
            .collect()
    }
}
