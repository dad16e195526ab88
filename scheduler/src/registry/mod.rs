//! The content-addressed module registry.
//!
//! A module's id is the blake3 hash of its bytes ([`ModuleId`]). Bytes are stored once, as
//! `blobs/<hex>.wasm` under the registry directory, whatever names point at them; the index —
//! what each blob is ([`ModuleRecord`]) and which names and versions point at it
//! ([`VersionRecord`]) — sits behind the [`RegistryIndex`] trait: in sled (`index/`,
//! [`SledIndex`]) for a registry on disk, in memory ([`MemoryIndex`]) for a throwaway one.
//!
//! Registering new bytes under an existing name adds a version; the old version stays reachable by
//! `name@N` and by id. Registering the bytes that are already the latest version of a name changes
//! nothing. Every read of a blob checks its hash, so a corrupted or swapped file is reported, never run.

mod id;
mod index;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use weft_host::{UdfInfo, UdfKind, ValidatedModule};

pub use id::ModuleId;
pub use index::{MemoryIndex, RegistryIndex, SledIndex};

use crate::Tenant;

/// Errors of the registry. Each names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry I/O on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry index")]
    Db(#[from] sled::Error),
    #[error("registry index entry {key} is unreadable: {detail}")]
    CorruptIndex { key: String, detail: String },
    #[error("invalid module name {0:?}: use 1-128 characters of A-Z, a-z, 0-9, '_', '-' and '.'")]
    InvalidName(String),
    #[error(
        "invalid tag {0:?}: use 1-64 characters of A-Z, a-z, 0-9, '_', '-' and '.', not only digits"
    )]
    InvalidTag(String),
    #[error("invalid module reference {reference:?}: {detail}")]
    InvalidReference { reference: String, detail: String },
    #[error("no module {0} in the registry")]
    NotFound(String),
    #[error("cannot store a module")]
    Store(#[source] Box<weft_io::Error>),
    #[error("stored module {id} does not match its hash (file {path}); it will not be used")]
    Corrupt { id: ModuleId, path: PathBuf },
}

/// What the registry knows about one blob, whatever its names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub id: ModuleId,
    pub size: u64,
    pub abi_version: u32,
    pub udfs: Vec<UdfRecord>,
    pub wasi_imports: Vec<String>,
    /// Unix time in milliseconds of the first registration of these bytes.
    pub first_registered_ms: u64,
}

/// A UDF as stored in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdfRecord {
    pub name: String,
    pub kind: String,
    /// A `reduce` with a combiner in its module ([`UdfInfo::combiner`]); false in records written
    /// before it was stored.
    #[serde(default)]
    pub combiner: bool,
    /// The UDF never reads its input keys ([`UdfInfo::key_unused`]); false in records written
    /// before it was stored, which only costs building the keys.
    #[serde(default)]
    pub key_unused: bool,
}

impl UdfRecord {
    /// The kind, parsed.
    pub fn kind(&self) -> Option<UdfKind> {
        UdfKind::parse(&self.kind)
    }
}

/// One version of a named module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub tenant: Tenant,
    pub name: String,
    pub version: u32,
    pub id: ModuleId,
    pub tags: Vec<String>,
    /// Unix time in milliseconds.
    pub registered_ms: u64,
}

/// A version with its module's record: what `resolve` and `list` return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleEntry {
    #[serde(flatten)]
    pub version: VersionRecord,
    pub module: ModuleRecord,
}

/// The outcome of a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub id: ModuleId,
    pub name: String,
    pub version: u32,
    /// Whether the bytes were new to the registry (false: the blob was already stored).
    pub stored_blob: bool,
    /// Whether a new version was added (false: these bytes already were the latest version).
    pub new_version: bool,
}

/// What a removal removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    pub versions: Vec<VersionRecord>,
    /// Blobs deleted because no version of any name referred to them any more.
    pub deleted_blobs: Vec<ModuleId>,
}

/// A reference to a module, as users write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRef {
    /// The latest version of a name.
    Latest(String),
    /// `name@N`.
    Version(String, u32),
    /// `name@tag`.
    Tag(String, String),
    /// `blake3:<hex>`.
    Id(ModuleId),
}

