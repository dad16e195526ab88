//! [`RegistryClient`]: the module registry of a remote scheduler, with the local [`Registry`]'s
//! answers — the same [`Registration`], [`ModuleEntry`], [`VersionRecord`] and [`Removal`] — so the
//! CLI prints one thing whichever registry it talks to.
//!
//! [`Registry`]: crate::Registry

use weft_proto::v1 as pb;
use weft_proto::v1::registry_client::RegistryClient as RpcClient;
use weft_task::auth::AuthChannel;
use weft_task::convert::bad;
use weft_task::link::Link;

use super::ClientError;
use crate::Tenant;
use crate::registry::{ModuleEntry, ModuleId, Registration, Removal, VersionRecord};
use crate::service::registry::{CHUNK_BYTES, MAX_REPLY_BYTES};

/// A connection to a scheduler's registry service. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    rpc: RpcClient<AuthChannel>,
    /// The scheduler's URL, for messages.
    url: String,
    /// Largest module `fetch` accepts: a bound on what a misbehaving server can make us buffer.
    max_module_bytes: usize,
}

impl RegistryClient {
    /// Connects to the scheduler at `url` (e.g. `http://10.0.0.5:7070`).
    pub async fn connect(url: &str) -> Result<RegistryClient, ClientError> {
        RegistryClient::connect_with(url, &Link::default()).await
    }

    /// [`RegistryClient::connect`] over `link` (TLS, and the API token every request presents).
    pub async fn connect_with(url: &str, link: &Link) -> Result<RegistryClient, ClientError> {
        let channel = super::channel(url, link).await?;
        Ok(RegistryClient {
            rpc: RpcClient::new(channel).max_decoding_message_size(MAX_REPLY_BYTES),
            url: url.to_owned(),
            max_module_bytes: weft_host::DEFAULT_MAX_MODULE_BYTES,
        })
    }

    /// The scheduler's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, status: tonic::Status) -> ClientError {
        ClientError::from_status(&self.url, status)
    }

    /// Uploads a module, in chunks, for `tenant` under `name`. The scheduler validates it and checks
    /// that it hashes to the id computed here, so a damaged upload is refused, not stored.
    pub async fn register(
        &self,
        tenant: &Tenant,
        name: &str,
        tags: &[String],
        bytes: &[u8],
    ) -> Result<Registration, ClientError> {
        let header = pb::RegisterHeader {
            tenant: tenant.to_string(),
            name: name.to_owned(),
            tags: tags.to_vec(),
            size: bytes.len() as u64,
            expected_id: ModuleId::of(bytes).to_string(),
        };
        // At least one message, even for empty bytes: it carries the header.
        let mut chunks: Vec<pb::RegisterChunk> = bytes
            .chunks(CHUNK_BYTES)
            .map(|data| pb::RegisterChunk {
                header: None,
                data: data.to_vec(),
            })
            .collect();
        if chunks.is_empty() {
            chunks.push(pb::RegisterChunk::default());
        }
        chunks[0].header = Some(header);
        let reply = self
            .rpc
            .clone()
            .register(tokio_stream::iter(chunks))
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        let registration = Registration::try_from(reply)?;
        if registration.name != name {
            return Err(ClientError::Invalid(bad(
                "ModuleVersion.name",
                format!(
                    "registered {name:?}, but the reply is about {:?}",
                    registration.name
                ),
            )));
        }
        Ok(registration)
    }

    /// Every version of every module of `tenant`, by name then version.
    pub async fn list(&self, tenant: &Tenant) -> Result<Vec<ModuleEntry>, ClientError> {
        let reply = self
            .rpc
            .clone()
            .list(pb::ListModulesRequest {
                tenant: tenant.to_string(),
            })
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        Ok(reply
            .modules
            .into_iter()
            .map(ModuleEntry::try_from)
            .collect::<Result<_, _>>()?)
    }

    /// The module a reference (`NAME`, `NAME@VERSION`, `NAME@TAG`, `blake3:ID`) names, and every
    /// version of its name.
    pub async fn show(
        &self,
        tenant: &Tenant,
        reference: &str,
    ) -> Result<(ModuleEntry, Vec<VersionRecord>), ClientError> {
        let reply = self
            .rpc
            .clone()
            .show(pb::ModuleRequest {
                tenant: tenant.to_string(),
                reference: reference.to_owned(),
            })
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        let entry = reply
            .module
            .ok_or_else(|| bad("ShowModuleReply", "missing field `module`"))?
            .try_into()?;
        let versions = reply
            .versions
            .into_iter()
            .map(VersionRecord::try_from)
            .collect::<Result<_, _>>()?;
        Ok((entry, versions))
    }

    /// Removes what a reference names (see [`Registry::remove`](crate::Registry::remove)).
    pub async fn remove(&self, tenant: &Tenant, reference: &str) -> Result<Removal, ClientError> {
        let reply = self
            .rpc
            .clone()
            .remove(pb::ModuleRequest {
                tenant: tenant.to_string(),
                reference: reference.to_owned(),
            })
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        Ok(Removal::try_from(reply)?)
    }

    /// Downloads a module of `tenant` and checks that its bytes hash to `id`.
    pub async fn fetch(&self, tenant: &Tenant, id: &ModuleId) -> Result<Vec<u8>, ClientError> {
        let mut stream = self
            .rpc
            .clone()
            .fetch(pb::FetchModuleRequest {
                tenant: tenant.to_string(),
                id: id.to_string(),
            })
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(|s| self.error(s))? {
            if bytes.len() + chunk.data.len() > self.max_module_bytes {
                return Err(ClientError::Invalid(bad(
                    "ModuleChunk",
                    format!(
                        "module {id} is over the size limit of {} bytes",
                        self.max_module_bytes
                    ),
                )));
            }
            bytes.extend_from_slice(&chunk.data);
        }
        let actual = ModuleId::of(&bytes);
        if actual != *id {
            return Err(ClientError::HashMismatch {
                id: id.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }
}
