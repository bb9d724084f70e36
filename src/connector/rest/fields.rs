//! A ticket's fields beyond subject and description (priority, due time,
//! the client's contact, site, equipment, custom fields): how deskbridge
//! writes each in the place the profile gives it (`profile::fields`),
//! reads it back and sees it change. A field the product has no place for is written into the text
//! (the description's fields block, a later change as an internal note),
//! never dropped.

pub use super::error::{FieldError, FieldsError};
use super::json::{parse_time, text_at};
pub use super::profile::fields::{CustomPlace, FieldPlace, FieldPlaces, PriorityMap, PRIORITIES};
use super::profile::Profile;
use super::template::{self, Vars};
pub use crate::event::{canonical_due, label, parse_due, shown, ticket_fields};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where one field lands in a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// A field of the product's own.
    Field,
    /// The text: the description's fields block, a change as a note.
    Text,
}

/// An endpoint's places, with its custom field ids.
#[derive(Clone, Debug, Default)]
pub struct Places {
    pub places: FieldPlaces,
    pub priorities: PriorityMap,
    /// Canonical field name → the product's custom field id.
    pub custom_ids: BTreeMap<String, String>,
}

/// What a write of fields puts where.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Written {
    /// Merged into the request body.
    pub body: Value,
    /// Fields with no place, as (field, value), for the text.
    pub text: Vec<(String, String)>,
}

impl Places {
    /// A profile's places, without an endpoint's custom fields.
    pub fn of_profile(p: &Profile) -> Places {
        Places {
            places: p.fields.clone(),
            priorities: p.priorities.clone(),
            custom_ids: BTreeMap::new(),
        }
    }

    /// Whether the history names changes of fields this endpoint maps.
    pub fn has_changes(&self) -> bool {
        let p = &self.places;
        p.priority.as_ref().is_some_and(|f| f.change.is_some())
            || p.due.as_ref().is_some_and(|f| f.change.is_some())
            || (p.custom.as_ref().is_some_and(|c| c.change.is_some())
                && !self.custom_ids.is_empty())
    }

    /// Where `field` (with `value`, for a priority the map may lack) lands.
    pub fn landing(&self, field: &str, value: Option<&str>) -> Landing {
        let placed = match field {
            "priority" => {
                self.places.priority.is_some()
                    && value.is_none_or(|v| self.priorities.outbound.contains_key(v))
            }
            "due" => self.places.due.is_some(),
            f => self.places.custom.is_some() && self.custom_ids.contains_key(f),
        };
        if placed {
            Landing::Field
        } else {
            Landing::Text
        }
    }

