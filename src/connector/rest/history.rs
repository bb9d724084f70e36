//! A ticket and its history as the product answers them: the ticket at
//! `ticket.root`, its entries inside it or paged from `history`, and each
//! entry's text from `entry_content` where the history lacks it.

use super::download;
use super::endpoint::RestEndpoint;
use super::json::{set_at, text_at, time_at};
use super::profile;

/// The text of an entry from `entry_content`'s answer: the first part of
/// the first content type listed. A part with a file name (at
/// `file_name`) is a file, never the text, even a text file.
pub fn content_text(
    c: &profile::ContentRequest,
    answer: &serde_json::Value,
    file_name: Option<&str>,
) -> Option<String> {
    text_parts(c, answer, file_name).find_map(|p| text_at(p, &c.text))
}

/// The parts that may hold the entry's text, in the order they are taken.
fn text_parts<'a>(
    c: &'a profile::ContentRequest,
    answer: &'a serde_json::Value,
    file_name: Option<&'a str>,
) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    let parts: &[serde_json::Value] = answer
        .pointer(&c.list)
        .and_then(|l| l.as_array())
        .map_or(&[], Vec::as_slice);
    let is_file = move |p: &serde_json::Value| {
        file_name.is_some_and(|f| text_at(p, f).is_some_and(|n| !n.is_empty()))
    };
    c.text_types.iter().flat_map(move |ty| {
        parts.iter().filter(move |p| {
            !is_file(p)
                && text_at(p, &c.content_type)
                    .is_some_and(|t| t.split(';').next().unwrap_or_default().trim() == ty)
        })
    })
}

impl RestEndpoint {
    /// The text of an entry whose parts were listed without content: its
    /// text part read on its own (`entry_content.part`).
    async fn part_text(
        &self,
        c: &profile::ContentRequest,
        part: &profile::PartRequest,
        listing: &serde_json::Value,
        file_name: Option<&str>,
    ) -> Result<String, crate::connector::sink::SinkError> {
        let Some(id) = text_parts(c, listing, file_name).find_map(|p| text_at(p, &part.id)) else {
            return Ok(String::new());
        };
        let answer = self
            .client
            .call(
                "read entry text",
                part.method,
                &part.path,
                None,
                &self.vars(&[("part", id.clone())]),
            )
            .await?;
        let text = text_at(&answer.json, &part.text).unwrap_or_default();
        if !part.base64 {
            return Ok(text);
        }
        use base64::Engine as _;
        let compact: String = text.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| crate::connector::sink::SinkError::Permanent {
                message: format!("{}: part {id}: its text is not base64: {e}", self.name),
            })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A ticket as read_ticket answers it (at the profile's `ticket.root`).
    pub async fn read_ticket(
        &self,
        ticket: &str,
    ) -> Result<serde_json::Value, crate::connector::sink::SinkError> {
        let r = &self.profile.read_ticket;
        let answer = self
            .client
            .call(
                "read ticket",
                r.method,
                &r.path,
                r.body.as_ref(),
                &self.vars(&[("ticket", ticket.to_string())]),
            )
            .await?;
        let root = &self.profile.ticket.root;
        let t = if root.is_empty() {
            Some(&answer.json)
        } else {
            answer.json.pointer(root)
        };
        t.cloned()
            .ok_or_else(|| crate::connector::sink::SinkError::Permanent {
                message: format!(
                    "{}: ticket {ticket} read back without {root} in the answer",
                    self.name
                ),
            })
    }

    /// A ticket's history entries, oldest first: inside the ticket, or read
    /// from `history` with each entry's text from `entry_content` (for
    /// entries at or after `from` only, when given).
    pub async fn entries(
        &self,
        ticket_id: &str,
        ticket: &serde_json::Value,
        from: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<serde_json::Value>, crate::connector::sink::SinkError> {
        let jp = &self.profile.journal;
        let Some(h) = &self.profile.history else {
            return Ok(ticket
                .pointer(&jp.list)
                .and_then(|l| l.as_array())
                .cloned()
                .unwrap_or_default());
        };
        let mut out = Vec::new();
        // A bound against a product that never stops paging.
        for page in 1..=1000u64 {
            let answer = self
                .client
                .call(
                    "read history",
                    h.method,
                    &h.path,
                    None,
                    &self.vars(&[
                        ("ticket", ticket_id.to_string()),
                        ("page", page.to_string()),
                        ("offset", ((page - 1) * h.page_size as u64).to_string()),
                        ("limit", h.page_size.to_string()),
                        ("last", (page * h.page_size as u64 - 1).to_string()),
                    ]),
                )
                .await?;
            let items = answer
                .json
                .pointer(&jp.list)
                .and_then(|l| l.as_array())
                .cloned()
                .unwrap_or_default();
            let n = items.len();
            out.extend(items);
            if n < h.page_size as usize {
                break;
            }
        }
        let Some(c) = &self.profile.entry_content else {
            return Ok(out);
        };
        for entry in &mut out {
            if text_at(entry, &jp.text).is_some() {
                continue;
            }
            if !c.kinds.is_empty() {
                let kind = jp.kind.as_deref().and_then(|k| text_at(entry, k));
                if !kind.is_some_and(|k| c.kinds.contains(&k)) {
                    continue;
                }
            }
            if let Some(from) = from {
                let at = time_at(entry, &jp.created_at, self.profile.time_format.as_deref());
                if at.is_some_and(|t| t < from) {
                    continue;
                }
            }
            let Some(id) = text_at(entry, &jp.id) else {
                continue;
            };
            let answer = self
                .client
                .call(
                    "read entry content",
                    c.method,
                    &c.path,
                    None,
                    &self.vars(&[("entry", id)]),
                )
                .await?;
            let file_name = self
                .profile
                .files
                .as_ref()
                .and_then(|f| f.read.as_ref())
                .filter(|r| r.entry_list.is_none())
                .map(|r| r.name.as_str());
            let text = match &c.part {
                None => content_text(c, &answer.json, file_name).unwrap_or_default(),
                Some(part) => match self.part_text(c, part, &answer.json, file_name).await {
                    Ok(t) => t,
                    // One unreadable text must not stop every later change
                    // of the endpoint: it crosses as saying so.
                    Err(crate::connector::sink::SinkError::Permanent { message }) => {
                        tracing::warn!(endpoint = %self.name, "{message}");
                        format!("(the text of this entry could not be read: {message})")
                    }
                    Err(e) => return Err(e),
                },
            };
            set_at(entry, &jp.text, serde_json::Value::String(text));
            // The files among the parts, for the poller.
            if file_name.is_some() {
                if let Some(parts) = answer.json.pointer(&c.list) {
                    set_at(entry, download::PARTS, parts.clone());
                }
            }
        }
        Ok(out)
    }
}
