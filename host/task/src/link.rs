//! How one Weft process reaches another: over TLS when the URL says `https://` ([`Tls`]), presenting
//! a bearer secret ([`Secret`]) with every request — together a [`Link`], the one way every client
//! in Weft (the CLI, a worker, the scheduler calling a worker) opens a channel.

use std::path::Path;
use std::time::Duration;

use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

use crate::auth::{AuthChannel, Secret, authed};

/// How much a peer may send on one stream before this client has consumed it (HTTP/2 flow
/// control). Shuffle blocks stream through here: with hyper's 2 MiB a sender stalls whenever the
/// receiver spends a moment decoding a multi-megabyte batch; with this much, it keeps sending
/// while the batch before is decoded. What a stream may buffer is bounded by it all the same.
const STREAM_WINDOW: u32 = 16 << 20;
/// The same for all the streams of one connection together: room for a few bulk streams at once.
/// A connection that carries more bulk streams at once has room for each ([`Link::connect_bulk`]).
const CONNECTION_WINDOW: u32 = 64 << 20;
/// The largest window HTTP/2 allows (RFC 9113, 6.9.1).
const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The largest HTTP/2 frame this client accepts (16 KiB by default): a 1 MiB shuffle frame then
/// arrives in a few frames, not 64, each its own header and wake-up.
const MAX_FRAME: u32 = 1 << 20;

/// TLS material of a process: its own certificate and key (to serve), and the CA that signed its
/// peers' certificates (to trust them).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    identity: Option<Identity>,
    ca: Option<Certificate>,
}

impl Tls {
    /// Reads PEM files: `cert` and `key` together (a server's), `ca` (a client's). `None` when no
    /// file is given. The error names the file or the flag missing.
    pub fn from_files(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Option<Tls>, String> {
        let read = |path: &Path, flag: &str| {
            std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
        };
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some(Identity::from_pem(
                read(cert, "--tls-cert")?,
                read(key, "--tls-key")?,
            )),
            (None, None) => None,
            (Some(_), None) => return Err("--tls-cert needs --tls-key".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert".into()),
        };
        let ca = ca
            .map(|ca| read(ca, "--tls-ca").map(Certificate::from_pem))
            .transpose()?;
        Ok((identity.is_some() || ca.is_some()).then_some(Tls { identity, ca }))
    }

    /// A process's TLS from PEM text: what tests build from certificates they generate.
    pub fn from_pem(cert_and_key: Option<(&str, &str)>, ca: Option<&str>) -> Tls {
        Tls {
            identity: cert_and_key.map(|(cert, key)| Identity::from_pem(cert, key)),
            ca: ca.map(Certificate::from_pem),
        }
    }

    /// The server side, if this process has a certificate to serve with.
    pub fn server(&self) -> Option<ServerTlsConfig> {
        self.identity
            .clone()
            .map(|identity| ServerTlsConfig::new().identity(identity))
    }

    /// Whether this process serves over TLS (its URLs are `https://`).
    pub fn serves(&self) -> bool {
        self.identity.is_some()
    }

    /// The scheme of the URLs of a process serving with `tls`: `https` or `http`.
    pub fn scheme(tls: Option<&Tls>) -> &'static str {
        if tls.is_some_and(Tls::serves) {
            "https"
        } else {
            "http"
        }
    }

    fn client(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new();
        match &self.ca {
            Some(ca) => config.ca_certificate(ca.clone()),
            None => config,
        }
    }
}

/// How to reach other Weft processes: TLS for `https://` URLs, and the secret to present.
#[derive(Debug, Clone, Default)]
pub struct Link {
    pub secret: Option<Secret>,
    pub tls: Option<Tls>,
}

impl Link {
    pub fn new(secret: Option<Secret>, tls: Option<Tls>) -> Link {
        Link { secret, tls }
    }

    /// The endpoint of `url`, with TLS when it is `https://` (trusting the CA of [`Tls`], or no
    /// one: a TLS URL without a CA cannot be verified, and the handshake fails saying so).
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(url.to_owned())?
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .tcp_nodelay(true);
        if url.starts_with("https://") {
            let tls = self.tls.clone().unwrap_or_default();
            return endpoint.tls_config(tls.client());
        }
        Ok(endpoint)
    }

    /// A channel to `url`, connected now (within `timeout`).
    pub async fn connect(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<AuthChannel, tonic::transport::Error> {
        self.connect_to(self.endpoint(url)?, timeout).await
    }

    /// A channel to `url` that up to `streams` bulk streams share at once (a worker's reduce tasks,
    /// each fetching one shuffle block at a time from this peer), connected now: its connection's
    /// window holds every stream's window and one more, so a stream whose reader stops (a task
    /// spilling, or paused) holds back only itself, never its neighbours. Up to 127 streams; past
    /// that the window is HTTP/2's largest.
    pub async fn connect_bulk(
        &self,
        url: &str,
        timeout: Duration,
        streams: u32,
    ) -> Result<AuthChannel, tonic::transport::Error> {
        let endpoint = self
            .endpoint(url)?
            .initial_connection_window_size(bulk_connection_window(streams));
        self.connect_to(endpoint, timeout).await
    }

    async fn connect_to(
        &self,
        endpoint: Endpoint,
        timeout: Duration,
    ) -> Result<AuthChannel, tonic::transport::Error> {
        let channel = endpoint.connect_timeout(timeout).connect().await?;
        Ok(self.wrap(channel))
    }

    /// A channel to `url` that connects on first use.
    pub fn connect_lazy(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<AuthChannel, tonic::transport::Error> {
        let channel = self.endpoint(url)?.connect_timeout(timeout).connect_lazy();
        Ok(self.wrap(channel))
    }

    fn wrap(&self, channel: Channel) -> AuthChannel {
        authed(channel, self.secret.as_ref())
    }
}

/// The connection window for `streams` bulk streams at once: one stream window more than they
/// can hold together, at least [`CONNECTION_WINDOW`], at most HTTP/2's largest.
fn bulk_connection_window(streams: u32) -> u32 {
    let room = (u64::from(streams) + 1) * u64::from(STREAM_WINDOW);
    room.clamp(u64::from(CONNECTION_WINDOW), u64::from(MAX_WINDOW)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_connection_holds_each_streams_window_and_one_more() {
        assert_eq!(bulk_connection_window(0), CONNECTION_WINDOW);
        assert_eq!(bulk_connection_window(3), CONNECTION_WINDOW);
        assert_eq!(bulk_connection_window(4), 5 * STREAM_WINDOW);
        assert_eq!(bulk_connection_window(126), 127 * STREAM_WINDOW);
        assert_eq!(bulk_connection_window(127), MAX_WINDOW);
        assert_eq!(bulk_connection_window(u32::MAX), MAX_WINDOW);
    }
}
