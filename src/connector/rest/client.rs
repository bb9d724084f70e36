//! HTTP for the REST engine: the profile's authentication, the endpoint's
//! rate limit, and errors classified as retryable or permanent with the
//! product's own text kept.

use super::profile::{AuthKind, Method, Profile};
use super::template::{self, Vars};
use crate::config::RestConfig;
use crate::connector::webhook::outbound::classify;
use crate::connector::SinkError;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The longest product error text kept in a dead letter.
const MAX_ERROR_TEXT: usize = 2000;

pub struct Client {
    endpoint: String,
    base: String,
    auth: AuthKind,
    auth_name: Option<String>,
    auth_prefix: String,
    username: Option<String>,
    /// A fixed basic-auth password: the credential is then the user name.
    password: Option<String>,
    credential: String,
    http: reqwest::Client,
    /// Time between two requests (from `rate_limit_per_minute`).
    interval: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// The body as JSON; `Null` when empty (204).
    pub json: serde_json::Value,
}

impl Client {
    pub fn new(
        endpoint: &str,
        profile: &Profile,
        r: &RestConfig,
        credential: String,
    ) -> Result<Client, String> {
        let http = crate::connector::partner_client(r.timeout_secs)?;
        Ok(Client {
            endpoint: endpoint.into(),
            base: r.base_url.trim_end_matches('/').to_string(),
            auth: profile.auth.kind,
            auth_name: profile.auth.name.clone(),
            auth_prefix: profile.auth.prefix.clone().unwrap_or_default(),
            username: r.username.clone(),
            password: profile.auth.password.clone(),
            credential,
            http,
            interval: r
                .rate_limit_per_minute
                .filter(|n| *n > 0)
                .map(|n| Duration::from_secs(60) / n),
            next: Mutex::new(None),
        })
    }

    /// Waits for this endpoint's next request slot.
    async fn pace(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// Sends one request of the profile with `vars`.
    pub async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        vars: &Vars,
    ) -> Result<Answer, SinkError> {
        let permanent = |message: String| SinkError::Permanent { message };
        let path = template::render_path(path, vars)
            .map_err(|e| permanent(format!("{}: profile request {what}: {e}", self.endpoint)))?;
        let body = body
            .map(|b| template::render_json(b, vars))
            .transpose()
            .map_err(|e| permanent(format!("{}: profile request {what}: {e}", self.endpoint)))?;
        let mut url = format!("{}{}", self.base, path);
        if self.auth == AuthKind::Query {
            let name = self.auth_name.as_deref().unwrap_or("key");
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(name);
            url.push('=');
            url.extend(url::form_urlencoded::byte_serialize(
                self.credential.as_bytes(),
            ));
        }
        let method = match method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
        };
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("accept", "application/json");
        req = match self.auth {
            AuthKind::Header => req.header(
                self.auth_name.as_deref().unwrap_or("Authorization"),
                format!("{}{}", self.auth_prefix, self.credential),
            ),
            AuthKind::Bearer => req.bearer_auth(&self.credential),
            AuthKind::Basic => match &self.password {
                Some(fixed) => req.basic_auth(&self.credential, Some(fixed)),
                None => req.basic_auth(
                    self.username.as_deref().unwrap_or_default(),
                    Some(&self.credential),
                ),
            },
            AuthKind::Query => req,
        };
        if let Some(b) = &body {
            req = req.json(b);
        }
        self.pace().await;
        let resp = req.send().await.map_err(|e| SinkError::Transient {
            message: format!(
                "{}: {what}: {}",
                self.endpoint,
                crate::connector::describe_http_error(e)
            ),
            retry_after: None,
        })?;
        let status = resp.status();
        let retry_after = crate::retry::retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| SinkError::Transient {
            message: format!(
                "{}: {what}: {}",
                self.endpoint,
                crate::connector::describe_http_error(e)
            ),
            retry_after: None,
        })?;
        if status.is_success() {
            let json = if text.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| {
                    permanent(format!(
                        "{}: {what} answered {status} with a body that is not JSON: {e}",
                        self.endpoint
                    ))
                })?
            };
            return Ok(Answer { json });
        }
        let product_text: String = text.trim().chars().take(MAX_ERROR_TEXT).collect();
        // Without the query: it may carry the key.
        let shown = path.split('?').next().unwrap_or_default();
        Err(classify(
            status,
            format!(
                "{}: {what} ({method} {shown}) answered {status}: {product_text}",
                self.endpoint
            ),
            retry_after,
        ))
    }
}
