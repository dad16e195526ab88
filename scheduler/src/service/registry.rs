//! `weft.v1.Registry` over a [`Registry`]: what `weft module …` does locally, served to remote CLIs
//! and workers.
//!
//! Uploads arrive as a stream of chunks and are refused as early as possible: a missing or repeated
//! header, a module over the size limit (counted as the chunks arrive, so an oversized upload is never
//! buffered whole), a size that does not match the header, bytes that do not hash to the id the client
//! expected, and anything the validator refuses. Validation and the registry's sled/file I/O are
//! blocking, so they run on tokio's blocking pool. Downloads are resolved in the requesting tenant
//! first, so a tenant cannot read another tenant's module by guessing its id.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use weft_host::{Engine, ModuleLimits, ValidatedModule, ValidationLimits};
use weft_proto::v1 as pb;
use weft_proto::v1::registry_server::{Registry as RegistryRpc, RegistryServer};

use super::convert_registry::registered_to_pb;
use crate::access::identity_of;
use crate::registry::{ModuleId, ModuleRef};
use crate::{Registry, RegistryError, Tenant};

/// Bytes per `Fetch` chunk (and per `Register` chunk the client sends): far below gRPC's default
/// 4 MiB message limit, big enough that per-message overhead does not matter.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Largest message the server accepts: a chunk plus its header, with room for clients that pick a
/// bigger chunk size than ours. What is uploaded in total is bounded by the size limit instead.
const MAX_DECODE_BYTES: usize = 4 << 20;

/// Largest reply the server sends: a `List` of a big registry is one message (~300 bytes a version).
pub const MAX_REPLY_BYTES: usize = 64 << 20;

/// The registry service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RegistryService {
    registry: Arc<Registry>,
    /// Validates uploads, exactly as local registration does.
    engine: Engine,
    limits: ValidationLimits,
    /// Tenants' own ceilings under `limits` (the tenants file's `modules` tables).
    tenant_limits: Arc<HashMap<Tenant, ModuleLimits>>,
}

impl RegistryService {
    pub fn new(registry: Arc<Registry>, engine: Engine, limits: ValidationLimits) -> Self {
        RegistryService {
            registry,
            engine,
            limits,
            tenant_limits: Arc::default(),
        }
    }

    /// Holds each tenant in `tenant_limits` to its own ceilings, under the service's limits.
    pub fn with_tenant_limits(mut self, tenant_limits: HashMap<Tenant, ModuleLimits>) -> Self {
        self.tenant_limits = Arc::new(tenant_limits);
        self
    }

    /// The limits an upload of `tenant` is validated under.
    fn limits_for(&self, tenant: &Tenant) -> ValidationLimits {
        match self.tenant_limits.get(tenant) {
            Some(ceilings) => self.limits.capped_by(ceilings),
            None => self.limits.clone(),
        }
    }

    /// The tonic service, with message size limits that fit chunked transfers and big listings.
    pub fn server(self) -> RegistryServer<Self> {
        RegistryServer::new(self)
            .max_decoding_message_size(MAX_DECODE_BYTES)
            .max_encoding_message_size(MAX_REPLY_BYTES)
    }

    /// Runs blocking registry work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Registry) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let registry = self.registry.clone();
        tokio::task::spawn_blocking(move || work(&registry))
            .await
            .map_err(|e| Status::internal(format!("registry task failed: {e}")))?
    }
}

/// Maps a registry error to the status a client can act on, keeping the registry's message.
fn status(e: RegistryError) -> Status {
    let message = weft_task::error_chain(&e);
    match e {
        RegistryError::NotFound(_) => Status::not_found(message),
        RegistryError::InvalidName(_)
        | RegistryError::InvalidTag(_)
        | RegistryError::InvalidReference { .. } => Status::invalid_argument(message),
        // The stored data is damaged: nothing the client can retry its way out of.
        RegistryError::Corrupt { .. } | RegistryError::CorruptIndex { .. } => {
            Status::data_loss(message)
        }
        RegistryError::Io { .. } | RegistryError::Db(_) | RegistryError::Store(_) => {
            Status::internal(message)
        }
    }
}

/// The header of an upload, checked.
struct Header {
    tenant: Tenant,
    name: String,
    tags: Vec<String>,
    size: usize,
    expected_id: Option<ModuleId>,
}

impl Header {
    fn check(h: pb::RegisterHeader, tenant: Tenant, limit: usize) -> Result<Header, Status> {
        // The name is checked before any byte is received: a typo should not cost an upload.
        match ModuleRef::parse(&h.name) {
            Ok(ModuleRef::Latest(name)) if name == h.name => {}
            _ => return Err(status(RegistryError::InvalidName(h.name))),
        }
        let size = usize::try_from(h.size)
            .ok()
            .filter(|&size| size <= limit)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "module is {} bytes, over the size limit of {limit} bytes",
                    h.size
                ))
            })?;
        let expected_id = match h.expected_id.as_str() {
            "" => None,
            text => Some(text.parse::<ModuleId>().map_err(|e| {
                Status::invalid_argument(format!("invalid expected_id in the upload header: {e}"))
            })?),
        };
        Ok(Header {
            tenant,
            name: h.name,
            tags: h.tags,
            size,
            expected_id,
        })
    }
}

