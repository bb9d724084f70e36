//! The product's own webhooks. They are checked (a token, or the product's
//! HMAC signature) and then only wake the endpoint's poller: what changed
//! is always read through the API with deskbridge's own credentials. So a
//! webhook never carries content into deskbridge, a forged or replayed one
//! costs one poll, and a lost one costs at most `poll_secs`. Nothing needs
//! storing before the answer: the poll cursor already keeps the place.

use super::profile::{SignatureEncoding, WebhookProfile};
use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header a product may carry the token in (instead of `?token=`).
pub const TOKEN_HEADER: &str = "x-deskbridge-token";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NotifyError {
    #[error("endpoint {0} takes no webhooks: set endpoints.{0}.rest.webhook_secret to let the product wake deskbridge")]
    NotEnabled(String),
    #[error("{0}")]
    Refused(String),
}

/// Checks one webhook; the ticket it names, when the profile says where
/// and the body is JSON. A body the profile cannot read still wakes the
/// poll once the webhook is authentic (a product's automation may send any
/// body; refusing it would only get the webhook paused).
pub fn verify(
    endpoint: &str,
    secret: Option<&str>,
    profile: Option<&WebhookProfile>,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Option<String>, NotifyError> {
    let Some(secret) = secret else {
        return Err(NotifyError::NotEnabled(endpoint.to_string()));
    };
    match profile.and_then(|p| p.signature.as_ref()) {
        Some(sig) => {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let given = header(&sig.header)
                .ok_or_else(|| NotifyError::Refused(format!("no {} header", sig.header)))?;
            let given = given.strip_prefix(sig.prefix.as_str()).ok_or_else(|| {
                NotifyError::Refused(format!(
                    "{} does not start with {:?}",
                    sig.header, sig.prefix
                ))
            })?;
            let given = match sig.encoding {
                SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD
                    .decode(given.trim())
                    .ok(),
                SignatureEncoding::Hex => hex::decode(given.trim()).ok(),
            }
            .ok_or_else(|| {
                NotifyError::Refused(format!("{} is not {:?}", sig.header, sig.encoding))
            })?;
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .expect("HMAC-SHA256 accepts keys of any length");
            if let Some(ts) = &sig.timestamp_header {
                let ts =
                    header(ts).ok_or_else(|| NotifyError::Refused(format!("no {ts} header")))?;
                mac.update(ts.as_bytes());
            }
            mac.update(body);
            // verify_slice compares in constant time.
            mac.verify_slice(&given).map_err(|_| {
                NotifyError::Refused(format!(
                    "the signature in {} does not match (is endpoints.{endpoint}.rest.webhook_secret the product's signing secret?)",
                    sig.header
                ))
            })?;
        }
        None => {
            let from_query = query.and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.into_owned())
            });
            let from_header = headers
                .get(TOKEN_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let Some(given) = from_query.or(from_header) else {
                return Err(NotifyError::Refused(format!(
                    "no token: the product must call /hooks/{endpoint}?token=SECRET or send the {TOKEN_HEADER} header"
                )));
            };
            if !same(given.as_bytes(), secret.as_bytes()) {
                return Err(NotifyError::Refused("wrong token".into()));
            }
        }
    }
    let Some(pointer) = profile.and_then(|p| p.ticket.as_deref()) else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer(pointer).and_then(super::json::as_text)))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::rest::profile::WebhookSignature;

    const SECRET: &str = "0123456789abcdef0123";

    fn token_profile() -> WebhookProfile {
        WebhookProfile {
            setup: String::new(),
            ticket: Some("/ticket/id".into()),
            signature: None,
        }
    }

    #[test]
    fn token_in_query_or_header() {
        let p = token_profile();
        let h = HeaderMap::new();
        let body = br#"{"ticket": {"id": 42}}"#;
        let q = format!("token={SECRET}");
        assert_eq!(
            verify("d", Some(SECRET), Some(&p), &h, Some(&q), body),
            Ok(Some("42".into()))
        );
        let mut h = HeaderMap::new();
        h.insert(TOKEN_HEADER, SECRET.parse().unwrap());
        assert_eq!(verify("d", Some(SECRET), None, &h, None, b"x"), Ok(None));
    }

    #[test]
    fn refusals_say_what_to_fix_and_never_show_the_secret() {
        let p = token_profile();
        let h = HeaderMap::new();
        let body = br#"{"ticket": {"id": 42}}"#;
        let q = format!("token={SECRET}");
        let errors = [
            verify("d", None, Some(&p), &h, None, body).unwrap_err(),
            verify("d", Some(SECRET), Some(&p), &h, None, body).unwrap_err(),
            verify("d", Some(SECRET), Some(&p), &h, Some("token=nope"), body).unwrap_err(),
        ];
        // Authentic but not JSON: it wakes the poll, naming no ticket.
        assert_eq!(
            verify("d", Some(SECRET), Some(&p), &h, Some(&q), b"<html>"),
            Ok(None)
        );
        assert!(
            errors[0]
                .to_string()
                .contains("endpoints.d.rest.webhook_secret"),
            "{}",
            errors[0]
        );
        assert!(errors[1].to_string().contains("?token="), "{}", errors[1]);
        assert_eq!(errors[2], NotifyError::Refused("wrong token".into()));
        for e in &errors {
            assert!(!e.to_string().contains(SECRET), "{e}");
        }
    }

    #[test]
    fn hmac_signature_with_timestamp_base64() {
        // Zendesk: base64(HMAC-SHA256(secret, timestamp + body)).
        let p = WebhookProfile {
            setup: String::new(),
            ticket: Some("/detail/id".into()),
            signature: Some(WebhookSignature {
                header: "X-Zendesk-Webhook-Signature".into(),
                timestamp_header: Some("X-Zendesk-Webhook-Signature-Timestamp".into()),
                encoding: SignatureEncoding::Base64,
                prefix: String::new(),
            }),
        };
        let body = br#"{"detail": {"id": "35436"}}"#;
        let ts = "2024-05-01T10:00:00Z";
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(ts.as_bytes());
        mac.update(body);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let mut h = HeaderMap::new();
        h.insert("X-Zendesk-Webhook-Signature", sig.parse().unwrap());
        h.insert("X-Zendesk-Webhook-Signature-Timestamp", ts.parse().unwrap());
        assert_eq!(
            verify("z", Some(SECRET), Some(&p), &h, None, body),
            Ok(Some("35436".into()))
        );
        // A token is no substitute for the signature.
        let q = format!("token={SECRET}");
        let e = verify(
            "z",
            Some(SECRET),
            Some(&p),
            &HeaderMap::new(),
            Some(&q),
            body,
        );
        assert!(e.is_err());
        // Another body, or another time, does not match.
        let e = verify(
            "z",
            Some(SECRET),
            Some(&p),
            &h,
            None,
            br#"{"detail": {"id": "1"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        h.insert(
            "X-Zendesk-Webhook-Signature-Timestamp",
            "2024-05-01T10:00:01Z".parse().unwrap(),
        );
        assert!(verify("z", Some(SECRET), Some(&p), &h, None, body).is_err());
    }

    #[test]
    fn hmac_signature_hex_with_prefix() {
        let p = WebhookProfile {
            setup: String::new(),
            ticket: None,
            signature: Some(WebhookSignature {
                header: "X-Hub-Signature".into(),
                timestamp_header: None,
                encoding: SignatureEncoding::Hex,
                prefix: "sha256=".into(),
            }),
        };
        let body = b"{}";
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut h = HeaderMap::new();
        h.insert("X-Hub-Signature", sig.parse().unwrap());
        assert_eq!(
            verify("j", Some(SECRET), Some(&p), &h, None, body),
            Ok(None)
        );
        h.insert(
            "X-Hub-Signature",
            sig.replace("sha256=", "").parse().unwrap(),
        );
        let e = verify("j", Some(SECRET), Some(&p), &h, None, body).unwrap_err();
        assert!(e.to_string().contains("does not start with"), "{e}");
    }
}
