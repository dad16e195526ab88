//! [`RegistryIndex`]: what the registry knows of its blobs and names, behind a small trait, so a
//! later store can be added without touching the registry or its callers. Two implementations:
//!
//! - [`SledIndex`], on disk, in two sled trees:
//!   - `modules`: id → JSON [`ModuleRecord`] (size, ABI version, UDFs and kinds, WASI imports,
//!     first registration time);
//!   - `versions`: `tenant \0 name \0 version (u32 BE)` → JSON [`VersionRecord`] (id, tags,
//!     registration time). Big-endian versions make a prefix scan return a name's versions in
//!     order.
//! - [`MemoryIndex`], for a registry that need not outlive its process.
//!
//! The registry serialises its writers; an index only has to keep each call consistent.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use super::{ModuleId, ModuleRecord, RegistryError, VersionRecord};
use crate::Tenant;

/// The registry's index.
pub trait RegistryIndex: Send + Sync + fmt::Debug {
    fn module(&self, id: &ModuleId) -> Result<Option<ModuleRecord>, RegistryError>;

    fn put_module(&self, record: &ModuleRecord) -> Result<(), RegistryError>;

    fn remove_module(&self, id: &ModuleId) -> Result<(), RegistryError>;

    /// The versions of `tenant`'s modules — of module `name` only, when given — by name, then
    /// version.
    fn versions(
        &self,
        tenant: &Tenant,
        name: Option<&str>,
    ) -> Result<Vec<VersionRecord>, RegistryError>;

    /// Stores (or replaces) one version of a name.
    fn put_version(&self, record: &VersionRecord) -> Result<(), RegistryError>;

    fn remove_version(&self, record: &VersionRecord) -> Result<(), RegistryError>;

    /// Whether any version of any tenant points at `id` (a blob no version points at is garbage).
    fn is_referenced(&self, id: &ModuleId) -> Result<bool, RegistryError>;

    /// Makes every change so far durable.
    fn flush(&self) -> Result<(), RegistryError>;
}

/// The index in sled.
#[derive(Debug)]
pub struct SledIndex {
    db: sled::Db,
    modules: sled::Tree,
    versions: sled::Tree,
}

