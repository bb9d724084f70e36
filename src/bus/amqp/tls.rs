//! amqps:// settings (`[bus] ca_file`, `client_certificate`) and what to
//! tell the operator when a TLS handshake fails.

/// `[bus] ca_file` and `client_certificate`, for amqps:// (no Debug: it
/// holds the certificate's password).
#[derive(Clone, Default)]
pub(super) struct Tls {
    pub(super) cert_chain: Option<String>,
    pub(super) identity: Option<(Vec<u8>, String)>,
}

impl Tls {
    pub(super) fn config(&self) -> lapin::tcp::OwnedTLSConfig {
        lapin::tcp::OwnedTLSConfig {
            identity: self
                .identity
                .as_ref()
                .map(|(der, password)| lapin::tcp::OwnedIdentity {
                    der: der.clone(),
                    password: password.clone(),
                }),
            cert_chain: self.cert_chain.clone(),
        }
    }
}

/// The status line for a failed attempt. A refused TLS handshake often
/// shows as a bare "Broken pipe" on the next attempt (the client was still
/// writing when the alert came): the hint seen earlier in the same wait
/// stays shown beside it.
pub(super) fn keep_hint(msg: String, hinted: &mut Option<String>) -> String {
    if tls_hint(&msg).is_some() {
        *hinted = Some(msg.clone());
        return msg;
    }
    match hinted {
        Some(h) => format!("{msg}; an earlier attempt: {h}"),
        None => msg,
    }
}

/// What to do about a failed TLS handshake, for the operator who reads it
/// in `deskbridge status`.
pub(super) fn tls_hint(error: &str) -> Option<&'static str> {
    if error.contains("UnknownIssuer") {
        Some("if a CA of your own signed the broker's certificate, name its PEM file in [bus] ca_file")
    } else if error.contains("NotValidForName") {
        Some("the broker's certificate is for another name: use that name in bus.url")
    } else if error.contains("Expired") || error.contains("NotValidYet") {
        Some("the broker's certificate is out of its validity dates (or this machine's clock is)")
    } else if error.contains("CertificateRequired") || error.contains("HandshakeFailure") {
        Some("the broker may ask for a client certificate: [bus] client_certificate")
    } else if error.contains("BadCertificate") || error.contains("UnknownCA") {
        Some("the broker refused [bus] client_certificate: is it signed by a CA the broker trusts?")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::keep_hint;

    #[test]
    fn a_tls_hint_stays_shown_beside_a_later_bare_transport_error() {
        let mut hinted = None;
        assert_eq!(
            keep_hint("Connection refused".into(), &mut hinted),
            "Connection refused"
        );
        let refused = "invalid peer certificate: UnknownIssuer (if a CA of your own ...)";
        assert_eq!(keep_hint(refused.into(), &mut hinted), refused);
        assert_eq!(
            keep_hint("Broken pipe (os error 32)".into(), &mut hinted),
            format!("Broken pipe (os error 32); an earlier attempt: {refused}")
        );
        // A newer hint replaces the older one.
        let cert = "received fatal alert: CertificateRequired (the broker may ask ...)";
        assert_eq!(keep_hint(cert.into(), &mut hinted), cert);
        assert!(keep_hint("EOF".into(), &mut hinted).ends_with(cert));
    }
}
