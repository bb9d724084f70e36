//! The log at volume. Each event's own lines (accepted, delivered, polled,
//! mailed) are at debug; at info, every `daemon.log_summary_secs`, one line
//! per destination that delivered, retried or dead-lettered since the last
//! summary or has messages waiting, and one per poller or mailbox that took
//! something. An idle daemon says nothing. What changed is said when it
//! happens, elsewhere: an outage's start and end (relay/deliver.rs), a dead
//! letter (relay/dead.rs), a reader that fails or works again.
//!
//! Built from what `deskbridge status` shows (`Ops::status`: the relays'
//! status board and the store's counts), so the way of an event keeps no
//! bookkeeping for the log.

use crate::ops::{Ops, StatusView};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// A failure's reason in a summary: its head, enough to recognise it (the
/// warning when it began said it whole).
const REASON_CHARS: usize = 200;

/// The counters since start that the last summary saw.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    dests: BTreeMap<String, [u64; 3]>,
    pollers: BTreeMap<String, [u64; 2]>,
    mailboxes: BTreeMap<String, [u64; 3]>,
}

/// One destination's line.
#[derive(Clone, Debug, PartialEq)]
pub struct DestLine {
    pub dest: String,
    pub delivered: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    /// Queued, parked in the store, and ready at the broker.
    pub waiting: u64,
    pub oldest_waiting_secs: Option<i64>,
    pub failing: Option<String>,
    pub unconfigured: bool,
    pub period: Duration,
}

/// A reader's line: a poller (events taken, the product's webhooks) or a
/// mailbox (mails taken, left alone, not applied).
#[derive(Clone, Debug, PartialEq)]
pub enum ReaderLine {
    Poller {
        endpoint: String,
        taken: u64,
        webhooks: u64,
        period: Duration,
    },
    Mailbox {
        endpoint: String,
        taken: u64,
        left_alone: u64,
        not_applied: u64,
        period: Duration,
    },
}

/// What a summary says.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Dest(DestLine),
    Reader(ReaderLine),
}

/// Since the last summary: `now`'s counters less `was`'s (a counter that
/// went back, as after a restart, counts from zero).
fn since<const N: usize>(now: [u64; N], was: Option<&[u64; N]>) -> [u64; N] {
    let was = was.copied().unwrap_or([0; N]);
    std::array::from_fn(|i| now[i].checked_sub(was[i]).unwrap_or(now[i]))
}

/// The lines of a summary of `status`, `period` after the last one (which
/// saw `seen`; updated to `status`'s counters). Only what moved or waits.
pub fn summarize(
    seen: &mut Seen,
    status: &StatusView,
    at: DateTime<Utc>,
    period: Duration,
) -> Vec<Line> {
    let mut out = Vec::new();
    for (dest, d) in &status.destinations {
        let now = [d.delivered, d.retried, d.dead_lettered];
        let [delivered, retried, dead_lettered] = since(now, seen.dests.get(dest));
        seen.dests.insert(dest.clone(), now);
        let waiting =
            d.queued as u64 + d.parked as u64 + u64::from(d.at_broker.unwrap_or_default());
        let moved = delivered + retried + dead_lettered > 0;
        if !moved && waiting == 0 && d.failing.is_none() {
            continue;
        }
        out.push(Line::Dest(DestLine {
            dest: dest.clone(),
            delivered,
            retried,
            dead_lettered,
            waiting,
            oldest_waiting_secs: d
                .oldest_waiting_since
                .map(|t| (at - t).num_seconds().max(0)),
            failing: d.failing.as_deref().map(head),
            unconfigured: d.unconfigured,
            period,
        }));
    }
    for (endpoint, p) in &status.pollers {
        let now = [p.taken, p.webhooks];
        let [taken, webhooks] = since(now, seen.pollers.get(endpoint));
        seen.pollers.insert(endpoint.clone(), now);
        if taken + webhooks > 0 {
            out.push(Line::Reader(ReaderLine::Poller {
                endpoint: endpoint.clone(),
                taken,
                webhooks,
                period,
            }));
        }
    }
    for (endpoint, m) in &status.mailboxes {
        let now = [m.taken, m.left_alone, m.not_applied];
        let [taken, left_alone, not_applied] = since(now, seen.mailboxes.get(endpoint));
        seen.mailboxes.insert(endpoint.clone(), now);
        if taken + left_alone + not_applied > 0 {
            out.push(Line::Reader(ReaderLine::Mailbox {
                endpoint: endpoint.clone(),
                taken,
                left_alone,
                not_applied,
                period,
            }));
        }
    }
    out
}

