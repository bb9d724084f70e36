//! Relay: one dispatcher per destination endpoint, run by a scheduler over
//! one inbox (the store's outbox, or the broker's deliveries). Ordered per
//! link, concurrent across links; a failing event holds back only the later
//! events of its own link. Apply, record, then take off the queue (or
//! acknowledge to the broker).

mod backlog;
mod broker;
mod dead;
mod deliver;
mod dispatcher;
mod done;
mod gap;
mod inbox;
mod outbox;
mod pause;
mod scheduler;
mod status;
mod work;

#[cfg(test)]
mod window_tests;

pub use dispatcher::{Dispatcher, Source};
pub use status::{with_status, DestStatus, StatusBoard};
