//! The checks a profile passes before it is used: every template names
//! only what it may, every pointer is a pointer, and options that go
//! together are given together. Problems are named by their path in the
//! profile.

use super::auth::AuthKind;
use super::fields::PRIORITIES;
use super::model::Profile;
use crate::connector::rest::template::{self, TemplateError};

/// The variables each template may use, besides the endpoint's settings.
const TICKET_VARS: &[&str] = &["ticket"];
/// What a new ticket's templates may name: its fields (the product's own
/// values of priority and due; `field.site` and the like as sent; `fields`
/// the text block of those with no place in the product).
const TICKET_FIELD_VARS: &[&str] = &[
    "subject",
    "description",
    "marker",
    "priority",
    "due",
    "fields",
    "field.*",
];

/// The problems found so far: `now` in the order found, `later` reported
/// after them (the order operators have always seen them in).
struct Problems<'a> {
    settings: Vec<&'a str>,
    now: Vec<String>,
    later: Vec<String>,
}

impl Problems<'_> {
    /// Each template may name only the profile's settings and `extra`.
    fn templates(&mut self, at: &str, templates: Vec<String>, extra: &[&str]) {
        for t in templates {
            match template::placeholders(&t) {
                Err(e) => self.now.push(format!("{at}: {e}")),
                Ok(names) => {
                    for n in names {
                        // `field.*`: any field of the ticket, by name.
                        let any_field = n.starts_with("field.") && extra.contains(&"field.*");
                        if !self.settings.contains(&n.as_str())
                            && !extra.contains(&n.as_str())
                            && !any_field
                        {
                            self.now
                                .push(format!("{at}: {}", TemplateError::Unknown(n.clone())));
                        }
                    }
                }
            }
        }
    }
}

/// A request's path and the strings of its body: its templates.
fn with_body(path: &str, body: &Option<serde_json::Value>) -> Vec<String> {
    let mut all = vec![path.to_string()];
    if let Some(b) = body {
        template::json_strings(b, &mut all);
    }
    all
}

