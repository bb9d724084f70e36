//! The registry: builds each endpoint's connector from the configuration,
//! every kind the same way (`component::Build`). The kinds themselves are
//! listed once, in `connector::kinds`.

use super::component::{Boards, Build, Component, Context};
use super::email::endpoint::MailboxBoard;
use super::error::BuildError;
use super::rest::poll::PollBoard;
use super::sink::Sink;
use super::source::{Hook, Output, Source};
use crate::config::endpoint::Connector;
use crate::config::load::Config;
use std::collections::HashMap;
use std::sync::Arc;

/// The connectors of a configuration, built once at start.
pub struct Registry {
    /// A sink per endpoint that can receive.
    pub sinks: HashMap<String, Arc<dyn Sink>>,
    components: Vec<(String, Box<dyn Component>)>,
}

/// The sources of a configuration, ready to run.
pub struct Sources {
    /// Readers, each run as a task of its own.
    pub readers: Vec<Box<dyn Source>>,
    /// What answers `POST /hooks/{endpoint}`, by endpoint.
    pub hooks: HashMap<String, Arc<dyn Hook>>,
    /// What the REST pollers did, for `deskbridge status`.
    pub pollers: PollBoard,
    /// What the mailbox readers did.
    pub mailboxes: MailboxBoard,
}

macro_rules! builder {
    ($($key:ident $Var:ident $doc:literal $Cfg:path,)*) => {
        /// The kind's table as what builds it.
        fn builder(c: &Connector) -> &dyn Build {
            match c {
                $(Connector::$Var(cfg) => cfg,)*
            }
        }
    };
}
super::kinds::with_kinds!(builder);

impl Registry {
    pub fn build(config: &Config) -> Result<Registry, BuildError> {
        let mut r = Registry {
            sinks: HashMap::new(),
            components: Vec::new(),
        };
        for (name, ep) in &config.endpoints {
            let cx = Context {
                name,
                data_dir: &config.daemon.data_dir,
                service_account: ep.service_account.as_deref(),
            };
            let c = builder(&ep.connector).build(&cx)?;
            if let Some(sink) = c.sink() {
                r.sinks.insert(name.clone(), sink);
            }
            r.components.push((name.clone(), c));
        }
        Ok(r)
    }

    /// Every endpoint's sources, feeding `out`.
    pub fn sources(&self, out: &Output) -> Sources {
        let boards = Boards::default();
        let mut s = Sources {
            readers: Vec::new(),
            hooks: HashMap::new(),
            pollers: boards.pollers.clone(),
            mailboxes: boards.mailboxes.clone(),
        };
        for (name, c) in &self.components {
            let parts = c.sources(out, &boards);
            s.readers.extend(parts.readers);
            if let Some(hook) = parts.hook {
                s.hooks.insert(name.clone(), hook);
            }
        }
        s
    }
}
