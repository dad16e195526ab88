//! Placement and the run loop, driven through in-memory workers: no sockets, no guests. Each
//! [`FakeWorker`] records what the scheduler asks of it and answers as configured; the test plays
//! the workers' part by reporting task outcomes to the [`ControlState`], as the control service
//! does for real ones.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use weft_abi::UdfKind;
use weft_io::{InputFormat, InputSplit, OutputFormat};
use weft_task::{
    BlockLocation, GuestOutput, Heartbeat, Launch, TaskFailure, TaskId, TaskInput, TaskLimits,
    TaskOutcome, TaskOutput, TaskProgress, TaskResult, TaskSpec, WorkerRegistration,
};

use super::control::{ControlState, SlotShare};
use super::runner::{self, JobRun};
use super::tasks::{JobTasks, initial_status};
use super::worker::{WorkerCallError, WorkerConnection};
use super::{JobError, JobReport, placement};
use crate::job::{
    InputSpec, Plan, ResolvedStep, ShuffleCompression, SplitSource, Stage, StageInput, StageOutput,
    Submission,
};
use crate::jobs::store::JobRecord;
use crate::jobs::{JobState, JobStatus, JobStore, MemoryJobStore};
use crate::{ModuleId, Tenant};

/// What a fake worker was asked to do, in order.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Launch(Box<TaskSpec>),
    Kill(TaskId),
}

/// A worker in memory: it answers the scheduler's calls as configured and tells the test about
/// every launch and kill.
#[derive(Debug)]
struct FakeWorker {
    address: String,
    calls: mpsc::UnboundedSender<(String, Call)>,
    /// Launches to refuse before accepting ("busier than the scheduler thought").
    refusals: AtomicUsize,
    /// Launches fail as if the worker could not be reached.
    unreachable: AtomicBool,
    /// Every other call fails as if the worker were gone (launches still go through: the worker
    /// died after taking its tasks).
    gone: AtomicBool,
    /// What `check_paths` answers for every path: `None`, readable.
    unreadable: Mutex<Option<String>>,
    released: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl WorkerConnection for FakeWorker {
    async fn launch(&self, task: &TaskSpec) -> Result<Launch, WorkerCallError> {
        if self.unreachable.load(Ordering::Relaxed) {
            return Err(WorkerCallError::new("connection refused"));
        }
        if self
            .refusals
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Ok(Launch::Refused("no free slot".into()));
        }
        let _ = self
            .calls
            .send((self.address.clone(), Call::Launch(Box::new(task.clone()))));
        Ok(Launch::Accepted)
    }

    async fn kill(&self, task: &TaskId) -> Result<bool, WorkerCallError> {
        let _ = self
            .calls
            .send((self.address.clone(), Call::Kill(task.clone())));
        Ok(true)
    }

    async fn release_job(&self, job: &str) -> Result<(), WorkerCallError> {
        self.released.lock().unwrap().push(job.to_owned());
        Ok(())
    }

    async fn check_paths(
        &self,
        paths: &[String],
    ) -> Result<Vec<Result<(), String>>, WorkerCallError> {
        if self.gone.load(Ordering::Relaxed) {
            return Err(WorkerCallError::new("connection refused"));
        }
        let answer = self.unreadable.lock().unwrap().clone();
        Ok(paths
            .iter()
            .map(|_| answer.clone().map_or(Ok(()), Err))
            .collect())
    }
}

/// A cluster of fake workers around a real [`ControlState`].
struct Cluster {
    control: Arc<ControlState>,
    /// By address.
    workers: HashMap<String, Arc<FakeWorker>>,
    /// Worker ids by address.
    ids: HashMap<String, String>,
    tx: mpsc::UnboundedSender<(String, Call)>,
    calls: mpsc::UnboundedReceiver<(String, Call)>,
    dir: tempfile::TempDir,
    /// What jobs run by [`Cluster::run`] get as their `max_attempts` and `speculation`.
    max_attempts: u32,
    speculation: bool,
}

impl Cluster {
    /// `slots` gives each worker's slots, in registration order (`w1`, `w2`, …).
    fn new(slots: &[u32]) -> Cluster {
        Cluster::with_timeout(slots, Duration::from_secs(10))
    }

    fn with_timeout(slots: &[u32], worker_timeout: Duration) -> Cluster {
        let control = Arc::new(ControlState::new(
            Duration::from_millis(100),
            worker_timeout,
        ));
        let (tx, calls) = mpsc::unbounded_channel();
        let mut cluster = Cluster {
            control,
            workers: HashMap::new(),
            ids: HashMap::new(),
            tx,
            calls,
            dir: tempfile::tempdir().unwrap(),
            max_attempts: 1,
            speculation: false,
        };
        for &slots in slots {
            cluster.add_worker(slots);
        }
        cluster
    }

    /// Registers one more worker of `slots` slots; returns its id.
    fn add_worker(&mut self, slots: u32) -> String {
        let i = self.workers.len();
        let address = format!("fake://{i}");
        let worker = Arc::new(FakeWorker {
            address: address.clone(),
            calls: self.tx.clone(),
            refusals: AtomicUsize::new(0),
            unreachable: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            unreadable: Mutex::new(None),
            released: Mutex::new(Vec::new()),
        });
        let registered = self.control.register(
            WorkerRegistration {
                address: address.clone(),
                slots,
                memory_bytes: 0,
                hostname: format!("host{i}"),
                engine_hash: "e".into(),
                previous_id: None,
            },
            worker.clone(),
        );
        self.ids
            .insert(address.clone(), registered.worker_id.clone());
        self.workers.insert(address, worker);
        registered.worker_id
    }

    fn worker(&self, id: &str) -> &FakeWorker {
        let address = self
            .ids
            .iter()
            .find_map(|(a, i)| (i == id).then_some(a))
            .unwrap_or_else(|| panic!("no worker {id}"));
        &self.workers[address]
    }

    /// The next call any worker got, with the id of the worker that got it.
    async fn next_call(&mut self) -> (String, Call) {
        let (address, call) = tokio::time::timeout(Duration::from_secs(10), self.calls.recv())
            .await
            .expect("a call within 10 s")
            .expect("the cluster's workers are alive");
        (self.ids[&address].clone(), call)
    }

    /// The next launch (failing on anything else), with its worker's id.
    async fn next_launch(&mut self) -> (String, TaskSpec) {
        match self.next_call().await {
            (worker, Call::Launch(spec)) => (worker, *spec),
            other => panic!("expected a launch, got {other:?}"),
        }
    }

    /// The next `n` launches, by worker id.
    async fn next_launches(&mut self, n: usize) -> Vec<(String, TaskSpec)> {
        let mut launches = Vec::new();
        for _ in 0..n {
            launches.push(self.next_launch().await);
        }
        launches.sort_by(|a, b| a.0.cmp(&b.0));
        launches
    }

