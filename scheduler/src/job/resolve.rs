//! Resolution: every step's `MODULE/FUNCTION` looked up in the registry and pinned to a module id.
//!
//! After this, a job no longer depends on names, versions or tags, which can move while it runs:
//! every task of a step runs exactly the bytes the id names.

use std::collections::HashMap;
use std::fmt;

use weft_abi::UdfKind;

use super::error::{JobFileError, JobFileErrorKind};
use super::spec::{JobSpec, StepSpec};
use crate::registry::ModuleEntry;
use crate::{ModuleId, Registry, RegistryError, Tenant};

/// A step whose function is known to exist, with the step's kind, in the module `module`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStep {
    /// 1-based position in the job file, so a failure at run time can say "step 2".
    pub number: usize,
    pub kind: UdfKind,
    pub module: ModuleId,
    /// The name and version the reference resolved to: ids are for machines, these for messages.
    pub module_name: String,
    pub module_version: u32,
    pub function: String,
    /// The module states that the function never reads its input keys (`UdfRecord::key_unused`).
    pub key_unused: bool,
}

impl fmt::Display for ResolvedStep {
    /// `reduce wordcount@1/sum`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}@{}/{}",
            self.kind, self.module_name, self.module_version, self.function
        )
    }
}

/// A job whose every step is resolved: ready to plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedJob {
    pub spec: JobSpec,
    /// One per step of `spec`, in the same order.
    pub steps: Vec<ResolvedStep>,
}

impl JobSpec {
    /// Looks up every step's module for `tenant` and checks its function exists with the step's
    /// kind. The first problem is returned, located at the step's `MODULE/FUNCTION` string.
    pub fn resolve(
        &self,
        registry: &Registry,
        tenant: &Tenant,
    ) -> Result<ResolvedJob, JobFileError> {
        // One lookup per distinct reference: two steps naming `wordcount` (the latest version) must
        // run the same version even if a new one is registered between the two lookups.
        let mut entries: HashMap<&str, ModuleEntry> = HashMap::new();
        let mut steps = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let entry = match entries.get(step.module.as_str()) {
                Some(entry) => entry,
                None => {
                    let entry = registry
                        .resolve(tenant, &step.module)
                        .map_err(|e| self.lookup_error(step, e))?;
                    entries.entry(step.module.as_str()).or_insert(entry)
                }
            };
            steps.push(self.resolve_step(step, entry)?);
        }
        Ok(ResolvedJob {
            spec: self.clone(),
            steps,
        })
    }

    fn resolve_step(
        &self,
        step: &StepSpec,
        entry: &ModuleEntry,
    ) -> Result<ResolvedStep, JobFileError> {
        let udfs = &entry.module.udfs;
        let Some(udf) = udfs.iter().find(|u| u.name == step.function) else {
            return Err(JobFileErrorKind::UnknownFunction {
                origin: self.origin.clone(),
                at: step.reference_at,
                step: step.number,
                kind: step.kind,
                reference: step.reference(),
                module: format!("{}@{}", entry.version.name, entry.version.version),
                function: step.function.clone(),
                available: udfs
                    .iter()
                    .map(|u| format!("{} {}", u.kind, u.name))
                    .collect(),
            }
            .into());
        };
        if udf.kind() != Some(step.kind) {
            return Err(JobFileErrorKind::KindMismatch {
                origin: self.origin.clone(),
                at: step.reference_at,
                step: step.number,
                kind: step.kind,
                reference: step.reference(),
                actual: udf.kind.clone(),
            }
            .into());
        }
        Ok(ResolvedStep {
            number: step.number,
            kind: step.kind,
            module: entry.version.id,
            module_name: entry.version.name.clone(),
            module_version: entry.version.version,
            function: step.function.clone(),
            key_unused: udf.key_unused,
        })
    }

    /// A failed registry lookup: the user's mistake when nothing matches the reference, the
    /// registry's failure otherwise.
    fn lookup_error(&self, step: &StepSpec, error: RegistryError) -> JobFileError {
        match error {
            RegistryError::NotFound(_) | RegistryError::InvalidReference { .. } => {
                JobFileErrorKind::UnknownModule {
                    origin: self.origin.clone(),
                    at: step.reference_at,
                    step: step.number,
                    kind: step.kind,
                    reference: step.reference(),
                    detail: error.to_string(),
                }
            }
            source => JobFileErrorKind::Registry {
                origin: self.origin.clone(),
                at: step.reference_at,
                step: step.number,
                reference: step.reference(),
                source,
            },
        }
        .into()
    }
}
