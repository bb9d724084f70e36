//! The product's own quota headers: where its answers say how many
//! requests are left, and when the count starts again. When none is left,
//! every request to the endpoint waits for the reset (a 429 or 503 with
//! Retry-After pauses the endpoint whatever the profile says).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitHeaders {
    /// Headers carrying the requests left in the product's window; the
    /// first one present in an answer is read (Zendesk:
    /// `ratelimit-remaining`, `X-Rate-Limit-Remaining`).
    pub remaining: Vec<String>,
    /// Headers saying when the window starts again; the first one present
    /// is read (Zendesk: `ratelimit-reset`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reset: Vec<String>,
    /// How `reset` is written.
    #[serde(default)]
    pub reset_format: ResetFormat,
    /// When none is left and the answer gives no reset: the pause, in
    /// seconds (the product's window, 60 for a quota per minute). Without
    /// it, the next request's 429 and its Retry-After tell the pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetFormat {
    /// Seconds from the answer (`ratelimit-reset: 41`).
    #[default]
    Seconds,
    /// A Unix time in seconds (`X-RateLimit-Reset: 1366037820`).
    UnixTime,
    /// An HTTP date, as Retry-After may be written.
    HttpDate,
}

impl RateLimitHeaders {
    /// Its problems, by their path in the profile.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.remaining.is_empty() {
            p.push("rate_limit.remaining: name at least one header".into());
        }
        for (key, names) in [("remaining", &self.remaining), ("reset", &self.reset)] {
            for n in names {
                if reqwest::header::HeaderName::from_bytes(n.as_bytes()).is_err() {
                    p.push(format!("rate_limit.{key}: {n:?} is not a header name"));
                }
            }
        }
        if self.window_secs == Some(0) {
            p.push("rate_limit.window_secs: must be at least 1 (leave it out for none)".into());
        }
        p
    }
}
