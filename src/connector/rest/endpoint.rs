//! One REST endpoint built from its `[endpoints.X.rest]` table: the
//! profile with the endpoint's settings, statuses and field places
//! applied, and its HTTP client (the table itself and its checks are in
//! config.rs). What it reads is in identity.rs and history.rs.

use super::client;
use super::config::{settings, RestConfig};
use super::fields;
use super::profile::{Profile, StatusMap};
use super::template::Vars;
use crate::config::secret::SecretError;
use crate::connector::error::BuildError;
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
    pub fn from_config(name: &str, r: &RestConfig) -> Result<Arc<RestEndpoint>, BuildError> {
        let at = format!("endpoints.{name}.rest");
        let invalid = |at: String| move |reason: String| BuildError::Invalid { at, reason };
        let secret = |at: String| move |source: SecretError| BuildError::Secret { at, source };
        let profile =
            Profile::load(r.profile.as_deref(), r.profile_file.as_deref()).map_err(|source| {
                BuildError::Profile {
                    at: format!("{at}.profile"),
                    source,
                }
            })?;
        let settings = settings(&profile, r).map_err(|source| BuildError::Settings {
            at: at.clone(),
            source,
        })?;
        let credential = r
            .credentials
            .resolve()
            .map_err(secret(format!("{at}.credentials")))?;
        let client = client::Client::new(name, &profile, r, credential, &settings)
            .map_err(invalid(at.clone()))?;
        let webhook_secret = r
            .webhook_secret
            .as_ref()
            .map(|s| s.resolve())
            .transpose()
            .map_err(secret(format!("{at}.webhook_secret")))?;
        if webhook_secret.as_deref().is_some_and(|s| s.len() < 16) {
            return Err(BuildError::ShortSecret {
                at: format!("{at}.webhook_secret"),
            });
        }
        let mut statuses = profile.statuses.clone();
        statuses.inbound.extend(r.statuses.inbound.clone());
        statuses.outbound.extend(r.statuses.outbound.clone());
        statuses.readback.extend(r.statuses.readback.clone());
        let places = r.places(&profile);
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