impl SledIndex {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<SledIndex, RegistryError> {
        let db = crate::sled_db::open(path)?;
        Ok(SledIndex {
            modules: db.open_tree("modules")?,
            versions: db.open_tree("versions")?,
            db,
        })
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<VersionRecord>, RegistryError> {
        self.versions
            .scan_prefix(prefix)
            .map(|item| {
                let (key, value) = item?;
                from_json(&key, &value)
            })
            .collect()
    }
}

fn tenant_prefix(tenant: &Tenant) -> Vec<u8> {
    let mut key = tenant.as_str().as_bytes().to_vec();
    key.push(0);
    key
}

fn name_prefix(tenant: &Tenant, name: &str) -> Vec<u8> {
    let mut key = tenant_prefix(tenant);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key
}

fn version_key(record: &VersionRecord) -> Vec<u8> {
    let mut key = name_prefix(&record.tenant, &record.name);
    key.extend_from_slice(&record.version.to_be_bytes());
    key
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("registry records always serialize")
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    key: &[u8],
    value: &[u8],
) -> Result<T, RegistryError> {
    serde_json::from_slice(value).map_err(|e| RegistryError::CorruptIndex {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

impl RegistryIndex for SledIndex {
    fn module(&self, id: &ModuleId) -> Result<Option<ModuleRecord>, RegistryError> {
        self.modules
            .get(id.as_bytes())?
            .map(|v| from_json(id.as_bytes(), &v))
            .transpose()
    }

    fn put_module(&self, record: &ModuleRecord) -> Result<(), RegistryError> {
        self.modules.insert(record.id.as_bytes(), to_json(record))?;
        Ok(())
    }

    fn remove_module(&self, id: &ModuleId) -> Result<(), RegistryError> {
        self.modules.remove(id.as_bytes())?;
        Ok(())
    }

    fn versions(
        &self,
        tenant: &Tenant,
        name: Option<&str>,
    ) -> Result<Vec<VersionRecord>, RegistryError> {
        match name {
            Some(name) => self.scan(&name_prefix(tenant, name)),
            None => self.scan(&tenant_prefix(tenant)),
        }
    }

    fn put_version(&self, record: &VersionRecord) -> Result<(), RegistryError> {
        self.versions.insert(version_key(record), to_json(record))?;
        Ok(())
    }

    fn remove_version(&self, record: &VersionRecord) -> Result<(), RegistryError> {
        self.versions.remove(version_key(record))?;
        Ok(())
    }

    fn is_referenced(&self, id: &ModuleId) -> Result<bool, RegistryError> {
        for item in self.versions.iter() {
            let (key, value) = item?;
            if from_json::<VersionRecord>(&key, &value)?.id == *id {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn flush(&self) -> Result<(), RegistryError> {
        self.db.flush()?;
        Ok(())
    }
}

/// The index in memory.
#[derive(Debug, Default)]
pub struct MemoryIndex {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    modules: BTreeMap<ModuleId, ModuleRecord>,
    /// By tenant, name and version: the order `versions` returns them in.
    versions: BTreeMap<(Tenant, String, u32), VersionRecord>,
}

impl MemoryIndex {
    pub fn new() -> MemoryIndex {
        MemoryIndex::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RegistryIndex for MemoryIndex {
    fn module(&self, id: &ModuleId) -> Result<Option<ModuleRecord>, RegistryError> {
        Ok(self.lock().modules.get(id).cloned())
    }

    fn put_module(&self, record: &ModuleRecord) -> Result<(), RegistryError> {
        self.lock().modules.insert(record.id, record.clone());
        Ok(())
    }

    fn remove_module(&self, id: &ModuleId) -> Result<(), RegistryError> {
        self.lock().modules.remove(id);
        Ok(())
    }

    fn versions(
        &self,
        tenant: &Tenant,
        name: Option<&str>,
    ) -> Result<Vec<VersionRecord>, RegistryError> {
        Ok(self
            .lock()
            .versions
            .values()
            .filter(|v| v.tenant == *tenant && name.is_none_or(|name| v.name == name))
            .cloned()
            .collect())
    }

    fn put_version(&self, record: &VersionRecord) -> Result<(), RegistryError> {
        let key = (record.tenant.clone(), record.name.clone(), record.version);
        self.lock().versions.insert(key, record.clone());
        Ok(())
    }

    fn remove_version(&self, record: &VersionRecord) -> Result<(), RegistryError> {
        let key = (record.tenant.clone(), record.name.clone(), record.version);
        self.lock().versions.remove(&key);
        Ok(())
    }

    fn is_referenced(&self, id: &ModuleId) -> Result<bool, RegistryError> {
        Ok(self.lock().versions.values().any(|v| v.id == *id))
    }

    fn flush(&self) -> Result<(), RegistryError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::UdfRecord;

    #[test]
    fn udf_records_stored_before_combiners_were_read_as_without_one() {
        let old: UdfRecord = from_json(b"k", br#"{"name":"sum","kind":"reduce"}"#).unwrap();
        assert!(!old.combiner);
        let new: UdfRecord =
            from_json(b"k", br#"{"name":"sum","kind":"reduce","combiner":true}"#).unwrap();
        assert!(new.combiner);
    }

    #[test]
    fn udf_records_stored_before_key_facts_were_read_as_reading_their_keys() {
        let old: UdfRecord = from_json(b"k", br#"{"name":"split","kind":"flat_map"}"#).unwrap();
        assert!(!old.key_unused);
        let new: UdfRecord = from_json(
            b"k",
            br#"{"name":"split","kind":"flat_map","key_unused":true}"#,
        )
        .unwrap();
        assert!(new.key_unused);
    }

    fn version(tenant: &str, name: &str, version: u32, id: u8) -> VersionRecord {
        VersionRecord {
            tenant: Tenant::new(tenant).unwrap(),
            name: name.into(),
            version,
            id: ModuleId::from_bytes([id; 32]),
            tags: vec![],
            registered_ms: 0,
        }
    }

    /// Both indexes list versions in the same order, scoped the same way, and agree on what a
    /// blob is still referenced by.
    #[test]
    fn sled_and_memory_indexes_agree() {
        let dir = tempfile::tempdir().unwrap();
        let sled = SledIndex::open(&dir.path().join("index")).unwrap();
        let memory = MemoryIndex::new();
        let indexes: [&dyn RegistryIndex; 2] = [&sled, &memory];
        let records = [
            version("t", "b", 1, 1),
            version("t", "a", 2, 2),
            version("t", "ab", 1, 3),
            version("t", "a", 10, 2),
            version("u", "a", 1, 4),
        ];
        for index in indexes {
            for r in &records {
                index.put_version(r).unwrap();
            }
            let t = Tenant::new("t").unwrap();
            let listed: Vec<(String, u32)> = index
                .versions(&t, None)
                .unwrap()
                .into_iter()
                .map(|v| (v.name, v.version))
                .collect();
            let want = [("a", 2), ("a", 10), ("ab", 1), ("b", 1)].map(|(n, v)| (n.to_owned(), v));
            assert_eq!(listed, want, "{index:?}");
            assert_eq!(index.versions(&t, Some("a")).unwrap().len(), 2);
            assert!(index.is_referenced(&ModuleId::from_bytes([4; 32])).unwrap());
            index.remove_version(&records[4]).unwrap();
            assert!(!index.is_referenced(&ModuleId::from_bytes([4; 32])).unwrap());
        }
    }
}