    /// Reports `task` done on `worker`, having written one block per entry of `blocks`
    /// (`(reduce partition, bytes)`).
    fn succeed(&self, worker: &str, task: &TaskSpec, blocks: &[(u32, u64)]) {
        // A task writing a part leaves it where the commit looks for it.
        if let TaskOutput::Part {
            staging_dir, part, ..
        } = &task.output
        {
            let name = weft_io::attempt_part_name(*part, task.id.attempt);
            std::fs::write(staging_dir.join(name), format!("part {part}\n")).unwrap();
        }
        let blocks = blocks
            .iter()
            .map(|&(partition, bytes)| BlockLocation {
                worker_id: worker.to_owned(),
                worker_address: format!("fake-{worker}"),
                map_task: task.id.clone(),
                partition,
                bytes,
                records: bytes,
            })
            .collect();
        self.control.report(TaskOutcome {
            id: task.id.clone(),
            worker_id: worker.to_owned(),
            result: Ok(TaskResult {
                records_in: 10,
                records_out: 5,
                bytes_in: 100,
                bytes_out: 50,
                blocks,
                remote_fetches: 0,
                records_skipped: 0,
            }),
            output: GuestOutput::default(),
            usage: Default::default(),
        });
    }

    fn fail(&self, worker: &str, task: &TaskId, message: &str, guest_fault: bool, cancelled: bool) {
        self.fail_reaching(worker, task, message, guest_fault, cancelled, None);
    }

    /// [`Cluster::fail`], saying the attempt could not reach the worker at `unreachable`.
    fn fail_reaching(
        &self,
        worker: &str,
        task: &TaskId,
        message: &str,
        guest_fault: bool,
        cancelled: bool,
        unreachable: Option<&str>,
    ) {
        self.control.report(TaskOutcome {
            id: task.clone(),
            worker_id: worker.to_owned(),
            result: Err(TaskFailure {
                message: message.to_owned(),
                guest_fault,
                cancelled,
                unreachable: unreachable.map(str::to_owned),
            }),
            output: GuestOutput::default(),
            usage: Default::default(),
        });
    }

