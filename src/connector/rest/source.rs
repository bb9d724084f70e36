//! The REST source: the poller reads the product's changes; the product's
//! own webhooks (when its profile has them) only wake the poller early.

use super::endpoint::RestEndpoint;
use super::notify;
use super::poll::{PollBoard, Poller};
use crate::connector::source::{read_body, refuse, Hook, Source};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::future::BoxFuture;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{debug, warn};

impl Source for Poller {
    fn run(self: Box<Self>, shutdown: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin((*self).run(shutdown))
    }
}

/// The product's webhook: checked, then it wakes the poller (see
/// `notify`); 202 as soon as the poll is asked for.
pub struct ProductHook {
    pub ep: Arc<RestEndpoint>,
    pub board: PollBoard,
    /// What refusals have told the log: one warning per kind of refusal
    /// every few minutes (the status counts them all), not one a request.
    pub refusals: std::sync::Mutex<crate::retry::Said>,
}

impl ProductHook {
    async fn take(&self, req: Request) -> Response {
        // A product's payload is a ticket (Jira's carries every field of
        // the issue), not its files.
        const LIMIT: usize = 4 * 1024 * 1024;
        let (parts, body) = match read_body(req, LIMIT).await {
            Ok(r) => r,
            Err(answer) => return answer,
        };
        let (ep, board) = (&self.ep, &self.board);
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
                debug!(endpoint = %name, ticket = %ticket.as_deref().unwrap_or("-"), "the product's webhook: polling now");
                ep.wake.notify_one();
                crate::connector::board::with_entry(board, name, |s| s.webhooks += 1);
                (
                    StatusCode::ACCEPTED,
                    Json(json!({ "status": "polling", "ticket": ticket })),
                )
                    .into_response()
            }
            Err(e @ notify::NotifyError::NotEnabled(_)) => {
                refuse(StatusCode::NOT_FOUND, e.to_string())
            }
            Err(e @ notify::NotifyError::Refused(_)) => {
                crate::connector::board::with_entry(board, name, |s| s.webhooks_refused += 1);
                let (news, refused) = self
                    .refusals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .failed(&e.to_string());
                if news {
                    warn!(endpoint = %name, refused, "rejected the product's webhook: {e}");
                } else {
                    debug!(endpoint = %name, refused, "rejected the product's webhook: {e}");
                }
                refuse(StatusCode::UNAUTHORIZED, e.to_string())
            }
        }
    }
}

impl Hook for ProductHook {
    fn receive(&self, req: Request) -> BoxFuture<'_, Response> {
        Box::pin(self.take(req))
    }
}
