//! The partner that sends signed webhooks to deskbridge, and the comments
//! it sends.

use super::report::{err, BenchError};
use crate::connector::webhook::sign::{self, Secret};
use crate::event::Event;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// The partner that sends the webhooks, over one keep-alive connection.
pub(super) struct Partner {
    send: SendRequest<Full<Bytes>>,
    secret: Secret,
    host: String,
}

impl Partner {
    pub(super) async fn connect(
        addr: std::net::SocketAddr,
        secret: &Secret,
    ) -> Result<Partner, BenchError> {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(err)?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(err)?;
        tokio::spawn(conn);
        Ok(Partner {
            send,
            secret: secret.clone(),
            host: addr.to_string(),
        })
    }

    /// Posts one signed event and waits for ingest's answer.
    pub(super) async fn post(&mut self, ev: Event) -> Result<(), BenchError> {
        let body = serde_json::to_vec(&ev).expect("event serializes");
        let id = format!("msg_{}", ev.id.simple());
        let ts = chrono::Utc::now().timestamp();
        let sig = sign::sign(&self.secret, &id, ts, &body);
        let req = hyper::Request::post("/hooks/src")
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(sign::HEADER_ID, id)
            .header(sign::HEADER_TIMESTAMP, ts.to_string())
            .header(sign::HEADER_SIGNATURE, sig)
            .body(Full::new(Bytes::from(body)))
            .map_err(err)?;
        self.send.ready().await.map_err(err)?;
        let r = self.send.send_request(req).await.map_err(err)?;
        let status = r.status();
        // Read the answer to the end so the connection can carry the next.
        r.into_body().collect().await.map_err(err)?;
        if !status.is_success() {
            return Err(BenchError(format!("ingest answered {status}")));
        }
        Ok(())
    }
}

/// A comment body of about `n` bytes.
pub(super) fn payload(n: usize, i: usize) -> String {
    let mut s = format!("event {i}: ");
    while s.len() < n {
        s.push_str("the till prints blank receipts after the update; ");
    }
    s.truncate(n);
    s
}
