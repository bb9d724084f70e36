//! What a REST endpoint builds: one client and rate limit shared by its
//! sink, its poller and the hook its product may call.

use super::config::RestConfig;
use super::endpoint::RestEndpoint;
use super::poll::Poller;
use super::sink::RestSink;
use super::source::ProductHook;
use crate::connector::component::{Boards, Build, Component, Context, Parts};
use crate::connector::error::BuildError;
use crate::connector::sink::Sink;
use crate::connector::source::Output;
use std::sync::Arc;

struct Rest {
    ep: Arc<RestEndpoint>,
    service_account: String,
}

impl Build for RestConfig {
    fn build(&self, cx: &Context) -> Result<Box<dyn Component>, BuildError> {
        Ok(Box::new(Rest {
            ep: RestEndpoint::from_config(cx.name, self)?,
            service_account: cx.service_account.unwrap_or_default().to_string(),
        }))
    }
}

impl Component for Rest {
    fn sink(&self) -> Option<Arc<dyn Sink>> {
        Some(Arc::new(RestSink {
            ep: self.ep.clone(),
        }))
    }
    fn sources(&self, out: &Output, boards: &Boards) -> Parts {
        Parts {
            readers: vec![Box::new(Poller {
                board: boards.pollers.clone(),
                ep: self.ep.clone(),
                ingest: out.ingest.clone(),
                store: out.store.clone(),
                blobs: out.blobs.clone(),
                service_account: self.service_account.clone(),
            })],
            hook: Some(Arc::new(ProductHook {
                ep: self.ep.clone(),
                board: boards.pollers.clone(),
                refusals: Default::default(),
            })),
        }
    }
}
