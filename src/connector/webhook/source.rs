//! The webhook source: a partner's signed POST to `/hooks/{endpoint}`,
//! checked, parsed and handed to ingest once.

use super::config::WebhookConfig;
use super::{inbound, sign};
use crate::connector::error::BuildError;
use crate::connector::source::{read_body, refuse, Hook};
use crate::ingest::{Ingest, IngestError, Outcome};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::future::BoxFuture;
use serde_json::json;
use tracing::{debug, warn};

pub struct WebhookSource {
    pub endpoint: String,
    pub config: WebhookConfig,
    /// Read once at start.
    pub secrets: Vec<sign::Secret>,
    pub ingest: Ingest,
    /// What refusals have told the log: a partner whose secret changed
    /// (or a stranger) sending all day is one warning per kind of refusal
    /// every few minutes, not a line per request.
    pub refusals: std::sync::Mutex<crate::retry::Said>,
}

/// Reads an endpoint's inbound secrets; an error names the config path,
/// never a secret.
pub fn inbound_secrets(
    endpoint: &str,
    config: &WebhookConfig,
) -> Result<Vec<sign::Secret>, BuildError> {
    let mut secrets = Vec::new();
    for (i, s) in config.inbound_secrets.iter().enumerate() {
        let at = || format!("endpoints.{endpoint}.webhook.inbound_secrets[{i}]");
        let raw = s
            .resolve()
            .map_err(|source| BuildError::Secret { at: at(), source })?;
        let secret =
            sign::Secret::parse(&raw).map_err(|source| BuildError::BadKey { at: at(), source })?;
        secrets.push(secret);
    }
    Ok(secrets)
}

impl WebhookSource {
    async fn take(&self, req: Request) -> Response {
        let (endpoint, w) = (self.endpoint.as_str(), &self.config);
        let (parts, body) = match read_body(req, w.max_body_bytes).await {
            Ok(r) => r,
            Err(answer) => return answer,
        };
        if self.secrets.is_empty() {
            return refuse(
                StatusCode::UNAUTHORIZED,
                format!("endpoint {endpoint} has no inbound_secrets configured"),
            );
        }
        let h = |name: &str| header(&parts.headers, name);
        let msg_id = h(sign::HEADER_ID);
        if let Err(e) = sign::verify(
            &self.secrets,
            msg_id,
            h(sign::HEADER_TIMESTAMP),
            h(sign::HEADER_SIGNATURE),
            &body,
            chrono::Utc::now().timestamp(),
            w.tolerance_secs,
        ) {
            // The kind is the variant: a stale timestamp's age varies.
            let kind = format!("{:?}", std::mem::discriminant(&e));
            let (news, refused) = self
                .refusals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .failed(&kind);
            if news {
                warn!(endpoint, refused, "rejected webhook: {e}");
            } else {
                debug!(endpoint, refused, "rejected webhook: {e}");
            }
            return refuse(StatusCode::UNAUTHORIZED, e.to_string());
        }
        let event = match inbound::parse(&body, w.mapping.as_ref()) {
            Ok(ev) => ev,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let event_id = event.id;
        match self.ingest.accept(endpoint, msg_id, vec![event]).await {
            Ok(Outcome::Duplicate) => {
                (StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response()
            }
            Ok(Outcome::Accepted {
                queued,
                links_created,
            }) => {
                // One line per event: debug (the log's summary counts what
                // the destinations did with it).
                debug!(endpoint, event = %event_id, queued, links_created, "accepted");
                (
                    StatusCode::OK,
                    Json(json!({ "status": "accepted", "event": event_id, "queued": queued })),
                )
                    .into_response()
            }
            Err(IngestError::Blob(e @ crate::blob::BlobError::TooLarge { .. })) => {
                refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            Err(e @ IngestError::BadBase64 { .. }) => {
                refuse(StatusCode::BAD_REQUEST, e.to_string())
            }
            Err(e) => {
                warn!(endpoint, "cannot store event: {e}");
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot store the event now, retry: {e}"),
                )
            }
        }
    }
}

impl Hook for WebhookSource {
    fn receive(&self, req: Request) -> BoxFuture<'_, Response> {
        Box::pin(self.take(req))
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}
