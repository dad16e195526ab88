//! Compiled artifacts: a compiled module as bytes that a later process of the same build can load
//! without compiling it again (compiling is the expensive part of starting a task). This module
//! holds the format; `GuestModule::to_artifact` and `GuestModule::deserialize` use it.
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

use crate::error::ArtifactError;
use crate::info::UdfInfo;

/// Marks the trailer; the version digit changes if the trailer's layout does.
const MAGIC: &[u8; 16] = b"weft-artifact-v1";
const TRAILER: usize = MAGIC.len() + blake3::OUT_LEN;

/// wasmtime's serialized module `body` with its trailer: an artifact.
pub(crate) fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let digest = blake3::hash(&body);
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(digest.as_bytes());
    body
}

/// The serialized module inside an artifact, once its trailer shows it intact.
pub(crate) fn unseal(artifact: &[u8]) -> Result<&[u8], ArtifactError> {
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
    Ok(body)
}

/// The UDF table, read back from the exports of a module that passed validation before it was
/// serialized, sorted by name as validation sorts it.
pub(crate) fn udfs_of(module: &wasmtime::Module) -> Result<Vec<UdfInfo>, ArtifactError> {
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
                // A compiled artifact keeps no custom sections; workers are told by the task.
                key_unused: false,
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
