//! The TOML configuration: parties, endpoints, transfer rules and visibility
//! policies. Unknown fields are errors; every problem is reported with its
//! path in the file so the operator knows what to fix.

use crate::event::Status;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// How events travel from ingest to relay; embedded when absent.
    #[serde(default)]
    pub bus: BusConfig,
    /// Companies taking part, by a short id used elsewhere in the file.
    pub parties: BTreeMap<String, PartyConfig>,
    /// Help desk systems, by a short id (also the `/hooks/{id}` path).
    pub endpoints: BTreeMap<String, EndpointConfig>,
    /// When a ticket in one endpoint is handed to another.
    #[serde(default)]
    pub transfers: Vec<TransferRule>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where the link store, the queues and the files live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Partner-facing listener: inbound webhooks at `/hooks/{endpoint}`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Operator listener: links, dead letters, status. Keep it on loopback.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Largest file that may cross, in bytes.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Log lines as JSON (for log shippers) instead of text.
    #[serde(default)]
    pub log_json: bool,
    /// What the two listeners allow a client: connections, read deadlines.
    #[serde(default)]
    pub listener: ListenerConfig,
}

/// Slow and idle clients are cut off so that they cannot hold the
/// listeners (and the process's file descriptors).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Open connections on the partner-facing listener. At the cap a new
    /// connection replaces the oldest one not inside a request; it is
    /// closed only when every connection is inside one. Lowered at start
    /// (with a warning) if the open-file limit cannot hold it.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections on the admin listener: a budget of its own, so
    /// that the operator gets in while partners fill theirs.
    #[serde(default = "default_admin_max_connections")]
    pub admin_max_connections: usize,
    /// Seconds a client has to send a request's headers (also how long an
    /// idle kept-alive connection stays open).
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's body, once its headers
    /// are in. Large files on slow links need more.
    #[serde(default = "default_body_read_timeout_secs")]
    pub body_read_timeout_secs: u64,
}

fn default_max_connections() -> usize {
    512
}
fn default_admin_max_connections() -> usize {
    32
}
fn default_header_read_timeout_secs() -> u64 {
    10
}
fn default_body_read_timeout_secs() -> u64 {
    60
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            max_connections: default_max_connections(),
            admin_max_connections: default_admin_max_connections(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
            body_read_timeout_secs: default_body_read_timeout_secs(),
        }
    }
}

