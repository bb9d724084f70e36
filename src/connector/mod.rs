//! Connectors, one folder per kind: the sink half applies events in a
//! partner's system; the source half (webhook handler, pollers) turns its
//! changes into events. The registry builds both from the configuration.

pub mod board;
pub mod body;
pub mod component;
pub mod email;
pub mod error;
pub mod http;
pub mod kind;
pub mod kinds;
pub mod registry;
pub mod rest;
pub mod sink;
pub mod source;
pub mod webhook;

pub use board::{snapshot, with_entry, Board};
pub use error::{BuildError, HttpClientError};
pub use http::{describe_http_error, partner_client};
pub use sink::{Delivery, Sink, SinkError};
