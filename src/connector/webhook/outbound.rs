//! Outbound: POST each event, signed, to the partner's URL.

use super::sign::{self, Secret};
use super::Receipt;
use crate::config::WebhookConfig;
use crate::connector::{Delivery, Sink, SinkError};
use crate::event::EventKind;
use crate::store::Applied;
use base64::Engine as _;
use futures::future::BoxFuture;
use std::time::Duration;

pub struct WebhookSink {
    endpoint: String,
    url: String,
    secret: Secret,
    client: reqwest::Client,
}

/// The longest partner error text kept in a dead letter.
const MAX_ERROR_TEXT: usize = 2000;

impl WebhookSink {
    /// `None` when the endpoint has no URL (it only sends to us).
    pub fn from_config(endpoint: &str, w: &WebhookConfig) -> Result<Option<WebhookSink>, String> {
        let Some(url) = &w.url else { return Ok(None) };
        let raw = w
            .outbound_secret
            .as_ref()
            .ok_or_else(|| format!("endpoints.{endpoint}.webhook.outbound_secret: missing"))?
            .resolve()
            .map_err(|e| format!("endpoints.{endpoint}.webhook.outbound_secret: {e}"))?;
        let secret = Secret::parse(&raw)
            .map_err(|e| format!("endpoints.{endpoint}.webhook.outbound_secret: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(w.timeout_secs))
            .connect_timeout(Duration::from_secs(w.timeout_secs.min(10)))
            .build()
            .map_err(|e| format!("endpoints.{endpoint}: cannot build HTTP client: {e}"))?;
        Ok(Some(WebhookSink {
            endpoint: endpoint.into(),
            url: url.clone(),
            secret,
            client,
        }))
    }

    async fn send(&self, d: Delivery<'_>) -> Result<Applied, SinkError> {
        let env = d.envelope;
        let mut event = env.event.clone();
        let is_create = matches!(event.kind, EventKind::TicketCreated { .. });
        // On a transfer the ticket has no name in the partner's system yet:
        // offer the link id, which the partner may keep or replace.
        let offered = d.link.id.to_string();
        event.ticket = d.ticket.map(str::to_owned).unwrap_or(offered.clone());
        if let Some(files) = event.attachments_mut() {
            for f in files.iter_mut() {
                if let Some(sha) = &f.sha256 {
                    let bytes = d
                        .blobs
                        .read_all(sha)
                        .await
                        .map_err(|e| SinkError::Permanent {
                            message: format!("file {} is not in the file store: {e}", f.name),
                        })?;
                    f.content_base64 =
                        Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                }
            }
        }
        let body = serde_json::to_vec(&event).map_err(|e| SinkError::Permanent {
            message: format!("cannot encode event: {e}"),
        })?;
        // The same id on every attempt: the receiver applies it once.
        let msg_id = format!("msg_{}_{}", env.event.id.simple(), env.link_id.simple());
        let ts = chrono::Utc::now().timestamp();
        let signature = sign::sign(&self.secret, &msg_id, ts, &body);
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header(sign::HEADER_ID, &msg_id)
            .header(sign::HEADER_TIMESTAMP, ts.to_string())
            .header(sign::HEADER_SIGNATURE, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| SinkError::Transient {
                message: format!("{}: {}", self.endpoint, describe_reqwest(e)),
                retry_after: None,
            })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::retry::parse_retry_after(v, chrono::Utc::now()));
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            let receipt: Receipt = serde_json::from_str(&text).unwrap_or_default();
            return Ok(Applied {
                ticket: if is_create {
                    Some(receipt.ticket.unwrap_or(offered))
                } else {
                    None
                },
                remote_ids: receipt.id.into_iter().collect(),
            });
        }
        let partner_text: String = text.trim().chars().take(MAX_ERROR_TEXT).collect();
        let message = format!("{} answered {status}: {partner_text}", self.endpoint);
        Err(classify(status, message, retry_after))
    }
}

/// Whether retrying can help, by HTTP status.
pub fn classify(
    status: reqwest::StatusCode,
    message: String,
    retry_after: Option<Duration>,
) -> SinkError {
    let code = status.as_u16();
    if code == 408 || code == 425 || code == 429 || status.is_server_error() {
        SinkError::Transient {
            message,
            retry_after,
        }
    } else {
        SinkError::Permanent { message }
    }
}

fn describe_reqwest(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer before the timeout".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        // Without the URL: it may carry a token in its query.
        e.without_url().to_string()
    }
}

impl Sink for WebhookSink {
    fn apply<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<Applied, SinkError>> {
        Box::pin(self.send(d))
    }
}
