//! What can stop the connectors from being built at start: each error
//! names the configuration path to fix, never a secret's value.

use crate::config::secret::SecretError;
use crate::connector::rest::error::SettingsError;
use crate::connector::rest::profile::error::ProfileError;
use crate::connector::webhook::sign::SignError;
use std::path::PathBuf;

/// The HTTP client for calling partners could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build HTTP client: {0}")]
pub struct HttpClientError(#[from] pub reqwest::Error);

/// A connector that cannot be built from its configuration. The text
/// starts with the configuration path (`endpoints.X.…`) to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A required setting is absent.
    #[error("{at}: missing")]
    Missing { at: String },
    /// A URL that does not parse.
    #[error("{at}: not a URL ({source})")]
    NotAUrl { at: String, source: url::ParseError },
    /// A secret named in the configuration that cannot be read.
    #[error("{at}: {source}")]
    Secret { at: String, source: SecretError },
    /// A REST profile that cannot be loaded.
    #[error("{at}: {source}")]
    Profile { at: String, source: ProfileError },
    /// A setting the endpoint's profile needs and the endpoint lacks.
    #[error("{at}: {source}")]
    Settings { at: String, source: SettingsError },
    /// A signing secret that is not a usable key.
    #[error("{at}: {source}")]
    BadKey { at: String, source: SignError },
    /// A product webhook secret too short to resist guessing.
    #[error("{at}: shorter than 16 characters; use a long random one (e.g. openssl rand -hex 32)")]
    ShortSecret { at: String },
    /// The partner HTTP client of an endpoint.
    #[error("endpoints.{endpoint}: {source}")]
    HttpClient {
        endpoint: String,
        source: HttpClientError,
    },
    /// A file named in the configuration that cannot be read.
    #[error("{at}: cannot read {}: {source}", path.display())]
    ReadFile {
        at: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Anything else wrong at `at`, in words (a setting, a certificate,
    /// the TLS set-up).
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}
