//! How deskbridge authenticates to the product: a header, a token, a
//! login and password, or a session opened with the credential.

use super::requests::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// The credential in the header `name`.
    Header,
    /// `Authorization: Bearer <credential>`.
    Bearer,
    /// `Authorization: Basic`, the endpoint's `username` and the credential.
    Basic,
    /// The credential in the query parameter `name`.
    Query,
    /// A session opened with the credential (`auth.session`), its token
    /// sent on every request and opened again when refused (GLPI).
    Session,
}

/// How a session is opened: one request whose headers carry the
/// credential (`{{credential}}`), and where its token is in the answer.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionLogin {
    pub method: Method,
    pub path: String,
    /// Headers of the login request: templates with `{{credential}}` and
    /// the endpoint's settings.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Pointer to the session token in the answer.
    pub token: String,
    /// The header that carries the token afterwards.
    pub header: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub kind: AuthKind,
    /// Header or query parameter name (for `header` and `query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Written before the credential in the header (`"token "` for
    /// `Authorization: token ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// With `basic`: a fixed password, the credential being the user name
    /// (Freshdesk's API key with the password `X`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// With `session`: how the session is opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionLogin>,
    /// Headers sent with every request (the login included): templates
    /// with the endpoint's settings (GLPI's `App-Token`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}
