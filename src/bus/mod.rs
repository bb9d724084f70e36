//! The bus between ingest and relay. The embedded bus is the outbox itself
//! (one ordered sled queue per destination) plus a wake-up per message;
//! RabbitMQ is the other transport (issue 5).

pub mod amqp;
pub mod embedded;
