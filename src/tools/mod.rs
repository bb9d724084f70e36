//! What ships beside the daemon but is not part of it: the benchmark, the
//! demo, the probe of an endpoint, and the sample desk the demo and the
//! tests talk to.

pub mod bench;
pub mod demo;
pub mod probe;
pub mod sample_desk;
