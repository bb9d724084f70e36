//! What every connector that calls a partner over HTTP shares: the client
//! and a failure in words.

use super::error::HttpClientError;
use super::sink::SinkError;
use std::time::Duration;

/// The HTTP client every connector calls partners with. Redirects are not
/// followed: one would turn a POST or PUT into a GET whose 200 looks like
/// success, or carry a signed event to another host; a moved URL is for
/// the operator to fix.
pub fn partner_client(timeout_secs: u64) -> Result<reqwest::Client, HttpClientError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .connect_timeout(Duration::from_secs(timeout_secs.min(10)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(HttpClientError)
}

/// A failed request in words, without its URL (it may carry a token).
pub fn describe_http_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer before the timeout".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.without_url().to_string()
    }
}

/// Whether retrying can help, by HTTP status.
pub fn classify(
    status: reqwest::StatusCode,
    message: String,
    retry_after: Option<Duration>,
) -> SinkError {
    let code = status.as_u16();
    if code == 408 || code == 425 || code == 429 || status.is_server_error() {
        SinkError::Transient {
            message,
            retry_after,
        }
    } else {
        SinkError::Permanent { message }
    }
}
