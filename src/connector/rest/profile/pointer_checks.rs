//! The pointer checks of a profile: every JSON pointer it gives starts
//! with '/' (or, where a whole answer may be meant, is empty), and flags
//! that exclude each other are not both given. Part of `checks`.

use super::files::FileRead;
use super::model::Profile;

impl Profile {
    /// Pointers that are no JSON pointers, and flags given both ways.
    pub(super) fn pointer_problems(&self, p: &mut Vec<String>) {
        let slash = "/".to_string();
        // Arrays may be the whole answer (Freshdesk's conversations).
        for (at, ptr) in [
            ("journal.changes", &self.journal.changes),
            ("journal.list", &self.journal.list),
            ("ticket.list", &self.ticket.list),
        ] {
            if !ptr.is_empty() && !ptr.starts_with('/') {
                p.push(format!(
                    "{at}: a JSON pointer starts with '/' or is empty (got {ptr:?})"
                ));
            }
        }
        if self.journal.internal.is_some() && self.journal.public.is_some() {
            p.push("journal.internal, journal.public: give one of them".into());
        }
        let lp = &self.list_changes;
        let count = lp.from_end.as_ref().map(|f| f.count.clone());
        for (at, ptr) in [
            ("list_changes.list", &lp.list),
            ("list_changes.id", &lp.id),
            ("list_changes.updated_at", &lp.updated_at),
            ("list_changes.entries", &lp.entries),
            ("list_changes.from_end.count", &count),
            ("journal.status_value", &self.journal.status_value),
        ] {
            if let Some(ptr) = ptr {
                if !ptr.is_empty() && !ptr.starts_with('/') {
                    p.push(format!(
                        "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                    ));
                }
            }
        }
        let status_ptrs = if self.journal.status_field.is_some() {
            vec![
                ("journal.change_field", &self.journal.change_field),
                ("journal.change_value", &self.journal.change_value),
            ]
        } else {
            vec![]
        };
        let pointers = [
            ("create_ticket.ticket_id", &self.create_ticket.ticket_id),
            ("ticket.id", &self.ticket.id),
            ("ticket.subject", &self.ticket.subject),
            ("ticket.description", &self.ticket.description),
            ("ticket.status", &self.ticket.status),
            ("ticket.author_id", &self.ticket.author_id),
            ("ticket.author_name", &self.ticket.author_name),
            ("ticket.created_at", &self.ticket.created_at),
            ("ticket.updated_at", &self.ticket.updated_at),
            ("journal.id", &self.journal.id),
            ("journal.author_id", &self.journal.author_id),
            ("journal.author_name", &self.journal.author_name),
            ("journal.created_at", &self.journal.created_at),
            ("journal.text", &self.journal.text),
            (
                "journal.internal",
                self.journal.internal.as_ref().unwrap_or(&slash),
            ),
            (
                "journal.public",
                self.journal.public.as_ref().unwrap_or(&slash),
            ),
            ("journal.kind", self.journal.kind.as_ref().unwrap_or(&slash)),
        ];
        let identity_ptrs = if self.identity.path.is_some() {
            vec![
                ("identity.user_id", &self.identity.user_id),
                ("identity.login", &self.identity.login),
            ]
        } else {
            vec![]
        };
        for (at, ptr) in pointers.into_iter().chain(status_ptrs).chain(identity_ptrs) {
            if !ptr.starts_with('/') {
                p.push(format!(
                    "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                ));
            }
        }
        if !self.ticket.root.is_empty() && !self.ticket.root.starts_with('/') {
            p.push(format!(
                "ticket.root: a JSON pointer starts with '/' or is empty (got {:?})",
                self.ticket.root
            ));
        }
    }
}

impl FileRead {
    pub(super) fn problems(&self, entry_content: bool) -> Vec<String> {
        let mut p = Vec::new();
        let mut pointers = vec![
            ("files.read.entry_id", Some(&self.entry_id)),
            ("files.read.name", Some(&self.name)),
            ("files.read.content_type", Some(&self.content_type)),
            ("files.read.entry_list", self.entry_list.as_ref()),
            ("files.read.when", self.when.as_ref()),
            ("files.read.ticket_list", self.ticket_list.as_ref()),
            ("files.read.id", self.id.as_ref()),
            ("files.read.size", self.size.as_ref()),
            ("files.read.url", self.url.as_ref()),
            ("files.read.content", self.content.as_ref()),
        ];
        for (at, ptr) in pointers.drain(..) {
            if let Some(ptr) = ptr {
                if !ptr.starts_with('/') {
                    p.push(format!(
                        "{at}: a JSON pointer starts with '/' (got {ptr:?})"
                    ));
                }
            }
        }
        if self.entry_list.is_none() && !entry_content {
            p.push("files.read.entry_list: needed without entry_content".into());
        }
        if self.when.is_some() != self.is.is_some() {
            p.push("files.read.when and files.read.is: give both or neither".into());
        }
        if self.ticket_list.is_some() && self.id.is_none() {
            p.push("files.read.id: needed with ticket_list".into());
        }
        match (&self.url, &self.path, &self.content) {
            (Some(_), None, None) | (None, Some(_), _) => {}
            _ => p.push(
                "files.read: give url (the file's address), or path (a request answering the file, or with content its base64)"
                    .into(),
            ),
        }
        for (name, ptr) in &self.path_vars {
            if !ptr.starts_with('/') {
                p.push(format!(
                    "files.read.path_vars.{name}: a JSON pointer starts with '/' (got {ptr:?})"
                ));
            }
        }
        p
    }
}
