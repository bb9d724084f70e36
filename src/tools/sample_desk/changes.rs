//! What the desk's users do: open tickets, comment, change statuses. Each
//! change is kept here and sent to deskbridge.

use super::desk::SampleDesk;
use super::state::{DeskComment, DeskTicket};
use crate::event::{Attachment, Audience, Author, Comment, Event, EventKind, Status, Ticket};
use base64::Engine as _;

impl SampleDesk {
    pub fn create_ticket(
        &self,
        subject: &str,
        description: &str,
        fields: &[(&str, &str)],
        author: &str,
    ) -> String {
        self.create_ticket_with_files(subject, description, fields, author, &[])
    }

    /// A new ticket carrying files (handed on with it on a transfer).
    pub fn create_ticket_with_files(
        &self,
        subject: &str,
        description: &str,
        fields: &[(&str, &str)],
        author: &str,
        files: &[(&str, &[u8])],
    ) -> String {
        self.open(
            Ticket {
                subject: subject.into(),
                description: description.into(),
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                attachments: files
                    .iter()
                    .map(|(n, b)| Attachment {
                        name: n.to_string(),
                        content_type: "application/octet-stream".into(),
                        sha256: None,
                        size: None,
                        content_base64: Some(base64::engine::general_purpose::STANDARD.encode(b)),
                    })
                    .collect(),
                ..Ticket::default()
            },
            author,
        )
    }

    /// A new ticket as its user fills it in: priority, due time, fields
    /// and files (given inline, base64).
    pub fn open(&self, mut ticket: Ticket, author: &str) -> String {
        ticket.status = Some(Status::New);
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id.to_string();
        let files = ticket
            .attachments
            .iter()
            .map(|a| {
                let b = a.content_base64.as_deref().unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default();
                (a.name.clone(), bytes)
            })
            .collect();
        let t = DeskTicket {
            id: id.clone(),
            subject: ticket.subject.clone(),
            description: ticket.description.clone(),
            status: Status::New,
            fields: ticket.fields.clone(),
            priority: ticket.priority.clone(),
            due: ticket.due,
            files,
            comments: vec![],
            partner: None,
            partner_status: None,
        };
        st.tickets.insert(id.clone(), t);
        drop(st);
        let mut ev = Event::new(
            &id,
            EventKind::TicketCreated {
                ticket_data: ticket,
            },
        );
        ev.author = Some(Author {
            name: author.into(),
            email: None,
        });
        ev.source_id = Some(format!("ticket-{id}"));
        self.send(ev);
        id
    }

    pub fn comment(
        &self,
        ticket: &str,
        body: &str,
        audience: Audience,
        author: &str,
        files: &[(&str, &[u8])],
    ) -> String {
        let mut st = self.lock();
        st.next_id += 1;
        let cid = format!("c{}", st.next_id);
        let Some(t) = st.tickets.get_mut(ticket) else {
            panic!("{}: no ticket {ticket}", self.name)
        };
        t.comments.push(DeskComment {
            id: cid.clone(),
            body: body.into(),
            audience,
            author: author.into(),
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), b.to_vec()))
                .collect(),
            event: None,
        });
        drop(st);
        let attachments = files
            .iter()
            .map(|(n, b)| Attachment {
                name: n.to_string(),
                content_type: "application/octet-stream".into(),
                sha256: None,
                size: None,
                content_base64: Some(base64::engine::general_purpose::STANDARD.encode(b)),
            })
            .collect();
        let mut ev = Event::new(
            ticket,
            EventKind::Comment {
                comment: Comment {
                    body: body.into(),
                    audience,
                    attachments,
                },
            },
        );
        ev.author = Some(Author {
            name: author.into(),
            email: None,
        });
        ev.source_id = Some(cid.clone());
        self.send(ev);
        cid
    }

    pub fn set_status(&self, ticket: &str, status: Status, author: &str) {
        let mut st = self.lock();
        st.next_id += 1;
        let sid = format!("s{}", st.next_id);
        if let Some(t) = st.tickets.get_mut(ticket) {
            t.status = status;
        }
        drop(st);
        let mut ev = Event::new(ticket, EventKind::StatusChanged { status });
        ev.author = Some(Author {
            name: author.into(),
            email: None,
        });
        ev.source_id = Some(sid);
        self.send(ev);
    }
}
