//! Passing on along a chain: what deskbridge set on a middle ticket goes
//! on to that ticket's other partners, as the middle company's own change.

use super::accept::{Ingest, IngestError};
use crate::event::{Event, EventKind};

impl Ingest {
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
}
