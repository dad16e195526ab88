//! Who may do what on a scheduler: the tenants file (`weft scheduler --tenants FILE`), the cluster
//! secret, and the [`Identity`] every request is served as.
//!
//! ```toml
//! [tenants.alice]
//! tokens = ["blake3:…"]          # digests of alice's API tokens (`weft tenant token` mints one)
//! [tenants.alice.limits]         # alice's ceilings, under the cluster's (`--limit`)
//! memory = "512MiB"
//! [tenants.alice.modules]        # what alice may register, under the scheduler's own limits
//! size = "8MiB"
//! compile_time = "20s"
//! compile_memory = "512MiB"
//!
//! [operators]
//! tokens = ["blake3:…"]          # may see every tenant's jobs, and the workers
//! ```
//!
//! A request's identity comes from its bearer secret alone ([`Access::identify`]): a tenant's
//! token makes it that tenant's, whatever tenant the request body names; the cluster secret makes
//! it a worker's. Without a tenants file the scheduler has one implicit tenant, `default`, open to
//! whoever reaches its port ([`Identity::Open`]), as before tenants existed. A revoked token is one
//! taken out of the file (the scheduler reads it at start).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tonic::Status;
use tonic::metadata::MetadataMap;
use weft_host::ModuleLimits;
use weft_io::DataRoots;
use weft_task::auth::{Secret, SecretHash, presented};
use weft_task::{Limit, TaskLimits};

use crate::Tenant;
use crate::cluster::SlotShare;

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A tenant, by one of its tokens: it sees and acts on its own modules and jobs only.
    Tenant(Tenant),
    /// An operator token: every tenant's jobs, and the workers.
    Operator,
    /// A worker, by the cluster secret: the control service and module downloads.
    Worker,
    /// No tenants file and no secret: the single-user scheduler of before, where the request
    /// names its tenant.
    Open,
}

/// How a client passes its token, for refusals.
pub const HOW_TO_PASS_A_TOKEN: &str = "pass your API token in the environment (WEFT_TOKEN=…), \
     in a file (--token-file FILE), or in the credentials file (~/.config/weft/token)";

impl Identity {
    /// The tenant a tenant-scoped request (modules, jobs) acts for: a tenant's own, whatever the
    /// request names; the named one for an operator or an open scheduler.
    pub fn tenant(&self, named: &str) -> Result<Tenant, Status> {
        match self {
            Identity::Tenant(tenant) => Ok(tenant.clone()),
            Identity::Operator | Identity::Open => named_tenant(named),
            Identity::Worker => Err(Status::permission_denied(
                "the cluster secret is for workers: a user needs an API token",
            )),
        }
    }

    /// The tenant a module download is for: a worker fetches for the task's tenant, which it
    /// names; anyone else for its own.
    pub fn fetch_tenant(&self, named: &str) -> Result<Tenant, Status> {
        match self {
            Identity::Worker => named_tenant(named),
            other => other.tenant(named),
        }
    }

    /// Whether the identity sees every tenant (an operator, or an open scheduler's user).
    pub fn sees_all(&self) -> bool {
        matches!(self, Identity::Operator | Identity::Open)
    }

    /// Refuses all but an operator (or an open scheduler's user): the workers are the cluster's.
    pub fn require_operator(&self, what: &str) -> Result<(), Status> {
        if self.sees_all() {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{what} takes an operator token"
            )))
        }
    }
}

/// The tenant a request body names; empty means the default one.
pub fn named_tenant(name: &str) -> Result<Tenant, Status> {
    if name.is_empty() {
        Ok(Tenant::default())
    } else {
        Tenant::new(name).map_err(Status::invalid_argument)
    }
}

/// The identity the interceptor found for a request; [`Identity::Open`] where none ran (a service
/// mounted without one, in tests).
pub fn identity_of<T>(request: &tonic::Request<T>) -> Identity {
    request
        .extensions()
        .get::<Identity>()
        .cloned()
        .unwrap_or(Identity::Open)
}

/// The scheduler's access rules.
#[derive(Debug, Default)]
pub struct Access {
    /// Present when a tenants file was given.
    tenants: Option<BTreeMap<Tenant, TenantRules>>,
    by_hash: HashMap<SecretHash, Identity>,
    cluster_secret: Option<Secret>,
}

