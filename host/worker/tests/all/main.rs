//! Integration tests of the task executor with real guests built from source.

mod shuffle;

use std::collections::HashMap;
use std::sync::OnceLock;

use weft_host::{Engine, GuestModule, UdfKind};
use weft_worker::StepRef;

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().unwrap())
}

/// Compiled example modules, keyed by a name used as the module id in steps.
pub fn modules() -> HashMap<String, GuestModule> {
    [
        ("wordcount", weft_examples::WORDCOUNT_RUST),
        ("wordcount-c", weft_examples::WORDCOUNT_C),
        ("textkit", weft_examples::TEXTKIT_RUST),
    ]
    .into_iter()
    .map(|(name, path)| {
        let bytes = std::fs::read(path).unwrap();
        (name.to_owned(), engine().load(&bytes).unwrap())
    })
    .collect()
}

pub fn step(kind: UdfKind, module: &str, function: &str) -> StepRef {
    StepRef {
        kind,
        module: module.to_owned(),
        function: function.to_owned(),
        label: module.to_owned(),
    }
}
