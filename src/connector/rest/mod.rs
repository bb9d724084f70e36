//! The REST connector: one engine for every help desk with a REST API,
//! driven by the product's profile (connectors/*.toml). The sink applies
//! events through the profile's requests; the poller turns the product's
//! ticket history into events.

pub mod client;
pub mod config;
pub mod fields;
pub mod files;
pub mod notify;
pub mod poll;
pub mod profile;
pub mod sink;
pub mod source;
pub mod template;

use config::RestConfig;
use profile::{Profile, StatusMap};
use std::sync::Arc;
use template::Vars;

/// One REST endpoint ready to use: its profile with the endpoint's own
/// settings and statuses applied, and its HTTP client (shared by the sink
/// and the poller, so the rate limit is the endpoint's).
pub struct RestEndpoint {
    pub name: String,
    pub profile: Profile,
    /// The profile's statuses with the endpoint's overrides.
    pub statuses: StatusMap,
    /// Where the ticket's fields go, with the endpoint's priorities and
    /// custom field ids.
    pub places: fields::Places,
    /// Settings by name: the endpoint's, else the profile's defaults.
    pub settings: Vars,
    pub client: client::Client,
    pub poll: std::time::Duration,
    /// Woken by the product's webhooks: the poller looks at once.
    pub wake: tokio::sync::Notify,
    /// The token or signing key of the product's webhooks.
    pub webhook_secret: Option<String>,
}

impl RestEndpoint {
    pub fn from_config(name: &str, r: &RestConfig) -> Result<Arc<RestEndpoint>, String> {
        let at = format!("endpoints.{name}.rest");
        let profile = Profile::load(r.profile.as_deref(), r.profile_file.as_deref())
            .map_err(|e| format!("{at}.profile: {e}"))?;
        let settings = config::settings(&profile, r).map_err(|e| format!("{at}: {e}"))?;
        let credential = r
            .credentials
            .resolve()
            .map_err(|e| format!("{at}.credentials: {e}"))?;
        let client = client::Client::new(name, &profile, r, credential, &settings)
            .map_err(|e| format!("{at}: {e}"))?;
        let webhook_secret = r
            .webhook_secret
            .as_ref()
            .map(|s| s.resolve())
            .transpose()
            .map_err(|e| format!("{at}.webhook_secret: {e}"))?;
        if webhook_secret.as_deref().is_some_and(|s| s.len() < 16) {
            return Err(format!(
                "{at}.webhook_secret: shorter than 16 characters; use a long random one (e.g. openssl rand -hex 32)"
            ));
        }
        let mut statuses = profile.statuses.clone();
        statuses.inbound.extend(r.statuses.inbound.clone());
        statuses.outbound.extend(r.statuses.outbound.clone());
        statuses.readback.extend(r.statuses.readback.clone());
        let places = r.places(&profile);
        Ok(Arc::new(RestEndpoint {
            name: name.into(),
            profile,
            statuses,
            places,
            settings,
            client,
            poll: std::time::Duration::from_secs(r.poll_secs.max(1)),
            wake: tokio::sync::Notify::new(),
            webhook_secret,
        }))
    }

    /// Whom the credentials belong to, as the product says (or, for a
    /// product without such a request, as the settings name the user).
    pub async fn identity(
        &self,
        service_account: &str,
    ) -> Result<poll::Identity, crate::connector::sink::SinkError> {
        let i = &self.profile.identity;
        let permanent = |message: String| crate::connector::sink::SinkError::Permanent { message };
        let vars = self.vars(&[("service_account", service_account.to_string())]);
        let (Some(method), Some(path)) = (i.method, &i.path) else {
            let user = i.user.as_deref().unwrap_or_default();
            let user_id = template::render_text(user, &vars)
                .map_err(|e| permanent(format!("{}: identity.user: {e}", self.name)))?;
            return Ok(poll::Identity {
                user_id,
                login: service_account.to_string(),
                kind: i.kind.clone(),
            });
        };
        let answer = self
            .client
            .call("identity", method, path, None, &vars)
            .await?;
        match (
            text_at(&answer.json, &i.user_id),
            text_at(&answer.json, &i.login),
        ) {
            (Some(user_id), Some(login)) => Ok(poll::Identity {
                user_id,
                login,
                kind: i.kind.clone(),
            }),
            _ => Err(permanent(format!(
                "{}: the identity answer has no user id at {} or login at {}",
                self.name, i.user_id, i.login
            ))),
        }
    }

