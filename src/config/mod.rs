//! The TOML configuration: parties, endpoints, transfer rules and visibility
//! policies. Unknown fields are errors; every problem is reported with its
//! path in the file so the operator knows what to fix.

pub mod bus;
pub mod bus_error;
pub mod daemon;
pub mod endpoint;
pub mod load;
pub mod policy;
pub mod secret;

pub use crate::connector::rest::config::RestConfig;
pub use crate::connector::webhook::config::{WebhookConfig, WebhookMapping};
pub use bus::{read_ca_file, BusConfig, BusKind, ClientCertificate};
pub use bus_error::{BusSetupError, CaFileError, ClientCertificateError};
pub use daemon::{DaemonConfig, ListenerConfig};
pub use endpoint::{Connector, ConnectorKind, EndpointConfig, PartyConfig, Role};
pub use load::{Config, ConfigError};
pub use policy::{Condition, Landing, PolicyConfig, TransferRule};
pub use secret::{SecretError, SecretSource};
