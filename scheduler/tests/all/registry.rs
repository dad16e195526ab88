//! The content-addressed registry: ids, versions, tags, tenants, hash verification, removal.

use std::sync::OnceLock;

use weft_host::{Engine, ValidatedModule, ValidationLimits};
use weft_scheduler::{Registry, RegistryError, Tenant};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().unwrap())
}

fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn register(
    reg: &Registry,
    tenant: &Tenant,
    name: &str,
    bytes: &[u8],
    tags: &[&str],
) -> weft_scheduler::registry::Registration {
    let module = ValidatedModule::new(engine(), bytes, &ValidationLimits::default()).unwrap();
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    reg.register(tenant, name, &module, &tags).unwrap()
}

fn blob_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("blobs")).unwrap().count()
}

#[test]
fn ids_are_blake3_of_the_bytes_and_blobs_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let t = Tenant::default();
    let bytes = wasm(weft_examples::WORDCOUNT_RUST);

    let first = register(&reg, &t, "wordcount", &bytes, &[]);
    let expected = format!("blake3:{}", blake3::hash(&bytes).to_hex());
    assert_eq!(first.id.to_string(), expected);
    assert_eq!(
        (first.version, first.new_version, first.stored_blob),
        (1, true, true)
    );

    let again = register(&reg, &t, "wordcount", &bytes, &[]);
    assert_eq!(
        (
            again.id,
            again.version,
            again.new_version,
            again.stored_blob
        ),
        (first.id, 1, false, false)
    );

    // The same bytes under another name: a new name, still one blob.
    let alias = register(&reg, &t, "wc-alias", &bytes, &[]);
    assert_eq!(
        (alias.id, alias.version, alias.stored_blob),
        (first.id, 1, false)
    );
    assert_eq!(blob_files(dir.path()), 1);
    assert_eq!(reg.read(&first.id).unwrap(), bytes);
}

#[test]
fn new_bytes_make_a_new_version_and_old_ones_stay_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let t = Tenant::default();
    let rust = wasm(weft_examples::WORDCOUNT_RUST);
    let c = wasm(weft_examples::WORDCOUNT_C);

    let v1 = register(&reg, &t, "wc", &rust, &["stable"]);
    let v2 = register(&reg, &t, "wc", &c, &[]);
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_ne!(v1.id, v2.id);

    assert_eq!(reg.resolve(&t, "wc").unwrap().version.id, v2.id);
    assert_eq!(reg.resolve(&t, "wc@1").unwrap().version.id, v1.id);
    assert_eq!(reg.resolve(&t, "wc@stable").unwrap().version.id, v1.id);
    assert_eq!(
        reg.resolve(&t, &v1.id.to_string()).unwrap().version.version,
        1
    );
    let udfs: Vec<(String, String)> = reg
        .resolve(&t, "wc@2")
        .unwrap()
        .module
        .udfs
        .into_iter()
        .map(|u| (u.name, u.kind))
        .collect();
    assert_eq!(
        udfs,
        [
            ("long_words".into(), "filter".into()),
            ("split_words".into(), "flat_map".into()),
            ("sum".into(), "reduce".into())
        ]
    );

    // Moving a tag takes it off the old version.
    register(&reg, &t, "wc", &c, &["stable"]);
    assert_eq!(reg.resolve(&t, "wc@stable").unwrap().version.version, 2);
    assert!(reg.resolve(&t, "wc@1").unwrap().version.tags.is_empty());

    assert!(matches!(
        reg.resolve(&t, "wc@3"),
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        reg.resolve(&t, "nope"),
        Err(RegistryError::NotFound(_))
    ));
    assert_eq!(reg.list(&t).unwrap().len(), 2);
}

#[test]
fn the_index_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tenant::default();
    let id = {
        let reg = Registry::open(dir.path()).unwrap();
        register(&reg, &t, "stocks", &wasm(weft_examples::STOCKS_RUST), &[]).id
    };
    let reg = Registry::open(dir.path()).unwrap();
    let entry = reg.resolve(&t, "stocks").unwrap();
    assert_eq!(entry.version.id, id);
    assert!(
        entry
            .module
            .udfs
            .iter()
            .any(|u| u.name == "max" && u.kind == "reduce")
    );
}

#[test]
fn tenants_do_not_see_each_others_modules() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let (a, b) = (Tenant::new("alpha").unwrap(), Tenant::new("beta").unwrap());
    let id = register(&reg, &a, "wc", &wasm(weft_examples::WORDCOUNT_WAT), &[]).id;
    assert!(matches!(
        reg.resolve(&b, "wc"),
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        reg.resolve(&b, &id.to_string()),
        Err(RegistryError::NotFound(_))
    ));
    assert!(reg.list(&b).unwrap().is_empty());
    assert!(matches!(
        reg.remove(&b, &id.to_string()),
        Err(RegistryError::NotFound(_))
    ));
    assert_eq!(reg.resolve(&a, "wc").unwrap().version.id, id);
}

#[test]
fn a_tampered_blob_is_detected_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let id = register(
        &reg,
        &Tenant::default(),
        "wc",
        &wasm(weft_examples::WORDCOUNT_WAT),
        &[],
    )
    .id;
    let path = dir.path().join("blobs").join(format!("{}.wasm", id.hex()));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(reg.read(&id), Err(RegistryError::Corrupt { .. })));
    // Registering the real bytes again repairs the blob.
    register(
        &reg,
        &Tenant::default(),
        "wc",
        &wasm(weft_examples::WORDCOUNT_WAT),
        &[],
    );
    assert!(reg.read(&id).is_ok());
}

#[test]
fn removal_deletes_a_blob_only_when_nothing_refers_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let t = Tenant::default();
    let rust = wasm(weft_examples::WORDCOUNT_RUST);
    let id = register(&reg, &t, "wc", &rust, &[]).id;
    register(&reg, &t, "alias", &rust, &[]);
    register(&reg, &t, "wc", &wasm(weft_examples::WORDCOUNT_C), &[]);

    let removed = reg.remove(&t, "wc@1").unwrap();
    assert_eq!(removed.versions.len(), 1);
    assert!(removed.deleted_blobs.is_empty(), "alias still refers to it");
    assert!(reg.read(&id).is_ok());

    let removed = reg.remove(&t, "alias").unwrap();
    assert_eq!(removed.deleted_blobs, [id]);
    assert!(matches!(reg.read(&id), Err(RegistryError::NotFound(_))));
    assert_eq!(reg.list(&t).unwrap().len(), 1);
    assert!(matches!(
        reg.remove(&t, "alias"),
        Err(RegistryError::NotFound(_))
    ));
}

#[test]
fn bad_names_and_references_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let bytes = wasm(weft_examples::WORDCOUNT_WAT);
    let module = ValidatedModule::new(engine(), &bytes, &ValidationLimits::default()).unwrap();
    for name in ["", "a/b", "a@b", "blake3:x", "white space"] {
        assert!(
            matches!(
                reg.register(&Tenant::default(), name, &module, &[]),
                Err(RegistryError::InvalidName(_))
            ),
            "{name:?}"
        );
    }
    assert!(matches!(
        reg.register(&Tenant::default(), "ok", &module, &["12".into()]),
        Err(RegistryError::InvalidTag(_))
    ));
    assert!(matches!(
        reg.resolve(&Tenant::default(), "blake3:zz"),
        Err(RegistryError::InvalidReference { .. })
    ));
    assert!(reg.list(&Tenant::default()).unwrap().is_empty());
}