impl ModuleRef {
    /// Parses `NAME`, `NAME@VERSION`, `NAME@TAG` or `blake3:HEX`.
    pub fn parse(reference: &str) -> Result<ModuleRef, RegistryError> {
        let invalid = |detail: String| RegistryError::InvalidReference {
            reference: reference.to_owned(),
            detail,
        };
        if reference.starts_with(ModuleId::PREFIX) {
            return reference.parse().map(ModuleRef::Id).map_err(invalid);
        }
        let (name, at) = match reference.split_once('@') {
            Some((name, at)) => (name, Some(at)),
            None => (reference, None),
        };
        check_name(name).map_err(|_| invalid(format!("{name:?} is not a valid module name")))?;
        Ok(match at {
            None => ModuleRef::Latest(name.to_owned()),
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                let n = v
                    .parse()
                    .map_err(|_| invalid(format!("version {v} is too large")))?;
                ModuleRef::Version(name.to_owned(), n)
            }
            Some(tag) => {
                check_tag(tag).map_err(|_| {
                    invalid(format!("{tag:?} is neither a version nor a valid tag"))
                })?;
                ModuleRef::Tag(name.to_owned(), tag.to_owned())
            }
        })
    }
}

fn check_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(ModuleId::PREFIX)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidName(name.to_owned()))
    }
}

fn check_tag(tag: &str) -> Result<(), RegistryError> {
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && !tag.bytes().all(|b| b.is_ascii_digit())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidTag(tag.to_owned()))
    }
}

/// The registry: a blob directory and an index.
#[derive(Debug)]
pub struct Registry {
    /// Where `blobs/` is; `None` for an index without module bytes ([`Registry::of_entries`]).
    dir: Option<PathBuf>,
    index: Box<dyn RegistryIndex>,
    /// Registration and removal read-then-write several keys (next version number, tag moves, blob
    /// garbage); one writer at a time keeps them consistent.
    write_lock: Mutex<()>,
}

impl Registry {
    /// Opens (creating if needed) the registry stored in `dir`: blobs in `dir/blobs`, the index in
    /// sled at `dir/index`.
    pub fn open(dir: &Path) -> Result<Registry, RegistryError> {
        let index = SledIndex::open(&dir.join("index"))?;
        Registry::with_index(dir, Box::new(index))
    }

