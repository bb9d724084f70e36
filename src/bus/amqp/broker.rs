//! The broker handle that the daemon holds: its settings, its connection
//! status for `deskbridge status`, and its claims on the destinations'
//! queues. Connecting, publishing and consuming are in their own files.

use super::claims::Claims;
use super::error::AmqpError;
use super::status::{BrokerBoard, BrokerStatus};
use super::tls::Tls;
use super::topology::Topology;
use crate::config::bus::read_ca_file;
use crate::config::bus_error::BusSetupError;
use crate::config::BusConfig;
use chrono::Utc;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

#[derive(Clone)]
pub struct Broker {
    pub(super) url: String,
    pub(super) tls: Tls,
    pub topology: Topology,
    pub board: BrokerBoard,
    pub prefetch: u16,
    pub window: usize,
    pub(super) claims: Claims,
}

impl Broker {
    pub fn new(cfg: &BusConfig) -> Result<Broker, BusSetupError> {
        let url = cfg
            .url
            .as_ref()
            .ok_or(BusSetupError::UrlMissing)?
            .resolve()
            .map_err(BusSetupError::Url)?;
        let cert_chain = match &cfg.ca_file {
            Some(f) => Some(read_ca_file(f).map_err(BusSetupError::CaFile)?),
            None => None,
        };
        let identity = match &cfg.client_certificate {
            Some(c) => Some(c.load().map_err(BusSetupError::ClientCertificate)?),
            None => None,
        };
        Ok(Broker {
            url,
            tls: Tls {
                cert_chain,
                identity,
            },
            topology: Topology {
                prefix: cfg.prefix.clone(),
            },
            // Not connected until a connection is made: a broker that
            // accepts the TCP connection and does not answer must not read
            // as connected in `deskbridge status`.
            board: Arc::new(Mutex::new(BrokerStatus {
                waiting: Some("connecting".into()),
                waiting_since: Some(Utc::now()),
                ..BrokerStatus::default()
            })),
            prefetch: cfg.prefetch,
            window: cfg.publish_window,
            claims: Claims::new(),
        })
    }

    /// The destinations whose queues this deskbridge's consumers will
    /// claim: until each has been claimed once, the daemon is starting.
    pub fn will_claim(&self, dests: impl IntoIterator<Item = String>) {
        self.claims.expect(dests);
    }

    /// Waits until every destination's queue has been claimed once (Ok),
    /// a claim was refused (the reason, with what to change), or a
    /// connection failed first (Ok: the broker is away, and the claims are
    /// made, or refused, when it is back; see `refused`).
    pub async fn claimed(&self) -> Result<(), AmqpError> {
        self.claims.claimed().await
    }

    /// Fires when a claim was refused before every destination was claimed
    /// once: another deskbridge uses this prefix's queues, and this one
    /// must stop. Never otherwise.
    pub async fn refused(&self) -> String {
        self.claims.refused().await
    }

    pub(super) fn set(&self, f: impl FnOnce(&mut BrokerStatus)) {
        f(&mut self.board.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Names the connections to come, so that none reads as connected
    /// before all are.
    pub fn expect(&self, roles: impl IntoIterator<Item = String>) {
        self.set(|s| s.down.extend(roles));
    }

    pub(super) fn up(&self, who: &str) {
        self.set(|s| {
            s.down.remove(who);
            if s.down.is_empty() {
                if s.waiting.is_some() {
                    info!("connected to the broker");
                }
                s.connected = true;
                s.waiting = None;
                s.waiting_since = None;
            }
        });
    }

    pub(super) fn down(&self, who: &str, why: String) {
        self.set(|s| {
            s.down.insert(who.to_string());
            s.connected = false;
            s.waiting_since.get_or_insert_with(Utc::now);
            s.waiting = Some(format!("{who}: {why}"));
        });
    }

    pub(super) fn lost(&self, who: &str, e: &AmqpError) {
        warn!(who, error = %e, "broker connection lost; reconnecting");
        self.down(who, e.to_string());
    }
}
