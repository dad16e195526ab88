//! Typed clients of a remote scheduler, for the CLI and for tests: they speak gRPC and hand back the
//! same domain types the local data directory gives, so callers print one thing either way.
//!
//! - [`ClientError`] — why a call failed: the scheduler unreachable (naming its URL), its refusal
//!   (in its own words), a malformed reply, a download that does not match its id.
//! - [`jobs`] — jobs (submit, status, watch, list, cancel, logs) and the cluster's workers.
//! - [`registry`] — modules: register (chunked upload), list, show, remove, fetch (hash-verified).

mod error;
pub mod jobs;
pub mod registry;

pub use error::ClientError;
pub use jobs::JobsClient;
pub use registry::RegistryClient;

use std::time::Duration;

use weft_task::auth::AuthChannel;
use weft_task::link::Link;

/// The port `weft scheduler` listens on by default, and a URL without one means.
pub const DEFAULT_PORT: u16 = 7070;

/// A scheduler URL as a user may write it, made whole: `http://` when no scheme is given, and
/// [`DEFAULT_PORT`] when no port is: `10.0.0.5` is `http://10.0.0.5:7070`, `localhost:7171` is
/// `http://localhost:7171`. Refuses what is not a URL of a host, and schemes other than `http`
/// and `https`.
pub fn scheduler_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let bad = |why: &str| format!("{text:?} is not a scheduler URL ({why}; e.g. http://host:7070)");
    let uri: tonic::transport::Uri = with_scheme.parse().map_err(|_| bad("it does not parse"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    let authority = uri.authority().ok_or_else(|| bad("it names no host"))?;
    if authority.host().is_empty() {
        return Err(bad("it names no host"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(bad("a scheduler URL has no path"));
    }
    let port = authority.port_u16().unwrap_or(DEFAULT_PORT);
    let scheme = uri.scheme_str().unwrap_or("http");
    Ok(format!("{scheme}://{}:{port}", authority.host()))
}

/// How long a client waits for the scheduler to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel to the scheduler at `url` over `link` (its TLS, and the API token every request
/// presents); the error names the URL and why it could not be reached.
pub(crate) async fn channel(url: &str, link: &Link) -> Result<AuthChannel, ClientError> {
    let connect_error = |e: tonic::transport::Error| ClientError::Connect {
        url: url.to_owned(),
        source: Box::new(e),
    };
    link.connect(url, CONNECT_TIMEOUT)
        .await
        .map_err(connect_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls_default_the_scheme_and_port() {
        for (given, url) in [
            ("localhost:7171", "http://localhost:7171"),
            ("10.0.0.5", "http://10.0.0.5:7070"),
            ("http://h:1/", "http://h:1"),
            ("https://h", "https://h:7070"),
            ("[::1]:9", "http://[::1]:9"),
        ] {
            assert_eq!(scheduler_url(given).as_deref(), Ok(url), "{given}");
        }
        for bad in ["", "ftp://h:1", "http://", "h:1/jobs", "a b"] {
            let err = scheduler_url(bad).unwrap_err();
            assert!(err.contains("not a scheduler URL"), "{bad}: {err}");
        }
    }
}
