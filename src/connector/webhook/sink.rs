//! Outbound: POST each event, signed, to the partner's URL.

use super::config::WebhookConfig;
use super::sign::{self, Secret};
use super::Receipt;
use crate::connector::body::BodyPlan;
use crate::connector::error::BuildError;
use crate::connector::http::classify;
use crate::connector::sink::{Delivery, Sink, SinkError};
use crate::event::EventKind;
use crate::store::Applied;
use futures::future::BoxFuture;
use reqwest::header::HeaderName;

pub struct WebhookSink {
    endpoint: String,
    /// Parsed once: parsing it per request showed in profiles.
    url: reqwest::Url,
    secret: Secret,
    client: reqwest::Client,
}

/// The longest partner error text kept in a dead letter.
const MAX_ERROR_TEXT: usize = 2000;

impl WebhookSink {
    /// `None` when the endpoint has no URL (it only sends to us).
    pub fn from_config(
        endpoint: &str,
        w: &WebhookConfig,
    ) -> Result<Option<WebhookSink>, BuildError> {
        let Some(url) = &w.url else { return Ok(None) };
        let url = reqwest::Url::parse(url).map_err(|source| BuildError::NotAUrl {
            at: format!("endpoints.{endpoint}.webhook.url"),
            source,
        })?;
        let at = || format!("endpoints.{endpoint}.webhook.outbound_secret");
        let raw = w
            .outbound_secret
            .as_ref()
            .ok_or_else(|| BuildError::Missing { at: at() })?
            .resolve()
            .map_err(|source| BuildError::Secret { at: at(), source })?;
        let secret =
            Secret::parse(&raw).map_err(|source| BuildError::BadKey { at: at(), source })?;
        let client = crate::connector::http::partner_client(w.timeout_secs).map_err(|source| {
            BuildError::HttpClient {
                endpoint: endpoint.into(),
                source,
            }
        })?;
        Ok(Some(WebhookSink {
            endpoint: endpoint.into(),
            url,
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
        let plan = BodyPlan::new(event).map_err(|e| SinkError::Permanent {
            message: e.to_string(),
        })?;
        // The same id on every attempt: the receiver applies it once.
        let msg_id = format!("msg_{}_{}", env.event.id.simple(), env.link_id.simple());
        let ts = chrono::Utc::now().timestamp();
        // The signature goes in a header, so it is computed over a first
        // pass of the body; the second pass is what goes on the wire.
        let (signature, sizes) = plan
            .sign(d.blobs, &self.secret, &msg_id, ts)
            .await
            .map_err(|e| SinkError::Permanent {
                message: e.to_string(),
            })?;
        let content_length = plan.len(&sizes);
        let body = match plan.whole() {
            Some(json) => reqwest::Body::from(json),
            None => reqwest::Body::wrap_stream(plan.stream(d.blobs, sizes)),
        };
        let resp = self
            .client
            .post(self.url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                reqwest::header::HeaderValue::from_static("application/json"),
            )
            .header(HeaderName::from_static(sign::HEADER_ID), &msg_id)
            .header(HeaderName::from_static(sign::HEADER_TIMESTAMP), ts)
            .header(HeaderName::from_static(sign::HEADER_SIGNATURE), signature)
            // Known up front, so the receiver sees a plain request rather
            // than a chunked one.
            .header(reqwest::header::CONTENT_LENGTH, content_length)
            .body(body)
            .send()
            .await
            .map_err(|e| SinkError::Transient {
                message: format!(
                    "{}: {}",
                    self.endpoint,
                    crate::connector::http::describe_http_error(e)
                ),
                retry_after: None,
            })?;
        let status = resp.status();
        let retry_after = crate::retry::retry_after(resp.headers());
        // Where a redirect points, without its query (it may carry a token).
        let moved_to = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|_| status.is_redirection())
            .map(|v| v.split('?').next().unwrap_or_default().to_string());
        let body = resp.bytes().await.unwrap_or_default();
        if status.is_success() {
            // Lossy, as reqwest's text() was: a stray byte elsewhere in the
            // answer must not cost the receipt.
            let receipt: Receipt =
                serde_json::from_str(&String::from_utf8_lossy(&body)).unwrap_or_default();
            return Ok(Applied {
                ticket: if is_create {
                    Some(receipt.ticket.unwrap_or(offered))
                } else {
                    None
                },
                remote_ids: receipt.id.into_iter().collect(),
                ..Applied::default()
            });
        }
        let text = String::from_utf8_lossy(&body);
        let partner_text: String = text.trim().chars().take(MAX_ERROR_TEXT).collect();
        let mut message = format!("{} answered {status}: {partner_text}", self.endpoint);
        if let Some(to) = moved_to {
            message.push_str(&format!(" (redirects to {to}: set the endpoint's url)"));
        }
        Err(classify(status, message, retry_after))
    }
}

impl Sink for WebhookSink {
    fn apply<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<Applied, SinkError>> {
        Box::pin(self.send(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobStore;
    use crate::connector::body::{BodyError, FILE_CHUNK};
    use crate::event::Event;
    use crate::event::{Attachment, Audience, Comment, Ticket};
    use crate::link::Link;
    use crate::store::Envelope;
    use base64::Engine as _;
    use bytes::Bytes;
    use futures::TryStreamExt as _;
    use std::time::Duration;
    use tokio::io::AsyncReadExt as _;
    use tokio::io::AsyncWriteExt as _;

    const SIZES: [usize; 8] = [0, 1, 2, 3, 49151, 49152, 49153, 1_000_003];
    const MAX_CHUNK: usize = 70 * 1024;

    fn secret() -> Secret {
        Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path().join("blobs"), u64::MAX).unwrap();
        (dir, blobs)
    }

    /// Distinct, non-repeating-looking content per file.
    fn content(size: usize, seed: usize) -> Vec<u8> {
        (0..size)
            .map(|i| ((i * 31 + seed * 7) % 251) as u8)
            .collect()
    }

    fn attachment(name: &str, sha256: Option<String>, size: usize) -> Attachment {
        Attachment {
            name: name.into(),
            content_type: "application/pdf".into(),
            sha256,
            size: Some(size as u64),
            content_base64: None,
        }
    }

    /// Stores each file and returns the comment event carrying them, and the
    /// same event with every file's base64 inline: the body as it was built
    /// before streaming.
    async fn event_with(blobs: &BlobStore, sizes: &[usize]) -> (Event, Event) {
        let mut files = Vec::new();
        let mut inline = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let data = content(size, i);
            let r = blobs.put_bytes(&data).await.unwrap();
            let f = attachment(&format!("file-{i}.pdf"), Some(r.sha256), size);
            let mut g = f.clone();
            g.content_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&data));
            files.push(f);
            inline.push(g);
        }
        let comment = |attachments| EventKind::Comment {
            comment: Comment {
                body: "Replaced the \"drum\" unit; see the files.\n".into(),
                audience: Audience::Partner,
                attachments,
            },
        };
        let ev = Event::new("T-1", comment(files));
        let mut expected = ev.clone();
        expected.kind = comment(inline);
        (ev, expected)
    }

    async fn collect(plan: &BodyPlan, blobs: &BlobStore, sizes: Vec<u64>) -> Vec<Bytes> {
        plan.stream(blobs, sizes).try_collect().await.unwrap()
    }

    /// Streams `ev` both ways and checks the result against `expected`.
    async fn check_body(blobs: &BlobStore, ev: Event, expected: &Event) {
        let want = serde_json::to_vec(expected).unwrap();
        let plan = BodyPlan::new(ev).unwrap();
        let (sig, sizes) = plan
            .sign(blobs, &secret(), "msg_1", 1_700_000_000)
            .await
            .unwrap();
        assert_eq!(plan.len(&sizes), want.len() as u64, "content length");
        let chunks = collect(&plan, blobs, sizes).await;
        let max = chunks.iter().map(Bytes::len).max().unwrap_or(0);
        assert!(max <= MAX_CHUNK, "a chunk of {max} bytes");
        let got = chunks.concat();
        assert!(got == want, "body differs from the inline JSON");
        assert_eq!(sig, sign::sign(&secret(), "msg_1", 1_700_000_000, &want));
    }

    #[tokio::test]
    async fn streamed_body_equals_inline_json() {
        let (_d, blobs) = store();
        let mut cases: Vec<Vec<usize>> = vec![vec![]];
        cases.extend(SIZES.iter().map(|&s| vec![s]));
        cases.extend([
            vec![0, 49153, 1_000_003],
            vec![1, 2, 3],
            vec![49151, 49152, 0],
            vec![1_000_003, 3, 1_000_003],
        ]);
        for sizes in cases {
            let (ev, expected) = event_with(&blobs, &sizes).await;
            check_body(&blobs, ev, &expected).await;
        }
    }

    #[tokio::test]
    async fn transfer_with_inline_and_stored_files() {
        let (_d, blobs) = store();
        let data = content(49153, 3);
        let stored = blobs.put_bytes(&data).await.unwrap();
        // A file without a digest keeps whatever it carries; no event
        // content can be mistaken for a placeholder's position.
        let mut kept = attachment("note.txt", None, 4);
        kept.content_base64 = Some("AAAA".into());
        let ticket = |files| EventKind::TicketCreated {
            ticket_data: Ticket {
                subject: "Printer jams".into(),
                description: "deskbridge-file- in the text \u{1F5A8} \\ \"".into(),
                fields: [("site".to_string(), "Store 12".to_string())].into(),
                attachments: files,
                ..Ticket::default()
            },
        };
        let scan = attachment("scan.pdf", Some(stored.sha256), data.len());
        let mut inline = scan.clone();
        inline.content_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&data));
        let ev = Event::new("T-2", ticket(vec![kept.clone(), scan]));
        let mut expected = ev.clone();
        expected.kind = ticket(vec![kept, inline]);
        check_body(&blobs, ev, &expected).await;

