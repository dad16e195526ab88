//! The in-process cluster end to end on small inputs: a job's answer, its failure, its output
//! directory's all-or-nothing commit.

use std::path::Path;
use std::sync::Arc;

use weft_local::{LocalCluster, LocalClusterConfig, RunError};
use weft_scheduler::job::Submission;
use weft_scheduler::{JobError, Registry, Tenant};
use weft_testkit::output::{assert_same_map, counts_of, read_output};
use weft_testkit::reference::word_counts;
use weft_testkit::registry::examples_registry;

/// The example modules' registry under `dir`.
pub fn registry(dir: &Path) -> Arc<Registry> {
    examples_registry(&dir.join("registry"))
}

async fn start(registry: Arc<Registry>, dir: &Path) -> LocalCluster {
    LocalCluster::start(registry, LocalClusterConfig::new(dir.join("work")))
        .await
        .unwrap()
}

/// `job` as the job file `dir/job.toml`, submitted as `weft run` submits it.
fn submission(dir: &Path, job: &str) -> Submission {
    let path = dir.join("job.toml");
    std::fs::write(&path, job).unwrap();
    Submission::from_file(&path, None, None, false).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_runs_on_two_workers_and_crosses_the_shuffle() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!("w{} w{} common\r\n", i % 97, i % 13));
    }
    std::fs::write(dir.path().join("in.txt"), &text).unwrap();

    let job = r#"
name = "wc"
[input]
path = "in.txt"
split_size = "64KiB"
[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
[output]
path = "out"
partitions = 3
"#;
    let mut cluster = start(registry, dir.path()).await;
    let report = cluster
        .run(&Tenant::default(), submission(dir.path(), job))
        .await
        .unwrap();
    cluster.shutdown().await;

    assert_same_map(
        &counts_of(read_output(&dir.path().join("out"))),
        &word_counts(text.as_bytes()),
        "wc",
    );
    assert_eq!(report.stages.len(), 2);
    assert!(report.stages[0].tasks > 1);
    assert_eq!(report.stages[1].tasks, 3);
    assert!(report.stages[1].remote_fetches > 0, "{report:?}");
    // Shuffle files are gone once the job is over.
    for w in 0..2 {
        let shuffle = dir.path().join(format!("work/worker-{w}/shuffle"));
        let left = std::fs::read_dir(&shuffle).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "shuffle files left in {}", shuffle.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_udf_fails_the_job_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    std::fs::write(dir.path().join("in.txt"), "fine\nboom\nfine too\n").unwrap();
    let job = r#"
name = "trap"
[input]
path = "in.txt"
[[step]]
map = "textkit/panic_on_boom"
[[step]]
group_reduce = "textkit/distinct_sorted"
[output]
path = "out"
"#;
    let mut cluster = start(registry, dir.path()).await;
    let err = cluster
        .run(&Tenant::default(), submission(dir.path(), job))
        .await
        .unwrap_err();
    cluster.shutdown().await;
    let RunError::Job(err) = err else {
        panic!("{err}")
    };
    match &err {
        JobError::Task {
            stage,
            partition,
            message,
            guest_fault,
            ..
        } => {
            assert_eq!((*stage, *partition), (0, 0));
            assert!(guest_fault);
            assert!(message.contains("textkit@1/panic_on_boom"), "{message}");
            assert!(message.contains("boom panic"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .starts_with("job trap: stage 0 partition 0: map textkit@1/panic_on_boom"),
        "{err}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("out"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_over_leave_the_schedulers_memory_and_stay_in_its_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "a b\nb c\n").unwrap();
    let mut cluster = start(registry(dir.path()), dir.path()).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let job = format!(
            "name = \"wc\"\n[input]\npath = \"in.txt\"\n[[step]]\n\
             flat_map = \"wordcount/split_words\"\n[[step]]\nreduce = \"wordcount/sum\"\n\
             [output]\npath = \"out-{n}\"\n"
        );
        let report = cluster
            .run(&Tenant::default(), submission(dir.path(), &job))
            .await
            .unwrap();
        ids.push(report.job_id);
        // Each submission drops the jobs over whose outcome was taken: only the last is held.
        assert_eq!(cluster.scheduler().jobs_in_memory(), 1);
    }
    // The first is still known, from the store.
    let status = cluster
        .scheduler()
        .status(&Tenant::default(), &ids[0])
        .unwrap();
    assert_eq!(status.state, weft_scheduler::jobs::JobState::Succeeded);
    assert_eq!(
        cluster.scheduler().list(&Tenant::default()).unwrap().len(),
        3
    );
    cluster.shutdown().await;
}
