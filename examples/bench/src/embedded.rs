//! Jobs run inside this process on a [`LocalCluster`]: what `weft run` does, minus the process, so a
//! scenario can keep a cluster up between runs or install native modules in its workers.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use weft_scheduler::job::{JobSpec, Plan};
use weft_scheduler::{Registry, Tenant};

use crate::Env;

/// A job file planned against the benchmark's registry.
#[derive(Debug)]
pub struct Prepared {
    pub registry: Arc<Registry>,
    pub tenant: Tenant,
    pub plan: Plan,
}

pub fn prepare(env: &Env, job: &Path) -> Result<Prepared> {
    let registry = Arc::new(Registry::open(&env.home.join("registry"))?);
    let tenant = Tenant::default();
    let spec = JobSpec::from_file(job)?;
    let resolved = spec.resolve(&registry, &tenant)?;
    let pattern = resolved.spec.input.path.display().to_string();
    let files = weft_io::resolve_inputs(&pattern)?;
    let plan = resolved
        .plan(&files)
        .with_context(|| format!("cannot plan {}", job.display()))?;
    Ok(Prepared {
        registry,
        tenant,
        plan,
    })
}

/// A multi-threaded runtime for the in-process clusters.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
