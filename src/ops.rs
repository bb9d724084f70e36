//! What an operator can ask and do: links, dead letters, replay, transfer,
//! status. Served by the admin API while the daemon runs, and called
//! directly by the CLI on the data dir when it does not.

use crate::bus::notify::Notifier;
use crate::config::Config;
use crate::event::Status;
use crate::ingest::{Ingest, IngestError};
use crate::link::Link;
use crate::relay::{DestStatus, StatusBoard};
use crate::store::{QueueKey, Store, StoreError};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpsError {
    pub fn status(&self) -> StatusCode {
        match self {
            OpsError::NotFound(_) | OpsError::Store(StoreError::NoDeadLetter(_)) => {
                StatusCode::NOT_FOUND
            }
            OpsError::BadRequest(_) | OpsError::Store(StoreError::Rejected(_)) => {
                StatusCode::BAD_REQUEST
            }
            OpsError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<IngestError> for OpsError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Store(s) => OpsError::Store(s),
            other => OpsError::BadRequest(other.to_string()),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SideView {
    pub endpoint: String,
    pub party: String,
    pub ticket: Option<String>,
    pub status: Option<Status>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinkView {
    pub id: String,
    pub upstream: SideView,
    pub downstream: SideView,
    pub created_at: DateTime<Utc>,
    /// Messages of this link still waiting, per destination.
    #[serde(default)]
    pub queued: BTreeMap<String, usize>,
    /// Dead letters holding this link back.
    #[serde(default)]
    pub dead: Vec<DeadView>,
    /// The whole chain this link is part of, from the first company down
    /// (`links show` only): where the work stands at each, and how long
    /// each has held it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ChainStep>,
}

/// One company's ticket in a chain of links.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainStep {
    /// 0 for the company the work came from, 1 for the one it handed the
    /// work to, and so on.
    pub depth: usize,
    pub endpoint: String,
    pub party: String,
    pub ticket: Option<String>,
    pub status: Option<Status>,
    pub status_at: Option<DateTime<Utc>>,
    /// Set there by deskbridge, relaying a partner's status.
    #[serde(default)]
    pub status_relayed: bool,
    /// The link that brought the work here (none for the first company).
    pub link: Option<String>,
    /// When it was handed the work: deskbridge created its ticket (for a
    /// link made before that was kept, or whose ticket came another way,
    /// the link's creation).
    pub got_at: Option<DateTime<Utc>>,
    /// When it called the work done (resolved, closed or cancelled).
    pub done_at: Option<DateTime<Utc>>,
    /// From `got_at` to `done_at`, or to now while it is not done; none
    /// while its ticket is not created yet, or for a side done before
    /// deskbridge kept the time.
    pub held_secs: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadView {
    pub id: String,
    pub dest: String,
    pub link: String,
    pub event: String,
    pub kind: String,
    pub error: String,
    pub attempts: u32,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferRequest {
    pub from: String,
    pub ticket: String,
    pub to: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusView {
    pub running: bool,
    /// RabbitMQ connection, when the bus is amqp and the daemon runs.
    #[serde(default)]
    pub broker: Option<crate::bus::amqp::BrokerStatus>,
    pub links: usize,
    pub dead_letters: usize,
    pub destinations: BTreeMap<String, DestStatus>,
    /// E-mail endpoints' mailboxes, when the daemon reads some.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mailboxes: BTreeMap<String, crate::connector::email::MailboxStatus>,
    /// REST endpoints' pollers, when the daemon runs some.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pollers: BTreeMap<String, crate::connector::rest::poll::PollStatus>,
}

#[derive(Clone)]
pub struct Ops {
    pub config: Arc<Config>,
    pub store: Store,
    pub ingest: Ingest,
    pub queues: Notifier,
    /// Present while the daemon runs.
    pub board: Option<StatusBoard>,
    /// Present while the daemon runs with RabbitMQ.
    pub broker: Option<crate::bus::amqp::BrokerBoard>,
    /// What the mailbox readers did (a running daemon's).
    pub mailboxes: Option<crate::connector::email::MailboxBoard>,
    /// What the REST pollers did (a running daemon's).
    pub pollers: Option<crate::connector::rest::poll::PollBoard>,
}

impl Ops {
    fn side(&self, s: &crate::link::Side) -> SideView {
        SideView {
            endpoint: s.endpoint.clone(),
            party: self
                .config
                .party_of(&s.endpoint)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            ticket: s.ticket.clone(),
            status: s.status,
        }
    }

    fn view(&self, l: &Link) -> LinkView {
        LinkView {
            id: l.id.to_string(),
            upstream: self.side(&l.upstream),
            downstream: self.side(&l.downstream),
            created_at: l.created_at,
            queued: BTreeMap::new(),
            dead: vec![],
            chain: vec![],
        }
    }

    /// Of every link's side for `side`'s ticket, the one whose status
    /// changed last; while that status is done, done since the first of
    /// them called it so.
    fn latest_side(&self, side: &crate::link::Side) -> Result<crate::link::Side, OpsError> {
        let Some(ticket) = &side.ticket else {
            return Ok(side.clone());
        };
        let sides: Vec<crate::link::Side> = self
            .store
            .links_of(&side.endpoint, ticket)?
            .into_iter()
            .flat_map(|l| [l.upstream, l.downstream])
            .filter(|s| s.same_ticket(side))
            .collect();
        // Not from before a reopening another link saw.
        let reopened = sides
            .iter()
            .filter(|s| !s.status.is_some_and(Status::is_done))
            .filter_map(|s| s.status_at)
            .max();
        let first_done = sides
            .iter()
            .filter_map(|s| s.done_at)
            .filter(|d| reopened.is_none_or(|r| *d >= r))
            .min();
        let mut latest = sides
            .into_iter()
            .max_by_key(|s| s.status_at)
            .unwrap_or_else(|| side.clone());
        if latest.done_at.is_some() {
            latest.done_at = first_done.or(latest.done_at);
        }
        Ok(latest)
    }

    /// The chain `l` is part of: up to the first company (the link that
    /// brought `l`'s upstream ticket, and so on), then every company down
    /// from there, depth first. A company that handed one ticket to two
    /// partners has two branches.
    fn chain(&self, l: &Link) -> Result<Vec<ChainStep>, OpsError> {
        // Links never form a cycle, but a store edited by hand might.
        let mut seen = std::collections::HashSet::from([l.id]);
        let mut root = l.clone();
        while let Some(ticket) = &root.upstream.ticket {
            let parent = self
                .store
                .links_of(&root.upstream.endpoint, ticket)?
                .into_iter()
                .find(|p| p.downstream.same_ticket(&root.upstream));
            match parent {
                Some(p) if seen.insert(p.id) => root = p,
                _ => break,
            }
        }
        let now = Utc::now();
        let step = |depth: usize, side: &crate::link::Side, via: Option<&Link>| {
            // A ticket in the middle of a chain has a side on each of its
            // links; deskbridge updates the one the change came over.
            let latest = self.latest_side(side)?;
            let got_at = via.map(|v| side.got_at.unwrap_or(v.created_at));
            let done_unknown =
                latest.status.is_some_and(Status::is_done) && latest.done_at.is_none();
            let held_secs = got_at
                .filter(|_| side.ticket.is_some() && !done_unknown)
                .map(|g| (latest.done_at.unwrap_or(now) - g).num_seconds().max(0));
            Ok::<_, OpsError>(ChainStep {
                depth,
                endpoint: side.endpoint.clone(),
                party: self.side(side).party,
                ticket: side.ticket.clone(),
                status: latest.status,
                status_at: latest.status_at,
                status_relayed: latest.status_relayed,
                link: via.map(|v| v.id.to_string()),
                got_at,
                done_at: latest.done_at,
                held_secs,
            })
        };
        let mut out = vec![step(0, &root.upstream, None)?];
        let mut seen = std::collections::HashSet::new();
        // (link, its depth), depth first in creation order.
        let mut todo = vec![(root, 1)];
        while let Some((link, depth)) = todo.pop() {
            if !seen.insert(link.id) {
                continue;
            }
            out.push(step(depth, &link.downstream, Some(&link))?);
            let Some(ticket) = &link.downstream.ticket else {
                continue;
            };
            let mut children: Vec<Link> = self
                .store
                .links_of(&link.downstream.endpoint, ticket)?
                .into_iter()
                .filter(|c| c.upstream.same_ticket(&link.downstream))
                .collect();
            children.sort_by_key(|c| std::cmp::Reverse(c.created_at));
            todo.extend(children.into_iter().map(|c| (c, depth + 1)));
        }
        Ok(out)
    }

    pub fn links(&self) -> Result<Vec<LinkView>, OpsError> {
        Ok(self.store.links()?.iter().map(|l| self.view(l)).collect())
    }

    pub fn link(&self, id: &str) -> Result<LinkView, OpsError> {
        let uuid = uuid::Uuid::parse_str(id)
            .map_err(|_| OpsError::BadRequest(format!("{id:?} is not a link id")))?;
        let l = self.store.link(uuid)?.ok_or_else(|| {
            OpsError::NotFound(format!("no link {id}; `deskbridge links` lists them"))
        })?;
        let mut v = self.view(&l);
        for side in [&l.upstream, &l.downstream] {
            let n = self
                .store
                .pending(&side.endpoint)?
                .iter()
                .filter(|(_, e)| e.link_id == uuid)
                .count();
            v.queued.insert(side.endpoint.clone(), n);
        }
        v.dead = self
            .dead()?
            .into_iter()
            .filter(|d| d.link == v.id)
            .collect();
        v.chain = self.chain(&l)?;
        Ok(v)
    }

    pub fn dead(&self) -> Result<Vec<DeadView>, OpsError> {
        Ok(self
            .store
            .dead_letters()?
            .into_iter()
            .map(|(k, d)| DeadView {
                id: k.id(),
                dest: k.dest.clone(),
                link: d.envelope.link_id.to_string(),
                event: d.envelope.event.id.to_string(),
                kind: d.envelope.event.kind.name().into(),
                error: d.error,
                attempts: d.attempts,
                at: d.at,
            })
            .collect())
    }

    fn key(id: &str) -> Result<QueueKey, OpsError> {
        QueueKey::parse_id(id).ok_or_else(|| {
            OpsError::BadRequest(format!(
                "{id:?} is not a dead letter id (like vendor:42; `deskbridge dead` lists them)"
            ))
        })
    }

    pub async fn replay(&self, id: &str) -> Result<String, OpsError> {
        let key = Self::key(id)?;
        if !self.config.can_receive(&key.dest) {
            return Err(OpsError::BadRequest(format!(
                "{id} is for endpoint {}, which is not configured to receive: configure endpoints.{} again first (or discard it)",
                key.dest, key.dest
            )));
        }
        let to_held = self.config.bus.kind == crate::config::BusKind::Amqp;
        let env = self.store.replay(&key, to_held)?;
        // The answer is a promise: a crash after it must not undo it.
        self.store.flush().await?;
        self.queues.unblock(&key.dest, env.link_id);
        Ok(format!("{id} is queued again for {}", key.dest))
    }

    pub async fn discard(&self, id: &str) -> Result<String, OpsError> {
        let key = Self::key(id)?;
        let dl = self.store.discard(&key)?;
        self.store.flush().await?;
        self.queues.unblock(&key.dest, dl.envelope.link_id);
        Ok(format!("{id} is discarded; its link moves on"))
    }

    /// Gives up every message queued or parked for an endpoint removed
    /// from the configuration (a partner no longer served). Refused for a
    /// configured one: its messages are being delivered.
    pub async fn discard_queued(&self, endpoint: &str) -> Result<String, OpsError> {
        if self.config.can_receive(endpoint) {
            return Err(OpsError::BadRequest(format!(
                "endpoint {endpoint} is configured to receive, so its messages are being delivered; to give them up, remove endpoints.{endpoint} (or its delivery settings) from the configuration and restart, then discard"
            )));
        }
        let store = self.store.clone();
        let dest = endpoint.to_string();
        let n = tokio::task::spawn_blocking(move || store.discard_queued(&dest))
            .await
            .map_err(|e| StoreError::Rejected(format!("the discard stopped: {e}")))??;
        if n == 0 {
            return Err(OpsError::NotFound(format!(
                "nothing is queued for {endpoint} (`deskbridge status` lists the endpoints no longer configured that still have messages)"
            )));
        }
        self.store.flush().await?;
        let what = if n == 1 { "message" } else { "messages" };
        Ok(format!(
            "{n} {what} queued for {endpoint} discarded; its dead letters, if any, stay (`deskbridge dead`)"
        ))
    }

    pub async fn transfer(&self, t: &TransferRequest) -> Result<LinkView, OpsError> {
        let link = self.ingest.transfer(&t.from, &t.ticket, &t.to).await?;
        Ok(self.view(&link))
    }

    pub fn status(&self) -> Result<StatusView, OpsError> {
        let board: BTreeMap<String, DestStatus> = match &self.board {
            Some(b) => b.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            None => BTreeMap::new(),
        };
        let broker = self
            .broker
            .as_ref()
            .map(|b| b.lock().unwrap_or_else(|p| p.into_inner()).clone());
        let mut destinations = BTreeMap::new();
        for name in self.config.endpoints.keys() {
            let mut s = board.get(name).cloned().unwrap_or_default();
            // The store's counts are right with or without a daemon.
            s.queued = self.store.queue_len(name);
            // In flight (the relay's, with a broker) or in the store.
            s.oldest_waiting_since =
                match (s.oldest_waiting_since, self.store.oldest_waiting(name)?) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            if self.config.bus.kind == crate::config::BusKind::Amqp {
                s.parked = self.store.held_len(name);
                s.at_broker = broker.as_ref().and_then(|b| b.ready.get(name).copied());
            }
            destinations.insert(name.clone(), s);
        }
        let receives = |d: &str| self.config.can_receive(d);
        for (name, (queued, parked)) in self.store.unconfigured(receives)? {
            let oldest_waiting_since = self.store.oldest_waiting(&name)?;
            destinations.insert(
                name,
                DestStatus {
                    queued,
                    parked,
                    oldest_waiting_since,
                    unconfigured: true,
                    ..DestStatus::default()
                },
            );
        }
        Ok(StatusView {
            running: self.board.is_some(),
            broker,
            links: self.store.link_count(),
            dead_letters: self.store.dead_letter_count(),
            destinations,
            mailboxes: self
                .mailboxes
                .as_ref()
                .map(crate::connector::board::snapshot)
                .unwrap_or_default(),
            pollers: self
                .pollers
                .as_ref()
                .map(crate::connector::board::snapshot)
                .unwrap_or_default(),
        })
    }
}
