//! `deskbridge bench`: the full pipeline on loopback (signed webhook in,
//! store, bus, relay, signed webhook out to an instant destination), and in
//! the same run a bare-lapin baseline on the same broker with the same
//! payloads. Prints figures; asserts nothing.

mod baseline;
mod destination;
mod outage;
mod partner;
mod pipeline;
mod report;
mod run;
mod usage;

pub use outage::{outage, OutageReport};
pub use report::{BenchError, Report};
pub use run::run;
