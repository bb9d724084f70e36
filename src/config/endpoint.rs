//! `[parties]` and `[endpoints]`: who takes part, and each help desk system
//! with its connector's settings.

use super::policy::PolicyConfig;
use crate::connector::email::config::EmailConfig;
use crate::connector::kind::KindConfig;
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

macro_rules! kinds {
    ($($key:ident $Var:ident $doc:literal $Cfg:path,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ConnectorKind {
            $(#[doc = $doc] $Var,)*
        }

        /// Every kind's name in the file.
        const KINDS: &[&str] = &[$(stringify!($key),)*];

        impl ConnectorKind {
            /// The kind's name in the file: the value of `kind` and its table.
            pub fn name(self) -> &'static str {
                match self {
                    $(ConnectorKind::$Var => stringify!($key),)*
                }
            }
        }

        /// An endpoint's connector with its settings: the kind and its
        /// table, checked to go together when the file is read.
        #[derive(Clone, Debug)]
        pub enum Connector {
            $($Var($Cfg),)*
        }

        impl Connector {
            pub fn kind(&self) -> ConnectorKind {
                match self {
                    $(Connector::$Var(_) => ConnectorKind::$Var,)*
                }
            }

            /// What the kind's table answers for the config and its checks.
            pub fn config(&self) -> &dyn KindConfig {
                match self {
                    $(Connector::$Var(c) => c,)*
                }
            }
        }

        /// `[endpoints.ID]` as written in the file.
        #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        struct EndpointTable {
            /// The party (key of `[parties]`) that owns this system.
            party: String,
            kind: ConnectorKind,
            $(
                // Described in `EndpointConfig::json_schema`.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                $key: Option<$Cfg>,
            )*
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

        impl EndpointTable {
            /// The table of the endpoint's kind, and the names of tables of
            /// other kinds given beside it.
            fn connector(&mut self) -> (Option<Connector>, Vec<&'static str>) {
                let kind = self.kind;
                let mut connector = None;
                let mut unused = Vec::new();
                $(
                    if let Some(c) = self.$key.take() {
                        if kind == ConnectorKind::$Var {
                            connector = Some(Connector::$Var(c));
                        } else {
                            unused.push(stringify!($key));
                        }
                    }
                )*
                (connector, unused)
            }

            fn empty(party: String, kind: ConnectorKind) -> Self {
                EndpointTable {
                    party,
                    kind,
                    $($key: None,)*
                    service_account: None,
                    policy: PolicyConfig::default(),
                    concurrency: default_concurrency(),
                }
            }

            fn put(&mut self, connector: Connector) {
                match connector {
                    $(Connector::$Var(c) => self.$key = Some(c),)*
                }
            }
        }
    };
}
crate::connector::kinds::with_kinds!(kinds);

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
        self.connector.config().problems(at, p);
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
        let mut schema = EndpointTable::json_schema(g);
        // A derive cannot build a description from the kind's name.
        if let schemars::schema::Schema::Object(o) = &mut schema {
            for (name, table) in o.object().properties.iter_mut() {
                if let schemars::schema::Schema::Object(t) = table {
                    if KINDS.contains(&name.as_str()) {
                        t.metadata().description =
                            Some(format!("Settings for `kind = \"{name}\"`."));
                    }
                }
            }
        }
        schema
    }
}

fn default_concurrency() -> usize {
    8
}

impl TryFrom<EndpointTable> for EndpointConfig {
    type Error = String;
    fn try_from(mut t: EndpointTable) -> Result<Self, String> {
        // Tables of other kinds are collected with the other meaning
        // problems, so that one reading of the file names them all.
        let (connector, unused) = t.connector();
        let Some(connector) = connector else {
            let kind = t.kind.name();
            return Err(format!(
                "kind = \"{kind}\" needs its settings in a [{kind}] table under the endpoint"
            ));
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
        let mut t = EndpointTable::empty(e.party, e.connector.kind());
        t.put(e.connector);
        t.service_account = e.service_account;
        t.policy = e.policy;
        t.concurrency = e.concurrency;
        t
    }
}