/// The first `REASON_CHARS` characters of a reason.
fn head(reason: &str) -> String {
    match reason.char_indices().nth(REASON_CHARS) {
        Some((i, _)) => format!("{}…", &reason[..i]),
        None => reason.to_string(),
    }
}

fn period(p: Duration) -> String {
    format!("in the last {}", crate::human::span(p))
}

impl fmt::Display for DestLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.dest)?;
        if self.unconfigured {
            f.write_str("NOT CONFIGURED to receive")?;
        } else {
            write!(
                f,
                "{} delivered, {} retried, {} dead-lettered {}",
                self.delivered,
                self.retried,
                self.dead_lettered,
                period(self.period)
            )?;
        }
        match (self.waiting, self.oldest_waiting_secs) {
            (0, None) => f.write_str("; nothing waiting")?,
            (n, None) => write!(f, "; {n} waiting")?,
            (n, Some(s)) => write!(
                f,
                "; {n} waiting, the oldest for {}",
                crate::human::duration(s)
            )?,
        }
        if let Some(why) = &self.failing {
            write!(f, "; failing: {why}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ReaderLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderLine::Poller {
                endpoint,
                taken,
                webhooks,
                period: p,
            } => {
                write!(f, "{endpoint}: {taken} events taken from the product")?;
                if *webhooks > 0 {
                    write!(f, ", woken by {webhooks} of its webhooks")?;
                }
                write!(f, " {}", period(*p))
            }
            ReaderLine::Mailbox {
                endpoint,
                taken,
                left_alone,
                not_applied,
                period: p,
            } => write!(
                f,
                "{endpoint}: {taken} mails taken, {left_alone} left alone, {not_applied} not applied {}",
                period(*p)
            ),
        }
    }
}

impl Line {
    /// At info, with the figures as fields for JSON logs.
    pub fn log(&self) {
        match self {
            Line::Dest(d) => info!(
                dest = %d.dest,
                delivered = d.delivered,
                retried = d.retried,
                dead_lettered = d.dead_lettered,
                waiting = d.waiting,
                oldest_waiting_secs = d.oldest_waiting_secs,
                "summary: {d}"
            ),
            Line::Reader(r) => info!("summary: {r}"),
        }
    }
}

