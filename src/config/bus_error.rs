//! What can be wrong with the bus's settings when a broker is set up:
//! its URL, and the TLS files of `[bus]`. Never a password's value.

use super::secret::SecretError;
use std::path::PathBuf;

/// `[bus] ca_file` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
}

/// `[bus.client_certificate]` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientCertificateError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is empty", path.display())]
    Empty { path: PathBuf },
    #[error("password: {0}")]
    Password(#[source] SecretError),
    /// Not PKCS#12, or not with this password; `with_password` says
    /// whether one was given.
    #[error(
        "cannot open {} {} ({reason}): is it PKCS#12, and the password its own?",
        path.display(),
        if *with_password { "with its password" } else { "without a password (it may need `password`)" }
    )]
    Open {
        path: PathBuf,
        reason: String,
        with_password: bool,
    },
}

/// A broker that cannot be set up from `[bus]`.
#[derive(Debug, thiserror::Error)]
pub enum BusSetupError {
    #[error("bus.url: missing")]
    UrlMissing,
    #[error("bus.url: {0}")]
    Url(#[source] SecretError),
    #[error("bus.ca_file: {0}")]
    CaFile(#[source] CaFileError),
    #[error("bus.client_certificate: {0}")]
    ClientCertificate(#[source] ClientCertificateError),
}