impl ListenerConfig {
    /// The partner listener's and the admin listener's limits.
    pub fn limits(&self) -> (crate::listen::Limits, crate::listen::Limits) {
        let l = |max_connections| crate::listen::Limits {
            max_connections,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            body_read_timeout: std::time::Duration::from_secs(self.body_read_timeout_secs),
        };
        (l(self.max_connections), l(self.admin_max_connections))
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("deskbridge-data")
}
fn default_listen() -> String {
    "127.0.0.1:8700".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:8701".into()
}
fn default_max_file_bytes() -> u64 {
    25 * 1024 * 1024
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            data_dir: default_data_dir(),
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            max_file_bytes: default_max_file_bytes(),
            log_json: false,
            listener: ListenerConfig::default(),
        }
    }
}

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
    pub fn load(&self) -> Result<(Vec<u8>, String), String> {
        let der = std::fs::read(&self.pkcs12_file)
            .map_err(|e| format!("cannot read {}: {e}", self.pkcs12_file.display()))?;
        if der.is_empty() {
            return Err(format!("{} is empty", self.pkcs12_file.display()));
        }
        let password = match &self.password {
            Some(p) => p.resolve().map_err(|e| format!("password: {e}"))?,
            None => String::new(),
        };
        // Opened here so that a wrong password or a broken file is named
        // when the config loads, not as a bare TLS error at each connect.
        p12_keystore::KeyStore::from_pkcs12(&der, &password).map_err(|e| {
            format!(
                "cannot open {} {} ({e}): is it PKCS#12, and the password its own?",
                self.pkcs12_file.display(),
                if self.password.is_some() {
                    "with its password"
                } else {
                    "without a password (it may need `password`)"
                }
            )
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

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyConfig {
    /// The company's name as partners see it (labels relayed notes).
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Client,
    ServiceCompany,
    Vendor,
    Subcontractor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    Webhook,
    /// A help desk's REST API, described by a profile (connectors/*.toml).
    Rest,
    /// A partner reached by e-mail: SMTP out, IMAP in.
    Email,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// The party (key of `[parties]`) that owns this system.
    pub party: String,
    pub kind: ConnectorKind,
    /// Settings for `kind = "webhook"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// Settings for `kind = "rest"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RestConfig>,
    /// Settings for `kind = "email"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<crate::connector::email::EmailConfig>,
    /// The user deskbridge writes as in this system: what that user wrote
    /// is deskbridge's own echo and is never relayed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// What may leave this system and how partners' writes land in it.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Deliveries to this endpoint in flight at once (across links).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_concurrency() -> usize {
    8
}

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

impl SecretSource {
    /// Reads the secret. The error names the source, never the value.
    pub fn resolve(&self) -> Result<String, String> {
        match (&self.env, &self.file) {
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                Ok(_) => Err(format!("environment variable {var} is empty")),
                Err(_) => Err(format!("environment variable {var} is not set")),
            },
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                Ok(_) => Err(format!("secret file {} is empty", path.display())),
                Err(e) => Err(format!("cannot read secret file {}: {e}", path.display())),
            },
            (Some(_), Some(_)) => Err("give either `env` or `file`, not both".into()),
            (None, None) => Err("give `env = \"VAR\"` or `file = \"/path\"`".into()),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where deskbridge POSTs events for this endpoint. Without it the
    /// endpoint only sends (a dispatch system that needs no answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secrets that may sign inbound requests; several during rotation.
    #[serde(default)]
    pub inbound_secrets: Vec<SecretSource>,
    /// Secret deskbridge signs its outbound requests with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_secret: Option<SecretSource>,
    /// Largest inbound request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Seconds before an outbound request is abandoned and retried.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// How signed timestamps may differ from the clock, in seconds.
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: i64,
    /// The partner's own payload shape; without it, canonical event JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<WebhookMapping>,
}

/// A help desk reached through its REST API, described by a profile.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// A profile shipped with deskbridge: `redmine`, `rt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// A profile file of one's own (instead of `profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_file: Option<PathBuf>,
    /// The product's address, e.g. `https://redmine.example.com`.
    pub base_url: String,
    /// The API key, token or password of the service account.
    pub credentials: SecretSource,
    /// The login, for profiles using basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Where tickets are created and watched (project, queue, group...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Further settings the profile names (`tracker_id`...).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Seconds between two looks for changes.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
    /// Requests per minute deskbridge makes to this system (polls and
    /// deliveries together); no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    /// Seconds before a request is abandoned and retried.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// This installation's statuses, over the profile's.
    #[serde(default)]
    pub statuses: crate::connector::rest::profile::StatusMap,
    /// This installation's priorities, over the profile's.
    #[serde(default)]
    pub priorities: crate::connector::rest::fields::PriorityMap,
    /// The product's custom fields that hold the ticket's fields: field
    /// name → the custom field's id (`site = "3"`). Fields without one are
    /// written into the description.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_fields: BTreeMap<String, String>,
    /// Lets the product's own webhooks (`POST /hooks/NAME`) wake the poll
    /// at once instead of at the next `poll_secs`: the token the product
    /// sends (`?token=` in the URL or the `X-Deskbridge-Token` header), or
    /// the key it signs with when the profile's `[webhook]` names a
    /// signature. Polling goes on as the safety net.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<SecretSource>,
}

fn default_poll_secs() -> u64 {
    30
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_tolerance_secs() -> i64 {
    300
}

/// JSON pointers (RFC 6901) into a partner's own payload.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookMapping {
    /// Pointer to the partner's ticket id (required in every payload).
    pub ticket: String,
    /// Pointer to the partner's event type; with `types` to name them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Partner event type → `ticket_created`, `comment`, `status_changed`.
    #[serde(default)]
    pub types: BTreeMap<String, String>,
    /// Pointer to an id unique to this change (for echo and dedupe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Partner status value → canonical status.
    #[serde(default)]
    pub statuses: BTreeMap<String, Status>,
    /// Ticket field name → pointer (site, equipment, client contact...).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// The endpoint's own side of the visibility rules. The sending side owns
/// what leaves; the receiving side owns how it lands.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Ticket content that may leave this system besides the subject:
    /// `description`, `priority`, `due`, `attachments`, `author_name` (who
    /// wrote a comment or opened the ticket; without it partners see this
    /// company's name), `author_email` (with `author_name`), or
    /// a key of the ticket's fields (`site`, `equipment`, `client_phone`...);
    /// `"*"` for everything (a partner gateway that filtered already).
    #[serde(default = "default_allowed_fields")]
    pub allowed_fields: Vec<String>,
    /// Public comments here are the conversation with this ticket's
    /// requester (the client); they go downstream only when this is true.
    #[serde(default)]
    pub share_client_conversation: bool,
    /// How comments from a downstream partner land here: `internal`
    /// (a note marked with the partner's name) or `public` (forwarded to
    /// the requester).
    #[serde(default = "default_partner_comments")]
    pub partner_comments: Landing,
    /// This system's status changes are sent to partners.
    #[serde(default = "default_true")]
    pub share_status: bool,
    /// Partner status → status set here; a status not listed is mirrored,
    /// one mapped to nothing is only noted.
    #[serde(default)]
    pub status_from_partner: BTreeMap<Status, Option<Status>>,
    /// This system shows its partner's ticket id and status: in the
    /// fields `partner_ticket` and `partner_status` (a REST endpoint's
    /// custom fields where `custom_fields` names them, else an internal
    /// note per change; a webhook's `field_changed` events; a new ticket
    /// carries its upstream ticket's id in its fields). A REST endpoint
    /// that also names `upstream_ticket` and `upstream_status` shows the
    /// company that handed the work over there, apart from the partner it
    /// was handed on to (a ticket in the middle of a chain has both).
    #[serde(default = "default_true")]
    pub show_partner: bool,
}

fn default_allowed_fields() -> Vec<String> {
    ["description", "priority", "due", "attachments"]
        .map(String::from)
        .to_vec()
}
fn default_partner_comments() -> Landing {
    Landing::Internal
}
fn default_true() -> bool {
    true
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            allowed_fields: default_allowed_fields(),
            share_client_conversation: false,
            partner_comments: default_partner_comments(),
            share_status: true,
            status_from_partner: BTreeMap::new(),
            show_partner: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Landing {
    Internal,
    Public,
}

/// Hands a ticket of `from` to `to` when it appears (or when it matches
/// `when`), creating the linked ticket and the link.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRule {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// All given parts must hold for the ticket as last seen.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Field name → required value.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// Everything wrong with a configuration, each problem by its path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl ConfigError {
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Read { .. } => vec![self.to_string()],
            ConfigError::Invalid(p) => p.clone(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Parses and validates. A syntax or type error stops at the first one;
    /// every meaning problem is collected.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.message().trim().to_string();
            let at = inner
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            if path.is_empty() || path == "." {
                ConfigError::Invalid(vec![format!("{msg}{at}")])
            } else {
                ConfigError::Invalid(vec![format!("{path}: {msg}{at}")])
            }
        })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (key, value) in [
            ("daemon.listen", &self.daemon.listen),
            ("daemon.admin_listen", &self.daemon.admin_listen),
        ] {
            if value.parse::<SocketAddr>().is_err() {
                p.push(format!(
                    "{key}: not an address like 127.0.0.1:8700 (got {value:?})"
                ));
            }
        }
        if self.daemon.max_file_bytes == 0 {
            p.push("daemon.max_file_bytes: must be more than 0".into());
        }
        listener_problems(&self.daemon.listener, &mut p);
        bus_problems(&self.bus, &mut p);
        if self.parties.is_empty() {
            p.push("parties: name at least one party".into());
        }
        for (id, party) in &self.parties {
            if !valid_id(id) {
                p.push(format!("parties.{id}: ids use a-z, 0-9, '_' and '-' only"));
            }
            if party.name.trim().is_empty() {
                p.push(format!("parties.{id}.name: must not be empty"));
            }
        }
        for (id, ep) in &self.endpoints {
            let at = format!("endpoints.{id}");
            if !valid_id(id) {
                p.push(format!("{at}: ids use a-z, 0-9, '_' and '-' only"));
            }
            if !self.parties.contains_key(&ep.party) {
                p.push(format!(
                    "{at}.party: no party {:?} in [parties] (known: {})",
                    ep.party,
                    self.parties.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if ep.concurrency == 0 {
                p.push(format!("{at}.concurrency: must be at least 1"));
            }
            match ep.kind {
                ConnectorKind::Webhook => match &ep.webhook {
                    None => p.push(format!(
                        "{at}.webhook: kind = \"webhook\" needs a [{at}.webhook] table"
                    )),
                    Some(w) => webhook_problems(&at, w, &mut p),
                },
                ConnectorKind::Rest => match &ep.rest {
                    None => p.push(format!(
                        "{at}.rest: kind = \"rest\" needs a [{at}.rest] table"
                    )),
                    Some(r) => {
                        crate::connector::rest::config_problems(&at, r, &mut p);
                        if ep.service_account.is_none() {
                            p.push(format!(
                                "{at}.service_account: kind = \"rest\" needs the login deskbridge's credentials belong to"
                            ));
                        }
                    }
                },
                ConnectorKind::Email => match &ep.email {
                    None => p.push(format!(
                        "{at}.email: kind = \"email\" needs a [{at}.email] table"
                    )),
                    Some(e) => crate::connector::email::config_problems(&at, e, &mut p),
                },
            }
            for (table, used, kind) in [
                ("webhook", ep.webhook.is_some(), ConnectorKind::Webhook),
                ("rest", ep.rest.is_some(), ConnectorKind::Rest),
                ("email", ep.email.is_some(), ConnectorKind::Email),
            ] {
                if used && ep.kind != kind {
                    p.push(format!("{at}.{table}: only used with kind = \"{table}\""));
                }
            }
        }
        for (i, rule) in self.transfers.iter().enumerate() {
            let at = format!("transfers[{i}]");
            for (field, value) in [("from", &rule.from), ("to", &rule.to)] {
                if !self.endpoints.contains_key(value) {
                    p.push(format!(
                        "{at}.{field}: no endpoint {value:?} in [endpoints]"
                    ));
                }
            }
            if self.endpoints.contains_key(&rule.to) && !self.can_receive(&rule.to) {
                p.push(format!(
                    "{at}.to: endpoint {:?} cannot receive tickets (give it a webhook url, or kind = \"rest\" or \"email\")",
                    rule.to
                ));
            }
            if rule.from == rule.to {
                p.push(format!("{at}: from and to are the same endpoint"));
            }
            let due = rule.when.as_ref().and_then(|c| c.fields.get("due"));
            if let Some(due) = due.filter(|d| crate::event::parse_due(d).is_none()) {
                p.push(format!(
                    "{at}.when.fields.due: {due:?} is neither a date (2026-12-20) nor an RFC 3339 time"
                ));
            }
        }
        p
    }

    pub fn party_of(&self, endpoint: &str) -> Option<&PartyConfig> {
        self.endpoints
            .get(endpoint)
            .and_then(|e| self.parties.get(&e.party))
    }

    /// The endpoints that can receive, each with a queue of its own.
    pub fn receivers(&self) -> Vec<String> {
        self.endpoints
            .keys()
            .filter(|e| self.can_receive(e))
            .cloned()
            .collect()
    }

    /// Whether deskbridge can deliver to this endpoint (it has a sink).
    pub fn can_receive(&self, endpoint: &str) -> bool {
        self.endpoints.get(endpoint).is_some_and(|e| match e.kind {
            ConnectorKind::Webhook => e.webhook.as_ref().is_some_and(|w| w.url.is_some()),
            ConnectorKind::Rest => e.rest.is_some(),
            ConnectorKind::Email => e.email.is_some(),
        })
    }

    pub fn policy(&self, endpoint: &str) -> PolicyConfig {
        self.endpoints
            .get(endpoint)
            .map(|e| e.policy.clone())
            .unwrap_or_default()
    }
}

fn webhook_problems(at: &str, w: &WebhookConfig, p: &mut Vec<String>) {
    if let Some(url) = &w.url {
        match url::Url::parse(url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => p.push(format!(
                "{at}.webhook.url: scheme must be http or https, not {}",
                u.scheme()
            )),
            Err(e) => p.push(format!("{at}.webhook.url: not a URL ({e})")),
        }
        match &w.outbound_secret {
            None => p.push(format!(
                "{at}.webhook.outbound_secret: needed to sign what is sent to url"
            )),
            Some(s) => check_secret(&format!("{at}.webhook.outbound_secret"), s, p),
        }
    }
    for (i, s) in w.inbound_secrets.iter().enumerate() {
        check_secret(&format!("{at}.webhook.inbound_secrets[{i}]"), s, p);
    }
    if w.max_body_bytes == 0 {
        p.push(format!("{at}.webhook.max_body_bytes: must be more than 0"));
    }
    if w.timeout_secs == 0 {
        p.push(format!("{at}.webhook.timeout_secs: must be more than 0"));
    }
    if w.tolerance_secs <= 0 {
        p.push(format!("{at}.webhook.tolerance_secs: must be more than 0"));
    }
    if let Some(m) = &w.mapping {
        let mut pointers = vec![("ticket", &m.ticket)];
        for (name, ptr) in [
            ("event_type", &m.event_type),
            ("source_id", &m.source_id),
            ("subject", &m.subject),
            ("description", &m.description),
            ("priority", &m.priority),
            ("author", &m.author),
            ("comment", &m.comment),
            ("status", &m.status),
        ] {
            if let Some(ptr) = ptr {
                pointers.push((name, ptr));
            }
        }
        for (name, ptr) in &pointers {
            if !ptr.starts_with('/') {
                p.push(format!(
                    "{at}.webhook.mapping.{name}: a JSON pointer starts with '/' (got {ptr:?})"
                ));
            }
        }
        for (name, ptr) in &m.fields {
            if !ptr.starts_with('/') {
                p.push(format!(
                    "{at}.webhook.mapping.fields.{name}: a JSON pointer starts with '/' (got {ptr:?})"
                ));
            }
        }
        for (partner, ours) in &m.types {
            if !["ticket_created", "comment", "status_changed"].contains(&ours.as_str()) {
                p.push(format!(
                    "{at}.webhook.mapping.types.{partner}: must be ticket_created, comment or status_changed (got {ours:?})"
                ));
            }
        }
    }
}

/// The PEM certificates of `[bus] ca_file`, checked to hold at least one.
pub fn read_ca_file(path: &Path) -> Result<String, String> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(pem)
}

fn bus_problems(b: &BusConfig, p: &mut Vec<String>) {
    // The TLS settings, each read and checked (None when unset or fine).
    let tls_settings = [
        ("ca_file", b.ca_file.as_ref().map(|f| read_ca_file(f).err())),
        (
            "client_certificate",
            b.client_certificate.as_ref().map(|c| c.load().err()),
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

fn listener_problems(l: &ListenerConfig, p: &mut Vec<String>) {
    let at = "daemon.listener";
    for (key, v) in [
        ("max_connections", l.max_connections),
        ("admin_max_connections", l.admin_max_connections),
    ] {
        // Beyond what any open-file limit allows in practice.
        if v == 0 || v > 1_000_000 {
            p.push(format!(
                "{at}.{key}: must be between 1 and 1000000 (got {v})"
            ));
        }
    }
    for (key, v) in [
        ("header_read_timeout_secs", l.header_read_timeout_secs),
        ("body_read_timeout_secs", l.body_read_timeout_secs),
    ] {
        // 0 would cut off every client; a day is no deadline at all.
        if v == 0 || v > 86_400 {
            p.push(format!(
                "{at}.{key}: must be between 1 and 86400 seconds (got {v})"
            ));
        }
    }
}

fn check_secret(at: &str, s: &SecretSource, p: &mut Vec<String>) {
    match s.resolve() {
        Ok(v) => {
            if let Err(e) = crate::connector::webhook::sign::Secret::parse(&v) {
                p.push(format!("{at}: {e}"));
            }
        }
        Err(e) => p.push(format!("{at}: {e}")),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[parties.acme]
name = "Acme Service"
role = "service_company"

[endpoints.desk]
party = "acme"
kind = "webhook"
[endpoints.desk.webhook]
"#;

    #[test]
    fn minimal_config_is_valid_with_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.daemon.listen, "127.0.0.1:8700");
        assert!(!c.endpoints["desk"].policy.share_client_conversation);
    }

    #[test]
    fn a_broker_ca_file_must_hold_a_certificate_and_go_with_amqps() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        let (pem, junk) = (dir.path().join("ca.pem"), dir.path().join("junk.pem"));
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(&junk, "not a certificate").unwrap();
        let parse = |scheme: &str, ca: &std::path::Path| {
            std::fs::write(
                &url,
                format!("{scheme}://u:hunter2@broker.example:5671/%2f"),
            )
            .unwrap();
            Config::parse(&format!(
                "[bus]\nkind = \"amqp\"\nurl = {{ file = \"{}\" }}\nca_file = \"{}\"\n{MINIMAL}",
                url.display(),
                ca.display()
            ))
        };
        let c = parse("amqps", &pem).unwrap();
        assert_eq!(c.bus.ca_file.as_deref(), Some(pem.as_path()));
        let all = parse("amqp", &pem).unwrap_err().problems().join("\n");
        assert!(
            all.contains("bus.ca_file: only used with an amqps:// URL"),
            "{all}"
        );
        let all = parse("amqps", &junk).unwrap_err().problems().join("\n");
        assert!(
            all.contains("bus.ca_file:") && all.contains("no PEM certificate"),
            "{all}"
        );
        let all = parse("amqps", &dir.path().join("gone.pem"))
            .unwrap_err()
            .problems()
            .join("\n");
        assert!(all.contains("bus.ca_file: cannot read"), "{all}");
        assert!(!all.contains("hunter2"), "{all}");
    }

    #[test]
    fn a_broker_password_with_an_unencoded_slash_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        std::fs::write(&url, "amqp://admin:/s3cr3t@broker:5672/%2f").unwrap();
        let all = Config::parse(&format!(
            "[bus]\nkind = \"amqp\"\nurl = {{ file = \"{}\" }}\n{MINIMAL}",
            url.display()
        ))
        .unwrap_err()
        .problems()
        .join("\n");
        assert!(all.contains("bus.url: percent-encode"), "{all}");
        assert!(!all.contains("s3cr3t"), "{all}");
    }

    #[test]
    fn a_broker_client_certificate_needs_its_file_its_password_and_amqps() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        // A real PKCS#12 file, as an operator makes one (test.sh installs
        // openssl where missing).
        let p12 = dir.path().join("client.p12");
        let made = std::process::Command::new("sh")
            .current_dir(dir.path())
            .args([
                "-c",
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                 -keyout k.pem -out c.pem -days 1 -subj /CN=deskbridge 2>/dev/null && \
                 openssl pkcs12 -export -in c.pem -inkey k.pem -out client.p12 -passout pass:s3cret && \
                 openssl pkcs12 -export -in c.pem -inkey k.pem -out open.p12 -passout pass:",
            ])
            .status()
            .unwrap();
        assert!(made.success(), "openssl could not make a PKCS#12 file");
        let junk = dir.path().join("junk.p12");
        std::fs::write(&junk, b"\x30\x82").unwrap();
        // The password from the environment variable `var`; none without.
        let parse_with = |scheme: &str, file: &std::path::Path, var: Option<&str>| {
            std::fs::write(
                &url,
                format!("{scheme}://u:hunter2@broker.example:5671/%2f"),
            )
            .unwrap();
            let password = var
                .map(|v| format!("password = {{ env = \"{v}\" }}\n"))
                .unwrap_or_default();
            Config::parse(&format!(
                "[bus]\nkind = \"amqp\"\nurl = {{ file = \"{}\" }}\n[bus.client_certificate]\npkcs12_file = \"{}\"\n{password}{MINIMAL}",
                url.display(),
                file.display()
            ))
        };
        let parse =
            |scheme: &str, file: &std::path::Path, var: &str| parse_with(scheme, file, Some(var));
        std::env::set_var("DESKBRIDGE_TEST_P12_PASSWORD", "s3cret");
        let c = parse("amqps", &p12, "DESKBRIDGE_TEST_P12_PASSWORD").unwrap();
        assert_eq!(
            c.bus.client_certificate.unwrap().load().unwrap(),
            (std::fs::read(&p12).unwrap(), "s3cret".to_string())
        );
        // A file exported without a password needs none in the config, and
        // one that has a password says so when it is left out.
        let open = dir.path().join("open.p12");
        let no_password = |file: &std::path::Path| parse_with("amqps", file, None);
        let c = no_password(&open).unwrap();
        assert_eq!(
            c.bus.client_certificate.unwrap().load().unwrap(),
            (std::fs::read(&open).unwrap(), String::new())
        );
        let all = no_password(&p12).unwrap_err().problems().join("\n");
        assert!(
            all.contains("without a password (it may need `password`)"),
            "{all}"
        );
        std::env::set_var("DESKBRIDGE_TEST_P12_WRONG", "not-its-password");
        for (file, var) in [
            (&p12, "DESKBRIDGE_TEST_P12_WRONG"),
            (&junk, "DESKBRIDGE_TEST_P12_PASSWORD"),
        ] {
            let all = parse("amqps", file, var).unwrap_err().problems().join("\n");
            assert!(
                all.contains("bus.client_certificate: cannot open")
                    && all.contains("with its password"),
                "{all}"
            );
            assert!(
                !all.contains("not-its-password") && !all.contains("s3cret"),
                "{all}"
            );
        }
        let all = parse("amqp", &p12, "DESKBRIDGE_TEST_P12_PASSWORD")
            .unwrap_err()
            .problems()
            .join("\n");
        assert!(
            all.contains("bus.client_certificate: only used with an amqps:// URL"),
            "{all}"
        );
        let all = parse("amqps", &p12, "DESKBRIDGE_TEST_P12_UNSET")
            .unwrap_err()
            .problems()
            .join("\n");
        assert!(
            all.contains("bus.client_certificate: password: environment variable DESKBRIDGE_TEST_P12_UNSET is not set"),
            "{all}"
        );
        let all = parse(
            "amqps",
            &dir.path().join("gone.p12"),
            "DESKBRIDGE_TEST_P12_PASSWORD",
        )
        .unwrap_err()
        .problems()
        .join("\n");
        assert!(all.contains("bus.client_certificate: cannot read"), "{all}");
        assert!(!all.contains("s3cret") && !all.contains("hunter2"), "{all}");
        // A login by the certificate alone needs the certificate and TLS.
        for (with, fine) in [("amqps", true), ("amqp", false)] {
            std::fs::write(
                &url,
                format!("{with}://broker.example:5671/%2f?auth_mechanism=external"),
            )
            .unwrap();
            let conf = |cert: bool| {
                let cert = if cert {
                    format!(
                        "[bus.client_certificate]\npkcs12_file = \"{}\"\n",
                        open.display()
                    )
                } else {
                    String::new()
                };
                Config::parse(&format!(
                    "[bus]\nkind = \"amqp\"\nurl = {{ file = \"{}\" }}\n{cert}{MINIMAL}",
                    url.display()
                ))
            };
            assert_eq!(conf(true).is_ok(), fine, "{with}");
            let all = conf(false).unwrap_err().problems().join("\n");
            assert!(
                all.contains("auth_mechanism=external logs in with the client certificate"),
                "{all}"
            );
        }
    }

    #[test]
    fn unknown_field_is_named_by_path() {
        let text = MINIMAL.replace("role = ", "colour = \"red\"\nrole = ");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("parties.acme"), "{err}");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn every_meaning_problem_is_reported_by_path() {
        let text = format!(
            "{MINIMAL}url = \"not a url\"\n\n[[transfers]]\nfrom = \"desk\"\nto = \"nowhere\"\n\n[daemon]\nlisten = \"localhost\"\n"
        );
        let problems = Config::parse(&text).unwrap_err().problems();
        let all = problems.join("\n");
        assert!(
            all.contains("endpoints.desk.webhook.url: not a URL"),
            "{all}"
        );
        assert!(
            all.contains("endpoints.desk.webhook.outbound_secret"),
            "{all}"
        );
        assert!(all.contains("transfers[0].to: no endpoint"), "{all}");
        assert!(all.contains("daemon.listen"), "{all}");
        assert_eq!(problems.len(), 4, "{all}");
    }

    #[test]
    fn missing_secret_env_is_named_without_value() {
        let text =
            format!("{MINIMAL}inbound_secrets = [{{ env = \"DESKBRIDGE_TEST_UNSET_SECRET\" }}]\n");
        let all = Config::parse(&text).unwrap_err().to_string();
        assert!(
            all.contains(
                "endpoints.desk.webhook.inbound_secrets[0]: environment variable DESKBRIDGE_TEST_UNSET_SECRET is not set"
            ),
            "{all}"
        );
    }

    #[test]
    fn rest_endpoints_are_checked_with_their_profile() {
        std::env::set_var("DESKBRIDGE_TEST_REDMINE_KEY", "k");
        let rest = |extra: &str| {
            format!(
                "{MINIMAL}\n[endpoints.vendor]\nparty = \"acme\"\nkind = \"rest\"\nservice_account = \"deskbridge\"\n[endpoints.vendor.rest]\nbase_url = \"http://127.0.0.1:3000\"\ncredentials = {{ env = \"DESKBRIDGE_TEST_REDMINE_KEY\" }}\n{extra}"
            )
        };
        let c = Config::parse(&rest("profile = \"redmine\"\nproject = \"p\"\n")).unwrap();
        assert!(c.can_receive("vendor"));
        assert_eq!(c.endpoints["vendor"].rest.as_ref().unwrap().poll_secs, 30);
        let all = Config::parse(&rest(
            "profile = \"redmine\"\nsettings = { colour = \"red\" }\nrate_limit_per_minute = 0\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            all.contains("endpoints.vendor.rest.project: the profile needs it"),
            "{all}"
        );
        assert!(
            all.contains("endpoints.vendor.rest.settings.colour"),
            "{all}"
        );
        assert!(
            all.contains("endpoints.vendor.rest.rate_limit_per_minute"),
            "{all}"
        );
        let all = Config::parse(&rest("profile = \"jira\"\nproject = \"p\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            all.contains("endpoints.vendor.rest.profile: no shipped profile \"jira\""),
            "{all}"
        );
        let all = Config::parse(
            &rest("profile = \"redmine\"\nproject = \"p\"\n")
                .replace("service_account = \"deskbridge\"\n", ""),
        )
        .unwrap_err()
        .to_string();
        assert!(all.contains("endpoints.vendor.service_account"), "{all}");
    }
}