/// What the tenants file says of one tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantRules {
    /// The tenant's ceilings, each under the cluster's.
    pub limits: Vec<(Limit, u64)>,
    /// Where its jobs may read and write: nowhere unless the file says.
    pub data: DataRoots,
    /// Its weight in the share of slots (1 unless the file says).
    pub weight: u32,
    /// The most slots its tasks may hold at once (no cap unless the file says).
    pub max_slots: Option<u32>,
    /// Its caps on jobs running at once and jobs waiting.
    pub caps: JobCaps,
    /// Its ceilings on the modules it registers.
    pub modules: ModuleLimits,
}

/// A tenant's caps on its jobs: how many may run at once (the rest wait, queued, in order), and
/// how many may wait (a submission past it is refused). `None`: no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCaps {
    pub running: Option<u32>,
    pub queued: Option<u32>,
}

/// Why a tenants file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read the tenants file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tenants: BTreeMap<String, RawTenant>,
    operators: Option<RawOperators>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    #[serde(default)]
    tokens: Vec<String>,
    /// The tenant's weight in the share of slots (default 1).
    weight: Option<u32>,
    /// Slots the tenant's tasks may hold at once.
    max_slots: Option<u32>,
    /// Jobs the tenant may run at once; more wait, queued.
    max_running_jobs: Option<u32>,
    /// Jobs the tenant may have waiting; a submission past it is refused.
    max_queued_jobs: Option<u32>,
    #[serde(default)]
    limits: BTreeMap<String, toml::Value>,
    #[serde(default)]
    data: RawData,
    #[serde(default)]
    modules: RawModules,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawModules {
    size: Option<toml::Value>,
    compile_time: Option<toml::Value>,
    compile_memory: Option<toml::Value>,
}

