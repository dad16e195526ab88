//! Fair share, measured on a scheduler with two tenants and two workers of two slots: a tenant
//! flooding the cluster with jobs does not hold another's job back beyond its share, and with
//! weights 3:1 two saturating tenants run their tasks 3:1. Every task naps in a guest (600 ms;
//! 300 ms in a flood), so the slots, not the CPUs, are what the tenants share.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_testkit::wat::{WASI_IMPORTS, guest, napping_map};

use crate::Weft;
use crate::cluster::Cluster;
use crate::path;

/// Two tenants, `ann` and `ben`, with the given weights, their tokens, an operator's, and data
/// roots under a directory of their own.
struct Fair {
    cluster: Cluster,
    tokens: [String; 2],
    operator: String,
    data: tempfile::TempDir,
    jobs: std::cell::Cell<usize>,
}

const TENANTS: [&str; 2] = ["ann", "ben"];

fn mint() -> (String, String) {
    let json = Weft::new().ok(&["--json", "tenant", "token"]).json();
    (
        json["token"].as_str().unwrap().to_owned(),
        json["hash"].as_str().unwrap().to_owned(),
    )
}

impl Fair {
    fn start(weights: [u32; 2]) -> Fair {
        Fair::start_with(weights, ["", ""])
    }

    /// [`Fair::start`], with more keys for each tenant's table (`max_running_jobs = 1`).
    fn start_with(weights: [u32; 2], extra: [&str; 2]) -> Fair {
        let (ann, ben, operator, secret) = (mint(), mint(), mint(), mint());
        let data = tempfile::tempdir().unwrap();
        let mut file = String::new();
        for (((tenant, weight), (_, hash)), extra) in
            TENANTS.iter().zip(weights).zip([&ann, &ben]).zip(extra)
        {
            let root = data.path().join(tenant);
            std::fs::create_dir_all(root.join("out")).unwrap();
            std::fs::write(root.join("in.txt"), "one line\n".repeat(4)).unwrap();
            let _ = write!(
                file,
                "[tenants.{tenant}]\ntokens = [{hash:?}]\nweight = {weight}\n{extra}\n\
                 [tenants.{tenant}.data]\nread = [{:?}]\nwrite = [{:?}]\n",
                path(&root),
                path(&root.join("out"))
            );
        }
        let _ = write!(file, "[operators]\ntokens = [{:?}]\n", operator.1);
        let tenants = data.path().join("tenants.toml");
        std::fs::write(&tenants, file).unwrap();
        let cluster = Cluster::start_with_env(
            2,
            &[("WEFT_CLUSTER_SECRET", &secret.0)],
            &["--tenants", path(&tenants)],
            &[],
        );
        let fair = Fair {
            cluster,
            tokens: [ann.0, ben.0],
            operator: operator.0,
            data,
            jobs: std::cell::Cell::new(0),
        };
        let wasm = fair.data.path().join("nap.wasm");
        let naps = napping_map("nap", 600_000_000) + &napping_map("quick", 300_000_000);
        std::fs::write(&wasm, guest(WASI_IMPORTS, &naps)).unwrap();
        for t in 0..2 {
            fair.ok(t, &["module", "register", path(&wasm), "--name", "nap"]);
        }
        fair
    }

    fn ok(&self, tenant: usize, args: &[&str]) -> String {
        let run = self
            .cluster
            .client_with_env(&[("WEFT_TOKEN", &self.tokens[tenant])], args);
        assert!(run.0.status.success(), "{args:?}: {}", run.stderr());
        run.stdout()
    }

    /// Writes a job of `tasks` tasks napping 600 ms for `tenant` and returns its file.
    fn job(&self, tenant: usize, tasks: usize) -> PathBuf {
        self.job_of(tenant, tasks, "nap")
    }

    /// Writes a job of `tasks` tasks of `function` (`nap`, or `quick`: 300 ms) for `tenant`.
    fn job_of(&self, tenant: usize, tasks: usize, function: &str) -> PathBuf {
        let n = self.jobs.get();
        self.jobs.set(n + 1);
        let root = self.data.path().join(TENANTS[tenant]);
        let input = root.join(format!("in-{tasks}.txt"));
        std::fs::write(&input, "one line\n".repeat(tasks)).unwrap();
        let file = self.data.path().join(format!("job-{n}.toml"));
        std::fs::write(
            &file,
            format!(
                "name = {:?}\n[input]\npath = {:?}\nsplit_size = 9\n[[step]]\n\
                 map = \"nap/{function}\"\n[output]\npath = {:?}\n",
                TENANTS[tenant],
                path(&input),
                path(&root.join("out").join(format!("{n}")))
            ),
        )
        .unwrap();
        file
    }

    /// Runs a job and waits for it: how long from submission to its end.
    fn timed(&self, tenant: usize, tasks: usize) -> Duration {
        let job = self.job(tenant, tasks);
        let started = Instant::now();
        self.ok(tenant, &["job", "submit", path(&job), "--wait"]);
        started.elapsed()
    }

    /// Submits `jobs` jobs of `tasks` tasks of `function` for `tenant`, without waiting.
    fn flood(&self, tenant: usize, jobs: usize, tasks: usize, function: &str) {
        for _ in 0..jobs {
            let job = self.job_of(tenant, tasks, function);
            self.ok(tenant, &["job", "submit", path(&job)]);
        }
    }

