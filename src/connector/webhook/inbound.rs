//! Inbound: turn a verified request body into a canonical event, either
//! canonical event JSON or a partner's own shape through a mapping.

use super::config::WebhookMapping;
use crate::event::{Audience, Author, Comment, Event, EventKind, Status, Ticket};
use serde_json::Value;

/// Why a body is not an event; the text goes back to the sender as a 400.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("not a deskbridge event: {0}")]
    NotEvent(String),
    #[error("mapped field {name} ({pointer}) is missing from the payload")]
    Missing { name: &'static str, pointer: String },
    #[error("mapped field {name} ({pointer}) must be a string or number")]
    NotText { name: &'static str, pointer: String },
    #[error("event type {0:?} is not in the endpoint's mapping.types")]
    UnknownType(String),
    #[error("status {0:?} is not in the endpoint's mapping.statuses")]
    UnknownStatus(String),
    #[error("{0}")]
    Invalid(String),
}

pub fn parse(body: &[u8], mapping: Option<&WebhookMapping>) -> Result<Event, ParseError> {
    let event = match mapping {
        None => {
            let mut de = serde_json::Deserializer::from_slice(body);
            serde_path_to_error::deserialize::<_, Event>(&mut de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    ParseError::NotJson(inner.to_string())
                } else if path == "." {
                    ParseError::NotEvent(inner.to_string())
                } else {
                    ParseError::NotEvent(format!("{path}: {inner}"))
                }
            })?
        }
        Some(m) => {
            let v: Value =
                serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
            map(&v, m)?
        }
    };
    validate(&event)?;
    Ok(event)
}

fn validate(ev: &Event) -> Result<(), ParseError> {
    if ev.ticket.trim().is_empty() {
        return Err(ParseError::Invalid("ticket: must not be empty".into()));
    }
    if let EventKind::TicketCreated { ticket_data } = &ev.kind {
        if ticket_data.subject.trim().is_empty() {
            return Err(ParseError::Invalid(
                "ticket_data.subject: must not be empty".into(),
            ));
        }
    }
    for a in ev.attachments() {
        if let Some(problem) = crate::event::file_name_problem(&a.name) {
            return Err(ParseError::Invalid(format!(
                "attachment name {:?}: {problem}",
                a.name
            )));
        }
        if a.content_type.chars().any(char::is_control) {
            return Err(ParseError::Invalid(format!(
                "attachment {}: content_type {:?} must not contain control characters",
                a.name, a.content_type
            )));
        }
        // The content itself must come: a digest alone could name a file
        // this gateway never received.
        if a.content_base64.is_none() {
            return Err(ParseError::Invalid(format!(
                "attachment {}: give content_base64",
                a.name
            )));
        }
    }
    Ok(())
}

fn text(v: &Value, name: &'static str, pointer: &str) -> Result<Option<String>, ParseError> {
    match v.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(ParseError::NotText {
            name,
            pointer: pointer.into(),
        }),
    }
}

fn required(v: &Value, name: &'static str, pointer: &str) -> Result<String, ParseError> {
    text(v, name, pointer)?.ok_or_else(|| ParseError::Missing {
        name,
        pointer: pointer.into(),
    })
}

fn optional(
    v: &Value,
    name: &'static str,
    pointer: &Option<String>,
) -> Result<Option<String>, ParseError> {
    match pointer {
        Some(p) => text(v, name, p),
        None => Ok(None),
    }
}

