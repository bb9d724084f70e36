//! What can go wrong in the REST connector's own logic (the product's
//! answers are `SinkError`s, classified by `client.rs`): an endpoint's
//! settings, a field's value, a file read from the product.

use super::template::TemplateError;

/// A setting the profile's templates name and the endpoint lacks. The
/// text is the path under `endpoints.X.rest` to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("project: the profile needs it")]
    MissingProject,
    #[error("settings.{name}: the profile needs it")]
    Missing { name: String },
}

/// Why one field cannot be written in its place.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    /// A priority the endpoint's map has no product value for.
    #[error("no product priority for {value:?} (known: {known}; add it to the endpoint's rest.priorities.outbound)")]
    NoPriority { value: String, known: String },
    #[error("due time {value:?} is not an RFC 3339 time")]
    BadDue { value: String },
    #[error("no place for the field {field}")]
    NoPlace { field: String },
    /// The profile's write template for the field.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// A field of several that cannot be written, named.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {source}")]
pub struct FieldsError {
    pub field: String,
    pub source: FieldError,
}

/// A file of the product's that is not taken: larger than the file store
/// keeps. Named in the comment it came with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("larger than {max} bytes (daemon.max_file_bytes)")]
pub struct TooLarge {
    pub max: u64,
}

/// A file's content in a JSON answer that is not the base64 expected.
#[derive(Debug, thiserror::Error)]
pub enum Base64Error {
    #[error("the file's content is not base64: {0}")]
    NotBase64(base64::DecodeError),
    #[error("the file's content has an escape \\{0} that base64 never has")]
    Escape(char),
    #[error("the answer has no complete file content")]
    Incomplete,
    #[error("the file's content is cut short (not whole base64)")]
    CutShort,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_texts_say_what_to_set_or_what_is_wrong() {
        assert_eq!(
            SettingsError::MissingProject.to_string(),
            "project: the profile needs it"
        );
        assert_eq!(
            SettingsError::Missing {
                name: "queue".into()
            }
            .to_string(),
            "settings.queue: the profile needs it"
        );
        let e = FieldsError {
            field: "due".into(),
            source: FieldError::BadDue {
                value: "tomorrow".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "due: due time \"tomorrow\" is not an RFC 3339 time"
        );
        assert_eq!(
            Base64Error::Escape('u').to_string(),
            "the file's content has an escape \\u that base64 never has"
        );
        assert_eq!(
            TooLarge { max: 999 }.to_string(),
            "larger than 999 bytes (daemon.max_file_bytes)"
        );
    }
}
