//! What can go wrong talking to the broker.

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("broker: {0}")]
    Broker(String),
    #[error("broker returned a message as unroutable: is queue {0} missing?")]
    Unroutable(String),
    /// Another connection holds a destination's lock.
    #[error("{0}")]
    Taken(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A connection attempt the broker (or the network, or TLS) refused;
    /// with what to do about a failed TLS handshake where that is known.
    #[error("{source}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Connect {
        source: lapin::Error,
        hint: Option<&'static str>,
    },
    /// A connection attempt the broker did not answer.
    #[error("no answer within {secs} s")]
    NoAnswer { secs: u64 },
    /// The broker's tasks ended before every claim was made.
    #[error("the broker's tasks ended")]
    TasksEnded,
}

impl From<lapin::Error> for AmqpError {
    fn from(e: lapin::Error) -> Self {
        // lapin's errors name hosts and protocol states, never the password.
        AmqpError::Broker(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::AmqpError;
    use std::sync::Arc;

    #[test]
    fn a_failed_connection_says_what_to_do_beside_the_error_where_it_is_known() {
        let refused = || {
            lapin::Error::IOError(Arc::new(std::io::Error::other(
                "invalid peer certificate: UnknownIssuer",
            )))
        };
        let plain = AmqpError::Connect {
            source: refused(),
            hint: None,
        };
        assert_eq!(plain.to_string(), refused().to_string());
        let hinted = AmqpError::Connect {
            source: refused(),
            hint: Some("name its PEM file in [bus] ca_file"),
        };
        assert_eq!(
            hinted.to_string(),
            format!("{} (name its PEM file in [bus] ca_file)", refused())
        );
        assert_eq!(
            AmqpError::NoAnswer { secs: 30 }.to_string(),
            "no answer within 30 s"
        );
    }
}
