//! The REST connector: one engine for every help desk with a REST API,
//! driven by the product's profile (connectors/*.toml). The sink applies
//! events through the profile's requests; the poller turns the product's
//! ticket history into events.

pub mod client;
pub mod component;
pub mod config;
pub mod download;
pub mod endpoint;
pub mod error;
pub mod fields;
pub mod files;
pub mod gate;
pub mod history;
pub mod identity;
pub mod json;
pub mod limiter;
pub mod notify;
pub mod poll;
pub mod profile;
pub mod remote_id;
pub mod sink;
pub mod source;
pub mod template;

pub use endpoint::RestEndpoint;
