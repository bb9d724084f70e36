//! The connector kinds: one line each. A kind is its folder under
//! `connector/` (a config implementing `KindConfig`, a `Build` that makes
//! its sink and sources) plus its line here; the endpoint config, its
//! schema and the registry are generated from this list.

/// Calls macro `$then!` with every kind: its name in the file (the value
/// of `kind` and the name of its table), its variant, what the schema
/// says of it, and its config type.
macro_rules! with_kinds {
    ($then:ident) => {
        $then! {
            webhook Webhook "A partner that posts and receives events over HTTP." $crate::connector::webhook::config::WebhookConfig,
            rest Rest "A help desk's REST API, described by a profile (connectors/*.toml)." $crate::connector::rest::config::RestConfig,
            email Email "A partner reached by e-mail: SMTP out, IMAP in." $crate::connector::email::config::EmailConfig,
        }
    };
}
pub(crate) use with_kinds;
