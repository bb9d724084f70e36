//! What each reader (a poller, a mailbox) did, per endpoint, for
//! `deskbridge status`.

use std::sync::Arc;

/// What a reader did, per endpoint, for `deskbridge status`.
pub type Board<T> = Arc<std::sync::Mutex<std::collections::BTreeMap<String, T>>>;

/// Changes `endpoint`'s entry of `board` (a default one first).
pub fn with_entry<T: Default>(board: &Board<T>, endpoint: &str, f: impl FnOnce(&mut T)) {
    let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
    f(b.entry(endpoint.to_string()).or_default());
}

/// A copy of every entry of `board`.
pub fn snapshot<T: Clone>(board: &Board<T>) -> std::collections::BTreeMap<String, T> {
    board.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