    fn output(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Starts running `plan` as job `job-1`; returns its handle, status and cancel switch.
    fn run(&self, plan: Plan) -> RunningJob {
        let status = initial_status("job-1", &Tenant::default(), &plan);
        let record = JobRecord {
            status,
            submission: Submission::default(),
            staging: None,
            split_size: None,
        };
        self.run_with(plan, Arc::new(MemoryJobStore::new()), record, None)
    }

    /// Runs `plan` as the job of `record`, kept in `store`, picking it up with `resume`.
    fn run_with(
        &self,
        plan: Plan,
        store: Arc<dyn JobStore>,
        record: JobRecord,
        resume: Option<runner::Resume>,
    ) -> RunningJob {
        let tenant = Tenant::default();
        let (status_tx, status_rx) = watch::channel(record.status.clone());
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let run = JobRun {
            control: self.control.clone(),
            store: store.clone(),
            record,
            status: status_tx,
            cancel: cancel_rx,
            tenant,
            plan,
            overwrite: false,
            limits: TaskLimits::default(),
            max_attempts: self.max_attempts,
            speculation: self.speculation,
            roots: None,
            gate: None,
            outcomes: Some(self.control.subscribe("job-1", "default")),
            resume,
            superseded: HashMap::new(),
        };
        RunningJob {
            handle: tokio::spawn(runner::run(run)),
            status: status_rx,
            cancel: cancel_tx,
            store,
        }
    }
}

struct RunningJob {
    handle: tokio::task::JoinHandle<Result<JobReport, JobError>>,
    status: watch::Receiver<JobStatus>,
    cancel: watch::Sender<bool>,
    store: Arc<dyn JobStore>,
}

impl RunningJob {
    async fn result(self) -> (Result<JobReport, JobError>, JobStatus, Arc<dyn JobStore>) {
        let result = tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("the job ends within 20 s")
            .unwrap();
        let status = self.status.borrow().clone();
        (result, status, self.store)
    }
}

fn step(number: usize, kind: UdfKind, function: &str) -> ResolvedStep {
    ResolvedStep {
        number,
        kind,
        module: ModuleId::of(b"the module"),
        module_name: "m".into(),
        module_version: 1,
        function: function.into(),
        key_unused: false,
    }
}

/// A word count's plan: `splits` map tasks over `input.txt` (which need not exist: fake workers
/// read nothing), then `partitions` reduce tasks writing `output`.
fn wordcount_plan(splits: u64, partitions: u32, output: &Path) -> Plan {
    let input = PathBuf::from("/data/input.txt");
    let sum = step(2, UdfKind::Reduce, "sum");
    Plan {
        job_name: "wc".into(),
        limits: Vec::new(),
        max_attempts: None,
        speculation: None,
        input: InputSpec {
            path: input.clone(),
            format: InputFormat::Text,
            split_size: Some(100),
            on_error: weft_io::OnError::Fail,
        },
        split_size: 100,
        split_source: SplitSource::JobFile,
        warnings: Vec::new(),
        stages: vec![
            Stage {
                id: 0,
                parents: vec![],
                input: StageInput::Splits {
                    on_error: weft_io::OnError::Fail,
                    format: InputFormat::Text,
                    splits: (0..splits)
                        .map(|i| InputSplit {
                            path: input.clone(),
                            start: i * 100,
                            length: 100,
                        })
                        .collect(),
                },
                steps: vec![step(1, UdfKind::FlatMap, "split_words")],
                output: StageOutput::Shuffle {
                    partitions,
                    combiner: Some(sum.clone()),
                    compression: ShuffleCompression::None,
                },
                tasks: splits as u32,
            },
            Stage {
                id: 1,
                parents: vec![0],
                input: StageInput::Shuffle {
                    parent: 0,
                    partitions,
                    wide_step: sum,
                },
                steps: vec![],
                output: StageOutput::Output {
                    path: output.to_owned(),
                    format: OutputFormat::Text,
                    partitions,
                },
                tasks: partitions,
            },
        ],
    }
}

#[tokio::test]
async fn stages_run_in_order_and_each_reduce_task_reads_its_partition_of_every_block() {
    let mut cluster = Cluster::new(&[2, 2]);
    let job = cluster.run(wordcount_plan(3, 2, &cluster.output()));

    // Stage 0: three map tasks over two workers of two slots; each writes a block per partition.
    let mut maps = Vec::new();
    for _ in 0..3 {
        let (worker, spec) = cluster.next_launch().await;
        assert_eq!(spec.id.stage, 0);
        assert!(matches!(spec.input, TaskInput::Split { .. }), "{spec:?}");
        assert!(
            matches!(&spec.output, TaskOutput::Shuffle { partitions: 2, combiner: Some(c), .. } if c.function == "sum"),
            "{spec:?}"
        );
        maps.push((worker, spec));
    }
    let mut partitions: Vec<u32> = maps.iter().map(|(_, s)| s.id.partition).collect();
    partitions.sort();
    assert_eq!(partitions, [0, 1, 2]);
    for (i, (worker, spec)) in maps.iter().enumerate() {
        cluster.succeed(worker, spec, &[(0, 10 + i as u64), (1, 20 + i as u64)]);
    }

    // Stage 1: each reduce task is given exactly its partition's block of every map task.
    for _ in 0..2 {
        let (worker, spec) = cluster.next_launch().await;
        assert_eq!(spec.id.stage, 1);
        let TaskInput::Shuffle { wide, blocks } = &spec.input else {
            panic!("{spec:?}")
        };
        assert_eq!(wide.function, "sum");
        let mut from: Vec<u32> = blocks.iter().map(|b| b.map_task.partition).collect();
        from.sort();
        assert_eq!(from, [0, 1, 2], "{blocks:?}");
        assert!(blocks.iter().all(|b| b.partition == spec.id.partition));
        let TaskOutput::Part { part, .. } = &spec.output else {
            panic!("{spec:?}")
        };
        assert_eq!(*part, spec.id.partition);
        cluster.succeed(&worker, &spec, &[]);
    }

    let (result, status, store) = job.result().await;
    let report = result.unwrap();
    assert_eq!(report.stages.len(), 2);
    assert_eq!(report.stages[0].tasks, 3);
    assert_eq!(report.stages[0].records_in, 30);
    assert_eq!(status.state, JobState::Succeeded);
    assert_eq!(status.stages[1].tasks_done, 2);
    // Committed: the output directory exists, with its marker.
    assert!(cluster.output().join("_SUCCESS").is_file());
    // Every attempt is recorded, and every worker released the job's shuffle files.
    assert_eq!(store.tasks("job-1").unwrap().len(), 5);
    for worker in cluster.workers.values() {
        assert_eq!(*worker.released.lock().unwrap(), ["job-1"]);
    }
}

#[tokio::test]
async fn a_failed_task_stops_the_others_and_fails_the_job_with_its_message() {
    let mut cluster = Cluster::new(&[1, 1]);
    let job = cluster.run(wordcount_plan(2, 1, &cluster.output()));
    let (w1, first) = cluster.next_launch().await;
    let (w2, second) = cluster.next_launch().await;
    assert_ne!(w1, w2, "one slot each: the tasks run side by side");

    cluster.fail(
        &w1,
        &first.id,
        "flat_map m@1/split_words: trap",
        true,
        false,
    );
    // The other running attempt is killed; the worker answers that it was.
    let (killed_on, call) = cluster.next_call().await;
    assert_eq!(
        (killed_on.as_str(), call),
        (w2.as_str(), Call::Kill(second.id.clone()))
    );
    cluster.fail(&w2, &second.id, "the task was cancelled", false, true);

    let (result, status, _) = job.result().await;
    match result {
        Err(JobError::Task {
            stage,
            partition,
            message,
            guest_fault,
            ..
        }) => {
            assert_eq!((stage, partition), (0, first.id.partition));
            assert!(guest_fault);
            assert_eq!(message, "flat_map m@1/split_words: trap");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(status.state, JobState::Failed);
    assert_eq!(status.stages[0].tasks_failed, 1);
    assert_eq!(status.stages[0].tasks_running, 0);
    // Nothing that looks like output, and no staging directory left beside it.
    let left: Vec<_> = std::fs::read_dir(cluster.dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    // Both slots are free again.
    assert!(
        cluster
            .control
            .workers()
            .iter()
            .all(|w| w.free_slots() == 1)
    );
}

#[tokio::test]
async fn a_refused_launch_is_tried_again() {
    let mut cluster = Cluster::new(&[1]);
    cluster.worker("w1").refusals.store(2, Ordering::Relaxed);
    let job = cluster.run(wordcount_plan(1, 1, &cluster.output()));
    let (worker, map) = cluster.next_launch().await;
    cluster.succeed(&worker, &map, &[(0, 5)]);
    let (worker, reduce) = cluster.next_launch().await;
    cluster.succeed(&worker, &reduce, &[]);
    let (result, _, _) = job.result().await;
    result.unwrap();
    assert_eq!(cluster.worker("w1").refusals.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_worker_that_cannot_be_reached_fails_the_job_naming_it() {
    // A launch that fails leaves the worker aside for a while (the worker timeout); with no other
    // worker, the job ends saying what the last launch met.
    let cluster = Cluster::with_timeout(&[1], Duration::from_millis(300));
    cluster
        .worker("w1")
        .unreachable
        .store(true, Ordering::Relaxed);
    let job = cluster.run(wordcount_plan(1, 1, &cluster.output()));
    let (result, status, _) = job.result().await;
    let error = result.unwrap_err();
    assert!(matches!(error, JobError::Cluster(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("the last worker set aside: launching job-1 stage 0 partition 0 attempt ")
            && text.ends_with(" on w1: connection refused"),
        "{text}"
    );
    assert_eq!(status.error.as_deref(), Some(text.as_str()));
}

#[tokio::test]
async fn a_launch_that_fails_goes_to_another_worker_as_the_next_attempt() {
    let mut cluster = Cluster::new(&[1, 1]);
    cluster
        .worker("w1")
        .unreachable
        .store(true, Ordering::Relaxed);
    let job = cluster.run(wordcount_plan(1, 1, &cluster.output()));
    // w1 scores as well as w2; whichever is tried first, the map runs on w2.
    let (worker, map) = cluster.next_launch().await;
    assert_eq!(worker, "w2");
    cluster.succeed(&worker, &map, &[(0, 10)]);
    let (worker, reduce) = cluster.next_launch().await;
    assert_eq!(worker, "w2");
    cluster.succeed(&worker, &reduce, &[]);
    let (result, status, _) = job.result().await;
    result.unwrap();
    assert_eq!(status.state, JobState::Succeeded);
}

#[tokio::test]
async fn a_job_no_worker_can_read_is_refused_with_what_each_said() {
    let cluster = Cluster::new(&[1, 1]);
    for worker in cluster.workers.values() {
        *worker.unreadable.lock().unwrap() = Some("No such file or directory".into());
    }
    let job = cluster.run(wordcount_plan(1, 1, &cluster.output()));
    let (result, _, _) = job.result().await;
    let Err(JobError::Input(detail)) = result else {
        panic!("{result:?}")
    };
    for id in ["w1", "w2"] {
        assert!(
            detail.contains(&format!(
                "{id} cannot read /data/input.txt: No such file or directory"
            )),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn map_tasks_run_only_where_the_input_is_readable() {
    let mut cluster = Cluster::new(&[4, 4]);
    *cluster.worker("w1").unreadable.lock().unwrap() = Some("Permission denied".into());
    let job = cluster.run(wordcount_plan(3, 1, &cluster.output()));
    for _ in 0..3 {
        let (worker, spec) = cluster.next_launch().await;
        assert_eq!(worker, "w2", "{spec:?}");
        cluster.succeed(&worker, &spec, &[(0, 1)]);
    }
    let (worker, spec) = cluster.next_launch().await;
    cluster.succeed(&worker, &spec, &[]);
    job.result().await.0.unwrap();
}

/// `weft run` submits its job before its workers register, and a cluster gains workers while jobs
/// run: a worker that registers after the job started is asked about the input and takes map tasks.
#[tokio::test]
async fn a_worker_that_registers_while_the_job_runs_takes_map_tasks() {
    let mut cluster = Cluster::new(&[1]);
    let job = cluster.run(wordcount_plan(2, 1, &cluster.output()));
    let (first, a) = cluster.next_launch().await;
    assert_eq!(first, "w1");
    let late = cluster.add_worker(1);
    let (second, b) = cluster.next_launch().await;
    assert_eq!(second, late, "the second map task waits for no slot of w1");
    cluster.succeed(&first, &a, &[(0, 1)]);
    cluster.succeed(&second, &b, &[(0, 1)]);
    let (worker, reduce) = cluster.next_launch().await;
    cluster.succeed(&worker, &reduce, &[]);
    job.result().await.0.unwrap();
}

#[tokio::test]
async fn a_task_lost_with_its_worker_runs_again_and_a_users_failure_does_not() {
    let mut cluster = Cluster::new(&[1, 1]);
    let job = cluster.run(wordcount_plan(1, 1, &cluster.output()));
    let (worker, map) = cluster.next_launch().await;
    assert_eq!(map.id.attempt, 0);
    // Lost to the infrastructure (the worker stopped, a disk failed): it runs again, attempt 1.
    cluster.fail(&worker, &map.id, "disk full", false, false);
    let (worker, map) = cluster.next_launch().await;
    assert_eq!((map.id.partition, map.id.attempt), (0, 1));
    // A late report of attempt 0 changes nothing.
    let mut stale = map.clone();
    stale.id.attempt = 0;
    cluster.succeed(&worker, &stale, &[(0, 99)]);
    cluster.succeed(&worker, &map, &[(0, 10)]);
    // The user's failure fails the job at once, with the guest's message.
    let (worker, reduce) = cluster.next_launch().await;
    cluster.fail(&worker, &reduce.id, "trapped: unreachable", true, false);
    let (result, status, store) = job.result().await;
    let Err(JobError::Task {
        message,
        guest_fault,
        ..
    }) = result
    else {
        panic!("{result:?}")
    };
    assert!(guest_fault);
    assert_eq!(message, "trapped: unreachable");
    assert_eq!(status.stages[0].tasks_failed, 1);
    assert_eq!(status.stages[0].tasks_done, 1);
    let attempts: Vec<(u32, u32, u32)> = store
        .tasks("job-1")
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(attempts, [(0, 0, 0), (0, 0, 1), (1, 0, 0)]);
}

#[tokio::test]
async fn shuffle_output_lost_with_its_worker_is_written_again_then_read() {
    let mut cluster = Cluster::with_timeout(&[1, 1], Duration::from_millis(300));
    let job = cluster.run(wordcount_plan(2, 1, &cluster.output()));
    let [(w1, map_a), (w2, map_b)] = <[_; 2]>::try_from(cluster.next_launches(2).await).unwrap();
    assert_eq!((w1.as_str(), w2.as_str()), ("w1", "w2"));
    cluster.succeed(&w1, &map_a, &[(0, 10)]);
    cluster.succeed(&w2, &map_b, &[(0, 20)]);
    let (reducer, reduce) = cluster.next_launch().await;
    assert_eq!(reduce.id.stage, 1);

    // w1 goes silent and is dropped; w2 keeps its heartbeat.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let beat = |cluster: &Cluster| {
        cluster.control.heartbeat(Heartbeat {
            worker_id: "w2".into(),
            running: Vec::new(),
            compiled_modules: Vec::new(),
            progress: Vec::new(),
            draining: false,
        })
    };
    beat(&cluster);
    tokio::time::sleep(Duration::from_millis(200)).await;
    beat(&cluster);
    assert_eq!(cluster.control.reap(), ["w1"]);
    if reducer == "w2" {
        // The reduce on w2 cannot fetch w1's block.
        cluster.fail(
            "w2",
            &reduce.id,
            "fetching a shuffle block from fake-w1: connection refused",
            false,
            false,
        );
    }
    // Only the map task whose output was on w1 runs again (on w2), then the reduce, reading the
    // new block and the one w2 kept.
    let (worker, again) = cluster.next_launch().await;
    assert_eq!(worker, "w2");
    assert_eq!(
        (again.id.stage, again.id.partition, again.id.attempt),
        (0, map_a.id.partition, 1)
    );
    cluster.succeed("w2", &again, &[(0, 11)]);
    let (worker, reduce) = cluster.next_launch().await;
    assert_eq!(
        (worker.as_str(), reduce.id.stage, reduce.id.attempt),
        ("w2", 1, 1)
    );
    let TaskInput::Shuffle { blocks, .. } = &reduce.input else {
        panic!("{reduce:?}")
    };
    let mut read: Vec<(String, u64)> = blocks
        .iter()
        .map(|b| (b.worker_id.clone(), b.bytes))
        .collect();
    read.sort();
    assert_eq!(read, [("w2".to_owned(), 11), ("w2".to_owned(), 20)]);
    cluster.succeed("w2", &reduce, &[]);
    let (result, status, _) = job.result().await;
    let report = result.unwrap();
    assert_eq!(status.state, JobState::Succeeded);
    // The status counts each task once: the lost output is out, its replacement in.
    assert_eq!(status.stages[0].tasks_done, 2);
    assert_eq!(status.stages[0].records_in, 20);
    assert_eq!(report.stages[0].bytes_out, 100);
}

#[tokio::test]
async fn cancel_kills_what_runs_and_ends_the_job_cancelled() {
    let mut cluster = Cluster::new(&[2]);
    let job = cluster.run(wordcount_plan(2, 1, &cluster.output()));
    let (worker, a) = cluster.next_launch().await;
    let (_, b) = cluster.next_launch().await;
    job.cancel.send(true).unwrap();
    let mut killed = HashSet::new();
    for _ in 0..2 {
        match cluster.next_call().await {
            (_, Call::Kill(id)) => {
                killed.insert(id);
            }
            other => panic!("expected a kill, got {other:?}"),
        }
    }
    assert_eq!(killed, HashSet::from([a.id.clone(), b.id.clone()]));
    cluster.fail(&worker, &a.id, "the task was cancelled", false, true);
    cluster.fail(&worker, &b.id, "the task was cancelled", false, true);
    let (result, status, _) = job.result().await;
    assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
    assert_eq!(status.state, JobState::Cancelled);
    assert!(!cluster.output().exists());
}

#[tokio::test]
async fn a_heartbeat_reconciles_what_the_worker_runs_with_what_jobs_want() {
    let mut cluster = Cluster::new(&[1]);
    let job = cluster.run(wordcount_plan(1, 1, &cluster.output()));
    let (worker, spec) = cluster.next_launch().await;
    // The worker runs an attempt nobody wants (a job that is over): it is told to kill it.
    let stray = TaskId {
        job: "old-1".into(),
        stage: 0,
        partition: 0,
        attempt: 0,
    };
    let reply = cluster.control.heartbeat(Heartbeat {
        worker_id: worker.clone(),
        running: vec![spec.id.clone(), stray.clone()],
        compiled_modules: vec![],
        progress: vec![
            TaskProgress {
                id: spec.id.clone(),
                records_in: 7,
                bytes_in: 70,
            },
            TaskProgress {
                id: stray.clone(),
                records_in: 1000,
                bytes_in: 1000,
            },
        ],
        draining: false,
    });
    assert!(!reply.reregister);
    assert_eq!(reply.kill, [stray]);
    // What the attempt has read shows in the job's status while it runs (the stray's does not).
    let mut status = job.status.clone();
    let progress = |s: &JobStatus| (s.stages[0].records_in_running, s.stages[0].bytes_in_running);
    tokio::time::timeout(
        Duration::from_secs(5),
        status.wait_for(|s| progress(s) == (7, 70)),
    )
    .await
    .expect("progress shows within 5 s")
    .unwrap();
    assert_eq!(status.borrow().stages[0].bytes_total, 100);
    // An unknown worker is told to register again.
    let reply = cluster.control.heartbeat(Heartbeat {
        worker_id: "w99".into(),
        running: vec![],
        compiled_modules: vec![],
        progress: vec![],
        draining: false,
    });
    assert!(reply.reregister);
    // The worker no longer runs the attempt, well after its launch: its report was lost.
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.control.heartbeat(Heartbeat {
        worker_id: worker.clone(),
        running: vec![],
        compiled_modules: vec![],
        progress: vec![],
        draining: false,
    });
    // It runs again, as attempt 1, and the job finishes.
    let (worker, again) = cluster.next_launch().await;
    assert_eq!((again.id.stage, again.id.attempt), (0, 1));
    cluster.succeed(&worker, &again, &[(0, 10)]);
    let (worker, reduce) = cluster.next_launch().await;
    cluster.succeed(&worker, &reduce, &[]);
    let (result, _, store) = job.result().await;
    result.unwrap();
    let (_, lost) = &store.tasks("job-1").unwrap()[0];
    let message = lost.error.as_deref().unwrap_or_default();
    assert!(message.contains("its report was lost"), "{message}");
}

/// A reduce task of `partitions` reading blocks of `(worker, bytes)`.
fn reduce_task(blocks: &[(&str, u64)]) -> TaskSpec {
    let plan = wordcount_plan(1, 1, Path::new("/out"));
    let blocks: Vec<BlockLocation> = blocks
        .iter()
        .enumerate()
        .map(|(i, &(worker, bytes))| BlockLocation {
            worker_id: worker.into(),
            worker_address: String::new(),
            map_task: TaskId {
                job: "j".into(),
                stage: 0,
                partition: i as u32,
                attempt: 0,
            },
            partition: 0,
            bytes,
            records: 1,
        })
        .collect();
    let tasks = JobTasks {
        job_id: "j",
        tenant: &Tenant::default(),
        job_name: "wc",
        limits: TaskLimits::default(),
        roots: None,
        staging_dir: Path::new("/staging"),
        parts_dir: Path::new("/staging/_attempts"),
    };
    tasks.stage(&plan.stages[1], &blocks).remove(0)
}

#[test]
fn a_reduce_task_goes_where_most_of_its_input_is() {
    let cluster = Cluster::new(&[1, 1, 1]);
    let workers = cluster.control.workers();
    let spec = reduce_task(&[("w1", 10), ("w2", 500), ("w3", 20), ("w2", 100)]);
    let chosen = placement::choose(&workers, |w| placement::score(w, &spec, None)).unwrap();
    assert_eq!(chosen.id, "w2");
}

#[test]
fn compiled_modules_then_free_slots_then_the_lowest_id_break_ties() {
    let cluster = Cluster::new(&[1, 2, 2]);
    let map = JobTasks {
        job_id: "j",
        tenant: &Tenant::default(),
        job_name: "wc",
        limits: TaskLimits::default(),
        roots: None,
        staging_dir: Path::new("/staging"),
        parts_dir: Path::new("/staging/_attempts"),
    }
    .stage(&wordcount_plan(1, 1, Path::new("/out")).stages[0], &[])
    .remove(0);
    let choose = |eligible: Option<&HashSet<String>>| {
        let workers = cluster.control.workers();
        placement::choose(&workers, |w| placement::score(w, &map, eligible)).map(|w| w.id.clone())
    };
    // Equal scores: the most free slots (w2, w3), then the lowest id.
    assert_eq!(choose(None).as_deref(), Some("w2"));
    // A worker holding every module of the task compiled wins over free slots.
    let module = ModuleId::of(b"the module").to_string();
    cluster.control.heartbeat(Heartbeat {
        worker_id: "w1".into(),
        running: vec![],
        compiled_modules: vec![module],
        progress: vec![],
        draining: false,
    });
    assert_eq!(choose(None).as_deref(), Some("w1"));
    // But only among the eligible.
    let eligible = HashSet::from(["w3".to_owned()]);
    assert_eq!(choose(Some(&eligible)).as_deref(), Some("w3"));
    // A worker with no free slot is never chosen.
    let taken = cluster
        .control
        .acquire(&map.id, |w| (w.id == "w1").then_some(1));
    assert_eq!(taken.map(|(id, _)| id).as_deref(), Some("w1"));
    assert_eq!(choose(None).as_deref(), Some("w2"));
}

/// A worker registering again (the scheduler restarted, or dropped it) keeps its id unless another
/// worker holds it; new workers get ids past it.
#[tokio::test]
async fn a_worker_registering_again_keeps_its_id() {
    let cluster = Cluster::new(&[1]);
    let conn = |address: &str| -> Arc<dyn WorkerConnection> {
        Arc::new(FakeWorker {
            address: address.to_owned(),
            calls: cluster.tx.clone(),
            refusals: AtomicUsize::new(0),
            unreachable: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            unreadable: Mutex::new(None),
            released: Mutex::new(Vec::new()),
        })
    };
    let registration = |address: &str, previous: Option<&str>| WorkerRegistration {
        address: address.to_owned(),
        slots: 1,
        memory_bytes: 0,
        hostname: "h".into(),
        engine_hash: "e".into(),
        previous_id: previous.map(str::to_owned),
    };
    let id = |address: &str, previous: Option<&str>| {
        cluster
            .control
            .register(registration(address, previous), conn(address))
            .worker_id
    };
    assert_eq!(id("http://a:1", Some("w7")), "w7");
    assert_eq!(
        id("http://b:1", None),
        "w8",
        "new ids start past the ones given back"
    );
    // Held by another worker, or not an id this scheduler gives: a fresh one.
    assert_eq!(id("http://c:1", Some("w7")), "w9");
    assert_eq!(id("http://d:1", Some("worker-3")), "w10");
    assert_eq!(id("http://e:1", Some("w03")), "w11");
    // The same address again is the same worker come back: it keeps its id.
    assert_eq!(id("http://a:1", Some("w7")), "w7");
}

#[test]
fn slots_go_by_weight_and_a_capped_tenant_holds_no_one_back() {
    let cluster = Cluster::new(&[6]);
    let control = &cluster.control;
    control.set_shares(HashMap::from([
        (
            "capped".to_owned(),
            SlotShare {
                weight: 10,
                max_slots: Some(2),
            },
        ),
        (
            "heavy".to_owned(),
            SlotShare {
                weight: 2,
                max_slots: None,
            },
        ),
    ]));
    let task = |job: &str, partition| TaskId {
        job: job.into(),
        stage: 0,
        partition,
        attempt: 0,
    };
    let _rx = (
        control.subscribe("c", "capped"),
        control.subscribe("h", "heavy"),
        control.subscribe("l", "light"),
    );
    let take = |t: &TaskId| control.acquire(t, |_| Some(0)).map(|(w, _)| w);

    // The capped tenant takes two slots and no more, though four are free...
    assert!(take(&task("c", 0)).is_some());
    assert!(take(&task("c", 1)).is_some());
    assert_eq!(take(&task("c", 2)), None);
    // ... and, at its cap, does not wait in line: the others take the free slots.
    assert!(take(&task("l", 0)).is_some());
    assert!(take(&task("h", 0)).is_some());
    assert!(take(&task("h", 1)).is_some());
    // Its share (2 over weight 10) is the smallest, but asking again at its cap, it holds no one
    // back: `light` (1 running) still gets a free slot.
    assert_eq!(take(&task("c", 2)), None);
    assert!(take(&task("l", 1)).is_some());
    // Once `heavy` finds no slot...
    assert_eq!(take(&task("h", 2)), None, "every slot is taken");
    // ... the next free slot is `heavy`'s (2 running over weight 2 is a share of 1, `light` has 2),
    // and `light` is held back while `heavy` waits with the smaller share.
    let worker = cluster.ids.values().next().unwrap().clone();
    assert!(control.release(&worker, &task("c", 0)));
    assert_eq!(take(&task("l", 2)), None, "held back for `heavy`");
    assert!(take(&task("h", 2)).is_some());
    // Under its cap again, the capped tenant (a share of 0.1) goes before `light` (2), waiting.
    assert!(control.release(&worker, &task("h", 2)));
    assert!(take(&task("c", 2)).is_some());
}

#[test]
fn a_tenant_waiting_for_other_workers_holds_no_one_back_from_a_free_slot() {
    let cluster = Cluster::new(&[1, 1]);
    let control = &cluster.control;
    let task = |job: &str, partition| TaskId {
        job: job.into(),
        stage: 0,
        partition,
        attempt: 0,
    };
    let _rx = (control.subscribe("a", "a"), control.subscribe("b", "b"));
    let (w1, w2) = ("w1".to_owned(), "w2".to_owned());
    let on = |worker: &str| {
        let worker = worker.to_owned();
        move |w: &super::WorkerEntry| (w.id == worker).then_some(0)
    };
    assert_eq!(
        control.acquire(&task("b", 0), on(&w1)).map(|(w, _)| w),
        Some(w1.clone())
    );
    // `a` can run only on w1, which `b` holds: it waits, with the smaller share (0 against 1)...
    assert!(control.acquire(&task("a", 0), on(&w1)).is_none());
    // ... but not for w2, which `b` takes rather than leave it idle.
    assert_eq!(
        control.acquire(&task("b", 1), |_| Some(0)).map(|(w, _)| w),
        Some(w2.clone())
    );
    // When w1 frees up, `a` gets it.
    assert!(control.release(&w1, &task("b", 0)));
    assert_eq!(
        control.acquire(&task("a", 0), on(&w1)).map(|(w, _)| w),
        Some(w1)
    );
}

#[tokio::test]
async fn a_task_failing_by_its_own_code_runs_up_to_max_attempts() {
    let mut cluster = Cluster::new(&[1]);
    cluster.max_attempts = 3;
    let job = cluster.run(wordcount_plan(1, 1, &cluster.output()));
    // Fails twice (a limit hit on a loaded machine, say), succeeds the third time.
    for attempt in 0..2 {
        let (worker, map) = cluster.next_launch().await;
        assert_eq!(map.id.attempt, attempt);
        cluster.fail(&worker, &map.id, "exceeded the time limit", true, false);
    }
    let (worker, map) = cluster.next_launch().await;
    assert_eq!(map.id.attempt, 2);
    cluster.succeed(&worker, &map, &[(0, 10)]);
    // The reduce fails three times: the job fails with the last message.
    for attempt in 0..3 {
        let (worker, reduce) = cluster.next_launch().await;
        assert_eq!(reduce.id.attempt, attempt);
        cluster.fail(&worker, &reduce.id, &format!("trap {attempt}"), true, false);
    }
    let (result, status, _) = job.result().await;
    let Err(JobError::Task { message, .. }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(message, "trap 2");
    assert_eq!(status.stages[1].tasks_failed, 3);
}

#[tokio::test]
async fn a_straggler_gets_a_second_attempt_elsewhere_and_the_first_to_finish_wins() {
    let mut cluster = Cluster::new(&[2, 2]);
    cluster.speculation = true;
    let job = cluster.run(wordcount_plan(4, 1, &cluster.output()));
    let mut maps = cluster.next_launches(4).await;
    // Three finish at once; the fourth runs on, past the least time worth a copy (1 s).
    let (slow_worker, slow) = maps.pop().unwrap();
    for (worker, spec) in &maps {
        cluster.succeed(worker, spec, &[(0, 10)]);
    }
    let (copy_worker, copy) = cluster.next_launch().await;
    assert_eq!(copy.id.partition, slow.id.partition);
    assert_eq!(copy.id.attempt, 1);
    assert_ne!(copy_worker, slow_worker, "the copy runs on another worker");
    // The copy finishes first: the original is killed, and the reduce reads the copy's block.
    cluster.succeed(&copy_worker, &copy, &[(0, 7)]);
    let (worker, call) = cluster.next_call().await;
    assert_eq!(
        (worker, call),
        (slow_worker.clone(), Call::Kill(slow.id.clone()))
    );
    let (worker, reduce) = cluster.next_launch().await;
    let TaskInput::Shuffle { blocks, .. } = &reduce.input else {
        panic!("{reduce:?}")
    };
    assert_eq!(blocks.len(), 4);
    assert!(blocks.iter().any(|b| b.map_task == copy.id && b.bytes == 7));
    assert!(!blocks.iter().any(|b| b.map_task == slow.id));
    // The loser's late report changes nothing but is recorded: every attempt is.
    cluster.succeed(&slow_worker, &slow, &[(0, 99)]);
    cluster.succeed(&worker, &reduce, &[]);
    let (result, status, store) = job.result().await;
    result.unwrap();
    assert_eq!(status.stages[0].tasks_done, 4);
    assert_eq!(status.stages[0].tasks_running, 0);
    let records = store.tasks("job-1").unwrap();
    let of_slow: Vec<u32> = records
        .iter()
        .filter(|((stage, partition, _), _)| (*stage, *partition) == (0, slow.id.partition))
        .map(|((_, _, attempt), _)| *attempt)
        .collect();
    assert_eq!(of_slow, [0, 1]);
    assert_eq!(status.usage.attempts, records.len() as u64);
}

#[tokio::test]
async fn a_peer_a_fetch_cannot_reach_is_lost_at_once_and_its_output_written_again() {
    // A worker timeout far longer than the test may take: the loss must come from the probe.
    let mut cluster = Cluster::with_timeout(&[1, 1], Duration::from_secs(60));
    let started = std::time::Instant::now();
    let job = cluster.run(wordcount_plan(2, 1, &cluster.output()));
    let [(w1, map_a), (w2, map_b)] = <[_; 2]>::try_from(cluster.next_launches(2).await).unwrap();
    cluster.succeed(&w1, &map_a, &[(0, 10)]);
    cluster.succeed(&w2, &map_b, &[(0, 20)]);
    let (reducer, reduce) = cluster.next_launch().await;
    assert_eq!(reducer, "w2", "the reduce goes where most of its input is");
    // w1 dies; the reduce on w2 cannot fetch its block and says from where.
    cluster.worker("w1").gone.store(true, Ordering::Relaxed);
    cluster.fail_reaching(
        "w2",
        &reduce.id,
        "fetching a shuffle block from fake://0: connection refused",
        false,
        false,
        Some("fake://0"),
    );
    let (worker, again) = cluster.next_launch().await;
    assert_eq!(
        (worker.as_str(), again.id.stage, again.id.attempt),
        ("w2", 0, 1)
    );
    assert_eq!(
        cluster.control.live_workers(),
        HashSet::from(["w2".to_owned()])
    );
    cluster.succeed("w2", &again, &[(0, 11)]);
    let (worker, reduce) = cluster.next_launch().await;
    assert_eq!((worker.as_str(), reduce.id.stage), ("w2", 1));
    cluster.succeed("w2", &reduce, &[]);
    let (result, _, _) = job.result().await;
    result.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_draining_worker_shows_as_such_and_gets_no_task() {
    let cluster = Cluster::new(&[2, 2]);
    let control = &cluster.control;
    control.heartbeat(Heartbeat {
        worker_id: "w1".into(),
        running: Vec::new(),
        compiled_modules: Vec::new(),
        progress: Vec::new(),
        draining: true,
    });
    let infos = control.worker_infos();
    let shown: Vec<(&str, bool, u32)> = infos
        .iter()
        .map(|w| (w.worker_id.as_str(), w.draining, w.free_slots))
        .collect();
    assert_eq!(shown, [("w1", true, 0), ("w2", false, 2)]);
    let _rx = control.subscribe("job", "t");
    for partition in 0..2 {
        let task = TaskId {
            job: "job".into(),
            stage: 0,
            partition,
            attempt: 0,
        };
        let taken = control.acquire(&task, |_| Some(0)).map(|(w, _)| w);
        assert_eq!(taken.as_deref(), Some("w2"));
    }
    let third = TaskId {
        job: "job".into(),
        stage: 0,
        partition: 2,
        attempt: 0,
    };
    assert!(control.acquire(&third, |_| Some(0)).is_none(), "w1 drains");
}

#[tokio::test]
async fn a_job_picked_up_after_a_restart_runs_only_the_tasks_whose_output_is_gone() {
    let mut cluster = Cluster::with_timeout(&[2, 2], Duration::from_millis(300));
    let output = cluster.output();
    let mut job = cluster.run(wordcount_plan(4, 2, &output));
    // Four maps, two on each worker; then one of the two reduces finishes.
    for (worker, map) in cluster.next_launches(4).await {
        let bytes = 10 + u64::from(map.id.partition);
        cluster.succeed(&worker, &map, &[(0, bytes), (1, bytes)]);
    }
    let reduces = cluster.next_launches(2).await;
    let (done_on, done) = &reduces[0];
    cluster.succeed(done_on, done, &[]);
    let (running_on, running) = reduces[1].clone();
    // Wait until the finished reduce is recorded, then the scheduler "dies": its run stops, and
    // what it had launched is not known to the next one.
    let store = job.store.clone();
    let mut status = job.status.clone();
    status
        .wait_for(|s| s.stages[1].tasks_done == 1)
        .await
        .unwrap();
    let record = store.get("job-1").unwrap().unwrap();
    let staging = PathBuf::from(
        record
            .staging
            .clone()
            .expect("the staging directory is recorded"),
    );
    // A killed process runs no destructor: the staging directory outlives it (the aborted run
    // here drops its committer, which removes it; it is put back as the crash would leave it).
    let kept = cluster.dir.path().join("kept");
    copy_tree(&staging, &kept);
    job.handle.abort();
    let _ = (&mut job.handle).await;
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::rename(&kept, &staging).unwrap();
    cluster.control.release(&running_on, &running.id);

    // w2 does not come back; w1 does (it is still registered). The job is picked up.
    let maps_on = |worker: &str| -> Vec<u32> {
        store
            .tasks("job-1")
            .unwrap()
            .into_iter()
            .filter(|((stage, _, _), r)| *stage == 0 && r.worker_id == worker)
            .map(|((_, partition, _), _)| partition)
            .collect()
    };
    let lost_maps = maps_on("w2");
    assert_eq!(lost_maps.len(), 2);
    cluster.control.lose("w2", "gone with the scheduler");
    let resume = runner::Resume {
        staging_dir: staging,
        tasks: store.tasks("job-1").unwrap(),
    };
    let plan = wordcount_plan(4, 2, &output);
    let job = cluster.run_with(plan, store.clone(), record, Some(resume));

    // Only w2's two maps run again (on w1, as their next attempts), then the reduce that had not
    // finished; the finished reduce and w1's maps do not run again.
    let mut again: Vec<(u32, u32, u32)> = Vec::new();
    for (worker, map) in cluster.next_launches(2).await {
        assert_eq!(worker, "w1");
        again.push((map.id.stage, map.id.partition, map.id.attempt));
        cluster.succeed(&worker, &map, &[(0, 5), (1, 5)]);
    }
    again.sort();
    assert_eq!(
        again,
        lost_maps.iter().map(|&p| (0, p, 1)).collect::<Vec<_>>()
    );
    let (worker, reduce) = cluster.next_launch().await;
    assert_eq!(worker, "w1");
    assert_eq!(
        (reduce.id.stage, reduce.id.partition),
        (1, running.id.partition)
    );
    let TaskInput::Shuffle { blocks, .. } = &reduce.input else {
        panic!("{reduce:?}")
    };
    assert_eq!(blocks.len(), 4, "one block of each map: {blocks:?}");
    assert!(blocks.iter().all(|b| b.worker_id == "w1"), "{blocks:?}");
    cluster.succeed(&worker, &reduce, &[]);
    let (result, status, store) = job.result().await;
    result.unwrap();
    assert_eq!(status.state, JobState::Succeeded);
    assert_eq!(status.stages[0].tasks_done, 4);
    assert_eq!(status.stages[1].tasks_done, 2);
    assert_eq!(status.stages[1].tasks_running, 0);
    // Each partition's part committed once, from the attempt that won.
    let mut parts: Vec<String> = std::fs::read_dir(&output)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    parts.sort();
    assert_eq!(parts, ["_SUCCESS", "_WEFT", "part-00000", "part-00001"]);
    // No attempt number was given twice to what was recorded.
    let keys: Vec<(u32, u32, u32)> = store
        .tasks("job-1")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let unique: HashSet<&(u32, u32, u32)> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
}

/// Copies the files of `from` and of its directories into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_session_of_an_earlier_registration_ending_loses_nobody() {
    let cluster = Cluster::new(&[1]);
    let first = cluster.control.registration("w1").unwrap().0;
    // w1 is lost (frozen past its timeout), then registers again under its id.
    assert!(cluster.control.lose("w1", "silent"));
    let again = cluster.control.register(
        WorkerRegistration {
            address: "fake://0".into(),
            slots: 1,
            memory_bytes: 0,
            hostname: "host0".into(),
            engine_hash: "e".into(),
            previous_id: Some("w1".into()),
        },
        cluster.workers["fake://0"].clone(),
    );
    assert_eq!(again.worker_id, "w1");
    let second = cluster.control.registration("w1").unwrap().0;
    assert_ne!(first, second);
    // Its old session ends (the connection of before its freeze closes): w1 stays.
    assert!(
        !cluster
            .control
            .lose_registration("w1", first, "old session")
    );
    assert!(cluster.control.live_workers().contains("w1"));
    // Its current one ending loses it.
    assert!(
        cluster
            .control
            .lose_registration("w1", second, "session ended")
    );
    assert!(!cluster.control.live_workers().contains("w1"));
}

#[tokio::test]
async fn a_worker_whose_attempts_keep_failing_is_set_aside_by_the_stage() {
    let mut cluster = Cluster::with_timeout(&[1, 1], Duration::from_millis(400));
    let job = cluster.run(wordcount_plan(1, 1, &cluster.output()));
    // The map fails twice on w1 (chosen first: the lowest id) with a disk error: not the task's
    // fault, and w1 is still there.
    let disk = "writing shuffle block: No space left on device (os error 28)";
    for attempt in 0..2 {
        let (worker, map) = cluster.next_launch().await;
        assert_eq!((worker.as_str(), map.id.attempt), ("w1", attempt));
        cluster.fail(&worker, &map.id, disk, false, false);
    }
    // Set aside: the third attempt goes to w2, though w1 has a free slot too.
    let (worker, map) = cluster.next_launch().await;
    assert_eq!((worker.as_str(), map.id.attempt), ("w2", 2));
    cluster.succeed(&worker, &map, &[(0, 10)]);
    // A new stage starts afresh: the reduce may go back to w1 (the lowest id again).
    let (worker, reduce) = cluster.next_launch().await;
    assert_eq!(reduce.id.stage, 1);
    cluster.succeed(&worker, &reduce, &[]);
    let (result, status, _) = job.result().await;
    result.unwrap();
    assert_eq!(status.stages[0].tasks_failed, 2);
}

#[tokio::test]
async fn a_pending_copy_of_a_task_that_finished_is_dropped_not_launched() {
    // w1 runs the job; w2's two slots are held by another job's tasks, so copies must wait.
    let mut cluster = Cluster::new(&[2, 2]);
    cluster.speculation = true;
    let foreign: Vec<TaskId> = (0..2)
        .map(|partition| TaskId {
            job: "other".into(),
            stage: 0,
            partition,
            attempt: 0,
        })
        .collect();
    for id in &foreign {
        let (worker, _) = cluster
            .control
            .acquire(id, |w| (w.id == "w2").then_some(0))
            .unwrap();
        assert_eq!(worker, "w2");
    }
    let job = cluster.run(wordcount_plan(8, 1, &cluster.output()));
    // Six of eight maps finish at once (two at a time on w1's two slots); the last two run on.
    for _ in 0..3 {
        for (worker, spec) in cluster.next_launches(2).await {
            assert_eq!(worker, "w1");
            cluster.succeed(&worker, &spec, &[(0, 10)]);
        }
    }
    let mut last = cluster.next_launches(2).await;
    // Past a second, both are stragglers: their copies wait for a slot off w1.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (worker, finished) = last.remove(0);
    let (_, straggler) = last.remove(0);
    cluster.succeed(&worker, &finished, &[(0, 10)]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // w2 frees up: only the copy of the task still running goes there.
    for id in &foreign {
        assert!(cluster.control.release("w2", id));
    }
    let (worker, copy) = cluster.next_launch().await;
    assert_eq!(worker, "w2");
    assert_eq!(
        (copy.id.partition, copy.id.attempt),
        (straggler.id.partition, 1),
        "the copy of the task that finished ({}) was dropped",
        finished.id.partition
    );
    cluster.succeed(&worker, &copy, &[(0, 10)]);
    // The original is killed; then the reduce starts, and no other copy was ever launched.
    let (_, kill) = cluster.next_call().await;
    assert_eq!(kill, Call::Kill(straggler.id.clone()));
    let (worker, reduce) = cluster.next_launch().await;
    assert_eq!(reduce.id.stage, 1);
    cluster.succeed(&worker, &reduce, &[]);
    let (result, status, store) = job.result().await;
    result.unwrap();
    assert_eq!(status.stages[0].tasks_done, 8);
    // The killed original never reported (a fake worker): it is recorded as killed all the same.
    let records = store.tasks("job-1").unwrap();
    let (_, killed) = records
        .iter()
        .find(|(key, _)| *key == (0, straggler.id.partition, 0))
        .expect("the original is recorded");
    assert!(killed.cancelled, "{killed:?}");
    assert!(
        killed
            .error
            .as_deref()
            .unwrap()
            .contains("another attempt of the task finished first"),
        "{killed:?}"
    );
    assert_eq!(status.usage.attempts, records.len() as u64);
}

#[tokio::test]
async fn a_job_picked_up_after_its_commit_is_over_and_one_whose_staging_is_gone_fails() {
    let mut cluster = Cluster::new(&[1]);
    let output = cluster.output();
    let staging = cluster.dir.path().join(".out.weft-staging-1-2");
    let pick_up = |cluster: &Cluster| {
        let plan = wordcount_plan(1, 1, &output);
        let record = JobRecord {
            status: initial_status("job-1", &Tenant::default(), &plan),
            submission: Submission::default(),
            staging: Some(staging.to_string_lossy().into_owned()),
            split_size: None,
        };
        let resume = runner::Resume {
            staging_dir: staging.clone(),
            tasks: Vec::new(),
        };
        cluster.run_with(plan, Arc::new(MemoryJobStore::new()), record, Some(resume))
    };
    // The staging directory is gone and nothing is at the output: the parts are lost.
    let (result, status, _) = pick_up(&cluster).result().await;
    assert!(result.is_err());
    assert_eq!(status.state, JobState::Failed);
    let error = status.error.unwrap();
    assert!(
        error.contains("is gone") && error.contains(".out.weft-staging-1-2"),
        "{error}"
    );

    // Renamed into place before the scheduler stopped: the job is over, nothing runs again.
    std::fs::create_dir_all(&output).unwrap();
    for name in ["_SUCCESS", "_WEFT", "part-00000"] {
        std::fs::write(output.join(name), "").unwrap();
    }
    let (result, status, _) = pick_up(&cluster).result().await;
    result.unwrap();
    assert_eq!(status.state, JobState::Succeeded);
    assert!(cluster.calls.try_recv().is_err(), "nothing was launched");
}

#[tokio::test]
async fn output_lost_while_its_stage_runs_is_written_again_within_the_stage() {
    let mut cluster = Cluster::new(&[1, 1]);
    let job = cluster.run(wordcount_plan(3, 1, &cluster.output()));
    let [(w1, a), (w2, b)] = <[_; 2]>::try_from(cluster.next_launches(2).await).unwrap();
    assert_eq!((w1.as_str(), w2.as_str()), ("w1", "w2"));
    cluster.succeed(&w1, &a, &[(0, 10)]);
    let (worker, c) = cluster.next_launch().await;
    assert_eq!(worker, "w1");
    // w1 dies with a's output and c running: both run again on w2 as their next attempts, in
    // this stage, at once (no pause: their worker is gone, not slow).
    cluster.control.lose("w1", "killed");
    cluster.succeed(&w2, &b, &[(0, 20)]);
    let mut again = Vec::new();
    for _ in 0..2 {
        let (worker, spec) = cluster.next_launch().await;
        assert_eq!((worker.as_str(), spec.id.stage), ("w2", 0), "{spec:?}");
        again.push((spec.id.partition, spec.id.attempt));
        cluster.succeed(&worker, &spec, &[(0, 5)]);
    }
    again.sort();
    assert_eq!(again, [(a.id.partition, 1), (c.id.partition, 1)]);
    // Then the reduce, reading only w2's blocks.
    let (worker, reduce) = cluster.next_launch().await;
    let TaskInput::Shuffle { blocks, .. } = &reduce.input else {
        panic!("{reduce:?}")
    };
    assert!(blocks.iter().all(|b| b.worker_id == "w2"), "{blocks:?}");
    assert_eq!(blocks.len(), 3);
    cluster.succeed(&worker, &reduce, &[]);
    let (result, status, _) = job.result().await;
    result.unwrap();
    assert_eq!(status.stages[0].tasks_done, 3);
    assert_eq!(status.stages[0].records_in, 30);
}
