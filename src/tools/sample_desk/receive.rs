//! The desk's HTTP side: deliveries from deskbridge, checked by their
//! signature, answered with a fault when one is set, applied once per
//! `webhook-id`.

use super::apply::apply;
use super::state::{DeskState, Fault, SERVICE_ACCOUNT};
use crate::connector::webhook::sign::{self, Secret};
use crate::event::{Author, Event};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Clone)]
pub(super) struct Shared {
    pub(super) state: Arc<Mutex<DeskState>>,
    pub(super) secret: Secret,
    pub(super) echo: mpsc::UnboundedSender<Event>,
    pub(super) unsent: Arc<AtomicUsize>,
}

fn aimed_at_ticket(st: &DeskState, ticket: Option<&str>) -> bool {
    ticket.is_some_and(|t| st.ticket_faults.contains_key(t))
}

fn reject(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

pub(super) async fn receive(State(sh): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
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
        Err(e) => return reject(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
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
