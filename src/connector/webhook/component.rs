//! What a webhook endpoint builds: a signed sink when it has a `url`, and
//! the hook that takes its partner's signed events.

use super::config::WebhookConfig;
use super::sign::Secret;
use super::sink::WebhookSink;
use super::source::{inbound_secrets, WebhookSource};
use crate::connector::component::{Boards, Build, Component, Context, Parts};
use crate::connector::error::BuildError;
use crate::connector::sink::Sink;
use crate::connector::source::Output;
use std::sync::Arc;

struct Webhook {
    name: String,
    config: WebhookConfig,
    /// Read once at start.
    secrets: Vec<Secret>,
    sink: Option<Arc<WebhookSink>>,
}

impl Build for WebhookConfig {
    fn build(&self, cx: &Context) -> Result<Box<dyn Component>, BuildError> {
        Ok(Box::new(Webhook {
            name: cx.name.to_string(),
            config: self.clone(),
            secrets: inbound_secrets(cx.name, self)?,
            sink: WebhookSink::from_config(cx.name, self)?.map(Arc::new),
        }))
    }
}

impl Component for Webhook {
    fn sink(&self) -> Option<Arc<dyn Sink>> {
        self.sink.clone().map(|s| s as Arc<dyn Sink>)
    }
    fn sources(&self, out: &Output, _: &Boards) -> Parts {
        Parts {
            readers: Vec::new(),
            hook: Some(Arc::new(WebhookSource {
                endpoint: self.name.clone(),
                config: self.config.clone(),
                secrets: self.secrets.clone(),
                ingest: out.ingest.clone(),
                refusals: Default::default(),
            })),
        }
    }
}
