//! HTTP for the REST engine: the profile's authentication, the endpoint's
//! gate (the partner's pauses and the rate limit, gate.rs), and errors
//! classified as retryable or permanent with the product's own text kept.

use super::config::RestConfig;
use super::gate::{Gate, Paused};
use super::profile::{AuthKind, Method, Profile, SessionLogin};
use super::template::{self, Vars};
use crate::connector::http::classify;
use crate::connector::sink::SinkError;
use tokio::sync::Mutex;

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
    /// What every request to the product passes first.
    gate: Gate,
    /// Headers on every request (the profile's `auth.headers`, rendered).
    headers: Vec<(String, String)>,
    /// With session authentication: how to open one, the values its
    /// templates name, and the open session's token.
    session: Option<SessionLogin>,
    login_vars: Vars,
    token: Mutex<Option<String>>,
}

/// What a request carries.
pub enum Payload<'a> {
    None,
    Json(&'a serde_json::Value),
    /// A body streamed from the file store: made anew for each attempt
    /// (a stream is used up by one), of a length known up front.
    Stream {
        make: &'a (dyn Fn() -> reqwest::Body + Send + Sync),
        content_type: &'a str,
        length: u64,
    },
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// The body as JSON; `Null` when empty (204).
    pub json: serde_json::Value,
    /// The product's clock when it answered (its `Date` header).
    pub date: Option<chrono::DateTime<chrono::Utc>>,
}

