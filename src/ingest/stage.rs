//! One request's store writes, inside the transaction: repeats and echoes
//! dropped, the ticket's snapshot kept, the links' news routed, transfer
//! rules fired.

use super::accept::Ingest;
use crate::config::Condition;
use crate::event::{Event, EventKind, Ticket};
use crate::link::Link;
use crate::store::{Envelope, QueueKey, Tx, TxResult};

impl Ingest {
    /// The store writes of one request, inside a transaction: `None` when
    /// its message id was seen before.
    #[allow(clippy::type_complexity)]
    pub(super) fn stage(
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

    pub(super) fn is_echo(&self, tx: &Tx<'_>, endpoint: &str, ev: &Event) -> TxResult<bool> {
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
    pub(super) fn update_snapshot(
        &self,
        tx: &Tx<'_>,
        endpoint: &str,
        ev: &Event,
    ) -> TxResult<Option<Ticket>> {
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