/// Runs until `shutdown`: a summary every `every` (none for zero), and one
/// at the stop for what the last one did not see.
pub async fn run(ops: Ops, every: Duration, mut shutdown: watch::Receiver<bool>) {
    if every.is_zero() {
        return;
    }
    let mut seen = Seen::default();
    let mut last = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(last + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => true,
            _ = tick.tick() => false,
        };
        // The store's counts are read as `deskbridge status` reads them:
        // off the runtime's workers.
        let o = ops.clone();
        match tokio::task::spawn_blocking(move || o.status()).await {
            Ok(Ok(status)) => {
                let now = tokio::time::Instant::now();
                for line in summarize(&mut seen, &status, Utc::now(), now - last) {
                    line.log();
                }
                last = now;
            }
            Ok(Err(e)) => warn!(error = %e, "the log's summary cannot read the status"),
            Err(_) => {}
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::DestStatus;

    fn view(dests: &[(&str, DestStatus)]) -> StatusView {
        StatusView {
            running: true,
            broker: None,
            links: 0,
            dead_letters: 0,
            destinations: dests
                .iter()
                .map(|(n, d)| (n.to_string(), d.clone()))
                .collect(),
            mailboxes: BTreeMap::new(),
            pollers: BTreeMap::new(),
        }
    }

    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn lines(seen: &mut Seen, s: &StatusView, at: DateTime<Utc>) -> Vec<String> {
        summarize(seen, s, at, FIVE_MIN)
            .iter()
            .map(|l| match l {
                Line::Dest(d) => d.to_string(),
                Line::Reader(r) => r.to_string(),
            })
            .collect()
    }

    #[test]
    fn an_idle_daemon_says_nothing() {
        let mut seen = Seen::default();
        let s = view(&[("a", DestStatus::default()), ("b", DestStatus::default())]);
        assert!(lines(&mut seen, &s, Utc::now()).is_empty());
        // Counters that stand still after moving say nothing either.
        let busy = DestStatus {
            delivered: 40,
            ..DestStatus::default()
        };
        let s = view(&[("b", busy)]);
        assert_eq!(lines(&mut seen, &s, Utc::now()).len(), 1);
        assert!(lines(&mut seen, &s, Utc::now()).is_empty());
    }

    #[test]
    fn a_destination_says_what_it_did_since_the_last_summary() {
        let mut seen = Seen::default();
        let at = Utc::now();
        let first = DestStatus {
            delivered: 1000,
            retried: 2,
            ..DestStatus::default()
        };
        assert_eq!(
            lines(&mut seen, &view(&[("vendor", first)]), at),
            ["vendor: 1000 delivered, 2 retried, 0 dead-lettered in the last 5 min; nothing waiting"]
        );
        let second = DestStatus {
            delivered: 1234,
            retried: 9,
            dead_lettered: 1,
            queued: 40,
            oldest_waiting_since: Some(at - chrono::Duration::seconds(130)),
            failing: Some("vendor answered 503 Service Unavailable".into()),
            ..DestStatus::default()
        };
        assert_eq!(
            lines(&mut seen, &view(&[("vendor", second)]), at),
            ["vendor: 234 delivered, 7 retried, 1 dead-lettered in the last 5 min; 40 waiting, the oldest for 2 min; failing: vendor answered 503 Service Unavailable"]
        );
    }

    #[test]
    fn a_backlog_is_said_even_without_deliveries() {
        let mut seen = Seen::default();
        let at = Utc::now();
        let stuck = DestStatus {
            queued: 3,
            parked: 2,
            at_broker: Some(5),
            ..DestStatus::default()
        };
        let gone = DestStatus {
            queued: 12,
            unconfigured: true,
            oldest_waiting_since: Some(at - chrono::Duration::hours(74)),
            ..DestStatus::default()
        };
        assert_eq!(
            lines(&mut seen, &view(&[("old", gone), ("rt", stuck)]), at),
            [
                "old: NOT CONFIGURED to receive; 12 waiting, the oldest for 3 d 2 h",
                "rt: 0 delivered, 0 retried, 0 dead-lettered in the last 5 min; 10 waiting",
            ]
        );
    }

    #[test]
    fn a_long_reason_is_cut() {
        let mut seen = Seen::default();
        let d = DestStatus {
            retried: 1,
            failing: Some(format!("rt answered 500: {}", "x".repeat(500))),
            ..DestStatus::default()
        };
        let l = &lines(&mut seen, &view(&[("rt", d)]), Utc::now())[0];
        assert!(l.ends_with('…'), "{l}");
        assert!(l.len() < 400, "{l}");
    }

    #[test]
    fn readers_say_what_they_took() {
        let mut seen = Seen::default();
        let mut s = view(&[]);
        s.pollers.insert(
            "redmine".into(),
            crate::connector::rest::poll::PollStatus {
                taken: 17,
                webhooks: 4,
                ..Default::default()
            },
        );
        s.pollers.insert("quiet".into(), Default::default());
        s.mailboxes.insert(
            "mail".into(),
            crate::connector::email::MailboxStatus {
                taken: 5,
                left_alone: 2,
                ..Default::default()
            },
        );
        assert_eq!(
            lines(&mut seen, &s, Utc::now()),
            [
                "redmine: 17 events taken from the product, woken by 4 of its webhooks in the last 5 min",
                "mail: 5 mails taken, 2 left alone, 0 not applied in the last 5 min",
            ]
        );
        assert!(lines(&mut seen, &s, Utc::now()).is_empty());
    }

    #[test]
    fn a_counter_that_went_back_counts_from_zero() {
        assert_eq!(since([5, 3], Some(&[10, 1])), [5, 2]);
        assert_eq!(since([5], None), [5]);
    }
}
