//! The scheduler server with workers that only know its URL, as a cluster runs: jobs submitted as
//! job files through the `Jobs` service, modules fetched by workers through the `Registry`
//! service, outcomes, watch, cancel, logs and the workers' list, plus the control protocol's
//! refusals and a lost worker. Everything on `127.0.0.1:0`, shut down through handles.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use weft_host::{Engine, ValidationLimits};
use weft_proto::v1 as pb;
use weft_scheduler::Tenant;
use weft_scheduler::client::{ClientError, JobsClient};
use weft_scheduler::cluster::{Scheduler, SchedulerConfig};
use weft_scheduler::job::Submission;
use weft_scheduler::jobs::{
    JobRecord, JobState, JobStatus, JobStore, MemoryJobStore, SledJobStore, StageStatus,
};
use weft_scheduler::service::SchedulerHandle;
use weft_testkit::output::{counts_of, read_output};
use weft_testkit::reference::word_counts;
use weft_worker::RegistryModuleSource;
use weft_worker::service::{WorkerConfig, WorkerHandle};

use crate::cluster::registry;

struct Harness {
    dir: tempfile::TempDir,
    server: SchedulerHandle,
    workers: Vec<WorkerHandle>,
    engine: Engine,
}

impl Harness {
    async fn start(workers: usize, config: SchedulerConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let store = SledJobStore::open(&dir.path().join("jobs")).unwrap();
        let scheduler = Scheduler::new(registry, Arc::new(store), config).unwrap();
        let engine = Engine::new().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = weft_scheduler::service::start(
            listener,
            scheduler,
            engine.clone(),
            ValidationLimits::default(),
        )
        .unwrap();
        let mut harness = Harness {
            dir,
            server,
            workers: Vec::new(),
            engine,
        };
        for _ in 0..workers {
            harness.add_worker().await;
        }
        harness
    }

    async fn add_worker(&mut self) {
        let i = self.workers.len();
        let root = self.dir.path().join(format!("worker-{i}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = Arc::new(RegistryModuleSource::new(
            self.server.url(),
            root.join("cache"),
            tokio::runtime::Handle::current(),
        ));
        let worker = weft_worker::service::start(
            listener,
            WorkerConfig {
                scheduler: self.server.url(),
                slots: 1,
                work_dir: root.join("work"),
                cache_dir: Some(root.join("cache")),
                ..WorkerConfig::default()
            },
            self.engine.clone(),
            source,
        )
        .await
        .unwrap();
        self.workers.push(worker);
    }

