//! Compiled artifacts: a [`GuestModule`] as bytes that a later process of the same build can load
//! without compiling the module again (compiling is the expensive part of starting a task).
//!
//! An artifact is wasmtime's serialized module followed by a trailer: a magic string and the blake3
//! digest of everything before it. wasmtime checks that an artifact was built by a compatible
//! engine, but not that its machine code is intact; the digest is what lets a reader refuse a file
//! damaged on disk or cut short by a crash instead of running it.
//!
//! Loading takes the artifact's bytes (`Module::deserialize`) rather than a path
//! (`Module::deserialize_file`, which maps the file): the digest has to be checked over exactly the
//! bytes wasmtime will run, and a file mapped after the check need not be the file checked. The cost
//! is one read of the file, small next to the compilation it saves.

use wasmtime::ExternType;
use weft_abi::UdfKind;

use crate::engine::Engine;
use crate::error::ArtifactError;
use crate::guest::GuestModule;
use crate::validate::UdfInfo;

/// Marks the trailer; the version digit changes if the trailer's layout does.
const MAGIC: &[u8; 16] = b"weft-artifact-v1";
const TRAILER: usize = MAGIC.len() + blake3::OUT_LEN;

impl GuestModule {
    /// The module as an artifact for [`Engine::load_artifact`].
    pub fn to_artifact(&self) -> Result<Vec<u8>, ArtifactError> {
        let pre = self
            .wasm()
            .ok_or_else(|| ArtifactError::Serialize("a native module has no artifact".into()))?;
        let mut bytes = pre
            .module()
            .serialize()
            .map_err(|e| ArtifactError::Serialize(format!("{e:#}")))?;
        let digest = blake3::hash(&bytes);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(digest.as_bytes());
        Ok(bytes)
    }
}

impl Engine {
    /// Loads an artifact made by [`GuestModule::to_artifact`], without compiling. A damaged or
    /// truncated artifact ([`ArtifactError::Corrupt`]) and one built by an incompatible engine
    /// ([`ArtifactError::Load`]) are refused; the caller should compile the module instead.
    ///
    /// # Safety
    ///
    /// `artifact` must have been produced by [`GuestModule::to_artifact`] (in this process or
    /// another). The digest only detects accidental damage: anyone who can write the bytes can
    /// forge it, and wasmtime runs the machine code of an artifact as it is, outside the sandbox's
    /// checks. Never pass bytes from an untrusted source.
    pub unsafe fn load_artifact(&self, artifact: &[u8]) -> Result<GuestModule, ArtifactError> {
        let body_len = artifact
            .len()
            .checked_sub(TRAILER)
            .ok_or_else(|| ArtifactError::Corrupt(format!("only {} bytes", artifact.len())))?;
        let (body, trailer) = artifact.split_at(body_len);
        let (magic, digest) = trailer.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err(ArtifactError::Corrupt("no Weft artifact trailer".into()));
        }
        if blake3::hash(body).as_bytes() != digest {
            return Err(ArtifactError::Corrupt(
                "the contents do not match their digest".into(),
            ));
        }
        // SAFETY: the caller promises the bytes are an artifact we serialized, and the digest
        // shows they are intact; wasmtime itself refuses one from an incompatible engine.
        let module = unsafe { wasmtime::Module::deserialize(self.wasm(), body) }
            .map_err(|e| ArtifactError::Load(format!("{e:#}")))?;
        let udfs = udfs_of(&module)?;
        let pre = self
            .linker()
            .instantiate_pre(&module)
            .map_err(|e| ArtifactError::Load(format!("{e:#}")))?;
        Ok(GuestModule::from_parts(pre, udfs))
    }
}

/// The UDF table, read back from the exports of a module that passed validation before it was
/// serialized, sorted by name as validation sorts it.
fn udfs_of(module: &wasmtime::Module) -> Result<Vec<UdfInfo>, ArtifactError> {
    let reserved = [
        weft_abi::ABI_VERSION_EXPORT,
        weft_abi::ALLOC_EXPORT,
        weft_abi::FREE_EXPORT,
    ];
    let combined: Vec<&str> = module
        .exports()
        .filter_map(|export| weft_abi::split_combine_export(export.name()))
        .collect();
    let mut udfs = Vec::new();
    for export in module.exports() {
        let name = export.name();
        if !name.starts_with(weft_abi::EXPORT_PREFIX)
            || reserved.contains(&name)
            || weft_abi::split_combine_export(name).is_some()
        {
            // A combiner is found by name when the module is instantiated.
            continue;
        }
        match (UdfKind::split_export(name), export.ty()) {
            (Some((kind, udf)), ExternType::Func(_)) => udfs.push(UdfInfo {
                name: udf.to_owned(),
                kind,
                combiner: kind == UdfKind::Reduce && combined.contains(&udf),
            }),
            // Validation refuses such a module, so it cannot have been serialized by us.
            _ => {
                return Err(ArtifactError::Corrupt(format!(
                    "unexpected export `{name}`"
                )));
            }
        }
    }
    if udfs.is_empty() {
        return Err(ArtifactError::Corrupt("the module exports no UDF".into()));
    }
    udfs.sort();
    Ok(udfs)
}
