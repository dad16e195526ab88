//! Compiled artifacts: a module loaded from one behaves as the compiled module did, and a damaged or
//! foreign artifact is refused rather than run.

use weft_host::{ArtifactError, Engine, GuestModule, Records, SandboxLimits};

use crate::{engine, read};

fn textkit_artifact() -> Vec<u8> {
    let bytes = read(weft_examples::TEXTKIT_RUST);
    GuestModule::new(engine(), &bytes)
        .unwrap()
        .to_artifact()
        .unwrap()
}

fn load(artifact: &[u8]) -> Result<GuestModule, ArtifactError> {
    // SAFETY: every artifact here comes from `to_artifact` in this process (or is a damaged copy
    // of one, which is what the digest check refuses before wasmtime sees it).
    unsafe { GuestModule::deserialize(engine(), artifact) }
}

#[test]
fn a_loaded_artifact_runs_like_the_compiled_module() {
    let bytes = read(weft_examples::TEXTKIT_RUST);
    let compiled = GuestModule::new(engine(), &bytes).unwrap();
    let loaded = load(&compiled.to_artifact().unwrap()).unwrap();
    assert_eq!(loaded.udfs(), compiled.udfs());

    let input = Records::from_pairs([("1", "hello"), ("2", "Wörld 42")]);
    let mut a = compiled.instantiate(&SandboxLimits::default()).unwrap();
    let mut b = loaded.instantiate(&SandboxLimits::default()).unwrap();
    let want = a.map("upper", &input).unwrap();
    let got = b.map("upper", &input).unwrap();
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        want.iter().collect::<Vec<_>>()
    );
    assert_eq!(got.values().value(1), "WöRLD 42".as_bytes());
}

#[test]
fn a_loaded_artifact_knows_which_reduces_have_a_combiner() {
    let bytes = read(weft_examples::WORDCOUNT_RUST);
    let compiled = GuestModule::new(engine(), &bytes).unwrap();
    let loaded = load(&compiled.to_artifact().unwrap()).unwrap();
    assert_eq!(loaded.udfs(), compiled.udfs());
    let combiners: Vec<(&str, bool)> = loaded
        .udfs()
        .iter()
        .map(|u| (u.name.as_str(), u.combiner))
        .collect();
    assert_eq!(
        combiners,
        [("long_words", false), ("split_words", false), ("sum", true)]
    );
}

#[test]
fn a_damaged_artifact_is_refused() {
    let artifact = textkit_artifact();

    // One flipped bit in the machine code: wasmtime alone would load it.
    let mut flipped = artifact.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    assert!(matches!(load(&flipped), Err(ArtifactError::Corrupt(_))));

    // Cut short, as by a crash mid-write.
    let truncated = &artifact[..artifact.len() - 100];
    assert!(matches!(load(truncated), Err(ArtifactError::Corrupt(_))));
    assert!(matches!(load(&[]), Err(ArtifactError::Corrupt(_))));

    // A plain wasm module is not an artifact.
    let wasm = read(weft_examples::TEXTKIT_RUST);
    assert!(matches!(load(&wasm), Err(ArtifactError::Corrupt(_))));
}

#[test]
fn an_artifact_of_another_engine_configuration_is_refused() {
    // Bytes with an intact trailer that wasmtime does not recognise as its own: the digest proves
    // integrity, not origin, so wasmtime's own checks still apply.
    let mut body = b"\x7fELF not really a compiled module".to_vec();
    let digest = *blake3::hash(&body).as_bytes();
    body.extend_from_slice(b"weft-artifact-v1");
    body.extend_from_slice(&digest);
    assert!(matches!(load(&body), Err(ArtifactError::Load(_))));
}

#[test]
fn the_compatibility_hash_is_stable_and_hex() {
    let hash = engine().compatibility_hash();
    assert_eq!(hash.len(), 32, "{hash}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    // Another engine of the same configuration (as in another process) agrees.
    assert_eq!(Engine::new().unwrap().compatibility_hash(), hash);
}
