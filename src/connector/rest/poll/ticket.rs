//! One listed ticket read and taken: its events with the files of its
//! comments downloaded, its status compared where the history has none,
//! and a ticket first seen before the window learnt as it stands.

use super::cursor::Edge;
use super::poller::{round_error, Poller, RoundError};
use super::reader::Reader;
use super::round::RoundState;
use crate::connector::rest::json::{text_at, time_at};
use crate::connector::rest::{download, files};
use crate::connector::sink::SinkError;
use crate::event::{Audience, Event, EventKind};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::warn;

impl Poller {
    /// Reads one listed ticket and takes its events. A ticket deskbridge
    /// sees for the first time, created before the window (before
    /// deskbridge started), is learnt as it stands: transfer rules and
    /// `deskbridge transfer` can hand it over.
    pub(super) async fn read_one(
        &self,
        reader: &Reader<'_>,
        st: &mut RoundState,
        id: &str,
        listed_at: Option<String>,
        from: DateTime<Utc>,
        read_at: DateTime<Utc>,
    ) -> Result<(), RoundError> {
        let name = &self.ep.name;
        let tp = &self.ep.profile.ticket;
        let tf = self.ep.profile.time_format.as_deref();
        st.reads += 1;
        let ticket = match self.ep.read_ticket(id).await {
            Ok(t) => t,
            Err(e @ SinkError::Transient { .. }) => return Err(e.into()),
            Err(e) => {
                warn!(endpoint = %name, ticket = %id, "{e}");
                return Ok(());
            }
        };
        if let Some(u) = time_at(&ticket, &tp.updated_at, tf) {
            st.since = st.since.max(u);
        }
        let entries = self.ep.entries(id, &ticket, Some(from)).await?;
        if let Some(updated) = listed_at {
            let opening = reader.opening(&entries);
            st.edge.insert(
                id.to_string(),
                Edge {
                    updated,
                    read_at,
                    opening,
                },
            );
        }
        let mut evs = reader.events(&ticket, &entries, from);
        for ev in &mut evs {
            self.attach_files(&ticket, &entries, ev).await?;
        }
        if !evs
            .iter()
            .any(|e| matches!(e.kind, EventKind::TicketCreated { .. }))
        {
            self.ingest
                .learn(name, id, reader.ticket_data(&ticket, &entries))
                .map_err(round_error)?;
        }
        st.events.extend(evs);
        let snapshot = self.ep.profile.journal.status_field.is_none()
            && self.ep.profile.journal.status_value.is_none();
        if snapshot {
            let last = st.statuses.get(id).map(String::as_str);
            st.events
                .extend(reader.status_snapshot(&ticket, last, from));
            if let Some(now) = text_at(&ticket, &tp.status) {
                st.statuses.insert(id.to_string(), now);
            }
        }
        Ok(())
    }

    /// Downloads the files of a comment (or a new ticket) of the
    /// product's own users into the file store and lists them on its event.
    /// Not for deskbridge's own writes (their files came from the file
    /// store), nor for internal notes (they never leave, so their files
    /// are not even copied). A file that cannot cross is named in the text.
    pub(super) async fn attach_files(
        &self,
        ticket: &Value,
        entries: &[Value],
        ev: &mut Event,
    ) -> Result<(), RoundError> {
        let Some(read) = self.ep.profile.files.as_ref().and_then(|f| f.read.as_ref()) else {
            return Ok(());
        };
        let own = ev
            .author
            .as_ref()
            .is_some_and(|a| a.name == self.service_account);
        // Read again in a later round's look-back: ingest drops the event
        // by its id, so its files are not fetched again.
        let taken = || {
            self.store
                .was_seen(&self.ep.name, &format!("event:{}", ev.id))
                .map_err(round_error)
        };
        if own || taken()? {
            return Ok(());
        }
        let jp = &self.ep.profile.journal;
        let source = ev.source_id.clone().unwrap_or_default();
        let (refs, files, text) = match &mut ev.kind {
            EventKind::Comment { comment } if comment.audience != Audience::Internal => {
                let Some(jid) = source.strip_prefix("journal-") else {
                    return Ok(());
                };
                let Some(entry) = entries
                    .iter()
                    .find(|e| text_at(e, &jp.id).as_deref() == Some(jid))
                else {
                    return Ok(());
                };
                (
                    download::entry_files(read, ticket, entry),
                    &mut comment.attachments,
                    &mut comment.body,
                )
            }
            EventKind::TicketCreated { ticket_data } => (
                download::creation_files(read, jp, ticket, entries),
                &mut ticket_data.attachments,
                &mut ticket_data.description,
            ),
            _ => return Ok(()),
        };
        let mut not_sent = Vec::new();
        for f in refs {
            match download::download(&self.ep, read, &f, &self.blobs).await {
                Ok(Ok(blob)) => files.push(crate::event::Attachment {
                    name: f.name,
                    content_type: f.content_type,
                    sha256: Some(blob.sha256),
                    size: Some(blob.size),
                    content_base64: None,
                }),
                Ok(Err(why)) => not_sent.push(format!("{} ({why})", f.name)),
                Err(e @ SinkError::Transient { .. }) => return Err(e.into()),
                Err(SinkError::Permanent { message }) => {
                    warn!(endpoint = %self.ep.name, "{message}");
                    not_sent.push(format!("{} (cannot be read: {message})", f.name));
                }
            }
        }
        files::name_not_sent(text, &not_sent);
        Ok(())
    }
}
