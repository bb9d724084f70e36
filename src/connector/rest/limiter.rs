//! An endpoint's `rate_limit_per_minute`: requests evenly spaced (a token
//! bucket that holds one), the spacing counted from when each request
//! really went, so that no 60-second window ever holds more than the limit.
//! Pure: the caller gives the times (gate.rs waits for them).

use std::time::Duration;
use tokio::time::Instant;

/// The window a limit per minute counts in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Added to the window the spacing covers: what separates deskbridge
/// releasing a request from the product counting it (a new connection
/// against a pooled one) must not bring N + 1 into the product's minute.
pub const SLACK: Duration = Duration::from_millis(100);

pub struct Spacing {
    /// Between two starts: (WINDOW + SLACK) / N, rounded up, so that N
    /// gaps are never shorter than the window.
    interval: Duration,
    last: Option<Instant>,
}

impl Spacing {
    /// `per_minute` at least 1 (the configuration's checks say so).
    pub fn new(per_minute: u32) -> Spacing {
        let n = u128::from(per_minute.max(1));
        let nanos = (WINDOW + SLACK).as_nanos().div_ceil(n);
        Spacing {
            interval: Duration::from_nanos(nanos as u64),
            last: None,
        }
    }

    /// When the next request may start, at `now` or later.
    pub fn earliest(&self, now: Instant) -> Instant {
        self.last.map_or(now, |l| now.max(l + self.interval))
    }

    /// A request started at `at` (its real time, after any wait: a sleep
    /// that woke late moves the next one later, never earlier).
    pub fn started(&mut self, at: Instant) {
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The most starts in any closed window [t, t + WINDOW].
    fn busiest_window(starts: &[Instant]) -> usize {
        let mut most = 0;
        for (i, s) in starts.iter().enumerate() {
            let n = starts[i..]
                .iter()
                .take_while(|t| **t <= *s + WINDOW)
                .count();
            most = most.max(n);
        }
        most
    }

    /// Requests arriving as they come (bursts and lulls), each started at
    /// its slot or late (a timer that wakes late, a lock): never more than
    /// the limit in any window of a minute, and a lone request is not held.
    fn admit(per_minute: u32, arrivals: &[(u64, u64)]) -> Vec<Instant> {
        let base = Instant::now();
        let mut s = Spacing::new(per_minute);
        let (mut arrival, mut previous) = (base, base);
        let mut starts = Vec::new();
        for (gap_ms, late_ms) in arrivals {
            arrival += Duration::from_millis(*gap_ms);
            // One at a time through the gate: a request that came while
            // another waited has its turn when that one started.
            let now = arrival.max(previous);
            let at = s.earliest(now) + Duration::from_millis(*late_ms);
            s.started(at);
            starts.push(at);
            previous = at;
        }
        starts
    }

    proptest! {
        #[test]
        fn no_minute_holds_more_than_the_limit(
            per_minute in 1u32..200,
            arrivals in proptest::collection::vec((0u64..3000, 0u64..40), 1..600),
        ) {
            let starts = admit(per_minute, &arrivals);
            prop_assert!(starts.windows(2).all(|w| w[0] <= w[1]));
            let most = busiest_window(&starts);
            prop_assert!(most <= per_minute as usize, "{most} in a minute, limit {per_minute}");
        }
    }

    #[test]
    fn a_flat_out_minute_takes_the_limit_and_no_more() {
        // Everyone at once, 121 requests at 120 a minute: the 121st is
        // past the minute that holds the first.
        let starts = admit(120, &[(0, 0); 241]);
        assert_eq!(busiest_window(&starts), 120);
        assert!(starts[120] - starts[0] > WINDOW);
        // Evenly: about half a second apart, not 120 at once.
        assert!(starts[1] - starts[0] >= Duration::from_millis(500));
        assert!(starts[1] - starts[0] < Duration::from_millis(502));
    }

    #[test]
    fn an_idle_endpoint_sends_at_once() {
        let mut s = Spacing::new(6);
        let t = Instant::now();
        assert_eq!(s.earliest(t), t);
        s.started(t);
        assert_eq!(s.earliest(t), t + Duration::from_nanos(10_016_666_667));
        let later = t + Duration::from_secs(30);
        assert_eq!(s.earliest(later), later);
    }
}
