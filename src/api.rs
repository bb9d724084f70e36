//! HTTP: the partner-facing inbound webhooks, and the operator's admin API
//! (links, dead letters, status) on its own loopback listener.

use crate::config::{Config, ConnectorKind};
use crate::connector::rest::{notify, RestEndpoint};
use crate::connector::webhook::{inbound, sign};
use crate::ingest::{Ingest, IngestError, Outcome};
use crate::ops::Ops;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{info, warn};

#[derive(Clone)]
pub struct HookState {
    pub config: Arc<Config>,
    pub ingest: Ingest,
    /// Inbound secrets per endpoint, read once at start.
    pub secrets: Arc<HashMap<String, Vec<sign::Secret>>>,
    /// REST endpoints, whose product's webhooks wake their poller.
    pub rest: Arc<HashMap<String, Arc<RestEndpoint>>>,
    /// Where those webhooks are counted.
    pub pollers: crate::connector::rest::poll::PollBoard,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

pub fn hooks_router(state: HookState) -> Router {
    Router::new()
        .route("/hooks/{endpoint}", post(hook))
        .route("/health", get(|| async { "ok" }))
        // Each endpoint enforces its own limit while reading.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Reads every inbound secret; an error names the config path.
pub fn inbound_secrets(config: &Config) -> Result<HashMap<String, Vec<sign::Secret>>, String> {
    let mut out = HashMap::new();
    for (name, ep) in &config.endpoints {
        if let Some(w) = &ep.webhook {
            let mut secrets = Vec::new();
            for (i, s) in w.inbound_secrets.iter().enumerate() {
                let at = format!("endpoints.{name}.webhook.inbound_secrets[{i}]");
                let raw = s.resolve().map_err(|e| format!("{at}: {e}"))?;
                secrets.push(sign::Secret::parse(&raw).map_err(|e| format!("{at}: {e}"))?);
            }
            out.insert(name.clone(), secrets);
        }
    }
    Ok(out)
}

async fn hook(State(st): State<HookState>, Path(endpoint): Path<String>, req: Request) -> Response {
    let Some(ep) = st.config.endpoints.get(&endpoint) else {
        return error(StatusCode::NOT_FOUND, format!("no endpoint {endpoint}"));
    };
    if let Some(rest) = st.rest.get(&endpoint) {
        return product_hook(rest, &st.pollers, req).await;
    }
    let (ConnectorKind::Webhook, Some(w)) = (ep.kind, &ep.webhook) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("endpoint {endpoint} takes no webhooks"),
        );
    };
    let (parts, body) = req.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, w.max_body_bytes).await {
        Ok(b) => b,
        Err(e) if crate::listen::timed_out(&e) => {
            return error(StatusCode::REQUEST_TIMEOUT, e.to_string())
        }
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than {} bytes", w.max_body_bytes),
            )
        }
    };
    let secrets = st.secrets.get(&endpoint).map(Vec::as_slice).unwrap_or(&[]);
    if secrets.is_empty() {
        return error(
            StatusCode::UNAUTHORIZED,
            format!("endpoint {endpoint} has no inbound_secrets configured"),
        );
    }
    let h = |name: &str| header(&parts.headers, name);
    let msg_id = h(sign::HEADER_ID);
    if let Err(e) = sign::verify(
        secrets,
        msg_id,
        h(sign::HEADER_TIMESTAMP),
        h(sign::HEADER_SIGNATURE),
        &body,
        chrono::Utc::now().timestamp(),
        w.tolerance_secs,
    ) {
        warn!(endpoint, "rejected webhook: {e}");
        return error(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let event = match inbound::parse(&body, w.mapping.as_ref()) {
        Ok(ev) => ev,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let event_id = event.id;
    match st.ingest.accept(&endpoint, msg_id, vec![event]).await {
        Ok(Outcome::Duplicate) => {
            (StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response()
        }
        Ok(Outcome::Accepted {
            queued,
            links_created,
        }) => {
            info!(endpoint, event = %event_id, queued, links_created, "accepted");
            (
                StatusCode::OK,
                Json(json!({ "status": "accepted", "event": event_id, "queued": queued })),
            )
                .into_response()
        }
        Err(IngestError::Blob(e @ crate::blob::BlobError::TooLarge { .. })) => {
            error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        Err(e @ IngestError::BadBase64 { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => {
            warn!(endpoint, "cannot store event: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot store the event now, retry: {e}"),
            )
        }
    }
}

/// A REST product's own webhook: checked, then it wakes the poller (see
/// connector::rest::notify); 202 as soon as the poll is asked for.
async fn product_hook(
    ep: &RestEndpoint,
    board: &crate::connector::rest::poll::PollBoard,
    req: Request,
) -> Response {
    // A product's payload is a ticket (Jira's carries every field of the
    // issue), not its files.
    const LIMIT: usize = 4 * 1024 * 1024;
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, LIMIT).await {
        Ok(b) => b,
        Err(e) if crate::listen::timed_out(&e) => {
            return error(StatusCode::REQUEST_TIMEOUT, e.to_string())
        }
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than {LIMIT} bytes, or was cut off"),
            )
        }
    };
    let name = &ep.name;
    match notify::verify(
        name,
        ep.webhook_secret.as_deref(),
        ep.profile.webhook.as_ref(),
        &parts.headers,
        parts.uri.query(),
        &body,
    ) {
        Ok(ticket) => {
            info!(endpoint = %name, ticket = %ticket.as_deref().unwrap_or("-"), "the product's webhook: polling now");
            ep.wake.notify_one();
            crate::connector::with_entry(board, name, |s| s.webhooks += 1);
            (
                StatusCode::ACCEPTED,
                Json(json!({ "status": "polling", "ticket": ticket })),
            )
                .into_response()
        }
        Err(e @ notify::NotifyError::NotEnabled(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ notify::NotifyError::Refused(_)) => {
            crate::connector::with_entry(board, name, |s| s.webhooks_refused += 1);
            warn!(endpoint = %name, "rejected the product's webhook: {e}");
            error(StatusCode::UNAUTHORIZED, e.to_string())
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

// ---- admin ----

pub fn admin_router(ops: Ops) -> Router {
    Router::new()
        .route(
            "/links",
            get(|State(o): State<Ops>| async move { reply(o.links()) }),
        )
        .route(
            "/links/{id}",
            get(|State(o): State<Ops>, Path(id): Path<String>| async move { reply(o.link(&id)) }),
        )
        .route(
            "/dead",
            get(|State(o): State<Ops>| async move { reply(o.dead()) }),
        )
        .route(
            "/dead/{id}/replay",
            post(|State(o): State<Ops>, Path(id): Path<String>| async move {
                reply(o.replay(&id).await)
            }),
        )
        .route(
            "/dead/{id}/discard",
            post(|State(o): State<Ops>, Path(id): Path<String>| async move {
                reply(o.discard(&id).await)
            }),
        )
        .route(
            "/queues/{endpoint}/discard",
            post(
                |State(o): State<Ops>, Path(endpoint): Path<String>| async move {
                    reply(o.discard_queued(&endpoint).await)
                },
            ),
        )
        .route(
            "/transfer",
            post(
                |State(o): State<Ops>, Json(t): Json<crate::ops::TransferRequest>| async move {
                    reply(o.transfer(&t).await)
                },
            ),
        )
        .route(
            "/status",
            get(|State(o): State<Ops>| async move { reply(o.status()) }),
        )
        .route("/metrics", get(metrics))
        .with_state(ops)
}

fn reply<T: serde::Serialize>(r: Result<T, crate::ops::OpsError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(e.status(), e.to_string()),
    }
}

/// Prometheus / OpenMetrics text, from the same figures as `/status`.
async fn metrics(State(o): State<Ops>) -> Response {
    let s = match o.status() {
        Ok(s) => s,
        Err(e) => return error(e.status(), e.to_string()),
    };
    let text = crate::metrics::render(&s, &o.store.flush_stats(), chrono::Utc::now());
    ([("content-type", crate::metrics::CONTENT_TYPE)], text).into_response()
}