    /// The settings plus `extra` values for one request.
    pub fn vars(&self, extra: &[(&str, String)]) -> Vars {
        let mut v = self.settings.clone();
        for (k, val) in extra {
            v.insert(k.to_string(), val.clone());
        }
        v
    }
}

/// A JSON value as the text an id or status is compared by.
pub fn as_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The text at a pointer, if any.
pub fn text_at(v: &serde_json::Value, pointer: &str) -> Option<String> {
    value_at(v, pointer).and_then(as_text)
}

/// The value at a JSON pointer, where the segment `-1` is an array's last
/// item: a ticket whose update time is only its last entry's time
/// (django-helpdesk's `/followup_set/-1/date`).
pub fn value_at<'a>(v: &'a serde_json::Value, pointer: &str) -> Option<&'a serde_json::Value> {
    let Some((head, tail)) = pointer.split_once("/-1") else {
        return v.pointer(pointer);
    };
    if !(tail.is_empty() || tail.starts_with('/')) {
        // "/-10" or "/-1x": an ordinary key, not the last item
        return v.pointer(pointer);
    }
    let last = v.pointer(head)?.as_array()?.last()?;
    value_at(last, tail)
}

/// A time as the product writes it: RFC 3339, else the profile's
/// `time_format` (with an offset, or read as UTC without one).
pub fn parse_time(s: &str, format: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDateTime, Utc};
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let f = format?;
    DateTime::parse_from_str(s, f)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, f)
                .ok()
                .map(|t| t.and_utc())
        })
}

/// The time at a pointer (see `parse_time`).
pub fn time_at(
    v: &serde_json::Value,
    pointer: &str,
    format: Option<&str>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    parse_time(&text_at(v, pointer)?, format)
}

/// Puts `value` at `pointer` in `v`, making the objects on the way.
pub fn set_at(v: &mut serde_json::Value, pointer: &str, value: serde_json::Value) {
    let mut at = v;
    for raw in pointer.split('/').skip(1) {
        let key = raw.replace("~1", "/").replace("~0", "~");
        if !at.is_object() {
            *at = serde_json::Value::Object(Default::default());
        }
        at = at
            .as_object_mut()
            .expect("made an object above")
            .entry(key)
            .or_insert(serde_json::Value::Null);
    }
    *at = value;
}

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
                    set_at(entry, files::PARTS, parts.clone());
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn minus_one_in_a_pointer_is_the_last_item() {
        let v = serde_json::json!({"f": [{"d": "a"}, {"d": "b", "x": [1, 2]}], "-10": 3});
        assert_eq!(super::text_at(&v, "/f/-1/d").as_deref(), Some("b"));
        assert_eq!(super::text_at(&v, "/f/-1/x/-1").as_deref(), Some("2"));
        assert_eq!(super::text_at(&v, "/f/0/d").as_deref(), Some("a"));
        assert_eq!(super::text_at(&v, "/-10").as_deref(), Some("3"));
        assert_eq!(
            super::text_at(&serde_json::json!({"f": []}), "/f/-1/d"),
            None
        );
    }

    #[test]
    fn times_are_read_as_products_write_them() {
        let utc = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let jira = Some("%Y-%m-%dT%H:%M:%S%.f%z");
        assert_eq!(
            parse_time("2024-05-01T10:00:00.000+0000", jira),
            Some(utc("2024-05-01T10:00:00Z"))
        );
        assert_eq!(
            parse_time("2015-10-09T10:22:00+0700", jira),
            Some(utc("2015-10-09T03:22:00Z"))
        );
        // no offset: UTC (ServiceNow's and GLPI's times)
        assert_eq!(
            parse_time("2024-05-01 10:00:00", Some("%Y-%m-%d %H:%M:%S")),
            Some(utc("2024-05-01T10:00:00Z"))
        );
        assert_eq!(
            parse_time("2024-05-01T10:00:00.000Z", None),
            Some(utc("2024-05-01T10:00:00Z"))
        );
        assert_eq!(parse_time("2024-05-01 10:00:00", None), None);
    }
}
