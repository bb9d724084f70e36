//! The whole file: read, parsed, and every meaning problem collected with
//! its path, so that the operator knows what to fix.

use super::bus::{bus_problems, BusConfig};
use super::daemon::{listener_problems, DaemonConfig};
use super::endpoint::{EndpointConfig, PartyConfig};
use super::policy::{PolicyConfig, TransferRule};
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
        if self.daemon.store_cache_mib == 0 {
            p.push("daemon.store_cache_mib: must be at least 1".into());
        }
        if self.daemon.queue_window == 0 {
            p.push("daemon.queue_window: must be at least 1".into());
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
            ep.problems(&at, &mut p);
            if ep.connector.config().needs_service_account() && ep.service_account.is_none() {
                p.push(format!(
                    "{at}.service_account: kind = \"{}\" needs the login deskbridge's credentials belong to",
                    ep.kind().name()
                ));
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
        self.endpoints
            .get(endpoint)
            .is_some_and(|e| e.connector.config().can_receive())
    }

    pub fn policy(&self, endpoint: &str) -> PolicyConfig {
        self.endpoints
            .get(endpoint)
            .map(|e| e.policy.clone())
            .unwrap_or_default()
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
        assert_eq!(c.endpoints["vendor"].rest().unwrap().poll_secs, 30);
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
