//! A REST profile: everything product-specific about a help desk's API, as
//! data (connectors/*.toml). One engine reads every profile.

use super::template::{self, TemplateError};
use crate::event::Status;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Profiles shipped with deskbridge, by the name `profile = "..."` uses.
const SHIPPED: &[(&str, &str)] = &[
    (
        "redmine",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/redmine.toml"
        )),
    ),
    (
        "rt",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/connectors/rt.toml")),
    ),
    (
        "zendesk",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/zendesk.toml"
        )),
    ),
    (
        "freshdesk",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/freshdesk.toml"
        )),
    ),
    (
        "servicenow",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/servicenow.toml"
        )),
    ),
    (
        "zammad",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/zammad.toml"
        )),
    ),
    (
        "jira-sm",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/jira-sm.toml"
        )),
    ),
    (
        "glpi",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/connectors/glpi.toml")),
    ),
    (
        "django-helpdesk",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/django-helpdesk.toml"
        )),
    ),
    (
        "okdesk",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/okdesk.toml"
        )),
    ),
];

pub fn shipped_names() -> Vec<&'static str> {
    SHIPPED.iter().map(|(n, _)| *n).collect()
}

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
    pub fields: super::fields::FieldPlaces,
    /// The product's priorities to and from the canonical ones.
    #[serde(default)]
    pub priorities: super::fields::PriorityMap,
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
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookProfile {
    /// How an administrator makes the product send them, in words.
    pub setup: String,
    /// Pointer to the ticket's id in the product's payload (for the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// How the product signs its webhooks with the endpoint's
    /// `webhook_secret`. Without it, the secret is a token the product
    /// sends as `?token=` in the URL or in the `X-Deskbridge-Token` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<WebhookSignature>,
}

/// HMAC-SHA256 of (the timestamp header's value, when named, then) the
/// body, in a header.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSignature {
    /// The header carrying the signature.
    pub header: String,
    /// A header whose value is signed before the body (Zendesk's
    /// `X-Zendesk-Webhook-Signature-Timestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    pub encoding: SignatureEncoding,
    /// Text before the signature in the header (`sha256=`).
    #[serde(default)]
    pub prefix: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    Base64,
    Hex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// The credential in the header `name`.
    Header,
    /// `Authorization: Bearer <credential>`.
    Bearer,
    /// `Authorization: Basic`, the endpoint's `username` and the credential.
    Basic,
    /// The credential in the query parameter `name`.
    Query,
    /// A session opened with the credential (`auth.session`), its token
    /// sent on every request and opened again when refused (GLPI).
    Session,
}

/// How a session is opened: one request whose headers carry the
/// credential (`{{credential}}`), and where its token is in the answer.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionLogin {
    pub method: Method,
    pub path: String,
    /// Headers of the login request: templates with `{{credential}}` and
    /// the endpoint's settings.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Pointer to the session token in the answer.
    pub token: String,
    /// The header that carries the token afterwards.
    pub header: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub kind: AuthKind,
    /// Header or query parameter name (for `header` and `query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Written before the credential in the header (`"token "` for
    /// `Authorization: token ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// With `basic`: a fixed password, the credential being the user name
    /// (Freshdesk's API key with the password `X`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// With `session`: how the session is opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionLogin>,
    /// Headers sent with every request (the login included): templates
    /// with the endpoint's settings (GLPI's `App-Token`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

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

/// JSON pointers into one ticket.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPointers {
    /// Where the ticket is in read_ticket's answer ("" for the whole answer).
    pub root: String,
    /// Where the array of tickets is in list_changes' answer.
    pub list: String,
    pub id: String,
    pub subject: String,
    pub description: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    pub author_id: String,
    pub author_name: String,
    pub created_at: String,
    pub updated_at: String,
}

