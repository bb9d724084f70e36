//! A sample desk: started on a loopback port, connected to deskbridge, and
//! read and steered by the demo and the tests.

use super::receive::{receive, Shared};
use super::state::{DeskState, DeskTicket, Fault};
use crate::connector::webhook::sign::{self, Secret};
use crate::event::Event;
use axum::routing::post;
use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub struct SampleDesk {
    pub name: String,
    pub addr: SocketAddr,
    state: Arc<Mutex<DeskState>>,
    outbox: mpsc::UnboundedSender<Event>,
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, DeskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn send(&self, ev: Event) {
        self.unsent.fetch_add(1, Ordering::SeqCst);
        let _ = self.outbox.send(ev);
    }

    /// Changes not yet accepted by deskbridge.
    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::SeqCst)
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
}

/// Receivers parked between `start` and `connect`.
static PENDING_RX: std::sync::LazyLock<Mutex<HashMap<SocketAddr, mpsc::UnboundedReceiver<Event>>>> =
    std::sync::LazyLock::new(Default::default);
