//! How a change deskbridge made is named on both sides: the sink records
//! the id, and the poller gives the change it reads back the same one, so
//! ingest knows it for deskbridge's echo.

/// How a ticket's status at one update time is named, by the sink that set
/// it and by the poller that sees it (`journal.status_field` unset).
pub fn status_source_id(ticket: &str, updated_at: &str) -> String {
    format!("status-{ticket}@{updated_at}")
}
