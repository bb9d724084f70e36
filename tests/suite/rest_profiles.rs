//! The profiles made from products' public API documentation (Zendesk,
//! Freshdesk, Jira Service Management, ServiceNow, GLPI, Zammad, Okdesk),
//! driven through the real REST sink and poller against a fake product on
//! 127.0.0.1:0. The fake answers with the documented shapes in
//! tests/fixtures/rest/<product>/ and records every request, so each test
//! asserts the exact requests the product received: one creation, one
//! public comment with the product's public flag, one internal note with
//! its internal flag, statuses mapped both ways, a refused status caught by
//! reading back, no echo of deskbridge's own writes, and a product that
//! answers 429 with Retry-After, 500, or hangs, with nothing lost or doubled.
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use deskbridge::blob::BlobStore;
use deskbridge::bus::notify::Notifier;
use deskbridge::config::Config;
use deskbridge::connector::rest::poll::{Cursor, Identity, Poller, Reader};
use deskbridge::connector::rest::RestEndpoint;
use deskbridge::connector::{Delivery, Sink, SinkError};
use deskbridge::event::{Audience, Comment, Event, EventKind, Status, Ticket};
use deskbridge::ingest::Ingest;
use deskbridge::link::Link;
use deskbridge::store::{Applied, Envelope, Store};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

// ---------------------------------------------------------------- the fake

/// One answer of the fake product.
#[derive(Clone, Debug)]
enum Reply {
    Json(Value),
    /// An error status, with its Retry-After seconds.
    Fail(u16, Option<u64>),
    /// The request is taken (and recorded) but never answered in time.
    Hang,
    /// A file's bytes.
    Bytes(Vec<u8>),
    /// 302 to this address.
    Redirect(String),
}

/// A request the fake received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Value,
    /// The body as sent.
    raw: Vec<u8>,
    /// Headers by lower-case name.
    headers: HashMap<String, String>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The query's value of `key`, decoded.
    fn param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_string())
    }
}

#[derive(Default)]
struct FakeState {
    /// "METHOD /path" → answers in turn; the last one repeats.
    routes: HashMap<String, VecDeque<Reply>>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
struct Fake {
    url: String,
    state: Arc<Mutex<FakeState>>,
}

async fn answer(
    state: axum::extract::State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = format!("{method} {}", uri.path());
    let reply = {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw: body.to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect(),
        });
        match s.routes.get_mut(&key) {
            Some(q) if q.len() > 1 => q.pop_front(),
            Some(q) => q.front().cloned(),
            None => None,
        }
    };
    match reply {
        Some(Reply::Json(v)) => axum::Json(v).into_response(),
        Some(Reply::Fail(code, retry_after)) => {
            let mut r = (
                StatusCode::from_u16(code).unwrap(),
                axum::Json(json!({"error": "simulated", "description": "try later"})),
            )
                .into_response();
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            r
        }
        Some(Reply::Bytes(b)) => b.into_response(),
        Some(Reply::Redirect(to)) => (StatusCode::FOUND, [("location", to)]).into_response(),
        Some(Reply::Hang) => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("the fake has no route {key}")})),
        )
            .into_response(),
    }
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

    /// Answers `key` ("METHOD /path") with `replies` in turn.
    fn on(&self, key: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(key.to_string(), replies.into());
    }

    /// The requests received since the last call.
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().unwrap().seen)
    }
}

/// Every request but reads: what changed something in the product.
fn writes(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|s| s.method != "GET").collect()
}

fn key_of(s: &Seen) -> String {
    format!("{} {}", s.method, s.path)
}

// ------------------------------------------------------------ the fixtures

fn fixture(product: &str, file: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/rest/{product}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `v` with `value` at `pointer`.
fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the fixture")) = value;
    v
}

/// `v` without the entries of the array at `list` whose `text` carries a
/// deskbridge marker (the history before deskbridge wrote to it).
fn without_ours(v: &Value, list: &str, text: &str) -> Value {
    let mut v = v.clone();
    let items = v.pointer_mut(list).and_then(Value::as_array_mut).unwrap();
    items.retain(|e| {
        !e.pointer(text)
            .and_then(Value::as_str)
            .is_some_and(|t| t.contains("[deskbridge:"))
    });
    v
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ------------------------------------------------------------- the events

const TRANSFER: &str = "0190f6b1-a2b3-7c4d-8e9f-0a1b2c3d4e01";
const COMMENT: &str = "0190f6b1-a2b3-7c4d-8e9f-0a1b2c3d4e02";
const NOTE: &str = "0190f6b1-a2b3-7c4d-8e9f-0a1b2c3d4e03";

fn event(id: &str, kind: EventKind) -> Event {
    let mut ev = Event::new("D1", kind);
    ev.id = Uuid::parse_str(id).unwrap_or_else(|_| Uuid::now_v7());
    ev.author = Some(deskbridge::event::Author {
        name: "Dana".into(),
        email: None,
    });
    ev.partner = Some(deskbridge::event::PartnerRef {
        party: "Service Co".into(),
        ticket: Some("D1".into()),
    });
    ev
}

fn comment(id: &str, body: &str, audience: Audience) -> Event {
    event(
        id,
        EventKind::Comment {
            comment: Comment {
                body: body.into(),
                audience,
                attachments: vec![],
            },
        },
    )
}

/// The text deskbridge writes for `body` of event `id` (format.comment of
/// every profile here).
fn relayed(body: &str, id: &str) -> String {
    format!(
        "Dana (Service Co) wrote:\n\n{body}\n\n[deskbridge:{}]",
        Uuid::parse_str(id).unwrap().simple()
    )
}

// ------------------------------------------------------- the environment

/// A store with the endpoint "desk" (a webhook desk, upstream) and "prod"
/// (the product under test, through its profile), linked by one ticket.
struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    ingest: Ingest,
    ep: Arc<RestEndpoint>,
    link: Link,
}

/// The product's side of a case.
struct Case {
    profile: &'static str,
    /// Lines added to `[endpoints.prod.rest]`.
    rest: &'static str,
    service_account: &'static str,
    /// Whether a request carries the credential as the product expects
    /// (the session's login request included).
    auth: fn(&Seen) -> bool,
    /// The session's login request, "METHOD /path", answered with
    /// session.json.
    login: Option<&'static str>,
    /// What find_ticket reads ("list.json" when it is the list request),
    /// and the array of tickets in it.
    find_file: &'static str,
    find_ptr: &'static str,
    /// The product's ticket id in the fixtures.
    ticket: &'static str,
    /// The fake's routes, "METHOD /path".
    /// `None`: the product has no such request (the settings name the user).
    identity: Option<&'static str>,
    find: &'static str,
    create: &'static str,
    read: &'static str,
    /// `None`: the history is inside the ticket.
    history: Option<&'static str>,
    comment: &'static str,
    note: &'static str,
    set_status: &'static str,
    list: &'static str,
    /// Pointers in the fixtures: the array of tickets in list.json, the
    /// history's entries and their text.
    list_ptr: &'static str,
    history_ptr: &'static str,
    text_ptr: &'static str,
    /// The bodies the product must receive.
    create_body: Value,
    comment_body: fn(&str) -> Value,
    note_body: fn(&str) -> Value,
    status_body: fn(&str) -> Value,
    /// The product's values for resolved and waiting.
    resolved: &'static str,
    waiting: &'static str,
    /// Query parameter and value of the page after the first (page size 1),
    /// and where the list request carries the time it asks from.
    /// `None`: the product lists changes without paging.
    next_page: Option<(&'static str, &'static str)>,
    since_param: &'static str,
    /// The window 10:00:30 UTC as the list request writes it.
    first_since: &'static str,
    /// The next window (10:05:00 less the profile's lookback, 5 s unless
    /// it says) as the list request writes it.
    since_shown: &'static str,
}

