//! Ingest: an endpoint's events → echo check → links and transfer rules →
//! visibility policy → the destinations' queues, in one transaction.

use crate::blob::{BlobError, BlobStore};
use crate::bus::notify::Notifier;
use crate::config::{Condition, Config};
use crate::event::{Event, EventKind, Ticket};
use crate::link::Link;
use crate::policy::{self, Crossing, Direction};
use crate::store::{Envelope, QueueKey, Store, StoreError, Tx, TxResult};
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
    config: Arc<Config>,
    store: Store,
    blobs: BlobStore,
    queues: Notifier,
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

    /// What deskbridge has just set on `endpoint`'s `ticket` over link `via`
    /// (a status; a comment from below that landed public) now holds in that
    /// company's system as if its own people had done it: it goes on along
    /// the ticket's other links under each hop's own rules (share_status,
    /// status_from_partner, the comment policy), so a status climbs a chain
    /// hop by hop. Never back along `via`. The middle system reports the
    /// change back as deskbridge's own (its echo, dropped): this is where
    /// it is passed on instead. Once per (event, endpoint), however often a
    /// redelivery repeats it. Returns how many messages it queued.
    pub async fn onward(
        &self,
        endpoint: &str,
        ticket: &str,
        via: uuid::Uuid,
        landed: &Event,
    ) -> Result<usize, IngestError> {
        let climbs = match &landed.kind {
            EventKind::StatusChanged { .. } => true,
            EventKind::Comment { comment } => comment.audience == crate::event::Audience::Public,
            // The new ticket's id goes back to the company that handed it
            // over (`show_partner`).
            EventKind::TicketCreated { .. } => true,
            EventKind::FieldChanged { .. } => false,
        };
        if !climbs || !self.config.endpoints.contains_key(endpoint) {
            return Ok(0);
        }
        // Most tickets have the one link the event came over: nothing goes
        // on, and no transaction is spent on finding that out.
        let created = matches!(landed.kind, EventKind::TicketCreated { .. });
        if !created
            && !self
                .store
                .links_of(endpoint, ticket)?
                .iter()
                .any(|l| l.id != via)
        {
            return Ok(0);
        }
        let mut ev = landed.clone();
        ev.id = crate::event::stable_id(
            endpoint,
            "onward",
            &landed.id.to_string(),
            landed.occurred_at,
        );
        ev.ticket = ticket.to_string();
        ev.source_id = None;
        ev.partner = None;
        // The company passes it on: its partners see the company, not the
        // person at the far end of the chain.
        ev.author = None;
        let me = self.clone();
        let ep = endpoint.to_string();
        let queued = self.store.ingest_tx(move |tx| {
            if !tx.first_sight(&ep, &format!("event:{}", ev.id))? {
                return Ok(vec![]);
            }
            let mut out = Vec::new();
            if let EventKind::TicketCreated { ticket_data } = &ev.kind {
                // The ticket deskbridge made is known as it was made, until
                // the endpoint reports it: a poller that lists history
                // entries need not read it to know it is no new ticket.
                if tx.ticket(&ep, &ev.ticket)?.is_none() {
                    tx.put_ticket(&ep, &ev.ticket, ticket_data)?;
                }
                // Its ticket is recorded on the link only after this.
                if let Some(mut l) = tx.link(via)? {
                    if let Some(side) = l.side_mut(&ep) {
                        side.ticket = Some(ev.ticket.clone());
                    }
                    out.extend(me.show_partner(tx, &ep, &l, &ev, "partner_ticket", &ev.ticket)?);
                }
                return Ok(out);
            }
            let all = tx.links_of(&ep, &ev.ticket)?;
            let has_downstream = all.iter().any(|l| l.is_upstream(&ep));
            let now = chrono::Utc::now();
            // A comment only climbs: what came from below and landed
            // public here goes up to whom this company answers, never
            // down to its other partners. A status goes every way.
            let is_comment = matches!(ev.kind, EventKind::Comment { .. });
            let from_below = all.iter().any(|l| l.id == via && l.is_upstream(&ep));
            if is_comment && !from_below {
                return Ok(out);
            }
            for link in all
                .iter()
                .filter(|l| l.id != via && !(is_comment && l.is_upstream(&ep)))
            {
                if let EventKind::StatusChanged { status } = ev.kind {
                    let mut l = link.clone();
                    if let Some(side) = l.side_mut(&ep) {
                        if side.status == Some(status) {
                            // That link has it already: no news there.
                            continue;
                        }
                        side.set_status(status, now, true);
                    }
                    tx.put_link(&l)?;
                }
                if let Some(q) = me.route(tx, &ep, link, &ev, has_downstream)? {
                    out.push(q);
                }
                if let EventKind::StatusChanged { status } = ev.kind {
                    out.extend(me.show_partner(
                        tx,
                        &ep,
                        link,
                        &ev,
                        "partner_status",
                        status.as_str(),
                    )?);
                }
            }
            Ok(out)
        })?;
        let n = queued.len();
        if n > 0 {
            self.store.flush().await?;
        }
        for (key, env) in queued {
            self.queues.announce(key, env);
        }
        Ok(n)
    }

    /// The store writes of one request, inside a transaction: `None` when
    /// its message id was seen before.
    #[allow(clippy::type_complexity)]
    fn stage(
        &self,
        tx: &Tx<'_>,
        endpoint: &str,
        dedupe: Option<&str>,
        events: &[Event],
        cursor: Option<&[u8]>,
    ) -> TxResult<Option<(Vec<(QueueKey, Envelope)>, usize)>> {
        if let Some(id) = dedupe {
            if !tx.first_sight(endpoint, &format!("msg:{id}"))? {
                return Ok(None);
            }
        }
        let mut queued = Vec::new();
        let mut links_created = 0;
        for ev in events {
            if !tx.first_sight(endpoint, &format!("event:{}", ev.id))? {
                continue;
            }
            let echo = self.is_echo(tx, endpoint, ev)?;
            // Even our own writes update the snapshot: a ticket we
            // created can be handed on further down the chain.
            let snapshot = self.update_snapshot(tx, endpoint, ev)?;
            if echo {
                continue;
            }
            let links = tx.links_of(endpoint, &ev.ticket)?;
            // A status this side already holds on a link is no change
            // there: products whose history has no status changes
            // report the status they hold, deskbridge's own write
            // included.
            let unchanged = |l: &Link| match ev.kind {
                EventKind::StatusChanged { status } => {
                    l.sides(endpoint).and_then(|(mine, _)| mine.status) == Some(status)
                }
                _ => false,
            };
            let news: Vec<bool> = links.iter().map(|l| !unchanged(l)).collect();
            if let EventKind::StatusChanged { status } = ev.kind {
                // A product that reports the status it holds reports ours
                // too: one that deskbridge set over another link is still
                // the partner's, not this company's own change.
                let relayed = links.iter().any(|l| {
                    l.sides(endpoint)
                        .is_some_and(|(mine, _)| mine.status == Some(status) && mine.status_relayed)
                });
                // deskbridge's clock, as where it sets a status: the chain
                // compares the two.
                let now = chrono::Utc::now();
                for link in &links {
                    let mut l = link.clone();
                    if let Some(side) = l.side_mut(endpoint) {
                        side.set_status(status, now, relayed);
                    }
                    tx.put_link(&l)?;
                }
            }
            let has_downstream = links.iter().any(|l| l.is_upstream(endpoint));
            for (link, news) in links.iter().zip(news) {
                if matches!(ev.kind, EventKind::TicketCreated { .. }) || !news {
                    // Already transferred: a re-sent creation is not a new ticket.
                    continue;
                }
                if let Some(q) = self.route(tx, endpoint, link, ev, has_downstream)? {
                    queued.push(q);
                }
                if let EventKind::StatusChanged { status } = ev.kind {
                    queued.extend(self.show_partner(
                        tx,
                        endpoint,
                        link,
                        ev,
                        "partner_status",
                        status.as_str(),
                    )?);
                }
            }
            for rule in self.config.transfers.iter().filter(|r| r.from == endpoint) {
                let already = links.iter().any(|l| l.downstream.endpoint == rule.to);
                let Some(t) = &snapshot else { continue };
                // A new ticket fires a rule; a later change fires only a
                // rule with a condition it now meets.
                let fires = match ev.kind {
                    EventKind::TicketCreated { .. } => true,
                    EventKind::StatusChanged { .. } | EventKind::FieldChanged { .. } => {
                        rule.when.is_some()
                    }
                    EventKind::Comment { .. } => false,
                };
                if already || !fires || !matches(rule.when.as_ref(), t) {
                    continue;
                }
                // The triggering creation keeps its id; a later trigger
                // hands over the ticket as it now stands.
                let id = match ev.kind {
                    EventKind::TicketCreated { .. } => ev.id,
                    _ => uuid::Uuid::now_v7(),
                };
                queued.push(self.transfer_in(tx, endpoint, &ev.ticket, &rule.to, t, id, ev)?);
                links_created += 1;
            }
        }
        if let Some(c) = cursor {
            tx.set_cursor(endpoint, c)?;
        }
        Ok(Some((queued, links_created)))
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

    fn is_echo(&self, tx: &Tx<'_>, endpoint: &str, ev: &Event) -> TxResult<bool> {
        if let Some(sid) = &ev.source_id {
            if tx.is_echo(endpoint, sid)? {
                return Ok(true);
            }
        }
        let account = self
            .config
            .endpoints
            .get(endpoint)
            .and_then(|e| e.service_account.as_deref());
        if let (Some(account), Some(author)) = (account, &ev.author) {
            if author.name == account {
                return Ok(true);
            }
        }
        if let EventKind::Comment { comment } = &ev.kind {
            if crate::event::find_marker(&comment.body).is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Keeps the ticket as last seen, for transfer rules and `transfer`.
    fn update_snapshot(&self, tx: &Tx<'_>, endpoint: &str, ev: &Event) -> TxResult<Option<Ticket>> {
        let mut t = tx.ticket(endpoint, &ev.ticket)?;
        match (&ev.kind, &mut t) {
            (EventKind::TicketCreated { ticket_data }, _) => {
                let mut data = ticket_data.clone();
                // A ticket deskbridge created carries its marker: not
                // handed on further down the chain.
                data.description = crate::event::clean_text(&data.description);
                t = Some(data)
            }
            (EventKind::StatusChanged { status }, Some(t)) => t.status = Some(*status),
            (EventKind::FieldChanged { field, value }, Some(t)) => match field.as_str() {
                "subject" => t.subject = value.clone(),
                "description" => t.description = crate::event::clean_text(value),
                "priority" => t.priority = Some(value.clone()).filter(|v| !v.is_empty()),
                "due" => t.due = crate::event::parse_due(value),
                _ => {
                    t.fields.insert(field.clone(), value.clone());
                }
            },
            _ => return Ok(t),
        }
        if let Some(t) = &t {
            tx.put_ticket(endpoint, &ev.ticket, t)?;
        }
        Ok(t)
    }

    /// Tells the other side of `link` about `endpoint`'s ticket (its id,
    /// its status), where that side shows its partner's (`show_partner`)
    /// and the sender shares its status. Not content of the ticket, so not
    /// under `allowed_fields`: the partner's ticket id travels with every
    /// relayed event anyway.
    fn show_partner(
        &self,
        tx: &Tx<'_>,
        endpoint: &str,
        link: &Link,
        cause: &Event,
        field: &str,
        value: &str,
    ) -> TxResult<Option<(QueueKey, Envelope)>> {
        let Some((mine, other)) = link.sides(endpoint) else {
            return Ok(None);
        };
        let sender = self.config.policy(endpoint);
        let receiver = self.config.policy(&other.endpoint);
        if !receiver.show_partner
            || !self.config.can_receive(&other.endpoint)
            || (field == "partner_status" && !sender.share_status)
        {
            return Ok(None);
        }
        let ticket = mine.ticket.clone().unwrap_or_else(|| cause.ticket.clone());
        let mut ev = Event::new(
            &ticket,
            EventKind::FieldChanged {
                field: field.into(),
                value: value.into(),
            },
        );
        ev.id = crate::event::stable_id(
            endpoint,
            field,
            &format!("{}@{}", cause.id, link.id),
            cause.occurred_at,
        );
        ev.occurred_at = cause.occurred_at;
        ev.partner = Some(crate::event::PartnerRef {
            party: self.party_name(endpoint),
            ticket: Some(ticket),
        });
        Ok(Some(enqueue(tx, link, &other.endpoint, endpoint, ev)?))
    }

    fn route(
        &self,
        tx: &Tx<'_>,
        endpoint: &str,
        link: &Link,
        ev: &Event,
        sender_has_downstream: bool,
    ) -> TxResult<Option<(QueueKey, Envelope)>> {
        let Some((_, other)) = link.sides(endpoint) else {
            return Ok(None);
        };
        // A send-only endpoint (a dispatch system without a url) gets nothing.
        if !self.config.can_receive(&other.endpoint) {
            return Ok(None);
        }
        let direction = if link.is_upstream(endpoint) {
            Direction::Downstream
        } else {
            Direction::Upstream
        };
        let sender = self.config.policy(endpoint);
        let receiver = self.config.policy(&other.endpoint);
        let party = self.party_name(endpoint);
        let Some(routed) = policy::route(
            ev,
            Crossing {
                direction,
                sender: &sender,
                receiver: &receiver,
                sender_party: &party,
                sender_has_downstream,
            },
        ) else {
            return Ok(None);
        };
        Ok(Some(enqueue(tx, link, &other.endpoint, endpoint, routed)?))
    }

    #[allow(clippy::too_many_arguments)]
    fn transfer_in(
        &self,
        tx: &Tx<'_>,
        from: &str,
        ticket: &str,
        to: &str,
        t: &Ticket,
        event_id: uuid::Uuid,
        trigger: &Event,
    ) -> TxResult<(QueueKey, Envelope)> {
        let link = Link::new(from, ticket, to);
        tx.put_link(&link)?;
        let mut ev = Event::new(
            ticket,
            EventKind::TicketCreated {
                ticket_data: t.clone(),
            },
        );
        ev.id = event_id;
        ev.author = trigger.author.clone();
        // The hand-over happened when the origin says (settlements and
        // deadlines count from there), as the change the origin knows.
        ev.occurred_at = trigger.occurred_at;
        ev.source_id = trigger.source_id.clone();
        let routed = self.route(tx, from, &link, &ev, true)?.ok_or_else(|| {
            sled::transaction::ConflictableTransactionError::Abort(
                "a transfer is always routed downstream".to_string(),
            )
        })?;
        Ok(routed)
    }

    fn party_name(&self, endpoint: &str) -> String {
        self.config
            .party_of(endpoint)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| endpoint.to_string())
    }
}

/// Queues `event` from `origin` for `dest` over `link`.
fn enqueue(
    tx: &Tx<'_>,
    link: &Link,
    dest: &str,
    origin: &str,
    event: Event,
) -> TxResult<(QueueKey, Envelope)> {
    let mut env = Envelope {
        link_id: link.id,
        dest: dest.into(),
        origin: origin.into(),
        event,
        accepted_at: Some(chrono::Utc::now()),
        after: None,
    };
    Ok((tx.enqueue(&mut env)?, env))
}

fn matches(cond: Option<&Condition>, t: &Ticket) -> bool {
    let Some(c) = cond else { return true };
    if let Some(s) = c.status {
        if t.status != Some(s) {
            return false;
        }
    }
    c.fields.iter().all(|(k, v)| match k.as_str() {
        // Canonical (low, normal, high, urgent), whatever the product
        // calls it; "Urgent" is meant as urgent.
        "priority" => t
            .priority
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(v)),
        // A time, or a date: due that day (UTC).
        "due" => t.due.is_some_and(|d| match crate::event::parse_due(v) {
            Some(want) if v.len() == 10 => d.date_naive() == want.date_naive(),
            Some(want) => d == want,
            None => false,
        }),
        "subject" => &t.subject == v,
        "description" => &t.description == v,
        _ => t.fields.get(k) == Some(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Audience, Comment};

    const CONFIG: &str = r#"
[parties.a]
name = "A Co"
role = "service_company"
[parties.b]
name = "B Co"
role = "vendor"
[endpoints.a]
party = "a"
kind = "webhook"
service_account = "bridge"
[endpoints.a.webhook]
[endpoints.b]
party = "b"
kind = "webhook"
[endpoints.b.webhook]
url = "http://127.0.0.1:9/never-called"
outbound_secret = { env = "DESKBRIDGE_UNIT_TEST_SECRET" }
[[transfers]]
from = "a"
to = "b"
"#;

    fn setup() -> (tempfile::TempDir, Ingest, Store) {
        setup_with(CONFIG)
    }

    fn setup_with(conf: &str) -> (tempfile::TempDir, Ingest, Store) {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("DESKBRIDGE_UNIT_TEST_SECRET", "whsec_dGVzdHNlY3JldA==");
        let config = Arc::new(Config::parse(conf).unwrap());
        let store = Store::open(dir.path()).unwrap();
        let blobs = BlobStore::open(dir.path().join("files"), 1024).unwrap();
        let ingest = Ingest::new(config, store.clone(), blobs, Notifier::default());
        (dir, ingest, store)
    }

    fn created(ticket: &str) -> Event {
        Event::new(
            ticket,
            EventKind::TicketCreated {
                ticket_data: Ticket {
                    subject: "s".into(),
                    ..Ticket::default()
                },
            },
        )
    }

    fn comment(ticket: &str, body: &str, audience: Audience) -> Event {
        Event::new(
            ticket,
            EventKind::Comment {
                comment: Comment {
                    body: body.into(),
                    audience,
                    attachments: vec![],
                },
            },
        )
    }

    #[tokio::test]
    async fn cursor_moves_with_the_queue_writes() {
        let (_d, ingest, store) = setup();
        let out = ingest
            .accept_polled("a", None, vec![created("1")], Some(b"page-2"))
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Accepted {
                queued: 1,
                links_created: 1
            }
        );
        assert_eq!(store.cursor("a").unwrap().as_deref(), Some(&b"page-2"[..]));
        assert_eq!(store.pending("b").unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_transfer_keeps_the_origins_time_and_id_of_the_change() {
        let (_d, ingest, store) = setup();
        let mut ev = created("1");
        ev.occurred_at = "2026-11-23T10:00:00Z".parse().unwrap();
        ev.source_id = Some("ticket-1".into());
        let mut files = ev.clone();
        files.id = uuid::Uuid::now_v7();
        files.ticket = "2".into();
        if let Some(f) = files.attachments_mut() {
            f.push(crate::event::Attachment {
                name: "..".into(),
                content_type: "text/plain\r\nX-Evil: 1".into(),
                sha256: None,
                size: None,
                content_base64: Some("aGk=".into()),
            });
        }
        ingest
            .accept("a", None, vec![ev.clone(), files])
            .await
            .unwrap();
        let mut c = comment("1", "for the vendor", Audience::Partner);
        c.occurred_at = "2026-11-23T11:00:00Z".parse().unwrap();
        c.source_id = Some("c9".into());
        ingest.accept("a", None, vec![c.clone()]).await.unwrap();
        let queued = store.pending("b").unwrap();
        assert_eq!(queued.len(), 3);
        for (_, env) in &queued {
            let sent = &env.event;
            let origin = if sent.ticket == "2" || sent.id == ev.id {
                &ev
            } else {
                &c
            };
            assert_eq!(sent.occurred_at, origin.occurred_at, "{sent:?}");
            assert_eq!(sent.origin_source_id, origin.source_id, "{sent:?}");
            // Not under the name the receiver's echo check reads.
            assert_eq!(sent.source_id, None, "{sent:?}");
        }
        // One rule for file names and content types, whatever the source.
        let (_, with_file) = queued.iter().find(|(_, e)| e.event.ticket == "2").unwrap();
        let f = &with_file.event.attachments()[0];
        assert_eq!(f.name, "attachment");
        assert_eq!(f.content_type, "text/plain");
    }

    #[tokio::test]
    async fn a_rule_on_priority_or_due_fires_once_on_the_change_that_meets_it() {
        let conf = CONFIG.replace(
            "to = \"b\"\n",
            "to = \"b\"\nwhen = { fields = { priority = \"Urgent\", due = \"2026-12-20\" } }\n",
        );
        let (_d, ingest, store) = setup_with(&conf);
        let change = |field: &str, value: &str| {
            Event::new(
                "1",
                EventKind::FieldChanged {
                    field: field.into(),
                    value: value.into(),
                },
            )
        };
        ingest.accept("a", None, vec![created("1")]).await.unwrap();
        ingest
            .accept("a", None, vec![change("priority", "urgent")])
            .await
            .unwrap();
        assert!(store.pending("b").unwrap().is_empty(), "due is not met yet");
        // Any time that day (UTC) is that date.
        ingest
            .accept("a", None, vec![change("due", "2026-12-20T15:00:00Z")])
            .await
            .unwrap();
        let queued = store.pending("b").unwrap();
        assert_eq!(queued.len(), 1);
        let EventKind::TicketCreated { ticket_data } = &queued[0].1.event.kind else {
            panic!("{:?}", queued[0].1.event.kind)
        };
        assert_eq!(ticket_data.priority.as_deref(), Some("urgent"));
        // Later changes of the same fields are relayed, never a second
        // hand-over.
        ingest
            .accept(
                "a",
                None,
                vec![change("priority", "high"), change("priority", "urgent")],
            )
            .await
            .unwrap();
        let queued = store.pending("b").unwrap();
        let transfers = queued
            .iter()
            .filter(|(_, e)| matches!(e.event.kind, EventKind::TicketCreated { .. }))
            .count();
        assert_eq!(transfers, 1, "{queued:?}");
    }

    #[tokio::test]
    async fn repeats_and_echoes_change_nothing() {
        let (_d, ingest, store) = setup();
        ingest
            .accept("a", Some("m1"), vec![created("1")])
            .await
            .unwrap();
        assert_eq!(
            ingest
                .accept("a", Some("m1"), vec![created("1")])
                .await
                .unwrap(),
            Outcome::Duplicate
        );
        let c = comment("1", "for the vendor", Audience::Partner);
        ingest.accept("a", None, vec![c.clone()]).await.unwrap();
        // the same event id again, under another message id
        ingest.accept("a", Some("m2"), vec![c]).await.unwrap();
        // written by deskbridge's service account, or carrying its marker
        let mut echo = comment("1", "relayed", Audience::Partner);
        echo.author = Some(crate::event::Author {
            name: "bridge".into(),
            email: None,
        });
        let marked = comment(
            "1",
            &format!("relayed {}", crate::event::marker(uuid::Uuid::now_v7())),
            Audience::Partner,
        );
        ingest.accept("a", None, vec![echo, marked]).await.unwrap();
        // the transfer and the one partner comment, nothing else
        assert_eq!(store.pending("b").unwrap().len(), 2);
        assert_eq!(store.links().unwrap().len(), 1);
    }

    /// client (a) → service company (b) → vendor (c), each receiving.
    const CHAIN: &str = r#"
[parties.a]
name = "A Co"
role = "client"
[parties.b]
name = "B Co"
role = "service_company"
[parties.c]
name = "C Co"
role = "vendor"
[endpoints.a]
party = "a"
kind = "webhook"
[endpoints.a.webhook]
url = "http://127.0.0.1:9/never-called"
outbound_secret = { env = "DESKBRIDGE_UNIT_TEST_SECRET" }
[endpoints.b]
party = "b"
kind = "webhook"
[endpoints.b.webhook]
url = "http://127.0.0.1:9/never-called"
outbound_secret = { env = "DESKBRIDGE_UNIT_TEST_SECRET" }
[endpoints.b.policy]
share_client_conversation = true
partner_comments = "public"
[endpoints.c]
party = "c"
kind = "webhook"
[endpoints.c.webhook]
url = "http://127.0.0.1:9/never-called"
outbound_secret = { env = "DESKBRIDGE_UNIT_TEST_SECRET" }
"#;

    #[tokio::test]
    async fn what_lands_on_a_middle_ticket_goes_on_a_comment_only_up() {
        let (_dir, ingest, store) = setup_with(CHAIN);
        let mut up = Link::new("a", "1", "b");
        up.downstream.ticket = Some("2".into());
        let mut down = Link::new("b", "2", "c");
        down.downstream.ticket = Some("3".into());
        let (u, d) = (up.clone(), down.clone());
        store
            .ingest_tx(move |tx| {
                tx.put_link(&u)?;
                tx.put_link(&d)
            })
            .unwrap();
        let kinds = |dest: &str| -> Vec<String> {
            store
                .pending(dest)
                .unwrap()
                .into_iter()
                .map(|(_, e)| e.event.kind.name().to_string())
                .collect()
        };
        // The vendor's comment, landed public at b, climbs to the client.
        let from_below = comment("3", "parts ordered", Audience::Public);
        assert_eq!(
            ingest.onward("b", "2", down.id, &from_below).await.unwrap(),
            1
        );
        assert_eq!(kinds("a"), ["comment"]);
        // Again (a redelivery): taken once.
        assert_eq!(
            ingest.onward("b", "2", down.id, &from_below).await.unwrap(),
            0
        );
        // The client's comment, landed public at b, does not go down to
        // b's other partners (b shares its client conversation only by
        // what b itself writes).
        let from_above = comment("1", "my phone is 555", Audience::Public);
        assert_eq!(
            ingest.onward("b", "2", up.id, &from_above).await.unwrap(),
            0
        );
        assert!(kinds("c").is_empty(), "{:?}", kinds("c"));
        // A status goes every way but back: the client's cancellation,
        // set on b, reaches the vendor (and b shows it its partner's
        // status is now b's), not the client again.
        let cancelled = Event::new(
            "1",
            EventKind::StatusChanged {
                status: crate::event::Status::Cancelled,
            },
        );
        ingest.onward("b", "2", up.id, &cancelled).await.unwrap();
        assert_eq!(kinds("c"), ["status_changed", "field_changed"]);
        assert_eq!(kinds("a"), ["comment"]);
    }

    #[tokio::test]
    async fn a_status_the_link_already_has_is_not_relayed_again() {
        let (_d, ingest, store) = setup();
        ingest.accept("a", None, vec![created("1")]).await.unwrap();
        let status =
            |s: crate::event::Status| Event::new("1", EventKind::StatusChanged { status: s });
        use crate::event::Status::{InProgress, Resolved};
        // a product reporting the status it holds, round after round
        ingest
            .accept("a", None, vec![status(Resolved)])
            .await
            .unwrap();
        ingest
            .accept("a", None, vec![status(Resolved)])
            .await
            .unwrap();
        ingest
            .accept("a", None, vec![status(InProgress), status(Resolved)])
            .await
            .unwrap();
        let kinds: Vec<String> = store
            .pending("b")
            .unwrap()
            .into_iter()
            // (Each status also tells b the partner's status: show_partner.)
            .filter(|(_, e)| !matches!(e.event.kind, EventKind::FieldChanged { .. }))
            .map(|(_, e)| match e.event.kind {
                EventKind::StatusChanged { status } => status.to_string(),
                other => other.name().to_string(),
            })
            .collect();
        assert_eq!(
            kinds,
            ["ticket_created", "resolved", "in_progress", "resolved"]
        );
    }

    #[tokio::test]
    async fn oversized_or_broken_files_are_refused_before_anything_is_stored() {
        let (_d, ingest, store) = setup();
        let mut ev = comment("1", "file", Audience::Partner);
        ev.attachments_mut()
            .unwrap()
            .push(crate::event::Attachment {
                name: "big.bin".into(),
                content_type: "application/octet-stream".into(),
                sha256: None,
                size: None,
                content_base64: Some(base64::engine::general_purpose::STANDARD.encode([0u8; 2048])),
            });
        assert!(matches!(
            ingest.accept("a", Some("m"), vec![ev]).await,
            Err(IngestError::Blob(BlobError::TooLarge { .. }))
        ));
        let mut ev = comment("1", "file", Audience::Partner);
        ev.attachments_mut()
            .unwrap()
            .push(crate::event::Attachment {
                name: "x".into(),
                content_type: "text/plain".into(),
                sha256: None,
                size: None,
                content_base64: Some("%%%".into()),
            });
        assert!(matches!(
            ingest.accept("a", Some("m"), vec![ev]).await,
            Err(IngestError::BadBase64 { .. })
        ));
        // the refused message id was not marked as seen
        assert_eq!(
            ingest
                .accept("a", Some("m"), vec![created("1")])
                .await
                .unwrap(),
            Outcome::Accepted {
                queued: 1,
                links_created: 1
            }
        );
        assert_eq!(store.pending("b").unwrap().len(), 1);
    }
}
