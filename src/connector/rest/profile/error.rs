//! Why a REST profile cannot be used: where it comes from is wrong, it
//! cannot be read, or it says something the engine cannot follow.

use std::path::PathBuf;

/// A profile that cannot be loaded; problems inside one are named by
/// their path in it.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// `profile = "..."` names no shipped profile.
    #[error("no shipped profile {name:?} (shipped: {})", shipped.join(", "))]
    NotShipped {
        name: String,
        shipped: Vec<&'static str>,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("give `profile` or `profile_file`, not both")]
    Both,
    #[error("give `profile` (shipped: {}) or `profile_file`", shipped.join(", "))]
    Neither { shipped: Vec<&'static str> },
    /// Not a profile as TOML: the path in it and the parser's words.
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    /// A well-formed profile that fails its checks, each by its path.
    #[error("{}", problems.join("; "))]
    Problems { problems: Vec<String> },
}