    async fn client(&self) -> JobsClient {
        JobsClient::connect(&self.server.url(), Tenant::default())
            .await
            .unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A job file `name.toml` in the test's directory.
    fn job(&self, name: &str, text: &str, overwrite: bool) -> Submission {
        let file = self.path(&format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        Submission::from_file(&file, None, None, overwrite).unwrap()
    }

    async fn shutdown(self) {
        self.server.shutdown().await;
        for w in self.workers {
            w.shutdown().await;
        }
    }
}

fn wordcount_job(input: &Path, output: &Path) -> String {
    format!(
        r#"
name = "wc"
[input]
path = "{}"
split_size = "16KiB"
[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
[output]
path = "{}"
partitions = 3
"#,
        input.display(),
        output.display()
    )
}

/// `lines` lines of words, written to `path`; returns how often each word occurs (counted by the
/// reference, not by Weft).
fn corpus(path: &Path, lines: usize, salt: usize) -> HashMap<Vec<u8>, u64> {
    let mut text = String::new();
    for i in 0..lines {
        text.push_str(&format!("w{} v{} común\n", (i * 7 + salt) % 101, i % 13));
    }
    std::fs::write(path, &text).unwrap();
    word_counts(text.as_bytes())
}

/// The counts a word count's committed output holds.
fn read_counts(dir: &Path) -> HashMap<Vec<u8>, u64> {
    counts_of(read_output(dir))
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submitted_job_file_runs_on_remote_workers_exactly_and_is_recorded() {
    let h = Harness::start(3, SchedulerConfig::default()).await;
    let input = h.path("in.txt");
    let want = corpus(&input, 30_000, 0);
    let output = h.path("out");
    let mut client = h.client().await;
    let id = client
        .submit(h.job("wc", &wordcount_job(&input, &output), false))
        .await
        .unwrap();
    let mut snapshots = 0;
    let status = client.watch(&id, |_| snapshots += 1).await.unwrap();
    assert_eq!(status.state, JobState::Succeeded, "{status:?}");
    assert!(snapshots >= 1);
    assert_eq!(read_counts(&output), want);
    assert!(output.join("_SUCCESS").exists());

    // Status: two stages, every task done, blocks really fetched from other workers.
    assert_eq!(status.stages.len(), 2);
    let (map, reduce) = (&status.stages[0], &status.stages[1]);
    assert!(map.tasks_total >= 3, "{map:?}");
    assert_eq!(map.tasks_done, map.tasks_total);
    assert_eq!((reduce.tasks_total, reduce.tasks_done), (3, 3));
    assert_eq!(reduce.parents, vec![0]);
    assert_eq!(reduce.steps, vec!["wordcount@1/sum".to_owned()]);
    assert_eq!(map.records_in, 30_000);
    assert_eq!(reduce.records_out, want.len() as u64);
    assert!(reduce.remote_fetches > 0, "{reduce:?}");
    assert!(status.started_ms.is_some() && status.finished_ms.is_some());

    // The store has it, and a list shows it.
    assert_eq!(client.status(&id).await.unwrap(), status);
    let listed: Vec<String> = client
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(listed, vec![id.clone()]);

    // Every worker fetched the module through the registry service and reports it compiled.
    let workers = client.workers().await.unwrap();
    assert_eq!(workers.len(), 3);
    let wordcount =
        weft_scheduler::ModuleId::of(&std::fs::read(weft_examples::WORDCOUNT_RUST).unwrap())
            .to_string();
    wait_until("every worker reports the module compiled", async || {
        let workers = client.workers().await.unwrap();
        workers
            .iter()
            .all(|w| w.compiled_modules.contains(&wordcount) && w.running.is_empty())
    })
    .await;

    // Another tenant does not see the job.
    let mut other = JobsClient::connect(&h.server.url(), Tenant::new("other").unwrap())
        .await
        .unwrap();
    let err = other.status(&id).await.unwrap_err();
    assert!(err.to_string().contains(&format!("no job {id}")), "{err}");
    assert!(other.list().await.unwrap().is_empty());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_jobs_at_once_share_the_workers_and_both_finish_exactly() {
    let h = Harness::start(2, SchedulerConfig::default()).await;
    let mut client = h.client().await;
    let mut jobs = Vec::new();
    for n in 0..2 {
        let input = h.path(&format!("in-{n}.txt"));
        let want = corpus(&input, 20_000, n * 31);
        let output = h.path(&format!("out-{n}"));
        let id = client
            .submit(h.job(&format!("wc{n}"), &wordcount_job(&input, &output), false))
            .await
            .unwrap();
        jobs.push((id, output, want));
    }
    assert_ne!(jobs[0].0, jobs[1].0);
    for (id, output, want) in &jobs {
        let status = client.watch(id, |_| {}).await.unwrap();
        assert_eq!(status.state, JobState::Succeeded, "{status:?}");
        assert_eq!(&read_counts(output), want);
    }
    h.shutdown().await;
}

/// A job of `tasks` map tasks that each burn CPU for a long time.
fn burn_job(h: &Harness, tasks: usize, output: &Path) -> Submission {
    let input = h.path("burn.txt");
    // One record per split, each worth an hour of work in one guest call: only a kill that
    // interrupts the call ends it.
    let line = format!("{:031}\n", 1_000_000_000_000u64);
    std::fs::write(&input, line.repeat(tasks)).unwrap();
    h.job(
        "burn",
        &format!(
            r#"
name = "burn"
[input]
path = "{}"
split_size = "32"
[[step]]
map = "textkit/burn"
[output]
path = "{}"
"#,
            input.display(),
            output.display()
        ),
        false,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_kills_the_running_tasks_and_leaves_no_output() {
    let h = Harness::start(2, SchedulerConfig::default()).await;
    let mut client = h.client().await;
    let output = h.path("burnt");
    let id = client.submit(burn_job(&h, 4, &output)).await.unwrap();
    wait_until("two tasks run", async || {
        client.status(&id).await.unwrap().stages[0].tasks_running == 2
    })
    .await;
    let asked = std::time::Instant::now();
    let status = client.cancel(&id).await.unwrap();
    assert_eq!(status.state, JobState::Cancelled, "{status:?}");
    // Not the 30 s the scheduler waits for a task that ignores its kill.
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(status.stages[0].tasks_running, 0);
    assert_eq!(status.stages[0].tasks_done, 0);
    // Nothing of the output, not even a staging directory.
    let left: Vec<_> = std::fs::read_dir(h.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("burnt"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Every slot is free again, on the scheduler's books and the workers' own.
    let workers = client.workers().await.unwrap();
    assert!(
        workers
            .iter()
            .all(|w| w.running.is_empty() && w.free_slots == w.slots),
        "{workers:?}"
    );
    // A cancel of a job that is over changes nothing.
    assert_eq!(client.cancel(&id).await.unwrap(), status);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_only_worker_stops_fails_with_a_message_naming_it() {
    let config = SchedulerConfig {
        heartbeat_interval: Duration::from_millis(100),
        worker_timeout: Duration::from_millis(1500),
        ..SchedulerConfig::default()
    };
    let mut h = Harness::start(1, config).await;
    let mut client = h.client().await;
    let id = client
        .submit(burn_job(&h, 1, &h.path("lost")))
        .await
        .unwrap();
    wait_until("the task runs", async || {
        client.status(&id).await.unwrap().stages[0].tasks_running == 1
    })
    .await;
    let worker = h.workers.pop().unwrap();
    let worker_id = worker.id();
    worker.shutdown().await;
    let status = client.watch(&id, |_| {}).await.unwrap();
    assert_eq!(status.state, JobState::Failed);
    let error = status.error.unwrap();
    // A worker shut down kills its tasks and reports them; the task runs again, but the only
    // worker is gone: the job fails, naming it (the process tests see a job survive a worker).
    assert!(error.contains(&format!("on {worker_id}: ")), "{error}");
    // Stopped, it no longer heartbeats: the scheduler drops it.
    wait_until("the stopped worker is dropped", async || {
        client.workers().await.unwrap().is_empty()
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trapping_job_fails_and_its_guest_stderr_is_in_the_logs() {
    let h = Harness::start(2, SchedulerConfig::default()).await;
    let input = h.path("boom.txt");
    std::fs::write(&input, "fine\nboom\nfine\n").unwrap();
    let job = format!(
        "name = \"trap\"\n[input]\npath = \"{}\"\n[[step]]\nmap = \"textkit/panic_on_boom\"\n[output]\npath = \"{}\"\n",
        input.display(),
        h.path("trapped").display()
    );
    let mut client = h.client().await;
    let id = client.submit(h.job("trap", &job, false)).await.unwrap();
    let status = client.watch(&id, |_| {}).await.unwrap();
    assert_eq!(status.state, JobState::Failed);
    let error = status.error.clone().unwrap();
    assert!(error.contains("textkit@1/panic_on_boom"), "{error}");
    assert_eq!(status.stages[0].tasks_failed, 1);
    let logs = client.logs(&id, None).await.unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let stderr = String::from_utf8_lossy(&logs[0].stderr);
    assert!(stderr.contains("boom"), "{stderr}");
    assert!(!h.path("trapped").exists());
    // --task filters; a task that wrote nothing has no log.
    assert_eq!(
        client
            .logs(&id, Some("0.0".parse().unwrap()))
            .await
            .unwrap(),
        logs
    );
    assert!(
        client
            .logs(&id, Some("0.7".parse().unwrap()))
            .await
            .unwrap()
            .is_empty()
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_submissions_are_refused_with_what_to_fix() {
    let h = Harness::start(1, SchedulerConfig::default()).await;
    let mut client = h.client().await;
    let refused = async |client: &mut JobsClient, job: Submission| -> String {
        match client.submit(job).await {
            Err(e @ ClientError::Status { .. }) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    // Malformed TOML: the file and line.
    let msg = refused(&mut client, h.job("bad", "name = \"x\"\n[input\n", false)).await;
    assert!(msg.contains("bad.toml:2"), "{msg}");
    // An input that does not exist.
    let missing = h.path("nope/*.txt");
    let msg = refused(
        &mut client,
        h.job("missing", &wordcount_job(&missing, &h.path("o")), false),
    )
    .await;
    assert!(
        msg.contains("input.path") && msg.contains("every worker"),
        "{msg}"
    );
    // An unknown module.
    let input = h.path("in.txt");
    corpus(&input, 10, 0);
    let text = wordcount_job(&input, &h.path("o")).replace("wordcount/sum", "nosuch/sum");
    let msg = refused(&mut client, h.job("unknown", &text, false)).await;
    assert!(msg.contains("nosuch"), "{msg}");
    // An output that exists, without overwrite.
    std::fs::create_dir(h.path("exists")).unwrap();
    let msg = refused(
        &mut client,
        h.job("exists", &wordcount_job(&input, &h.path("exists")), false),
    )
    .await;
    assert!(
        msg.contains("already exists") && msg.contains("--overwrite"),
        "{msg}"
    );
    // A relative job file path is the client's bug, named as such.
    let mut job = h.job("rel", &wordcount_job(&input, &h.path("o")), false);
    job.job_file = "rel.toml".into();
    let msg = refused(&mut client, job).await;
    assert!(msg.contains("must be absolute"), "{msg}");
    assert!(
        client.list().await.unwrap().is_empty(),
        "refused jobs are not recorded"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_of_another_protocol_version_is_refused_clearly() {
    let h = Harness::start(0, SchedulerConfig::default()).await;
    let mut control = pb::scheduler_control_client::SchedulerControlClient::connect(h.server.url())
        .await
        .unwrap();
    let status = control
        .register_worker(pb::RegisterWorkerRequest {
            protocol_version: weft_proto::PROTOCOL_VERSION + 1,
            address: "http://127.0.0.1:9".into(),
            slots: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let msg = status.message();
    assert!(
        msg.contains(&format!(
            "protocol version {}",
            weft_proto::PROTOCOL_VERSION + 1
        )) && msg.contains(&format!(
            "this scheduler version {}",
            weft_proto::PROTOCOL_VERSION
        )),
        "{msg}"
    );
    // A heartbeat from a worker the scheduler does not know asks it to register again.
    let reply = control
        .heartbeat(pb::HeartbeatRequest {
            worker_id: "w999".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.reregister);
    assert!(h.client().await.workers().await.unwrap().is_empty());
    h.shutdown().await;
}

/// Stores, in the job store at `jobs`, a job of `submission` and `stages` that was running when
/// its scheduler stopped; returns its id.
fn store_running_job(jobs: &Path, submission: Submission, stages: Vec<StageStatus>) -> String {
    let store = SledJobStore::open(jobs).unwrap();
    let id = store.new_job_id("wc").unwrap();
    let status = JobStatus {
        job_id: id.clone(),
        tenant: "default".into(),
        name: "wc".into(),
        state: JobState::Running,
        error: None,
        output: "/nowhere".into(),
        submitted_ms: 1,
        started_ms: Some(2),
        finished_ms: None,
        stages,
        usage: Default::default(),
        waiting: None,
    };
    store
        .put(&JobRecord {
            status,
            submission,
            staging: None,
            split_size: None,
        })
        .unwrap();
    store.flush().unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scheduler_keeps_its_jobs_and_marks_interrupted_ones_failed() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    let registry = registry(dir.path());
    let running_id = store_running_job(&jobs, Submission::default(), vec![]);
    let scheduler = Scheduler::new(
        registry,
        Arc::new(SledJobStore::open(&jobs).unwrap()),
        SchedulerConfig::default(),
    )
    .unwrap();
    let status = scheduler.status(&Tenant::default(), &running_id).unwrap();
    assert_eq!(status.state, JobState::Failed);
    assert!(status.error.unwrap().contains("interrupted"));
    assert!(status.finished_ms.is_some());
}

/// Starts a scheduler that picks jobs up on the store at `jobs`, expects job `id` failed, and
/// returns why.
fn failed_at_pick_up(registry: Arc<weft_scheduler::Registry>, jobs: &Path, id: &str) -> String {
    let scheduler = Scheduler::new(
        registry,
        Arc::new(SledJobStore::open(jobs).unwrap()),
        SchedulerConfig {
            resume: true,
            ..SchedulerConfig::default()
        },
    )
    .unwrap();
    let status = scheduler.status(&Tenant::default(), id).unwrap();
    assert_eq!(status.state, JobState::Failed);
    status.error.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_that_cannot_pick_a_job_up_marks_it_failed_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    let registry = registry(dir.path());
    // Its job file is not in the record: it cannot be planned again.
    let id = store_running_job(&jobs, Submission::default(), vec![]);
    let error = failed_at_pick_up(registry, &jobs, &id);
    assert!(
        error.contains("restarted and could not pick the job up"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_modules_changed_while_the_scheduler_was_down_is_not_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    let registry = registry(dir.path());
    std::fs::write(dir.path().join("in.txt"), "a b\n").unwrap();
    let job_file = dir.path().join("job.toml");
    std::fs::write(
        &job_file,
        "name = \"wc\"\n[input]\npath = \"in.txt\"\n[[step]]\nflat_map = \
         \"wordcount/split_words\"\n[[step]]\nreduce = \"wordcount/sum\"\n[output]\npath = \
         \"out\"\n",
    )
    .unwrap();
    let submission = Submission::from_file(&job_file, None, None, false).unwrap();
    let slots = weft_scheduler::job::AutoSplit::Slots(1);
    let plan =
        weft_scheduler::job::prepare(&registry, &Tenant::default(), &submission, slots).unwrap();
    // Recorded when the job ran: the same stages and tasks, but another version of the module
    // than the registry resolves now.
    let stages = plan
        .stages
        .iter()
        .map(|s| StageStatus {
            stage: s.id,
            parents: s.parents.clone(),
            steps: vec!["wordcount@0/split_words".into()],
            tasks_total: s.tasks,
            ..Default::default()
        })
        .collect();
    let id = store_running_job(&jobs, submission, stages);
    let error = failed_at_pick_up(registry, &jobs, &id);
    assert!(
        error.contains("could not pick the job up") && error.contains("now resolve to wordcount@"),
        "{error}"
    );
}

/// Issue 19: a job whose file sets no split size gets one chosen for the slots live at its
/// submission; a scheduler restarted with other workers plans it with that size, not with one of
/// its own, so the job is picked up rather than refused as changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_19_automatic_splits_are_picked_up_after_a_restart_with_other_slots() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    // 64 MiB (sparse: text splits are planned from the size alone).
    std::fs::File::create(dir.path().join("in.txt"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let job_file = dir.path().join("job.toml");
    std::fs::write(
        &job_file,
        "name = \"wc\"\n[input]\npath = \"in.txt\"\n[[step]]\nflat_map = \
         \"wordcount/split_words\"\n[[step]]\nreduce = \"wordcount/sum\"\n[output]\npath = \
         \"out\"\n",
    )
    .unwrap();
    let submission = Submission::from_file(&job_file, None, None, false).unwrap();

    // Submitted on 4 slots, no worker registered yet: (64 + 4) MiB / 4 = 17 MiB, 4 map tasks.
    let store = Arc::new(MemoryJobStore::new());
    let first = Scheduler::new(
        registry.clone(),
        store.clone(),
        SchedulerConfig {
            split_slots: Some(4),
            ..SchedulerConfig::default()
        },
    )
    .unwrap();
    let id = first.submit(&Tenant::default(), submission).await.unwrap();
    let record = store.get(&id).unwrap().unwrap();
    assert_eq!(record.split_size, Some(17 << 20));
    assert_eq!(record.status.stages[0].tasks_total, 4);
    assert!(!record.status.state.is_final(), "{:?}", record.status);
    first.cancel(&Tenant::default(), &id).await.unwrap();

    // The record as the first scheduler left it, in a store a restarted one opens.
    let store_as = |name: &str, split_size: Option<u64>| {
        let jobs = dir.path().join(name);
        let sled = SledJobStore::open(&jobs).unwrap();
        sled.put(&JobRecord {
            split_size,
            ..record.clone()
        })
        .unwrap();
        sled.flush().unwrap();
        jobs
    };
    // Restarted with one slot, where it would choose 68 MiB splits (one task): it keeps 17 MiB.
    let jobs = store_as("jobs", record.split_size);
    let restarted = Scheduler::new(
        registry.clone(),
        Arc::new(SledJobStore::open(&jobs).unwrap()),
        SchedulerConfig {
            split_slots: Some(1),
            resume: true,
            ..SchedulerConfig::default()
        },
    )
    .unwrap();
    let status = restarted.status(&Tenant::default(), &id).unwrap();
    assert!(!status.state.is_final(), "{status:?}");
    assert_eq!(status.error, None);
    assert_eq!(status.stages[0].tasks_total, 4);
    restarted.cancel(&Tenant::default(), &id).await.unwrap();

    // Without the size kept (a record of an older scheduler, planned with 128 MiB splits), the
    // same record plans to one task, and is refused as changed.
    let jobs = store_as("jobs-unkept", None);
    let error = failed_at_pick_up(registry, &jobs, &id);
    assert!(error.contains("the job's input changed"), "{error}");
}
