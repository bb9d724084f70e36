//! One REST endpoint built from its `[endpoints.X.rest]` table: the
//! profile with the endpoint's settings, statuses and field places
//! applied, and its HTTP client; and the table's meaning checks. What it
//! reads is in identity.rs and history.rs.

use super::client;
use super::fields;
use super::profile::{AuthKind, Profile, StatusMap};
use super::template::Vars;
use crate::config::RestConfig;
use std::sync::Arc;

/// One REST endpoint ready to use: its profile with the endpoint's own
/// settings and statuses applied, and its HTTP client (shared by the sink
/// and the poller, so the rate limit is the endpoint's).
pub struct RestEndpoint {
    pub name: String,
    pub profile: Profile,
    /// The profile's statuses with the endpoint's overrides.
    pub statuses: StatusMap,
    /// Where the ticket's fields go, with the endpoint's priorities and
    /// custom field ids.
    pub places: fields::Places,
    /// Settings by name: the endpoint's, else the profile's defaults.
    pub settings: Vars,
    pub client: client::Client,
    pub poll: std::time::Duration,
    /// Woken by the product's webhooks: the poller looks at once.
    pub wake: tokio::sync::Notify,
    /// The token or signing key of the product's webhooks.
    pub webhook_secret: Option<String>,
}

impl RestEndpoint {
    pub fn from_config(name: &str, r: &RestConfig) -> Result<Arc<RestEndpoint>, String> {
        let at = format!("endpoints.{name}.rest");
        let profile = Profile::load(r.profile.as_deref(), r.profile_file.as_deref())
            .map_err(|e| format!("{at}.profile: {e}"))?;
        let settings = settings(&profile, r).map_err(|e| format!("{at}: {e}"))?;
        let credential = r
            .credentials
            .resolve()
            .map_err(|e| format!("{at}.credentials: {e}"))?;
        let client = client::Client::new(name, &profile, r, credential, &settings)
            .map_err(|e| format!("{at}: {e}"))?;
        let webhook_secret = r
            .webhook_secret
            .as_ref()
            .map(|s| s.resolve())
            .transpose()
            .map_err(|e| format!("{at}.webhook_secret: {e}"))?;
        if webhook_secret.as_deref().is_some_and(|s| s.len() < 16) {
            return Err(format!(
                "{at}.webhook_secret: shorter than 16 characters; use a long random one (e.g. openssl rand -hex 32)"
            ));
        }
        let mut statuses = profile.statuses.clone();
        statuses.inbound.extend(r.statuses.inbound.clone());
        statuses.outbound.extend(r.statuses.outbound.clone());
        statuses.readback.extend(r.statuses.readback.clone());
        let places = fields::Places::of_endpoint(&profile, r);
        Ok(Arc::new(RestEndpoint {
            name: name.into(),
            profile,
            statuses,
            places,
            settings,
            client,
            poll: std::time::Duration::from_secs(r.poll_secs.max(1)),
            wake: tokio::sync::Notify::new(),
            webhook_secret,
        }))
    }
    /// The settings plus `extra` values for one request.
    pub fn vars(&self, extra: &[(&str, String)]) -> Vars {
        let mut v = self.settings.clone();
        for (k, val) in extra {
            v.insert(k.to_string(), val.clone());
        }
        v
    }
}

/// Settings by name, as templates see them.
fn settings(profile: &Profile, r: &RestConfig) -> Result<Vars, String> {
    let mut out = Vars::new();
    for name in profile.setting_names() {
        let value = if name == "project" {
            r.project.clone().or_else(|| r.settings.get(name).cloned())
        } else {
            r.settings.get(name).cloned()
        }
        .or_else(|| profile.defaults.get(name).cloned());
        match value {
            Some(v) => {
                out.insert(name.to_string(), v);
            }
            None => {
                return Err(if name == "project" {
                    "project: the profile needs it".to_string()
                } else {
                    format!("settings.{name}: the profile needs it")
                })
            }
        }
    }
    Ok(out)
}

/// Meaning problems of a `[endpoints.X.rest]` table, by path.
pub fn config_problems(at: &str, r: &RestConfig, p: &mut Vec<String>) {
    let at = format!("{at}.rest");
    match url::Url::parse(&r.base_url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        Ok(u) => p.push(format!(
            "{at}.base_url: scheme must be http or https, not {}",
            u.scheme()
        )),
        Err(e) => p.push(format!("{at}.base_url: not a URL ({e})")),
    }
    if let Err(e) = r.credentials.resolve() {
        p.push(format!("{at}.credentials: {e}"));
    }
    if r.poll_secs == 0 {
        p.push(format!("{at}.poll_secs: must be at least 1"));
    }
    if r.timeout_secs == 0 {
        p.push(format!("{at}.timeout_secs: must be more than 0"));
    }
    if r.rate_limit_per_minute == Some(0) {
        p.push(format!(
            "{at}.rate_limit_per_minute: must be at least 1 (leave it out for no limit)"
        ));
    }
    let profile = match Profile::load(r.profile.as_deref(), r.profile_file.as_deref()) {
        Ok(pr) => pr,
        Err(e) => {
            let key = if r.profile_file.is_some() && r.profile.is_none() {
                "profile_file"
            } else {
                "profile"
            };
            p.push(format!("{at}.{key}: {e}"));
            return;
        }
    };
    if profile.auth.kind == AuthKind::Basic
        && profile.auth.password.is_none()
        && r.username.is_none()
    {
        p.push(format!(
            "{at}.username: the profile authenticates with a login and password"
        ));
    }
    if let Err(e) = settings(&profile, r) {
        p.push(format!("{at}.{e}"));
    }
    let known = profile.setting_names();
    for name in r.settings.keys() {
        if !known.contains(&name.as_str()) {
            p.push(format!(
                "{at}.settings.{name}: the profile ({}) has no such setting (it has: {})",
                profile.product,
                known.join(", ")
            ));
        }
    }
    if r.project.is_some() && !known.contains(&"project") {
        p.push(format!(
            "{at}.project: the profile ({}) has no project setting",
            profile.product
        ));
    }
}
