//! The e-mail source: the mailbox reader (IMAP) turns replies into events.

use super::poll::MailPoller;
use crate::connector::source::Source;
use futures::future::BoxFuture;
use tokio::sync::watch;

impl Source for MailPoller {
    fn run(self: Box<Self>, shutdown: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin((*self).run(shutdown))
    }
}
