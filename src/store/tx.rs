//! `Tx`: the trees an ingest transaction touches, with typed helpers for
//! what ingest reads and writes there (links, echo records, dedupe keys,
//! ticket snapshots, the outbox, cursors).

use super::codec::{corrupt, to_vec};
use super::error::TxResult;
use super::keys::{pair_key, tail_key, QueueKey};
use super::records::{After, Envelope};
use crate::link::Link;
use chrono::Utc;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use uuid::Uuid;

/// The trees an ingest transaction touches, with typed helpers.
pub struct Tx<'a> {
    pub(super) links: &'a TransactionalTree,
    pub(super) link_idx: &'a TransactionalTree,
    pub(super) created: &'a TransactionalTree,
    pub(super) outbox: &'a TransactionalTree,
    pub(super) cursors: &'a TransactionalTree,
    pub(super) seen: &'a TransactionalTree,
    pub(super) tickets: &'a TransactionalTree,
    pub(super) tails: &'a TransactionalTree,
    /// Links this attempt of the transaction created.
    pub(super) new_links: &'a std::cell::Cell<usize>,
}

impl Tx<'_> {
    /// Links that have a side at (endpoint, ticket).
    pub fn links_of(&self, endpoint: &str, ticket: &str) -> TxResult<Vec<Link>> {
        let ids: Vec<Uuid> = match self.link_idx.get(pair_key(endpoint, ticket))? {
            Some(b) => corrupt("link_idx", &b)?,
            None => return Ok(vec![]),
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(b) = self.links.get(id.as_bytes())? {
                out.push(corrupt("links", &b)?);
            }
        }
        Ok(out)
    }

    pub fn link(&self, id: Uuid) -> TxResult<Option<Link>> {
        match self.links.get(id.as_bytes())? {
            Some(b) => Ok(Some(corrupt("links", &b)?)),
            None => Ok(None),
        }
    }

    pub fn put_link(&self, link: &Link) -> TxResult<()> {
        if self
            .links
            .insert(link.id.as_bytes(), to_vec(link))?
            .is_none()
        {
            self.new_links.set(self.new_links.get() + 1);
        }
        for side in [&link.upstream, &link.downstream] {
            if let Some(t) = &side.ticket {
                index_link(self.link_idx, &side.endpoint, t, link.id)?;
            }
        }
        Ok(())
    }

    /// Whether deskbridge itself wrote `source_id` in `endpoint`.
    pub fn is_echo(&self, endpoint: &str, source_id: &str) -> TxResult<bool> {
        Ok(self.created.get(pair_key(endpoint, source_id))?.is_some())
    }

    /// Marks a key as seen; false when it was seen before.
    pub fn first_sight(&self, scope: &str, key: &str) -> TxResult<bool> {
        let now = Utc::now().timestamp().to_be_bytes();
        Ok(self.seen.insert(pair_key(scope, key), &now)?.is_none())
    }

    pub fn ticket(&self, endpoint: &str, ticket: &str) -> TxResult<Option<crate::event::Ticket>> {
        match self.tickets.get(pair_key(endpoint, ticket))? {
            Some(b) => Ok(Some(corrupt("tickets", &b)?)),
            None => Ok(None),
        }
    }

    pub fn put_ticket(
        &self,
        endpoint: &str,
        ticket: &str,
        t: &crate::event::Ticket,
    ) -> TxResult<()> {
        self.tickets.insert(pair_key(endpoint, ticket), to_vec(t))?;
        Ok(())
    }

    /// Queues `env` for its destination, naming the link's previous
    /// message there in `env.after`.
    pub fn enqueue(&self, env: &mut Envelope) -> TxResult<QueueKey> {
        let key = QueueKey {
            dest: env.dest.clone(),
            seq: self.outbox.generate_id()?,
        };
        let this = After {
            seq: key.seq,
            event: env.event.id,
        };
        let before = self
            .tails
            .insert(tail_key(&env.dest, env.link_id), &this.encode())?;
        env.after = before.and_then(|b| After::decode(&b));
        self.outbox.insert(key.encode(), to_vec(env))?;
        Ok(key)
    }

    pub fn set_cursor(&self, endpoint: &str, cursor: &[u8]) -> TxResult<()> {
        self.cursors.insert(endpoint.as_bytes(), cursor)?;
        Ok(())
    }
}

/// Adds `id` to the links found at (endpoint, ticket): for ingest's new
/// links and for the ticket a transfer created.
pub(super) fn index_link(
    idx: &TransactionalTree,
    endpoint: &str,
    ticket: &str,
    id: Uuid,
) -> Result<(), ConflictableTransactionError<String>> {
    let key = pair_key(endpoint, ticket);
    let mut ids: Vec<Uuid> = match idx.get(&key)? {
        Some(b) => corrupt("link_idx", &b)?,
        None => vec![],
    };
    if !ids.contains(&id) {
        ids.push(id);
        idx.insert(key, to_vec(&ids))?;
    }
    Ok(())
}
