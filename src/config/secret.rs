//! Secrets named in the file, read from the environment or a file.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A secret is never written in the file itself: it is read from an
/// environment variable or from a file (for example a mounted secret).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// A secret that cannot be read. It names the variable or the file, never
/// the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {var} is not set")]
    EnvNotSet { var: String },
    #[error("environment variable {var} is empty")]
    EnvEmpty { var: String },
    #[error("cannot read secret file {}: {source}", path.display())]
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {} is empty", path.display())]
    FileEmpty { path: PathBuf },
    #[error("give either `env` or `file`, not both")]
    Both,
    #[error("give `env = \"VAR\"` or `file = \"/path\"`")]
    Neither,
}

impl SecretSource {
    /// Reads the secret. The error names the source, never the value.
    pub fn resolve(&self) -> Result<String, SecretError> {
        match (&self.env, &self.file) {
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                Ok(_) => Err(SecretError::EnvEmpty { var: var.clone() }),
                Err(_) => Err(SecretError::EnvNotSet { var: var.clone() }),
            },
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                Ok(_) => Err(SecretError::FileEmpty { path: path.clone() }),
                Err(source) => Err(SecretError::FileUnreadable {
                    path: path.clone(),
                    source,
                }),
            },
            (Some(_), Some(_)) => Err(SecretError::Both),
            (None, None) => Err(SecretError::Neither),
        }
    }
}
