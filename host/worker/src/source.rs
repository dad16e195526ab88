//! [`RegistryModuleSource`]: module bytes for a cluster worker, downloaded from the scheduler's
//! registry service (`weft.v1.Registry/Fetch`) and kept in a disk cache, so a module crosses the
//! network once per worker, not once per task, and survives a worker restart.
//!
//! The cache is `CACHE_DIR/modules/<hex>.wasm`, keyed by content hash: a file is written to a
//! temporary name and renamed into place (a crash never leaves a partial module under a valid name),
//! and is verified against its id on every read; a file that does not match (disk damage, tampering)
//! is deleted and downloaded again.
//!
//! The cache is shared by every tenant on the worker. That leaks nothing: a task only names a module
//! id the scheduler resolved in the task's own tenant, and a cached file holds exactly the bytes of
//! its id.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use weft_proto::v1 as pb;
use weft_proto::v1::registry_client::RegistryClient;
use weft_task::Remote;
use weft_task::auth::AuthChannel;
use weft_task::link::Link;

use crate::{FetchError, ModuleSource};

/// How long to wait for a TCP connection to the scheduler.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest module accepted from the scheduler: a bound on what a misbehaving peer can make the
/// worker buffer. The registry refuses bigger modules at registration anyway.
const MAX_MODULE_BYTES: usize = weft_host::DEFAULT_MAX_MODULE_BYTES;

/// Fetches modules from the scheduler's registry, through a local disk cache.
#[derive(Debug)]
pub struct RegistryModuleSource {
    scheduler: String,
    /// `CACHE_DIR/modules`.
    dir: PathBuf,
    /// The worker's runtime: `fetch` is called on blocking task threads, which drive the download on
    /// it with `block_on`.
    runtime: tokio::runtime::Handle,
    /// Connected on first use, so a worker can be set up before the scheduler is reachable; shared by
    /// every task afterwards (a tonic channel multiplexes concurrent calls).
    client: Mutex<Option<RegistryClient<AuthChannel>>>,
    /// How to reach the scheduler: TLS, and the cluster secret.
    link: Link,
}

impl RegistryModuleSource {
    /// A source fetching from the scheduler at `scheduler_url` (e.g. `http://10.0.0.5:7070`) and
    /// caching under `cache_dir/modules`. Nothing is connected or created until the first fetch.
    pub fn new(
        scheduler_url: String,
        cache_dir: PathBuf,
        runtime: tokio::runtime::Handle,
    ) -> RegistryModuleSource {
        RegistryModuleSource {
            scheduler: scheduler_url,
            dir: cache_dir.join("modules"),
            runtime,
            client: Mutex::new(None),
            link: Link::default(),
        }
    }

    /// Reaches the scheduler over `link` (TLS, and the cluster secret to present).
    pub fn with_link(mut self, link: Link) -> RegistryModuleSource {
        self.link = link;
        self
    }

    /// Where the cached copy of the module with hash `hex` lives.
    pub fn cache_path(&self, hex: &str) -> PathBuf {
        self.dir.join(format!("{hex}.wasm"))
    }

    /// The cached bytes, if there is an intact copy. A copy that does not match its hash is deleted.
    fn cached(&self, path: &Path, hash: &blake3::Hash) -> Option<Vec<u8>> {
        let bytes = std::fs::read(path).ok()?;
        if blake3::hash(&bytes) == *hash {
            return Some(bytes);
        }
        // A damaged copy: drop it and download again. Failing to delete is harmless, since the
        // download below replaces it by rename.
        let _ = std::fs::remove_file(path);
        None
    }

    /// Stores downloaded bytes in the cache, atomically (`weft_io::AtomicFile`).
    fn store(&self, path: &Path, bytes: &[u8]) -> Result<(), weft_io::Error> {
        std::fs::create_dir_all(&self.dir).map_err(|source| weft_io::Error::CreateDir {
            path: self.dir.clone(),
            source,
        })?;
        weft_io::write_atomically(path, bytes)
    }

    async fn client(&self) -> Result<RegistryClient<AuthChannel>, FetchError> {
        if let Some(client) = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(client);
        }
        let connect = |source| FetchError::Connect {
            url: self.scheduler.clone(),
            source,
        };
        let channel = self
            .link
            .connect(&self.scheduler, CONNECT_TIMEOUT)
            .await
            .map_err(connect)?;
        let client = RegistryClient::new(channel);
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client.clone());
        Ok(client)
    }

    async fn download(&self, tenant: &str, id: &str) -> Result<Vec<u8>, FetchError> {
        let mut client = self.client().await?;
        let rpc = |status| FetchError::Rpc {
            url: self.scheduler.clone(),
            source: Remote(status),
        };
        let mut stream = client
            .fetch(pb::FetchModuleRequest {
                tenant: tenant.to_owned(),
                id: id.to_owned(),
            })
            .await
            .map_err(rpc)?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(rpc)? {
            if bytes.len() + chunk.data.len() > MAX_MODULE_BYTES {
                return Err(FetchError::TooLarge {
                    limit: MAX_MODULE_BYTES,
                });
            }
            bytes.extend_from_slice(&chunk.data);
        }
        Ok(bytes)
    }
}

impl ModuleSource for RegistryModuleSource {
    fn fetch(&self, tenant: &str, id: &str) -> Result<Vec<u8>, FetchError> {
        let invalid = || FetchError::InvalidId(id.to_owned());
        let hex = id
            .strip_prefix("blake3:")
            .filter(|hex| hex.len() == 64 && !hex.bytes().any(|b| b.is_ascii_uppercase()))
            .ok_or_else(invalid)?;
        let hash = blake3::Hash::from_hex(hex).map_err(|_| invalid())?;
        let path = self.cache_path(hex);
        if let Some(bytes) = self.cached(&path, &hash) {
            return Ok(bytes);
        }
        let bytes = self.runtime.block_on(self.download(tenant, id))?;
        if blake3::hash(&bytes) != hash {
            return Err(FetchError::Mismatch {
                url: self.scheduler.clone(),
            });
        }
        // The cache only saves later downloads: a task must not fail because it could not be written
        // (a full disk shows up soon enough in the task's own output).
        let _ = self.store(&path, &bytes);
        Ok(bytes)
    }
}
