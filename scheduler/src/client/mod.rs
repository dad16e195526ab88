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

use tonic::transport::{Channel, Endpoint};

/// How long a client waits for the scheduler to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel to the scheduler at `url`; the error names the URL and why it could not be reached.
pub(crate) async fn channel(url: &str) -> Result<Channel, ClientError> {
    let connect_error = |e: tonic::transport::Error| ClientError::Connect {
        url: url.to_owned(),
        source: Box::new(e),
    };
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(connect_error)?
        .connect_timeout(CONNECT_TIMEOUT);
    endpoint.connect().await.map_err(connect_error)
}
