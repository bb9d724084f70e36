//! `[bus]`: the embedded queues or a RabbitMQ broker, its TLS and limits.

use super::bus_error::{CaFileError, ClientCertificateError};
use super::secret::SecretSource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    #[serde(default)]
    pub kind: BusKind,
    /// `amqp://user:password@host:5672/vhost`, from the environment or a
    /// file since it carries the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SecretSource>,
    /// Prefix of every exchange and queue name, so that two deployments
    /// can share a vhost.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Unacknowledged messages per destination consumer.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Publishes awaiting their confirms at once.
    #[serde(default = "default_publish_window")]
    pub publish_window: usize,
    /// How long a message that the broker delivered before its link's
    /// earlier one waits for it (parked in the store) at least, before it
    /// becomes a dead letter that says so; and then only once the broker's
    /// queue is read empty twice by a consumer connected at least this
    /// long, while the earlier one is neither in the outbox nor delivered.
    /// Keep it above the broker's heartbeat timeout.
    #[serde(default = "default_order_wait_secs")]
    pub order_wait_secs: u64,
    /// For an `amqps://` URL: a PEM file of the certificate authorities
    /// that signed the broker's certificate (a company's own CA), trusted
    /// besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// For an `amqps://` broker that asks for a client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,
}

/// deskbridge's own certificate for a broker that asks for one.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificate {
    /// A PKCS#12 file (.p12, .pfx) with the certificate and its key, as
    /// `openssl pkcs12 -export -in cert.pem -inkey key.pem -out client.p12`
    /// makes it.
    pub pkcs12_file: PathBuf,
    /// Its password, from the environment or a file. Leave it out for a
    /// file exported without one (`-passout pass:`).
    #[serde(default)]
    pub password: Option<SecretSource>,
}

impl ClientCertificate {
    /// The file's bytes and the password; errors name the file or the
    /// password's source, never the password.
    pub fn load(&self) -> Result<(Vec<u8>, String), ClientCertificateError> {
        let path = || self.pkcs12_file.clone();
        let der =
            std::fs::read(&self.pkcs12_file).map_err(|source| ClientCertificateError::Read {
                path: path(),
                source,
            })?;
        if der.is_empty() {
            return Err(ClientCertificateError::Empty { path: path() });
        }
        let password = match &self.password {
            Some(p) => p.resolve().map_err(ClientCertificateError::Password)?,
            None => String::new(),
        };
        // Opened here so that a wrong password or a broken file is named
        // when the config loads, not as a bare TLS error at each connect.
        p12_keystore::KeyStore::from_pkcs12(&der, &password).map_err(|e| {
            ClientCertificateError::Open {
                path: path(),
                reason: e.to_string(),
                with_password: self.password.is_some(),
            }
        })?;
        Ok((der, password))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    /// Durable queues inside deskbridge's own store: one machine, no broker.
    #[default]
    Embedded,
    /// RabbitMQ.
    Amqp,
}

fn default_prefix() -> String {
    "deskbridge".into()
}
fn default_prefetch() -> u16 {
    256
}
fn default_publish_window() -> usize {
    256
}
fn default_order_wait_secs() -> u64 {
    300
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            kind: BusKind::Embedded,
            url: None,
            prefix: default_prefix(),
            prefetch: default_prefetch(),
            publish_window: default_publish_window(),
            order_wait_secs: default_order_wait_secs(),
            ca_file: None,
            client_certificate: None,
        }
    }
}

/// The PEM certificates of `[bus] ca_file`, checked to hold at least one.
pub fn read_ca_file(path: &Path) -> Result<String, CaFileError> {
    let pem = std::fs::read_to_string(path).map_err(|source| CaFileError::Read {
        path: path.into(),
        source,
    })?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(CaFileError::NoCertificate { path: path.into() });
    }
    Ok(pem)
}

pub(super) fn bus_problems(b: &BusConfig, p: &mut Vec<String>) {
    // The TLS settings, each read and checked (None when unset or fine).
    let tls_settings = [
        (
            "ca_file",
            b.ca_file
                .as_ref()
                .map(|f| read_ca_file(f).err().map(|e| e.to_string())),
        ),
        (
            "client_certificate",
            b.client_certificate
                .as_ref()
                .map(|c| c.load().err().map(|e| e.to_string())),
        ),
    ];
    match (b.kind, &b.url) {
        (BusKind::Amqp, None) => p.push(
            "bus.url: kind = \"amqp\" needs url = { env = \"VAR\" } or { file = \"/path\" }".into(),
        ),
        (BusKind::Amqp, Some(src)) => match src.resolve() {
            Err(e) => p.push(format!("bus.url: {e}")),
            Ok(url) => match url.parse::<lapin::uri::AMQPUri>() {
                // The URL carries a password: say what is wrong, not what it is.
                Err(_) => p.push(
                    "bus.url: not an AMQP URL like amqp://user:password@host:5672/%2f".into(),
                ),
                // An unencoded '/' in the password ends the authority early:
                // the rest, password included, would read as the vhost.
                Ok(u) if u.vhost.contains('@') => p.push(
                    "bus.url: percent-encode the password's special characters (/ as %2F, @ as %40, : as %3A)".into(),
                ),
                Ok(u) => {
                    let tls = u.scheme == lapin::uri::AMQPScheme::AMQPS;
                    if !tls {
                        for (name, set) in &tls_settings {
                            if set.is_some() {
                                p.push(format!("bus.{name}: only used with an amqps:// URL (TLS)"));
                            }
                        }
                    }
                    // A login by the client certificate alone.
                    if u.query.auth_mechanism == Some(lapin::auth::SASLMechanism::External)
                        && !(tls && b.client_certificate.is_some())
                    {
                        p.push(
                            "bus.url: auth_mechanism=external logs in with the client certificate: it needs an amqps:// URL and [bus.client_certificate]".into(),
                        );
                    }
                }
            },
        },
        (BusKind::Embedded, Some(_)) => p.push("bus.url: only used with kind = \"amqp\"".into()),
        (BusKind::Embedded, None) => {}
    }
    for (name, checked) in tls_settings {
        let Some(problem) = checked else { continue };
        if b.kind != BusKind::Amqp {
            p.push(format!("bus.{name}: only used with kind = \"amqp\""));
        }
        if let Some(e) = problem {
            p.push(format!("bus.{name}: {e}"));
        }
    }
    if b.prefix.is_empty()
        || !b
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        p.push("bus.prefix: use letters, digits, '-', '_' and '.'".into());
    }
    if b.prefetch == 0 {
        p.push("bus.prefetch: must be at least 1".into());
    }
    if b.publish_window == 0 {
        p.push("bus.publish_window: must be at least 1".into());
    }
    if b.order_wait_secs == 0 {
        p.push("bus.order_wait_secs: must be at least 1".into());
    }
}
