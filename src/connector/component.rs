//! A connector kind as a component: from an endpoint's table it builds
//! the endpoint's sink (if it can receive) and its sources, so the
//! registry builds every kind the same way.

use super::email::endpoint::MailboxBoard;
use super::error::BuildError;
use super::rest::poll::PollBoard;
use super::sink::Sink;
use super::source::{Hook, Output, Source};
use std::path::Path;
use std::sync::Arc;

/// What a kind is given to build one endpoint.
pub struct Context<'a> {
    /// The endpoint's id (the key of `[endpoints]`).
    pub name: &'a str,
    pub data_dir: &'a Path,
    /// The login deskbridge writes as in the endpoint's system.
    pub service_account: Option<&'a str>,
}

/// The status boards sources report to, shared by the endpoints of a
/// kind and read by `deskbridge status`.
#[derive(Clone, Default)]
pub struct Boards {
    pub pollers: PollBoard,
    pub mailboxes: MailboxBoard,
}

/// An endpoint's sources, ready to run.
#[derive(Default)]
pub struct Parts {
    /// Readers, each run as a task of its own.
    pub readers: Vec<Box<dyn Source>>,
    /// What answers `POST /hooks/{endpoint}`.
    pub hook: Option<Arc<dyn Hook>>,
}

/// One endpoint's connector, built at start: what its sink and its
/// sources share (a REST endpoint's client and rate limit, a mailbox's
/// threads) is built once here.
pub trait Component: Send + Sync {
    /// The sink, when the endpoint can receive.
    fn sink(&self) -> Option<Arc<dyn Sink>>;
    /// The sources, feeding `out`.
    fn sources(&self, out: &Output, boards: &Boards) -> Parts;
}

/// A kind's config table builds its component. A missing secret or a bad
/// file stops the start before anything is opened.
pub trait Build {
    fn build(&self, cx: &Context) -> Result<Box<dyn Component>, BuildError>;
}
