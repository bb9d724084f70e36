//! A delivery applied to the desk's tickets, as a real desk would: the
//! answer deskbridge reads, and the change the desk reports back (its
//! echo).

use super::state::{DeskComment, DeskState, DeskTicket, SERVICE_ACCOUNT};
use crate::event::{Attachment, Event, EventKind, Status};
use base64::Engine as _;
use serde_json::json;

/// A delivery the desk refuses (422), as a real desk would.
#[derive(Debug, thiserror::Error)]
pub(super) enum ApplyError {
    #[error("file {0} has no content")]
    NoContent(String),
    #[error("file {0} is not base64")]
    NotBase64(String),
    #[error("no ticket {0}")]
    NoTicket(String),
}

pub(super) fn apply(
    st: &mut DeskState,
    ev: &Event,
) -> Result<(serde_json::Value, Option<Event>), ApplyError> {
    st.next_id += 1;
    let n = st.next_id;
    let partner = ev
        .partner
        .as_ref()
        .map(|p| (p.party.clone(), p.ticket.clone()));
    let label = ev
        .partner
        .as_ref()
        .map(|p| p.party.clone())
        .unwrap_or_else(|| SERVICE_ACCOUNT.into());
    let files = |atts: &[Attachment]| -> Result<Vec<(String, Vec<u8>)>, ApplyError> {
        atts.iter()
            .map(|a| {
                let b64 = a
                    .content_base64
                    .as_deref()
                    .ok_or_else(|| ApplyError::NoContent(a.name.clone()))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| ApplyError::NotBase64(a.name.clone()))?;
                Ok((a.name.clone(), bytes))
            })
            .collect()
    };
    match &ev.kind {
        EventKind::TicketCreated { ticket_data } => {
            let id = n.to_string();
            st.tickets.insert(
                id.clone(),
                DeskTicket {
                    id: id.clone(),
                    subject: ticket_data.subject.clone(),
                    description: ticket_data.description.clone(),
                    status: Status::New,
                    fields: ticket_data.fields.clone(),
                    priority: ticket_data.priority.clone(),
                    due: ticket_data.due,
                    files: files(&ticket_data.attachments)?,
                    comments: vec![],
                    partner,
                    partner_status: None,
                },
            );
            let mut echo = Event::new(
                &id,
                EventKind::TicketCreated {
                    ticket_data: ticket_data.clone(),
                },
            );
            echo.source_id = Some(format!("ticket-{id}"));
            Ok((
                json!({ "ticket": id, "id": format!("ticket-{id}") }),
                Some(echo),
            ))
        }
        EventKind::Comment { comment } => {
            let t = st
                .tickets
                .get_mut(&ev.ticket)
                .ok_or_else(|| ApplyError::NoTicket(ev.ticket.clone()))?;
            let cid = format!("c{n}");
            t.comments.push(DeskComment {
                id: cid.clone(),
                body: comment.body.clone(),
                audience: comment.audience,
                author: format!("{label} (via deskbridge)"),
                files: files(&comment.attachments)?,
                event: Some(ev.id.to_string()),
            });
            let mut echo = Event::new(
                &ev.ticket,
                EventKind::Comment {
                    comment: comment.clone(),
                },
            );
            echo.source_id = Some(cid.clone());
            Ok((json!({ "id": cid }), Some(echo)))
        }
        EventKind::StatusChanged { status } => {
            let t = st
                .tickets
                .get_mut(&ev.ticket)
                .ok_or_else(|| ApplyError::NoTicket(ev.ticket.clone()))?;
            if t.status == *status {
                return Ok((json!({}), None));
            }
            t.status = *status;
            let sid = format!("s{n}");
            let mut echo = Event::new(&ev.ticket, EventKind::StatusChanged { status: *status });
            echo.source_id = Some(sid.clone());
            Ok((json!({ "id": sid }), Some(echo)))
        }
        EventKind::FieldChanged { field, value } => {
            let t = st
                .tickets
                .get_mut(&ev.ticket)
                .ok_or_else(|| ApplyError::NoTicket(ev.ticket.clone()))?;
            match field.as_str() {
                "partner_ticket" => {
                    let party = ev.partner.as_ref().map(|p| p.party.clone());
                    t.partner = Some((party.unwrap_or_default(), Some(value.clone())));
                }
                "partner_status" => t.partner_status = Some(value.clone()),
                "priority" => t.priority = Some(value.clone()).filter(|v| !v.is_empty()),
                "due" => t.due = crate::event::parse_due(value),
                _ => {
                    t.fields.insert(field.clone(), value.clone());
                }
            }
            Ok((json!({}), None))
        }
    }
}
