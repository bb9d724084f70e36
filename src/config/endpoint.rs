//! `[parties]` and `[endpoints]`: who takes part, and each help desk system
//! with its connector's settings.

use super::policy::PolicyConfig;
use crate::connector::email::config::EmailConfig;
use crate::connector::rest::config::RestConfig;
use crate::connector::webhook::config::WebhookConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// An endpoint's connector with its settings: the kind and its table,
/// checked to go together when the file is read.
#[derive(Clone, Debug)]
pub enum Connector {
    Webhook(WebhookConfig),
    Rest(RestConfig),
    Email(EmailConfig),
}

impl Connector {
    /// The connector's own checks of its table, each problem by its path.
    pub fn problems(&self, at: &str, p: &mut Vec<String>) {
        match self {
            Connector::Webhook(w) => crate::connector::webhook::config::config_problems(at, w, p),
            Connector::Rest(r) => crate::connector::rest::config::config_problems(at, r, p),
            Connector::Email(e) => crate::connector::email::config::config_problems(at, e, p),
        }
    }

    pub fn kind(&self) -> ConnectorKind {
        match self {
            Connector::Webhook(_) => ConnectorKind::Webhook,
            Connector::Rest(_) => ConnectorKind::Rest,
            Connector::Email(_) => ConnectorKind::Email,
        }
    }
}

/// A help desk system: its party, its connector, its policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "EndpointTable", into = "EndpointTable")]
pub struct EndpointConfig {
    pub party: String,
    pub connector: Connector,
    pub service_account: Option<String>,
    pub policy: PolicyConfig,
    pub concurrency: usize,
    /// Tables of other kinds given beside this one's, left unread.
    unused: Vec<&'static str>,
}

impl EndpointConfig {
    /// The problems of the endpoint's own tables, each by its path `at`.
    pub fn problems(&self, at: &str, p: &mut Vec<String>) {
        self.connector.problems(at, p);
        for table in &self.unused {
            p.push(format!("{at}.{table}: only used with kind = \"{table}\""));
        }
    }

    pub fn kind(&self) -> ConnectorKind {
        self.connector.kind()
    }
    pub fn webhook(&self) -> Option<&WebhookConfig> {
        match &self.connector {
            Connector::Webhook(w) => Some(w),
            _ => None,
        }
    }
    pub fn rest(&self) -> Option<&RestConfig> {
        match &self.connector {
            Connector::Rest(r) => Some(r),
            _ => None,
        }
    }
    pub fn email(&self) -> Option<&EmailConfig> {
        match &self.connector {
            Connector::Email(e) => Some(e),
            _ => None,
        }
    }
}

// The file keeps `kind` beside a table named after it; the schema is the
// file's shape.
impl JsonSchema for EndpointConfig {
    fn schema_name() -> String {
        "EndpointConfig".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        EndpointTable::json_schema(g)
    }
}

/// `[endpoints.ID]` as written in the file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EndpointTable {
    /// The party (key of `[parties]`) that owns this system.
    party: String,
    kind: ConnectorKind,
    /// Settings for `kind = "webhook"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook: Option<WebhookConfig>,
    /// Settings for `kind = "rest"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rest: Option<RestConfig>,
    /// Settings for `kind = "email"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<EmailConfig>,
    /// The user deskbridge writes as in this system: what that user wrote
    /// is deskbridge's own echo and is never relayed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_account: Option<String>,
    /// What may leave this system and how partners' writes land in it.
    #[serde(default)]
    policy: PolicyConfig,
    /// Deliveries to this endpoint in flight at once (across links).
    #[serde(default = "default_concurrency")]
    concurrency: usize,
}

fn default_concurrency() -> usize {
    8
}

impl TryFrom<EndpointTable> for EndpointConfig {
    type Error = String;
    fn try_from(t: EndpointTable) -> Result<Self, String> {
        let name = |k: ConnectorKind| match k {
            ConnectorKind::Webhook => "webhook",
            ConnectorKind::Rest => "rest",
            ConnectorKind::Email => "email",
        };
        let kind = name(t.kind);
        // Collected with the other meaning problems, so that one reading
        // of the file names them all.
        let unused = [
            ("webhook", t.webhook.is_some()),
            ("rest", t.rest.is_some()),
            ("email", t.email.is_some()),
        ]
        .into_iter()
        .filter(|(table, set)| *set && *table != kind)
        .map(|(table, _)| table)
        .collect();
        let connector = match (t.kind, t.webhook, t.rest, t.email) {
            (ConnectorKind::Webhook, Some(w), _, _) => Connector::Webhook(w),
            (ConnectorKind::Rest, _, Some(r), _) => Connector::Rest(r),
            (ConnectorKind::Email, _, _, Some(e)) => Connector::Email(e),
            _ => {
                return Err(format!(
                    "kind = \"{kind}\" needs its settings in a [{kind}] table under the endpoint"
                ))
            }
        };
        Ok(EndpointConfig {
            party: t.party,
            connector,
            service_account: t.service_account,
            policy: t.policy,
            concurrency: t.concurrency,
            unused,
        })
    }
}

impl From<EndpointConfig> for EndpointTable {
    fn from(e: EndpointConfig) -> Self {
        let kind = e.kind();
        let (mut webhook, mut rest, mut email) = (None, None, None);
        match e.connector {
            Connector::Webhook(w) => webhook = Some(w),
            Connector::Rest(r) => rest = Some(r),
            Connector::Email(m) => email = Some(m),
        }
        EndpointTable {
            party: e.party,
            kind,
            webhook,
            rest,
            email,
            service_account: e.service_account,
            policy: e.policy,
            concurrency: e.concurrency,
        }
    }
}
