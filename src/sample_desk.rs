//! A small in-process help desk that speaks the webhook connector: it sends
//! its users' changes to deskbridge, signed, and applies what deskbridge
//! sends it, applying a repeated `webhook-id` once. The demo runs three of
//! them; the integration tests use them as partner systems, with faults
//! (500, 429, 400, hanging) switched on at will.

use crate::connector::webhook::sign::{self, Secret};
use crate::event::{Attachment, Audience, Author, Comment, Event, EventKind, Status, Ticket};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The user deskbridge acts as in a sample desk.
pub const SERVICE_ACCOUNT: &str = "deskbridge";

#[derive(Clone, Debug, Serialize)]
pub struct DeskComment {
    pub id: String,
    pub body: String,
    pub audience: Audience,
    pub author: String,
    pub files: Vec<(String, Vec<u8>)>,
    /// The deskbridge event it came from, when deskbridge wrote it.
    pub event: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeskTicket {
    pub id: String,
    pub subject: String,
    pub description: String,
    pub status: Status,
    pub fields: BTreeMap<String, String>,
    pub priority: Option<String>,
    pub due: Option<chrono::DateTime<chrono::Utc>>,
    pub files: Vec<(String, Vec<u8>)>,
    pub comments: Vec<DeskComment>,
    /// The partner's name and ticket id, as deskbridge reported them.
    pub partner: Option<(String, Option<String>)>,
    /// The partner's ticket's status, as deskbridge reported it.
    pub partner_status: Option<String>,
}

/// A fault to answer deliveries with, for tests.
#[derive(Clone, Debug)]
pub enum Fault {
    Status(u16, String),
    RateLimited { retry_after_secs: u64 },
    Hang,
}

#[derive(Default)]
struct DeskState {
    next_id: u64,
    tickets: BTreeMap<String, DeskTicket>,
    /// webhook-id → the answer given, so a repeat gets the same answer.
    answered: HashMap<String, serde_json::Value>,
    /// Deliveries received, repeats included.
    received: u64,
    fault: Option<(Fault, Option<u32>)>,
    /// What deskbridge refused of this desk's own changes.
    rejected: Vec<String>,
    /// Faults aimed at deliveries for one ticket only.
    ticket_faults: HashMap<String, Fault>,
}

fn aimed_at_ticket(st: &DeskState, ticket: Option<&str>) -> bool {
    ticket.is_some_and(|t| st.ticket_faults.contains_key(t))
}

pub struct SampleDesk {
    pub name: String,
    pub addr: SocketAddr,
    state: Arc<Mutex<DeskState>>,
    outbox: mpsc::UnboundedSender<Event>,
    unsent: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<DeskState>>,
    secret: Secret,
    echo: mpsc::UnboundedSender<Event>,
    unsent: Arc<AtomicUsize>,
}

impl SampleDesk {
    /// Starts a desk on a loopback port. It receives deliveries at
    /// `/deskbridge` signed with `inbound_secret`, and sends its changes to
    /// `hook_url` signed with `outbound_secret` once `connect` is called.
    pub async fn start(name: &str, inbound_secret: &str) -> std::io::Result<SampleDesk> {
        let secret = Secret::parse(inbound_secret)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(DeskState::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let unsent = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            state: state.clone(),
            secret,
            echo: tx.clone(),
            unsent: unsent.clone(),
        };
        let app = Router::new()
            .route("/deskbridge", post(receive))
            .with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PENDING_RX
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr, rx);
        Ok(SampleDesk {
            name: name.into(),
            addr,
            state,
            outbox: tx,
            unsent,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/deskbridge", self.addr)
    }

    /// Starts sending this desk's changes to deskbridge at `hook_url`.
    /// Each is retried until deskbridge answers (it may be restarting).
    pub fn connect(&self, hook_url: String, secret: &str) {
        let Some(mut rx) = PENDING_RX
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.addr)
        else {
            return;
        };
        let secret = Secret::parse(secret).expect("valid secret");
        let unsent = self.unsent.clone();
        let state = self.state.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client");
            while let Some(ev) = rx.recv().await {
                let body = serde_json::to_vec(&ev).expect("event serializes");
                let msg_id = format!("msg_{}", ev.id.simple());
                loop {
                    let ts = chrono::Utc::now().timestamp();
                    let sig = sign::sign(&secret, &msg_id, ts, &body);
                    let r = client
                        .post(&hook_url)
                        .header("content-type", "application/json")
                        .header(sign::HEADER_ID, &msg_id)
                        .header(sign::HEADER_TIMESTAMP, ts.to_string())
                        .header(sign::HEADER_SIGNATURE, sig)
                        .body(body.clone())
                        .send()
                        .await;
                    match r {
                        Ok(resp) if resp.status().is_success() => break,
                        Ok(resp) if resp.status().is_client_error() => {
                            // Refused for good: keep the reason for the test to see.
                            let text = resp.text().await.unwrap_or_default();
                            state
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .rejected
                                .push(text);
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                unsent.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DeskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, ev: Event) {
        self.unsent.fetch_add(1, Ordering::SeqCst);
        let _ = self.outbox.send(ev);
    }

    /// Changes not yet accepted by deskbridge.
    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::SeqCst)
    }

    pub fn create_ticket(
        &self,
        subject: &str,
        description: &str,
        fields: &[(&str, &str)],
        author: &str,
    ) -> String {
        self.create_ticket_with_files(subject, description, fields, author, &[])
    }

    /// A new ticket carrying files (handed on with it on a transfer).
    pub fn create_ticket_with_files(
        &self,
        subject: &str,
        description: &str,
        fields: &[(&str, &str)],
        author: &str,
        files: &[(&str, &[u8])],
    ) -> String {
        self.open(
            Ticket {
                subject: subject.into(),
                description: description.into(),
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                attachments: files
                    .iter()
                    .map(|(n, b)| Attachment {
                        name: n.to_string(),
                        content_type: "application/octet-stream".into(),
                        sha256: None,
                        size: None,
                        content_base64: Some(base64::engine::general_purpose::STANDARD.encode(b)),
                    })
                    .collect(),
                ..Ticket::default()
            },
            author,
        )
    }

    /// A new ticket as its user fills it in: priority, due time, fields
    /// and files (given inline, base64).
    pub fn open(&self, mut ticket: Ticket, author: &str) -> String {
        ticket.status = Some(Status::New);
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id.to_string();
        let files = ticket
            .attachments
            .iter()
            .map(|a| {
                let b = a.content_base64.as_deref().unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default();
                (a.name.clone(), bytes)
            })
            .collect();
        let t = DeskTicket {
            id: id.clone(),
            subject: ticket.subject.clone(),
            description: ticket.description.clone(),
            status: Status::New,
            fields: ticket.fields.clone(),
            priority: ticket.priority.clone(),
            due: ticket.due,
            files,
            comments: vec![],
            partner: None,
            partner_status: None,
        };
        st.tickets.insert(id.clone(), t);
        drop(st);
        let mut ev = Event::new(
            &id,
            EventKind::TicketCreated {
                ticket_data: ticket,
            },
        );
        ev.author = Some(Author {
            name: author.into(),
            email: None,
        });
        ev.source_id = Some(format!("ticket-{id}"));
        self.send(ev);
        id
    }

    pub fn comment(
        &self,
        ticket: &str,
        body: &str,
        audience: Audience,
        author: &str,
        files: &[(&str, &[u8])],
    ) -> String {
        let mut st = self.lock();
        st.next_id += 1;
        let cid = format!("c{}", st.next_id);
        let Some(t) = st.tickets.get_mut(ticket) else {
            panic!("{}: no ticket {ticket}", self.name)
        };
        t.comments.push(DeskComment {
            id: cid.clone(),
            body: body.into(),
            audience,
            author: author.into(),
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), b.to_vec()))
                .collect(),
            event: None,
        });
        drop(st);
        let attachments = files
            .iter()
            .map(|(n, b)| Attachment {
                name: n.to_string(),
                content_type: "application/octet-stream".into(),
                sha256: None,
                size: None,
                content_base64: Some(base64::engine::general_purpose::STANDARD.encode(b)),
            })
            .collect();
        let mut ev = Event::new(
            ticket,
            EventKind::Comment {
                comment: Comment {
                    body: body.into(),
                    audience,
                    attachments,
                },
            },
        );
        ev.author = Some(Author {
            name: author.into(),
            email: None,
        });
        ev.source_id = Some(cid.clone());
        self.send(ev);
        cid
    }

