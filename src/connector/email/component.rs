//! What a mail endpoint builds: the SMTP sink and, with `[imap]`, the
//! mailbox reader, sharing the endpoint's threads.

use super::config::EmailConfig;
use super::endpoint::MailEndpoint;
use super::poll::MailPoller;
use super::sink::MailSink;
use crate::connector::component::{Boards, Build, Component, Context, Parts};
use crate::connector::error::BuildError;
use crate::connector::sink::Sink;
use crate::connector::source::{Output, Source};
use std::sync::Arc;

struct Mail {
    ep: Arc<MailEndpoint>,
    sink: Arc<MailSink>,
}

impl Build for EmailConfig {
    fn build(&self, cx: &Context) -> Result<Box<dyn Component>, BuildError> {
        let ep = Arc::new(MailEndpoint::from_config(cx.name, self, cx.data_dir));
        let sink = Arc::new(MailSink::new(ep.clone())?);
        Ok(Box::new(Mail { ep, sink }))
    }
}

impl Component for Mail {
    fn sink(&self) -> Option<Arc<dyn Sink>> {
        Some(self.sink.clone())
    }
    fn sources(&self, out: &Output, boards: &Boards) -> Parts {
        let mut parts = Parts::default();
        if self.ep.cfg.imap.is_some() {
            let reader: Box<dyn Source> = Box::new(MailPoller {
                ep: self.ep.clone(),
                ingest: out.ingest.clone(),
                store: out.store.clone(),
                blobs: out.blobs.clone(),
                board: boards.mailboxes.clone(),
            });
            parts.readers.push(reader);
        }
        parts
    }
}
