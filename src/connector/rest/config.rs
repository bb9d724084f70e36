//! `[endpoints.ID.rest]`: the product's address, profile, credentials and
//! this installation's statuses, priorities and custom fields.

use super::error::SettingsError;
use super::fields::{Landing, Places};
use super::profile::{AuthKind, Profile};
use super::template::Vars;
use crate::config::secret::SecretSource;
use crate::connector::kind::{KindConfig, Lands};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    pub statuses: super::profile::StatusMap,
    /// This installation's priorities, over the profile's.
    #[serde(default)]
    pub priorities: super::fields::PriorityMap,
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

fn default_timeout_secs() -> u64 {
    30
}

impl RestConfig {
    /// Where this endpoint's fields are, by its profile and this table.
    pub fn places(&self, p: &Profile) -> Places {
        let mut places = Places::of_profile(p);
        places.priorities.extend(&self.priorities);
        places.custom_ids = self.custom_fields.clone();
        places
    }
}

/// Settings by name, as templates see them.
pub fn settings(profile: &Profile, r: &RestConfig) -> Result<Vars, SettingsError> {
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
                    SettingsError::MissingProject
                } else {
                    SettingsError::Missing {
                        name: name.to_string(),
                    }
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

impl KindConfig for RestConfig {
    fn problems(&self, at: &str, p: &mut Vec<String>) {
        config_problems(at, self, p)
    }
    /// A product shows deskbridge its own writes when it polls.
    fn needs_service_account(&self) -> bool {
        true
    }
    fn reads(&self, name: &str, field: &str) -> Result<(), String> {
        // A profile that does not load is named by the config's checks.
        let Ok(profile) = Profile::load(self.profile.as_deref(), self.profile_file.as_deref())
        else {
            return Ok(());
        };
        let places = self.places(&profile);
        let read = match field {
            "priority" => places.places.priority.is_some() || profile.ticket.priority.is_some(),
            "due" => places.places.due.is_some(),
            f => places.places.custom.is_some() && places.custom_ids.contains_key(f),
        };
        if read {
            return Ok(());
        }
        Err(match field {
            "priority" | "due" => format!("{name} ({}) has no place for it", profile.product),
            f if places.places.custom.is_some() => format!(
                "{name} does not read it: name its custom field in endpoints.{name}.rest.custom_fields.{f}"
            ),
            _ => format!("{name} ({}) has no custom fields", profile.product),
        })
    }
    fn lands(&self, field: &str) -> Lands {
        let Ok(profile) = Profile::load(self.profile.as_deref(), self.profile_file.as_deref())
        else {
            return Lands::Text;
        };
        let places = self.places(&profile);
        match field {
            "subject" | "description" => Lands::Field(field.into()),
            "attachments" if profile.files.is_some() => Lands::Field("files".into()),
            // Named in the text instead.
            "attachments" => Lands::Text,
            f => match places.landing(f, None) {
                Landing::Field => Lands::Field(match f {
                    "priority" | "due" => f.to_string(),
                    _ => format!("custom field {}", places.custom_ids[f]),
                }),
                Landing::Text => Lands::Text,
            },
        }
    }
}
