//! The poller's life: learn who deskbridge is at the endpoint, then a
//! round every `poll_secs` (at once when woken by a webhook or when more
//! changes wait), backing off while the product fails.

use super::poller::{Poller, RoundError};
use super::round::Round;
use crate::connector::rest::identity::Identity;
use crate::retry::{Retry, RetryPolicy};
use chrono::Utc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

impl Poller {
    async fn identity(&self) -> Result<Identity, RoundError> {
        Ok(self.ep.identity(&self.service_account).await?)
    }

    /// One polling round now, as `run` does them: the events taken, and
    /// whether more changes wait.
    pub async fn poll_now(&self) -> Result<(usize, bool), RoundError> {
        let me = self.identity().await?;
        let r = self.round(&me).await?;
        Ok((r.taken, r.more))
    }

    /// The partner's pause as it stands, on the status board.
    fn show_pause(&self) {
        let paused = self.ep.client.paused().map(|p| p.to_string());
        crate::connector::board::with_entry(&self.board, &self.ep.name, |s| s.paused = paused);
    }

    /// Runs until `shutdown` fires.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let name = self.ep.name.clone();
        // A stop does not wait for the partner's pause (up to an hour):
        // the requests it holds, this poller's and the sink's, go unsent.
        let ep = self.ep.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            ep.client.stop_waiting();
        });
        let mut retry = Retry::new(RetryPolicy::default());
        let mut said = crate::retry::Said::default();
        let me = loop {
            match self.identity().await {
                Ok(me) => break me,
                Err(e) => {
                    crate::connector::board::with_entry(&self.board, &name, |s| {
                        s.failing = Some(format!("cannot learn who deskbridge is: {}", e.message))
                    });
                    let wait = retry.next_delay(e.retry_after);
                    let (news, failures) = said.failed(&e.message);
                    if news {
                        warn!(endpoint = %name, error = %e.message, failures, "cannot learn who deskbridge is here; will retry");
                    } else {
                        debug!(endpoint = %name, error = %e.message, failures, "cannot learn who deskbridge is here; will retry");
                    }
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        };
        if me.login != self.service_account {
            warn!(endpoint = %name, login = %me.login, service_account = %self.service_account,
                "the credentials belong to another user than service_account");
        }
        info!(endpoint = %name, user = %me.login, "polling every {:?}", self.ep.poll);
        let mut retry = Retry::new(RetryPolicy::default());
        let mut said = crate::retry::Said::default();
        loop {
            // `deaf`: after a failure, the backoff (and a Retry-After)
            // holds even when the product's webhooks ask for more.
            let began = std::time::Instant::now();
            self.show_pause();
            let round = self.round(&me).await;
            self.show_pause();
            let (wait, deaf) = match round {
                Ok(Round {
                    taken: n,
                    more,
                    reads,
                    pages,
                }) => {
                    retry = Retry::new(RetryPolicy::default());
                    if let Some(r) = said.recovered() {
                        info!(
                            endpoint = %name, failures = r.failures, lasted_secs = r.lasted.as_secs(),
                            "the poll works again after {} ({} failed rounds)",
                            crate::human::span(r.lasted), r.failures
                        );
                    }
                    crate::connector::board::with_entry(&self.board, &name, |s| {
                        s.rounds += 1;
                        s.taken += n as u64;
                        s.last_round_reads = reads as u64;
                        s.last_round_pages = pages;
                        s.last_round_ms = began.elapsed().as_millis() as u64;
                        s.last_ok = Some(Utc::now());
                        s.failing = None;
                    });
                    if n > 0 {
                        debug!(endpoint = %name, events = n, "polled");
                    }
                    let wait = if more { Duration::ZERO } else { self.ep.poll };
                    (wait, Duration::ZERO)
                }
                Err(e) => {
                    crate::connector::board::with_entry(&self.board, &name, |s| {
                        s.failing = Some(e.message.clone())
                    });
                    let backoff = retry.next_delay(e.retry_after);
                    let wait = backoff.max(self.ep.poll);
                    let wait_ms = wait.as_millis() as u64;
                    let (news, failures) = said.failed(&e.message);
                    if news {
                        warn!(endpoint = %name, error = %e.message, failures, wait_ms, "poll failed; will retry");
                    } else {
                        debug!(endpoint = %name, error = %e.message, failures, wait_ms, "poll failed; will retry");
                    }
                    (wait, backoff)
                }
            };
            let woken = async {
                tokio::time::sleep(deaf).await;
                // A wake during a round is kept: the next one runs at once.
                self.ep.wake.notified().await
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = woken => {}
            }
        }
    }
}
