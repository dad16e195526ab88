//! Module validation: everything Weft checks before it accepts a guest ([`ValidatedModule::new`]),
//! and the static read of a module's imports and exports that compiling it repeats ([`inspect`]).
//!
//! Cheap checks first, so hostile input costs little: the size limit, the magic bytes, then
//! wasmtime's full validation, then a static read of imports and exports (no code runs), and last a
//! sandboxed instantiation that runs `_initialize` and asks the guest its ABI version.

use std::collections::BTreeMap;
use std::time::Duration;

use wasmparser::{CompositeInnerType, ExternalKind, Parser, Payload, TypeRef};
use weft_abi::UdfKind;

use crate::compile::Compiler;
use crate::engine::{Engine, SandboxLimits};
use crate::error::ValidationError;
use crate::info::{ModuleInfo, UdfInfo};
use crate::signature::{Signature, sig};
use crate::wasm;

/// Limits checked at registration, and where its compile runs (which bounds the compile's time
/// and memory).
#[derive(Debug, Clone)]
pub struct ValidationLimits {
    /// Largest module accepted, in bytes.
    pub max_module_bytes: usize,
    pub compiler: Compiler,
    /// How long the module's start (`_initialize`, then `weft_abi_version`) may run.
    pub max_startup_time: Duration,
}

/// A tenant's ceilings on what it registers, each under the server's [`ValidationLimits`] (`None`:
/// the server's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModuleLimits {
    pub max_module_bytes: Option<usize>,
    /// How long compiling one of its modules may take.
    pub compile_time: Option<Duration>,
    /// The memory compiling one of its modules may use.
    pub compile_memory: Option<u64>,
}

impl ValidationLimits {
    /// These limits, lowered to `tenant`'s ceilings where those are lower.
    pub fn capped_by(&self, tenant: &ModuleLimits) -> ValidationLimits {
        ValidationLimits {
            max_module_bytes: tenant
                .max_module_bytes
                .map_or(self.max_module_bytes, |m| m.min(self.max_module_bytes)),
            compiler: self
                .compiler
                .capped(tenant.compile_time, tenant.compile_memory),
            max_startup_time: self.max_startup_time,
        }
    }
}

/// Default size limit: generous for real guests (a Rust guest with std is ~100 KiB–2 MiB) while
/// keeping a registry and every worker's cache safe from accidental uploads.
pub const DEFAULT_MAX_MODULE_BYTES: usize = 64 << 20;

/// Default time a module's start may take at registration.
pub const DEFAULT_MAX_STARTUP_TIME: Duration = Duration::from_secs(10);

impl Default for ValidationLimits {
    fn default() -> Self {
        ValidationLimits {
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            compiler: Compiler::InProcess,
            max_startup_time: DEFAULT_MAX_STARTUP_TIME,
        }
    }
}

/// Bytes that passed every check, with what was learned. Only [`ValidatedModule::new`] makes one,
/// so a registry that takes a `ValidatedModule` cannot store unchecked bytes.
#[derive(Debug)]
pub struct ValidatedModule<'a> {
    bytes: &'a [u8],
    info: ModuleInfo,
}

impl<'a> ValidatedModule<'a> {
    /// Runs every registration check on `bytes` with `engine` and returns them validated, with
    /// their UDF table.
    pub fn new(
        engine: &Engine,
        bytes: &'a [u8],
        limits: &ValidationLimits,
    ) -> Result<ValidatedModule<'a>, ValidationError> {
        if bytes.len() > limits.max_module_bytes {
            return Err(ValidationError::TooLarge {
                size: bytes.len(),
                limit: limits.max_module_bytes,
            });
        }
        let inspected = inspect(engine, bytes)?;
        let module = limits.compiler.compile(engine, bytes)?;
        // Start it once under tight limits: `_initialize` must not trap and the guest must report
        // the ABI version it was built for.
        let startup = SandboxLimits {
            max_memory_bytes: 256 << 20,
            max_call_time: limits.max_startup_time,
            max_captured_output: 64 << 10,
            max_batch_output_bytes: 0,
        };
        let abi_version = wasm::probe_abi_version(engine, &module, &startup)?;
        if abi_version != weft_abi::ABI_VERSION {
            return Err(ValidationError::AbiVersion {
                found: abi_version,
                expected: weft_abi::ABI_VERSION,
            });
        }
        Ok(ValidatedModule {
            bytes,
            info: ModuleInfo {
                udfs: inspected.udfs,
                abi_version,
                wasi_imports: inspected.wasi_imports,
                size: bytes.len(),
            },
        })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }
}

/// The result of the static read of a module: its UDF table and imports.
#[derive(Debug)]
pub(crate) struct Inspected {
    pub(crate) udfs: Vec<UdfInfo>,
    pub(crate) wasi_imports: Vec<String>,
}