/// JSON pointers into a ticket's history: one entry per change, carrying a
/// comment, field changes or both.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JournalPointers {
    /// The array of entries, inside the ticket.
    pub list: String,
    pub id: String,
    pub author_id: String,
    pub author_name: String,
    /// The kind of the entry's author (with `identity.kind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_kind: Option<String>,
    /// When the entry was made. An entry without a time (Okdesk's
    /// comments) is read in every round its ticket is listed, and taken
    /// once by its id.
    pub created_at: String,
    /// The comment text (absent or empty: no comment). With
    /// `entry_content`, the text read there is put here.
    pub text: String,
    /// A boolean: the comment is an internal note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<String>,
    /// A boolean: the comment is public (false: an internal note), for
    /// products that flag the other way (Zendesk, Okdesk, Jira).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// The first entry is the ticket's description, never a comment
    /// (Zendesk's first comment, Zammad's first article).
    #[serde(default)]
    pub first_is_description: bool,
    /// The entry's kind, for products whose history mixes kinds of entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Kinds whose text is a comment (empty: any entry with text).
    #[serde(default)]
    pub comment_kinds: Vec<String>,
    /// Kinds whose comment is an internal note.
    #[serde(default)]
    pub internal_kinds: Vec<String>,
    /// Kinds whose text is the ticket's description (when the ticket has
    /// none at `ticket.description`); never a comment.
    #[serde(default)]
    pub description_kinds: Vec<String>,
    /// The array of field changes of an entry; "" when each entry is
    /// itself one field change.
    #[serde(default)]
    pub changes: String,
    /// In one field change: the field's name, and its new value.
    #[serde(default)]
    pub change_field: String,
    #[serde(default)]
    pub change_value: String,
    /// The field name of the status in the history. Without it the history
    /// carries no status changes: the poller compares the ticket's status
    /// with the one it saw last (kept with its cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_field: Option<String>,
    /// Pointer to the status an entry sets, for histories whose entries
    /// carry the new status without naming a field (django-helpdesk's
    /// `new_status`; null or absent: the entry sets none). Status changes
    /// are then read from the history, not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_value: Option<String>,
}

/// How files go with what deskbridge writes: a list of items put into the
/// body of create_ticket, add_comment and add_internal_note.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Files {
    /// A request per file, its body the file's bytes, answering a token the
    /// item then names (Redmine's uploads). Without it, each file is inside
    /// the item itself, base64 (`{{content_base64}}`, Request Tracker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadRequest>,
    /// Pointer to where the list of items goes in those bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_at: Option<String>,
    /// Where it goes in create_ticket's body, when that differs (Zammad's
    /// first article: `/article/attachments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_attach_at: Option<String>,
    /// One item: JSON whose strings are templates with `{{filename}}`,
    /// `{{content_type}}`, `{{size}}`, and `{{token}}` (with `upload`) or
    /// `{{content_base64}}` (alone in its string; streamed, never held
    /// whole in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<serde_json::Value>,
    /// Instead of `attach_at` and `item`: a request with files is sent as
    /// multipart/form-data, the JSON body in one part and each file in a
    /// part of its own (Request Tracker, whose JSON attachments refuse
    /// non-Latin file names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<Multipart>,
    /// How many files create_ticket takes (django-helpdesk's one
    /// `attachment`); the others are named in the description. No limit
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_files: Option<usize>,
    /// The only file name extensions the product takes (`.pdf`, any
    /// case; `""` for a name without one); the others are named in the
    /// text instead of being refused with the whole comment.
    /// django-helpdesk's HELPDESK_VALID_EXTENSIONS. Any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<String>>,
    /// How the files of a history entry are found and downloaded. Without
    /// it, files written in the product do not cross.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<FileRead>,
}

/// The names of the parts of a multipart request.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Multipart {
    /// The part holding the request's JSON body. Without it, each of the
    /// body's top-level fields is a form field of its own (strings as they
    /// are, numbers and booleans as written in JSON, null left out), as
    /// Django REST Framework reads a form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// The name of each file's part.
    pub file: String,
    /// Its name in create_ticket, when that differs (django-helpdesk:
    /// `attachment` there, `attachments` on a follow-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_file: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    pub method: Method,
    /// With `{{filename}}`, `{{content_type}}`, `{{size}}`.
    pub path: String,
    /// Pointer to the token in the answer.
    pub token: String,
    /// The upload's content type, a template (`{{content_type}}`: the
    /// file's own); default `application/octet-stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// Where a history entry's files are: a list in the entry (Redmine's
