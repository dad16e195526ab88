//! The in-process cluster end to end on small inputs: a job's answer, its failure, its output
//! directory's all-or-nothing commit.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use weft_host::{Engine, ValidationLimits};
use weft_scheduler::job::{InputFile, JobSpec};
use weft_scheduler::{JobError, LocalCluster, LocalClusterConfig, Registry, Tenant};

pub fn registry(dir: &Path) -> Arc<Registry> {
    let engine = Engine::new().unwrap();
    let registry = Registry::open(&dir.join("registry")).unwrap();
    for (name, path) in [
        ("wordcount", weft_examples::WORDCOUNT_RUST),
        ("textkit", weft_examples::TEXTKIT_RUST),
    ] {
        let bytes = std::fs::read(path).unwrap();
        let module = engine
            .validate(&bytes, &ValidationLimits::default())
            .unwrap();
        registry
            .register(&Tenant::default(), name, &module, &[])
            .unwrap();
    }
    Arc::new(registry)
}

async fn start(registry: Arc<Registry>, dir: &Path) -> LocalCluster {
    LocalCluster::start(registry, &dir.join("work"), LocalClusterConfig::default())
        .await
        .unwrap()
}

fn plan(dir: &Path, job: &str, registry: &Registry) -> weft_scheduler::job::Plan {
    let path = dir.join("job.toml");
    std::fs::write(&path, job).unwrap();
    let spec = JobSpec::from_file(&path).unwrap();
    let resolved = spec.resolve(registry, &Tenant::default()).unwrap();
    let files: Vec<InputFile> = weft_io::resolve_inputs(spec.input.path.to_str().unwrap())
        .unwrap()
        .into_iter()
        .map(|f| InputFile {
            path: f.path,
            size: f.size,
        })
        .collect();
    resolved.plan(&files).unwrap()
}

fn read_output(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.starts_with("part-") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let (k, v) = line.split_once('\t').unwrap();
            assert!(
                out.insert(k.to_owned(), v.to_owned()).is_none(),
                "{k} twice"
            );
        }
    }
    out
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
    let mut reference: BTreeMap<String, u64> = BTreeMap::new();
    for w in text.split_ascii_whitespace() {
        *reference.entry(w.to_owned()).or_default() += 1;
    }

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
    let plan = plan(dir.path(), job, &registry);
    let cluster = start(registry, dir.path()).await;
    let report = cluster.run(&Tenant::default(), &plan, false).await.unwrap();
    cluster.shutdown().await;

    let got: BTreeMap<String, u64> = read_output(&dir.path().join("out"))
        .into_iter()
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    assert_eq!(got, reference);
    assert!(dir.path().join("out/_SUCCESS").exists());
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
    let plan = plan(dir.path(), job, &registry);
    let cluster = start(registry, dir.path()).await;
    let err = cluster
        .run(&Tenant::default(), &plan, false)
        .await
        .unwrap_err();
    cluster.shutdown().await;
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