impl Client {
    pub fn new(
        endpoint: &str,
        profile: &Profile,
        r: &RestConfig,
        credential: String,
        settings: &Vars,
    ) -> Result<Client, String> {
        let http =
            crate::connector::http::partner_client(r.timeout_secs).map_err(|e| e.to_string())?;
        let headers = profile
            .auth
            .headers
            .iter()
            .map(|(k, t)| {
                template::render_text(t, settings)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| format!("auth.headers.{k}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let mut login_vars = settings.clone();
        login_vars.insert("credential".into(), credential.clone());
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
            gate: Gate::new(
                endpoint,
                r.rate_limit_per_minute,
                profile.rate_limit.clone(),
            ),
            headers,
            session: profile.auth.session.clone(),
            login_vars,
            token: Mutex::new(None),
        })
    }

    fn transient(&self, what: &str, e: reqwest::Error) -> SinkError {
        SinkError::Transient {
            message: format!(
                "{}: {what}: {}",
                self.endpoint,
                crate::connector::http::describe_http_error(e)
            ),
            retry_after: None,
        }
    }

    /// The open session's token, opening one when there is none. The lock
    /// is held while logging in, so concurrent requests open one session.
    async fn session_token(&self, s: &SessionLogin) -> Result<String, SinkError> {
        let mut token = self.token.lock().await;
        if let Some(t) = token.as_ref() {
            return Ok(t.clone());
        }
        let what = "open a session";
        let permanent = |message: String| SinkError::Permanent { message };
        let path = template::render_path(&s.path, &self.login_vars)
            .map_err(|e| permanent(format!("{}: auth.session.path: {e}", self.endpoint)))?;
        let mut req = self
            .http
            .request(s.method.http(), format!("{}{}", self.base, path))
            .header("accept", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        for (k, t) in &s.headers {
            let v = template::render_text(t, &self.login_vars).map_err(|e| {
                permanent(format!("{}: auth.session.headers.{k}: {e}", self.endpoint))
            })?;
            req = req.header(k, v);
        }
        let (resp, paused) = self.dispatch(what, req).await?;
        let status = resp.status();
        let retry_after = retry_after(&resp, &paused);
        let text = resp.text().await.map_err(|e| self.transient(what, e))?;
        if !status.is_success() {
            let product_text: String = text.trim().chars().take(MAX_ERROR_TEXT).collect();
            return Err(classify(
                status,
                format!(
                    "{}: {what} answered {status}: {product_text} (check the credentials){}",
                    self.endpoint,
                    pause_note(&paused)
                ),
                retry_after,
            ));
        }
        let t = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| super::json::text_at(&v, &s.token))
            .ok_or_else(|| {
                permanent(format!(
                    "{}: {what} answered {status} without a token at {}",
                    self.endpoint, s.token
                ))
            })?;
        *token = Some(t.clone());
        Ok(t)
    }

    /// Sends `req` when the gate lets it, and reads the answer for the
    /// partner's "slow down" (the pause it set, if any).
    async fn dispatch(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, Option<Paused>), SinkError> {
        self.gate
            .enter()
            .await
            .map_err(|stopping| SinkError::Transient {
                message: format!(
                    "{}: {what}: not sent, deskbridge is stopping ({})",
                    self.endpoint, stopping.0
                ),
                retry_after: None,
            })?;
        let resp = req.send().await.map_err(|e| self.transient(what, e))?;
        let paused = self.gate.observe(resp.status(), resp.headers());
        Ok((resp, paused))
    }

    /// The partner's pause of every request to this endpoint, while it
    /// holds (for `deskbridge status`).
    pub fn paused(&self) -> Option<Paused> {
        self.gate.paused()
    }

    /// The daemon stops: requests held by the partner's pause are not sent.
    pub fn stop_waiting(&self) {
        self.gate.stop_waiting()
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
        let body = body
            .map(|b| template::render_json(b, vars))
            .transpose()
            .map_err(|e| permanent(format!("{}: profile request {what}: {e}", self.endpoint)))?;
        let payload = match &body {
            Some(b) => Payload::Json(b),
            None => Payload::None,
        };
        self.call_with(what, method, path, payload, vars).await
    }

    /// Sends one request whose body is given as it is (JSON already
    /// rendered, or a stream), its path rendered with `vars`.
    pub async fn call_with(
        &self,
        what: &str,
        method: Method,
        path: &str,
        payload: Payload<'_>,
        vars: &Vars,
    ) -> Result<Answer, SinkError> {
        let permanent = |message: String| SinkError::Permanent { message };
        let path = template::render_path(path, vars)
            .map_err(|e| permanent(format!("{}: profile request {what}: {e}", self.endpoint)))?;
        let url = self.url_of(&format!("{}{}", self.base, path));
        let method = method.http();
        // With a session: a refused token (expired, or the product
        // restarted) opens a new session once.
        let mut retried = false;
        loop {
            let token = match &self.session {
                Some(sess) => Some(self.session_token(sess).await?),
                None => None,
            };
            let (resp, paused) = self
                .send(what, &method, &url, &payload, token.as_deref())
                .await?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED && token.is_some() && !retried {
                retried = true;
                *self.token.lock().await = None;
                continue;
            }
            return self.answer(what, &method, &path, resp, paused).await;
        }
    }

    /// A full URL with the credential added where the profile puts it in
    /// the query.
    fn url_of(&self, url: &str) -> String {
        let mut url = url.to_string();
        if self.auth == AuthKind::Query {
            let name = self.auth_name.as_deref().unwrap_or("key");
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(name);
            url.push('=');
            url.extend(url::form_urlencoded::byte_serialize(
                self.credential.as_bytes(),
            ));
        }
        url
    }

    /// The product's address (`base_url`, without a trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs a file at `url` (absolute, or a path under `base_url`); the
    /// response is streamed by the caller. The profile's authentication
    /// goes only to base_url's origin. An address elsewhere (given, or
    /// where a redirect leads: products keep files in a storage service
    /// and sign its addresses) is fetched without credentials, and only
    /// when `elsewhere` allows a given one, never over a weaker scheme
    /// than base_url's.
    pub async fn download(
        &self,
        what: &str,
        url: &str,
        elsewhere: bool,
    ) -> Result<reqwest::Response, SinkError> {
        let permanent = |message: String| SinkError::Permanent { message };
        let base = url::Url::parse(&self.base)
            .map_err(|e| permanent(format!("{}: base_url: {e}", self.endpoint)))?;
        let shown = |u: &url::Url| format!("{}{}", u.origin().ascii_serialization(), u.path());
        let mut target = base.join(url).map_err(|e| {
            permanent(format!(
                "{}: {what}: the file's address: {e}",
                self.endpoint
            ))
        })?;
        if target.origin() != base.origin() && !elsewhere {
            return Err(permanent(format!(
                "{}: {what}: the file's address {} is not on base_url {}; the credentials are not sent elsewhere",
                self.endpoint,
                shown(&target),
                self.base
            )));
        }
        // A few hops: a product's address, then its storage's.
        for _ in 0..4 {
            let ours = target.origin() == base.origin();
            if !ours && target.scheme() != "https" && base.scheme() == "https" {
                return Err(permanent(format!(
                    "{}: {what}: the file's address {} is not https; not fetched",
                    self.endpoint,
                    shown(&target)
                )));
            }
            // A storage service elsewhere is not the partner: its answers
            // neither wait at the gate nor pause it.
            let (resp, paused) = if ours {
                let token = match &self.session {
                    Some(sess) => Some(self.session_token(sess).await?),
                    None => None,
                };
                self.send(
                    what,
                    &reqwest::Method::GET,
                    &self.url_of(target.as_str()),
                    &Payload::None,
                    token.as_deref(),
                )
                .await?
            } else {
                let resp = self
                    .http
                    .get(target.clone())
                    .send()
                    .await
                    .map_err(|e| self.transient(what, e))?;
                (resp, None)
            };
            let status = resp.status();
            if status.is_redirection() {
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| target.join(l).ok());
                match next {
                    Some(n) => {
                        target = n;
                        continue;
                    }
                    None => {
                        return Err(permanent(format!(
                            "{}: {what} answered {status} without a usable Location",
                            self.endpoint
                        )))
                    }
                }
            }
            if status.is_success() {
                return Ok(resp);
            }
            let retry_after = retry_after(&resp, &paused);
            let text = resp.text().await.unwrap_or_default();
            let product_text: String = text.trim().chars().take(MAX_ERROR_TEXT).collect();
            return Err(classify(
                status,
                format!(
                    "{}: {what} answered {status}: {product_text}{}",
                    self.endpoint,
                    pause_note(&paused)
                ),
                retry_after,
            ));
        }
        Err(permanent(format!(
            "{}: {what}: too many redirects (last {})",
            self.endpoint,
            shown(&target)
        )))
    }

