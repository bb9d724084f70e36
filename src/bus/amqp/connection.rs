//! Connecting to the broker: one attempt, the retrying loop the daemon's
//! tasks use, the pause between sessions that fail, and a clean close.

use super::broker::Broker;
use super::error::AmqpError;
use super::tls::{keep_hint, tls_hint};
use crate::retry::{Retry, RetryPolicy};
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, warn};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Broker {
    /// One connection attempt; the error says what to do where it can.
    pub async fn connect_once(&self, who: &str) -> Result<Connection, AmqpError> {
        let props = on_tokio().with_connection_name(format!("deskbridge {who}").into());
        // A broker that accepts the socket and never answers must not
        // hold us forever.
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect_with_config(&self.url, props, self.tls.config()),
        )
        .await;
        match attempt {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(source)) => Err(AmqpError::Connect {
                hint: tls_hint(&source.to_string()),
                source,
            }),
            Err(_) => Err(AmqpError::NoAnswer {
                secs: CONNECT_TIMEOUT.as_secs(),
            }),
        }
    }

    /// The broker's address as an operator may see it: no password.
    pub fn address(&self) -> String {
        match self.url.parse::<lapin::uri::AMQPUri>() {
            Ok(u) => format!(
                "{}://{}@{}:{}/{}",
                match u.scheme {
                    lapin::uri::AMQPScheme::AMQPS => "amqps",
                    lapin::uri::AMQPScheme::AMQP => "amqp",
                },
                if u.query.auth_mechanism == Some(lapin::auth::SASLMechanism::External) {
                    "(client certificate)"
                } else {
                    &u.authority.userinfo.username
                },
                u.authority.host,
                u.authority.port,
                // Never a password that leaked into the path (the config
                // check refuses such URLs; this is the second line).
                if u.vhost.contains('@') {
                    "…".to_string()
                } else {
                    u.vhost.replace('/', "%2f")
                }
            ),
            Err(_) => "(an unreadable URL)".into(),
        }
    }

    /// Connects, retrying with backoff for as long as it takes; the daemon
    /// never exits because the broker went away. `None` on shutdown.
    pub async fn connect(
        &self,
        who: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Connection> {
        let mut retry = Retry::new(SESSION_RETRY);
        let mut hinted = None;
        let mut said = crate::retry::Said::default();
        loop {
            let attempt = tokio::select! {
                r = self.connect_once(who) => r,
                _ = shutdown.changed() => return None,
            };
            match attempt {
                Ok(c) => {
                    self.up(who);
                    return Some(c);
                }
                Err(e) => {
                    let msg = e.to_string();
                    // The start does not wait for a broker that is away.
                    self.claims.broker_away();
                    let (news, attempts) = said.failed(&msg);
                    if news {
                        warn!(who, error = %msg, attempts, "waiting for the broker");
                    } else {
                        debug!(who, error = %msg, attempts, "waiting for the broker");
                    }
                    self.down(who, keep_hint(msg, &mut hinted));
                    tokio::select! {
                        _ = tokio::time::sleep(retry.next_delay(None)) => {}
                        _ = shutdown.changed() => return None,
                    }
                }
            }
        }
    }
}

/// Pauses between connection attempts, between broker sessions that end
/// in an error, and between publishes the broker refuses.
pub(super) const SESSION_RETRY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(200),
    max_interval: Duration::from_secs(10),
};

/// Backoff between sessions that fail: one that fails at once again and
/// again (a queue declared elsewhere with other arguments, say) must not
/// become a tight reconnect loop; after one that ran a while, the next
/// starts quickly.
pub(super) struct Sessions {
    retry: Retry,
    started: tokio::time::Instant,
}

impl Sessions {
    pub(super) fn new() -> Sessions {
        Sessions {
            retry: Retry::new(SESSION_RETRY),
            started: tokio::time::Instant::now(),
        }
    }

    pub(super) fn start(&mut self) {
        self.started = tokio::time::Instant::now();
    }

    /// False when the daemon stops meanwhile.
    pub(super) async fn pause(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        if self.started.elapsed() > Duration::from_secs(30) {
            self.retry = Retry::new(SESSION_RETRY);
        }
        tokio::select! {
            _ = tokio::time::sleep(self.retry.next_delay(None)) => true,
            _ = shutdown.changed() => false,
        }
    }
}

/// Closes a channel before its connection, and waits for the broker's
/// answer: a channel left to close itself when dropped races the
/// connection's close, and lapin logs the loser at ERROR ("invalid channel
/// state: Closing") on every clean stop. Bounded: the broker may be gone.
pub(super) async fn close_quietly(ch: &Channel) {
    if ch.status().connected() {
        let _ = tokio::time::timeout(Duration::from_secs(5), ch.close(200, "shutting down")).await;
    }
}

/// Connection properties that run lapin's tasks and I/O on the current
/// tokio runtime (not on threads of its own).
pub fn on_tokio() -> ConnectionProperties {
    ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
}
