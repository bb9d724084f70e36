//! A proxy between deskbridge and a live product that answers chosen
//! requests with a fault instead of (or after) the product's answer: 429
//! with Retry-After or 500 before the product sees the request, or 500 or
//! no answer at all after the product applied it (the nastiest case: the
//! write happened, deskbridge cannot know). Everything else passes through
//! unchanged, so the product itself is what the test reads back.
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// 429 with `Retry-After: N`, not forwarded.
    TooMany(u64),
    /// 500, not forwarded.
    Fail,
    /// Forwarded and applied by the product, then answered 500.
    FailAfter,
    /// Forwarded and applied by the product, then never answered.
    HangAfter,
    /// Never forwarded, never answered.
    Hang,
}

/// Requests matching `method`, a path and query containing `path` and
/// (when set) a body containing `body` get `faults`, one each, in order.
struct Rule {
    method: String,
    path: String,
    body: Option<String>,
    faults: Vec<Fault>,
}

#[derive(Default)]
struct Plan {
    rules: Vec<Rule>,
    /// "METHOD path fault" for every fault served.
    served: Vec<String>,
    /// "METHOD path?query" of every request, in order.
    seen: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    plan: Arc<Mutex<Plan>>,
}

pub struct FaultyProxy {
    /// `base_url` with the proxy's origin: give it to deskbridge.
    pub url: String,
    plan: Arc<Mutex<Plan>>,
}

/// `http://host:port` of a URL, and the rest.
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

impl FaultyProxy {
    /// A proxy for the product at `base_url`, on a free loopback port.
    pub async fn start(base_url: &str) -> FaultyProxy {
        let (origin, path) = split_origin(base_url);
        let plan = Arc::new(Mutex::new(Plan::default()));
        let shared = Shared {
            upstream: origin.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            plan: plan.clone(),
        };
        let app = axum::Router::new()
            .fallback(forward)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FaultyProxy {
            url: format!("http://{addr}{path}"),
            plan,
        }
    }

    /// The next requests matching `method`, `path` (contained in the path
    /// and query) and `body` (contained in the body, when given) get
    /// `faults` in turn.
    pub fn arm(&self, method: &str, path: &str, body: Option<&str>, faults: &[Fault]) {
        self.plan.lock().unwrap().rules.push(Rule {
            method: method.to_string(),
            path: path.to_string(),
            body: body.map(str::to_string),
            faults: faults.to_vec(),
        });
    }

    /// Faults armed and not served yet (a test whose faults were never
    /// hit proves nothing).
    pub fn unserved(&self) -> Vec<String> {
        self.plan
            .lock()
            .unwrap()
            .rules
            .iter()
            .filter(|r| !r.faults.is_empty())
            .map(|r| format!("{} {} {:?}: {:?}", r.method, r.path, r.body, r.faults))
            .collect()
    }

    /// Every fault served so far.
    pub fn served(&self) -> Vec<String> {
        self.plan.lock().unwrap().served.clone()
    }

    /// "METHOD path?query" of every request so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.plan.lock().unwrap().seen.clone()
    }
}

async fn forward(State(s): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path_q = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let fault = {
        let mut plan = s.plan.lock().unwrap();
        plan.seen.push(format!("{} {path_q}", parts.method));
        let text = String::from_utf8_lossy(&body);
        let hit = plan.rules.iter_mut().find(|r| {
            !r.faults.is_empty()
                && r.method == parts.method.as_str()
                && path_q.contains(&r.path)
                && r.body.as_ref().is_none_or(|b| text.contains(b.as_str()))
        });
        let fault = hit.map(|r| r.faults.remove(0));
        if let Some(f) = fault {
            plan.served
                .push(format!("{} {} {f:?}", parts.method, parts.uri.path()));
        }
        fault
    };
    match fault {
        Some(Fault::TooMany(secs)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                "simulated rate limit",
            )
                .into_response()
        }
        Some(Fault::Fail) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "simulated failure").into_response()
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(300)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        _ => {}
    }
    let mut up = s
        .http
        .request(parts.method.clone(), format!("{}{path_q}", s.upstream))
        .body(body);
    for (k, v) in &parts.headers {
        if !hop_by_hop(k) {
            up = up.header(k, v);
        }
    }
    // In its own task: the product's answer is read in full even when
    // deskbridge gave up waiting (the write is applied either way).
    let answer = tokio::spawn(async move {
        let r = up.send().await?;
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    })
    .await
    .unwrap();
    let (status, headers, bytes) = match answer {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    };
    match fault {
        Some(Fault::FailAfter) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "simulated failure after the write",
            )
                .into_response()
        }
        Some(Fault::HangAfter) => {
            tokio::time::sleep(Duration::from_secs(300)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        _ => {}
    }
    let mut resp = Response::builder().status(status);
    for (k, v) in &headers {
        if !hop_by_hop(k) {
            resp = resp.header(k, v);
        }
    }
    resp.body(axum::body::Body::from(bytes)).unwrap()
}

fn hop_by_hop(h: &HeaderName) -> bool {
    matches!(
        h.as_str(),
        "host" | "connection" | "transfer-encoding" | "keep-alive" | "content-length" | "upgrade"
    )
}
