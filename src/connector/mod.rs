//! Connectors: the sink half applies events in a partner's system; the
//! source half (webhook handler, pollers) turns its changes into events.

pub mod email;
pub mod rest;
pub mod webhook;

use crate::blob::BlobStore;
use crate::config::{Config, ConnectorKind};
use crate::link::Link;
use crate::store::{Applied, Envelope};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkError {
    /// The partner is down, slow or busy: retry with backoff.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The partner refused the change itself: dead letter, with its text.
    #[error("{message}")]
    Permanent { message: String },
}

/// One event to apply in the destination system.
pub struct Delivery<'a> {
    pub envelope: &'a Envelope,
    pub link: &'a Link,
    /// The ticket in the destination; `None` for a transfer not yet created.
    pub ticket: Option<&'a str>,
    pub blobs: &'a BlobStore,
}

pub trait Sink: Send + Sync {
    /// Applies the event. Must be safe to call again with the same event
    /// after a crash: the connector's marker makes the repeat a no-op.
    fn apply<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<Applied, SinkError>>;
}

/// What a reader did, per endpoint, for `deskbridge status`.
pub type Board<T> = Arc<std::sync::Mutex<std::collections::BTreeMap<String, T>>>;

/// Changes `endpoint`'s entry of `board` (a default one first).
pub fn with_entry<T: Default>(board: &Board<T>, endpoint: &str, f: impl FnOnce(&mut T)) {
    let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
    f(b.entry(endpoint.to_string()).or_default());
}

/// A copy of every entry of `board`.
pub fn snapshot<T: Clone>(board: &Board<T>) -> std::collections::BTreeMap<String, T> {
    board.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Builds the sink of every endpoint that can receive.
pub fn sinks(config: &Config) -> Result<HashMap<String, Arc<dyn Sink>>, String> {
    Ok(build(config)?.sinks)
}

/// The connectors of a configuration: a sink per endpoint that can
/// receive, and the REST endpoints (whose pollers share their client).
pub struct Connectors {
    pub sinks: HashMap<String, Arc<dyn Sink>>,
    pub rest: HashMap<String, Arc<rest::RestEndpoint>>,
    /// E-mail endpoints (whose mailboxes are read when they have `imap`).
    pub email: HashMap<String, Arc<email::MailEndpoint>>,
}

pub fn build(config: &Config) -> Result<Connectors, String> {
    let mut sinks: HashMap<String, Arc<dyn Sink>> = HashMap::new();
    let mut rest_eps = HashMap::new();
    let mut email_eps = HashMap::new();
    for (name, ep) in &config.endpoints {
        match ep.kind {
            ConnectorKind::Webhook => {
                if let Some(w) = &ep.webhook {
                    if let Some(sink) = webhook::outbound::WebhookSink::from_config(name, w)? {
                        sinks.insert(name.clone(), Arc::new(sink));
                    }
                }
            }
            ConnectorKind::Rest => {
                if let Some(r) = &ep.rest {
                    let e = rest::RestEndpoint::from_config(name, r)?;
                    sinks.insert(
                        name.clone(),
                        Arc::new(rest::sink::RestSink { ep: e.clone() }),
                    );
                    rest_eps.insert(name.clone(), e);
                }
            }
            ConnectorKind::Email => {
                if let Some(m) = &ep.email {
                    let e = Arc::new(email::MailEndpoint::from_config(
                        name,
                        m,
                        &config.daemon.data_dir,
                    ));
                    sinks.insert(
                        name.clone(),
                        Arc::new(email::sink::MailSink::new(e.clone())?),
                    );
                    email_eps.insert(name.clone(), e);
                }
            }
        }
    }
    Ok(Connectors {
        sinks,
        rest: rest_eps,
        email: email_eps,
    })
}

/// The HTTP client every connector calls partners with. Redirects are not
/// followed: one would turn a POST or PUT into a GET whose 200 looks like
/// success, or carry a signed event to another host; a moved URL is for
/// the operator to fix.
pub fn partner_client(timeout_secs: u64) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .connect_timeout(Duration::from_secs(timeout_secs.min(10)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// A failed request in words, without its URL (it may carry a token).
pub fn describe_http_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer before the timeout".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.without_url().to_string()
    }
}