    pub fn set_status(&self, ticket: &str, status: Status, author: &str) {
        let mut st = self.lock();
        st.next_id += 1;
        let sid = format!("s{}", st.next_id);
        if let Some(t) = st.tickets.get_mut(ticket) {
            t.status = status;
        }
        drop(st);
        let mut ev = Event::new(ticket, EventKind::StatusChanged { status });
        ev.author = Some(Author {
            name: author.into(),
            email: None,
        });
        ev.source_id = Some(sid);
        self.send(ev);
    }

    pub fn tickets(&self) -> Vec<DeskTicket> {
        self.lock().tickets.values().cloned().collect()
    }

    pub fn ticket(&self, id: &str) -> Option<DeskTicket> {
        self.lock().tickets.get(id).cloned()
    }

    /// Deliveries received from deskbridge, repeats included.
    pub fn received(&self) -> u64 {
        self.lock().received
    }

    /// Answers every delivery for `ticket` with a fault (or stops doing so).
    pub fn set_ticket_fault(&self, ticket: &str, fault: Option<Fault>) {
        let mut st = self.lock();
        match fault {
            Some(f) => st.ticket_faults.insert(ticket.to_string(), f),
            None => st.ticket_faults.remove(ticket),
        };
    }

    /// deskbridge's answers to changes it refused (4xx).
    pub fn rejected(&self) -> Vec<String> {
        self.lock().rejected.clone()
    }

