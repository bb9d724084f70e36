//! How files cross with a product: attached to what deskbridge writes
//! (items in the body, uploads, multipart), and found and downloaded in
//! the product's history.

use super::requests::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
