//! The HTTP requests a profile names: method, path and body templates, and
//! the listing, history and entry-content requests with their paging.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
}

impl Method {
    pub fn http(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
        }
    }
}

/// One HTTP request: the path (with query) relative to the endpoint's
/// `base_url`, and a JSON body whose strings are `{{name}}` templates.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub method: Method,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub method: Method,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Pointer to the new ticket's id in the answer.
    pub ticket_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    pub method: Method,
    pub path: String,
    /// Tickets per page (`{{limit}}`); pages are walked with `{{offset}}`
    /// (0, limit, 2 limit...), `{{page}}` (1, 2, 3...) or a range
    /// `{{offset}}-{{last}}` (last = offset + limit - 1).
    pub page_size: u32,
    /// How `{{since}}` is written (chrono strftime, UTC); default
    /// `%Y-%m-%dT%H:%M:%SZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_format: Option<String>,
    /// How far each round looks back before the latest change seen
    /// (default 5 s): longer where the product lists a change late (a
    /// search index that lags, times by the minute). What is read again
    /// is recognised and not taken twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback_secs: Option<u32>,
    /// Where this answer differs from a ticket as read (a search that
    /// answers rows of numbered columns, GLPI's): the array of rows, and
    /// in a row the ticket's id and update time. Default: `ticket.list`,
    /// `ticket.id`, `ticket.updated_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The product cannot filter the list by `{{since}}` and lists every
    /// ticket (django-helpdesk): a listed ticket whose update time is
    /// before the window is not read. Only for exact times: a product that
    /// lists times rounded down would have changes skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfiltered: bool,
    /// Pointer to the next page's link in the answer (DRF's `/next`):
    /// null or absent means the last page, even when full (a product that
    /// refuses the page after the last one, as DRF does with a 404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The list cannot be filtered by `{{since}}` but runs oldest change
    /// first: it is read from its last page back to the window, so a round
    /// costs the pages that hold changes (an idle one: one request),
    /// however long the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_end: Option<FromEnd>,
    /// The list's items are history entries of every ticket (shaped as
    /// `journal` says), not tickets: the pointer to an entry's ticket id.
    /// A ticket deskbridge already knows is not read: its events come from
    /// its listed entries (their files listed in them). A ticket it does
    /// not know is read once (a new ticket; an old one is learnt as it
    /// stands, so that transfer rules and `deskbridge transfer` can hand
    /// it over). The sink looks for its own writes in the same list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<String>,
}

/// How a list is read from its end (`list_changes.from_end`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FromEnd {
    /// `{{page}}` of the first request, which the product answers with
    /// its last page (DRF's `last`).
    pub last: String,
    /// Pointer to the number of items in the whole list, in every answer
    /// (DRF's `/count`): the earlier pages are counted back from it.
    pub count: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    pub method: Method,
    /// With `{{ticket}}`, `{{page}}` (from 1), `{{offset}}` and `{{limit}}`.
    pub path: String,
    pub page_size: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentRequest {
    pub method: Method,
    /// With `{{entry}}`, the entry's id.
    pub path: String,
    /// Only entries of these kinds (`journal.kind`) are read; empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The array of parts in the answer.
    pub list: String,
    /// In one part: its text, and its content type.
    pub text: String,
    pub content_type: String,
    /// The content types taken as the entry's text, first match wins.
    pub text_types: Vec<String>,
    /// When set, `path` lists the parts without their content and the
    /// text part is read on its own: a file's bytes are never held in a
    /// listing (Request Tracker lists every part with all its content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<PartRequest>,
}

/// One part of an entry, read by its id.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartRequest {
    pub method: Method,
    /// With `{{part}}`, the part's id (at `id` in the listing).
    pub path: String,
    pub id: String,
    /// Pointer to the part's text in the answer; base64 when `base64`.
    pub text: String,
    #[serde(default)]
    pub base64: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRequest {
    /// The request that tells whom the credentials belong to; without
    /// one (the product has none), `user` names the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Pointer to the user's id (what the ticket history names).
    #[serde(default)]
    pub user_id: String,
    /// Pointer to the user's login (what `service_account` names).
    #[serde(default)]
    pub login: String,
    /// Without a request: the user's id, a template of the endpoint's
    /// settings (`{{author_id}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The kind of user deskbridge is, where ids of different kinds of
    /// users may be equal (Okdesk's employees and contacts): an entry is
    /// deskbridge's own only when `journal.author_kind` says this too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}
