//! HTTP: the partner-facing inbound webhooks, and the operator's admin API
//! (links, dead letters, status) on its own loopback listener.

use crate::connector::source::{refuse, Hook};
use crate::ops::Ops;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// What the partner-facing listener serves: each endpoint's hook.
#[derive(Clone)]
pub struct HookState {
    /// Every configured endpoint, to tell "no such endpoint" from "this
    /// one takes no webhooks".
    pub endpoints: Arc<BTreeSet<String>>,
    pub hooks: Arc<HashMap<String, Arc<dyn Hook>>>,
}

pub fn hooks_router(state: HookState) -> Router {
    Router::new()
        .route("/hooks/{endpoint}", post(hook))
        .route("/health", get(|| async { "ok" }))
        // Each endpoint enforces its own limit while reading.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn hook(State(st): State<HookState>, Path(endpoint): Path<String>, req: Request) -> Response {
    match st.hooks.get(&endpoint) {
        Some(h) => h.receive(req).await,
        None if st.endpoints.contains(&endpoint) => refuse(
            StatusCode::NOT_FOUND,
            format!("endpoint {endpoint} takes no webhooks"),
        ),
        None => refuse(StatusCode::NOT_FOUND, format!("no endpoint {endpoint}")),
    }
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
        Err(e) => refuse(e.status(), e.to_string()),
    }
}

/// Prometheus / OpenMetrics text, from the same figures as `/status`.
async fn metrics(State(o): State<Ops>) -> Response {
    let s = match o.status() {
        Ok(s) => s,
        Err(e) => return refuse(e.status(), e.to_string()),
    };
    let text = crate::metrics::render(&s, &o.store.flush_stats(), chrono::Utc::now());
    ([("content-type", crate::metrics::CONTENT_TYPE)], text).into_response()
}
