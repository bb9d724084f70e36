//! RabbitMQ transport (lapin). The sled outbox stays the first durable
//! home of every event; a publisher drains it to the broker with publisher
//! confirms, and one consumer per destination feeds that destination's
//! dispatcher with manual acknowledgements.
//!
//! Topology (all names start with `bus.prefix`, default `deskbridge`):
//! - exchange `{p}.events` (direct, durable): routing key = destination;
//! - queue `{p}.{dest}` per destination: quorum (replicated, durable,
//!   FIFO, built for data safety; ordering per link needs FIFO), with
//!   dead-lettering to `{p}.dead`;
//! - exchange `{p}.dead` (direct, durable) and queue `{p}.{dest}.dead`:
//!   a copy of every dead letter, with the reason in headers, for the
//!   broker's own tools. `deskbridge dead` reads deskbridge's store.

mod acks;
mod broker;
mod claims;
mod connection;
mod consumer;
mod error;
mod inspect;
mod publisher;
mod status;
mod tls;
mod topology;

pub use broker::Broker;
pub use connection::on_tokio;
pub use error::AmqpError;
pub use inspect::{remove_topology, Found};
pub use status::{BrokerBoard, BrokerStatus};
pub use topology::Topology;
