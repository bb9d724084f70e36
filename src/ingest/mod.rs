//! Ingest: an endpoint's events → echo check → links and transfer rules →
//! visibility policy → the destinations' queues, in one transaction.

mod accept;
mod onward;
mod route;
mod stage;

pub use accept::{Ingest, IngestError, Outcome};

#[cfg(test)]
mod tests;
