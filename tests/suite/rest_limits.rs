//! A partner's "slow down" is obeyed by the whole endpoint (issue #20):
//! one request's 429 with Retry-After, or the product's quota headers
//! saying none is left, hold every request to that endpoint, the poll's
//! and the deliveries', until the time given; a held request is not a
//! failure (it waits, then goes once), and a stop does not wait for the
//! pause. Driven through the real REST sink and poller (sharing one
//! endpoint, as the daemon does) against a fake Zendesk on 127.0.0.1:0
//! that answers with the documented shapes (tests/fixtures/rest/zendesk/)
//! and notes when each request came. No wall-clock speed is asserted: only
//! that no request came before the time the partner gave.
use super::common::eventually;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use deskbridge::blob::BlobStore;
use deskbridge::bus::notify::Notifier;
use deskbridge::config::Config;
use deskbridge::connector::rest::poll::{Cursor, PollBoard, Poller};
use deskbridge::connector::rest::sink::RestSink;
use deskbridge::connector::rest::RestEndpoint;
use deskbridge::connector::{Delivery, Sink, SinkError};
use deskbridge::event::{Audience, Comment, Event, EventKind};
use deskbridge::ingest::Ingest;
use deskbridge::link::Link;
use deskbridge::store::{Envelope, Store};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const TICKET: &str = "35436";
const COMMENTS: &str = "GET /api/v2/tickets/35436/comments.json";
const IDENTITY: &str = "GET /api/v2/users/me.json";
const LIST: &str = "GET /api/v2/search.json";
/// Events whose comments the fixture's history holds once written.
const COMMENT: &str = "0190f6b1-a2b3-7c4d-8e9f-0a1b2c3d4e02";
const NOTE: &str = "0190f6b1-a2b3-7c4d-8e9f-0a1b2c3d4e03";
/// The slack allowed between the fake's clock and the client's.
const SLACK: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------- the fake

