//! The worker's side of the scheduler protocol, observed from a scheduler stand-in that records
//! every call and answers as the test tells it: registration, heartbeats (ids, free slots, running
//! attempts, compiled modules), registering again on request, kills carried by heartbeat replies,
//! the worker's `CheckPaths`, and its `FetchShuffleBlock` for blocks larger than the flow-control
//! windows.
//!
//! The stand-in is the tests' observation point, not a replacement for the real scheduler
//! (`weft-scheduler` depends on this crate, so it cannot be a dev-dependency here).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};
use weft_host::UdfKind;
use weft_proto::v1 as pb;
use weft_proto::v1::worker_client::WorkerClient;
use weft_task::TaskSpec;
use weft_worker::service::{WorkerConfig, WorkerError, WorkerHandle};

use crate::{Modules, engine, text_task, textkit};

/// The heartbeat interval the stand-in asks for: short, so the tests take well under a second.
const INTERVAL_MS: u64 = 30;

/// What the stand-in scheduler saw, and what it will answer.
#[derive(Debug, Default)]
struct Recorder {
    registrations: Mutex<Vec<pb::RegisterWorkerRequest>>,
    heartbeats: Mutex<Vec<pb::HeartbeatRequest>>,
    reports: Mutex<Vec<pb::TaskStatus>>,
    /// Refuse registrations with this message.
    refuse: Mutex<Option<String>>,
    /// Answer the next heartbeat with `reregister`.
    reregister: AtomicBool,
    /// Attempts every heartbeat reply asks the worker to kill.
    kill: Mutex<Vec<pb::TaskAttemptId>>,
    /// Take this long to answer a report (recorded on arrival): a slow or distant scheduler.
    report_delay: Mutex<Duration>,
    /// The jobs a registration reply says run now.
    live_jobs: Mutex<Vec<String>>,
    next_id: AtomicU32,
    /// The worker ids sessions were opened for, in order, and those whose session has ended.
    sessions: Mutex<Vec<String>>,
    sessions_ended: Mutex<Vec<String>>,
}

#[derive(Debug, Clone)]
struct StandIn(Arc<Recorder>);