/// journal details naming an attachment), or the parts `entry_content`
/// read (Request Tracker's transaction attachments); and how each is
/// downloaded.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRead {
    /// Pointer to the entry's list of file references; absent: the parts
    /// `entry_content` read, those with a file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_list: Option<String>,
    /// Only references whose value at this pointer is `is` (a journal
    /// detail of property "attachment").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is: Option<String>,
    /// In a reference: the file's id.
    pub entry_id: String,
    /// Pointer to the ticket's list of files (with `entry_list`), where
    /// each file's name, type, size and address are; absent: they are in
    /// the reference itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_list: Option<String>,
    /// In a file: its id (in `ticket_list`), name, content type and size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Download: a pointer to the file's own address (absolute, or a path
    /// under `base_url`) answering its bytes...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The address may be on another host (a storage service's signed
    /// address, Freshdesk's attachment_url): fetched there without the
    /// credentials. Redirects are followed the same way either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub elsewhere: bool,
    /// ...or a request with `{{file}}` (the file's id) answering JSON with
    /// the base64 content at `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Without `content`, `path` answers the file's bytes themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Further values `path` names, each a pointer into the history entry
    /// (Zammad's `{{article}}` = `/id`, `{{ticket}}` = `/ticket_id`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub path_vars: BTreeMap<String, String>,
}

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

/// How deskbridge's writes read. Both must carry `{{marker}}`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Format {
    /// A transferred ticket's description: `{{description}}`, `{{marker}}`.
    pub description: String,
    /// A relayed comment: `{{body}}`, `{{sender}}` (author and company),
    /// `{{marker}}`.
    pub comment: String,
    /// One line of the fields block (`{{fields}}` in `description`, else
    /// after the description): a field the product has no place for,
    /// `{{name}}` and `{{value}}`.
    #[serde(default = "default_field_line")]
    pub field_line: String,
    /// A later change of a field the product has no place for, written as
    /// an internal note: `{{sender}}`, `{{name}}`, `{{value}}`, `{{marker}}`.
    #[serde(default = "default_field_note")]
    pub field_note: String,
}

fn default_field_line() -> String {
    "{{name}}: {{value}}".into()
}

fn default_field_note() -> String {
    "{{sender}} changed {{name}}: {{value}}\n\n{{marker}}".into()
}

/// The variables each template may use, besides the endpoint's settings.
const TICKET_VARS: &[&str] = &["ticket"];
/// What a new ticket's templates may name: its fields (the product's own
/// values of priority and due; `field.site` and the like as sent; `fields`
/// the text block of those with no place in the product).
const TICKET_FIELD_VARS: &[&str] = &[
    "subject",
    "description",
    "marker",
    "priority",
    "due",
    "fields",
    "field.*",
];

impl Profile {
    /// A shipped profile by name, or a profile file.
    pub fn load(name: Option<&str>, file: Option<&Path>) -> Result<Profile, String> {
        let text = match (name, file) {
            (Some(n), None) => SHIPPED
                .iter()
                .find(|(s, _)| *s == n)
                .map(|(_, t)| t.to_string())
                .ok_or_else(|| {
                    format!(
                        "no shipped profile {n:?} (shipped: {})",
                        shipped_names().join(", ")
                    )
                })?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            (Some(_), Some(_)) => return Err("give `profile` or `profile_file`, not both".into()),
            (None, None) => {
                return Err(format!(
                    "give `profile` (shipped: {}) or `profile_file`",
                    shipped_names().join(", ")
                ))
            }
        };
        Profile::parse(&text)
    }