impl Profile {
    /// Every problem of the profile, by its path in it.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut pr = Problems {
            settings: self.setting_names(),
            now: Vec::new(),
            later: Vec::new(),
        };
        self.auth_kind_problems(&mut pr);
        self.request_problems(&mut pr);
        self.journal_kind_problems(&mut pr);
        self.auth_problems(&mut pr);
        self.identity_problems(&mut pr);
        self.format_problems(&mut pr);
        self.field_problems(&mut pr);
        self.priority_problems(&mut pr);
        pr.templates(
            "format.comment",
            vec![self.format.comment.clone()],
            &["body", "sender", "marker"],
        );
        self.file_problems(&mut pr);
        let mut p = pr.now;
        p.append(&mut pr.later);
        self.marker_problems(&mut p);
        self.pointer_problems(&mut p);
        if let Some(r) = &self.rate_limit {
            p.extend(r.problems());
        }
        p
    }

    /// `auth.kind` with what it needs.
    fn auth_kind_problems(&self, pr: &mut Problems) {
        if matches!(self.auth.kind, AuthKind::Header | AuthKind::Query) && self.auth.name.is_none()
        {
            pr.now
                .push("auth.name: needed with kind header or query".into());
        }
        match (&self.auth.session, self.auth.kind) {
            (None, AuthKind::Session) => {
                pr.now.push("auth.session: needed with kind session".into())
            }
            (Some(_), k) if k != AuthKind::Session => {
                pr.now.push("auth.session: only with kind session".into())
            }
            _ => {}
        }
    }

    /// The requests' templates, the history's and entry content's.
    fn request_problems(&self, pr: &mut Problems) {
        pr.templates(
            "create_ticket",
            with_body(&self.create_ticket.path, &self.create_ticket.body),
            TICKET_FIELD_VARS,
        );
        pr.templates(
            "find_ticket",
            vec![self.find_ticket.path.clone()],
            &["marker", "subject"],
        );
        pr.templates(
            "add_comment",
            with_body(&self.add_comment.path, &self.add_comment.body),
            &["ticket", "text"],
        );
        pr.templates(
            "add_internal_note",
            with_body(&self.add_internal_note.path, &self.add_internal_note.body),
            &["ticket", "text"],
        );
        pr.templates(
            "set_status",
            with_body(&self.set_status.path, &self.set_status.body),
            &["ticket", "status"],
        );
        pr.templates(
            "read_ticket",
            with_body(&self.read_ticket.path, &self.read_ticket.body),
            TICKET_VARS,
        );
        pr.templates(
            "list_changes",
            vec![self.list_changes.path.clone()],
            &["since", "offset", "page", "limit", "last"],
        );
        if let Some(h) = &self.history {
            pr.templates(
                "history",
                vec![h.path.clone()],
                &["ticket", "page", "offset", "limit", "last"],
            );
            if h.page_size == 0 {
                pr.later
                    .push("history.page_size: must be at least 1".into());
            }
        }
        if let Some(c) = &self.entry_content {
            pr.templates("entry_content", vec![c.path.clone()], &["entry"]);
            for (at, ptr) in [
                ("entry_content.list", &c.list),
                ("entry_content.text", &c.text),
                ("entry_content.content_type", &c.content_type),
            ] {
                if !ptr.starts_with('/') {
                    pr.later.push(format!(
                        "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                    ));
                }
            }
            if let Some(part) = &c.part {
                pr.templates("entry_content.part", vec![part.path.clone()], &["part"]);
                for (at, ptr) in [
                    ("entry_content.part.id", &part.id),
                    ("entry_content.part.text", &part.text),
                ] {
                    if !ptr.starts_with('/') {
                        pr.later.push(format!(
                            "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                        ));
                    }
                }
            }
            if !c.kinds.is_empty() && self.journal.kind.is_none() {
                pr.later
                    .push("entry_content.kinds: needs journal.kind".into());
            }
        }
    }

    /// Kinds of entries named where the history has no kind.
    fn journal_kind_problems(&self, pr: &mut Problems) {
        let kinds_used = !self.journal.comment_kinds.is_empty()
            || !self.journal.internal_kinds.is_empty()
            || !self.journal.description_kinds.is_empty();
        if kinds_used && self.journal.kind.is_none() {
            pr.later.push(
                "journal.kind: needed with comment_kinds, internal_kinds or description_kinds"
                    .into(),
            );
        }
    }

    /// The templates of the login and the headers sent with every request.
    fn auth_problems(&self, pr: &mut Problems) {
        let mut auth_templates: Vec<String> = self.auth.headers.values().cloned().collect();
        if let Some(sess) = &self.auth.session {
            auth_templates.push(sess.path.clone());
            auth_templates.extend(sess.headers.values().cloned());
            if !sess.token.starts_with('/') {
                pr.later.push(format!(
                    "auth.session.token: a JSON pointer starts with '/' (got {:?})",
                    sess.token
                ));
            }
        }
        pr.templates("auth", auth_templates, &["credential"]);
    }

    /// How deskbridge learns whom its credentials belong to.
    fn identity_problems(&self, pr: &mut Problems) {
        let id = &self.identity;
        pr.templates(
            "identity",
            id.path.iter().chain(id.user.iter()).cloned().collect(),
            &["service_account"],
        );
        match (&id.method, &id.path, &id.user) {
        (Some(_), Some(_), None) => {}
        (None, None, Some(_)) => {}
        _ => pr.later.push(
            "identity: give method and path (a request, with user_id and login), or user (no request)"
                .into(),
        ),
    }
        if id.kind.is_some() != self.journal.author_kind.is_some() {
            pr.later
                .push("identity.kind and journal.author_kind: give both or neither".into());
        }
    }

    /// The templates of the description, the fields block and a field's note.
    fn format_problems(&self, pr: &mut Problems) {
        pr.templates(
            "format.description",
            vec![self.format.description.clone()],
            TICKET_FIELD_VARS,
        );
        pr.templates(
            "format.field_line",
            vec![self.format.field_line.clone()],
            &["name", "value"],
        );
        pr.templates(
            "format.field_note",
            vec![self.format.field_note.clone()],
            &["sender", "name", "value", "marker"],
        );
        if !self.format.field_note.contains("{{marker}}") {
            pr.later
                .push("format.field_note: must carry {{marker}}".into());
        }
    }

    /// The places of priority, due time and custom fields.
    fn field_problems(&self, pr: &mut Problems) {
        let fp = &self.fields;
        for (at, place) in [("fields.priority", &fp.priority), ("fields.due", &fp.due)] {
            let Some(place) = place else { continue };
            let mut all = vec![];
            template::json_strings(&place.write, &mut all);
            pr.templates(&format!("{at}.write"), all, &["value"]);
            if !place.read.starts_with('/') {
                pr.later.push(format!(
                    "{at}.read: a JSON pointer starts with '/' (got {:?})",
                    place.read
                ));
            }
        }
        if let Some(c) = &fp.custom {
            let mut all = vec![];
            template::json_strings(&c.write, &mut all);
            pr.templates("fields.custom.write", all, &["id", "value"]);
            pr.templates(
                "fields.custom.change",
                c.change.iter().cloned().collect(),
                &["id"],
            );
            match (&c.list, &c.id) {
            (Some(_), Some(_)) => {}
            (None, None) => pr.templates("fields.custom.value", vec![c.value.clone()], &["id"]),
            _ => pr.later.push(
                "fields.custom: give list and id (an array of items), or neither (value names {{id}} in the ticket)"
                    .into(),
            ),
        }
        }
        if let Some(u) = &fp.update {
            pr.templates("fields.update", with_body(&u.path, &u.body), &["ticket"]);
        }
    }

    /// Priorities that map to something other than a canonical one.
    fn priority_problems(&self, pr: &mut Problems) {
        for (at, value) in self
            .priorities
            .outbound
            .keys()
            .map(|k| ("priorities.outbound", k))
            .chain(
                self.priorities
                    .inbound
                    .values()
                    .map(|v| ("priorities.inbound", v)),
            )
            .chain(
                self.priorities
                    .inbound_from
                    .values()
                    .map(|v| ("priorities.inbound_from", v)),
            )
        {
            if !PRIORITIES.contains(&value.as_str()) {
                pr.later.push(format!(
                    "{at}: {value:?} is not a canonical priority ({})",
                    PRIORITIES.join(", ")
                ));
            }
        }
    }

    /// How files are sent and read.
    fn file_problems(&self, pr: &mut Problems) {
        if let Some(f) = &self.files {
            match (&f.attach_at, &f.item, &f.multipart) {
            (Some(_), Some(_), None) => {}
            (None, None, Some(_)) if f.upload.is_none() => {}
            _ => pr.later.push(
                "files: give attach_at and item (files named in the JSON body), or multipart (without upload)"
                    .into(),
            ),
        }
            let mut item = Vec::new();
            if let Some(i) = &f.item {
                template::json_strings(i, &mut item);
            }
            let mut extra = vec!["filename", "content_type", "size"];
            extra.push(if f.upload.is_some() {
                "token"
            } else {
                "content_base64"
            });
            pr.templates("files.item", item.clone(), &extra);
            let names: Vec<String> = item
                .iter()
                .filter_map(|t| template::placeholders(t).ok())
                .flatten()
                .collect();
            let needed = extra[3];
            if f.item.is_some() && !names.iter().any(|n| n == needed) {
                pr.later.push(format!(
                    "files.item: must name {{{{{needed}}}}} (how the file itself is sent)"
                ));
            }
            if item
                .iter()
                .any(|t| t.contains("{{content_base64}}") && t.trim() != "{{content_base64}}")
            {
                pr.later
                    .push("files.item: {{content_base64}} must be alone in its string".into());
            }
            if let Some(u) = &f.upload {
                pr.templates(
                    "files.upload",
                    vec![u.path.clone()],
                    &["filename", "content_type", "size"],
                );
                if !u.token.starts_with('/') {
                    pr.later.push(format!(
                        "files.upload.token: a JSON pointer starts with '/' (got {:?})",
                        u.token
                    ));
                }
            }
            for (key, at) in [
                ("files.attach_at", &f.attach_at),
                ("files.ticket_attach_at", &f.ticket_attach_at),
            ] {
                if let Some(at) = at.as_ref().filter(|a| !a.starts_with('/')) {
                    pr.later.push(format!(
                        "{key}: a JSON pointer starts with '/' (got {at:?})"
                    ));
                }
            }
            // A form sends each top-level field as text: a nested one
            // would arrive as JSON text, which no form reader takes.
            if f.multipart.as_ref().is_some_and(|m| m.json.is_none()) {
                for (at, body) in [
                    ("create_ticket", &self.create_ticket.body),
                    ("add_comment", &self.add_comment.body),
                    ("add_internal_note", &self.add_internal_note.body),
                ] {
                    let fields = body.as_ref().and_then(|b| b.as_object());
                    for (k, v) in fields.into_iter().flatten() {
                        if v.is_object() || v.is_array() {
                            pr.later.push(format!(
                            "{at}.body.{k}: files.multipart without `json` sends each field as a form field, and this one is not flat (give `json`, or a flat body)"
                        ));
                        }
                    }
                }
            }
            if let Some(r) = &f.read {
                pr.later.extend(r.problems(self.entry_content.is_some()));
                if let Some(path) = &r.path {
                    let mut names = vec!["file"];
                    names.extend(r.path_vars.keys().map(String::as_str));
                    pr.templates("files.read.path", vec![path.clone()], &names);
                }
            }
        }
    }

    /// Writes that deskbridge could not recognise as its own, and the list's paging.
    fn marker_problems(&self, p: &mut Vec<String>) {
        for (at, t) in [
            ("format.description", &self.format.description),
            ("format.comment", &self.format.comment),
        ] {
            if !t.contains("{{marker}}") {
                p.push(format!(
                    "{at}: must contain {{{{marker}}}} (how deskbridge finds its own writes)"
                ));
            }
        }
        if self.list_changes.page_size == 0 {
            p.push("list_changes.page_size: must be at least 1".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::shipped_names;
    use super::*;
    use crate::event::Status;

    #[test]
    fn shipped_profiles_are_valid() {
        for name in shipped_names() {
            let p = Profile::load(Some(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
            // every canonical status can be set
            for s in Status::ALL {
                assert!(p.statuses.outbound.contains_key(&s), "{name}: {s}");
            }
        }
    }

    #[test]
    fn file_fields_are_checked_by_path() {
        let redmine = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/redmine.toml"
        ));
        let err = Profile::parse(&redmine.replace("token = \"{{token}}\"", "token = \"x\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("files.item: must name {{token}}"), "{err}");
        let err = Profile::parse(&redmine.replace(
            "filename = \"{{filename}}\"",
            "filename = \"{{content_base64}}\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("files.item: unknown placeholder {{content_base64}}"),
            "{err}"
        );
        let err = Profile::parse(&redmine.replace("url = \"/content_url\"", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("files.read: give url"), "{err}");
        let rt = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/connectors/rt.toml"));
        let err = Profile::parse(&rt.replace("multipart = {", "attach_at = \"/A\"\nmultipart = {"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("files: give attach_at and item"), "{err}");
        // A form's fields must be flat.
        let freshdesk = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/freshdesk.toml"
        ));
        let err = Profile::parse(&freshdesk.replace(
            "[create_ticket.body]\n",
            "[create_ticket.body]\ncc_emails = [\"a@example.net\"]\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("create_ticket.body.cc_emails: files.multipart without `json`"),
            "{err}"
        );
    }

    #[test]
    fn problems_are_named_by_path() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/connectors/redmine.toml"
        ))
        .replace("\"/issues/{{ticket}}.json\"", "\"/issues/{{tiket}}.json\"")
        .replace(
            "comment = \"{{sender}} wrote:\\n\\n{{body}}\\n\\n{{marker}}\"",
            "comment = \"{{body}}\"",
        );
        let err = Profile::parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("add_comment: unknown placeholder {{tiket}}"),
            "{err}"
        );
        assert!(
            err.contains("format.comment: must contain {{marker}}"),
            "{err}"
        );
        let err = Profile::parse("product = \"x\"\ncolour = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        assert!(Profile::load(Some("nosuch"), None)
            .unwrap_err()
            .to_string()
            .contains("shipped: redmine, rt,"));
    }
}
