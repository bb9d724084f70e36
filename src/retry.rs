//! Backoff policy for transient failures. The only user of `backoff`, so
//! the crate can be swapped without touching the relay.

use backoff::backoff::Backoff as _;
use std::collections::HashMap;
use std::time::Duration;

/// The longest wait a partner's Retry-After may impose before we try again.
pub const MAX_HINT: Duration = Duration::from_secs(3600);

/// Retry schedule for one delivery: exponential with jitter, capped, never
/// giving up (an event is only given up by a permanent error).
pub struct Retry {
    inner: backoff::ExponentialBackoff,
}

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max_interval: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max_interval: Duration::from_secs(300),
        }
    }
}

impl Retry {
    pub fn new(p: RetryPolicy) -> Retry {
        Retry {
            inner: backoff::ExponentialBackoff {
                initial_interval: p.initial,
                current_interval: p.initial,
                max_interval: p.max_interval,
                max_elapsed_time: None,
                ..backoff::ExponentialBackoff::default()
            },
        }
    }

    /// How long to wait before the next attempt; a partner's Retry-After
    /// wins when given (the partner knows when it will take work again).
    pub fn next_delay(&mut self, hint: Option<Duration>) -> Duration {
        let ours = self.inner.next_backoff().unwrap_or(self.inner.max_interval);
        match hint {
            Some(h) => h.min(MAX_HINT),
            None => ours,
        }
    }
}

/// What retries against one party (a broker, a partner) have told the
/// log: an outage all night is said at once, then for a new kind of
/// reason, and else once in `SAY_AGAIN`; the attempts between go to debug.
/// The kind is the message's head, before its first ": " (`reason_kind`):
/// a partner's error page that carries a request id or a time must not
/// make every retry news.
#[derive(Default)]
pub struct Said {
    attempts: u64,
    /// When the outage began: the first failure since the last success.
    since: Option<std::time::Instant>,
    /// Each kind of reason, and when it was last said.
    said: HashMap<String, std::time::Instant>,
}

/// An outage that ended: how many attempts failed, over how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub failures: u64,
    pub lasted: Duration,
}

const SAY_AGAIN: Duration = Duration::from_secs(300);
/// Kinds remembered at most: past it, all are forgotten (and said again).
const KINDS: usize = 16;

/// The head of an error message, before the details that vary from one
/// attempt to the next ("vendor answered 503 Service Unavailable: <page>").
fn reason_kind(msg: &str) -> &str {
    let head = msg.split(": ").next().unwrap_or(msg);
    match head.char_indices().nth(80) {
        Some((i, _)) => &head[..i],
        None => head,
    }
}

impl Said {
    /// Counts a failed attempt: whether its reason is news for the log
    /// (warn) or not (debug), and the attempts failed so far.
    pub fn failed(&mut self, msg: &str) -> (bool, u64) {
        self.attempts += 1;
        self.since.get_or_insert_with(std::time::Instant::now);
        (self.worth_saying(msg), self.attempts)
    }

    /// A success: forgets the outage, and tells it if there was one (for
    /// the log's "works again" line: an outage's end is news too).
    pub fn recovered(&mut self) -> Option<Recovered> {
        let since = self.since?;
        let r = Recovered {
            failures: self.attempts,
            lasted: since.elapsed(),
        };
        *self = Said::default();
        Some(r)
    }

    fn worth_saying(&mut self, msg: &str) -> bool {
        let now = std::time::Instant::now();
        let kind = reason_kind(msg);
        let worth = self
            .said
            .get(kind)
            .is_none_or(|at| now.duration_since(*at) >= SAY_AGAIN);
        if worth {
            if self.said.len() >= KINDS {
                self.said.clear();
            }
            self.said.insert(kind.to_string(), now);
        }
        worth
    }
}

/// The Retry-After of a partner's answer, if it sent one we can read.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
}

/// Parses a Retry-After header value: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A night of refused connections is said once, and again when the
    /// reason changes, not at every retry.
    #[test]
    fn a_long_outage_is_said_once_per_reason() {
        let mut said = Said::default();
        assert!(said.worth_saying("connection refused"));
        for _ in 0..100 {
            assert!(!said.worth_saying("connection refused"));
        }
        assert!(said.worth_saying("access refused"));
        assert!(!said.worth_saying("access refused"));
        // Reasons that alternate (links failing differently) are each said
        // once; details after the head do not make news.
        assert!(!said.worth_saying("connection refused"));
        assert_eq!(
            said.failed("vendor answered 503: <p>request 1a2b</p>"),
            (true, 1)
        );
        assert_eq!(
            said.failed("vendor answered 503: <p>request 3c4d</p>"),
            (false, 2)
        );
        assert_eq!(said.failed("vendor answered 502: bad gateway"), (true, 3));
        // The end of the outage is told once, with its failures; the next
        // failure begins a new one, news again.
        assert_eq!(said.recovered().map(|r| r.failures), Some(3));
        assert_eq!(said.recovered(), None);
        assert_eq!(said.failed("vendor answered 503: again"), (true, 1));
    }

    /// Without a failure there is nothing to recover from.
    #[test]
    fn a_success_without_an_outage_tells_nothing() {
        assert_eq!(Said::default().recovered(), None);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn hint_is_honoured_and_backoff_grows_to_its_cap() {
        let mut r = Retry::new(RetryPolicy {
            initial: Duration::from_millis(100),
            max_interval: Duration::from_secs(1),
        });
        assert_eq!(
            r.next_delay(Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            last = r.next_delay(None);
            assert!(last <= Duration::from_millis(1500), "{last:?}");
        }
        assert!(last >= Duration::from_millis(500), "{last:?}");
        assert_eq!(
            r.next_delay(Some(Duration::from_secs(7200))),
            Duration::from_secs(3600)
        );
    }
}
