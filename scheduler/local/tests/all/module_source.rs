//! The worker's `RegistryModuleSource` against the scheduler's registry service on loopback: a
//! worker's modules come by id from the scheduler, are cached on disk, checked against their id
//! every time, and an unreachable or lying scheduler is named (the typed client refuses a lie
//! too).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::Routes;
use weft_host::{Engine, ValidationLimits};
use weft_proto::v1 as pb;
use weft_scheduler::client::{ClientError, RegistryClient};
use weft_scheduler::service::RegistryService;
use weft_scheduler::{ModuleId, Registry, Tenant};
use weft_task::error_chain;
use weft_testkit::grpc::{Served, serve};
use weft_worker::{FetchError, ModuleSource, RegistryModuleSource};

/// The scheduler's registry service over a registry in `dir`.
async fn serve_registry(dir: &Path) -> Served {
    let registry = Arc::new(Registry::open(dir).unwrap());
    let service = RegistryService::new(
        registry,
        Engine::new().unwrap(),
        ValidationLimits::default(),
    );
    serve(Routes::new(service.server())).await
}

fn source(url: &str, cache: &Path) -> Arc<RegistryModuleSource> {
    Arc::new(RegistryModuleSource::new(
        url.to_owned(),
        cache.to_owned(),
        tokio::runtime::Handle::current(),
    ))
}

/// Calls the source as the executor does: on a blocking thread, never on a runtime thread.
async fn fetch_via(
    source: &Arc<RegistryModuleSource>,
    tenant: &str,
    id: &str,
) -> Result<Vec<u8>, FetchError> {
    let (source, tenant, id) = (source.clone(), tenant.to_owned(), id.to_owned());
    tokio::task::spawn_blocking(move || source.fetch(&tenant, &id))
        .await
        .unwrap()
}

fn cached_file(cache: &Path, id: &ModuleId) -> PathBuf {
    cache.join("modules").join(format!("{}.wasm", id.hex()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_source_fetches_caches_and_repairs_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_registry(dir.path()).await;
    let url = served.url.clone();
    let bytes = std::fs::read(weft_examples::WORDCOUNT_RUST).unwrap();
    let id = RegistryClient::connect(&url)
        .await
        .unwrap()
        .register(&Tenant::default(), "wordcount", &[], &bytes)
        .await
        .unwrap()
        .id;
    let cache = tempfile::tempdir().unwrap();
    let source = source(&url, cache.path());
    let file = cached_file(cache.path(), &id);

    assert!(
        fetch_via(&source, "default", &id.to_string())
            .await
            .unwrap()
            == bytes
    );
    assert!(std::fs::read(&file).unwrap() == bytes);
    // Only the module itself is left in the cache: no temporary files.
    assert_eq!(
        std::fs::read_dir(cache.path().join("modules"))
            .unwrap()
            .count(),
        1
    );

    // A damaged copy is noticed, replaced by a fresh download, and not handed out.
    std::fs::write(&file, b"bit rot").unwrap();
    assert!(
        fetch_via(&source, "default", &id.to_string())
            .await
            .unwrap()
            == bytes
    );
    assert!(std::fs::read(&file).unwrap() == bytes);

    // Another tenant's task cannot download it (a cold cache asks the scheduler, which refuses).
    let other_cache = tempfile::tempdir().unwrap();
    let other = self::source(&url, other_cache.path());
    let error = fetch_via(&other, "b", &id.to_string()).await.unwrap_err();
    assert!(matches!(error, FetchError::Rpc { .. }), "{error:?}");
    assert_eq!(
        error_chain(&error),
        format!(
            "cannot fetch the module from the scheduler at {url}: no module {id} in the registry"
        )
    );

    // With the scheduler gone, the intact cached copy still serves...
    served.stop().await;
    assert!(
        fetch_via(&source, "default", &id.to_string())
            .await
            .unwrap()
            == bytes
    );
    // ...and a damaged one is an error naming the scheduler.
    std::fs::write(&file, b"bit rot").unwrap();
    let error = fetch_via(&source, "default", &id.to_string())
        .await
        .unwrap_err();
    let text = error_chain(&error);
    assert!(text.contains(&format!("the scheduler at {url}")), "{text}");
    assert!(!file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_scheduler_is_named() {
    // A port nobody listens on: bound, then released. (Only a concurrent bind of the very same
    // ephemeral port could make this flaky, and it would fail loudly, not pass wrongly.)
    let url = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let cache = tempfile::tempdir().unwrap();
    let id = ModuleId::of(b"anything");
    let error = fetch_via(&source(&url, cache.path()), "default", &id.to_string())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::Connect { .. }), "{error:?}");
    let text = error_chain(&error);
    assert!(
        text.starts_with(&format!("cannot reach the scheduler at {url}: ")),
        "{text}"
    );
    assert!(text.contains("refused"), "{text}");
}

/// A registry server that answers every fetch with the wrong bytes: what the client's own hash check
/// is for (a proxy or a buggy server in between).
struct LyingRegistry;

#[tonic::async_trait]
impl pb::registry_server::Registry for LyingRegistry {
    async fn register(
        &self,
        _: tonic::Request<tonic::Streaming<pb::RegisterChunk>>,
    ) -> Result<tonic::Response<pb::ModuleVersion>, tonic::Status> {
        Err(tonic::Status::unimplemented("register"))
    }
    async fn list(
        &self,
        _: tonic::Request<pb::ListModulesRequest>,
    ) -> Result<tonic::Response<pb::ListModulesReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("list"))
    }
    async fn show(
        &self,
        _: tonic::Request<pb::ModuleRequest>,
    ) -> Result<tonic::Response<pb::ShowModuleReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("show"))
    }
    async fn remove(
        &self,
        _: tonic::Request<pb::ModuleRequest>,
    ) -> Result<tonic::Response<pb::RemoveModuleReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("remove"))
    }
    type FetchStream =
        tokio_stream::Iter<std::vec::IntoIter<Result<pb::ModuleChunk, tonic::Status>>>;
    async fn fetch(
        &self,
        _: tonic::Request<pb::FetchModuleRequest>,
    ) -> Result<tonic::Response<Self::FetchStream>, tonic::Status> {
        Ok(tonic::Response::new(tokio_stream::iter(vec![Ok(
            pb::ModuleChunk {
                data: b"not the module you asked for".to_vec(),
            },
        )])))
    }
}

/// Both readers of the registry service, the typed client and the worker's source, check what
/// they download against the id they asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_that_do_not_match_their_id_are_refused() {
    let served = serve(Routes::new(pb::registry_server::RegistryServer::new(
        LyingRegistry,
    )))
    .await;
    let url = served.url.clone();
    let id = ModuleId::of(&std::fs::read(weft_examples::WORDCOUNT_RUST).unwrap());
    let actual = ModuleId::of(b"not the module you asked for");

    let client = RegistryClient::connect(&url).await.unwrap();
    match client.fetch(&Tenant::default(), &id).await {
        Err(ClientError::HashMismatch { id: i, actual: a }) => {
            assert_eq!((i, a), (id.to_string(), actual.to_string()));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }

    let cache = tempfile::tempdir().unwrap();
    let source = source(&url, cache.path());
    let error = fetch_via(&source, "default", &id.to_string())
        .await
        .unwrap_err();
    assert_eq!(
        error_chain(&error),
        format!(
            "the module from the scheduler at {url} does not match its id; it will not be used"
        )
    );
    assert!(!cached_file(cache.path(), &id).exists());
    served.stop().await;
}
