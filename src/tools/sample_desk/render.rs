//! A ticket as the desk's staff see it, in text: the demo prints it.

use super::desk::SampleDesk;
use crate::event::Audience;

impl SampleDesk {
    /// The ticket as its staff see it, internal notes marked.
    pub fn render(&self, id: &str) -> String {
        let Some(t) = self.ticket(id) else {
            return format!("{}: no ticket {id}", self.name);
        };
        let mut out = format!("{} #{} \"{}\" [{}]", self.name, t.id, t.subject, t.status);
        if let Some((party, Some(pt))) = &t.partner {
            match &t.partner_status {
                Some(st) => out.push_str(&format!("  (partner: {party} #{pt}, {st})")),
                None => out.push_str(&format!("  (partner: {party} #{pt})")),
            }
        }
        out.push('\n');
        if let Some(p) = &t.priority {
            out.push_str(&format!("    priority: {p}\n"));
        }
        if let Some(d) = &t.due {
            out.push_str(&format!("    due: {}\n", d.format("%Y-%m-%d %H:%M UTC")));
        }
        if !t.fields.is_empty() {
            let f: Vec<String> = t.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("    fields: {}\n", f.join(", ")));
        }
        for c in &t.comments {
            let vis = match c.audience {
                Audience::Public => "public  ",
                Audience::Partner => "partner ",
                Audience::Internal => "internal",
            };
            let files: Vec<String> = c
                .files
                .iter()
                .map(|(n, b)| format!("{n} ({} bytes)", b.len()))
                .collect();
            out.push_str(&format!(
                "    {vis} {}: {}{}\n",
                c.author,
                c.body,
                if files.is_empty() {
                    String::new()
                } else {
                    format!("  [files: {}]", files.join(", "))
                }
            ));
        }
        out
    }
}
