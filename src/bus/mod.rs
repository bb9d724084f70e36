//! The bus between ingest and relay. Without a broker the store's outbox is
//! the queue (one ordered sled queue per destination) and `notify` wakes
//! each destination's relay per message; RabbitMQ is the other transport
//! (issue 5), whose deliveries carry an `ack` handle.

pub mod ack;
pub mod amqp;
pub mod notify;
