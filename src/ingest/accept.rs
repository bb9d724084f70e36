//! The ingest handle: what sources and the operator call. Events an
//! endpoint saw become durable, with the messages they cause, in one
//! store transaction.

use crate::blob::{BlobError, BlobStore};
use crate::bus::notify::Notifier;
use crate::config::Config;
use crate::event::{Event, EventKind, Ticket};
use crate::link::Link;
use crate::store::{Store, StoreError};
use base64::Engine as _;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("attachment {name}: content_base64 is not valid base64")]
    BadBase64 { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no endpoint {0} in the configuration")]
    UnknownEndpoint(String),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Durable; `queued` messages wait for their destinations.
    Accepted { queued: usize, links_created: usize },
    /// Seen before (a sender's retry): nothing changed.
    Duplicate,
}

#[derive(Clone)]
pub struct Ingest {
    pub(super) config: Arc<Config>,
    pub(super) store: Store,
    pub(super) blobs: BlobStore,
    pub(super) queues: Notifier,
}

impl Ingest {
    pub fn new(config: Arc<Config>, store: Store, blobs: BlobStore, queues: Notifier) -> Ingest {
        Ingest {
            config,
            store,
            blobs,
            queues,
        }
    }

    /// Takes events seen in `endpoint`. Returns once they are durable.
    /// `dedupe` is the sender's message id (a repeat changes nothing).
    pub async fn accept(
        &self,
        endpoint: &str,
        dedupe: Option<&str>,
        events: Vec<Event>,
    ) -> Result<Outcome, IngestError> {
        self.accept_polled(endpoint, dedupe, events, None).await
    }

    /// As `accept`, moving the endpoint's source cursor (a poller's "seen
    /// up to here") in the same transaction as the queue writes: after a
    /// crash either both happened or neither did.
    pub async fn accept_polled(
        &self,
        endpoint: &str,
        dedupe: Option<&str>,
        mut events: Vec<Event>,
        cursor: Option<&[u8]>,
    ) -> Result<Outcome, IngestError> {
        if !self.config.endpoints.contains_key(endpoint) {
            return Err(IngestError::UnknownEndpoint(endpoint.into()));
        }
        // Files go to the content store first: a put is idempotent, so a
        // crash before the transaction only leaves an unreferenced file.
        for ev in &mut events {
            if let Some(files) = ev.attachments_mut() {
                for f in files.iter_mut() {
                    // One rule for names and types, whichever connector
                    // read them: they end up in partners' headers.
                    f.clean();
                    if let Some(b64) = f.content_base64.take() {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(b64.as_bytes())
                            .map_err(|_| IngestError::BadBase64 {
                                name: f.name.clone(),
                            })?;
                        let r = self.blobs.put_bytes(&bytes).await?;
                        f.sha256 = Some(r.sha256);
                        f.size = Some(r.size);
                    }
                }
            }
        }
        let me = self.clone();
        let (ep, dedupe, cursor) = (
            endpoint.to_string(),
            dedupe.map(str::to_string),
            cursor.map(<[u8]>::to_vec),
        );
        // Requests arriving together share one transaction and one flush
        // (see the store); durable when this returns. A duplicate waits for
        // the flush too: the first copy may still have been waiting for it
        // (a sender retrying after a timeout).
        let result = self
            .store
            .ingest_durably(move |tx| {
                me.stage(tx, &ep, dedupe.as_deref(), &events, cursor.as_deref())
            })
            .await?;
        let Some((queued, links_created)) = result else {
            return Ok(Outcome::Duplicate);
        };
        let n = queued.len();
        for (key, env) in queued {
            self.queues.announce(key, env);
        }
        Ok(Outcome::Accepted {
            queued: n,
            links_created,
        })
    }

    /// Keeps `data` as the ticket's snapshot where deskbridge has none: a
    /// ticket created before deskbridge started, read for the first time
    /// when it changed. Transfer rules with a condition and `deskbridge
    /// transfer` can then hand it over. Returns whether it was new.
    pub fn learn(&self, endpoint: &str, ticket: &str, data: Ticket) -> Result<bool, IngestError> {
        Ok(self.store.ingest_tx(|tx| {
            if tx.ticket(endpoint, ticket)?.is_some() {
                return Ok(false);
            }
            tx.put_ticket(endpoint, ticket, &data)?;
            Ok(true)
        })?)
    }

    /// `deskbridge transfer`: hands a ticket deskbridge has seen to `to`.
    pub async fn transfer(&self, from: &str, ticket: &str, to: &str) -> Result<Link, IngestError> {
        for ep in [from, to] {
            if !self.config.endpoints.contains_key(ep) {
                return Err(IngestError::UnknownEndpoint(ep.into()));
            }
        }
        let (key, env, link_id) = self.store.ingest_tx(|tx| {
            let Some(t) = tx.ticket(from, ticket)? else {
                return Err(sled::transaction::ConflictableTransactionError::Abort(format!(
                    "deskbridge has not seen ticket {ticket} in {from}; it learns tickets from the endpoint's events"
                )));
            };
            if let Some(l) = tx
                .links_of(from, ticket)?
                .into_iter()
                .find(|l| l.downstream.endpoint == to || l.upstream.endpoint == to)
            {
                return Err(sled::transaction::ConflictableTransactionError::Abort(format!(
                    "ticket {ticket} in {from} is already linked to {to} (link {})",
                    l.id
                )));
            }
            let trigger = Event::new(ticket, EventKind::TicketCreated { ticket_data: t.clone() });
            let (key, env) = self.transfer_in(tx, from, ticket, to, &t, trigger.id, &trigger)?;
            Ok((key, env.clone(), env.link_id))
        })?;
        self.store.flush().await?;
        self.queues.announce(key, env);
        Ok(self
            .store
            .link(link_id)?
            .ok_or_else(|| StoreError::Rejected("link vanished".into()))?)
    }
}
