//! The REST source: every `poll_secs`, list the tickets changed since the
//! cursor, read their history, turn new entries into events and hand them
//! to ingest together with the new cursor (one transaction).

pub mod cursor;
pub mod list;
pub mod poller;
pub mod reader;
pub mod round;
pub mod run;
pub mod ticket;

pub use crate::connector::rest::identity::Identity;
pub use crate::event::stable_id;
pub use cursor::{Cursor, Edge};
pub use list::{list_from_end, list_page, list_vars, recent_entries, Listed};
pub use poller::{PollBoard, PollStatus, Poller, RoundError};
pub use reader::Reader;

#[cfg(test)]
mod tests;
