//! The instant destination: a bare HTTP server that answers at once and
//! notes when each event arrived.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use uuid::Uuid;

#[derive(Clone, Default)]
pub(super) struct Arrivals {
    /// event id → when the destination was called.
    pub(super) at: Arc<Mutex<HashMap<Uuid, Instant>>>,
    pub(super) tickets: Arc<Mutex<u64>>,
}

/// The instant destination's answer to one call.
fn destination(a: &Arrivals, body: &[u8]) -> Bytes {
    let now = Instant::now();
    // Only the id and type are needed; the rest is the payload's weight.
    #[derive(serde::Deserialize)]
    struct Head {
        id: Uuid,
        #[serde(rename = "type")]
        kind: String,
    }
    let Ok(h) = serde_json::from_slice::<Head>(body) else {
        return Bytes::from_static(b"{}");
    };
    if h.kind == "ticket_created" {
        let mut n = a.tickets.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        return Bytes::from(format!("{{\"ticket\":\"B-{}\"}}", *n));
    }
    a.at.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(h.id, now);
    Bytes::from_static(b"{}")
}

/// Serves the instant destination on `listener`: bare hyper, one task per
/// connection (the bench measures deskbridge, not a web framework).
pub(super) fn serve_destination(listener: tokio::net::TcpListener, arrivals: Arrivals) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let arrivals = arrivals.clone();
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let arrivals = arrivals.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let mut res =
                            hyper::Response::new(Full::new(destination(&arrivals, &body)));
                        res.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, hyper::Error>(res)
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}
