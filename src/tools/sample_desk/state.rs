//! What a sample desk holds: its tickets and comments as its staff see
//! them, the answers it gave, and the faults it is told to answer with.

use crate::event::{Audience, Status};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

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
pub(super) struct DeskState {
    pub(super) next_id: u64,
    pub(super) tickets: BTreeMap<String, DeskTicket>,
    /// webhook-id → the answer given, so a repeat gets the same answer.
    pub(super) answered: HashMap<String, serde_json::Value>,
    /// Deliveries received, repeats included.
    pub(super) received: u64,
    pub(super) fault: Option<(Fault, Option<u32>)>,
    /// What deskbridge refused of this desk's own changes.
    pub(super) rejected: Vec<String>,
    /// Faults aimed at deliveries for one ticket only.
    pub(super) ticket_faults: HashMap<String, Fault>,
}
