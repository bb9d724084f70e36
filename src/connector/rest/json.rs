//! Reading and writing the products' JSON: values at pointers (with `-1`
//! for an array's last item) as the text ids and statuses are compared
//! by, times as products write them.

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
