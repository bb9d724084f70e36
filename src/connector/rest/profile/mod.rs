//! A REST profile: everything product-specific about a help desk's API, as
//! data (connectors/*.toml). One engine reads every profile.

pub mod auth;
pub mod checks;
pub mod error;
pub mod fields;
pub mod files;
pub mod format;
pub mod load;
pub mod model;
pub mod pointer_checks;
pub mod pointers;
pub mod rate_limit;
pub mod requests;
pub mod statuses;
pub mod webhook;

pub use auth::{Auth, AuthKind, SessionLogin};
pub use error::ProfileError;
pub use files::{FileRead, Files, Multipart, UploadRequest};
pub use format::Format;
pub use load::shipped_names;
pub use model::Profile;
pub use pointers::{JournalPointers, TicketPointers};
pub use rate_limit::{RateLimitHeaders, ResetFormat};
pub use requests::{
    ContentRequest, CreateRequest, FromEnd, HistoryRequest, IdentityRequest, ListRequest, Method,
    PartRequest, Request,
};
pub use statuses::StatusMap;
pub use webhook::{SignatureEncoding, WebhookProfile, WebhookSignature};
