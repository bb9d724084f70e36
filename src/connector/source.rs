//! The source half of a connector: what turns a partner's changes into
//! events for ingest. A reader (a poller, a mailbox) runs on its own until
//! shutdown; a hook answers the requests a partner or its product sends to
//! `POST /hooks/{endpoint}` on the partner-facing listener.

use crate::blob::BlobStore;
use crate::ingest::Ingest;
use crate::store::Store;
use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use tokio::sync::watch;

/// What every source feeds: ingest, and the store and file store that
/// readers keep their place and downloads in.
#[derive(Clone)]
pub struct Output {
    pub ingest: Ingest,
    pub store: Store,
    pub blobs: BlobStore,
}

/// A reader of a partner's system.
pub trait Source: Send {
    /// Reads until `shutdown` fires; failures are retried inside and shown
    /// on the connector's status board, never the end of the task.
    fn run(self: Box<Self>, shutdown: watch::Receiver<bool>) -> BoxFuture<'static, ()>;
}

/// A partner's requests to `/hooks/{endpoint}`.
pub trait Hook: Send + Sync {
    fn receive(&self, req: Request) -> BoxFuture<'_, Response>;
}

/// A JSON error answer: `{"error": "..."}`.
pub fn refuse(status: axum::http::StatusCode, msg: impl Into<String>) -> Response {
    use axum::response::IntoResponse;
    (
        status,
        axum::Json(serde_json::json!({ "error": msg.into() })),
    )
        .into_response()
}

/// A request's body up to `limit` bytes, or the answer that says why not.
pub async fn read_body(
    req: Request,
    limit: usize,
) -> Result<(axum::http::request::Parts, axum::body::Bytes), Response> {
    use axum::http::StatusCode;
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok((parts, b)),
        Err(e) if crate::listen::timed_out(&e) => {
            Err(refuse(StatusCode::REQUEST_TIMEOUT, e.to_string()))
        }
        Err(_) => Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than {limit} bytes, or was cut off"),
        )),
    }
}
