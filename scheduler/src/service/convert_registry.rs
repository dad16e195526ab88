//! Conversions between the registry's domain types and the `weft.v1.Registry` messages, both ways:
//! the service encodes what the [`Registry`](crate::Registry) returns, the
//! [`RegistryClient`](crate::client::RegistryClient) decodes it back into the very same types. A
//! missing or malformed field is a [`ConvertError`] naming it, never an `unwrap()`.

use weft_abi::UdfKind;
use weft_proto::v1 as pb;
use weft_task::ConvertError;
use weft_task::convert::{bad, kind_from_pb, kind_to_pb};

use crate::Tenant;
use crate::registry::{
    ModuleEntry, ModuleId, ModuleRecord, Registration, Removal, UdfRecord, VersionRecord,
};

fn module_id(field: &'static str, text: &str) -> Result<ModuleId, ConvertError> {
    text.parse().map_err(|e: String| bad(field, e))
}

/// The index stores a UDF's kind as its name; a name no kind has (a damaged index) is sent as
/// `UNSPECIFIED`, which the receiving side refuses, naming the field.
fn kind_name_to_pb(kind: &str) -> pb::UdfKind {
    UdfKind::parse(kind).map_or(pb::UdfKind::Unspecified, kind_to_pb)
}

impl From<&ModuleRecord> for pb::ModuleInfo {
    fn from(m: &ModuleRecord) -> pb::ModuleInfo {
        pb::ModuleInfo {
            id: m.id.to_string(),
            size: m.size,
            abi_version: m.abi_version,
            udfs: m
                .udfs
                .iter()
                .map(|u| pb::Udf {
                    name: u.name.clone(),
                    kind: kind_name_to_pb(&u.kind) as i32,
                    combiner: u.combiner,
                    key_unused: u.key_unused,
                })
                .collect(),
            wasi_imports: m.wasi_imports.clone(),
            first_registered_ms: m.first_registered_ms,
        }
    }
}

impl TryFrom<pb::ModuleInfo> for ModuleRecord {
    type Error = ConvertError;

