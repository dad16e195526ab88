//! The registry over gRPC: `RegistryService` served on loopback, driven by the typed
//! `RegistryClient` and by the raw generated client (for uploads the typed client never sends),
//! against a real sled registry and real example modules. (A worker fetching from it is tested
//! where both sides meet, in `weft-local`.)

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use weft_host::{Engine, ValidatedModule, ValidationLimits};
use weft_proto::v1 as pb;
use weft_scheduler::client::{ClientError, RegistryClient};
use weft_scheduler::registry::{ModuleEntry, Removal};
use weft_scheduler::service::RegistryService;
use weft_scheduler::{ModuleId, Registry, Tenant};
use weft_testkit::grpc::{Served, serve};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().unwrap())
}

fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// `module` with a custom section of `payload` bytes appended: still a valid module (validators skip
/// custom sections), but as big as a test needs.
fn padded(module: &[u8], payload: usize) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"padding";
    let mut out = module.to_vec();
    out.push(0); // custom section id
    leb128(1 + name.len() + payload, &mut out);
    leb128(name.len(), &mut out);
    out.extend_from_slice(name);
    out.extend((0..payload).map(|i| (i % 251) as u8));
    out
}

fn blobs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("registry").join("blobs"))
        .unwrap()
        .count()
}

/// A registry service on `127.0.0.1:0` over a registry in a temporary directory.
struct Server {
    url: String,
    registry: Arc<Registry>,
    dir: tempfile::TempDir,
    /// Held to keep serving: dropping it stops the server.
    _served: Served,
}

impl Server {
    async fn start(limits: ValidationLimits) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(&dir.path().join("registry")).unwrap());
        let service = RegistryService::new(registry.clone(), engine().clone(), limits);
        let served = serve(Routes::new(service.server())).await;
        Server {
            url: served.url.clone(),
            registry,
            dir,
            _served: served,
        }
    }

    async fn client(&self) -> RegistryClient {
        RegistryClient::connect(&self.url).await.unwrap()
    }

    async fn raw(&self) -> pb::registry_client::RegistryClient<tonic::transport::Channel> {
        pb::registry_client::RegistryClient::connect(self.url.clone())
            .await
            .unwrap()
    }
}

fn header(name: &str, bytes: &[u8], expected_id: &str) -> pb::RegisterHeader {
    pb::RegisterHeader {
        tenant: String::new(),
        name: name.to_owned(),
        tags: vec![],
        size: bytes.len() as u64,
        expected_id: expected_id.to_owned(),
    }
}

/// Uploads `chunks` as they are, through the raw client; returns the status of a refusal.
async fn upload(server: &Server, chunks: Vec<pb::RegisterChunk>) -> tonic::Status {
    server
        .raw()
        .await
        .register(tokio_stream::iter(chunks))
        .await
        .expect_err("the upload should have been refused")
}