#[tonic::async_trait]
impl pb::scheduler_control_server::SchedulerControl for StandIn {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerReply>, Status> {
        if let Some(why) = self.0.refuse.lock().unwrap().clone() {
            return Err(Status::failed_precondition(why));
        }
        self.0
            .registrations
            .lock()
            .unwrap()
            .push(request.into_inner());
        Ok(Response::new(pb::RegisterWorkerReply {
            worker_id: format!("w{}", self.0.next_id.fetch_add(1, Ordering::SeqCst)),
            heartbeat_interval_ms: INTERVAL_MS,
            live_jobs: self.0.live_jobs.lock().unwrap().clone(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatReply>, Status> {
        self.0.heartbeats.lock().unwrap().push(request.into_inner());
        Ok(Response::new(pb::HeartbeatReply {
            reregister: self.0.reregister.swap(false, Ordering::SeqCst),
            kill: self.0.kill.lock().unwrap().clone(),
        }))
    }

    async fn report_task(
        &self,
        request: Request<pb::TaskStatus>,
    ) -> Result<Response<pb::ReportTaskReply>, Status> {
        self.0.reports.lock().unwrap().push(request.into_inner());
        let delay = *self.0.report_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        Ok(Response::new(pb::ReportTaskReply {}))
    }

    type SessionStream = ReceiverStream<Result<pb::SessionEvent, Status>>;

    async fn session(
        &self,
        request: Request<pb::SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let id = request.into_inner().worker_id;
        self.0.sessions.lock().unwrap().push(id.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let seen = self.0.clone();
        tokio::spawn(async move {
            tx.closed().await;
            seen.sessions_ended.lock().unwrap().push(id);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A stand-in scheduler on a port of its own, stopped when dropped.
struct Scheduler {
    url: String,
    seen: Arc<Recorder>,
    _stop: oneshot::Sender<()>,
}

async fn scheduler() -> Scheduler {
    scheduler_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
}

fn scheduler_on(listener: TcpListener) -> Scheduler {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Recorder::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let service = pb::scheduler_control_server::SchedulerControlServer::new(StandIn(seen.clone()));
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    Scheduler {
        url,
        seen,
        _stop: stop,
    }
}

async fn worker(scheduler: &Scheduler, dir: &Path, config: WorkerConfig) -> WorkerHandle {
    let (bytes, _) = textkit();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    weft_worker::service::start(
        listener,
        WorkerConfig {
            scheduler: scheduler.url.clone(),
            work_dir: dir.join("work"),
            ..config
        },
        engine().clone(),
        Modules::of(&[&bytes]),
    )
    .await
    .unwrap()
}

async fn client(worker: &WorkerHandle) -> WorkerClient<tonic::transport::Channel> {
    WorkerClient::connect(format!("http://{}", worker.address))
        .await
        .unwrap()
}

/// Waits (up to 10 s) until `check` holds for the recorder's state.
async fn until(seen: &Recorder, what: &str, check: impl Fn(&Recorder) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check(seen) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn last_heartbeat(seen: &Recorder) -> Option<pb::HeartbeatRequest> {
    seen.heartbeats.lock().unwrap().last().cloned()
}

async fn launch(worker: &WorkerHandle, spec: &TaskSpec) {
    let reply = client(worker)
        .await
        .launch_task(pb::TaskDefinition::from(spec))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.accepted, "{}", reply.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_says_who_the_worker_is() {
    let scheduler = scheduler().await;
    let dir = tempfile::tempdir().unwrap();
    let named = worker(
        &scheduler,
        dir.path(),
        WorkerConfig {
            slots: 3,
            memory_bytes: 3 << 30,
            hostname: "node-7".into(),
            ..WorkerConfig::default()
        },
    )
    .await;
    let defaulted = worker(&scheduler, dir.path(), WorkerConfig::default()).await;
    let registrations = scheduler.seen.registrations.lock().unwrap().clone();
    let [first, second] = &registrations[..] else {
        panic!("{registrations:?}")
    };
    assert_eq!(first.protocol_version, weft_proto::PROTOCOL_VERSION);
    assert_eq!(first.engine_hash, engine().compatibility_hash());
    assert_eq!(first.address, format!("http://{}", named.address));
    assert_eq!(
        (first.slots, first.memory_bytes, first.hostname.as_str()),
        (3, 3 << 30, "node-7")
    );
    // Defaults: one slot, memory unknown, the system's hostname.
    let system = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default();
    assert_eq!(
        (second.slots, second.memory_bytes, second.hostname.as_str()),
        (1, 0, system.trim())
    );
    assert_eq!((named.id(), defaulted.id()), ("w0".into(), "w1".into()));
    named.shutdown().await;
    defaulted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registering_deletes_the_files_of_jobs_that_are_over() {
    let scheduler = scheduler().await;
    let dir = tempfile::tempdir().unwrap();
    // Left from before a restart (or from while the worker was out of reach): one job still
    // runs, the other ended.
    for job in ["running-1", "ended-2"] {
        for area in ["shuffle", "spill"] {
            let files = dir
                .path()
                .join("work")
                .join(area)
                .join(job)
                .join("s0-p0-a0");
            std::fs::create_dir_all(&files).unwrap();
            std::fs::write(files.join("part-00000.arrow"), b"blocks").unwrap();
        }
    }
    *scheduler.seen.live_jobs.lock().unwrap() = vec!["running-1".into()];
    let w = worker(&scheduler, dir.path(), WorkerConfig::default()).await;
    for area in ["shuffle", "spill"] {
        let area = dir.path().join("work").join(area);
        assert!(area.join("running-1").is_dir());
        assert!(!area.join("ended-2").exists());
    }
    // Registering again (the scheduler forgot it) does the same.
    *scheduler.seen.live_jobs.lock().unwrap() = vec![];
    scheduler.seen.reregister.store(true, Ordering::SeqCst);
    let shuffle = dir.path().join("work").join("shuffle");
    let deadline = Instant::now() + Duration::from_secs(10);
    while shuffle.join("running-1").exists() {
        assert!(
            Instant::now() < deadline,
            "not deleted on registering again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_started_before_its_scheduler_waits_for_it() {
    // An address nobody listens on yet.
    let address = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = |patience| WorkerConfig {
        scheduler: format!("http://{address}"),
        work_dir: dir.path().join("work"),
        register_patience: patience,
        ..WorkerConfig::default()
    };
    // With a little patience, it gives up and says so.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let start = weft_worker::service::start(
        listener,
        config(Some(Duration::from_millis(300))),
        engine().clone(),
        Modules::of(&[]),
    );
    let error = start.await.unwrap_err();
    assert!(matches!(error, WorkerError::Register(_)), "{error:?}");

    // Without, it waits: the scheduler comes up a second later and the worker registers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let waiting = tokio::spawn(weft_worker::service::start(
        listener,
        config(None),
        engine().clone(),
        Modules::of(&[]),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished());
    let scheduler = scheduler_on(TcpListener::bind(address).await.unwrap());
    let worker = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the worker registers once the scheduler is up")
        .unwrap()
        .unwrap();
    assert_eq!(scheduler.seen.registrations.lock().unwrap().len(), 1);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_worker_does_not_start() {
    let scheduler = scheduler().await;
    *scheduler.seen.refuse.lock().unwrap() = Some("protocol version 1, expected 2".into());
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let started = weft_worker::service::start(
        listener,
        WorkerConfig {
            scheduler: scheduler.url.clone(),
            work_dir: dir.path().to_owned(),
            ..WorkerConfig::default()
        },
        engine().clone(),
        Modules::of(&[]),
    )
    .await;
    match started {
        Err(e @ WorkerError::Register(_)) => {
            let why = weft_task::error_chain(&e);
            assert!(why.contains("protocol version 1"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // Its server is gone with it.
    assert!(
        WorkerClient::connect(format!("http://{address}"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_carry_the_id_free_slots_running_attempts_and_compiled_modules() {
    let scheduler = scheduler().await;
    let seen = &scheduler.seen;
    let dir = tempfile::tempdir().unwrap();
    let worker = worker(
        &scheduler,
        dir.path(),
        WorkerConfig {
            slots: 2,
            ..WorkerConfig::default()
        },
    )
    .await;
    until(seen, "a heartbeat arrives", |s| last_heartbeat(s).is_some()).await;
    let idle = last_heartbeat(seen).unwrap();
    assert_eq!(idle.worker_id, worker.id());
    assert_eq!(idle.free_slots, 2);
    assert!(idle.running.is_empty() && idle.compiled_modules.is_empty());

    // A long task occupies a slot and is listed while it runs.
    let (_, textkit) = textkit();
    let long = burn_task(dir.path(), "long", &textkit);
    launch(&worker, &long).await;
    let attempt = pb::TaskAttemptId::from(&long.id);
    until(seen, "a heartbeat lists the running task", |s| {
        last_heartbeat(s).is_some_and(|h| h.running == [attempt.clone()] && h.free_slots == 1)
    })
    .await;
    // And how far it has read while it runs: its one record (14 bytes), burning in the guest.
    until(seen, "a heartbeat says what the task has read", |s| {
        last_heartbeat(s).is_some_and(|h| {
            h.progress
                .iter()
                .any(|p| p.id.as_ref() == Some(&attempt) && (p.records_in, p.bytes_in) == (1, 14))
        })
    })
    .await;
    *seen.kill.lock().unwrap() = vec![attempt];
    until(seen, "the long task is reported", |s| {
        !s.reports.lock().unwrap().is_empty()
    })
    .await;

    // Once done, the slot is free again and the module is held compiled.
    until(seen, "a heartbeat shows the compiled module", |s| {
        last_heartbeat(s).is_some_and(|h| {
            h.free_slots == 2 && h.running.is_empty() && h.compiled_modules == [textkit.clone()]
        })
    })
    .await;

    // After shutdown, no more heartbeats.
    worker.shutdown().await;
    let count = seen.heartbeats.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(5 * INTERVAL_MS)).await;
    assert_eq!(seen.heartbeats.lock().unwrap().len(), count);
}

/// An attempt whose report is on its way is still listed by heartbeats until the report is
/// answered: a heartbeat that overtook the report and left it out would tell the scheduler the
/// attempt vanished, and the scheduler fails such a task as lost.
#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_list_an_attempt_until_its_report_is_answered() {
    let scheduler = scheduler().await;
    let seen = &scheduler.seen;
    *seen.report_delay.lock().unwrap() = Duration::from_millis(20 * INTERVAL_MS);
    let dir = tempfile::tempdir().unwrap();
    let worker = worker(&scheduler, dir.path(), WorkerConfig::default()).await;
    let (_, textkit) = textkit();
    let spec = text_task(
        dir.path(),
        "quick",
        b"a\nb\n",
        &[(UdfKind::Map, &textkit, "upper")],
    );
    launch(&worker, &spec).await;
    until(seen, "the task is reported", |s| {
        !s.reports.lock().unwrap().is_empty()
    })
    .await;
    let reported = seen.heartbeats.lock().unwrap().len();
    // While the scheduler takes its time answering the report, heartbeats go on (every
    // INTERVAL_MS), and each lists the attempt.
    until(seen, "several heartbeats during the report", |s| {
        s.heartbeats.lock().unwrap().len() >= reported + 5
    })
    .await;
    let attempt = pb::TaskAttemptId::from(&spec.id);
    let during: Vec<pb::HeartbeatRequest> =
        seen.heartbeats.lock().unwrap()[reported + 1..].to_vec();
    for beat in &during {
        assert_eq!(beat.running, std::slice::from_ref(&attempt), "{during:?}");
    }
    // Once the report is answered, the attempt is no longer listed.
    until(seen, "a heartbeat without the attempt", |s| {
        last_heartbeat(s).is_some_and(|h| h.running.is_empty())
    })
    .await;
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reregister_reply_makes_the_worker_register_again_under_a_new_id() {
    let scheduler = scheduler().await;
    let seen = &scheduler.seen;
    let dir = tempfile::tempdir().unwrap();
    let worker = worker(&scheduler, dir.path(), WorkerConfig::default()).await;
    assert_eq!(worker.id(), "w0");
    until(seen, "a heartbeat arrives", |s| last_heartbeat(s).is_some()).await;

    seen.reregister.store(true, Ordering::SeqCst);
    until(seen, "the worker registers again", |s| {
        s.registrations.lock().unwrap().len() == 2
    })
    .await;
    until(seen, "a heartbeat carries the new id", |s| {
        last_heartbeat(s).is_some_and(|h| h.worker_id == "w1")
    })
    .await;
    assert_eq!(worker.id(), "w1");
    let registrations = seen.registrations.lock().unwrap().clone();
    // The same request again, asking for the id it had (this stand-in gives a new one; the
    // scheduler keeps it when free).
    assert_eq!(registrations[0].previous_id, "");
    assert_eq!(registrations[1].previous_id, "w0");
    assert_eq!(
        registrations[0],
        pb::RegisterWorkerRequest {
            previous_id: String::new(),
            ..registrations[1].clone()
        },
        "the same request again"
    );

    // Reports name the new id too.
    let (_, textkit) = textkit();
    let spec = text_task(
        dir.path(),
        "after",
        b"x\n",
        &[(UdfKind::Map, &textkit, "upper")],
    );
    launch(&worker, &spec).await;
    until(seen, "the task is reported", |s| {
        !s.reports.lock().unwrap().is_empty()
    })
    .await;
    let report = seen.reports.lock().unwrap()[0].clone();
    assert_eq!(report.worker_id, "w1");
    assert_eq!(report.state, pb::TaskState::Succeeded as i32);
    // A session was held for each registration; the first ended with it, the second with the
    // worker.
    assert_eq!(*seen.sessions.lock().unwrap(), ["w0", "w1"]);
    until(seen, "the first session ends", |s| {
        *s.sessions_ended.lock().unwrap() == ["w0"]
    })
    .await;
    worker.shutdown().await;
    until(seen, "the second session ends with the worker", |s| {
        *s.sessions_ended.lock().unwrap() == ["w0", "w1"]
    })
    .await;
}

/// A task that would run for about an hour: one record of textkit's `burn` worth 10^12 rounds, so
/// one guest call. Only a kill that interrupts the call itself ends it in time.
fn burn_task(dir: &Path, job: &str, textkit: &str) -> TaskSpec {
    text_task(
        dir,
        job,
        b"1000000000000\n",
        &[(UdfKind::Map, textkit, "burn")],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_in_a_heartbeat_reply_cancels_the_running_task() {
    let scheduler = scheduler().await;
    let seen = &scheduler.seen;
    let dir = tempfile::tempdir().unwrap();
    let worker = worker(&scheduler, dir.path(), WorkerConfig::default()).await;
    let (_, textkit) = textkit();
    let spec = burn_task(dir.path(), "long", &textkit);
    let started = Instant::now();
    launch(&worker, &spec).await;
    let attempt = pb::TaskAttemptId::from(&spec.id);
    until(seen, "a heartbeat lists the task", |s| {
        last_heartbeat(s).is_some_and(|h| h.running == [attempt.clone()])
    })
    .await;
    *seen.kill.lock().unwrap() = vec![attempt];
    until(seen, "the task is reported", |s| {
        !s.reports.lock().unwrap().is_empty()
    })
    .await;
    let report = seen.reports.lock().unwrap()[0].clone();
    assert_eq!(report.state, pb::TaskState::Killed as i32, "{report:?}");
    assert!(!report.guest_fault);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_paths_says_which_paths_the_worker_can_read() {
    let scheduler = scheduler().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.txt");
    std::fs::write(&file, "x").unwrap();
    let worker = worker(&scheduler, dir.path(), WorkerConfig::default()).await;
    let paths = [
        file.display().to_string(),
        dir.path().display().to_string(),
        dir.path().join("missing").display().to_string(),
    ];
    let errors = client(&worker)
        .await
        .check_paths(pb::CheckPathsRequest {
            paths: paths.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .errors;
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[..2], ["", ""]);
    assert!(errors[2].contains("No such file"), "{}", errors[2]);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_of_an_attempt_still_running_here_is_refused() {
    let scheduler = scheduler().await;
    let dir = tempfile::tempdir().unwrap();
    let config = WorkerConfig {
        slots: 3,
        ..WorkerConfig::default()
    };
    let worker = worker(&scheduler, dir.path(), config).await;
    let (_, textkit) = textkit();
    let spec = burn_task(dir.path(), "twice", &textkit);
    launch(&worker, &spec).await;
    // The same attempt again (a restarted scheduler giving an unrecorded attempt's number anew):
    // refused though slots are free, so two never share an id, files or a report.
    let reply = client(&worker)
        .await
        .launch_task(pb::TaskDefinition::from(&spec))
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.accepted);
    assert!(
        reply.reason.contains("is still running here"),
        "{}",
        reply.reason
    );
    // Another attempt of the same task is another id: it runs.
    let mut next = spec.clone();
    next.id.attempt += 1;
    launch(&worker, &next).await;
    worker.shutdown().await;
}

/// The `i`th record of the planted block `block`: an 8-byte key and a value of 1–4 KiB whose
/// bytes depend on both, so that a record out of place, cut or doubled is seen.
fn planted_record(block: u8, i: u64) -> ([u8; 8], Vec<u8>) {
    let len = 1024 + (i * 7919 % 3072) as usize;
    let seed = (i as u8).wrapping_mul(31) ^ block;
    (
        i.to_be_bytes(),
        (0..len).map(|j| seed.wrapping_add(j as u8)).collect(),
    )
}

/// Shuffle blocks larger than the HTTP/2 flow-control windows (16 MiB a stream; a connection's is
/// at least 64 MiB: `weft_task::link`) arrive whole and in order through `FetchShuffleBlock`,
/// seven at once over one connection, as the reduce tasks of a worker of seven slots fetch from one
/// peer. Six readers stop after their first batch until the seventh has its block: a reduce task
/// that stalls (grouping, spilling) holds back only itself. Each stalled stream holds what its
/// window has left after that batch (~12 MiB; the batch's ~4 MiB is released, but HTTP/2 only
/// tells the sender so past half a window), 70 MiB together: more than a connection of the least
/// window has (five stalled readers, ~60 MiB, fit in 64 MiB and not in 52: measured), so it
/// takes one sized for the worker's slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocks_larger_than_the_windows_arrive_whole_beside_stalled_readers() {
    use weft_host::{Records, SandboxLimits};
    use weft_task::TaskId;
    use weft_worker::service::{connect_peer, fetch_block};
    use weft_worker::{Executor, Pipeline, ShuffleWriter};

    const RECORDS: u64 = 10_000; // ~25 MB of values a block
    const FETCHES: u8 = 7;
    let scheduler = scheduler().await;
    let dir = tempfile::tempdir().unwrap();
    let worker = worker(&scheduler, dir.path(), WorkerConfig::default()).await;
    // The worker keeps shuffle files under its work directory; an executor over the same
    // directory knows where (as the benchmark plants its block in a `weft worker`).
    let layout = Executor::new(engine().clone(), Modules::of(&[]), &dir.path().join("work"));
    let mut tasks = Vec::new();
    for block in 0..FETCHES {
        let task = TaskId {
            job: "windows".into(),
            stage: 0,
            partition: u32::from(block),
            attempt: 0,
        };
        let path = layout.block_path(&task, 0);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut writer = ShuffleWriter::new(path.parent().unwrap(), 1, None).unwrap();
        let mut pipeline =
            Pipeline::new(&Default::default(), &[], &SandboxLimits::default()).unwrap();
        for start in (0..RECORDS).step_by(1000) {
            let batch =
                Records::from_pairs((start..start + 1000).map(|i| planted_record(block, i)));
            writer.write(&mut pipeline, &batch).unwrap();
        }
        let written = writer.finish(&mut pipeline).unwrap();
        assert_eq!(written[0].path, path);
        // Over a stream's window and a batch: a stalled reader holds all of its window.
        assert!(written[0].bytes > 24 << 20, "{} bytes", written[0].bytes);
        tasks.push(task);
    }

    let url = format!("http://{}", worker.address);
    let client = connect_peer(&url, &Default::default(), FETCHES.into())
        .await
        .unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    // Each fetch on a thread of its own, as each reduce task runs on its own thread.
    let runtime = tokio::runtime::Handle::current();
    let fetches: Vec<_> = tasks
        .into_iter()
        .enumerate()
        .map(|(block, task)| {
            let (mut client, url, runtime) = (client.clone(), url.clone(), runtime.clone());
            let mut stall = (block + 1 < FETCHES.into()).then(|| released.clone());
            std::thread::spawn(move || {
                let mut next = 0u64;
                let mut check = |records: Records| {
                    for (key, value) in records.iter() {
                        let (want_key, want_value) = planted_record(block as u8, next);
                        assert_eq!(key, want_key, "block {block}: record {next}'s key");
                        assert!(value == want_value, "block {block}: record {next}'s value");
                        next += 1;
                    }
                    if let Some(stall) = stall.take() {
                        stall
                            .lock()
                            .unwrap()
                            .recv_timeout(Duration::from_secs(60))
                            .expect("the other fetches did not finish while this one stalled");
                    }
                    Ok(())
                };
                runtime
                    .block_on(fetch_block(&mut client, &url, &task, 0, &mut check))
                    .unwrap_or_else(|e| panic!("block {block}: {}", weft_task::error_chain(&e)));
                next
            })
        })
        .collect();
    let fetched = tokio::task::spawn_blocking(move || {
        let mut fetches = fetches.into_iter().rev();
        let going = fetches.next().unwrap().join().unwrap();
        // The stalled readers wait for this, one after the other.
        for _ in 1..FETCHES {
            release.send(()).unwrap();
        }
        let stalled: Vec<u64> = fetches.map(|f| f.join().unwrap()).collect();
        (going, stalled)
    });
    let stalled = vec![RECORDS; usize::from(FETCHES) - 1];
    assert_eq!(fetched.await.unwrap(), (RECORDS, stalled));
    worker.shutdown().await;
}

/// A worker gives its allocator's free memory back once it has run no task for a while, once per
/// idle spell: not when the next task comes within the delay, not while tasks run, and once when
/// two tasks end one after the other. (Two ending at the same instant would both find the worker
/// idle; `trimmed_at` keeps that to one trim, which this test cannot time.)
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_worker_gives_free_memory_back_once_per_idle_spell() {
    let scheduler = scheduler().await;
    let seen = &scheduler.seen;
    let dir = tempfile::tempdir().unwrap();
    let config = WorkerConfig {
        slots: 2,
        ..WorkerConfig::default()
    };
    let worker = worker(&scheduler, dir.path(), config).await;
    let (_, textkit) = textkit();
    let reports = |n: usize| move |s: &Recorder| s.reports.lock().unwrap().len() >= n;

    // A short task, then at once two that run until killed: the first one's idle spell never
    // began, and nothing is trimmed while the others run.
    let short = text_task(
        dir.path(),
        "short",
        b"a b\n",
        &[(UdfKind::FlatMap, &textkit, "words_with_line")],
    );
    launch(&worker, &short).await;
    until(seen, "the short task is reported", reports(1)).await;
    let burns = [
        burn_task(dir.path(), "burn-a", &textkit),
        burn_task(dir.path(), "burn-b", &textkit),
    ];
    for burn in &burns {
        launch(&worker, burn).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(worker.idle_trims(), 0, "trimmed while tasks ran");

    // Both killed at once: the worker is idle, and trims once.
    *seen.kill.lock().unwrap() = burns
        .iter()
        .map(|b| pb::TaskAttemptId::from(&b.id))
        .collect();
    until(seen, "the long tasks are reported", reports(3)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while worker.idle_trims() == 0 {
        assert!(Instant::now() < deadline, "the idle worker never trimmed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(worker.idle_trims(), 1, "trimmed twice in one idle spell");
    worker.shutdown().await;
}