    /// One request with the profile's authentication, through the gate.
    async fn send(
        &self,
        what: &str,
        method: &reqwest::Method,
        url: &str,
        payload: &Payload<'_>,
        token: Option<&str>,
    ) -> Result<(reqwest::Response, Option<Paused>), SinkError> {
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("accept", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
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
            AuthKind::Session => match (&self.session, token) {
                (Some(s), Some(t)) => req.header(&s.header, t),
                _ => req,
            },
        };
        match payload {
            Payload::None => {}
            Payload::Json(b) => req = req.json(b),
            Payload::Stream {
                make,
                content_type,
                length,
            } => {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    // Known up front: the product sees a plain request,
                    // not a chunked one (which some servers refuse).
                    .header(reqwest::header::CONTENT_LENGTH, *length)
                    .body(make());
            }
        }
        self.dispatch(what, req).await
    }

    /// The answer, or the failure classified with the product's own text.
    async fn answer(
        &self,
        what: &str,
        method: &reqwest::Method,
        path: &str,
        resp: reqwest::Response,
        paused: Option<Paused>,
    ) -> Result<Answer, SinkError> {
        let permanent = |message: String| SinkError::Permanent { message };
        let status = resp.status();
        let retry_after = retry_after(&resp, &paused);
        let date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc));
        let text = resp.text().await.map_err(|e| self.transient(what, e))?;
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
            return Ok(Answer { json, date });
        }
        let product_text: String = text.trim().chars().take(MAX_ERROR_TEXT).collect();
        // Without the query: it may carry the key.
        let shown = path.split('?').next().unwrap_or_default();
        Err(classify(
            status,
            format!(
                "{}: {what} ({method} {shown}) answered {status}: {product_text}{}",
                self.endpoint,
                pause_note(&paused)
            ),
            retry_after,
        ))
    }
}

/// When to try again: the answer's Retry-After, else the pause its quota
/// headers asked for.
fn retry_after(resp: &reqwest::Response, paused: &Option<Paused>) -> Option<std::time::Duration> {
    crate::retry::retry_after(resp.headers()).or_else(|| {
        paused.as_ref().map(|p| {
            p.until
                .saturating_duration_since(tokio::time::Instant::now())
        })
    })
}

/// What a failure's text adds when its answer paused the endpoint.
fn pause_note(paused: &Option<Paused>) -> String {
    paused
        .as_ref()
        .map(|p| format!(" (every request to the partner {p})"))
        .unwrap_or_default()
}
