//! How deskbridge's writes read in the product: the templates of a
//! transferred description, a relayed comment and a field change.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
