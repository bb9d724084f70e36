//! The integration tests, one crate with a module per area, so that the
//! suite links the product once. They run the real binary against sample
//! desks, the machine's RabbitMQ, and live Request Tracker, Redmine,
//! django-helpdesk and mail servers (scripts/test.sh starts them).
//! One area: `cargo nextest run --test suite mail::`.

mod common;

mod amqp;
mod amqp_faults;
mod architecture;
mod config_check;
mod crash;
mod delivery_faults;
mod demo;
mod disk_full;
mod federation;
mod log_volume;
mod mail;
mod operator;
mod rest_djhd;
mod rest_djhd_cross;
mod rest_djhd_webhook;
mod rest_limits;
mod rest_live_faults;
mod rest_profiles;
mod rest_redmine;
mod rest_rt;
mod rest_rt_redmine;
mod webhook_inbound;