impl RawModules {
    /// The tenant's module ceilings; sizes and durations are written as in `[limits]`.
    fn parse(&self, name: &str) -> Result<ModuleLimits, String> {
        use crate::job::spec::limit_value;
        // Any size-valued limit parses a size, any time-valued one a duration (in milliseconds).
        let value = |key: &str, kind: Limit, value: &Option<toml::Value>| {
            value
                .as_ref()
                .map(|v| limit_value(kind, v))
                .transpose()
                .map_err(|e| format!("tenants.{name}.modules.{key}: {e}"))
        };
        Ok(ModuleLimits {
            max_module_bytes: value("size", Limit::Memory, &self.size)?
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            compile_time: value("compile_time", Limit::CallTime, &self.compile_time)?
                .map(Duration::from_millis),
            compile_memory: value("compile_memory", Limit::Memory, &self.compile_memory)?,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawData {
    #[serde(default)]
    read: Vec<PathBuf>,
    #[serde(default)]
    write: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperators {
    #[serde(default)]
    tokens: Vec<String>,
}

impl Access {
    /// No tenants file: one implicit tenant for whoever can connect. With `cluster_secret`,
    /// workers must still present it.
    pub fn open(cluster_secret: Option<Secret>) -> Access {
        Access {
            cluster_secret,
            ..Access::default()
        }
    }

    /// The rules of the tenants file at `path`, with the workers' `cluster_secret`.
    pub fn from_file(path: &Path, cluster_secret: Secret) -> Result<Access, AccessError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: path.to_owned(),
            source,
        })?;
        Access::parse(&text, cluster_secret).map_err(|message| AccessError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// The rules of a tenants file's text.
    pub fn parse(text: &str, cluster_secret: Secret) -> Result<Access, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut by_hash = HashMap::new();
        let mut add = |token: &str, who: Identity, whose: &str| -> Result<(), String> {
            let hash: SecretHash = token.parse().map_err(|e| format!("{whose}: {e}"))?;
            if by_hash.insert(hash, who).is_some() {
                return Err(format!("{whose}: token {hash} is listed twice"));
            }
            Ok(())
        };
        let mut tenants = BTreeMap::new();
        for (name, raw) in raw.tenants {
            let tenant = Tenant::new(&name).map_err(|e| format!("tenants.{name}: {e}"))?;
            for token in &raw.tokens {
                add(
                    token,
                    Identity::Tenant(tenant.clone()),
                    &format!("tenants.{name}"),
                )?;
            }
            let mut limits = Vec::new();
            for (key, value) in raw.limits {
                let field = format!("tenants.{name}.limits.{key}");
                let limit = Limit::from_key(&key).map_err(|e| format!("{field}: {e}"))?;
                let value = crate::job::spec::limit_value(limit, &value)
                    .map_err(|e| format!("{field}: {e}"))?;
                limits.push((limit, value));
            }
            TaskLimits::most()
                .with_settings(&limits)
                .map_err(|e| format!("tenants.{name}.limits: {e}"))?;
            for (which, roots) in [("read", &raw.data.read), ("write", &raw.data.write)] {
                if let Some(relative) = roots.iter().find(|p| !p.is_absolute()) {
                    return Err(format!(
                        "tenants.{name}.data.{which}: {} is not an absolute path",
                        relative.display()
                    ));
                }
            }
            let data = DataRoots {
                read: raw.data.read,
                write: raw.data.write,
            };
            let weight = match raw.weight {
                None => 1,
                Some(0) => return Err(format!("tenants.{name}.weight: must be at least 1")),
                Some(w) => w,
            };
            if raw.max_slots == Some(0) {
                return Err(format!("tenants.{name}.max_slots: must be at least 1"));
            }
            if raw.max_running_jobs == Some(0) {
                return Err(format!(
                    "tenants.{name}.max_running_jobs: must be at least 1"
                ));
            }
            let caps = JobCaps {
                running: raw.max_running_jobs,
                queued: raw.max_queued_jobs,
            };
            let modules = raw.modules.parse(&name)?;
            tenants.insert(
                tenant,
                TenantRules {
                    limits,
                    data,
                    weight,
                    max_slots: raw.max_slots,
                    caps,
                    modules,
                },
            );
        }
        for token in raw.operators.map(|o| o.tokens).unwrap_or_default() {
            add(&token, Identity::Operator, "operators")?;
        }
        if by_hash.contains_key(&cluster_secret.hash()) {
            return Err(
                "the cluster secret is also listed as a token: use a secret of its own".into(),
            );
        }
        Ok(Access {
            tenants: Some(tenants),
            by_hash,
            cluster_secret: Some(cluster_secret),
        })
    }

    /// The secret workers present, which the scheduler presents to them in turn.
    pub fn cluster_secret(&self) -> Option<&Secret> {
        self.cluster_secret.as_ref()
    }

    /// Whether requests need a token (a tenants file was given).
    pub fn has_tenants(&self) -> bool {
        self.tenants.is_some()
    }

    /// The tenants of the file, with their rules.
    pub fn tenants(&self) -> impl Iterator<Item = (&Tenant, &TenantRules)> {
        self.tenants.iter().flatten()
    }

    /// One line for the scheduler's start-up log.
    pub fn describe(&self) -> String {
        match &self.tenants {
            None => format!(
                "no --tenants: one implicit tenant, `default`, open to anyone who can reach this \
                 port{}",
                if self.cluster_secret.is_some() {
                    "; workers must present the cluster secret"
                } else {
                    ", workers included"
                }
            ),
            Some(tenants) => format!(
                "{} tenants ({}), {} operator token(s); every request needs a token, workers the \
                 cluster secret",
                tenants.len(),
                tenants
                    .keys()
                    .map(Tenant::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                self.by_hash
                    .values()
                    .filter(|i| **i == Identity::Operator)
                    .count()
            ),
        }
    }

    /// Who a request with `metadata` is from, or why it is refused (`UNAUTHENTICATED`, saying how
    /// to pass a token).
    pub fn identify(&self, metadata: &MetadataMap) -> Result<Identity, Status> {
        let secret = presented(metadata)
            .map_err(|why| Status::unauthenticated(format!("{why}: {HOW_TO_PASS_A_TOKEN}")))?;
        let Some(secret) = secret else {
            return if self.has_tenants() {
                Err(Status::unauthenticated(format!(
                    "this scheduler serves several tenants and needs your API token: \
                     {HOW_TO_PASS_A_TOKEN}"
                )))
            } else {
                Ok(Identity::Open)
            };
        };
        if self
            .cluster_secret
            .as_ref()
            .is_some_and(|s| s.hash().matches(secret))
        {
            return Ok(Identity::Worker);
        }
        let hash = Secret::new(secret)
            .map(|s| s.hash())
            .map_err(|_| unknown_token())?;
        match self.by_hash.get(&hash) {
            Some(identity) => Ok(identity.clone()),
            None if self.has_tenants() || self.cluster_secret.is_some() => Err(unknown_token()),
            // An open scheduler takes anyone; a token it does not know changes nothing.
            None => Ok(Identity::Open),
        }
    }

    /// Whether `identity` may use the workers' control service: a worker, or anyone when no
    /// cluster secret is set.
    pub fn admits_worker(&self, identity: &Identity) -> Result<(), Status> {
        match identity {
            Identity::Worker => Ok(()),
            Identity::Open if self.cluster_secret.is_none() => Ok(()),
            _ => Err(Status::unauthenticated(
                "only workers presenting the cluster secret may join this cluster \
                 (weft worker reads it from --cluster-secret-file or WEFT_CLUSTER_SECRET)",
            )),
        }
    }

    /// The interceptor every service of the scheduler is mounted with: it identifies the request
    /// and leaves the [`Identity`] in its extensions.
    pub fn interceptor(self: &Arc<Self>) -> impl tonic::service::Interceptor + Clone + use<> {
        let access = self.clone();
        move |mut request: tonic::Request<()>| {
            let identity = access.identify(request.metadata())?;
            request.extensions_mut().insert(identity);
            Ok(request)
        }
    }

    /// The interceptor of the workers' control service: only a worker (by the cluster secret, when
    /// one is set) gets through, and anyone else is told what a worker needs.
    pub fn worker_interceptor(
        self: &Arc<Self>,
    ) -> impl tonic::service::Interceptor + Clone + use<> {
        let access = self.clone();
        move |mut request: tonic::Request<()>| {
            let identity = access
                .identify(request.metadata())
                .unwrap_or(Identity::Open);
            access.admits_worker(&identity)?;
            request.extensions_mut().insert(identity);
            Ok(request)
        }
    }

    /// Where each tenant's jobs may read and write; `None` without a tenants file (anywhere).
    pub fn data_roots(&self) -> Option<HashMap<Tenant, DataRoots>> {
        self.tenants.as_ref().map(|tenants| {
            tenants
                .iter()
                .map(|(t, rules)| (t.clone(), rules.data.clone()))
                .collect()
        })
    }

    /// Each tenant's caps on its jobs.
    pub fn job_caps(&self) -> HashMap<Tenant, JobCaps> {
        self.tenants()
            .map(|(t, rules)| (t.clone(), rules.caps))
            .collect()
    }

    /// Each tenant's weight and cap in the share of slots.
    pub fn slot_shares(&self) -> HashMap<String, SlotShare> {
        self.tenants()
            .map(|(t, rules)| {
                let share = SlotShare {
                    weight: rules.weight,
                    max_slots: rules.max_slots,
                };
                (t.to_string(), share)
            })
            .collect()
    }

    /// Each tenant's ceilings on the modules it registers.
    pub fn module_limits(&self) -> HashMap<Tenant, ModuleLimits> {
        self.tenants()
            .map(|(t, rules)| (t.clone(), rules.modules))
            .collect()
    }

    /// The limits ceilings of each tenant of the file.
    pub fn tenant_limits(&self) -> HashMap<Tenant, Vec<(Limit, u64)>> {
        self.tenants()
            .map(|(t, rules)| (t.clone(), rules.limits.clone()))
            .collect()
    }
}

fn unknown_token() -> Status {
    Status::unauthenticated(format!(
        "the token presented is not one this scheduler knows (mistyped, revoked, or for another \
         cluster): {HOW_TO_PASS_A_TOKEN}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(secret: Option<&str>) -> MetadataMap {
        let mut md = MetadataMap::new();
        if let Some(s) = secret {
            md.insert("authorization", format!("Bearer {s}").parse().unwrap());
        }
        md
    }

    #[test]
    fn tokens_make_identities_and_nothing_else_does() {
        let (alice, op, secret) = (
            Secret::mint().unwrap(),
            Secret::mint().unwrap(),
            Secret::mint().unwrap(),
        );
        let file = format!(
            "[tenants.alice]\ntokens = [\"{}\"]\n[tenants.alice.limits]\nmemory = \"64MiB\"\n\
             [operators]\ntokens = [\"{}\"]\n",
            alice.hash(),
            op.hash()
        );
        let access = Access::parse(&file, secret.clone()).unwrap();
        let id = |s: Option<&str>| access.identify(&metadata(s));
        assert_eq!(
            id(Some(alice.expose())).unwrap(),
            Identity::Tenant(Tenant::new("alice").unwrap())
        );
        assert_eq!(id(Some(op.expose())).unwrap(), Identity::Operator);
        assert_eq!(id(Some(secret.expose())).unwrap(), Identity::Worker);
        let missing = id(None).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("WEFT_TOKEN"), "{missing}");
        let unknown = id(Some(Secret::mint().unwrap().expose())).unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
        assert!(unknown.message().contains("revoked"), "{unknown}");
        assert_eq!(
            access.tenant_limits()[&Tenant::new("alice").unwrap()],
            [(Limit::Memory, 64 << 20)]
        );
        // A tenant acts as itself whatever it names; a worker only fetches.
        let alice_id = Identity::Tenant(Tenant::new("alice").unwrap());
        assert_eq!(alice_id.tenant("bob").unwrap().as_str(), "alice");
        assert!(Identity::Worker.tenant("bob").is_err());
        assert_eq!(
            Identity::Worker.fetch_tenant("bob").unwrap().as_str(),
            "bob"
        );
        assert!(alice_id.require_operator("listing workers").is_err());
        assert!(access.admits_worker(&alice_id).is_err());
        assert!(access.admits_worker(&Identity::Worker).is_ok());
    }

    #[test]
    fn an_open_scheduler_serves_anyone_but_guards_its_workers_with_a_secret() {
        let open = Access::open(None);
        assert_eq!(open.identify(&metadata(None)).unwrap(), Identity::Open);
        assert!(open.admits_worker(&Identity::Open).is_ok());
        let secret = Secret::mint().unwrap();
        let guarded = Access::open(Some(secret.clone()));
        assert!(guarded.admits_worker(&Identity::Open).is_err());
        assert_eq!(
            guarded.identify(&metadata(Some(secret.expose()))).unwrap(),
            Identity::Worker
        );
        assert!(
            guarded
                .identify(&metadata(Some("a-wrong-secret-0000")))
                .is_err()
        );
    }

    #[test]
    fn bad_files_are_refused_naming_the_field() {
        let secret = Secret::mint().unwrap();
        let err = |text: &str| Access::parse(text, secret.clone()).unwrap_err();
        assert!(
            err("[tenants.alice]\ntokens = [\"nope\"]")
                .starts_with("tenants.alice: \"nope\" is not a token hash")
        );
        assert!(err("[tenants.Alice]\n").contains("invalid tenant name"));
        assert!(err("[tenants.a]\nweight = 0\n").contains("weight: must be at least 1"));
        assert!(
            err("[tenants.a]\nmax_running_jobs = 0\n")
                .contains("max_running_jobs: must be at least 1")
        );
        assert!(err("[tenants.a]\nshare = 3\n").contains("unknown field `share`"));
        assert!(err("[tenants.a]\nmax_slots = 0\n").contains("max_slots: must be at least 1"));
        assert!(
            err("[tenants.a.limits]\ncpu = \"1s\"\n")
                .starts_with("tenants.a.limits.cpu: unknown limit")
        );
        assert!(err("[tenants.a.limits]\nmemory = \"8GiB\"\n").contains("above the most"));
        assert!(
            err("[tenants.a.modules]\ncompile_time = 5\n")
                .starts_with("tenants.a.modules.compile_time: 5 has no unit")
        );
        assert!(
            err("[tenants.a.modules]\nsize = \"lots\"\n").starts_with("tenants.a.modules.size: ")
        );
        assert!(err("[tenants.a.modules]\ncpu = 1\n").contains("unknown field `cpu`"));
        let access = Access::parse(
            "[tenants.a]\nmax_slots = 3\nweight = 2\n[tenants.a.modules]\nsize = \"1MiB\"\n\
             compile_time = \"2s\"\n",
            secret.clone(),
        )
        .unwrap();
        assert_eq!(
            access.module_limits()[&Tenant::new("a").unwrap()],
            ModuleLimits {
                max_module_bytes: Some(1 << 20),
                compile_time: Some(Duration::from_secs(2)),
                compile_memory: None,
            }
        );
        assert_eq!(
            access.slot_shares()["a"],
            SlotShare {
                weight: 2,
                max_slots: Some(3)
            }
        );
        let hash = Secret::mint().unwrap().hash();
        assert!(
            err(&format!(
                "[tenants.a]\ntokens = [\"{hash}\"]\n[tenants.b]\ntokens = [\"{hash}\"]\n"
            ))
            .contains("listed twice")
        );
        assert!(
            err(&format!("[operators]\ntokens = [\"{}\"]\n", secret.hash()))
                .contains("cluster secret is also listed")
        );
    }
}
