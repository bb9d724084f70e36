//! `{{name}}` templates of a REST profile: in paths (values percent-encoded),
//! in plain text, and in JSON bodies (a string that is exactly one
//! placeholder becomes the value; others are interpolated).

use std::collections::BTreeMap;

/// Values a template may name.
pub type Vars = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{{{0}}}}}")]
    Unknown(String),
    #[error("unclosed placeholder after {0:?}")]
    Unclosed(String),
    #[error("unknown filter |{0} (known: |sql, |int, |html, |django)")]
    Filter(String),
}

/// A placeholder's name and its filter: `{{subject|sql}}` is the value
/// escaped for a single-quoted query string (`'` and `\` backslashed);
/// `{{status|int}}`, alone in a JSON body string, is written as a number
/// (Freshdesk and GLPI refuse a status given as text).
fn split_filter(raw: &str) -> Result<(&str, Option<&str>), TemplateError> {
    match raw.split_once('|').map(|(n, f)| (n.trim(), f.trim())) {
        None => Ok((raw.trim(), None)),
        Some((name, "sql")) => Ok((name, Some("sql"))),
        Some((name, "int")) => Ok((name, Some("int"))),
        Some((name, "html")) => Ok((name, Some("html"))),
        Some((name, "django")) => Ok((name, Some("django"))),
        Some((name, f)) if part_index(f).is_some() => Ok((name, Some(f))),
        Some((_, f)) => Err(TemplateError::Filter(f.to_string())),
    }
}

fn apply_filter(value: &str, filter: Option<&str>) -> String {
    match filter {
        Some("sql") => value.replace('\\', "\\\\").replace('\'', "\\'"),
        // Text into a product that reads HTML (Okdesk): escaped, its line
        // breaks kept.
        Some("html") => value
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\n', "<br>"),
        Some("django") => django_literal(value),
        Some(f) => match part_index(f) {
            Some(n) => value.split('/').nth(n - 1).unwrap_or_default().to_string(),
            None => value.to_string(),
        },
        None => value.to_string(),
    }
}

/// `partN` (1–9): the Nth of a value's parts separated by `/`, for a
/// product value that is several fields at once (ServiceNow's priority is
/// written as its impact and urgency: `"2/1"`).
fn part_index(filter: &str) -> Option<usize> {
    let n: usize = filter.strip_prefix("part")?.parse().ok()?;
    (1..=9).contains(&n).then_some(n)
}

/// Text that the product renders as a Django template (django-helpdesk
/// renders every follow-up): `{{`, `{#`, `{%` and `%}` would be evaluated
/// (a variable printed, a comment dropped, an unclosed tag a 500), so their
/// first character is written as an expression that prints it.
fn django_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('{', Some('{' | '#' | '%')) => out.push_str("{{ \"{\" }}"),
            ('%', Some('}')) => out.push_str("{{ \"%\" }}"),
            _ => out.push(c),
        }
    }
    out
}

/// The placeholder names in `template`, in order.
pub fn placeholders(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError::Unclosed(rest[..start].chars().take(40).collect()))?;
        out.push(split_filter(after[..end].trim())?.0.to_string());
        rest = &after[end + 2..];
    }
    Ok(out)
}

fn render_with(
    template: &str,
    vars: &Vars,
    encode: impl Fn(&str) -> String,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError::Unclosed(rest[..start].chars().take(40).collect()))?;
        let (name, filter) = split_filter(after[..end].trim())?;
        let value = match vars.get(name) {
            Some(v) => v.as_str(),
            // A ticket's field it does not have is empty.
            None if optional(name) => "",
            None => return Err(TemplateError::Unknown(name.to_string())),
        };
        out.push_str(&encode(&apply_filter(value, filter)));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Plain text.
pub fn render_text(template: &str, vars: &Vars) -> Result<String, TemplateError> {
    render_with(template, vars, str::to_string)
}

/// A path with its query: each value percent-encoded as a query or path
/// component, so no value can add a parameter or a path segment.
pub fn render_path(template: &str, vars: &Vars) -> Result<String, TemplateError> {
    render_with(template, vars, |v| {
        url::form_urlencoded::byte_serialize(v.as_bytes())
            .collect::<String>()
            // form encoding writes a space as '+', which a path keeps as '+'
            .replace('+', "%20")
    })
}