    /// The product's value of a field's canonical value, or why there is none.
    fn product_value(&self, field: &str, value: &str) -> Result<String, FieldError> {
        match field {
            "priority" => {
                self.priorities
                    .outbound
                    .get(value)
                    .cloned()
                    .ok_or_else(|| FieldError::NoPriority {
                        value: value.to_string(),
                        known: self
                            .priorities
                            .outbound
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
            "due" => {
                let t = parse_due(value).ok_or_else(|| FieldError::BadDue {
                    value: value.to_string(),
                })?;
                let format = self.places.due.as_ref().and_then(|p| p.format.as_deref());
                Ok(match format {
                    Some(f) => t.format(f).to_string(),
                    None => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                })
            }
            _ => Ok(value.to_string()),
        }
    }

    /// The product's own values of priority and due, for templates that
    /// name `{{priority}}` and `{{due}}` (absent where there is none).
    pub fn product_values(&self, fields: &[(String, String)]) -> Vec<(String, String)> {
        fields
            .iter()
            .filter(|(k, _)| k == "priority" || k == "due")
            .filter_map(|(k, v)| Some((k.clone(), self.product_value(k, v).ok()?)))
            .collect()
    }

    /// The body part that writes one field in its place; an error names
    /// why it cannot (no place, a value the product has none for).
    pub fn write_one(&self, field: &str, value: &str) -> Result<Value, FieldError> {
        let product = if value.is_empty() && field != "priority" {
            // Cleared.
            String::new()
        } else {
            self.product_value(field, value)?
        };
        let mut vars = Vars::new();
        vars.insert("value".into(), product);
        let tmpl = match field {
            "priority" => self.places.priority.as_ref().map(|p| &p.write),
            "due" => self.places.due.as_ref().map(|p| &p.write),
            f => match (self.custom_ids.get(f), &self.places.custom) {
                (Some(id), Some(c)) => {
                    vars.insert("id".into(), id.clone());
                    Some(&c.write)
                }
                _ => None,
            },
        };
        let tmpl = tmpl.ok_or_else(|| FieldError::NoPlace {
            field: field.to_string(),
        })?;
        Ok(template::render_json(tmpl, &vars)?)
    }

    /// Whether a value read back is the value written, as the product
    /// keeps it (a due time kept as a date is the same date).
    pub fn same(&self, field: &str, read: &str, written: &str) -> bool {
        if read == written {
            return true;
        }
        match (
            self.product_value(field, read),
            self.product_value(field, written),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// The body parts that write these fields (canonical name → value);
    /// what has no place goes to `text`. An error names a value the
    /// product's place cannot take.
    pub fn write(&self, fields: &[(String, String)]) -> Result<Written, FieldsError> {
        let mut out = Written {
            body: Value::Object(Default::default()),
            text: vec![],
        };
        for (field, value) in fields {
            if self.landing(field, Some(value)) == Landing::Text {
                out.text.push((field.clone(), value.clone()));
                continue;
            }
            let part = self.write_one(field, value).map_err(|source| FieldsError {
                field: field.clone(),
                source,
            })?;
            merge(&mut out.body, part);
        }
        Ok(out)
    }

    /// The fields of a ticket as the product shows them, canonical.
    pub fn read(&self, ticket: &Value, time_format: Option<&str>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(p) = &self.places.priority {
            if let Some(v) = text_at(ticket, &p.read).filter(|v| !v.is_empty()) {
                out.insert("priority".into(), self.priorities.to_canonical(&v));
            }
        }
        if let Some(p) = &self.places.due {
            if let Some(t) = text_at(ticket, &p.read).and_then(|v| product_time(&v, p, time_format))
            {
                out.insert("due".into(), canonical_due(t));
            }
        }
        if let Some(c) = &self.places.custom {
            let items = c
                .list
                .as_deref()
                .and_then(|l| ticket.pointer(l))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (field, id) in &self.custom_ids {
                let value = match (&c.list, &c.id) {
                    (Some(_), Some(id_ptr)) => items
                        .iter()
                        .find(|i| text_at(i, id_ptr).as_deref() == Some(id.as_str()))
                        .and_then(|i| text_at(i, &c.value)),
                    _ => {
                        let mut vars = Vars::new();
                        vars.insert("id".into(), id.clone());
                        template::render_text(&c.value, &vars)
                            .ok()
                            .and_then(|p| text_at(ticket, &p))
                    }
                }
                .filter(|v| !v.is_empty());
                if let Some(v) = value {
                    out.insert(field.clone(), v);
                }
            }
        }
        out
    }

    /// The canonical field and value of one history change, when it is a
    /// change of a field this endpoint maps.
    pub fn change(
        &self,
        name: &str,
        value: Option<&str>,
        time_format: Option<&str>,
    ) -> Option<(String, String)> {
        let value = value.unwrap_or_default();
        if let Some(p) = &self.places.priority {
            if p.change.as_deref() == Some(name) {
                return Some(("priority".into(), self.priorities.to_canonical(value)));
            }
        }
        if let Some(p) = &self.places.due {
            if p.change.as_deref() == Some(name) {
                // Cleared: an empty value.
                let due = product_time(value, p, time_format).map(canonical_due);
                return Some(("due".into(), due.unwrap_or_default()));
            }
        }
        let c = self.places.custom.as_ref()?;
        let change = c.change.as_deref()?;
        self.custom_ids.iter().find_map(|(field, id)| {
            let mut vars = Vars::new();
            vars.insert("id".into(), id.clone());
            let expected = template::render_text(change, &vars).ok()?;
            (expected == name).then(|| (field.clone(), value.to_string()))
        })
    }
}

/// A time as the product shows it in this place.
fn product_time(s: &str, p: &FieldPlace, time_format: Option<&str>) -> Option<DateTime<Utc>> {
    if s.is_empty() {
        return None;
    }
    let t = p
        .format
        .as_deref()
        .and_then(|f| {
            parse_time(s, Some(f)).or_else(|| {
                chrono::NaiveDate::parse_from_str(s, f)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            })
        })
        .or_else(|| parse_time(s, time_format))
        .or_else(|| parse_due(s))
        // RT's history writes times so.
        .or_else(|| parse_time(s, Some("%Y-%m-%d %H:%M:%S")))?;
    // RT reads an unset time as the epoch.
    (t != DateTime::<Utc>::UNIX_EPOCH).then_some(t)
}

/// Objects merged key by key, arrays joined, anything else replaced.
pub fn merge(into: &mut Value, part: Value) {
    match (into, part) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => a.extend(b),
        (slot, v) => *slot = v,
    }
}

/// The block of fields written into a text, one `line` per field
/// (`{{name}}`, `{{value}}`); empty when there are none.
pub fn block(line: &str, fields: &[(String, String)]) -> Result<String, template::TemplateError> {
    let mut out = String::new();
    for (k, v) in fields {
        let mut vars = Vars::new();
        vars.insert("name".into(), label(k));
        vars.insert("value".into(), shown(k, v));
        out.push_str(&template::render_text(line, &vars)?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redmine() -> Places {
        let places: FieldPlaces = toml::from_str(
            r#"
            priority = { read = "/priority/id", write = { issue = { priority_id = "{{value|int}}" } }, change = "priority_id" }
            due = { read = "/due_date", write = { issue = { due_date = "{{value}}" } }, change = "due_date", format = "%Y-%m-%d" }
            custom = { list = "/custom_fields", id = "/id", value = "/value", write = { issue = { custom_fields = [ { id = "{{id|int}}", value = "{{value}}" } ] } }, change = "{{id}}" }
            "#,
        )
        .unwrap();
        Places {
            places,
            priorities: PriorityMap {
                inbound: [("2", "normal"), ("3", "high")]
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .into(),
                inbound_from: BTreeMap::new(),
                outbound: [("normal", "2"), ("high", "3")]
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .into(),
            },
            custom_ids: [("site", "1"), ("serial_number", "2")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .into(),
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn placed_fields_merge_into_the_body_and_the_rest_goes_to_the_text() {
        let w = redmine()
            .write(&pairs(&[
                ("priority", "high"),
                ("due", "2026-12-08T17:00:00Z"),
                ("site", "Store 12"),
                ("serial_number", "SN-9"),
                ("contract", "C-77"),
            ]))
            .unwrap();
        assert_eq!(
            w.body,
            json!({"issue": {"priority_id": 3, "due_date": "2026-12-08",
                "custom_fields": [{"id": 1, "value": "Store 12"}, {"id": 2, "value": "SN-9"}]}})
        );
        assert_eq!(w.text, pairs(&[("contract", "C-77")]));
        // A priority the product has no value for is text on a transfer...
        let w = redmine().write(&pairs(&[("priority", "P1")])).unwrap();
        assert_eq!(w.text, pairs(&[("priority", "P1")]));
        // ...and a due time that is not one is refused.
        assert!(redmine()
            .write(&pairs(&[("due", "tomorrow")]))
            .unwrap_err()
            .to_string()
            .contains("not an RFC 3339 time"));
    }

    #[test]
    fn a_ticket_and_its_changes_read_back_canonical() {
        let p = redmine();
        let t = json!({"priority": {"id": 3}, "due_date": "2026-12-08",
            "custom_fields": [{"id": 1, "value": "Store 12"}, {"id": 2, "value": ""}]});
        assert_eq!(
            p.read(&t, None),
            BTreeMap::from([
                ("priority".to_string(), "high".to_string()),
                ("due".to_string(), "2026-12-08T00:00:00Z".to_string()),
                ("site".to_string(), "Store 12".to_string()),
            ])
        );
        assert_eq!(
            p.change("priority_id", Some("2"), None),
            Some(("priority".into(), "normal".into()))
        );
        assert_eq!(
            p.change("due_date", None, None),
            Some(("due".into(), String::new()))
        );
        assert_eq!(
            p.change("2", Some("SN-1"), None),
            Some(("serial_number".into(), "SN-1".into()))
        );
        assert_eq!(p.change("subject", Some("x"), None), None);
    }

    #[test]
    fn a_numeric_scale_reads_by_ranges() {
        let m = PriorityMap {
            inbound: BTreeMap::new(),
            inbound_from: [
                ("0", "low"),
                ("25", "normal"),
                ("65", "high"),
                ("90", "urgent"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .into(),
            outbound: BTreeMap::new(),
        };
        assert_eq!(m.to_canonical("80"), "high");
        assert_eq!(m.to_canonical("0"), "low");
        assert_eq!(m.to_canonical("99"), "urgent");
        assert_eq!(m.to_canonical("P1"), "P1");
    }

    #[test]
    fn the_text_block_reads_as_people_write() {
        let b = block(
            "{{name}}: {{value}}",
            &pairs(&[("due", "2026-12-08T17:00:00Z"), ("serial_number", "SN-9")]),
        )
        .unwrap();
        assert_eq!(b, "Due: 2026-12-08 17:00 UTC\nSerial number: SN-9\n");
    }
}
