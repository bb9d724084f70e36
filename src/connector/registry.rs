//! The registry: builds each endpoint's sink and sources from the
//! configuration, one arm per connector kind. A new kind adds its folder
//! under `connector/`, its variant in `config::endpoint::Connector`, and
//! its arm in `Registry::build` and `Registry::sources` below.

use super::board::Board;
use super::email::endpoint::{MailEndpoint, MailboxBoard};
use super::email::poll::MailPoller;
use super::email::sink::MailSink;
use super::error::BuildError;
use super::rest::endpoint::RestEndpoint;
use super::rest::poll::{PollBoard, Poller};
use super::rest::sink::RestSink;
use super::rest::source::ProductHook;
use super::sink::Sink;
use super::source::{Hook, Output, Source};
use super::webhook::outbound::WebhookSink;
use super::webhook::sign::Secret;
use super::webhook::source::{inbound_secrets, WebhookSource};
use crate::config::{Config, Connector};
use std::collections::HashMap;
use std::sync::Arc;

/// The connectors of a configuration, built once at start: a sink per
/// endpoint that can receive, and what its sources will share with it
/// (a REST endpoint's client and rate limit, a mail endpoint's threads).
pub struct Registry {
    pub sinks: HashMap<String, Arc<dyn Sink>>,
    rest: HashMap<String, Arc<RestEndpoint>>,
    email: HashMap<String, Arc<MailEndpoint>>,
    /// Inbound secrets, read at start so that a missing one stops the
    /// start before anything is opened.
    webhook: HashMap<String, Vec<Secret>>,
}

/// The sources of a configuration, ready to run.
pub struct Sources {
    /// Readers, each run as a task of its own.
    pub readers: Vec<Box<dyn Source>>,
    /// What answers `POST /hooks/{endpoint}`, by endpoint.
    pub hooks: HashMap<String, Arc<dyn Hook>>,
    /// What the REST pollers did, for `deskbridge status`.
    pub pollers: PollBoard,
    /// What the mailbox readers did.
    pub mailboxes: MailboxBoard,
}

impl Registry {
    pub fn build(config: &Config) -> Result<Registry, BuildError> {
        let mut r = Registry {
            sinks: HashMap::new(),
            rest: HashMap::new(),
            email: HashMap::new(),
            webhook: HashMap::new(),
        };
        for (name, ep) in &config.endpoints {
            let sink: Arc<dyn Sink> = match &ep.connector {
                Connector::Webhook(w) => {
                    r.webhook.insert(name.clone(), inbound_secrets(name, w)?);
                    match WebhookSink::from_config(name, w)? {
                        Some(sink) => Arc::new(sink),
                        None => continue,
                    }
                }
                Connector::Rest(c) => {
                    let e = RestEndpoint::from_config(name, c)?;
                    r.rest.insert(name.clone(), e.clone());
                    Arc::new(RestSink { ep: e })
                }
                Connector::Email(c) => {
                    let e = Arc::new(MailEndpoint::from_config(name, c, &config.daemon.data_dir));
                    r.email.insert(name.clone(), e.clone());
                    Arc::new(MailSink::new(e)?)
                }
            };
            r.sinks.insert(name.clone(), sink);
        }
        Ok(r)
    }

    /// Every endpoint's sources, feeding `out`.
    pub fn sources(&self, config: &Config, out: &Output) -> Sources {
        let mut s = Sources {
            readers: Vec::new(),
            hooks: HashMap::new(),
            pollers: Board::default(),
            mailboxes: Board::default(),
        };
        for (name, ep) in &config.endpoints {
            match &ep.connector {
                Connector::Webhook(w) => {
                    let hook = WebhookSource {
                        endpoint: name.clone(),
                        config: w.clone(),
                        secrets: self.webhook.get(name).cloned().unwrap_or_default(),
                        ingest: out.ingest.clone(),
                    };
                    s.hooks.insert(name.clone(), Arc::new(hook));
                }
                Connector::Rest(_) => {
                    let Some(e) = self.rest.get(name) else {
                        continue;
                    };
                    s.readers.push(Box::new(Poller {
                        board: s.pollers.clone(),
                        ep: e.clone(),
                        ingest: out.ingest.clone(),
                        store: out.store.clone(),
                        blobs: out.blobs.clone(),
                        service_account: ep.service_account.clone().unwrap_or_default(),
                    }));
                    let hook = ProductHook {
                        ep: e.clone(),
                        board: s.pollers.clone(),
                    };
                    s.hooks.insert(name.clone(), Arc::new(hook));
                }
                Connector::Email(_) => {
                    let Some(e) = self.email.get(name).filter(|e| e.cfg.imap.is_some()) else {
                        continue;
                    };
                    s.readers.push(Box::new(MailPoller {
                        ep: e.clone(),
                        ingest: out.ingest.clone(),
                        store: out.store.clone(),
                        blobs: out.blobs.clone(),
                        board: s.mailboxes.clone(),
                    }));
                }
            }
        }
        s
    }
}
