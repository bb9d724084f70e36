//! What every request to one REST endpoint passes before it goes: the
//! partner's "slow down" (a 429 or 503 with Retry-After, or its quota
//! headers saying none is left), which holds every request to the
//! endpoint, its poller's, its deliveries' and its files', until the time
//! given; then the endpoint's own `rate_limit_per_minute` (limiter.rs).
//! One gate per endpoint, in the client its sink and poller share.

use super::limiter::Spacing;
use super::profile::{RateLimitHeaders, ResetFormat};
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info};

/// The longest pause a partner may impose (a Retry-After of a day is
/// taken as an hour; the pause is asked again if it still holds): the
/// relay's cap on a Retry-After too.
pub const MAX_PAUSE: Duration = crate::retry::MAX_HINT;

/// A pause the partner asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Paused {
    pub until: Instant,
    /// `until` by the wall clock, for people.
    pub at: DateTime<Utc>,
    /// What asked for it: "the partner's Retry-After", or its quota header.
    pub by: String,
}

impl std::fmt::Display for Paused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "paused until {} by {}",
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.by
        )
    }
}

/// A request not sent: the daemon stops while the partner's pause holds.
#[derive(Debug)]
pub struct Stopping(pub Paused);

pub struct Gate {
    endpoint: String,
    /// Held while a request waits for its turn, so that requests go in
    /// the order they came and each one's start is known before the next
    /// is spaced from it.
    spacing: Option<tokio::sync::Mutex<Spacing>>,
    paused: std::sync::Mutex<Option<Paused>>,
    quota: Option<RateLimitHeaders>,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Gate {
    pub fn new(endpoint: &str, per_minute: Option<u32>, quota: Option<RateLimitHeaders>) -> Gate {
        Gate {
            endpoint: endpoint.to_string(),
            spacing: per_minute
                .filter(|n| *n > 0)
                .map(|n| tokio::sync::Mutex::new(Spacing::new(n))),
            paused: Default::default(),
            quota,
            stopping: tokio::sync::watch::channel(false).0,
        }
    }

    /// The partner's pause, while it holds.
    pub fn paused(&self) -> Option<Paused> {
        let p = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        p.clone().filter(|p| p.until > Instant::now())
    }

    /// The daemon stops: a request that would wait for the partner's
    /// pause is not sent (it was not sent before either: a delivery is
    /// retried after the restart, a poll reads it then).
    pub fn stop_waiting(&self) {
        self.stopping.send_replace(true);
    }

    /// Waits until a request may go: past the partner's pause, then in its
    /// turn of the endpoint's limit.
    pub async fn enter(&self) -> Result<(), Stopping> {
        let mut turn = match &self.spacing {
            Some(s) => Some(s.lock().await),
            None => None,
        };
        let mut stopping = self.stopping.subscribe();
        loop {
            let now = Instant::now();
            let paused = self.paused();
            let mut at = paused.as_ref().map_or(now, |p| p.until.max(now));
            if let Some(t) = &turn {
                at = at.max(t.earliest(now));
            }
            if at <= now {
                break;
            }
            match paused {
                // Sleeps until the pause ends (or the time of its turn,
                // then looks again: a pause may have begun meanwhile).
                Some(p) if p.until > now => {
                    if *stopping.borrow_and_update() {
                        return Err(Stopping(p));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = stopping.changed() => {}
                    }
                }
                _ => tokio::time::sleep_until(at).await,
            }
        }
        if let Some(t) = turn.as_mut() {
            t.started(Instant::now());
        }
        Ok(())
    }

    /// Reads an answer for the partner's "slow down": a 429 or 503 with
    /// Retry-After, or the profile's quota headers saying none is left
    /// (with a reset, or the profile's window). Returns the pause it asked
    /// for, now holding every request to the endpoint.
    pub fn observe(&self, status: StatusCode, headers: &HeaderMap) -> Option<Paused> {
        let (wait, by) = self.asked(status, headers, Utc::now())?;
        let wait = wait.min(MAX_PAUSE);
        if wait.is_zero() {
            return None;
        }
        let p = Paused {
            until: Instant::now() + wait,
            at: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
            by,
        };
        let mut g = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        let was = g.clone().filter(|old| old.until > Instant::now());
        if was.as_ref().is_none_or(|old| old.until < p.until) {
            *g = Some(p.clone());
        }
        drop(g);
        if was.is_none() {
            info!(endpoint = %self.endpoint, "every request to the partner {p}");
        } else {
            debug!(endpoint = %self.endpoint, "every request to the partner {p}");
        }
        Some(p)
    }

    /// How long the answer asks to wait, and what asks.
    fn asked(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Option<(Duration, String)> {
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            if let Some(d) =
                header(headers, "retry-after").and_then(|v| crate::retry::parse_retry_after(v, now))
            {
                return Some((d, "the partner's Retry-After".into()));
            }
        }
        let q = self.quota.as_ref()?;
        let (name, left) = q.remaining.iter().find_map(|n| {
            let v = header(headers, n)?;
            Some((n, v.trim().parse::<f64>().ok()?))
        })?;
        if left > 0.0 {
            return None;
        }
        let reset = q
            .reset
            .iter()
            .find_map(|n| header(headers, n).and_then(|v| reset_in(v, q.reset_format, now)));
        let wait = reset.or(q.window_secs.map(Duration::from_secs))?;
        Some((wait, format!("the partner's quota ({name}: {left})")))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// How long until a quota's reset, written as the profile says.
fn reset_in(value: &str, format: ResetFormat, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    match format {
        ResetFormat::Seconds => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite())
            .map(|s| Duration::from_secs_f64(s.clamp(0.0, MAX_PAUSE.as_secs_f64()))),
        ResetFormat::UnixTime => {
            let at = DateTime::<Utc>::from_timestamp(v.parse::<i64>().ok()?, 0)?;
            Some((at - now).to_std().unwrap_or(Duration::ZERO))
        }
        ResetFormat::HttpDate => crate::retry::parse_retry_after(v, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn zendesk() -> RateLimitHeaders {
        RateLimitHeaders {
            remaining: vec![
                "ratelimit-remaining".into(),
                "X-Rate-Limit-Remaining".into(),
            ],
            reset: vec!["ratelimit-reset".into()],
            reset_format: ResetFormat::Seconds,
            window_secs: Some(60),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn retry_after_on_429_and_503_pauses() {
        let g = Gate::new("p", None, None);
        let s = |d| Some(Duration::from_secs(d));
        let asked = |code: u16, h: &[(&'static str, &str)]| {
            g.asked(StatusCode::from_u16(code).unwrap(), &headers(h), now())
                .map(|(d, _)| d)
        };
        assert_eq!(asked(429, &[("retry-after", "7")]), s(7));
        assert_eq!(
            asked(503, &[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]),
            s(30)
        );
        // Only where it means "not before": a 500's or a 200's is not read.
        assert_eq!(asked(500, &[("retry-after", "7")]), None);
        assert_eq!(asked(200, &[("retry-after", "7")]), None);
        assert_eq!(asked(429, &[]), None);
    }

    #[test]
    fn quota_at_zero_pauses_until_its_reset() {
        let g = Gate::new("p", None, Some(zendesk()));
        let asked = |h: &[(&'static str, &str)]| g.asked(StatusCode::OK, &headers(h), now());
        assert_eq!(
            asked(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "41")]),
            Some((
                Duration::from_secs(41),
                "the partner's quota (ratelimit-remaining: 0)".into()
            ))
        );
        assert_eq!(
            asked(&[("ratelimit-remaining", "3"), ("ratelimit-reset", "41")]),
            None
        );
        // The second header named, without a reset: the window.
        assert_eq!(
            asked(&[("x-rate-limit-remaining", "0")]).map(|a| a.0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(asked(&[]), None);
        let mut q = zendesk();
        q.window_secs = None;
        let g = Gate::new("p", None, Some(q));
        assert_eq!(
            g.asked(
                StatusCode::OK,
                &headers(&[("x-rate-limit-remaining", "0")]),
                now()
            ),
            None
        );
    }

    #[test]
    fn resets_in_each_format() {
        let s = |d| Some(Duration::from_secs(d));
        assert_eq!(reset_in("41", ResetFormat::Seconds, now()), s(41));
        let unix = (now().timestamp() + 90).to_string();
        assert_eq!(reset_in(&unix, ResetFormat::UnixTime, now()), s(90));
        assert_eq!(
            reset_in(
                "Wed, 21 Oct 2015 07:29:00 GMT",
                ResetFormat::HttpDate,
                now()
            ),
            s(60)
        );
        assert_eq!(reset_in("soon", ResetFormat::Seconds, now()), None);
        assert_eq!(reset_in("-5", ResetFormat::Seconds, now()), s(0));
    }

    #[tokio::test]
    async fn a_pause_holds_every_request_and_is_capped() {
        let g = Gate::new("p", None, None);
        let p = g
            .observe(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(&[("retry-after", "86400")]),
            )
            .unwrap();
        assert!(p.until <= Instant::now() + MAX_PAUSE);
        assert!(p.until > Instant::now() + MAX_PAUSE - Duration::from_secs(5));
        assert!(
            p.to_string().contains("by the partner's Retry-After"),
            "{p}"
        );
        assert_eq!(g.paused(), Some(p.clone()));
        // A shorter one later does not shorten it.
        g.observe(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "1")]),
        );
        assert_eq!(g.paused(), Some(p));
        // Held; a stop lets the waiting requests go unsent.
        let waiting = tokio::time::timeout(Duration::from_millis(200), g.enter()).await;
        assert!(waiting.is_err(), "held");
        let stopped = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            g.stop_waiting();
        };
        let (r, _) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(g.enter(), stopped)
        })
        .await
        .unwrap();
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn a_short_pause_is_waited_out() {
        let g = Gate::new("p", Some(600), None);
        g.enter().await.unwrap();
        g.observe(
            StatusCode::SERVICE_UNAVAILABLE,
            &headers(&[("retry-after", "1")]),
        )
        .unwrap();
        let began = Instant::now();
        g.enter().await.unwrap();
        assert!(began.elapsed() >= Duration::from_millis(900));
        assert_eq!(g.paused(), None);
    }
}
