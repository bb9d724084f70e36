//! What goes to the other side of a link, under both sides' policies:
//! the routed event, the partner's ticket id and status, a new link's
//! hand-over.

use super::accept::Ingest;
use crate::event::{Event, EventKind, Ticket};
use crate::link::Link;
use crate::policy::{self, Crossing, Direction};
use crate::store::{Envelope, QueueKey, Tx, TxResult};

impl Ingest {
    /// Tells the other side of `link` about `endpoint`'s ticket (its id,
    /// its status), where that side shows its partner's (`show_partner`)
    /// and the sender shares its status. Not content of the ticket, so not
    /// under `allowed_fields`: the partner's ticket id travels with every
    /// relayed event anyway.
    pub(super) fn show_partner(
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

    pub(super) fn route(
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
    pub(super) fn transfer_in(
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

    pub(super) fn party_name(&self, endpoint: &str) -> String {
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
