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
}

impl From<lapin::Error> for AmqpError {
    fn from(e: lapin::Error) -> Self {
        // lapin's errors name hosts and protocol states, never the password.
        AmqpError::Broker(e.to_string())
    }
}