fn data(bytes: &[u8]) -> pb::RegisterChunk {
    pb::RegisterChunk {
        header: None,
        data: bytes.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_many_small_chunks_is_stored_under_its_blake3_id() {
    let server = Server::start(ValidationLimits::default()).await;
    let bytes = wasm(weft_examples::WORDCOUNT_RUST);
    let expected = format!("blake3:{}", blake3::hash(&bytes).to_hex());

    // A header-only first message, then 4 KiB chunks: how a client chooses to cut is its business.
    let mut chunks = vec![pb::RegisterChunk {
        header: Some(pb::RegisterHeader {
            tags: vec!["stable".into()],
            ..header("wordcount", &bytes, &expected)
        }),
        data: vec![],
    }];
    chunks.extend(bytes.chunks(4096).map(data));
    assert!(chunks.len() > 10);
    let reply = server
        .raw()
        .await
        .register(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(reply.id, expected);
    assert_eq!(
        (
            reply.tenant.as_str(),
            reply.name.as_str(),
            reply.version,
            reply.new_version,
            reply.stored_blob
        ),
        ("default", "wordcount", 1, true, true)
    );
    assert_eq!(reply.tags, ["stable"]);
    // The reply describes exactly what the registry now holds.
    let local = server
        .registry
        .resolve(&Tenant::default(), "wordcount")
        .unwrap();
    assert_eq!(ModuleEntry::try_from(reply).unwrap(), local);
    assert_eq!(server.registry.read(&local.version.id).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_show_remove_give_what_the_local_registry_gives() {
    let server = Server::start(ValidationLimits::default()).await;
    let client = server.client().await;
    let t = Tenant::default();
    let rust = wasm(weft_examples::WORDCOUNT_RUST);
    let c = wasm(weft_examples::WORDCOUNT_C);

    let v1 = client
        .register(&t, "wordcount", &["stable".into()], &rust)
        .await
        .unwrap();
    assert_eq!(
        (
            v1.id,
            v1.name.as_str(),
            v1.version,
            v1.new_version,
            v1.stored_blob
        ),
        (ModuleId::of(&rust), "wordcount", 1, true, true)
    );
    let again = client.register(&t, "wordcount", &[], &rust).await.unwrap();
    assert_eq!(
        (again.version, again.new_version, again.stored_blob),
        (1, false, false)
    );
    let v2 = client.register(&t, "wordcount", &[], &c).await.unwrap();
    assert_eq!((v2.id, v2.version), (ModuleId::of(&c), 2));

    let listed = client.list(&t).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed, server.registry.list(&t).unwrap());

    let (entry, versions) = client.show(&t, "wordcount@stable").await.unwrap();
    assert_eq!(entry, server.registry.resolve(&t, "wordcount@1").unwrap());
    assert_eq!(
        versions,
        server.registry.versions_of(&t, "wordcount").unwrap()
    );
    let (latest, _) = client.show(&t, &v2.id.to_string()).await.unwrap();
    assert_eq!(latest.version.version, 2);

    let removal = client.remove(&t, "wordcount@1").await.unwrap();
    assert_eq!(
        removal,
        Removal {
            versions: vec![entry.version.clone()],
            deleted_blobs: vec![v1.id],
        }
    );
    assert_eq!(blobs(server.dir.path()), 1);
    let left = client.list(&t).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.version.version).collect::<Vec<_>>(),
        [2]
    );

    let missing = client.show(&t, "wordcount@1").await.unwrap_err();
    assert_eq!(missing.code(), Some(tonic::Code::NotFound));
    assert_eq!(
        missing.to_string(),
        "scheduler: no module wordcount@1 in the registry"
    );
    let malformed = client.remove(&t, "word/count").await.unwrap_err();
    assert_eq!(malformed.code(), Some(tonic::Code::InvalidArgument));
    assert_eq!(
        malformed.to_string(),
        "scheduler: invalid module reference \"word/count\": \"word/count\" is not a valid \
         module name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_bigger_than_a_chunk_goes_up_and_comes_back_identical() {
    let server = Server::start(ValidationLimits::default()).await;
    let client = server.client().await;
    let t = Tenant::default();
    // 2.5 MiB: three chunks each way.
    let bytes = padded(&wasm(weft_examples::TEXTKIT_RUST), 5 << 19);
    let registration = client.register(&t, "textkit", &[], &bytes).await.unwrap();
    assert_eq!(registration.id, ModuleId::of(&bytes));
    let fetched = client.fetch(&t, &registration.id).await.unwrap();
    assert_eq!(fetched.len(), bytes.len());
    assert!(fetched == bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_expected_id_is_refused_and_nothing_is_stored() {
    let server = Server::start(ValidationLimits::default()).await;
    let bytes = wasm(weft_examples::WORDCOUNT_RUST);
    let wrong = ModuleId::of(b"some other module");
    let status = upload(
        &server,
        vec![pb::RegisterChunk {
            header: Some(header("wordcount", &bytes, &wrong.to_string())),
            data: bytes.clone(),
        }],
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        format!(
            "the uploaded bytes hash to {}, not to the expected {wrong}: the upload was damaged \
             or is not the file meant",
            ModuleId::of(&bytes)
        )
    );
    assert_eq!(server.registry.list(&Tenant::default()).unwrap(), []);
    assert_eq!(blobs(server.dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_wasm_is_refused_with_the_validators_message() {
    let server = Server::start(ValidationLimits::default()).await;
    let client = server.client().await;
    let error = client
        .register(&Tenant::default(), "junk", &[], b"not wasm")
        .await
        .unwrap_err();
    let expected = ValidatedModule::new(engine(), b"not wasm", &ValidationLimits::default())
        .unwrap_err()
        .to_string();
    assert!(error.is_invalid_request());
    assert_eq!(error.to_string(), format!("scheduler: {expected}"));
    assert!(
        expected.starts_with("not a WebAssembly module"),
        "{expected}"
    );
    assert_eq!(server.registry.list(&Tenant::default()).unwrap(), []);
    assert_eq!(blobs(server.dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_uploads_are_refused_with_what_is_wrong() {
    let server = Server::start(ValidationLimits::default()).await;
    let bytes = wasm(weft_examples::WORDCOUNT_WAT);

    let status = upload(&server, vec![]).await;
    assert_eq!(
        (status.code(), status.message()),
        (
            tonic::Code::InvalidArgument,
            "empty upload: no header, no bytes"
        )
    );

    let status = upload(&server, vec![data(&bytes)]).await;
    assert_eq!(
        status.message(),
        "the first message of an upload must carry the header (tenant, name, tags, size)"
    );

    let first = pb::RegisterChunk {
        header: Some(header("wc", &bytes, "")),
        data: bytes[..100].to_vec(),
    };
    let status = upload(
        &server,
        vec![
            first.clone(),
            pb::RegisterChunk {
                header: Some(header("wc", &bytes, "")),
                data: bytes[100..].to_vec(),
            },
        ],
    )
    .await;
    assert_eq!(
        status.message(),
        "an upload carries one header, in its first message; a later message repeated it"
    );

    let status = upload(&server, vec![first]).await;
    assert_eq!(
        status.message(),
        format!(
            "the upload header announced {} bytes but 100 arrived; the upload is incomplete",
            bytes.len()
        )
    );

    let status = upload(
        &server,
        vec![pb::RegisterChunk {
            header: Some(header("word count", &bytes, "")),
            data: bytes.clone(),
        }],
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("invalid module name \"word count\""),
        "{}",
        status.message()
    );

    let status = upload(
        &server,
        vec![pb::RegisterChunk {
            header: Some(pb::RegisterHeader {
                tenant: "Tenant A".into(),
                ..header("wc", &bytes, "")
            }),
            data: bytes.clone(),
        }],
    )
    .await;
    assert_eq!(
        status.message(),
        "invalid tenant name \"Tenant A\": use 1-64 characters of a-z, 0-9, '_' and '-'"
    );
    assert_eq!(blobs(server.dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_upload_is_refused_as_it_arrives() {
    let limits = ValidationLimits {
        max_module_bytes: 1000,
        ..ValidationLimits::default()
    };
    let server = Server::start(limits).await;

    // An honest header over the limit: refused before any byte is read.
    let client = server.client().await;
    let bytes = wasm(weft_examples::WORDCOUNT_WAT);
    let error = client
        .register(&Tenant::default(), "wc", &[], &bytes)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "scheduler: module is {} bytes, over the size limit of 1000 bytes",
            bytes.len()
        )
    );

    // A header that understates the size: refused once the bytes pass the limit, while the stream
    // is still open (the sender is kept alive), so the server did not wait for the whole upload.
    let (tx, rx) = mpsc::channel(8);
    tx.send(pb::RegisterChunk {
        header: Some(pb::RegisterHeader {
            size: 600,
            ..header("wc", &[], "")
        }),
        data: vec![0; 600],
    })
    .await
    .unwrap();
    tx.send(data(&[0; 600])).await.unwrap();
    let mut raw = server.raw().await;
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        raw.register(ReceiverStream::new(rx)),
    )
    .await
    .expect("the server should refuse before the upload ends")
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "module is over the size limit of 1000 bytes (1200 bytes received so far)"
    );
    drop(tx);
    assert_eq!(blobs(server.dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_see_or_fetch_another_tenants_module() {
    let server = Server::start(ValidationLimits::default()).await;
    let client = server.client().await;
    let (a, b) = (Tenant::default(), Tenant::new("b").unwrap());
    let bytes = wasm(weft_examples::WORDCOUNT_RUST);
    let id = client
        .register(&a, "wordcount", &[], &bytes)
        .await
        .unwrap()
        .id;

    assert_eq!(client.list(&b).await.unwrap(), []);
    for reference in ["wordcount".to_owned(), id.to_string()] {
        let error = client.show(&b, &reference).await.unwrap_err();
        assert_eq!(error.code(), Some(tonic::Code::NotFound), "{reference}");
        let error = client.remove(&b, &reference).await.unwrap_err();
        assert_eq!(error.code(), Some(tonic::Code::NotFound), "{reference}");
    }
    let error = client.fetch(&b, &id).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("scheduler: no module {id} in the registry")
    );
    // Tenant a still has it, intact.
    assert!(client.fetch(&a, &id).await.unwrap() == bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_damaged_on_the_scheduler_is_not_served() {
    let server = Server::start(ValidationLimits::default()).await;
    let client = server.client().await;
    let t = Tenant::default();
    let bytes = wasm(weft_examples::WORDCOUNT_RUST);
    let id = client.register(&t, "wc", &[], &bytes).await.unwrap().id;
    let blob = server
        .dir
        .path()
        .join("registry/blobs")
        .join(format!("{}.wasm", id.hex()));
    std::fs::write(&blob, b"tampered").unwrap();
    let error = client.fetch(&t, &id).await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::DataLoss));
    assert_eq!(
        error.to_string(),
        format!(
            "scheduler: stored module {id} does not match its hash (file {}); it will not be used",
            blob.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_scheduler_is_named() {
    // A port nobody listens on: bound, then released. (Only a concurrent bind of the very same
    // ephemeral port could make this flaky, and it would fail loudly, not pass wrongly.)
    let url = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let error = RegistryClient::connect(&url).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Connect { url: u, .. } if *u == url),
        "{error:?}"
    );
    let text = weft_task::error_chain(&error);
    assert!(
        text.starts_with(&format!("cannot reach the scheduler at {url}: ")),
        "{text}"
    );
    assert!(text.contains("refused"), "{text}");

    let error = RegistryClient::connect("not a url").await.unwrap_err();
    let text = weft_task::error_chain(&error);
    assert!(
        text.starts_with("cannot reach the scheduler at not a url: "),
        "{text}"
    );
    assert!(text.to_lowercase().contains("uri"), "{text}");
}