    fn try_from(m: pb::ModuleInfo) -> Result<ModuleRecord, ConvertError> {
        let udfs = m
            .udfs
            .into_iter()
            .map(|u| {
                if u.name.is_empty() {
                    return Err(bad("Udf.name", "empty"));
                }
                Ok(UdfRecord {
                    kind: kind_from_pb("Udf.kind", u.kind)?.to_string(),
                    name: u.name,
                    combiner: u.combiner,
                    key_unused: u.key_unused,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ModuleRecord {
            id: module_id("ModuleInfo.id", &m.id)?,
            size: m.size,
            abi_version: m.abi_version,
            udfs,
            wasi_imports: m.wasi_imports,
            first_registered_ms: m.first_registered_ms,
        })
    }
}

/// A version without its module's record (`Show`'s version list, `Remove`'s removed versions).
impl From<&VersionRecord> for pb::ModuleVersion {
    fn from(v: &VersionRecord) -> pb::ModuleVersion {
        pb::ModuleVersion {
            tenant: v.tenant.to_string(),
            name: v.name.clone(),
            version: v.version,
            id: v.id.to_string(),
            tags: v.tags.clone(),
            registered_ms: v.registered_ms,
            module: None,
            new_version: false,
            stored_blob: false,
        }
    }
}

impl From<&ModuleEntry> for pb::ModuleVersion {
    fn from(e: &ModuleEntry) -> pb::ModuleVersion {
        pb::ModuleVersion {
            module: Some(pb::ModuleInfo::from(&e.module)),
            ..pb::ModuleVersion::from(&e.version)
        }
    }
}

/// What `Register` replies: the version now registered, with what the registration changed.
pub fn registered_to_pb(entry: &ModuleEntry, registration: &Registration) -> pb::ModuleVersion {
    pb::ModuleVersion {
        new_version: registration.new_version,
        stored_blob: registration.stored_blob,
        ..pb::ModuleVersion::from(entry)
    }
}

impl TryFrom<pb::ModuleVersion> for VersionRecord {
    type Error = ConvertError;

    fn try_from(v: pb::ModuleVersion) -> Result<VersionRecord, ConvertError> {
        if v.name.is_empty() {
            return Err(bad("ModuleVersion.name", "empty"));
        }
        if v.version == 0 {
            return Err(bad("ModuleVersion.version", "versions start at 1"));
        }
        Ok(VersionRecord {
            tenant: Tenant::new(&v.tenant).map_err(|e| bad("ModuleVersion.tenant", e))?,
            name: v.name,
            version: v.version,
            id: module_id("ModuleVersion.id", &v.id)?,
            tags: v.tags,
            registered_ms: v.registered_ms,
        })
    }
}

impl TryFrom<pb::ModuleVersion> for ModuleEntry {
    type Error = ConvertError;

    fn try_from(mut v: pb::ModuleVersion) -> Result<ModuleEntry, ConvertError> {
        let module: ModuleRecord = v
            .module
            .take()
            .ok_or_else(|| bad("ModuleVersion.module", "missing"))?
            .try_into()?;
        let version = VersionRecord::try_from(v)?;
        if module.id != version.id {
            return Err(bad(
                "ModuleVersion.module.id",
                format!("{} is not the version's id {}", module.id, version.id),
            ));
        }
        Ok(ModuleEntry { version, module })
    }
}

impl TryFrom<pb::ModuleVersion> for Registration {
    type Error = ConvertError;

    fn try_from(v: pb::ModuleVersion) -> Result<Registration, ConvertError> {
        let (new_version, stored_blob) = (v.new_version, v.stored_blob);
        let version = VersionRecord::try_from(v)?;
        Ok(Registration {
            id: version.id,
            name: version.name,
            version: version.version,
            stored_blob,
            new_version,
        })
    }
}

impl From<&Removal> for pb::RemoveModuleReply {
    fn from(r: &Removal) -> pb::RemoveModuleReply {
        pb::RemoveModuleReply {
            removed: r.versions.iter().map(pb::ModuleVersion::from).collect(),
            deleted_blobs: r.deleted_blobs.iter().map(ModuleId::to_string).collect(),
        }
    }
}

impl TryFrom<pb::RemoveModuleReply> for Removal {
    type Error = ConvertError;

    fn try_from(r: pb::RemoveModuleReply) -> Result<Removal, ConvertError> {
        Ok(Removal {
            versions: r
                .removed
                .into_iter()
                .map(VersionRecord::try_from)
                .collect::<Result<_, _>>()?,
            deleted_blobs: r
                .deleted_blobs
                .iter()
                .map(|id| module_id("RemoveModuleReply.deleted_blobs", id))
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ModuleEntry {
        let id = ModuleId::of(b"bytes");
        ModuleEntry {
            version: VersionRecord {
                tenant: Tenant::new("acme").unwrap(),
                name: "wc".into(),
                version: 3,
                id,
                tags: vec!["stable".into()],
                registered_ms: 1_700_000_000_123,
            },
            module: ModuleRecord {
                id,
                size: 5,
                abi_version: 1,
                udfs: UdfKind::ALL
                    .iter()
                    .map(|k| UdfRecord {
                        name: format!("f_{k}"),
                        kind: k.to_string(),
                        combiner: *k == UdfKind::Reduce,
                        key_unused: *k == UdfKind::FlatMap,
                    })
                    .collect(),
                wasi_imports: vec!["fd_write".into()],
                first_registered_ms: 1_600_000_000_000,
            },
        }
    }

    #[test]
    fn entries_removals_and_registrations_round_trip() {
        let e = entry();
        assert_eq!(
            ModuleEntry::try_from(pb::ModuleVersion::from(&e)).unwrap(),
            e
        );

        let removal = Removal {
            versions: vec![e.version.clone()],
            deleted_blobs: vec![e.version.id],
        };
        assert_eq!(
            Removal::try_from(pb::RemoveModuleReply::from(&removal)).unwrap(),
            removal
        );

        let registration = Registration {
            id: e.version.id,
            name: "wc".into(),
            version: 3,
            stored_blob: false,
            new_version: true,
        };
        assert_eq!(
            Registration::try_from(registered_to_pb(&e, &registration)).unwrap(),
            registration
        );
    }

    #[test]
    fn malformed_fields_are_named() {
        let e = entry();
        let mut no_module = pb::ModuleVersion::from(&e.version);
        no_module.module = None;
        assert_eq!(
            ModuleEntry::try_from(no_module).unwrap_err().to_string(),
            "invalid ModuleVersion.module: missing"
        );

        let mut bad_id = pb::ModuleVersion::from(&e);
        bad_id.id = "sha256:00".into();
        assert!(
            ModuleEntry::try_from(bad_id)
                .unwrap_err()
                .to_string()
                .starts_with("invalid ModuleVersion.id: ")
        );

        let mut bad_kind = pb::ModuleVersion::from(&e);
        bad_kind.module.as_mut().unwrap().udfs[0].kind = 42;
        assert_eq!(
            ModuleEntry::try_from(bad_kind).unwrap_err().to_string(),
            "invalid Udf.kind: unknown UDF kind 42"
        );

        let mut bad_tenant = pb::ModuleVersion::from(&e.version);
        bad_tenant.tenant = String::new();
        assert!(
            VersionRecord::try_from(bad_tenant)
                .unwrap_err()
                .to_string()
                .starts_with("invalid ModuleVersion.tenant: invalid tenant name \"\"")
        );
    }
}