        // Kinds without files are the plain JSON.
        let status = Event::new(
            "T-3",
            EventKind::StatusChanged {
                status: crate::event::Status::Resolved,
            },
        );
        check_body(&blobs, status.clone(), &status).await;
    }

    #[tokio::test]
    async fn large_file_streams_in_small_chunks() {
        let (_d, blobs) = store();
        let size = 8 * 1024 * 1024 + 1;
        let (ev, _) = event_with(&blobs, &[size]).await;
        let plan = BodyPlan::new(ev).unwrap();
        let (_, sizes) = plan.sign(&blobs, &secret(), "msg_1", 0).await.unwrap();
        assert_eq!(sizes, [size as u64]);
        let mut stream = std::pin::pin!(plan.stream(&blobs, sizes.clone()));
        let (mut chunks, mut total, mut max) = (0, 0, 0);
        while let Some(chunk) = stream.try_next().await.unwrap() {
            chunks += 1;
            total += chunk.len();
            max = max.max(chunk.len());
        }
        assert!(max <= MAX_CHUNK, "a chunk of {max} bytes");
        assert!(chunks > size / FILE_CHUNK, "{chunks} chunks");
        assert_eq!(total as u64, plan.len(&sizes));
    }

    #[tokio::test]
    async fn long_event_text_is_chunked_too() {
        let (_d, blobs) = store();
        let (mut ev, mut expected) = event_with(&blobs, &[10]).await;
        for e in [&mut ev, &mut expected] {
            let EventKind::Comment { comment } = &mut e.kind else {
                unreachable!()
            };
            comment.body = "x".repeat(300_000);
        }
        check_body(&blobs, ev, &expected).await;
    }

    #[tokio::test]
    async fn placeholder_found_in_the_event_is_refused() {
        let (_d, blobs) = store();
        let (mut ev, _) = event_with(&blobs, &[5]).await;
        let EventKind::Comment { comment } = &mut ev.kind else {
            unreachable!()
        };
        comment.body = "spelled deskbridge-file-n0nce-0- here".into();
        let err = BodyPlan::with_nonce(ev, "n0nce").err().unwrap().to_string();
        assert!(err.contains("file-0.pdf"), "{err}");
    }

    #[tokio::test]
    async fn file_changed_after_signing_fails_the_send() {
        let (_d, blobs) = store();
        let (ev, _) = event_with(&blobs, &[100_000]).await;
        let plan = BodyPlan::new(ev).unwrap();
        let (_, sizes) = plan.sign(&blobs, &secret(), "msg_1", 0).await.unwrap();
        for new_size in [99_999, 100_001, 200_000] {
            let path = blobs.path_of(&plan.files[0].sha256).unwrap();
            std::fs::write(&path, content(new_size, 0)).unwrap();
            let err = plan
                .stream(&blobs, sizes.clone())
                .try_collect::<Vec<_>>()
                .await
                .unwrap_err();
            assert!(
                matches!(err, BodyError::Changed { ref name, signed: 100_000, .. } if name == "file-0.pdf"),
                "{err:?}"
            );
        }
    }

    fn sink(url: String) -> WebhookSink {
        WebhookSink {
            endpoint: "partner".into(),
            url: url.parse().unwrap(),
            secret: secret(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    fn envelope(event: Event, link: &Link) -> Envelope {
        Envelope {
            link_id: link.id,
            dest: "partner".into(),
            origin: "us".into(),
            event,
            accepted_at: None,
            after: None,
        }
    }

    #[tokio::test]
    async fn missing_file_is_permanent_and_named() {
        let (_d, blobs) = store();
        let (_d2, other) = store();
        let (ev, _) = event_with(&other, &[1, 2]).await;
        let link = Link::new("us", "T-1", "partner");
        let env = envelope(ev, &link);
        // Nothing listens there: the error must come before any connection.
        let err = sink("http://127.0.0.1:9/hook".into())
            .send(Delivery {
                envelope: &env,
                link: &link,
                ticket: Some("P-1"),
                blobs: &blobs,
            })
            .await
            .unwrap_err();
        match err {
            SinkError::Permanent { message } => {
                assert!(message.contains("file file-0.pdf"), "{message}");
                assert!(message.contains("not in the file store"), "{message}");
            }
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    /// Accepts one HTTP/1.1 request, answers `answer` and returns the head
    /// and the body as received.
    async fn one_request(
        listener: tokio::net::TcpListener,
        answer: &'static str,
    ) -> (String, Vec<u8>) {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let head_end = loop {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the head ended");
            raw.extend_from_slice(&buf[..n]);
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
        let len: usize = header(&head, "content-length")
            .expect("a content-length header")
            .parse()
            .unwrap();
        let mut body = raw[head_end..].to_vec();
        while body.len() < len {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the body ended");
            body.extend_from_slice(&buf[..n]);
        }
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        conn.write_all(resp.as_bytes()).await.unwrap();
        conn.shutdown().await.unwrap();
        (head, body)
    }

    /// A header's value in a raw request head, by case-insensitive name.
    fn header(head: &str, name: &str) -> Option<String> {
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The same files, carried by a transfer instead of a comment.
    fn as_transfer(ev: &mut Event) {
        let attachments = ev.attachments_mut().map(std::mem::take).unwrap_or_default();
        ev.kind = EventKind::TicketCreated {
            ticket_data: Ticket {
                subject: "Printer".into(),
                attachments,
                ..Ticket::default()
            },
        };
    }

    #[tokio::test]
    async fn send_posts_a_signed_body_with_its_length() {
        let (_d, blobs) = store();
        let (mut ev, mut expected) = event_with(&blobs, &[1_000_003, 0, 49152]).await;
        // A transfer, so the receipt's ticket is used.
        as_transfer(&mut ev);
        as_transfer(&mut expected);
        let link = Link::new("us", "T-1", "partner");
        expected.ticket = link.id.to_string();
        let env = envelope(ev, &link);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(one_request(listener, r#"{"ticket":"P-9","id":"c-1"}"#));
        let applied = sink(url)
            .send(Delivery {
                envelope: &env,
                link: &link,
                ticket: None,
                blobs: &blobs,
            })
            .await
            .unwrap();
        assert_eq!(applied.ticket.as_deref(), Some("P-9"));
        assert_eq!(applied.remote_ids, ["c-1"]);

        let (head, body) = server.await.unwrap();
        assert_eq!(header(&head, "transfer-encoding"), None, "{head}");
        assert_eq!(
            header(&head, "content-length"),
            Some(body.len().to_string())
        );
        assert_eq!(
            header(&head, "content-type").as_deref(),
            Some("application/json")
        );
        assert!(
            body == serde_json::to_vec(&expected).unwrap(),
            "body differs"
        );
        let msg_id = format!("msg_{}_{}", env.event.id.simple(), link.id.simple());
        assert_eq!(header(&head, sign::HEADER_ID), Some(msg_id.clone()));
        let ts = header(&head, sign::HEADER_TIMESTAMP).unwrap();
        let sig = header(&head, sign::HEADER_SIGNATURE).unwrap();
        assert_eq!(
            sig,
            sign::sign(&secret(), &msg_id, ts.parse().unwrap(), &body)
        );
        sign::verify(
            &[secret()],
            Some(&msg_id),
            Some(&ts),
            Some(&sig),
            &body,
            chrono::Utc::now().timestamp(),
            sign::DEFAULT_TOLERANCE_SECS,
        )
        .unwrap();
    }
}