fn map(v: &Value, m: &WebhookMapping) -> Result<Event, ParseError> {
    let ticket = required(v, "ticket", &m.ticket)?;
    let kind_name = match &m.event_type {
        Some(p) => {
            let t = required(v, "event_type", p)?;
            m.types.get(&t).cloned().ok_or(ParseError::UnknownType(t))?
        }
        // Without a type field the payload's content tells.
        None => {
            if optional(v, "comment", &m.comment)?.is_some() {
                "comment".into()
            } else if optional(v, "status", &m.status)?.is_some()
                && optional(v, "subject", &m.subject)?.is_none()
            {
                "status_changed".into()
            } else {
                "ticket_created".into()
            }
        }
    };
    let status = |required_here: bool| -> Result<Option<Status>, ParseError> {
        let raw = if required_here {
            Some(required(
                v,
                "status",
                m.status.as_deref().unwrap_or("/status"),
            )?)
        } else {
            optional(v, "status", &m.status)?
        };
        match raw {
            None => Ok(None),
            Some(s) => m
                .statuses
                .get(&s)
                .copied()
                .or_else(|| Status::parse(&s))
                .map(Some)
                .ok_or(ParseError::UnknownStatus(s)),
        }
    };
    let kind = match kind_name.as_str() {
        "ticket_created" => {
            let mut fields = std::collections::BTreeMap::new();
            for (name, p) in &m.fields {
                if let Some(val) = text(v, "fields", p)? {
                    fields.insert(name.clone(), val);
                }
            }
            EventKind::TicketCreated {
                ticket_data: Ticket {
                    subject: required(v, "subject", m.subject.as_deref().unwrap_or("/subject"))?,
                    description: optional(v, "description", &m.description)?.unwrap_or_default(),
                    status: status(false)?,
                    priority: optional(v, "priority", &m.priority)?,
                    due: None,
                    fields,
                    attachments: vec![],
                },
            }
        }
        "comment" => EventKind::Comment {
            comment: Comment {
                body: required(v, "comment", m.comment.as_deref().unwrap_or("/comment"))?,
                // What a dispatch system writes on a ticket is meant for
                // the contractor doing the work.
                audience: Audience::Partner,
                attachments: vec![],
            },
        },
        _ => EventKind::StatusChanged {
            status: status(true)?.ok_or_else(|| ParseError::Missing {
                name: "status",
                pointer: m.status.clone().unwrap_or_default(),
            })?,
        },
    };
    let mut ev = Event::new(ticket, kind);
    ev.source_id = optional(v, "source_id", &m.source_id)?;
    ev.author = optional(v, "author", &m.author)?.map(|name| Author { name, email: None });
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> WebhookMapping {
        toml::from_str(
            r#"
ticket = "/order/id"
event_type = "/event"
types = { "order.created" = "ticket_created", "order.note" = "comment", "order.state" = "status_changed" }
subject = "/order/title"
description = "/order/details"
comment = "/note/text"
status = "/order/state"
statuses = { "DONE" = "resolved" }
fields = { site = "/store/address", equipment = "/order/asset" }
"#,
        )
        .unwrap()
    }

    #[test]
    fn canonical_event_parses_and_errors_name_the_path() {
        let ok = br#"{"id":"0192f0c0-0000-7000-8000-000000000001","ticket":"R-1","occurred_at":"2026-11-23T10:00:00Z","type":"status_changed","status":"resolved"}"#;
        assert!(matches!(
            parse(ok, None).unwrap().kind,
            EventKind::StatusChanged {
                status: Status::Resolved
            }
        ));
        let bad = br#"{"id":"0192f0c0-0000-7000-8000-000000000001","ticket":"R-1","occurred_at":"2026-11-23T10:00:00Z","type":"status_changed","status":"done"}"#;
        let err = parse(bad, None).unwrap_err().to_string();
        assert!(err.contains("unknown variant `done`"), "{err}");
        assert!(matches!(
            parse(b"{not json", None),
            Err(ParseError::NotJson(_))
        ));
    }

    #[test]
    fn partner_shape_maps_through_pointers() {
        let m = mapping();
        let created = br#"{"event":"order.created","order":{"id":4711,"title":"Scale broken","details":"aisle 3","asset":"SC-200"},"store":{"address":"Main St 1"}}"#;
        let ev = parse(created, Some(&m)).unwrap();
        assert_eq!(ev.ticket, "4711");
        let EventKind::TicketCreated { ticket_data } = ev.kind else {
            panic!()
        };
        assert_eq!(ticket_data.subject, "Scale broken");
        assert_eq!(ticket_data.fields["site"], "Main St 1");
        let state = br#"{"event":"order.state","order":{"id":4711,"state":"DONE"}}"#;
        assert!(matches!(
            parse(state, Some(&m)).unwrap().kind,
            EventKind::StatusChanged {
                status: Status::Resolved
            }
        ));
        let unknown = br#"{"event":"order.deleted","order":{"id":4711}}"#;
        assert_eq!(
            parse(unknown, Some(&m)).unwrap_err(),
            ParseError::UnknownType("order.deleted".into())
        );
        let no_id = br#"{"event":"order.note","note":{"text":"hi"}}"#;
        assert!(matches!(
            parse(no_id, Some(&m)),
            Err(ParseError::Missing { name: "ticket", .. })
        ));
    }
}
