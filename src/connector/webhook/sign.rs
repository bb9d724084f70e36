//! Webhook signing and verification per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, MACed with
//! HMAC-SHA256 and sent as `v1,<base64>` in `webhook-signature`. Several
//! space-separated entries may be present so a sender can sign with old and
//! new secrets while rotating.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, PAD, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

const SECRET_PREFIX: &str = "whsec_";
const SIGNATURE_VERSION: &str = "v1";
/// Within the spec's recommended 24..=64 bytes.
const GENERATED_KEY_LEN: usize = 32;

/// Secrets get pasted by hand; tolerate a dropped `=` padding.
const SECRET_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("missing or empty `{0}` header")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` header is not an integer number of unix seconds")]
    BadTimestamp,
    #[error("webhook timestamp is {age_secs}s old, older than the allowed tolerance")]
    Stale { age_secs: i64 },
    #[error("webhook timestamp is {ahead_secs}s in the future, beyond the allowed tolerance")]
    FromFuture { ahead_secs: i64 },
    #[error("no v1 signature in `webhook-signature` matches any configured secret")]
    NoValidSignature,
    /// The reason is always a fixed description, never any part of the input.
    #[error("invalid webhook secret: {0}")]
    BadSecret(String),
}

/// HMAC key bytes. Kept private and redacted from `Debug` so it cannot end up in logs.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// `whsec_<base64>` is decoded; anything else is taken as raw UTF-8 key bytes.
    pub fn parse(s: &str) -> Result<Secret, SignError> {
        let key = match s.strip_prefix(SECRET_PREFIX) {
            // Don't pass the base64 error on: it quotes the offending byte of the secret.
            Some(b64) => SECRET_B64.decode(b64).map_err(|_| {
                SignError::BadSecret("the part after `whsec_` is not valid base64".into())
            })?,
            None => s.as_bytes().to_vec(),
        };
        // An empty HMAC key is accepted by the primitive but makes signatures forgeable.
        if key.is_empty() {
            return Err(SignError::BadSecret("the key is empty".into()));
        }
        Ok(Secret(key))
    }

    /// A fresh random key and its `whsec_` form, for handing to the other side.
    pub fn generate() -> (Secret, String) {
        let mut key = vec![0u8; GENERATED_KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let encoded = format!("{SECRET_PREFIX}{}", STANDARD.encode(&key));
        (Secret(key), encoded)
    }

    /// MAC state over the signed content, not yet finalized, so callers can
    /// check it against several candidate signatures without rehashing the body.
    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.0).expect("HMAC-SHA256 accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Returns the value of the `webhook-signature` header: `v1,<base64>`.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    header_value(secret.mac(id, timestamp, body))
}

/// [`sign`] over a body fed in pieces, for bodies too large to hold whole:
/// `update` with every byte of the body in order, then `finish` gives the
/// same `v1,<base64>` header value as `sign` over the concatenation.
pub struct Signer(HmacSha256);

impl Signer {
    pub fn new(secret: &Secret, id: &str, timestamp: i64) -> Signer {
        Signer(secret.mac(id, timestamp, b""))
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    pub fn finish(self) -> String {
        header_value(self.0)
    }
}

/// No `Debug` derive: the MAC state is derived from the key.
impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

fn header_value(mac: HmacSha256) -> String {
    let tag = mac.finalize().into_bytes();
    format!("{SIGNATURE_VERSION},{}", STANDARD.encode(tag))
}

/// Checks that `timestamp` is within `tolerance_secs` of `now` (either way) and
/// that at least one `v1` entry of `signature` was made by any of `secrets`.
/// Header values are passed as `Option` so a missing header maps to its own error.
pub fn verify(
    secrets: &[Secret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignError> {
    let id = required(id, HEADER_ID)?;
    let timestamp = required(timestamp, HEADER_TIMESTAMP)?;
    let signature = required(signature, HEADER_SIGNATURE)?;

    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignError::BadTimestamp)?;
    let tolerance = tolerance_secs.max(0);
    // Saturating: the timestamp is attacker-controlled and may be near i64 bounds.
    let age = now.saturating_sub(ts);
    if age > tolerance {
        return Err(SignError::Stale { age_secs: age });
    }
    let ahead = ts.saturating_sub(now);
    if ahead > tolerance {
        return Err(SignError::FromFuture { ahead_secs: ahead });
    }

    // Unknown versions and undecodable entries are skipped, not errors: the
    // spec lets senders add other schemes alongside v1.
    let candidates: Vec<Vec<u8>> = signature
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == SIGNATURE_VERSION)
        .filter_map(|(_, b64)| STANDARD.decode(b64).ok())
        .collect();
    if candidates.is_empty() {
        return Err(SignError::NoValidSignature);
    }

    for secret in secrets {
        // The signed content uses the parsed integer, as the reference libraries do.
        let mac = secret.mac(id, ts, body);
        // verify_slice compares in constant time.
        if candidates
            .iter()
            .any(|sig| mac.clone().verify_slice(sig).is_ok())
        {
            return Ok(());
        }
    }
    Err(SignError::NoValidSignature)
}

fn required<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, SignError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(SignError::MissingHeader(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Published Standard Webhooks test vector (also used by the Svix libraries).
    const VEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VEC_TS: i64 = 1614265330;
    const VEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const NOW: i64 = 1_700_000_000;

    fn secret(s: &str) -> Secret {
        Secret::parse(s).unwrap()
    }

    fn check(
        secrets: &[Secret],
        sig: &str,
        body: &[u8],
        ts: i64,
        now: i64,
    ) -> Result<(), SignError> {
        verify(
            secrets,
            Some("msg_1"),
            Some(&ts.to_string()),
            Some(sig),
            body,
            now,
            DEFAULT_TOLERANCE_SECS,
        )
    }

    #[test]
    fn sign_matches_spec_vector() {
        assert_eq!(sign(&secret(VEC_SECRET), VEC_ID, VEC_TS, VEC_BODY), VEC_SIG);
    }

    #[test]
    fn verify_accepts_spec_vector() {
        let ts = VEC_TS.to_string();
        verify(
            &[secret(VEC_SECRET)],
            Some(VEC_ID),
            Some(&ts),
            Some(VEC_SIG),
            VEC_BODY,
            VEC_TS,
            DEFAULT_TOLERANCE_SECS,
        )
        .unwrap();
    }

    #[test]
    fn secret_without_prefix_is_raw_bytes() {
        let raw = secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(raw.0, b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_ne!(sign(&raw, VEC_ID, VEC_TS, VEC_BODY), VEC_SIG);
        let sig = sign(&raw, "msg_1", NOW, b"{}");
        check(&[raw], &sig, b"{}", NOW, NOW).unwrap();
    }

    #[test]
    fn secret_padding_is_optional() {
        // "dGVzdC1rZXk=" is base64 of "test-key".
        assert_eq!(secret("whsec_dGVzdC1rZXk=").0, b"test-key");
        assert_eq!(secret("whsec_dGVzdC1rZXk").0, b"test-key");
    }

    #[test]
    fn bad_secrets_are_rejected_without_echoing_them() {
        for bad in ["whsec_not base64!", "whsec_", ""] {
            let err = Secret::parse(bad).unwrap_err();
            assert!(matches!(err, SignError::BadSecret(_)), "{bad:?}: {err:?}");
            let msg = err.to_string();
            assert!(!msg.contains("not base64!"), "{msg}");
        }
    }

    #[test]
    fn debug_redacts_key() {
        let s = secret("super-secret-key");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s:#?}"), "Secret(***)");
    }

    #[test]
    fn generate_roundtrips_through_whsec_form() {
        let (s, encoded) = Secret::generate();
        assert!(encoded.starts_with("whsec_"));
        let reparsed = secret(&encoded);
        assert_eq!(reparsed.0, s.0);
        assert_eq!(s.0.len(), GENERATED_KEY_LEN);
        let (other, _) = Secret::generate();
        assert_ne!(s.0, other.0);
        let sig = sign(&s, "msg_1", NOW, b"hi");
        check(&[reparsed], &sig, b"hi", NOW, NOW).unwrap();
    }

    #[test]
    fn stale_timestamp_rejected() {
        let s = secret("k");
        let ts = NOW - DEFAULT_TOLERANCE_SECS - 1;
        let sig = sign(&s, "msg_1", ts, b"x");
        assert_eq!(
            check(&[s], &sig, b"x", ts, NOW),
            Err(SignError::Stale {
                age_secs: DEFAULT_TOLERANCE_SECS + 1
            })
        );
    }

    #[test]
    fn future_timestamp_rejected() {
        let s = secret("k");
        let ts = NOW + DEFAULT_TOLERANCE_SECS + 1;
        let sig = sign(&s, "msg_1", ts, b"x");
        assert_eq!(
            check(&[s], &sig, b"x", ts, NOW),
            Err(SignError::FromFuture {
                ahead_secs: DEFAULT_TOLERANCE_SECS + 1
            })
        );
    }

    #[test]
    fn tolerance_edges_are_inclusive() {
        let s = secret("k");
        for ts in [NOW - DEFAULT_TOLERANCE_SECS, NOW + DEFAULT_TOLERANCE_SECS] {
            let sig = sign(&s, "msg_1", ts, b"x");
            check(std::slice::from_ref(&s), &sig, b"x", ts, NOW).unwrap();
        }
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let s = secret("k");
        for (ts, now) in [
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
            (i64::MIN, 0),
            (i64::MAX, 0),
        ] {
            let sig = sign(&s, "msg_1", ts, b"x");
            let err = check(std::slice::from_ref(&s), &sig, b"x", ts, now).unwrap_err();
            assert!(
                matches!(err, SignError::Stale { .. } | SignError::FromFuture { .. }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn bad_timestamp_rejected() {
        let s = secret("k");
        for ts in ["abc", "1.5", "2021-02-25T15:02:10Z", "99999999999999999999"] {
            let err = verify(
                std::slice::from_ref(&s),
                Some("msg_1"),
                Some(ts),
                Some("v1,AAAA"),
                b"",
                NOW,
                300,
            );
            assert_eq!(err, Err(SignError::BadTimestamp), "{ts}");
        }
    }

    #[test]
    fn rotation_accepts_either_secret() {
        let old = secret("old-key");
        let new = secret("new-key");
        let both = [old.clone(), new.clone()];
        for signer in [&old, &new] {
            let sig = sign(signer, "msg_1", NOW, b"body");
            check(&both, &sig, b"body", NOW, NOW).unwrap();
        }
        let stranger = sign(&secret("other-key"), "msg_1", NOW, b"body");
        assert_eq!(
            check(&both, &stranger, b"body", NOW, NOW),
            Err(SignError::NoValidSignature)
        );
        assert_eq!(
            check(&[], &sign(&old, "msg_1", NOW, b"body"), b"body", NOW, NOW),
            Err(SignError::NoValidSignature)
        );
    }

    #[test]
    fn header_with_several_signatures() {
        let s = secret("k");
        let good = sign(&s, "msg_1", NOW, b"body");
        let wrong = sign(&secret("other"), "msg_1", NOW, b"body");
        let good_b64 = good.strip_prefix("v1,").unwrap();
        // Good one last, after a foreign v1, an unknown scheme carrying the same
        // bytes, junk base64 and an entry with no comma.
        let header = format!("{wrong} v1a,{good_b64} v1,!!notb64!! garbage   {good}");
        check(std::slice::from_ref(&s), &header, b"body", NOW, NOW).unwrap();

        // The same bytes under a non-v1 version must not count.
        let header = format!("{wrong} v2,{good_b64}");
        assert_eq!(
            check(&[s], &header, b"body", NOW, NOW),
            Err(SignError::NoValidSignature)
        );
    }

    #[test]
    fn tampered_body_id_or_timestamp_rejected() {
        let s = secret("k");
        let sig = sign(&s, "msg_1", NOW, b"body");
        assert_eq!(
            check(std::slice::from_ref(&s), &sig, b"bodY", NOW, NOW),
            Err(SignError::NoValidSignature)
        );
        assert_eq!(
            check(std::slice::from_ref(&s), &sig, b"body", NOW + 1, NOW),
            Err(SignError::NoValidSignature)
        );
        let ts = NOW.to_string();
        assert_eq!(
            verify(
                &[s],
                Some("msg_2"),
                Some(&ts),
                Some(&sig),
                b"body",
                NOW,
                300
            ),
            Err(SignError::NoValidSignature)
        );
    }

    #[test]
    fn missing_headers_reported_by_name() {
        let s = [secret("k")];
        let ts = NOW.to_string();
        let sig = sign(&s[0], "msg_1", NOW, b"");
        let cases = [
            (None, Some(ts.as_str()), Some(sig.as_str()), HEADER_ID),
            (Some("msg_1"), None, Some(sig.as_str()), HEADER_TIMESTAMP),
            (Some("msg_1"), Some(ts.as_str()), None, HEADER_SIGNATURE),
            (Some(""), Some(ts.as_str()), Some(sig.as_str()), HEADER_ID),
            (
                Some("msg_1"),
                Some(""),
                Some(sig.as_str()),
                HEADER_TIMESTAMP,
            ),
            (Some("msg_1"), Some(ts.as_str()), Some(""), HEADER_SIGNATURE),
        ];
        for (id, ts, sig, name) in cases {
            let err = verify(&s, id, ts, sig, b"", NOW, 300).unwrap_err();
            assert_eq!(err, SignError::MissingHeader(name));
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn error_messages_leak_nothing() {
        let key = "very-private-key";
        let s = secret(key);
        let sig = sign(&s, "msg_1", NOW, b"x");
        let b64 = sig.strip_prefix("v1,").unwrap();
        let errs = [
            check(std::slice::from_ref(&s), &sig, b"y", NOW, NOW).unwrap_err(),
            check(std::slice::from_ref(&s), &sig, b"x", NOW - 1000, NOW).unwrap_err(),
            check(&[s], &sig, b"x", NOW + 1000, NOW).unwrap_err(),
        ];
        for err in errs {
            let msg = err.to_string();
            assert!(!msg.contains(key) && !msg.contains(b64), "{msg}");
        }
    }

    #[test]
    fn signer_matches_spec_vector_in_pieces() {
        let s = secret(VEC_SECRET);
        for split in 0..=VEC_BODY.len() {
            let mut signer = Signer::new(&s, VEC_ID, VEC_TS);
            signer.update(&VEC_BODY[..split]);
            signer.update(b"");
            signer.update(&VEC_BODY[split..]);
            assert_eq!(signer.finish(), VEC_SIG, "split at {split}");
        }
        let mut signer = Signer::new(&s, VEC_ID, VEC_TS);
        assert_eq!(format!("{signer:?}"), "Signer(***)");
        for b in VEC_BODY {
            signer.update(std::slice::from_ref(b));
        }
        assert_eq!(signer.finish(), VEC_SIG);
        // Nothing fed: the signature of an empty body.
        assert_eq!(
            Signer::new(&s, VEC_ID, VEC_TS).finish(),
            sign(&s, VEC_ID, VEC_TS, b"")
        );
    }

    proptest! {
        #[test]
        fn signer_in_any_chunks_equals_sign(
            key in prop::collection::vec(any::<u8>(), 1..64),
            id in "\\PC{0,40}",
            ts in any::<i64>(),
            body in prop::collection::vec(any::<u8>(), 0..2048),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let s = Secret(key);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
            cuts.sort_unstable();
            let mut signer = Signer::new(&s, &id, ts);
            let mut at = 0;
            for cut in cuts.into_iter().chain([body.len()]) {
                signer.update(&body[at..cut]);
                at = cut;
            }
            prop_assert_eq!(signer.finish(), sign(&s, &id, ts, &body));
        }

        #[test]
        fn roundtrip_and_any_byte_change_fails(
            key in prop::collection::vec(any::<u8>(), 1..64),
            id in "\\PC{1,40}",
            ts in -1_000_000_000_000i64..1_000_000_000_000,
            body in prop::collection::vec(any::<u8>(), 1..512),
            idx in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let s = Secret(key);
            let sig = sign(&s, &id, ts, &body);
            let ts_s = ts.to_string();
            let run = |b: &[u8]| verify(
                std::slice::from_ref(&s), Some(&id), Some(&ts_s), Some(&sig), b, ts, DEFAULT_TOLERANCE_SECS,
            );
            prop_assert_eq!(run(&body), Ok(()));

            let mut tampered = body.clone();
            tampered[idx.index(body.len())] ^= flip;
            prop_assert_eq!(run(&tampered), Err(SignError::NoValidSignature));
        }
    }
}
