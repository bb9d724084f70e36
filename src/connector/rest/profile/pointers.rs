//! JSON pointers into a product's ticket and into its history entries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