#[tonic::async_trait]
impl RegistryRpc for RegistryService {
    async fn register(
        &self,
        request: Request<Streaming<pb::RegisterChunk>>,
    ) -> Result<Response<pb::ModuleVersion>, Status> {
        let identity = identity_of(&request);
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty upload: no header, no bytes"))?;
        let header = first.header.ok_or_else(|| {
            Status::invalid_argument(
                "the first message of an upload must carry the header (tenant, name, tags, size)",
            )
        })?;
        let tenant = identity.tenant(&header.tenant)?;
        let limits = self.limits_for(&tenant);
        let limit = limits.max_module_bytes;
        let header = Header::check(header, tenant, limit)?;

        let mut bytes = Vec::with_capacity(header.size);
        let mut data = first.data;
        loop {
            if bytes.len() + data.len() > limit {
                return Err(Status::invalid_argument(format!(
                    "module is over the size limit of {limit} bytes ({} bytes received so far)",
                    bytes.len() + data.len()
                )));
            }
            bytes.extend_from_slice(&data);
            match stream.message().await? {
                None => break,
                Some(chunk) if chunk.header.is_some() => {
                    return Err(Status::invalid_argument(
                        "an upload carries one header, in its first message; a later message \
                         repeated it",
                    ));
                }
                Some(chunk) => data = chunk.data,
            }
        }
        if bytes.len() != header.size {
            return Err(Status::invalid_argument(format!(
                "the upload header announced {} bytes but {} arrived; the upload is incomplete",
                header.size,
                bytes.len()
            )));
        }

        let engine = self.engine.clone();
        let reply = self
            .blocking(move |registry| {
                let actual = ModuleId::of(&bytes);
                if let Some(expected) = header.expected_id
                    && expected != actual
                {
                    return Err(Status::invalid_argument(format!(
                        "the uploaded bytes hash to {actual}, not to the expected {expected}: \
                         the upload was damaged or is not the file meant"
                    )));
                }
                let module = ValidatedModule::new(&engine, &bytes, &limits)
                    .map_err(|e| Status::invalid_argument(weft_task::error_chain(&e)))?;
                let registration = registry
                    .register(&header.tenant, &header.name, &module, &header.tags)
                    .map_err(status)?;
                let reference = format!("{}@{}", registration.name, registration.version);
                let entry = registry
                    .resolve(&header.tenant, &reference)
                    .map_err(status)?;
                Ok(registered_to_pb(&entry, &registration))
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn list(
        &self,
        request: Request<pb::ListModulesRequest>,
    ) -> Result<Response<pb::ListModulesReply>, Status> {
        let tenant = identity_of(&request).tenant(&request.into_inner().tenant)?;
        let entries = self
            .blocking(move |registry| registry.list(&tenant).map_err(status))
            .await?;
        Ok(Response::new(pb::ListModulesReply {
            modules: entries.iter().map(pb::ModuleVersion::from).collect(),
        }))
    }

    async fn show(
        &self,
        request: Request<pb::ModuleRequest>,
    ) -> Result<Response<pb::ShowModuleReply>, Status> {
        let identity = identity_of(&request);
        let request = request.into_inner();
        let tenant = identity.tenant(&request.tenant)?;
        let (entry, versions) = self
            .blocking(move |registry| {
                let entry = registry
                    .resolve(&tenant, &request.reference)
                    .map_err(status)?;
                let versions = registry
                    .versions_of(&tenant, &entry.version.name)
                    .map_err(status)?;
                Ok((entry, versions))
            })
            .await?;
        Ok(Response::new(pb::ShowModuleReply {
            module: Some(pb::ModuleVersion::from(&entry)),
            versions: versions.iter().map(pb::ModuleVersion::from).collect(),
        }))
    }

    async fn remove(
        &self,
        request: Request<pb::ModuleRequest>,
    ) -> Result<Response<pb::RemoveModuleReply>, Status> {
        let identity = identity_of(&request);
        let request = request.into_inner();
        let tenant = identity.tenant(&request.tenant)?;
        let removal = self
            .blocking(move |registry| registry.remove(&tenant, &request.reference).map_err(status))
            .await?;
        Ok(Response::new(pb::RemoveModuleReply::from(&removal)))
    }

    type FetchStream = Pin<Box<dyn Stream<Item = Result<pb::ModuleChunk, Status>> + Send>>;

    async fn fetch(
        &self,
        request: Request<pb::FetchModuleRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let identity = identity_of(&request);
        let request = request.into_inner();
        let tenant = identity.fetch_tenant(&request.tenant)?;
        let id: ModuleId = request.id.parse().map_err(Status::invalid_argument)?;
        let bytes = self
            .blocking(move |registry| {
                // Only a module this tenant registered: `read` alone would serve any tenant's bytes.
                let entry = registry.resolve(&tenant, &id.to_string()).map_err(status)?;
                registry.read(&entry.version.id).map_err(status)
            })
            .await?;
        // Chunks are cut as the stream is polled, so the module is held in memory once.
        let chunks = bytes.len().div_ceil(CHUNK_BYTES);
        let stream = tokio_stream::iter((0..chunks).map(move |i| {
            let end = ((i + 1) * CHUNK_BYTES).min(bytes.len());
            Ok(pb::ModuleChunk {
                data: bytes[i * CHUNK_BYTES..end].to_vec(),
            })
        }));
        Ok(Response::new(Box::pin(stream)))
    }
}
