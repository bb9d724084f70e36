//! `[endpoints.ID.webhook]`: where events are POSTed, the secrets that sign
//! both ways, and the mapping of a partner's own payload.

use crate::config::secret::SecretSource;
use crate::connector::kind::{KindConfig, Lands};
use crate::event::Status;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// Meaning problems of a `[endpoints.X.webhook]` table, by path.
pub fn config_problems(at: &str, w: &WebhookConfig, p: &mut Vec<String>) {
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

impl KindConfig for WebhookConfig {
    fn problems(&self, at: &str, p: &mut Vec<String>) {
        config_problems(at, self, p)
    }
    /// Without a `url` the endpoint only sends.
    fn can_receive(&self) -> bool {
        self.url.is_some()
    }
    fn reads(&self, name: &str, field: &str) -> Result<(), String> {
        // Canonical event JSON carries every field.
        let Some(m) = &self.mapping else {
            return Ok(());
        };
        let (read, at) = match field {
            "priority" => (m.priority.is_some(), "priority".to_string()),
            f => (m.fields.contains_key(f), format!("fields.{f}")),
        };
        if read {
            return Ok(());
        }
        Err(format!(
            "{name}'s webhook mapping does not read it (endpoints.{name}.webhook.mapping.{at})"
        ))
    }
    fn lands(&self, _field: &str) -> Lands {
        Lands::Field("the event's JSON".into())
    }
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

fn check_secret(at: &str, s: &SecretSource, p: &mut Vec<String>) {
    match s.resolve() {
        Ok(v) => {
            if let Err(e) = super::sign::Secret::parse(&v) {
                p.push(format!("{at}: {e}"));
            }
        }
        Err(e) => p.push(format!("{at}: {e}")),
    }
}