    /// Answers the next `times` deliveries (or all, with `None`) with a fault.
    pub fn set_fault(&self, fault: Option<Fault>, times: Option<u32>) {
        self.lock().fault = fault.map(|f| (f, times));
    }

    /// The ticket as its staff see it, internal notes marked.
    pub fn render(&self, id: &str) -> String {
        let Some(t) = self.ticket(id) else {
            return format!("{}: no ticket {id}", self.name);
        };
        let mut out = format!("{} #{} \"{}\" [{}]", self.name, t.id, t.subject, t.status);
        if let Some((party, Some(pt))) = &t.partner {
            match &t.partner_status {
                Some(st) => out.push_str(&format!("  (partner: {party} #{pt}, {st})")),
                None => out.push_str(&format!("  (partner: {party} #{pt})")),
            }
        }
        out.push('\n');
        if let Some(p) = &t.priority {
            out.push_str(&format!("    priority: {p}\n"));
        }
        if let Some(d) = &t.due {
            out.push_str(&format!("    due: {}\n", d.format("%Y-%m-%d %H:%M UTC")));
        }
        if !t.fields.is_empty() {
            let f: Vec<String> = t.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("    fields: {}\n", f.join(", ")));
        }
        for c in &t.comments {
            let vis = match c.audience {
                Audience::Public => "public  ",
                Audience::Partner => "partner ",
                Audience::Internal => "internal",
            };
            let files: Vec<String> = c
                .files
                .iter()
                .map(|(n, b)| format!("{n} ({} bytes)", b.len()))
                .collect();
            out.push_str(&format!(
                "    {vis} {}: {}{}\n",
                c.author,
                c.body,
                if files.is_empty() {
                    String::new()
                } else {
                    format!("  [files: {}]", files.join(", "))
                }
            ));
        }
        out
    }
}

/// Receivers parked between `start` and `connect`.
static PENDING_RX: std::sync::LazyLock<Mutex<HashMap<SocketAddr, mpsc::UnboundedReceiver<Event>>>> =
    std::sync::LazyLock::new(Default::default);

fn reject(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

async fn receive(State(sh): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Err(e) = sign::verify(
        std::slice::from_ref(&sh.secret),
        h(sign::HEADER_ID),
        h(sign::HEADER_TIMESTAMP),
        h(sign::HEADER_SIGNATURE),
        &body,
        chrono::Utc::now().timestamp(),
        sign::DEFAULT_TOLERANCE_SECS,
    ) {
        return reject(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let msg_id = h(sign::HEADER_ID).unwrap_or_default().to_string();
    // Only to aim a fault at one ticket; the full parse comes below.
    let ticket = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["ticket"].as_str().map(String::from));
    let fault = {
        let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
        st.received += 1;
        let aimed = ticket
            .as_ref()
            .and_then(|t| st.ticket_faults.get(t).cloned());
        match aimed.map(|f| (f, None)).or_else(|| st.fault.take()) {
            Some((f, Some(n))) if n > 0 => {
                if n > 1 {
                    st.fault = Some((f.clone(), Some(n - 1)));
                }
                Some(f)
            }
            Some((f, None)) => {
                if aimed_at_ticket(&st, ticket.as_deref()) {
                    // The aimed fault stays where it is; the desk-wide one
                    // was not taken.
                    Some(f)
                } else {
                    st.fault = Some((f.clone(), None));
                    Some(f)
                }
            }
            _ => None,
        }
    };
    match fault {
        Some(Fault::Status(code, text)) => {
            return reject(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                text,
            )
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after_secs.to_string())],
                "slow down",
            )
                .into_response()
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return reject(StatusCode::GATEWAY_TIMEOUT, "hung");
        }
        None => {}
    }
    let ev: Event = match serde_json::from_slice(&body) {
        Ok(ev) => ev,
        Err(e) => return reject(StatusCode::BAD_REQUEST, format!("not an event: {e}")),
    };
    let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(answer) = st.answered.get(&msg_id) {
        return Json(answer.clone()).into_response();
    }
    let (answer, echo) = match apply(&mut st, &ev) {
        Ok(r) => r,
        Err(msg) => return reject(StatusCode::UNPROCESSABLE_ENTITY, msg),
    };
    st.answered.insert(msg_id, answer.clone());
    drop(st);
    // Like a real desk, it reports every change, ours included: deskbridge
    // must recognise these as its own echo.
    if let Some(mut e) = echo {
        e.author = Some(Author {
            name: SERVICE_ACCOUNT.into(),
            email: None,
        });
        sh.unsent.fetch_add(1, Ordering::SeqCst);
        let _ = sh.echo.send(e);
    }
    Json(answer).into_response()
}