    /// Parses and checks a profile; problems are named by their path in it.
    pub fn parse(text: &str) -> Result<Profile, String> {
        let de = toml::Deserializer::new(text);
        let p: Profile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner().message().trim())
        })?;
        let problems = p.problems();
        if problems.is_empty() {
            Ok(p)
        } else {
            Err(problems.join("; "))
        }
    }

    /// Every setting name a template may use: the required ones and those
    /// with a default.
    pub fn setting_names(&self) -> Vec<&str> {
        self.required_settings
            .iter()
            .map(String::as_str)
            .chain(self.defaults.keys().map(String::as_str))
            .collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if matches!(self.auth.kind, AuthKind::Header | AuthKind::Query) && self.auth.name.is_none()
        {
            p.push("auth.name: needed with kind header or query".into());
        }
        match (&self.auth.session, self.auth.kind) {
            (None, AuthKind::Session) => p.push("auth.session: needed with kind session".into()),
            (Some(_), k) if k != AuthKind::Session => {
                p.push("auth.session: only with kind session".into())
            }
            _ => {}
        }
        let settings = self.setting_names();
        let mut later: Vec<String> = Vec::new();
        let mut check = |at: &str, templates: Vec<String>, extra: &[&str]| {
            for t in templates {
                match template::placeholders(&t) {
                    Err(e) => p.push(format!("{at}: {e}")),
                    Ok(names) => {
                        for n in names {
                            // `field.*`: any field of the ticket, by name.
                            let any_field = n.starts_with("field.") && extra.contains(&"field.*");
                            if !settings.contains(&n.as_str())
                                && !extra.contains(&n.as_str())
                                && !any_field
                            {
                                p.push(format!("{at}: {}", TemplateError::Unknown(n.clone())));
                            }
                        }
                    }
                }
            }
        };
        let with_body = |path: &str, body: &Option<serde_json::Value>| {
            let mut all = vec![path.to_string()];
            if let Some(b) = body {
                template::json_strings(b, &mut all);
            }
            all
        };
        check(
            "create_ticket",
            with_body(&self.create_ticket.path, &self.create_ticket.body),
            TICKET_FIELD_VARS,
        );
        check(
            "find_ticket",
            vec![self.find_ticket.path.clone()],
            &["marker", "subject"],
        );
        check(
            "add_comment",
            with_body(&self.add_comment.path, &self.add_comment.body),
            &["ticket", "text"],
        );
        check(
            "add_internal_note",
            with_body(&self.add_internal_note.path, &self.add_internal_note.body),
            &["ticket", "text"],
        );
        check(
            "set_status",
            with_body(&self.set_status.path, &self.set_status.body),
            &["ticket", "status"],
        );
        check(
            "read_ticket",
            with_body(&self.read_ticket.path, &self.read_ticket.body),
            TICKET_VARS,
        );
        check(
            "list_changes",
            vec![self.list_changes.path.clone()],
            &["since", "offset", "page", "limit", "last"],
        );
        if let Some(h) = &self.history {
            check(
                "history",
                vec![h.path.clone()],
                &["ticket", "page", "offset", "limit", "last"],
            );
            if h.page_size == 0 {
                later.push("history.page_size: must be at least 1".into());
            }
        }
        if let Some(c) = &self.entry_content {
            check("entry_content", vec![c.path.clone()], &["entry"]);
            for (at, ptr) in [
                ("entry_content.list", &c.list),
                ("entry_content.text", &c.text),
                ("entry_content.content_type", &c.content_type),
            ] {
                if !ptr.starts_with('/') {
                    later.push(format!(
                        "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                    ));
                }
            }
            if let Some(part) = &c.part {
                check("entry_content.part", vec![part.path.clone()], &["part"]);
                for (at, ptr) in [
                    ("entry_content.part.id", &part.id),
                    ("entry_content.part.text", &part.text),
                ] {
                    if !ptr.starts_with('/') {
                        later.push(format!(
                            "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                        ));
                    }
                }
            }
            if !c.kinds.is_empty() && self.journal.kind.is_none() {
                later.push("entry_content.kinds: needs journal.kind".into());
            }
        }
        let kinds_used = !self.journal.comment_kinds.is_empty()
            || !self.journal.internal_kinds.is_empty()
            || !self.journal.description_kinds.is_empty();
        if kinds_used && self.journal.kind.is_none() {
            later.push(
                "journal.kind: needed with comment_kinds, internal_kinds or description_kinds"
                    .into(),
            );
        }
        let mut auth_templates: Vec<String> = self.auth.headers.values().cloned().collect();
        if let Some(sess) = &self.auth.session {
            auth_templates.push(sess.path.clone());
            auth_templates.extend(sess.headers.values().cloned());
            if !sess.token.starts_with('/') {
                later.push(format!(
                    "auth.session.token: a JSON pointer starts with '/' (got {:?})",
                    sess.token
                ));
            }
        }
        check("auth", auth_templates, &["credential"]);
        let id = &self.identity;
        check(
            "identity",
            id.path.iter().chain(id.user.iter()).cloned().collect(),
            &["service_account"],
        );
        match (&id.method, &id.path, &id.user) {
            (Some(_), Some(_), None) => {}
            (None, None, Some(_)) => {}
            _ => later.push(
                "identity: give method and path (a request, with user_id and login), or user (no request)"
                    .into(),
            ),
        }
        if id.kind.is_some() != self.journal.author_kind.is_some() {
            later.push("identity.kind and journal.author_kind: give both or neither".into());
        }
        check(
            "format.description",
            vec![self.format.description.clone()],
            TICKET_FIELD_VARS,
        );
        check(
            "format.field_line",
            vec![self.format.field_line.clone()],
            &["name", "value"],
        );
        check(
            "format.field_note",
            vec![self.format.field_note.clone()],
            &["sender", "name", "value", "marker"],
        );
        if !self.format.field_note.contains("{{marker}}") {
            later.push("format.field_note: must carry {{marker}}".into());
        }
        let fp = &self.fields;
        for (at, place) in [("fields.priority", &fp.priority), ("fields.due", &fp.due)] {
            let Some(place) = place else { continue };
            let mut all = vec![];
            template::json_strings(&place.write, &mut all);
            check(&format!("{at}.write"), all, &["value"]);
            if !place.read.starts_with('/') {
                later.push(format!(
                    "{at}.read: a JSON pointer starts with '/' (got {:?})",
                    place.read
                ));
            }
        }
        if let Some(c) = &fp.custom {
            let mut all = vec![];
            template::json_strings(&c.write, &mut all);
            check("fields.custom.write", all, &["id", "value"]);
            check(
                "fields.custom.change",
                c.change.iter().cloned().collect(),
                &["id"],
            );
            match (&c.list, &c.id) {
                (Some(_), Some(_)) => {}
                (None, None) => check("fields.custom.value", vec![c.value.clone()], &["id"]),
                _ => later.push(
                    "fields.custom: give list and id (an array of items), or neither (value names {{id}} in the ticket)"
                        .into(),
                ),
            }
        }
        if let Some(u) = &fp.update {
            check("fields.update", with_body(&u.path, &u.body), &["ticket"]);
        }
        for (at, value) in self
            .priorities
            .outbound
            .keys()
            .map(|k| ("priorities.outbound", k))
            .chain(
                self.priorities
                    .inbound
                    .values()
                    .map(|v| ("priorities.inbound", v)),
            )
            .chain(
                self.priorities
                    .inbound_from
                    .values()
                    .map(|v| ("priorities.inbound_from", v)),
            )
        {
            if !super::fields::PRIORITIES.contains(&value.as_str()) {
                later.push(format!(
                    "{at}: {value:?} is not a canonical priority ({})",
                    super::fields::PRIORITIES.join(", ")
                ));
            }
        }
        check(
            "format.comment",
            vec![self.format.comment.clone()],
            &["body", "sender", "marker"],
        );
        if let Some(f) = &self.files {
            match (&f.attach_at, &f.item, &f.multipart) {
                (Some(_), Some(_), None) => {}
                (None, None, Some(_)) if f.upload.is_none() => {}
                _ => later.push(
                    "files: give attach_at and item (files named in the JSON body), or multipart (without upload)"
                        .into(),
                ),
            }
            let mut item = Vec::new();
            if let Some(i) = &f.item {
                template::json_strings(i, &mut item);
            }
            let mut extra = vec!["filename", "content_type", "size"];
            extra.push(if f.upload.is_some() {
                "token"
            } else {
                "content_base64"
            });
            check("files.item", item.clone(), &extra);
            let names: Vec<String> = item
                .iter()
                .filter_map(|t| template::placeholders(t).ok())
                .flatten()
                .collect();
            let needed = extra[3];
            if f.item.is_some() && !names.iter().any(|n| n == needed) {
                later.push(format!(
                    "files.item: must name {{{{{needed}}}}} (how the file itself is sent)"
                ));
            }
            if item
                .iter()
                .any(|t| t.contains("{{content_base64}}") && t.trim() != "{{content_base64}}")
            {
                later.push("files.item: {{content_base64}} must be alone in its string".into());
            }
            if let Some(u) = &f.upload {
                check(
                    "files.upload",
                    vec![u.path.clone()],
                    &["filename", "content_type", "size"],
                );
                if !u.token.starts_with('/') {
                    later.push(format!(
                        "files.upload.token: a JSON pointer starts with '/' (got {:?})",
                        u.token
                    ));
                }
            }
            for (key, at) in [
                ("files.attach_at", &f.attach_at),
                ("files.ticket_attach_at", &f.ticket_attach_at),
            ] {
                if let Some(at) = at.as_ref().filter(|a| !a.starts_with('/')) {
                    later.push(format!(
                        "{key}: a JSON pointer starts with '/' (got {at:?})"
                    ));
                }
            }
            // A form sends each top-level field as text: a nested one
            // would arrive as JSON text, which no form reader takes.
            if f.multipart.as_ref().is_some_and(|m| m.json.is_none()) {
                for (at, body) in [
                    ("create_ticket", &self.create_ticket.body),
                    ("add_comment", &self.add_comment.body),
                    ("add_internal_note", &self.add_internal_note.body),
                ] {
                    let fields = body.as_ref().and_then(|b| b.as_object());
                    for (k, v) in fields.into_iter().flatten() {
                        if v.is_object() || v.is_array() {
                            later.push(format!(
                                "{at}.body.{k}: files.multipart without `json` sends each field as a form field, and this one is not flat (give `json`, or a flat body)"
                            ));
                        }
                    }
                }
            }
            if let Some(r) = &f.read {
                later.extend(r.problems(self.entry_content.is_some()));
                if let Some(path) = &r.path {
                    let mut names = vec!["file"];
                    names.extend(r.path_vars.keys().map(String::as_str));
                    check("files.read.path", vec![path.clone()], &names);
                }
            }
        }
        p.append(&mut later);
        for (at, t) in [
            ("format.description", &self.format.description),
            ("format.comment", &self.format.comment),
        ] {
            if !t.contains("{{marker}}") {
                p.push(format!(
                    "{at}: must contain {{{{marker}}}} (how deskbridge finds its own writes)"
                ));
            }
        }
        if self.list_changes.page_size == 0 {
            p.push("list_changes.page_size: must be at least 1".into());
        }
        let slash = "/".to_string();
        // Arrays may be the whole answer (Freshdesk's conversations).
        for (at, ptr) in [
            ("journal.changes", &self.journal.changes),
            ("journal.list", &self.journal.list),
            ("ticket.list", &self.ticket.list),
        ] {
            if !ptr.is_empty() && !ptr.starts_with('/') {
                p.push(format!(
                    "{at}: a JSON pointer starts with '/' or is empty (got {ptr:?})"
                ));
            }
        }
        if self.journal.internal.is_some() && self.journal.public.is_some() {
            p.push("journal.internal, journal.public: give one of them".into());
        }
        let lp = &self.list_changes;
        let count = lp.from_end.as_ref().map(|f| f.count.clone());
        for (at, ptr) in [
            ("list_changes.list", &lp.list),
            ("list_changes.id", &lp.id),
            ("list_changes.updated_at", &lp.updated_at),
            ("list_changes.entries", &lp.entries),
            ("list_changes.from_end.count", &count),
            ("journal.status_value", &self.journal.status_value),
        ] {
            if let Some(ptr) = ptr {
                if !ptr.is_empty() && !ptr.starts_with('/') {
                    p.push(format!(
                        "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                    ));
                }
            }
        }
        let status_ptrs = if self.journal.status_field.is_some() {
            vec![
                ("journal.change_field", &self.journal.change_field),
                ("journal.change_value", &self.journal.change_value),
            ]
        } else {
            vec![]
        };
        let pointers = [
            ("create_ticket.ticket_id", &self.create_ticket.ticket_id),
            ("ticket.id", &self.ticket.id),
            ("ticket.subject", &self.ticket.subject),
            ("ticket.description", &self.ticket.description),
            ("ticket.status", &self.ticket.status),
            ("ticket.author_id", &self.ticket.author_id),
            ("ticket.author_name", &self.ticket.author_name),
            ("ticket.created_at", &self.ticket.created_at),
            ("ticket.updated_at", &self.ticket.updated_at),
            ("journal.id", &self.journal.id),
            ("journal.author_id", &self.journal.author_id),
            ("journal.author_name", &self.journal.author_name),
            ("journal.created_at", &self.journal.created_at),
            ("journal.text", &self.journal.text),
            (
                "journal.internal",
                self.journal.internal.as_ref().unwrap_or(&slash),
            ),
            (
                "journal.public",
                self.journal.public.as_ref().unwrap_or(&slash),
            ),
            ("journal.kind", self.journal.kind.as_ref().unwrap_or(&slash)),
        ];
        let identity_ptrs = if self.identity.path.is_some() {
            vec![
                ("identity.user_id", &self.identity.user_id),
                ("identity.login", &self.identity.login),
            ]
        } else {
            vec![]
        };
        for (at, ptr) in pointers.into_iter().chain(status_ptrs).chain(identity_ptrs) {
            if !ptr.starts_with('/') {
                p.push(format!(
                    "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                ));
            }
        }
        if !self.ticket.root.is_empty() && !self.ticket.root.starts_with('/') {
            p.push(format!(
                "ticket.root: a JSON pointer starts with '/' or is empty (got {:?})",
                self.ticket.root
            ));
        }
        p
    }
}

impl FileRead {
    fn problems(&self, entry_content: bool) -> Vec<String> {
        let mut p = Vec::new();
        let mut pointers = vec![
            ("files.read.entry_id", Some(&self.entry_id)),
            ("files.read.name", Some(&self.name)),
            ("files.read.content_type", Some(&self.content_type)),
            ("files.read.entry_list", self.entry_list.as_ref()),
            ("files.read.when", self.when.as_ref()),
            ("files.read.ticket_list", self.ticket_list.as_ref()),
            ("files.read.id", self.id.as_ref()),
            ("files.read.size", self.size.as_ref()),
            ("files.read.url", self.url.as_ref()),
            ("files.read.content", self.content.as_ref()),
        ];
        for (at, ptr) in pointers.drain(..) {
            if let Some(ptr) = ptr {
                if !ptr.starts_with('/') {
                    p.push(format!(
                        "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                    ));
                }
            }
        }
        if self.entry_list.is_none() && !entry_content {
            p.push("files.read.entry_list: needed without entry_content".into());
        }
        if self.when.is_some() != self.is.is_some() {
            p.push("files.read.when and files.read.is: give both or neither".into());
        }
        if self.ticket_list.is_some() && self.id.is_none() {
            p.push("files.read.id: needed with ticket_list".into());
        }
        match (&self.url, &self.path, &self.content) {
            (Some(_), None, None) | (None, Some(_), _) => {}
            _ => p.push(
                "files.read: give url (the file's address), or path (a request answering the file, or with content its base64)"
                    .into(),
            ),
        }
        for (name, ptr) in &self.path_vars {
            if !ptr.starts_with('/') {
                p.push(format!(
                    "files.read.path_vars.{name}: a JSON pointer starts with '/' (got {ptr:?})"
                ));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_are_valid() {
        for name in shipped_names() {
            let p = Profile::load(Some(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
            // every canonical status can be set
            for s in Status::ALL {
                assert!(p.statuses.outbound.contains_key(&s), "{name}: {s}");
            }
        }
    }

    #[test]
    fn file_fields_are_checked_by_path() {
        let redmine = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/redmine.toml"
        ));
        let err =
            Profile::parse(&redmine.replace("token = \"{{token}}\"", "token = \"x\"")).unwrap_err();
        assert!(err.contains("files.item: must name {{token}}"), "{err}");
        let err = Profile::parse(&redmine.replace(
            "filename = \"{{filename}}\"",
            "filename = \"{{content_base64}}\"",
        ))
        .unwrap_err();
        assert!(
            err.contains("files.item: unknown placeholder {{content_base64}}"),
            "{err}"
        );
        let err = Profile::parse(&redmine.replace("url = \"/content_url\"", "")).unwrap_err();
        assert!(err.contains("files.read: give url"), "{err}");
        let rt = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/connectors/rt.toml"));
        let err = Profile::parse(&rt.replace("multipart = {", "attach_at = \"/A\"\nmultipart = {"))
            .unwrap_err();
        assert!(err.contains("files: give attach_at and item"), "{err}");
        // A form's fields must be flat.
        let freshdesk = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/freshdesk.toml"
        ));
        let err = Profile::parse(&freshdesk.replace(
            "[create_ticket.body]\n",
            "[create_ticket.body]\ncc_emails = [\"a@example.net\"]\n",
        ))
        .unwrap_err();
        assert!(
            err.contains("create_ticket.body.cc_emails: files.multipart without `json`"),
            "{err}"
        );
    }

    #[test]
    fn problems_are_named_by_path() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/redmine.toml"
        ))
        .replace("\"/issues/{{ticket}}.json\"", "\"/issues/{{tiket}}.json\"")
        .replace(
            "comment = \"{{sender}} wrote:\\n\\n{{body}}\\n\\n{{marker}}\"",
            "comment = \"{{body}}\"",
        );
        let err = Profile::parse(&text).unwrap_err();
        assert!(
            err.contains("add_comment: unknown placeholder {{tiket}}"),
            "{err}"
        );
        assert!(
            err.contains("format.comment: must contain {{marker}}"),
            "{err}"
        );
        let err = Profile::parse("product = \"x\"\ncolour = 1\n").unwrap_err();
        assert!(err.contains("colour"), "{err}");
        assert!(Profile::load(Some("nosuch"), None)
            .unwrap_err()
            .contains("shipped: redmine, rt,"));
    }
}
