//! A registry holding the example modules, built from source by `weft-examples`, registered under
//! the names the example job files use.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use weft_host::{Engine, ValidatedModule, ValidationLimits};
use weft_scheduler::{Registry, Tenant};

/// Every example module with a name, as `scripts/demo.sh` registers them.
pub const EXAMPLES: [(&str, &str); 3] = [
    ("wordcount", weft_examples::WORDCOUNT_RUST),
    ("stocks", weft_examples::STOCKS_RUST),
    ("textkit", weft_examples::TEXTKIT_RUST),
];

/// Validates and registers every example module in `registry`, for the default tenant.
pub fn register_examples(registry: &Registry) {
    let engine = Engine::new().unwrap();
    for (name, path) in EXAMPLES {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let module = ValidatedModule::new(&engine, &bytes, &ValidationLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        registry
            .register(&Tenant::default(), name, &module, &[])
            .unwrap();
    }
}

/// A registry in `dir` holding the example modules.
pub fn examples_registry(dir: &Path) -> Arc<Registry> {
    let registry = Registry::open(dir).unwrap();
    register_examples(&registry);
    Arc::new(registry)
}

/// One registry of the example modules for the whole test binary (registering validates every
/// module, which takes a while in a debug build).
pub fn shared_examples_registry() -> Arc<Registry> {
    static REGISTRY: OnceLock<(tempfile::TempDir, Arc<Registry>)> = OnceLock::new();
    let (_, registry) = REGISTRY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let registry = examples_registry(dir.path());
        (dir, registry)
    });
    Arc::clone(registry)
}
