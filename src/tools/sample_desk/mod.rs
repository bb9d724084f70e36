//! A small in-process help desk that speaks the webhook connector: it sends
//! its users' changes to deskbridge, signed, and applies what deskbridge
//! sends it, applying a repeated `webhook-id` once. The demo runs three of
//! them; the integration tests use them as partner systems, with faults
//! (500, 429, 400, hanging) switched on at will.

mod apply;
mod changes;
mod desk;
mod receive;
mod render;
mod state;

pub use desk::SampleDesk;
pub use state::{DeskComment, DeskTicket, Fault, SERVICE_ACCOUNT};