/// The static checks: wasm validity, imports, required exports and UDF signatures. No guest code
/// runs.
pub(crate) fn inspect(engine: &Engine, bytes: &[u8]) -> Result<Inspected, ValidationError> {
    check_magic(bytes)?;
    wasmtime::Module::validate(engine.wasm(), bytes)
        .map_err(|e| ValidationError::Invalid(format!("{e:#}")))?;

    let mut types: Vec<Option<Signature>> = Vec::new();
    let mut funcs: Vec<u32> = Vec::new(); // function index -> type index
    let mut memories: Vec<wasmparser::MemoryType> = Vec::new();
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    let mut wasi_imports = Vec::new();
    // The `weft.udfs` sections, concatenated as a linker would (ABI.md §3b).
    let mut facts: Vec<u8> = Vec::new();
    let invalid = |e: wasmparser::BinaryReaderError| ValidationError::Invalid(e.to_string());

    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(invalid)?.into_types() {
                        types.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(Signature::of_parser(f)),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    let forbidden = |kind| ValidationError::ForbiddenImport {
                        module: import.module.to_owned(),
                        name: import.name.to_owned(),
                        kind,
                    };
                    let type_index = match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => t,
                        TypeRef::Memory(_) => return Err(forbidden("memory")),
                        TypeRef::Table(_) => return Err(forbidden("table")),
                        TypeRef::Global(_) => return Err(forbidden("global")),
                        TypeRef::Tag(_) => return Err(forbidden("tag")),
                    };
                    let provided = (import.module == weft_abi::WASI_MODULE)
                        .then(|| engine.wasi_function(import.name))
                        .flatten()
                        .ok_or_else(|| forbidden("function"))?;
                    let found = func_sig(&types, type_index)?;
                    if &found != provided {
                        return Err(ValidationError::ImportTypeMismatch {
                            module: import.module.to_owned(),
                            name: import.name.to_owned(),
                            expected: provided.to_string(),
                            found: found.to_string(),
                        });
                    }
                    funcs.push(type_index);
                    wasi_imports.push(import.name.to_owned());
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    funcs.push(ty.map_err(invalid)?);
                }
            }
            Payload::MemorySection(reader) => {
                for mem in reader {
                    memories.push(mem.map_err(invalid)?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    exports.push((export.name.to_owned(), export.kind, export.index));
                }
            }
            Payload::CustomSection(reader) if reader.name() == weft_abi::facts::SECTION => {
                // Bounded before it is copied: a hostile module may hold gigabytes of it.
                if facts.len() + reader.data().len() > weft_abi::facts::MAX_SECTION_BYTES {
                    return Err(weft_abi::facts::FactsError {
                        line: 0,
                        reason: "is over 64 KiB",
                    }
                    .into());
                }
                facts.extend_from_slice(reader.data());
            }
            _ => {}
        }
    }

    let func_type = |index: u32| -> Result<Signature, ValidationError> {
        let ty = funcs.get(index as usize).copied().ok_or_else(|| {
            ValidationError::Invalid(format!("function index {index} out of range"))
        })?;
        func_sig(&types, ty)
    };
    let find = |name: &str| exports.iter().find(|(n, _, _)| n == name);

    // The memory: defined (imports were refused above), 32-bit, not shared.
    match find(weft_abi::MEMORY_EXPORT) {
        Some((_, ExternalKind::Memory, index)) => {
            let mem = memories.get(*index as usize).ok_or_else(|| {
                ValidationError::Invalid(format!("memory index {index} out of range"))
            })?;
            if mem.memory64 || mem.shared {
                return Err(ValidationError::UnsupportedMemory(
                    "the exported memory must be a 32-bit, unshared memory".into(),
                ));
            }
        }
        _ => {
            return Err(ValidationError::MissingExport {
                name: weft_abi::MEMORY_EXPORT,
                what: "its linear memory",
            });
        }
    }

    let required: [(&'static str, &'static str, Signature); 3] = [
        (
            weft_abi::ABI_VERSION_EXPORT,
            "a function returning the ABI version",
            sig(&[], &["i32"]),
        ),
        (
            weft_abi::ALLOC_EXPORT,
            "the allocator the host uses for input buffers",
            sig(&["i32", "i32"], &["i32"]),
        ),
        (
            weft_abi::FREE_EXPORT,
            "the deallocator matching weft_alloc",
            sig(&["i32", "i32", "i32"], &[]),
        ),
    ];
    for (name, what, expected) in required {
        let Some((_, kind, index)) = find(name) else {
            return Err(ValidationError::MissingExport { name, what });
        };
        check_func_export(name, *kind, *index, &expected, &func_type)?;
    }
    if let Some((name, kind, index)) = find(weft_abi::INITIALIZE_EXPORT) {
        check_func_export(name, *kind, *index, &sig(&[], &[]), &func_type)?;
    }

    let udf_sig = sig(&["i32"], &["i32"]);
    let combine_sig = sig(&["i32", "i32"], &["i32"]);
    let mut udfs: BTreeMap<String, UdfKind> = BTreeMap::new();
    let mut combiners = Vec::new();
    for (name, kind, index) in &exports {
        if !name.starts_with(weft_abi::EXPORT_PREFIX)
            || [
                weft_abi::ABI_VERSION_EXPORT,
                weft_abi::ALLOC_EXPORT,
                weft_abi::FREE_EXPORT,
            ]
            .contains(&name.as_str())
        {
            continue;
        }
        if let Some(reduce) = weft_abi::split_combine_export(name) {
            check_func_export(name, *kind, *index, &combine_sig, &func_type)?;
            combiners.push((name, reduce));
            continue;
        }
        let Some((udf_kind, udf_name)) = UdfKind::split_export(name) else {
            return Err(ValidationError::UnknownWeftExport(name.clone()));
        };
        check_func_export(name, *kind, *index, &udf_sig, &func_type)?;
        if let Some(first) = udfs.insert(udf_name.to_owned(), udf_kind) {
            return Err(ValidationError::DuplicateUdf {
                name: udf_name.to_owned(),
                first,
                second: udf_kind,
            });
        }
    }
    if udfs.is_empty() {
        return Err(ValidationError::NoUdfs);
    }
    let mut combined = std::collections::BTreeSet::new();
    for (export, reduce) in combiners {
        combined.insert(reduce);
        if udfs.get(reduce) != Some(&UdfKind::Reduce) {
            return Err(ValidationError::OrphanCombiner {
                export: export.clone(),
                name: reduce.to_owned(),
            });
        }
    }
    let key_unused = key_unused_udfs(&facts, &udfs)?;
    wasi_imports.sort();
    wasi_imports.dedup();
    Ok(Inspected {
        udfs: udfs
            .into_iter()
            .map(|(name, kind)| UdfInfo {
                combiner: combined.contains(name.as_str()),
                key_unused: key_unused.contains(name.as_str()),
                name,
                kind,
            })
            .collect(),
        wasi_imports,
    })
}