/// A JSON body: strings are templates, everything else is kept.
pub fn render_json(
    template: &serde_json::Value,
    vars: &Vars,
) -> Result<serde_json::Value, TemplateError> {
    use serde_json::Value;
    Ok(match template {
        Value::String(s) => match as_int(s, vars)? {
            Some(n) => n,
            None => Value::String(render_text(s, vars)?),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_json(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !absent(v, vars))
                // A key may be a placeholder too: RT names a custom field
                // by its id as a key (`CustomFields: {"3": "..."}`).
                .map(|(k, v)| {
                    let key = if k.contains("{{") {
                        render_text(k, vars)?
                    } else {
                        k.clone()
                    };
                    Ok((key, render_json(v, vars)?))
                })
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// Names of a ticket's fields, which a ticket may lack.
fn optional(name: &str) -> bool {
    matches!(name, "priority" | "due") || name.starts_with("field.")
}

/// A body value that is exactly one placeholder of a field the ticket
/// lacks: left out of the body, so the product applies its own default.
fn absent(v: &serde_json::Value, vars: &Vars) -> bool {
    let Some(inner) = v
        .as_str()
        .map(str::trim)
        .and_then(|t| t.strip_prefix("{{"))
        .and_then(|r| r.strip_suffix("}}"))
    else {
        return false;
    };
    if inner.contains("{{") || inner.contains("}}") {
        return false;
    }
    let name = split_filter(inner).map_or(inner.trim(), |(n, _)| n);
    optional(name) && vars.get(name).is_none_or(|v| v.is_empty())
}

/// A body string that is exactly one `{{name|int}}`: its value as a JSON
/// number (or as text when it is not one, for the product to refuse).
fn as_int(s: &str, vars: &Vars) -> Result<Option<serde_json::Value>, TemplateError> {
    let t = s.trim();
    let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) else {
        return Ok(None);
    };
    if inner.contains("{{") || inner.contains("}}") {
        return Ok(None);
    }
    let (name, filter) = split_filter(inner)?;
    if filter != Some("int") {
        return Ok(None);
    }
    let value = match vars.get(name) {
        Some(v) => v,
        None if optional(name) => return Ok(Some(serde_json::Value::Null)),
        None => return Err(TemplateError::Unknown(name.to_string())),
    };
    Ok(Some(match value.trim().parse::<i64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::String(value.clone()),
    }))
}

/// Every string template inside a JSON body.
pub fn json_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|i| json_strings(i, out)),
        serde_json::Value::Object(map) => map.iter().for_each(|(k, i)| {
            if k.contains("{{") {
                out.push(k.clone());
            }
            json_strings(i, out)
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn django_filter_keeps_template_syntax_literal() {
        // What django-helpdesk 2.6.1 stored, rendered, for this escaped text
        // was the original text (checked on the live instance).
        assert_eq!(
            django_literal("a {{ t }} {# x #} {% a %} b %} {{{ <&>"),
            r#"a {{ "{" }}{ t }} {{ "{" }}# x #} {{ "{" }}% a {{ "%" }}} b {{ "%" }}} {{ "{" }}{{ "{" }}{ <&>"#
        );
        assert_eq!(django_literal("plain { } % text"), "plain { } % text");
        assert_eq!(
            split_filter("text|django").unwrap(),
            ("text", Some("django"))
        );
    }

    #[test]
    fn part_filters_split_a_value_of_several_fields() {
        let body = json!({"impact": "{{value|part1}}", "urgency": "{{value|part2}}"});
        assert_eq!(
            render_json(&body, &vars(&[("value", "2/1")])).unwrap(),
            json!({"impact": "2", "urgency": "1"})
        );
        assert!(split_filter("value|part0").is_err());
        assert!(split_filter("value|partx").is_err());
    }

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn path_values_are_encoded_and_cannot_add_parameters() {
        let v = vars(&[
            ("project", "acme&status_id=5"),
            ("since", "2024-05-01T10:00:00Z"),
            ("marker", "[deskbridge:0190]"),
        ]);
        assert_eq!(
            render_path(
                "/issues.json?project_id={{project}}&updated_on=%3E%3D{{since}}&d=~{{ marker }}",
                &v
            )
            .unwrap(),
            "/issues.json?project_id=acme%26status_id%3D5&updated_on=%3E%3D2024-05-01T10%3A00%3A00Z&d=~%5Bdeskbridge%3A0190%5D"
        );
        assert_eq!(
            render_path("/issues/{{ticket}}.json", &vars(&[("ticket", "1 2/3")])).unwrap(),
            "/issues/1%202%2F3.json"
        );
    }

    #[test]
    fn json_bodies_keep_types_and_escape_text() {
        let body =
            json!({"issue": {"notes": "{{text}}", "private_notes": true, "ids": ["{{a}}-x"]}});
        let v = vars(&[("text", "He said \"no\"\n{{a}}"), ("a", "7")]);
        assert_eq!(
            render_json(&body, &v).unwrap(),
            json!({"issue": {"notes": "He said \"no\"\n{{a}}", "private_notes": true, "ids": ["7-x"]}})
        );
    }

    #[test]
    fn int_filter_writes_a_number_in_bodies_only() {
        let body =
            json!({"status": "{{status|int}}", "note": "s={{status|int}}", "id": "{{ticket|int}}"});
        let v = vars(&[("status", "4"), ("ticket", "INC-1")]);
        assert_eq!(
            render_json(&body, &v).unwrap(),
            json!({"status": 4, "note": "s=4", "id": "INC-1"})
        );
        assert_eq!(render_path("/t/{{status|int}}", &v).unwrap(), "/t/4");
    }

    #[test]
    fn html_filter_escapes_and_keeps_line_breaks() {
        let v = vars(&[("body", "a <b> & \"c\"\nnext")]);
        assert_eq!(
            render_text("{{body|html}}<br>", &v).unwrap(),
            "a &lt;b&gt; &amp; &quot;c&quot;<br>next<br>"
        );
    }

    #[test]
    fn sql_filter_escapes_quotes_and_backslashes() {
        let v = vars(&[("subject", r"it's \ x")]);
        assert_eq!(
            render_text("Subject='{{subject|sql}}'", &v).unwrap(),
            r"Subject='it\'s \\ x'"
        );
        assert_eq!(
            placeholders("{{ subject | sql }}").unwrap(),
            vec!["subject"]
        );
        assert_eq!(
            placeholders("{{subject|upper}}"),
            Err(TemplateError::Filter("upper".into()))
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_errors() {
        assert_eq!(
            render_text("a {{nope}}", &Vars::new()),
            Err(TemplateError::Unknown("nope".into()))
        );
        assert!(matches!(
            render_text("a {{x", &vars(&[("x", "1")])),
            Err(TemplateError::Unclosed(_))
        ));
        assert_eq!(
            placeholders("/{{a}}/{{ b }}?c={{c}}").unwrap(),
            vec!["a", "b", "c"]
        );
    }
}