    /// A registry whose blobs are in `dir/blobs` and whose index is `index`.
    pub fn with_index(
        dir: &Path,
        index: Box<dyn RegistryIndex>,
    ) -> Result<Registry, RegistryError> {
        let blobs = dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|source| RegistryError::Io {
            path: blobs.clone(),
            source,
        })?;
        Ok(Registry {
            dir: Some(dir.to_owned()),
            index,
            write_lock: Mutex::new(()),
        })
    }

    /// A registry of these entries, in memory, without module bytes: what resolving and planning a
    /// job need (e.g. a cluster's entries, as `weft plan --scheduler` fetches them, or none at all
    /// for a data directory that has no registry yet). Reading a module's bytes from it says it is
    /// not found; registering in it fails.
    pub fn of_entries(
        entries: impl IntoIterator<Item = ModuleEntry>,
    ) -> Result<Registry, RegistryError> {
        let index = MemoryIndex::new();
        for entry in entries {
            index.put_module(&entry.module)?;
            index.put_version(&entry.version)?;
        }
        Ok(Registry {
            dir: None,
            index: Box::new(index),
            write_lock: Mutex::new(()),
        })
    }

    /// A copy of `tenant`'s names and versions in memory, over the same blobs, so the caller can
    /// let go of the index (and its lock: another process may then use the registry) while it
    /// keeps resolving and reading modules, e.g. for the length of a local job. A blob deleted
    /// meanwhile (`module rm` from another process) can no longer be read.
    pub fn snapshot(&self, tenant: &Tenant) -> Result<Registry, RegistryError> {
        let index = MemoryIndex::new();
        for version in self.all_versions(tenant)? {
            if index.module(&version.id)?.is_none()
                && let Some(module) = self.index.module(&version.id)?
            {
                index.put_module(&module)?;
            }
            index.put_version(&version)?;
        }
        Ok(Registry {
            dir: self.dir.clone(),
            index: Box::new(index),
            write_lock: Mutex::new(()),
        })
    }

    /// Stores a validated module under `tenant`/`name`, returning its id and version.
    pub fn register(
        &self,
        tenant: &Tenant,
        name: &str,
        module: &ValidatedModule<'_>,
        tags: &[String],
    ) -> Result<Registration, RegistryError> {
        check_name(name)?;
        for tag in tags {
            check_tag(tag)?;
        }
        let bytes = module.bytes();
        let id = ModuleId::of(bytes);
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());

        let stored_blob = self.store_blob(&id, bytes)?;
        if self.index.module(&id)?.is_none() {
            let info = module.info();
            let record = ModuleRecord {
                id,
                size: bytes.len() as u64,
                abi_version: info.abi_version,
                udfs: info.udfs.iter().map(udf_record).collect(),
                wasi_imports: info.wasi_imports.clone(),
                first_registered_ms: now_ms(),
            };
            self.index.put_module(&record)?;
        }

        let mut existing = self.versions_of(tenant, name)?;
        let (version, new_version) = match existing.last_mut() {
            Some(latest) if latest.id == id => {
                // Same bytes as the latest version: nothing new, but tags given now still apply.
                let mut changed = false;
                for tag in tags {
                    if !latest.tags.contains(tag) {
                        latest.tags.push(tag.clone());
                        changed = true;
                    }
                }
                if changed {
                    let latest = latest.clone();
                    self.move_tags(&mut existing, &latest)?;
                }
                (existing.last().map_or(1, |v| v.version), false)
            }
            _ => {
                let record = VersionRecord {
                    tenant: tenant.clone(),
                    name: name.to_owned(),
                    version: existing.last().map_or(1, |v| v.version + 1),
                    id,
                    tags: tags.to_vec(),
                    registered_ms: now_ms(),
                };
                self.move_tags(&mut existing, &record)?;
                (record.version, true)
            }
        };
        self.index.flush()?;
        Ok(Registration {
            id,
            name: name.to_owned(),
            version,
            stored_blob,
            new_version,
        })
    }

    /// Writes `record`, and removes its tags from every other version of the name (a tag names one
    /// version at a time).
    fn move_tags(
        &self,
        existing: &mut [VersionRecord],
        record: &VersionRecord,
    ) -> Result<(), RegistryError> {
        for other in existing.iter_mut().filter(|v| v.version != record.version) {
            let before = other.tags.len();
            other.tags.retain(|t| !record.tags.contains(t));
            if other.tags.len() != before {
                self.index.put_version(other)?;
            }
        }
        self.index.put_version(record)?;
        Ok(())
    }

    /// Finds the module a reference names, for `tenant`.
    pub fn resolve(&self, tenant: &Tenant, reference: &str) -> Result<ModuleEntry, RegistryError> {
        let not_found = || RegistryError::NotFound(reference.to_owned());
        let version = match ModuleRef::parse(reference)? {
            ModuleRef::Latest(name) => self.versions_of(tenant, &name)?.pop(),
            ModuleRef::Version(name, n) => self
                .versions_of(tenant, &name)?
                .into_iter()
                .find(|v| v.version == n),
            ModuleRef::Tag(name, tag) => self
                .versions_of(tenant, &name)?
                .into_iter()
                .rev()
                .find(|v| v.tags.contains(&tag)),
            // By id: only if the tenant has registered these bytes under some name.
            ModuleRef::Id(id) => self
                .all_versions(tenant)?
                .into_iter()
                .rev()
                .find(|v| v.id == id),
        }
        .ok_or_else(not_found)?;
        let module = self.index.module(&version.id)?.ok_or_else(not_found)?;
        Ok(ModuleEntry { version, module })
    }

    /// Every version of every module of `tenant`, by name then version.
    pub fn list(&self, tenant: &Tenant) -> Result<Vec<ModuleEntry>, RegistryError> {
        let mut cache: BTreeMap<ModuleId, ModuleRecord> = BTreeMap::new();
        let mut out = Vec::new();
        for version in self.all_versions(tenant)? {
            let module = match cache.get(&version.id) {
                Some(m) => m.clone(),
                None => {
                    let m = self.index.module(&version.id)?.ok_or_else(|| {
                        RegistryError::CorruptIndex {
                            key: version.id.to_string(),
                            detail: "a version refers to a module that is not in the index".into(),
                        }
                    })?;
                    cache.insert(version.id, m.clone());
                    m
                }
            };
            out.push(ModuleEntry { version, module });
        }
        Ok(out)
    }

    /// All versions of `tenant`'s module `name`, oldest first.
    pub fn versions_of(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<Vec<VersionRecord>, RegistryError> {
        self.index.versions(tenant, Some(name))
    }

    fn all_versions(&self, tenant: &Tenant) -> Result<Vec<VersionRecord>, RegistryError> {
        self.index.versions(tenant, None)
    }

    /// Reads a module's bytes and verifies them against the id.
    pub fn read(&self, id: &ModuleId) -> Result<Vec<u8>, RegistryError> {
        let path = self.blob_path(id)?;
        let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => RegistryError::NotFound(id.to_string()),
            _ => RegistryError::Io {
                path: path.clone(),
                source,
            },
        })?;
        if !id.matches(&bytes) {
            return Err(RegistryError::Corrupt { id: *id, path });
        }
        Ok(bytes)
    }

    /// Removes what a reference names for `tenant`: `NAME` removes every version of the name,
    /// `NAME@N`/`NAME@TAG` one version, an id every version of the tenant that points at it. A blob no
    /// version refers to any more is deleted.
    pub fn remove(&self, tenant: &Tenant, reference: &str) -> Result<Removal, RegistryError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let doomed: Vec<VersionRecord> = match ModuleRef::parse(reference)? {
            ModuleRef::Latest(name) => self.versions_of(tenant, &name)?,
            ModuleRef::Version(..) | ModuleRef::Tag(..) => {
                vec![self.resolve(tenant, reference)?.version]
            }
            ModuleRef::Id(id) => self
                .all_versions(tenant)?
                .into_iter()
                .filter(|v| v.id == id)
                .collect(),
        };
        if doomed.is_empty() {
            return Err(RegistryError::NotFound(reference.to_owned()));
        }
        for v in &doomed {
            self.index.remove_version(v)?;
        }
        // Blobs still referenced by any tenant's version stay.
        let mut deleted_blobs = Vec::new();
        let mut candidates: Vec<ModuleId> = doomed.iter().map(|v| v.id).collect();
        candidates.sort();
        candidates.dedup();
        for id in candidates {
            if !self.index.is_referenced(&id)? {
                self.index.remove_module(&id)?;
                let path = self.blob_path(&id)?;
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(RegistryError::Io { path, source }),
                }
                deleted_blobs.push(id);
            }
        }
        self.index.flush()?;
        Ok(Removal {
            versions: doomed,
            deleted_blobs,
        })
    }

    fn blob_path(&self, id: &ModuleId) -> Result<PathBuf, RegistryError> {
        match &self.dir {
            Some(dir) => Ok(dir.join("blobs").join(format!("{}.wasm", id.hex()))),
            None => Err(RegistryError::NotFound(id.to_string())),
        }
    }

    /// Stores the blob unless an intact copy is already there. Returns whether it wrote one. The
    /// write is atomic (`weft_io::AtomicFile`): a crash never leaves a partial blob under a valid
    /// name.
    fn store_blob(&self, id: &ModuleId, bytes: &[u8]) -> Result<bool, RegistryError> {
        let path = self.blob_path(id)?;
        if let Ok(existing) = std::fs::read(&path)
            && id.matches(&existing)
        {
            return Ok(false);
        }
        weft_io::write_atomically(&path, bytes).map_err(|e| RegistryError::Store(Box::new(e)))?;
        Ok(true)
    }
}

fn udf_record(udf: &UdfInfo) -> UdfRecord {
    UdfRecord {
        name: udf.name.clone(),
        kind: udf.kind.to_string(),
        combiner: udf.combiner,
        key_unused: udf.key_unused,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(
            ModuleRef::parse("wc").unwrap(),
            ModuleRef::Latest("wc".into())
        );
        assert_eq!(
            ModuleRef::parse("wc@3").unwrap(),
            ModuleRef::Version("wc".into(), 3)
        );
        assert_eq!(
            ModuleRef::parse("wc@stable").unwrap(),
            ModuleRef::Tag("wc".into(), "stable".into())
        );
        assert!(ModuleRef::parse("w/c").is_err());
        assert!(ModuleRef::parse("wc@").is_err());
        assert!(ModuleRef::parse("blake3:xyz").is_err());
        assert!(ModuleRef::parse("wc@99999999999").is_err());
    }
}