fn apply(st: &mut DeskState, ev: &Event) -> Result<(serde_json::Value, Option<Event>), String> {
    st.next_id += 1;
    let n = st.next_id;
    let partner = ev
        .partner
        .as_ref()
        .map(|p| (p.party.clone(), p.ticket.clone()));
    let label = ev
        .partner
        .as_ref()
        .map(|p| p.party.clone())
        .unwrap_or_else(|| SERVICE_ACCOUNT.into());
    let files = |atts: &[Attachment]| -> Result<Vec<(String, Vec<u8>)>, String> {
        atts.iter()
            .map(|a| {
                let b64 = a
                    .content_base64
                    .as_deref()
                    .ok_or(format!("file {} has no content", a.name))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| format!("file {} is not base64", a.name))?;
                Ok((a.name.clone(), bytes))
            })
            .collect()
    };
    match &ev.kind {
        EventKind::TicketCreated { ticket_data } => {
            let id = n.to_string();
            st.tickets.insert(
                id.clone(),
                DeskTicket {
                    id: id.clone(),
                    subject: ticket_data.subject.clone(),
                    description: ticket_data.description.clone(),
                    status: Status::New,
                    fields: ticket_data.fields.clone(),
                    priority: ticket_data.priority.clone(),
                    due: ticket_data.due,
                    files: files(&ticket_data.attachments)?,
                    comments: vec![],
                    partner,
                    partner_status: None,
                },
            );
            let mut echo = Event::new(
                &id,
                EventKind::TicketCreated {
                    ticket_data: ticket_data.clone(),
                },
            );
            echo.source_id = Some(format!("ticket-{id}"));
            Ok((
                json!({ "ticket": id, "id": format!("ticket-{id}") }),
                Some(echo),
            ))
        }
        EventKind::Comment { comment } => {
            let t = st
                .tickets
                .get_mut(&ev.ticket)
                .ok_or(format!("no ticket {}", ev.ticket))?;
            let cid = format!("c{n}");
            t.comments.push(DeskComment {
                id: cid.clone(),
                body: comment.body.clone(),
                audience: comment.audience,
                author: format!("{label} (via deskbridge)"),
                files: files(&comment.attachments)?,
                event: Some(ev.id.to_string()),
            });
            let mut echo = Event::new(
                &ev.ticket,
                EventKind::Comment {
                    comment: comment.clone(),
                },
            );
            echo.source_id = Some(cid.clone());
            Ok((json!({ "id": cid }), Some(echo)))
        }
        EventKind::StatusChanged { status } => {
            let t = st
                .tickets
                .get_mut(&ev.ticket)
                .ok_or(format!("no ticket {}", ev.ticket))?;
            if t.status == *status {
                return Ok((json!({}), None));
            }
            t.status = *status;
            let sid = format!("s{n}");
            let mut echo = Event::new(&ev.ticket, EventKind::StatusChanged { status: *status });
            echo.source_id = Some(sid.clone());
            Ok((json!({ "id": sid }), Some(echo)))
        }
        EventKind::FieldChanged { field, value } => {
            let t = st
                .tickets
                .get_mut(&ev.ticket)
                .ok_or(format!("no ticket {}", ev.ticket))?;
            match field.as_str() {
                "partner_ticket" => {
                    let party = ev.partner.as_ref().map(|p| p.party.clone());
                    t.partner = Some((party.unwrap_or_default(), Some(value.clone())));
                }
                "partner_status" => t.partner_status = Some(value.clone()),
                "priority" => t.priority = Some(value.clone()).filter(|v| !v.is_empty()),
                "due" => t.due = crate::event::parse_due(value),
                _ => {
                    t.fields.insert(field.clone(), value.clone());
                }
            }
            Ok((json!({}), None))
        }
    }
}
