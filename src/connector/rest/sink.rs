//! The REST sink: applies an event through the profile's requests. Every
//! write carries the event's marker, and is looked for before it is made,
//! so a delivery repeated after a crash finds its first effect instead of
//! writing twice. A status change is read back: products that ignore an
//! invalid status with a 2xx are caught.

use super::client::{Answer, Payload};
use super::endpoint::RestEndpoint;
use super::fields::{self, Landing};
use super::files;
use super::json::{as_text, text_at};
use super::profile::Method;
use super::remote_id::status_source_id;
use super::template::{self, Vars};
use crate::blob::BlobStore;
use crate::connector::sink::{Delivery, Sink, SinkError};
use crate::event::{marker, Attachment, Audience, Event, EventKind, Status};
use crate::store::Applied;
use futures::future::BoxFuture;
use std::sync::Arc;
use tracing::warn;

pub struct RestSink {
    pub ep: Arc<RestEndpoint>,
}

fn permanent(message: String) -> SinkError {
    SinkError::Permanent { message }
}

/// The text of a relayed comment, with its marker; `not_sent` names the
/// files that do not go with it, so they are not silently lost.
pub fn comment_text(
    format: &str,
    ev: &Event,
    body: &str,
    not_sent: &[&str],
) -> Result<String, SinkError> {
    let mut body = body.to_string();
    files::name_not_sent(&mut body, not_sent);
    let vars: Vars = [
        ("body", body),
        ("sender", ev.sender()),
        ("marker", marker(ev.id)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    template::render_text(format, &vars).map_err(|e| permanent(format!("format.comment: {e}")))
}

/// The product's value for a canonical status, or why there is none.
pub fn status_value(ep: &RestEndpoint, status: Status) -> Result<String, SinkError> {
    ep.statuses.outbound.get(&status).cloned().ok_or_else(|| {
        permanent(format!(
            "{}: no {} status for canonical status {status} (add it to endpoints.{}.rest.statuses.outbound)",
            ep.name, ep.profile.product, ep.name
        ))
    })
}

impl RestSink {
    /// The event's files that go with the write, and the names of those
    /// that do not (the profile has no `[files]`, or a file has no
    /// content).
    fn split_files<'e>(&self, ev: &'e Event) -> (Vec<&'e Attachment>, Vec<&'e str>) {
        let all = ev.attachments();
        if let Some(f) = &self.ep.profile.files {
            let (send, mut not_sent) = files::sendable(all);
            let (send, refused) = files::by_extension(send, f.extensions.as_deref());
            if !refused.is_empty() {
                warn!(
                    endpoint = %self.ep.name,
                    files = ?refused,
                    "{} takes no files of these types: named in the text, not sent",
                    self.ep.profile.product
                );
            }
            not_sent.extend(refused);
            return (send, not_sent);
        }
        if !all.is_empty() {
            warn!(
                endpoint = %self.ep.name,
                "the profile ({}) has no [files]: the files are named in the text, not sent",
                self.ep.profile.product
            );
        }
        (vec![], all.iter().map(|f| f.name.as_str()).collect())
    }

    /// One of the profile's writes, with `fields` (the ticket's fields'
    /// body parts) merged into its body and `send` attached when there are
    /// any (`creating`: the write is create_ticket, whose files may go
    /// elsewhere).
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        what: &str,
        creating: bool,
        r: (Method, &str, Option<&serde_json::Value>),
        vars: &Vars,
        fields: Option<serde_json::Value>,
        send: &[&Attachment],
        blobs: &BlobStore,
    ) -> Result<Answer, SinkError> {
        let (method, path, body) = r;
        let mut body = body
            .map(|b| template::render_json(b, vars))
            .transpose()
            .map_err(|e| permanent(format!("{}: profile request {what}: {e}", self.ep.name)))?;
        if let Some(parts) = fields.filter(|f| f.as_object().is_some_and(|o| !o.is_empty())) {
            fields::merge(
                body.get_or_insert_with(|| serde_json::Value::Object(Default::default())),
                parts,
            );
        }
        let Some(files) = self.ep.profile.files.as_ref().filter(|_| !send.is_empty()) else {
            let payload = match &body {
                Some(b) => Payload::Json(b),
                None => Payload::None,
            };
            return self
                .ep
                .client
                .call_with(what, method, path, payload, vars)
                .await;
        };
        let body = body.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        files::send_with_files(
            &self.ep, files, what, method, path, body, vars, send, blobs, creating,
        )
        .await
    }

    /// The id of the history entry carrying `ev`'s marker, if one exists.
    /// Only entries from around `since` on are looked into: a product that
    /// gives each entry's text by its own request (RT) would otherwise cost
    /// a request per entry of the whole history.
    async fn find_comment(
        &self,
        ticket: &str,
        ev: &Event,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<String>, SinkError> {
        let j = &self.ep.profile.journal;
        let m = marker(ev.id);
        // Clocks of deskbridge and the product may differ a little.
        let from = since.map(|t| t - chrono::Duration::minutes(15));
        // Where the history of every ticket is listed from its newest
        // end, the entries since then (by the product's clock): the
        // ticket is not read.
        if let Some(listed) = match since {
            Some(since) => super::poll::recent_entries(&self.ep, since).await?,
            None => None,
        } {
            let tptr = self
                .ep
                .profile
                .list_changes
                .entries
                .as_deref()
                .unwrap_or_default();
            return Ok(listed
                .iter()
                .filter(|e| text_at(e, tptr).as_deref() == Some(ticket))
                .find(|e| text_at(e, &j.text).is_some_and(|s| s.contains(&m)))
                .and_then(|e| text_at(e, &j.id)));
        }
        let t = self.ep.read_ticket(ticket).await?;
        Ok(self
            .ep
            .entries(ticket, &t, from)
            .await?
            .iter()
            .find(|entry| text_at(entry, &j.text).is_some_and(|s| s.contains(&m)))
            .and_then(|entry| text_at(entry, &j.id)))
    }

    /// A ticket created for `ev` before a crash, found by its marker.
    /// Where the history of every ticket is listed from its newest end and
    /// a ticket's first entry is its description, the marker is looked for
    /// in the entries since `since` (no ticket list is read).
    async fn find_created(
        &self,
        ev: &Event,
        subject: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<String>, SinkError> {
        let m = marker(ev.id);
        let j = &self.ep.profile.journal;
        if j.first_is_description {
            if let Some(listed) = match since {
                Some(since) => super::poll::recent_entries(&self.ep, since).await?,
                None => None,
            } {
                let tptr = self
                    .ep
                    .profile
                    .list_changes
                    .entries
                    .as_deref()
                    .unwrap_or_default();
                return Ok(listed
                    .iter()
                    .find(|e| text_at(e, &j.text).is_some_and(|s| s.contains(&m)))
                    .and_then(|e| text_at(e, tptr)));
            }
        }
        let f = &self.ep.profile.find_ticket;
        let answer = self
            .ep
            .client
            .call(
                "find ticket",
                f.method,
                &f.path,
                f.body.as_ref(),
                &self
                    .ep
                    .vars(&[("marker", marker(ev.id)), ("subject", subject.to_string())]),
            )
            .await?;
        let p = &self.ep.profile.ticket;
        let listed = answer
            .json
            .pointer(&p.list)
            .and_then(|l| l.as_array())
            .cloned()
            .unwrap_or_default();
        for t in &listed {
            // A list of bare ids (Okdesk's) is its own id.
            let Some(id) = text_at(t, &p.id).or_else(|| as_text(t)) else {
                continue;
            };
            match text_at(t, &p.description) {
                Some(d) if d.contains(&m) => return Ok(Some(id)),
                Some(_) => {}
                // A list without descriptions (only ids, or products whose
                // description is the first history entry): look inside.
                None => {
                    let full = self.ep.read_ticket(&id).await?;
                    if text_at(&full, &p.description).is_some_and(|d| d.contains(&m)) {
                        return Ok(Some(id));
                    }
                    if self.ep.profile.history.is_some() {
                        let found = self.ep.entries(&id, &full, None).await?.iter().any(|e| {
                            text_at(e, &self.ep.profile.journal.text)
                                .is_some_and(|s| s.contains(&m))
                        });
                        if found {
                            return Ok(Some(id));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Writes a comment (or a note) once: looked for by its marker first,
    /// so a delivery repeated after a crash finds it instead of writing
    /// twice.
    async fn comment(
        &self,
        d: &Delivery<'_>,
        ticket: &str,
        text: String,
        audience: Audience,
        send: &[&Attachment],
    ) -> Result<Applied, SinkError> {
        let ev = &d.envelope.event;
        let profile = &self.ep.profile;
        if let Some(id) = self
            .find_comment(ticket, ev, d.envelope.accepted_at)
            .await?
        {
            return Ok(Applied {
                ticket: None,
                remote_ids: vec![format!("journal-{id}")],
                ..Applied::default()
            });
        }
        let written_after = chrono::Utc::now();
        let r = match audience {
            Audience::Internal => &profile.add_internal_note,
            Audience::Public | Audience::Partner => &profile.add_comment,
        };
        // The files go in the same request as the comment, so the marker
        // that finds the comment after a crash finds them too: they are
        // never attached twice.
        self.write(
            "add comment",
            false,
            (r.method, &r.path, r.body.as_ref()),
            &self
                .ep
                .vars(&[("ticket", ticket.to_string()), ("text", text)]),
            None,
            send,
            d.blobs,
        )
        .await?;
        // Its id, for echo checks; the marker and the service account
        // recognise it even without, so a product whose history costs a
        // request per entry (RT) is spared.
        if profile.history.is_some() {
            return Ok(Applied::default());
        }
        let id = self.find_comment(ticket, ev, Some(written_after)).await?;
        if id.is_none() {
            warn!(
                ticket,
                "the comment just written is not in the ticket's history"
            );
        }
        Ok(Applied {
            ticket: None,
            remote_ids: id.map(|i| format!("journal-{i}")).into_iter().collect(),
            ..Applied::default()
        })
    }

    /// Sets a field the product has a place for, and reads it back: a
    /// product that answers 2xx to a value it ignored (RT) is caught, and
    /// the change becomes a dead letter instead of counting as applied.
    /// Setting a value twice changes nothing, so a repeat needs no marker.
    async fn set_field(
        &self,
        blobs: &BlobStore,
        ticket: &str,
        field: &str,
        value: &str,
    ) -> Result<Applied, SinkError> {
        let name = &self.ep.name;
        let product = &self.ep.profile.product;
        let Some(u) = &self.ep.profile.fields.update else {
            return Err(permanent(format!(
                "{name}: the {product} profile has no fields.update request: the {field} of an existing ticket cannot be changed there"
            )));
        };
        let part = self
            .ep
            .places
            .write_one(field, value)
            .map_err(|e| permanent(format!("{name}: {field}: {e}")))?;
        self.write(
            "update fields",
            false,
            (u.method, &u.path, u.body.as_ref()),
            &self.ep.vars(&[("ticket", ticket.to_string())]),
            Some(part),
            &[],
            blobs,
        )
        .await?;
        let t = self.ep.read_ticket(ticket).await?;
        let now = self
            .ep
            .places
            .read(&t, self.ep.profile.time_format.as_deref());
        let now = now.get(field).map(String::as_str).unwrap_or_default();
        if !self.ep.places.same(field, now, value) {
            return Err(permanent(format!(
                "{name}: {product} did not take {field} {value:?} for ticket {ticket}: it reads {now:?} (a value the product does not know, or a field the service account may not change; check endpoints.{name}.rest.priorities and custom_fields)"
            )));
        }
        Ok(Applied::default())
    }

    async fn send(&self, d: Delivery<'_>) -> Result<Applied, SinkError> {
        let ev = &d.envelope.event;
        let profile = &self.ep.profile;
        match &ev.kind {
            EventKind::TicketCreated { ticket_data } => {
                if let Some(id) = self
                    .find_created(ev, &ticket_data.subject, d.envelope.accepted_at)
                    .await?
                {
                    return Ok(Applied {
                        remote_ids: vec![format!("ticket-{id}")],
                        ticket: Some(id),
                        ..Applied::default()
                    });
                }
                let (mut send, mut not_sent) = self.split_files(ev);
                if let Some(n) = profile.files.as_ref().and_then(|f| f.ticket_files) {
                    if send.len() > n {
                        not_sent.extend(send.drain(n..).map(|f| f.name.as_str()));
                    }
                }
                let mut all = fields::ticket_fields(ticket_data);
                // The ticket it was handed over from, in a field of its own
                // where the endpoint names one, else in the text.
                if let Some((party, id)) = ev
                    .partner
                    .as_ref()
                    .and_then(|p| Some((&p.party, p.ticket.as_ref()?)))
                {
                    let field = self.view_field(&d, "partner_ticket");
                    let value = match self.ep.places.landing(field, None) {
                        Landing::Field => id.clone(),
                        Landing::Text => format!("{party} {id}"),
                    };
                    all.push((field.into(), value));
                }
                let placed = self
                    .ep
                    .places
                    .write(&all)
                    .map_err(|e| permanent(format!("{}: {e}", self.ep.name)))?;
                let block = fields::block(&profile.format.field_line, &placed.text)
                    .map_err(|e| permanent(format!("format.field_line: {e}")))?;
                let mut text = ticket_data.description.clone();
                // Without {{fields}} in the format, the block follows the
                // description: a field with no place is never dropped.
                if !block.is_empty() && !profile.format.description.contains("{{fields") {
                    if !text.trim().is_empty() {
                        text = format!("{}\n\n", text.trim_end());
                    }
                    text.push_str(block.trim_end());
                }
                files::name_not_sent(&mut text, &not_sent);
                let mut vars = self.ep.vars(&[
                    ("subject", ticket_data.subject.clone()),
                    ("description", text),
                    ("marker", marker(ev.id)),
                    ("fields", block),
                ]);
                for (k, v) in &all {
                    vars.insert(format!("field.{k}"), v.clone());
                }
                // The product's own values, where it has them.
                for (k, v) in self.ep.places.product_values(&all) {
                    vars.insert(k, v);
                }
                let description = template::render_text(&profile.format.description, &vars)
                    .map_err(|e| permanent(format!("format.description: {e}")))?;
                vars.insert("description".into(), description);
                let c = &profile.create_ticket;
                let answer = self
                    .write(
                        "create ticket",
                        true,
                        (c.method, &c.path, c.body.as_ref()),
                        &vars,
                        Some(placed.body),
                        &send,
                        d.blobs,
                    )
                    .await?;
                let id = text_at(&answer.json, &c.ticket_id).ok_or_else(|| {
                    permanent(format!(
                        "{}: the answer to create ticket has no id at {}",
                        self.ep.name, c.ticket_id
                    ))
                })?;
                Ok(Applied {
                    remote_ids: vec![format!("ticket-{id}")],
                    ticket: Some(id),
                    ..Applied::default()
                })
            }
            EventKind::Comment { comment } => {
                let ticket = d.ticket.ok_or_else(|| {
                    permanent(format!("{}: the comment has no ticket", self.ep.name))
                })?;
                let (send, not_sent) = self.split_files(ev);
                let text = comment_text(&profile.format.comment, ev, &comment.body, &not_sent)?;
                self.comment(&d, ticket, text, comment.audience, &send)
                    .await
            }
            EventKind::StatusChanged { status } => {
                let ticket = d.ticket.ok_or_else(|| {
                    permanent(format!("{}: the status change has no ticket", self.ep.name))
                })?;
                let value = status_value(&self.ep, *status)?;
                let expected = self.ep.statuses.readback.get(status).unwrap_or(&value);
                // Already there (a first attempt applied it and its answer
                // was lost, or the partner got there first): writing again
                // would add a second status entry in products that record
                // a status change as an entry of its own (django-helpdesk).
                let mut t = self.ep.read_ticket(ticket).await?;
                if text_at(&t, &profile.ticket.status).as_deref() != Some(expected.as_str()) {
                    let r = &profile.set_status;
                    self.ep
                        .client
                        .call(
                            "set status",
                            r.method,
                            &r.path,
                            r.body.as_ref(),
                            &self
                                .ep
                                .vars(&[("ticket", ticket.to_string()), ("status", value.clone())]),
                        )
                        .await?;
                    // Some products answer 2xx to a status they ignored.
                    t = self.ep.read_ticket(ticket).await?;
                }
                let now = text_at(&t, &profile.ticket.status);
                if now.as_deref() != Some(expected.as_str()) {
                    return Err(permanent(format!(
                        "{}: {} did not apply status {value} (for {status}) to ticket {ticket}: it is still at status {} (an unknown status id, or one the service account's workflow does not allow; check endpoints.{}.rest.statuses)",
                        self.ep.name,
                        profile.product,
                        now.as_deref().unwrap_or("unknown"),
                        self.ep.name
                    )));
                }
                // Products whose history has no status changes report this
                // one as the ticket's status at this update time: known by
                // this id, it is not taken for a change of theirs.
                let remote_ids = text_at(&t, &profile.ticket.updated_at)
                    .map(|at| status_source_id(ticket, &at))
                    .into_iter()
                    .collect();
                Ok(Applied {
                    ticket: None,
                    remote_ids,
                    ..Applied::default()
                })
            }
            EventKind::FieldChanged { field, value } => {
                let ticket = d.ticket.ok_or_else(|| {
                    permanent(format!("{}: the field change has no ticket", self.ep.name))
                })?;
                let field = &self.view_field(&d, field).to_string();
                let placed = self.ep.places.landing(field, None) == Landing::Field;
                if crate::policy::is_partner_view(field) && !placed {
                    // Where the product has no field for it: a note.
                    let party = ev
                        .partner
                        .as_ref()
                        .map_or("The partner", |p| p.party.as_str());
                    let theirs = ev.partner.as_ref().and_then(|p| p.ticket.as_deref());
                    let text = match (field.as_str(), theirs) {
                        ("partner_ticket" | "upstream_ticket", _) => {
                            format!("{party} took this over as its ticket {value}.")
                        }
                        (_, Some(t)) => format!("{party}'s ticket {t} is now {value}."),
                        (_, None) => format!("{party}'s ticket is now {value}."),
                    };
                    let text = format!("{text}\n\n{}", marker(ev.id));
                    return self
                        .comment(&d, ticket, text, Audience::Internal, &[])
                        .await;
                }
                if !placed {
                    // No place in the product: a note, as the transfer put
                    // the field into the description.
                    let vars: Vars = [
                        ("sender", ev.sender()),
                        ("name", fields::label(field)),
                        ("value", fields::shown(field, value)),
                        ("marker", marker(ev.id)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                    let text = template::render_text(&profile.format.field_note, &vars)
                        .map_err(|e| permanent(format!("format.field_note: {e}")))?;
                    return self
                        .comment(&d, ticket, text, Audience::Internal, &[])
                        .await;
                }
                self.set_field(d.blobs, ticket, field, value).await
            }
        }
    }
}

impl RestSink {
    /// Where a partner's ticket id or status lands: on a ticket in the
    /// middle of a chain, the company that handed the work over is shown
    /// apart from the partner it was handed on to, where the endpoint
    /// names `upstream_ticket` / `upstream_status` custom fields.
    fn view_field<'f>(&self, d: &Delivery<'_>, field: &'f str) -> &'f str {
        let from_upstream = d.link.upstream.endpoint == d.envelope.origin
            && d.link.downstream.endpoint == d.envelope.dest;
        let upstream = match field {
            "partner_ticket" => "upstream_ticket",
            "partner_status" => "upstream_status",
            _ => return field,
        };
        if from_upstream && self.ep.places.landing(upstream, None) == Landing::Field {
            upstream
        } else {
            field
        }
    }
}

impl Sink for RestSink {
    fn apply<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<Applied, SinkError>> {
        Box::pin(self.send(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Author, Comment, PartnerRef};

    #[test]
    fn relayed_comment_names_its_sender_and_carries_the_marker() {
        let mut ev = Event::new(
            "7",
            EventKind::Comment {
                comment: Comment {
                    body: "Board replaced".into(),
                    audience: Audience::Public,
                    attachments: vec![],
                },
            },
        );
        ev.author = Some(Author {
            name: "Dana".into(),
            email: None,
        });
        ev.partner = Some(PartnerRef {
            party: "Service Co".into(),
            ticket: Some("12".into()),
        });
        let text = comment_text(
            "{{sender}} wrote:\n\n{{body}}\n\n{{marker}}",
            &ev,
            "Board replaced",
            &[],
        )
        .unwrap();
        assert!(text.starts_with("Dana (Service Co) wrote:\n\nBoard replaced"));
        assert_eq!(crate::event::find_marker(&text), Some(ev.id));
    }
}
