//! How the daemon stops: the grace that work in flight gets, shared by the
//! relay (which finishes its deliveries within it) and the broker's
//! consumers (which wait that long for their acknowledgements).

use std::time::Duration;

/// How long a stop waits for deliveries in flight to finish.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