/// The UDFs the `weft.udfs` sections (`facts`, concatenated) say never read their keys. A line
/// naming a function that is not one of `udfs` is refused, so a typo in another language's SDK is
/// caught at registration rather than silently ignored.
fn key_unused_udfs<'a>(
    facts: &'a [u8],
    udfs: &BTreeMap<String, UdfKind>,
) -> Result<std::collections::BTreeSet<&'a str>, ValidationError> {
    let mut unknown = None;
    let mut key_unused = std::collections::BTreeSet::new();
    weft_abi::facts::parse(facts, |entry| {
        if !udfs.contains_key(entry.name) {
            unknown.get_or_insert((entry.line, entry.name));
        } else if entry.key_unused {
            key_unused.insert(entry.name);
        }
    })?;
    match unknown {
        Some((line, name)) => Err(ValidationError::UdfFactsUnknownUdf {
            line,
            name: name.to_owned(),
        }),
        None => Ok(key_unused),
    }
}

fn check_magic(bytes: &[u8]) -> Result<(), ValidationError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(ValidationError::NotWasm(
            "the file does not start with the wasm magic bytes \\0asm".into(),
        ));
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Ok(()),
        // A component's version field carries layer 1 in its upper half.
        [_, _, 1, 0] => Err(ValidationError::NotWasm(
            "this is a WebAssembly component; Weft runs core modules (see guest-sdk/ABI.md)".into(),
        )),
        _ => Err(ValidationError::NotWasm(format!(
            "unsupported wasm binary version {:?}",
            &bytes[4..8]
        ))),
    }
}

fn func_sig(types: &[Option<Signature>], index: u32) -> Result<Signature, ValidationError> {
    types
        .get(index as usize)
        .cloned()
        .flatten()
        .ok_or_else(|| ValidationError::Invalid(format!("type {index} is not a function type")))
}

fn check_func_export(
    name: &str,
    kind: ExternalKind,
    index: u32,
    expected: &Signature,
    func_type: &impl Fn(u32) -> Result<Signature, ValidationError>,
) -> Result<(), ValidationError> {
    let found = match kind {
        ExternalKind::Func | ExternalKind::FuncExact => func_type(index)?.to_string(),
        other => format!("{other:?} (not a function)").to_lowercase(),
    };
    if found != expected.to_string() {
        return Err(ValidationError::WrongExportType {
            name: name.to_owned(),
            expected: expected.to_string(),
            found,
        });
    }
    Ok(())
}