impl Env {
    async fn new(case: &Case, fake: &Fake) -> Env {
        let dir = tempfile::tempdir().unwrap();
        // The shipped profile with pages of one ticket, to see paging.
        let profile =
            deskbridge::connector::rest::profile::Profile::load(Some(case.profile), None).unwrap();
        let mut p = serde_json::to_value(&profile).unwrap();
        if case.next_page.is_some() {
            p["list_changes"]["page_size"] = json!(1);
        }
        let text = toml::to_string(&p).unwrap();
        let profile_file = dir.path().join("profile.toml");
        std::fs::write(&profile_file, text).unwrap();
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
service_account = "{sa}"
[endpoints.prod.rest]
profile_file = "{profile}"
base_url = "{url}"
credentials = {{ file = "{token}" }}
timeout_secs = 1
{extra}
"#,
            secret = secret.display(),
            sa = case.service_account,
            profile = profile_file.display(),
            url = fake.url,
            token = token.display(),
            extra = case.rest,
        );
        let config = Arc::new(Config::parse(&conf).unwrap_or_else(|e| panic!("{e}\n{conf}")));
        let store = Store::open(&dir.path().join("db")).unwrap();
        let blobs = BlobStore::open(dir.path().join("files"), 1 << 20).unwrap();
        let ingest = Ingest::new(config.clone(), store.clone(), blobs, Notifier::default());
        let ep =
            RestEndpoint::from_config("prod", config.endpoints["prod"].rest().unwrap()).unwrap();
        let mut link = Link::new("desk", "D1", "prod");
        link.downstream.ticket = Some(case.ticket.to_string());
        store.ingest_tx(|tx| tx.put_link(&link)).unwrap();
        Env {
            _dir: dir,
            store,
            ingest,
            ep,
            link,
        }
    }

    /// Applies `ev` as the relay does: again after a retryable failure
    /// (waiting what Retry-After says), until done or refused; what it
    /// did is recorded (the ids it wrote, the status the link now has).
    async fn deliver(&self, ev: Event, ticket: Option<&str>) -> (Result<Applied, SinkError>, u32) {
        let sink = deskbridge::connector::rest::sink::RestSink {
            ep: self.ep.clone(),
        };
        let envelope = Envelope {
            link_id: self.link.id,
            dest: "prod".into(),
            origin: "desk".into(),
            event: ev,
            // The fixtures' entries carry the documentation's old dates.
            accepted_at: None,
            after: None,
        };
        let blobs = BlobStore::open(self._dir.path().join("files"), 1 << 20).unwrap();
        let key = self
            .store
            .ingest_tx(|tx| tx.enqueue(&mut envelope.clone()))
            .unwrap();
        for attempt in 1..=5 {
            let r = sink
                .apply(Delivery {
                    envelope: &envelope,
                    link: &self.link,
                    ticket,
                    blobs: &blobs,
                })
                .await;
            match r {
                Err(SinkError::Transient { retry_after, .. }) => {
                    tokio::time::sleep(retry_after.unwrap_or(Duration::from_millis(20))).await;
                }
                Ok(applied) => {
                    self.store.complete(&key, &envelope, &applied).unwrap();
                    return (Ok(applied), attempt);
                }
                other => return (other, attempt),
            }
        }
        panic!("still failing after 5 attempts");
    }

    /// The poll cursor at 10:00:30, just after the transfer created the
    /// ticket in the fixtures' story.
    async fn poll_from_transfer(&self) {
        let start = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let cursor = Cursor {
            since: start,
            floor: start,
            statuses: Default::default(),
            edge: Default::default(),
        };
        self.ingest
            .accept_polled(
                "prod",
                None,
                vec![],
                Some(&serde_json::to_vec(&cursor).unwrap()),
            )
            .await
            .unwrap();
    }

    fn poller(&self, case: &Case) -> Poller {
        Poller {
            board: Default::default(),
            ep: self.ep.clone(),
            ingest: self.ingest.clone(),
            store: self.store.clone(),
            blobs: BlobStore::open(self._dir.path().join("files"), 1 << 20).unwrap(),
            service_account: case.service_account.to_string(),
        }
    }

    /// What waits for the desk: comment bodies and statuses.
    fn desk_queue(&self) -> (Vec<String>, Vec<Status>) {
        let mut comments = vec![];
        let mut statuses = vec![];
        for (_, env) in self.store.pending("desk").unwrap() {
            match env.event.kind {
                EventKind::Comment { comment } => comments.push(comment.body),
                EventKind::StatusChanged { status } => statuses.push(status),
                // The product's status, shown to the desk as its partner's.
                EventKind::FieldChanged { field, .. } if field == "partner_status" => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        (comments, statuses)
    }
}

// ------------------------------------------------------------ the scenario

/// The whole story for one product.
async fn run(case: Case) {
    let fake = Fake::start().await;
    let env = Env::new(&case, &fake).await;
    let fx = |f: &str| fixture(case.profile, f);
    let ticket = fx("ticket.json");
    let list = fx("list.json");
    let none_listed = with(list.clone(), case.list_ptr, json!([]));
    let found = fx(case.find_file);
    let none_found = with(found.clone(), case.find_ptr, json!([]));
    if let Some(login) = case.login {
        fake.on(login, vec![Reply::Json(fx("session.json"))]);
    }
    // The history with deskbridge's own writes, and before them.
    let (history_full, history_before) = match case.history {
        Some(_) => {
            let h = fx("history.json");
            let before = without_ours(&h, case.history_ptr, case.text_ptr);
            (h, before)
        }
        None => {
            let before = without_ours(&ticket, case.history_ptr, case.text_ptr);
            (ticket.clone(), before)
        }
    };
    // Before deskbridge wrote to it, the ticket's history has none of its
    // comments; once written, it has.
    let history_route = |replies: Vec<Reply>| match case.history {
        Some(h) => {
            fake.on(case.read, vec![Reply::Json(ticket.clone())]);
            fake.on(h, replies);
        }
        None => fake.on(case.read, replies),
    };

    // 1. Transfer: a 500 on the first look; the creation is taken but not
    // answered; the retry finds it by its marker instead of creating twice.
    fake.on(
        case.find,
        vec![
            Reply::Fail(500, None),
            Reply::Json(none_found),
            Reply::Json(found),
        ],
    );
    fake.on(case.create, vec![Reply::Hang]);
    history_route(vec![Reply::Json(history_full.clone())]);
    let subject = "Scale shows wrong weight";
    let transfer = event(
        TRANSFER,
        EventKind::TicketCreated {
            ticket_data: Ticket {
                subject: subject.into(),
                description: "Calibration lost".into(),
                ..Ticket::default()
            },
        },
    );
    let (r, attempts) = env.deliver(transfer, None).await;
    let applied = r.unwrap();
    assert_eq!(
        applied.ticket.as_deref(),
        Some(case.ticket),
        "{}",
        case.profile
    );
    assert_eq!(attempts, 3);
    let seen = fake.take();
    let w = writes(&seen);
    assert_eq!(w.len(), 1, "one creation: {w:#?}");
    assert_eq!(key_of(w[0]), case.create);
    assert_eq!(w[0].body, case.create_body, "{}", case.profile);
    // The credential reaches the product, the way the profile says.
    for s in &seen {
        assert!((case.auth)(s), "{s:#?}");
    }

    // 2. A comment for the partner: 429 with Retry-After first.
    match case.history {
        Some(h) => {
            fake.on(
                case.read,
                vec![Reply::Fail(429, Some(1)), Reply::Json(ticket.clone())],
            );
            fake.on(
                h,
                vec![
                    Reply::Json(history_before.clone()),
                    Reply::Json(history_full.clone()),
                ],
            );
        }
        None => history_route(vec![
            Reply::Fail(429, Some(1)),
            Reply::Json(history_before.clone()),
            Reply::Json(history_full.clone()),
        ]),
    }
    fake.on(case.comment, vec![Reply::Json(ticket.clone())]);
    let started = std::time::Instant::now();
    let text = "Please bring a spare load cell";
    let (r, attempts) = env
        .deliver(comment(COMMENT, text, Audience::Partner), Some(case.ticket))
        .await;
    r.unwrap();
    assert_eq!(attempts, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let seen = fake.take();
    let w = writes(&seen);
    assert_eq!(w.len(), 1, "one comment: {w:#?}");
    assert_eq!(key_of(w[0]), case.comment);
    assert_eq!(w[0].body, (case.comment_body)(&relayed(text, COMMENT)));

    // 3. An internal note: the product takes it and hangs; the retry finds
    // it in the history and does not write it again.
    history_route(vec![
        Reply::Json(history_before.clone()),
        Reply::Json(history_full.clone()),
    ]);
    fake.on(case.note, vec![Reply::Hang]);
    let text = "Spare part reserved";
    let (r, attempts) = env
        .deliver(comment(NOTE, text, Audience::Internal), Some(case.ticket))
        .await;
    r.unwrap();
    assert_eq!(attempts, 2);
    let seen = fake.take();
    let w = writes(&seen);
    assert_eq!(w.len(), 1, "one note: {w:#?}");
    assert_eq!(key_of(w[0]), case.note);
    assert_eq!(w[0].body, (case.note_body)(&relayed(text, NOTE)));

    // 4. Resolved: read (not resolved yet), a 500, read again, then set
    //    and read back.
    let profile =
        deskbridge::connector::rest::profile::Profile::load(Some(case.profile), None).unwrap();
    let not_resolved = with(
        ticket.clone(),
        &format!("{}{}", profile.ticket.root, profile.ticket.status),
        json!("not-resolved-yet"),
    );
    fake.on(
        case.set_status,
        vec![Reply::Fail(500, None), Reply::Json(ticket.clone())],
    );
    fake.on(
        case.read,
        vec![
            Reply::Json(not_resolved.clone()),
            Reply::Json(not_resolved.clone()),
            Reply::Json(ticket.clone()),
        ],
    );
    let resolved = event(
        &Uuid::now_v7().to_string(),
        EventKind::StatusChanged {
            status: Status::Resolved,
        },
    );
    let (r, _) = env.deliver(resolved, Some(case.ticket)).await;
    // Named by the update time read back: the poller's view of this status
    // carries the same id, which ingest then knows for deskbridge's own.
    let read_root = if profile.ticket.root.is_empty() {
        &ticket
    } else {
        ticket.pointer(&profile.ticket.root).unwrap()
    };
    let updated = read_root
        .pointer(&profile.ticket.updated_at)
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert_eq!(
        r.unwrap().remote_ids,
        [format!("status-{}@{updated}", case.ticket)]
    );
    let seen = fake.take();
    let w = writes(&seen);
    // a status set is the same request again after a 500
    assert_eq!(w.len(), 2, "{w:#?}");
    for s in &w {
        assert_eq!(key_of(s), case.set_status);
        assert_eq!(s.body, (case.status_body)(case.resolved));
    }

    // 5. Waiting, answered 200 but not applied: read back, refused.
    fake.on(case.set_status, vec![Reply::Json(ticket.clone())]);
    let waiting = event(
        &Uuid::now_v7().to_string(),
        EventKind::StatusChanged {
            status: Status::Waiting,
        },
    );
    let (r, attempts) = env.deliver(waiting, Some(case.ticket)).await;
    let err = r.unwrap_err();
    assert_eq!(attempts, 1);
    assert!(
        matches!(&err, SinkError::Permanent { message } if message.contains(&format!("did not apply status {}", case.waiting))),
        "{err:?}"
    );
    assert_eq!(writes(&fake.take()).len(), 1);

    // 5b. Already resolved (a first attempt applied it, its answer was
    //     lost): read, nothing written.
    fake.on(case.read, vec![Reply::Json(ticket.clone())]);
    let again = event(
        &Uuid::now_v7().to_string(),
        EventKind::StatusChanged {
            status: Status::Resolved,
        },
    );
    let (r, attempts) = env.deliver(again, Some(case.ticket)).await;
    r.unwrap();
    assert_eq!(attempts, 1);
    assert!(writes(&fake.take()).is_empty(), "no second status write");

    // 6. Polling from 10:00:30, just after the transfer created the ticket:
    // 429, 500, a hang, then the round that takes the changes; nothing
    // moves until it does, and it takes them once.
    env.poll_from_transfer().await;
    let poller = env.poller(&case);
    if let Some(identity) = case.identity {
        fake.on(identity, vec![Reply::Json(fx("me.json"))]);
    }
    fake.on(
        case.list,
        vec![Reply::Fail(429, Some(1)), Reply::Json(list.clone())],
    );
    let err = poller.poll_now().await.unwrap_err().to_string();
    assert!(err.contains("429"), "{err}");
    fake.on(case.read, vec![Reply::Fail(500, None)]);
    let err = poller.poll_now().await.unwrap_err().to_string();
    assert!(err.contains("500"), "{err}");
    history_route(vec![Reply::Hang]);
    let err = poller.poll_now().await.unwrap_err().to_string();
    assert!(err.contains("no answer before the timeout"), "{err}");
    assert_eq!(
        env.desk_queue(),
        (vec![], vec![]),
        "nothing before the round succeeds"
    );
    history_route(vec![Reply::Json(history_full.clone())]);
    fake.take();
    let (_, more) = poller.poll_now().await.unwrap();
    // a full page: the next one is asked for at once
    assert_eq!(more, case.next_page.is_some());
    let seen = fake.take();
    let listed: Vec<&Seen> = seen.iter().filter(|s| key_of(s) == case.list).collect();
    assert_eq!(listed.len(), 1);
    let since = listed[0].param(case.since_param).unwrap();
    assert!(since.contains(case.first_since), "{since}");
    let (comments, statuses) = env.desk_queue();
    // The partner's public comment once; its internal note, the
    // description and deskbridge's own writes never.
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(comments[0].contains("On site Friday"), "{comments:#?}");
    // The status it shows is the one deskbridge set: not relayed back.
    assert_eq!(statuses, [], "{}", case.profile);

    // 7. The next round sees the same ticket again (the cursor looks back):
    // a page without progress, so page 2; nothing new is taken.
    fake.on(
        case.list,
        vec![Reply::Json(list.clone()), Reply::Json(none_listed.clone())],
    );
    let (n, more) = poller.poll_now().await.unwrap();
    assert!(!more);
    let seen = fake.take();
    let listed: Vec<&Seen> = seen.iter().filter(|s| key_of(s) == case.list).collect();
    match case.next_page {
        Some((param, value)) => {
            assert_eq!(listed.len(), 2, "{listed:#?}");
            assert_eq!(
                listed[1].param(param).as_deref(),
                Some(value),
                "{listed:#?}"
            );
        }
        None => assert_eq!(listed.len(), 1, "{listed:#?}"),
    }
    assert!(
        listed[0]
            .param(case.since_param)
            .unwrap()
            .contains(case.since_shown),
        "{listed:#?}"
    );
    // Listed again at the update time it was read at, long after that
    // time: not read again (a list without update times, Okdesk's: read
    // again, and what it gives is dropped by its id).
    let list_has_times = list.to_string().contains(updated.as_str());
    let reads = seen.iter().filter(|s| key_of(s) == case.read).count();
    if list_has_times {
        assert_eq!(reads, 0, "{}: read again with nothing new", case.profile);
        assert_eq!(n, 0, "nothing taken again");
    }
    let (comments, statuses) = env.desk_queue();
    assert_eq!(comments.len(), 1, "nothing doubled: {comments:#?}");
    assert_eq!(statuses, [], "nothing doubled: {statuses:?}");
    assert!(writes(&seen).is_empty(), "polling writes nothing");

    // 8. The partner changes the status itself (a later update): it is
    // mapped to the canonical status and relayed, once.
    let waiting_shown = profile
        .statuses
        .readback
        .get(&Status::Waiting)
        .unwrap_or(&profile.statuses.outbound[&Status::Waiting])
        .clone();
    let status_ptr = format!("{}{}", profile.ticket.root, profile.ticket.status);
    let updated_ptr = format!("{}{}", profile.ticket.root, profile.ticket.updated_at);
    let number = ticket.pointer(&status_ptr).unwrap().is_number();
    let changed = with(
        ticket.clone(),
        &status_ptr,
        if number {
            json!(waiting_shown.parse::<i64>().unwrap())
        } else {
            json!(waiting_shown)
        },
    );
    let changed = with(
        changed,
        &updated_ptr,
        json!(updated.replace(":05:00", ":06:00")),
    );
    // Listed with its new update time, as a product lists a change.
    let moved = updated.replace(":05:00", ":06:00");
    let list_moved: Value =
        serde_json::from_str(&list.to_string().replace(updated.as_str(), &moved)).unwrap();
    fake.on(
        case.list,
        vec![Reply::Json(list_moved), Reply::Json(none_listed.clone())],
    );
    fake.on(case.read, vec![Reply::Json(changed)]);
    for _ in 0..2 {
        poller.poll_now().await.unwrap();
    }
    let (comments, statuses) = env.desk_queue();
    assert_eq!(comments.len(), 1);
    // (Zammad writes waiting as "open", which reads as in progress)
    let expected = profile.statuses.inbound[&waiting_shown];
    assert_eq!(statuses, [expected], "{}", case.profile);
    assert_ne!(expected, Status::Resolved);
}

// ------------------------------------------------------------- the products

#[tokio::test]
async fn zendesk() {
    run(zendesk_case()).await;
}

#[tokio::test]
async fn freshdesk() {
    run(freshdesk_case()).await;
}

#[tokio::test]
async fn zammad() {
    run(zammad_case()).await;
}

fn zendesk_case() -> Case {
    Case {
        profile: "zendesk",
        auth: |s| {
            s.header("authorization")
                == Some(&format!(
                    "Basic {}",
                    b64("deskbridge@example.com/token:s3cret-token")
                ))
        },
        login: None,
        find_file: "list.json",
        find_ptr: "/results",
        rest: r#"username = "deskbridge@example.com/token""#,
        service_account: "deskbridge@example.com",
        ticket: "35436",
        identity: Some("GET /api/v2/users/me.json"),
        find: "GET /api/v2/search.json",
        create: "POST /api/v2/tickets.json",
        read: "GET /api/v2/tickets/35436.json",
        history: Some("GET /api/v2/tickets/35436/comments.json"),
        comment: "PUT /api/v2/tickets/35436.json",
        note: "PUT /api/v2/tickets/35436.json",
        set_status: "PUT /api/v2/tickets/35436.json",
        list: "GET /api/v2/search.json",
        list_ptr: "/results",
        history_ptr: "/comments",
        text_ptr: "/body",
        create_body: json!({"ticket": {"subject": "Scale shows wrong weight",
            "comment": {"body": "Calibration lost\n\nPartner ticket: Service Co D1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e01]"}}}),
        comment_body: |t| json!({"ticket": {"comment": {"body": t, "public": true}}}),
        note_body: |t| json!({"ticket": {"comment": {"body": t, "public": false}}}),
        status_body: |s| json!({"ticket": {"status": s}}),
        resolved: "solved",
        waiting: "pending",
        next_page: Some(("page", "2")),
        since_param: "query",
        first_since: "updated>=2024-05-01T10:00:30Z",
        // lookback_secs = 300: back to the start (10:00:30)
        since_shown: "updated>=2024-05-01T10:00:30Z",
    }
}

fn freshdesk_case() -> Case {
    Case {
        profile: "freshdesk",
        auth: |s| s.header("authorization") == Some(&format!("Basic {}", b64("s3cret-token:X"))),
        login: None,
        find_file: "list.json",
        find_ptr: "",
        rest: "[endpoints.prod.rest.settings]\nrequester_email = \"desk@service.example\"",
        service_account: "deskbridge@example.com",
        ticket: "20",
        identity: Some("GET /api/v2/agents/me"),
        find: "GET /api/v2/tickets",
        create: "POST /api/v2/tickets",
        read: "GET /api/v2/tickets/20",
        history: Some("GET /api/v2/tickets/20/conversations"),
        comment: "POST /api/v2/tickets/20/reply",
        note: "POST /api/v2/tickets/20/notes",
        set_status: "PUT /api/v2/tickets/20",
        list: "GET /api/v2/tickets",
        list_ptr: "",
        history_ptr: "",
        text_ptr: "/body_text",
        create_body: json!({"subject": "Scale shows wrong weight",
            "description": "Calibration lost\n\nPartner ticket: Service Co D1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e01]",
            "email": "desk@service.example", "status": 2, "priority": 1}),
        comment_body: |t| json!({"body": t}),
        note_body: |t| json!({"body": t, "private": true}),
        status_body: |s| json!({"status": s.parse::<i64>().unwrap()}),
        resolved: "4",
        waiting: "3",
        next_page: Some(("page", "2")),
        since_param: "updated_since",
        first_since: "2024-05-01T10:00:30Z",
        since_shown: "2024-05-01T10:04:55Z",
    }
}

#[tokio::test]
async fn servicenow() {
    run(servicenow_case()).await;
}

fn servicenow_case() -> Case {
    const SYS_ID: &str = "9d385017c611228701d22104cc95c371";
    Case {
    profile: "servicenow",
    auth: |s| {
        s.header("authorization")
            == Some(&format!("Basic {}", b64("deskbridge:s3cret-token")))
    },
    login: None,
    find_file: "list.json",
    find_ptr: "/result",
    rest: r#"username = "deskbridge""#,
    service_account: "deskbridge",
    ticket: SYS_ID,
    identity: Some("GET /api/now/table/sys_user"),
    find: "GET /api/now/table/incident",
    create: "POST /api/now/table/incident",
    read: "GET /api/now/table/incident/9d385017c611228701d22104cc95c371",
    history: Some("GET /api/now/table/sys_journal_field"),
    comment: "PATCH /api/now/table/incident/9d385017c611228701d22104cc95c371",
    note: "PATCH /api/now/table/incident/9d385017c611228701d22104cc95c371",
    set_status: "PATCH /api/now/table/incident/9d385017c611228701d22104cc95c371",
    list: "GET /api/now/table/incident",
    list_ptr: "/result",
    history_ptr: "/result",
    text_ptr: "/value",
    create_body: json!({"short_description": "Scale shows wrong weight",
        "description": "Calibration lost\n\nPartner ticket: Service Co D1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e01]"}),
    comment_body: |t| json!({"comments": t}),
    note_body: |t| json!({"work_notes": t}),
    status_body: |s| json!({"state": s}),
    resolved: "6",
    waiting: "3",
    next_page: Some(("sysparm_offset", "1")),
    since_param: "sysparm_query",
    first_since: "gs.dateGenerate('2024-05-01','10:00:30')",
    since_shown: "sys_updated_on>=javascript:gs.dateGenerate('2024-05-01','10:04:55')^ORDERBYsys_updated_on",
    }
}

fn zammad_case() -> Case {
    Case {
        profile: "zammad",
        auth: |s| s.header("authorization") == Some("Token token=s3cret-token"),
        login: None,
        find_file: "list.json",
        find_ptr: "",
        rest:
            "[endpoints.prod.rest.settings]\ngroup = \"Users\"\ncustomer = \"desk@service.example\"",
        service_account: "deskbridge",
        ticket: "3",
        identity: Some("GET /api/v1/users/me"),
        find: "GET /api/v1/tickets/search",
        create: "POST /api/v1/tickets",
        read: "GET /api/v1/tickets/3",
        history: Some("GET /api/v1/ticket_articles/by_ticket/3"),
        comment: "POST /api/v1/ticket_articles",
        note: "POST /api/v1/ticket_articles",
        set_status: "PUT /api/v1/tickets/3",
        list: "GET /api/v1/tickets/search",
        list_ptr: "",
        history_ptr: "",
        text_ptr: "/body",
        create_body: json!({"title": "Scale shows wrong weight", "group": "Users",
            "customer": "desk@service.example", "article": {"subject": "Scale shows wrong weight",
            "body": "Calibration lost\n\nPartner ticket: Service Co D1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e01]",
            "content_type": "text/plain", "type": "note", "internal": false}}),
        comment_body: |t| json!({"ticket_id": 3, "body": t, "content_type": "text/plain", "type": "note", "internal": false}),
        note_body: |t| json!({"ticket_id": 3, "body": t, "content_type": "text/plain", "type": "note", "internal": true}),
        status_body: |s| json!({"state": s}),
        resolved: "closed",
        waiting: "open",
        next_page: Some(("page", "2")),
        since_param: "query",
        first_since: "updated_at:>=\"2024-05-01T10:00:30Z\"",
        // lookback_secs = 60
        since_shown: "updated_at:>=\"2024-05-01T10:04:00Z\"",
    }
}

#[tokio::test]
async fn jira_service_management() {
    run(jira_case()).await;
}

fn jira_case() -> Case {
    Case {
    profile: "jira-sm",
    auth: |s| {
        s.header("authorization")
            == Some(&format!("Basic {}", b64("deskbridge@example.com:s3cret-token")))
    },
    login: None,
    find_file: "list.json",
    find_ptr: "/issues",
    rest: "project = \"HELP\"\nusername = \"deskbridge@example.com\"\n[endpoints.prod.rest.settings]\nservice_desk_id = \"10\"\nrequest_type_id = \"25\"",
    service_account: "deskbridge@example.com",
    ticket: "HELP-42",
    identity: Some("GET /rest/api/2/myself"),
    find: "GET /rest/api/2/search",
    create: "POST /rest/servicedeskapi/request",
    read: "GET /rest/api/2/issue/HELP-42",
    history: Some("GET /rest/servicedeskapi/request/HELP-42/comment"),
    comment: "POST /rest/servicedeskapi/request/HELP-42/comment",
    note: "POST /rest/servicedeskapi/request/HELP-42/comment",
    set_status: "POST /rest/servicedeskapi/request/HELP-42/transition",
    list: "GET /rest/api/2/search",
    list_ptr: "/issues",
    history_ptr: "/values",
    text_ptr: "/body",
    create_body: json!({"serviceDeskId": "10", "requestTypeId": "25",
        "requestFieldValues": {"summary": "Scale shows wrong weight",
        "description": "Calibration lost\n\nPartner ticket: Service Co D1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e01]"}}),
    comment_body: |t| json!({"body": t, "public": true}),
    note_body: |t| json!({"body": t, "public": false}),
    status_body: |s| json!({"id": s}),
    // transition ids; the read-back names come from statuses.readback
    resolved: "41",
    waiting: "31",
    next_page: Some(("startAt", "1")),
    since_param: "jql",
    first_since: "updated>=\"2024/05/01 10:00\"",
    // lookback_secs = 120
    since_shown: "project=HELP AND updated>=\"2024/05/01 10:03\" ORDER BY updated ASC",
    }
}

/// Each shipped profile, as an operator would configure it, passes
/// `deskbridge check`; a missing setting is named.
#[test]
fn every_documented_profile_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token").unwrap();
    let endpoint = |name: &str, profile: &str, extra: &str| {
        format!(
            r#"
[endpoints.{name}]
party = "vendor"
kind = "rest"
service_account = "deskbridge@example.com"
[endpoints.{name}.rest]
profile = "{profile}"
base_url = "https://{name}.example.com"
credentials = {{ file = "{token}" }}
{extra}
"#,
            token = token.display()
        )
    };
    let parties = "[parties.vendor]\nname = \"Vendor Co\"\nrole = \"vendor\"\n";
    let endpoints = [
        endpoint("zd", "zendesk", "username = \"deskbridge@example.com/token\""),
        endpoint(
            "fd",
            "freshdesk",
            "settings = { requester_email = \"desk@service.example\" }",
        ),
        endpoint(
            "jira",
            "jira-sm",
            "username = \"deskbridge@example.com\"\nproject = \"HELP\"\nsettings = { service_desk_id = \"10\", request_type_id = \"25\" }",
        ),
        endpoint("snow", "servicenow", "username = \"deskbridge\""),
        endpoint("glpi", "glpi", "settings = { app_token = \"app-token-1\" }"),
        endpoint("okdesk", "okdesk", "settings = { author_id = \"7\" }"),
        endpoint(
            "zammad",
            "zammad",
            "settings = { group = \"Users\", customer = \"desk@service.example\" }",
        ),
    ];
    let check = |text: &str| {
        let file = dir.path().join("deskbridge.toml");
        std::fs::write(&file, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_deskbridge"))
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = check(&format!("{parties}{}", endpoints.concat()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("7 endpoints"));
    let out = check(&format!(
        "{parties}{}",
        endpoint("zammad", "zammad", "settings = { group = \"Users\" }")
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("endpoints.zammad.rest.settings.customer: the profile needs it"),
        "{err}"
    );
}

#[tokio::test]
async fn glpi() {
    run(glpi_case()).await;
}

fn glpi_case() -> Case {
    Case {
        profile: "glpi",
        rest: "[endpoints.prod.rest.settings]\napp_token = \"app-token-1\"",
        service_account: "deskbridge",
        // The user token opens the session only; the session's token is
        // sent afterwards, the App-Token always.
        auth: |s| {
            s.header("app-token") == Some("app-token-1")
                && if s.path == "/initSession" {
                    s.header("authorization") == Some("user_token s3cret-token")
                        && s.header("session-token").is_none()
                } else {
                    s.header("session-token") == Some("83af7e620c83a50a18d3eac2f6ed05a3ca0bea62")
                        && s.header("authorization").is_none()
                }
        },
        login: Some("GET /initSession"),
        find_file: "find.json",
        find_ptr: "",
        ticket: "71",
        identity: Some("GET /getFullSession"),
        find: "GET /Ticket",
        create: "POST /Ticket",
        read: "GET /Ticket/71",
        history: Some("GET /Ticket/71/ITILFollowup"),
        comment: "POST /ITILFollowup",
        note: "POST /ITILFollowup",
        set_status: "PUT /Ticket/71",
        list: "GET /search/Ticket",
        list_ptr: "/data",
        history_ptr: "",
        text_ptr: "/content",
        create_body: json!({"input": {"name": "Scale shows wrong weight",
        "content": "Calibration lost\n\nPartner ticket: Service Co D1\n\n[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e01]"}}),
        comment_body: |t| json!({"input": {"itemtype": "Ticket", "items_id": 71, "content": t, "is_private": 0}}),
        note_body: |t| json!({"input": {"itemtype": "Ticket", "items_id": 71, "content": t, "is_private": 1}}),
        status_body: |s| json!({"input": {"status": s.parse::<i64>().unwrap()}}),
        resolved: "5",
        waiting: "4",
        next_page: Some(("range", "1-1")),
        since_param: "criteria[0][value]",
        first_since: "2024-05-01 10:00:30",
        since_shown: "2024-05-01 10:04:55",
    }
}

/// GLPI: one session for many requests; a refused session token (expired)
/// opens a new session once, and the request goes through.
#[tokio::test]
async fn glpi_session_is_opened_again_when_refused() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token").unwrap();
    let conf = format!(
        r#"
[parties.vendor]
name = "Vendor Co"
role = "vendor"
[endpoints.prod]
party = "vendor"
kind = "rest"
service_account = "deskbridge"
[endpoints.prod.rest]
profile = "glpi"
base_url = "{url}"
credentials = {{ file = "{token}" }}
timeout_secs = 1
settings = {{ app_token = "app-token-1" }}
"#,
        url = fake.url,
        token = token.display()
    );
    let config = Config::parse(&conf).unwrap();
    let ep = RestEndpoint::from_config("prod", config.endpoints["prod"].rest().unwrap()).unwrap();
    fake.on(
        "GET /initSession",
        vec![
            Reply::Json(json!({"session_token": "first"})),
            Reply::Json(json!({"session_token": "second"})),
        ],
    );
    let ticket = fixture("glpi", "ticket.json");
    fake.on(
        "GET /Ticket/71",
        vec![
            Reply::Json(ticket.clone()),
            Reply::Fail(401, None),
            Reply::Json(ticket.clone()),
        ],
    );
    for _ in 0..3 {
        let t = ep.read_ticket("71").await.unwrap();
        assert_eq!(t["status"], 5);
    }
    let seen: Vec<(String, Option<String>)> = fake
        .take()
        .iter()
        .map(|s| (key_of(s), s.header("session-token").map(str::to_string)))
        .collect();
    let tok = |t: &str| Some(t.to_string());
    assert_eq!(
        seen,
        [
            ("GET /initSession".to_string(), None),
            ("GET /Ticket/71".to_string(), tok("first")),
            ("GET /Ticket/71".to_string(), tok("first")),
            ("GET /initSession".to_string(), None),
            ("GET /Ticket/71".to_string(), tok("second")),
            ("GET /Ticket/71".to_string(), tok("second")),
        ]
    );
    // A login answered without a token is named, never retried blindly.
    fake.on(
        "GET /initSession",
        vec![Reply::Json(json!({"no": "token"}))],
    );
    fake.on("GET /Ticket/71", vec![Reply::Fail(401, None)]);
    let err = ep.read_ticket("71").await.unwrap_err();
    assert!(
        matches!(&err, SinkError::Permanent { message } if message.contains("without a token at /session_token")),
        "{err:?}"
    );
}

#[tokio::test]
async fn okdesk() {
    run(okdesk_case()).await;
}

fn okdesk_case() -> Case {
    Case {
        profile: "okdesk",
        rest: "[endpoints.prod.rest.settings]\nauthor_id = \"7\"",
        service_account: "deskbridge",
        auth: |s| {
            s.param("api_token").as_deref() == Some("s3cret-token")
                && s.header("authorization").is_none()
        },
        login: None,
        find_file: "list.json",
        find_ptr: "",
        ticket: "153",
        identity: None,
        find: "GET /api/v1/issues/count",
        create: "POST /api/v1/issues",
        read: "GET /api/v1/issues/153",
        history: Some("GET /api/v1/issues/153/comments"),
        comment: "POST /api/v1/issues/153/comments",
        note: "POST /api/v1/issues/153/comments",
        set_status: "POST /api/v1/issues/153/statuses",
        list: "GET /api/v1/issues/count",
        list_ptr: "",
        history_ptr: "",
        text_ptr: "/content",
        create_body: json!({"issue": {"title": "Scale shows wrong weight",
        "description": "Calibration lost<br><br>Partner ticket: Service Co D1<br><br>[deskbridge:0190f6b1a2b37c4d8e9f0a1b2c3d4e01]"}}),
        // HTML, its line breaks kept
        comment_body: |t| json!({"comment": {"content": t.replace('\n', "<br>"), "author_id": 7, "public": true}}),
        note_body: |t| json!({"comment": {"content": t.replace('\n', "<br>"), "author_id": 7, "public": false}}),
        status_body: |s| json!({"code": s}),
        resolved: "completed",
        waiting: "delayed",
        next_page: None,
        since_param: "updated_since",
        first_since: "01-05-2024",
        // lookback_secs = 86400, back to the start's day
        since_shown: "01-05-2024",
    }
}

/// A shipped profile's `[webhook]` and its product's documented payload
/// (tests/fixtures/rest/<product>/webhook.json), as sent.
fn documented_webhook(
    product: &str,
) -> (
    deskbridge::connector::rest::profile::WebhookProfile,
    Vec<u8>,
) {
    let profile = deskbridge::connector::rest::profile::Profile::load(Some(product), None).unwrap();
    let hook = profile
        .webhook
        .unwrap_or_else(|| panic!("{product}.toml has no [webhook]"));
    let body = std::fs::read(format!(
        "{}/tests/fixtures/rest/{product}/webhook.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    (hook, body)
}

/// HMAC-SHA256 of `parts` one after the other, as the products sign.
fn hmac_sha256(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Zendesk's webhook (a ticket event subscription, shaped as its
/// documentation shows one) signed as Zendesk signs it,
/// base64(HMAC-SHA256(timestamp + body)): taken, naming its ticket; the same
/// signature over another body or another timestamp is refused.
#[test]
fn zendesk_webhook_is_verified_by_its_signature() {
    use base64::Engine;
    use deskbridge::connector::rest::notify;
    let (hook, body) = documented_webhook("zendesk");
    let hook = &hook;
    let secret = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0";
    let ts = "2024-05-01T10:05:01Z";
    let sig = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(secret, &[ts.as_bytes(), &body]));
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-zendesk-webhook-signature", sig.parse().unwrap());
    headers.insert("x-zendesk-webhook-signature-timestamp", ts.parse().unwrap());
    let verify = |h: &axum::http::HeaderMap, b: &[u8]| {
        notify::verify("zendesk", Some(secret), Some(hook), h, None, b)
    };
    assert_eq!(verify(&headers, &body), Ok(Some("35436".into())));
    let mut other = body.clone();
    other.extend_from_slice(b" ");
    assert!(verify(&headers, &other).is_err());
    let mut later = headers.clone();
    later.insert(
        "x-zendesk-webhook-signature-timestamp",
        "2024-05-01T10:05:02Z".parse().unwrap(),
    );
    assert!(verify(&later, &body).is_err());
    // A token in the URL is no substitute for Zendesk's signature.
    let q = format!("token={secret}");
    assert!(notify::verify(
        "zendesk",
        Some(secret),
        Some(hook),
        &Default::default(),
        Some(&q),
        &body
    )
    .is_err());
}

// ------------------------------------------------------------------ files

/// Deterministic binary bytes no text handling leaves alone.
fn binary(n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A comment for the partner with a binary file under a non-ASCII name
/// and a text file, delivered through the sink to `case`'s product: the
/// requests the product received, and the files.
async fn deliver_files(case: &Case) -> (Vec<Seen>, Vec<(String, String, Vec<u8>)>) {
    let fake = Fake::start().await;
    let env = Env::new(case, &fake).await;
    let fx = |f: &str| fixture(case.profile, f);
    let ticket = fx("ticket.json");
    // Nothing of deskbridge's in the history yet: the comment is written.
    let before = match case.history {
        Some(h) => {
            fake.on(case.read, vec![Reply::Json(ticket.clone())]);
            let hist = fx("history.json");
            fake.on(
                h,
                vec![Reply::Json(without_ours(
                    &hist,
                    case.history_ptr,
                    case.text_ptr,
                ))],
            );
            hist
        }
        None => without_ours(&ticket, case.history_ptr, case.text_ptr),
    };
    if case.history.is_none() {
        fake.on(case.read, vec![Reply::Json(before)]);
    }
    fake.on(case.comment, vec![Reply::Json(ticket.clone())]);
    if case.profile == "zendesk" {
        fake.on(
            "POST /api/v2/uploads.json",
            vec![Reply::Json(fx("upload.json"))],
        );
    }
    let files = vec![
        (
            "Prüfprotokoll весы №7.pdf".to_string(),
            "application/pdf".to_string(),
            binary(3000),
        ),
        (
            "readings.txt".to_string(),
            "text/plain".to_string(),
            b"12.5 kg\n12.7 kg\n".to_vec(),
        ),
    ];
    let blobs = BlobStore::open(env._dir.path().join("files"), 1 << 20).unwrap();
    let mut ev = comment(COMMENT, "Calibration report attached", Audience::Partner);
    if let EventKind::Comment { comment } = &mut ev.kind {
        for (name, content_type, bytes) in &files {
            let r = blobs.put_bytes(bytes).await.unwrap();
            comment.attachments.push(deskbridge::event::Attachment {
                name: name.clone(),
                content_type: content_type.clone(),
                sha256: Some(r.sha256),
                size: Some(r.size),
                content_base64: None,
            });
        }
    }
    let (r, _) = env.deliver(ev, Some(case.ticket)).await;
    r.unwrap();
    (fake.take(), files)
}

/// Zendesk: each file uploaded first (its bytes, its own content type,
/// its name in the query), then the comment names both tokens.
#[tokio::test]
async fn zendesk_sends_files_by_upload_token() {
    let case = zendesk_case();
    let (seen, files) = deliver_files(&case).await;
    let w = writes(&seen);
    assert_eq!(w.len(), 3, "two uploads and the comment: {w:#?}");
    for (s, (name, content_type, bytes)) in w.iter().zip(&files) {
        assert_eq!(key_of(s), "POST /api/v2/uploads.json");
        assert_eq!(s.param("filename").as_deref(), Some(name.as_str()));
        assert_eq!(s.header("content-type"), Some(content_type.as_str()));
        assert_eq!(&s.raw, bytes);
    }
    let token = fixture("zendesk", "upload.json")["upload"]["token"].clone();
    assert_eq!(key_of(w[2]), case.comment);
    assert_eq!(
        w[2].body,
        json!({"ticket": {"comment": {
            "body": relayed("Calibration report attached", COMMENT),
            "public": true,
            "uploads": [token, token]}}})
    );
}

/// Zammad: the files inline in the article, base64, with their names and
/// types, in the one request that writes it.
#[tokio::test]
async fn zammad_sends_files_inline() {
    use base64::Engine as _;
    let case = zammad_case();
    let (seen, files) = deliver_files(&case).await;
    let w = writes(&seen);
    assert_eq!(w.len(), 1, "{w:#?}");
    let sent = w[0].body["attachments"].as_array().unwrap();
    assert_eq!(sent.len(), 2);
    for (a, (name, content_type, bytes)) in sent.iter().zip(&files) {
        assert_eq!(a["filename"], name.as_str());
        assert_eq!(a["mime-type"], content_type.as_str());
        let data = base64::engine::general_purpose::STANDARD
            .decode(a["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(&data, bytes);
    }
    let mut rest = w[0].body.clone();
    rest.as_object_mut().unwrap().remove("attachments");
    assert_eq!(
        rest,
        (case.comment_body)(&relayed("Calibration report attached", COMMENT))
    );
}

/// Freshdesk: a reply with files is multipart/form-data, the reply's
/// fields each in a part, each file in a part `attachments[]`.
#[tokio::test]
async fn freshdesk_sends_files_as_a_form() {
    let case = freshdesk_case();
    let (seen, files) = deliver_files(&case).await;
    let w = writes(&seen);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(key_of(w[0]), case.comment);
    let ct = w[0].header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    let parts = multipart_parts(&w[0].raw, boundary);
    let text = relayed("Calibration report attached", COMMENT);
    let expected = (case.comment_body)(&text);
    for (k, v) in expected.as_object().unwrap() {
        let part = parts
            .iter()
            .find(|(h, _)| h.contains(&format!("name=\"{k}\"")))
            .unwrap_or_else(|| panic!("no part {k}"));
        let want = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(String::from_utf8_lossy(&part.1), want);
    }
    let sent: Vec<_> = parts
        .iter()
        .filter(|(h, _)| h.contains("name=\"attachments[]\""))
        .collect();
    assert_eq!(sent.len(), 2);
    for ((head, body), (name, content_type, bytes)) in sent.iter().zip(&files) {
        assert!(head.contains(&format!("filename=\"{name}\"")), "{head}");
        assert!(
            head.contains(&format!("Content-Type: {content_type}")),
            "{head}"
        );
        assert_eq!(body, bytes);
    }
}

/// The parts of a multipart body: each one's headers and content.
fn multipart_parts(raw: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = raw;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    while let Some(i) = find(rest, delim.as_bytes()) {
        rest = &rest[i + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let rest_part = &rest[2..]; // the line break after the boundary
        let head_end = find(rest_part, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&rest_part[..head_end]).to_string();
        let body_start = &rest_part[head_end + 4..];
        let end = find(body_start, format!("\r\n{delim}").as_bytes()).unwrap();
        out.push((head, body_start[..end].to_vec()));
        rest = &body_start[end + 2..];
    }
    out
}

/// A file of the agent's public comment (the one saying "On site Friday"
/// in `case`'s history, at `comments` in it), described by `attach` from
/// the product's and a storage service's addresses: what reaches the
/// desk (name, type, bytes), and the requests each of the two received.
async fn agent_file(
    case: &Case,
    comments: &str,
    attach: impl Fn(&str, &str) -> Value,
    routes: impl Fn(&Fake, &Fake, Vec<u8>),
) -> (Vec<(String, String, Vec<u8>)>, Vec<Seen>, Vec<Seen>) {
    let fake = Fake::start().await;
    let storage = Fake::start().await;
    let env = Env::new(case, &fake).await;
    let fx = |f: &str| fixture(case.profile, f);
    let mut hist = fx("history.json");
    let agent = hist
        .pointer_mut(comments)
        .and_then(Value::as_array_mut)
        .unwrap()
        .iter_mut()
        .find(|c| {
            c.pointer(case.text_ptr)
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("On site Friday"))
        })
        .unwrap();
    agent["attachments"] = json!([attach(&fake.url, &storage.url)]);
    fake.on(case.list, vec![Reply::Json(fx("list.json"))]);
    fake.on(case.read, vec![Reply::Json(fx("ticket.json"))]);
    fake.on(case.history.unwrap(), vec![Reply::Json(hist)]);
    fake.on(case.identity.unwrap(), vec![Reply::Json(fx("me.json"))]);
    routes(&fake, &storage, binary(5000));
    env.poll_from_transfer().await;
    env.poller(case).poll_now().await.unwrap();
    let blobs = BlobStore::open(env._dir.path().join("files"), 1 << 20).unwrap();
    let mut got = vec![];
    for (_, e) in env.store.pending("desk").unwrap() {
        if let EventKind::Comment { comment } = e.event.kind {
            assert!(comment.body.contains("On site Friday"), "{}", comment.body);
            for f in comment.attachments {
                let data = blobs.read_all(f.sha256.as_deref().unwrap()).await.unwrap();
                got.push((f.name, f.content_type, data));
            }
        }
    }
    (got, fake.take(), storage.take())
}

/// Zendesk: a public comment's file reaches the desk, downloaded from its
/// content_url with the credentials; Zendesk redirects that to its
/// storage, which gets no credentials.
#[tokio::test]
async fn zendesk_comment_files_are_downloaded() {
    let case = zendesk_case();
    let (got, product, storage) = agent_file(
        &case,
        "/comments",
        |url, _| {
            let mut att = fixture("zendesk", "upload.json")["upload"]["attachment"].clone();
            att["content_url"] = json!(format!(
                "{url}/attachments/token/vyJx/?name=calibration.pdf"
            ));
            att["size"] = json!(5000);
            att
        },
        |fake, storage, bytes| {
            fake.on(
                "GET /attachments/token/vyJx/",
                vec![Reply::Redirect(format!(
                    "{}/signed/vyJx?sig=abc",
                    storage.url
                ))],
            );
            storage.on("GET /signed/vyJx", vec![Reply::Bytes(bytes)]);
        },
    )
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "calibration.pdf");
    assert_eq!(got[0].1, "application/pdf");
    assert_eq!(got[0].2, binary(5000));
    let dl = product
        .iter()
        .find(|s| s.path == "/attachments/token/vyJx/")
        .unwrap();
    assert!(
        (case.auth)(dl),
        "the product's address gets the credentials"
    );
    assert_eq!(storage.len(), 1);
    assert_eq!(storage[0].param("sig").as_deref(), Some("abc"));
    assert!(
        storage[0].header("authorization").is_none(),
        "no credentials to the storage"
    );
}

/// Zammad: a public article's file reaches the desk, downloaded from
/// /api/v1/ticket_attachment/{ticket}/{article}/{id} with the credentials.
#[tokio::test]
async fn zammad_article_files_are_downloaded() {
    let case = zammad_case();
    let (got, product, _) = agent_file(
        &case,
        "",
        |_, _| {
            json!({
                "id": 71,
                "filename": "calibration.pdf",
                "size": "5000",
                "preferences": {"Content-Type": "application/pdf", "Mime-Type": "application/pdf"}
            })
        },
        |fake, _, bytes| {
            // The agent's article in the fixture is article 13 of ticket 3.
            fake.on(
                "GET /api/v1/ticket_attachment/3/13/71",
                vec![Reply::Bytes(bytes)],
            );
        },
    )
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "calibration.pdf");
    assert_eq!(got[0].1, "application/pdf");
    assert_eq!(got[0].2, binary(5000));
    let dl = product
        .iter()
        .find(|s| s.path.starts_with("/api/v1/ticket_attachment/"))
        .unwrap();
    assert!((case.auth)(dl));
}

/// Freshdesk: a public reply's file reaches the desk, fetched from its
/// attachment_url, a signed address on another host, without credentials.
#[tokio::test]
async fn freshdesk_comment_files_are_downloaded_from_their_signed_address() {
    let case = freshdesk_case();
    let (got, product, storage) = agent_file(
        &case,
        "",
        |_, storage| {
            json!({
                "id": 5000012345u64,
                "content_type": "application/pdf",
                "size": 5000,
                "name": "calibration.pdf",
                "attachment_url": format!("{storage}/data/helpdesk/attachments/production/5000012345/original/calibration.pdf?X-Amz-Signature=abc"),
                "created_at": "2024-05-01T10:03:00Z",
                "updated_at": "2024-05-01T10:03:00Z"
            })
        },
        |_, storage, bytes| {
            storage.on(
                "GET /data/helpdesk/attachments/production/5000012345/original/calibration.pdf",
                vec![Reply::Bytes(bytes)],
            );
        },
    )
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "calibration.pdf");
    assert_eq!(got[0].2, binary(5000));
    assert!(product.iter().all(|s| !s.path.contains("calibration")));
    assert_eq!(storage.len(), 1);
    assert!(
        storage[0].header("authorization").is_none(),
        "no credentials to the storage"
    );
}

/// Jira's admin-registered webhook (a comment_created event shaped as its
/// documentation shows one), `X-Hub-Signature: sha256=<hex HMAC-SHA256 of
/// the body>`: taken, naming its issue; a changed body is refused.
#[test]
fn jira_webhook_is_verified_by_its_signature() {
    use deskbridge::connector::rest::notify;
    let (hook, body) = documented_webhook("jira-sm");
    let hook = &hook;
    let secret = "It0kZ3xf4c9e2d1b0a99f8e7d6c5b4a3";
    let sig = format!("sha256={}", hex::encode(hmac_sha256(secret, &[&body])));
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-hub-signature", sig.parse().unwrap());
    let verify = |b: &[u8]| notify::verify("jira", Some(secret), Some(hook), &headers, None, b);
    assert_eq!(verify(&body), Ok(Some("SD-12".into())));
    let changed = String::from_utf8(body.clone())
        .unwrap()
        .replace("SD-12", "SD-13");
    assert!(verify(changed.as_bytes()).is_err());
}

// ------------------------------------------------------------- the fields

/// One field change and how the product shows it once taken.
struct Change {
    field: &'static str,
    value: &'static str,
    /// The update's body the product must receive.
    body: Value,
    /// Where the ticket (under `ticket.root`) shows it, and as what.
    at: &'static str,
    shown: Value,
}

/// A product's fields: a transfer with priority high, due 2026-12-08
/// 17:00 UTC and the site "Store 12"; later changes; the fixture's ticket
/// read canonical.
struct FieldsCase {
    case: Case,
    /// The product's id of the custom field the site goes into (`None`: the
    /// product has no custom fields).
    site: Option<&'static str>,
    create_body: Value,
    /// The update request ("METHOD /path") and the changes it carries;
    /// `None`: the product has no such request.
    update: Option<(&'static str, Vec<Change>)>,
    /// What the poller reads in ticket.json: priority, due, site.
    read: (&'static str, Option<&'static str>, Option<&'static str>),
}

fn marker_of(id: &str) -> String {
    format!("[deskbridge:{}]", Uuid::parse_str(id).unwrap().simple())
}

async fn fields(fc: FieldsCase) {
    let mut case = fc.case;
    if let Some(site) = fc.site {
        // Before the case's own lines, which may open a sub-table.
        let rest = format!("custom_fields = {{ site = \"{site}\" }}\n{}", case.rest);
        case.rest = Box::leak(rest.into_boxed_str());
    }
    let fake = Fake::start().await;
    let env = Env::new(&case, &fake).await;
    let fx = |f: &str| fixture(case.profile, f);
    if let Some(login) = case.login {
        fake.on(login, vec![Reply::Json(fx("session.json"))]);
    }
    let profile = &env.ep.profile;
    let ticket = fx("ticket.json");
    let root = profile.ticket.root.clone();

    // 1. The transfer: each field in the product's own place, in the one
    // creation request.
    let none_found = with(fx(case.find_file), case.find_ptr, json!([]));
    fake.on(case.find, vec![Reply::Json(none_found)]);
    fake.on(case.create, vec![Reply::Json(fx("created.json"))]);
    let transfer = event(
        TRANSFER,
        EventKind::TicketCreated {
            ticket_data: Ticket {
                subject: "Scale shows wrong weight".into(),
                description: "Calibration lost".into(),
                priority: Some("high".into()),
                due: Some("2026-12-08T17:00:00Z".parse().unwrap()),
                fields: [("site".to_string(), "Store 12".to_string())].into(),
                ..Ticket::default()
            },
        },
    );
    let (r, _) = env.deliver(transfer, None).await;
    assert_eq!(
        r.unwrap().ticket.as_deref(),
        Some(case.ticket),
        "{}",
        case.profile
    );
    let seen = fake.take();
    let w = writes(&seen);
    assert_eq!(w.len(), 1, "one creation: {w:#?}");
    assert_eq!(key_of(w[0]), case.create);
    assert_eq!(w[0].body, fc.create_body, "{}", case.profile);

    // 2. Later changes: written by the update request and read back.
    match &fc.update {
        Some((update, changes)) => {
            fake.on(update, vec![Reply::Json(ticket.clone())]);
            for c in changes {
                let taken = with(ticket.clone(), &format!("{root}{}", c.at), c.shown.clone());
                fake.on(case.read, vec![Reply::Json(taken)]);
                let ev = event(
                    &Uuid::now_v7().to_string(),
                    EventKind::FieldChanged {
                        field: c.field.into(),
                        value: c.value.into(),
                    },
                );
                let (r, _) = env.deliver(ev, Some(case.ticket)).await;
                r.unwrap_or_else(|e| panic!("{} {}: {e:?}", case.profile, c.field));
                let seen = fake.take();
                let w = writes(&seen);
                assert_eq!(w.len(), 1, "one update: {w:#?}");
                assert_eq!(key_of(w[0]), *update);
                assert_eq!(w[0].body, c.body, "{} {}", case.profile, c.field);
                assert!(
                    seen.iter().any(|s| key_of(s) == case.read),
                    "read back: {seen:#?}"
                );
            }
            // Answered 2xx but not taken (a value the product does not
            // know): read back, a dead letter with the reason.
            let c = &changes[0];
            fake.on(case.read, vec![Reply::Json(ticket.clone())]);
            let ev = event(
                &Uuid::now_v7().to_string(),
                EventKind::FieldChanged {
                    field: c.field.into(),
                    value: c.value.into(),
                },
            );
            let (r, attempts) = env.deliver(ev, Some(case.ticket)).await;
            assert_eq!(attempts, 1);
            let err = r.unwrap_err();
            assert!(
                matches!(&err, SinkError::Permanent { message } if message.contains(&format!("did not take {}", c.field))),
                "{err:?}"
            );
        }
        None => {
            // No request changes an existing ticket's fields: a dead letter
            // that says so, nothing written.
            let ev = event(
                &Uuid::now_v7().to_string(),
                EventKind::FieldChanged {
                    field: "priority".into(),
                    value: "urgent".into(),
                },
            );
            let (r, attempts) = env.deliver(ev, Some(case.ticket)).await;
            assert_eq!(attempts, 1);
            let err = r.unwrap_err();
            assert!(
                matches!(&err, SinkError::Permanent { message } if message.contains("no fields.update request")),
                "{err:?}"
            );
            assert!(writes(&fake.take()).is_empty());
        }
    }

    // 3. The poller reads the ticket's fields canonical.
    let me = Identity {
        user_id: "0".into(),
        login: "nobody".into(),
        kind: None,
    };
    let reader = Reader {
        endpoint: "prod",
        profile,
        statuses: &env.ep.statuses,
        places: &env.ep.places,
        me: &me,
        service_account: case.service_account,
    };
    let at = if root.is_empty() {
        &ticket
    } else {
        ticket.pointer(&root).unwrap()
    };
    let from = "2024-05-01T09:00:00Z".parse().unwrap();
    let evs = reader.events(at, &[], from);
    let Some(EventKind::TicketCreated { ticket_data: t }) = evs.first().map(|e| &e.kind) else {
        panic!("{evs:#?}")
    };
    let (priority, due, site) = fc.read;
    assert_eq!(t.priority.as_deref(), Some(priority), "{}", case.profile);
    assert_eq!(t.due, due.map(|d| d.parse().unwrap()), "{}", case.profile);
    assert_eq!(
        t.fields.get("site").map(String::as_str),
        site,
        "{}",
        case.profile
    );
}

/// A transferred ticket's text: its description, the fields block (the
/// upstream ticket's id always in it: no profile here names a custom field
/// for it), the marker.
fn created_text(description: &str) -> String {
    let partner = "Partner ticket: Service Co D1";
    let text = if description.ends_with('\n') {
        format!("{description}{partner}")
    } else {
        format!("{description}\n\n{partner}")
    };
    format!("{text}\n\n{}", marker_of(TRANSFER))
}

#[tokio::test]
async fn zendesk_fields() {
    fields(FieldsCase {
        case: zendesk_case(),
        site: Some("27642"),
        create_body: json!({"ticket": {"subject": "Scale shows wrong weight",
            "comment": {"body": created_text("Calibration lost")},
            "priority": "high", "type": "task", "due_at": "2026-12-08T17:00:00Z",
            "custom_fields": [{"id": 27642, "value": "Store 12"}]}}),
        update: Some((
            "PUT /api/v2/tickets/35436.json",
            vec![
                Change {
                    field: "priority",
                    value: "urgent",
                    body: json!({"ticket": {"priority": "urgent"}}),
                    at: "/priority",
                    shown: json!("urgent"),
                },
                Change {
                    field: "site",
                    value: "Store 14",
                    body: json!({"ticket": {"custom_fields": [{"id": 27642, "value": "Store 14"}]}}),
                    at: "/custom_fields/0/value",
                    shown: json!("Store 14"),
                },
            ],
        )),
        read: ("high", Some("2024-05-03T17:00:00Z"), Some("745")),
    })
    .await;
}

#[tokio::test]
async fn freshdesk_fields() {
    fields(FieldsCase {
        case: freshdesk_case(),
        site: Some("cf_site"),
        create_body: json!({"subject": "Scale shows wrong weight",
            "description": created_text("Calibration lost"),
            "email": "desk@service.example", "status": 2, "priority": 3,
            "due_by": "2026-12-08T17:00:00Z", "custom_fields": {"cf_site": "Store 12"}}),
        update: Some((
            "PUT /api/v2/tickets/20",
            vec![
                Change {
                    field: "priority",
                    value: "urgent",
                    body: json!({"priority": 4}),
                    at: "/priority",
                    shown: json!(4),
                },
                Change {
                    field: "due",
                    value: "2026-12-09T10:00:00Z",
                    body: json!({"due_by": "2026-12-09T10:00:00Z"}),
                    at: "/due_by",
                    shown: json!("2026-12-09T10:00:00Z"),
                },
                Change {
                    field: "site",
                    value: "Store 14",
                    body: json!({"custom_fields": {"cf_site": "Store 14"}}),
                    at: "/custom_fields/cf_site",
                    shown: json!("Store 14"),
                },
            ],
        )),
        read: ("low", Some("2024-05-04T10:00:00Z"), Some("Store 12")),
    })
    .await;
}

#[tokio::test]
async fn servicenow_fields() {
    fields(FieldsCase {
        case: servicenow_case(),
        site: Some("u_site"),
        // High: impact 2 (Medium), urgency 1 (High).
        create_body: json!({"short_description": "Scale shows wrong weight",
            "description": created_text("Calibration lost"),
            "impact": "2", "urgency": "1", "due_date": "2026-12-08 17:00:00",
            "u_site": "Store 12"}),
        update: Some((
            "PATCH /api/now/table/incident/9d385017c611228701d22104cc95c371",
            vec![
                Change {
                    field: "priority",
                    value: "urgent",
                    body: json!({"impact": "1", "urgency": "1"}),
                    at: "/priority",
                    shown: json!("1"),
                },
                Change {
                    field: "due",
                    value: "2026-12-09T10:00:00Z",
                    body: json!({"due_date": "2026-12-09 10:00:00"}),
                    at: "/due_date",
                    shown: json!("2026-12-09 10:00:00"),
                },
            ],
        )),
        read: ("high", Some("2024-05-03T17:00:00Z"), Some("Store 12")),
    })
    .await;
}

#[tokio::test]
async fn zammad_fields() {
    fields(FieldsCase {
        case: zammad_case(),
        site: Some("site"),
        // No due time in Zammad: it goes into the first article's text.
        create_body: json!({"title": "Scale shows wrong weight", "group": "Users",
            "customer": "desk@service.example", "priority_id": 3, "site": "Store 12",
            "article": {"subject": "Scale shows wrong weight",
            "body": created_text("Calibration lost\n\nDue: 2026-12-08 17:00 UTC\n"),
            "content_type": "text/plain", "type": "note", "internal": false}}),
        update: Some((
            "PUT /api/v1/tickets/3",
            vec![
                // Zammad's highest is 3 high.
                Change {
                    field: "priority",
                    value: "urgent",
                    body: json!({"priority_id": 3}),
                    at: "/priority_id",
                    shown: json!(3),
                },
                Change {
                    field: "site",
                    value: "Store 14",
                    body: json!({"site": "Store 14"}),
                    at: "/site",
                    shown: json!("Store 14"),
                },
            ],
        )),
        read: ("normal", None, Some("Store 12")),
    })
    .await;
}

#[tokio::test]
async fn jira_service_management_fields() {
    fields(FieldsCase {
        case: jira_case(),
        site: Some("customfield_10050"),
        create_body: json!({"serviceDeskId": "10", "requestTypeId": "25",
            "requestFieldValues": {"summary": "Scale shows wrong weight",
            "description": created_text("Calibration lost"),
            "priority": {"name": "High"}, "duedate": "2026-12-08",
            "customfield_10050": "Store 12"}}),
        update: None,
        read: ("normal", Some("2024-05-03T00:00:00Z"), Some("Store 12")),
    })
    .await;
}

#[tokio::test]
async fn glpi_fields() {
    fields(FieldsCase {
        case: glpi_case(),
        // GLPI has no custom fields of its own: the site goes into the text.
        site: None,
        create_body: json!({"input": {"name": "Scale shows wrong weight",
            "content": created_text("Calibration lost\n\nSite: Store 12\n"),
            "priority": 4, "time_to_resolve": "2026-12-08 17:00:00"}}),
        update: Some((
            "PUT /Ticket/71",
            vec![
                Change {
                    field: "priority",
                    value: "urgent",
                    body: json!({"input": {"priority": 5}}),
                    at: "/priority",
                    shown: json!(5),
                },
                Change {
                    field: "due",
                    value: "2026-12-09T10:00:00Z",
                    body: json!({"input": {"time_to_resolve": "2026-12-09 10:00:00"}}),
                    at: "/time_to_resolve",
                    shown: json!("2026-12-09 10:00:00"),
                },
            ],
        )),
        read: ("normal", Some("2024-05-03T17:00:00Z"), None),
    })
    .await;
}

#[tokio::test]
async fn okdesk_fields() {
    fields(FieldsCase {
        case: okdesk_case(),
        site: Some("site"),
        create_body: json!({"issue": {"title": "Scale shows wrong weight",
            "description": format!("Calibration lost<br><br>Partner ticket: Service Co D1<br><br>{}", marker_of(TRANSFER)),
            "priority": "high", "deadline_at": "2026-12-08T17:00:00Z",
            "custom_parameters": {"site": "Store 12"}}}),
        update: None,
        read: ("low", Some("2024-05-03T17:00:00Z"), Some("Store 12")),
    })
    .await;
}
