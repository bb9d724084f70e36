//! The webhooks a product can send to wake the poll, and how it signs them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookProfile {
    /// How an administrator makes the product send them, in words.
    pub setup: String,
    /// Pointer to the ticket's id in the product's payload (for the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// How the product signs its webhooks with the endpoint's
    /// `webhook_secret`. Without it, the secret is a token the product
    /// sends as `?token=` in the URL or in the `X-Deskbridge-Token` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<WebhookSignature>,
}

/// HMAC-SHA256 of (the timestamp header's value, when named, then) the
/// body, in a header.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSignature {
    /// The header carrying the signature.
    pub header: String,
    /// A header whose value is signed before the body (Zendesk's
    /// `X-Zendesk-Webhook-Signature-Timestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    pub encoding: SignatureEncoding,
    /// Text before the signature in the header (`sha256=`).
    #[serde(default)]
    pub prefix: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    Base64,
    Hex,
}
