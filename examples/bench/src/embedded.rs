//! Jobs run inside this process on a [`LocalCluster`](weft_local::LocalCluster): what `weft run`
//! does, minus the process, so a scenario can keep a cluster up between runs or install native
//! modules in its workers. Jobs are submitted as `weft run` submits them, checks and all.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use weft_scheduler::Registry;
use weft_scheduler::job::Submission;

use crate::Env;

/// The benchmark's registry.
pub fn registry(env: &Env) -> Result<Arc<Registry>> {
    Ok(Arc::new(Registry::open(&env.home.join("registry"))?))
}

/// A job file as `weft run JOB --overwrite` submits it: every round replaces the last one's output.
pub fn submission(job: &Path) -> Result<Submission> {
    Ok(Submission::from_file(job, None, None, true)?)
}

/// A multi-threaded runtime for the in-process clusters.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