/// What the fake does to the next request of a route instead of (or
/// besides) its usual answer.
#[derive(Clone, Debug)]
enum Twist {
    /// This status and these headers, the request not taken.
    Refuse(u16, Vec<(&'static str, String)>),
    /// The usual answer with these headers too.
    Headers(Vec<(&'static str, String)>),
}

#[derive(Default)]
struct FakeState {
    /// When each request came, and "METHOD /path".
    seen: Vec<(Instant, String)>,
    twists: HashMap<String, VecDeque<Twist>>,
    /// When each twist was answered, and what it was.
    twisted: Vec<(Instant, String)>,
    /// The bodies of the ticket updates (comments written).
    puts: Vec<String>,
}

#[derive(Clone)]
struct Fake {
    url: String,
    state: Arc<Mutex<FakeState>>,
}

fn fixture(file: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/rest/zendesk/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The ticket's comments as the product holds them: deskbridge's only
/// once written.
fn comments(puts: &[String]) -> Value {
    let mut h = fixture("history.json");
    h["comments"].as_array_mut().unwrap().retain(|c| {
        let body = c["body"].as_str().unwrap_or_default();
        match body.find("[deskbridge:") {
            None => true,
            Some(i) => {
                let marker = &body[i..];
                puts.iter().any(|p| p.contains(marker))
            }
        }
    });
    h
}

async fn answer(
    state: axum::extract::State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = format!("{method} {}", uri.path());
    let mut s = state.lock().unwrap();
    s.seen.push((Instant::now(), key.clone()));
    let twist = s.twists.get_mut(&key).and_then(VecDeque::pop_front);
    let extra = match twist {
        Some(Twist::Refuse(code, headers)) => {
            s.twisted.push((Instant::now(), format!("{key} {code}")));
            let mut r = (
                StatusCode::from_u16(code).unwrap(),
                axum::Json(json!({"error": "simulated rate limit"})),
            )
                .into_response();
            for (k, v) in headers {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            return r;
        }
        Some(Twist::Headers(h)) => {
            s.twisted.push((Instant::now(), format!("{key} headers")));
            h
        }
        None => vec![],
    };
    let json = match key.as_str() {
        IDENTITY => fixture("me.json"),
        LIST => {
            let mut l = fixture("list.json");
            l["results"] = json!([]);
            l
        }
        COMMENTS => comments(&s.puts),
        "GET /api/v2/tickets/35436.json" => fixture("ticket.json"),
        "PUT /api/v2/tickets/35436.json" => {
            s.puts.push(String::from_utf8_lossy(&body).into_owned());
            fixture("ticket.json")
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": format!("the fake has no route {key}")})),
            )
                .into_response()
        }
    };
    let mut r = axum::Json(json).into_response();
    for (k, v) in extra {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

impl Fake {
    async fn start() -> Fake {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { url, state }
    }

    fn twist(&self, key: &str, t: Twist) {
        let mut s = self.state.lock().unwrap();
        s.twists.entry(key.to_string()).or_default().push_back(t);
    }

    /// When the first twist was answered.
    fn twisted_at(&self) -> Option<Instant> {
        self.state.lock().unwrap().twisted.first().map(|t| t.0)
    }

    fn seen(&self) -> Vec<(Instant, String)> {
        self.state.lock().unwrap().seen.clone()
    }

    fn puts(&self) -> Vec<String> {
        self.state.lock().unwrap().puts.clone()
    }
}

// ------------------------------------------------------- the environment

/// One Zendesk endpoint, "prod", its sink and its poller sharing it (as
/// the daemon builds them), linked to a webhook desk by one ticket.
struct Env {
    dir: tempfile::TempDir,
    store: Store,
    ep: Arc<RestEndpoint>,
    link: Link,
    poller: Poller,
    board: PollBoard,
}

impl Env {
    async fn new(fake: &Fake) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret-token").unwrap();
        let secret = dir.path().join("desk.secret");
        std::fs::write(&secret, "whsec_dGVzdHNlY3JldA==").unwrap();
        let conf = format!(
            r#"
[parties.svc]
name = "Service Co"
role = "service_company"
[parties.vendor]
name = "Vendor Co"
role = "vendor"
[endpoints.desk]
party = "svc"
kind = "webhook"
service_account = "deskbridge"
[endpoints.desk.webhook]
url = "http://127.0.0.1:9/never-called"
outbound_secret = {{ file = "{secret}" }}
[endpoints.prod]
party = "vendor"
kind = "rest"
service_account = "deskbridge@example.com"
[endpoints.prod.rest]
profile = "zendesk"
base_url = "{url}"
username = "deskbridge@example.com/token"
credentials = {{ file = "{token}" }}
timeout_secs = 5
"#,
            secret = secret.display(),
            url = fake.url,
            token = token.display(),
        );
        let config = Arc::new(Config::parse(&conf).unwrap_or_else(|e| panic!("{e}\n{conf}")));
        let store = Store::open(&dir.path().join("db")).unwrap();
        let blobs = BlobStore::open(dir.path().join("files"), 1 << 20).unwrap();
        let ingest = Ingest::new(config.clone(), store.clone(), blobs, Notifier::default());
        let ep =
            RestEndpoint::from_config("prod", config.endpoints["prod"].rest().unwrap()).unwrap();
        let mut link = Link::new("desk", "D1", "prod");
        link.downstream.ticket = Some(TICKET.to_string());
        store.ingest_tx(|tx| tx.put_link(&link)).unwrap();
        // The poll's place, so that a round lists the changes.
        let since = chrono::Utc::now() - chrono::Duration::minutes(1);
        let cursor = Cursor {
            since,
            floor: since,
            statuses: Default::default(),
            edge: Default::default(),
        };
        ingest
            .accept_polled(
                "prod",
                None,
                vec![],
                Some(&serde_json::to_vec(&cursor).unwrap()),
            )
            .await
            .unwrap();
        let board = PollBoard::default();
        let poller = Poller {
            board: board.clone(),
            ep: ep.clone(),
            ingest,
            store: store.clone(),
            blobs: BlobStore::open(dir.path().join("files"), 1 << 20).unwrap(),
            service_account: "deskbridge@example.com".into(),
        };
        Env {
            dir,
            store,
            ep,
            link,
            poller,
            board,
        }
    }

    /// Applies a comment as the relay does: again after a retryable
    /// failure, when its Retry-After says. The attempts and the failures.
    async fn deliver(&self, id: &str, text: &str, audience: Audience) -> (u32, Vec<String>) {
        let mut ev = Event::new(
            "D1",
            EventKind::Comment {
                comment: Comment {
                    body: text.into(),
                    audience,
                    attachments: vec![],
                },
            },
        );
        ev.id = Uuid::parse_str(id).unwrap();
        ev.author = Some(deskbridge::event::Author {
            name: "Dana".into(),
            email: None,
        });
        ev.partner = Some(deskbridge::event::PartnerRef {
            party: "Service Co".into(),
            ticket: Some("D1".into()),
        });
        let envelope = Envelope {
            link_id: self.link.id,
            dest: "prod".into(),
            origin: "desk".into(),
            event: ev,
            accepted_at: None,
            after: None,
        };
        let sink = RestSink {
            ep: self.ep.clone(),
        };
        let blobs = BlobStore::open(self.dir.path().join("files"), 1 << 20).unwrap();
        let mut failures = vec![];
        for attempt in 1..=5 {
            let r = sink
                .apply(Delivery {
                    envelope: &envelope,
                    link: &self.link,
                    ticket: Some(TICKET),
                    blobs: &blobs,
                })
                .await;
            match r {
                Ok(_) => return (attempt, failures),
                Err(SinkError::Transient {
                    message,
                    retry_after,
                }) => {
                    failures.push(message);
                    tokio::time::sleep(retry_after.unwrap_or(Duration::from_millis(20))).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("still failing after 5 attempts: {failures:#?}");
    }
}

/// The requests that came in `[from, to)`.
fn between(seen: &[(Instant, String)], from: Instant, to: Instant) -> Vec<String> {
    seen.iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, k)| k.clone())
        .collect()
}

// ----------------------------------------------------------------- tests

/// A delivery's read answered 429 with `Retry-After: 2`: the poll and
/// another delivery, started meanwhile, wait with it; not one request
/// reaches the product for those 2 seconds; then each goes once, the held
/// delivery without a failure of its own.
#[tokio::test]
async fn one_429_pauses_every_request_to_the_endpoint() {
    let fake = Fake::start().await;
    let env = Arc::new(Env::new(&fake).await);
    fake.twist(
        COMMENTS,
        Twist::Refuse(429, vec![("retry-after", "2".into())]),
    );
    let first = {
        let env = env.clone();
        tokio::spawn(async move {
            env.deliver(COMMENT, "Please bring a spare load cell", Audience::Partner)
                .await
        })
    };
    eventually("the 429 pauses the endpoint", 10, || async {
        env.ep.client.paused().is_some()
    })
    .await;
    let refused = fake.twisted_at().unwrap();
    let paused = env.ep.client.paused().unwrap().to_string();
    assert!(paused.contains("by the partner's Retry-After"), "{paused}");
    // Started during the pause: a poll round and another delivery.
    let (polled, second, first) = tokio::join!(
        env.poller.poll_now(),
        env.deliver(NOTE, "Spare part reserved", Audience::Internal),
        first
    );
    polled.unwrap();
    let (attempts, failures) = first.unwrap();
    assert_eq!(attempts, 2, "{failures:#?}");
    assert!(failures[0].contains("answered 429"), "{failures:#?}");
    assert!(
        failures[0].contains("every request to the partner paused until"),
        "{failures:#?}"
    );
    assert_eq!(second, (1, vec![]), "held, not failed");

    let seen = fake.seen();
    let during = between(
        &seen,
        refused + SLACK,
        refused + Duration::from_secs(2) - SLACK,
    );
    assert_eq!(during, Vec::<String>::new(), "no request during the pause");
    let after = between(&seen, refused + SLACK, Instant::now());
    for want in [IDENTITY, LIST, COMMENTS, "PUT /api/v2/tickets/35436.json"] {
        assert!(after.iter().any(|k| k == want), "{want} after: {after:#?}");
    }
    // Each comment written once.
    let puts = fake.puts();
    assert_eq!(puts.len(), 2, "{puts:#?}");
    for id in [COMMENT, NOTE] {
        let marker = format!("[deskbridge:{}]", Uuid::parse_str(id).unwrap().simple());
        assert_eq!(puts.iter().filter(|p| p.contains(&marker)).count(), 1);
    }
    assert_eq!(env.ep.client.paused(), None);
}

/// Zendesk's quota headers at 0 with `ratelimit-reset: 2` on an answer
/// that succeeded: nothing more goes for 2 seconds, then the rest of the
/// round and a delivery started meanwhile go; the pause is named by the
/// header on the poller's status.
#[tokio::test]
async fn quota_headers_at_zero_pause_until_the_reset() {
    let fake = Fake::start().await;
    let env = Arc::new(Env::new(&fake).await);
    fake.twist(
        IDENTITY,
        Twist::Headers(vec![
            ("x-rate-limit", "700".into()),
            ("x-rate-limit-remaining", "0".into()),
            ("ratelimit-remaining", "0".into()),
            ("ratelimit-reset", "2".into()),
        ]),
    );
    let round = {
        let env = env.clone();
        tokio::spawn(async move { env.poller.poll_now().await.map_err(|e| e.to_string()) })
    };
    eventually("the quota pauses the endpoint", 10, || async {
        env.ep.client.paused().is_some()
    })
    .await;
    let spent = fake.twisted_at().unwrap();
    let paused = env.ep.client.paused().unwrap().to_string();
    assert!(
        paused.contains("by the partner's quota (ratelimit-remaining: 0)"),
        "{paused}"
    );
    let (delivered, round) = tokio::join!(
        env.deliver(COMMENT, "Please bring a spare load cell", Audience::Partner),
        round
    );
    round.unwrap().unwrap();
    assert_eq!(delivered, (1, vec![]), "held, not failed");
    let seen = fake.seen();
    let during = between(&seen, spent + SLACK, spent + Duration::from_secs(2) - SLACK);
    assert_eq!(during, Vec::<String>::new(), "no request before the reset");
    let after = between(&seen, spent + SLACK, Instant::now());
    assert!(after.iter().any(|k| k == LIST), "{after:#?}");
    assert_eq!(fake.puts().len(), 1);
    // Quota left again (no header says otherwise): no pause.
    assert_eq!(env.ep.client.paused(), None);
}

/// A partner that asks for an hour: the poller shows the pause, a stop
/// ends the poller at once, and the requests held (the poll's and a
/// delivery's) go unsent, the delivery's as a retryable failure that the
/// restart takes up again; nothing reached the product meanwhile.
#[tokio::test]
async fn a_stop_does_not_wait_for_the_pause() {
    let fake = Fake::start().await;
    let env = Arc::new(Env::new(&fake).await);
    fake.twist(
        IDENTITY,
        Twist::Refuse(503, vec![("retry-after", "7200".into())]),
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let poller = {
        let env = env.clone();
        let p = Poller {
            board: env.board.clone(),
            ep: env.ep.clone(),
            ingest: env.poller.ingest.clone(),
            store: env.store.clone(),
            blobs: env.poller.blobs.clone(),
            service_account: env.poller.service_account.clone(),
        };
        tokio::spawn(p.run(shutdown))
    };
    eventually("the poller shows the pause", 10, || async {
        let b = env.board.lock().unwrap();
        b.get("prod")
            .and_then(|s| s.failing.clone())
            .is_some_and(|f| f.contains("paused until") && f.contains("answered 503"))
    })
    .await;
    let refused = fake.twisted_at().unwrap();
    // Capped at an hour, not two.
    let until = env.ep.client.paused().unwrap().at;
    assert!(until <= chrono::Utc::now() + chrono::Duration::seconds(3600));
    let held = {
        let env = env.clone();
        tokio::spawn(async move {
            let sink = RestSink { ep: env.ep.clone() };
            let blobs = BlobStore::open(env.dir.path().join("files"), 1 << 20).unwrap();
            let mut ev = Event::new(
                "D1",
                EventKind::Comment {
                    comment: Comment {
                        body: "held".into(),
                        audience: Audience::Partner,
                        attachments: vec![],
                    },
                },
            );
            ev.id = Uuid::now_v7();
            let envelope = Envelope {
                link_id: env.link.id,
                dest: "prod".into(),
                origin: "desk".into(),
                event: ev,
                accepted_at: None,
                after: None,
            };
            sink.apply(Delivery {
                envelope: &envelope,
                link: &env.link,
                ticket: Some(TICKET),
                blobs: &blobs,
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the delivery waits");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), poller)
        .await
        .expect("the poller stops without waiting out the pause")
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the held delivery ends")
        .unwrap();
    match r {
        Err(SinkError::Transient { message, .. }) => {
            assert!(
                message.contains("not sent, deskbridge is stopping"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let seen = fake.seen();
    assert_eq!(
        between(&seen, refused + SLACK, Instant::now()),
        Vec::<String>::new()
    );
}