    /// The running attempts of each tenant now, as the workers report them (job ids are
    /// `TENANT-N`: each tenant's jobs are named after it).
    fn running(&self) -> [usize; 2] {
        let run = self.cluster.client_with_env(
            &[("WEFT_TOKEN", &self.operator)],
            &["--json", "cluster", "workers"],
        );
        let workers: Value = run.json();
        let mut counts = [0; 2];
        for attempt in workers
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|w| w["running"].as_array().unwrap())
        {
            let attempt = attempt.as_str().unwrap();
            for (t, tenant) in TENANTS.iter().enumerate() {
                if attempt.starts_with(&format!("{tenant}-")) {
                    counts[t] += 1;
                }
            }
        }
        counts
    }
}

#[test]
fn a_flood_of_jobs_does_not_hold_another_tenant_back() {
    let fair = Fair::start([1, 1]);
    let idle = fair.timed(1, 2);
    // Ann fills every slot with 20 jobs of 4 short tasks (24 task-seconds for 4 slots), then Ben
    // asks: no task is preempted, so his wait for a slot is at most one of hers.
    fair.flood(0, 20, 4, "quick");
    let started = Instant::now();
    while fair.running()[0] < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "ann's jobs never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let busy = fair.timed(1, 2);
    let factor = busy.as_secs_f64() / idle.as_secs_f64();
    eprintln!(
        "fair share: ben's 2-task job took {:.2} s on an idle cluster and {:.2} s beside ann's \
         20 jobs: {factor:.2}x",
        idle.as_secs_f64(),
        busy.as_secs_f64()
    );
    assert!(factor <= 2.0, "ben's job took {factor:.2}x its idle time");
}

#[test]
fn slots_go_by_weight_between_saturating_tenants() {
    let fair = Fair::start([3, 1]);
    // 16 jobs of 4 tasks each, submitted in turns: 38 task-seconds each. At 3:1, Ann's are done
    // after about 13 s; sampled over the first 10 s, while both have work queued, and only when
    // the four slots are all taken.
    for _ in 0..16 {
        fair.flood(0, 1, 4, "nap");
        fair.flood(1, 1, 4, "nap");
    }
    let mut totals = [0usize; 2];
    let mut samples = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let running = fair.running();
        if running[0] + running[1] == 4 && running[0] > 0 && running[1] > 0 {
            totals[0] += running[0];
            totals[1] += running[1];
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        samples >= 10,
        "only {samples} samples with both tenants running"
    );
    let ratio = totals[0] as f64 / totals[1] as f64;
    eprintln!(
        "weighted share: over {samples} samples ann (weight 3) ran {} slot-samples, ben (weight 1) \
         {}: {ratio:.2} : 1",
        totals[0], totals[1]
    );
    assert!(
        (2.55..=3.45).contains(&ratio),
        "slots went {ratio:.2} : 1, not 3 : 1"
    );
}

#[test]
fn a_tenant_over_its_job_caps_waits_in_line_then_is_refused() {
    let fair = Fair::start_with([1, 1], ["", "max_running_jobs = 1\nmax_queued_jobs = 2"]);
    let submit = |tasks| {
        let job = fair.job(1, tasks);
        fair.cluster.client_with_env(
            &[("WEFT_TOKEN", &fair.tokens[1])],
            &["job", "submit", path(&job)],
        )
    };
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let run = submit(2);
            assert!(run.0.status.success(), "{}", run.stderr());
            run.stdout().trim().to_owned()
        })
        .collect();
    // One runs, two wait; a fourth is refused.
    let full = submit(1);
    assert!(!full.0.status.success());
    assert!(
        full.stderr()
            .contains("tenant `ben` has 2 jobs waiting, the most it may (max_queued_jobs)"),
        "{}",
        full.stderr()
    );
    let status = |id: &str| -> Value {
        let run = fair.cluster.client_with_env(
            &[("WEFT_TOKEN", &fair.tokens[1])],
            &["--json", "job", "status", id],
        );
        run.json()
    };
    let last = status(&ids[2]);
    assert_eq!(last["state"], "queued", "{last:#}");
    assert_eq!(
        last["waiting"], "tenant `ben` may run 1 job at once (max_running_jobs): 2nd of 2 waiting",
        "{last:#}"
    );
    // They run one at a time, in order, and all succeed.
    let started = Instant::now();
    let mut most = 0;
    loop {
        let running = fair.running()[1];
        most = most.max(running);
        let states: Vec<Value> = ids.iter().map(|id| status(id)["state"].clone()).collect();
        if states.iter().all(|s| s == "succeeded") {
            break;
        }
        assert!(
            states.iter().all(|s| s != "failed" && s != "cancelled"),
            "{states:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "{states:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        most <= 2,
        "{most} tasks of a tenant capped at one 2-task job ran at once"
    );
    let first = status(&ids[0]);
    let third = status(&ids[2]);
    assert!(
        first["finished_ms"].as_u64() <= third["started_ms"].as_u64(),
        "the third started before the first finished:\n{first:#}\n{third:#}"
    );
}
