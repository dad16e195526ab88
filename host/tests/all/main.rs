//! Integration tests of the host: real guests built from source (Rust, C, WAT) called through the
//! batched ABI, and every way a module or a call can be refused.

mod artifact;
mod combine;
mod compile;
mod facts;
mod kinds;
mod limits;
mod native;
mod sandbox;
mod validation;
mod wordcount;

use std::sync::OnceLock;

use weft_host::{
    Engine, GuestInstance, GuestModule, SandboxLimits, ValidatedModule, ValidationLimits,
};

/// One engine for the whole test binary, as in a worker process.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().expect("engine"))
}

/// Validates, compiles and instantiates a module with default limits.
pub fn instantiate(bytes: &[u8]) -> GuestInstance {
    instantiate_with(bytes, &SandboxLimits::default())
}

pub fn instantiate_with(bytes: &[u8], limits: &SandboxLimits) -> GuestInstance {
    ValidatedModule::new(engine(), bytes, &ValidationLimits::default())
        .unwrap_or_else(|e| panic!("module refused: {e}"));
    GuestModule::new(engine(), bytes)
        .expect("load")
        .instantiate(limits)
        .expect("instantiate")
}

pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
