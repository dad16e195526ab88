//! A scheduler killed mid-job (SIGKILL) and started again on the same data directory picks its
//! jobs up: its workers register again with their ids and keep their shuffle files, the tasks whose
//! output was still there do not run again, the jobs finish exactly, and `weft job watch` started
//! before the crash ends with each job's final state.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use weft_testkit::wat::{WASI_IMPORTS, guest, napping_map};

use crate::cluster::{
    Cluster, START_DEADLINE, assert_numbers, ends_with_outcome, nap_cluster_of, stages, wait_until,
};
use crate::{path, read_output};

/// `(stage, partition)` → the attempts recorded of it, with how each ended.
type Attempts = BTreeMap<(u64, u64), Vec<(u64, String)>>;

fn attempts(status: &Value) -> Attempts {
    let mut by_task = Attempts::new();
    for t in status["tasks"].as_array().unwrap() {
        let key = (
            t["stage"].as_u64().unwrap(),
            t["partition"].as_u64().unwrap(),
        );
        let state = t["state"].as_str().unwrap().to_owned();
        by_task
            .entry(key)
            .or_default()
            .push((t["attempt"].as_u64().unwrap(), state));
    }
    by_task
}

/// `weft job watch ID` started in the background, its output in `dir`.
fn watch(cluster: &Cluster, id: &str, dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["--scheduler", cluster.url(), "job", "watch", id])
        .env("WEFT_HOME", dir.join("client-home"))
        .env_remove("WEFT_SCHEDULER")
        .env_remove("WEFT_TOKEN")
        .stdin(Stdio::null())
        .stdout(File::create(dir.join(format!("watch-{id}.stdout"))).unwrap())
        .stderr(File::create(dir.join(format!("watch-{id}.stderr"))).unwrap())
        .spawn()
        .unwrap()
}

/// Waits for a background watch to end; its exit code and what it printed.
fn finish(mut child: Child, id: &str, dir: &Path) -> (Option<i32>, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > START_DEADLINE * 2 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("job watch {id} did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("watch-{id}.{ext}"))).unwrap();
    (
        status.code(),
        format!("{}{}", read("stdout"), read("stderr")),
    )
}

#[test]
fn a_scheduler_killed_mid_job_and_restarted_picks_its_jobs_up() {
    let mut cluster = nap_cluster_of(3);
    // A map that naps 3 s: long enough a wave that the crash lands in it on a loaded machine.
    let slow = cluster.write(
        "slow.wasm",
        guest(WASI_IMPORTS, &napping_map("nap", 3_000_000_000)),
    );
    cluster.register("slow", path(&slow));
    // Two jobs of four such map tasks each on six slots: two waves, the first with tasks of both.
    // One job writes its output from the maps (parts in the staging directory), the other
    // shuffles their output into a reduce (blocks on the workers).
    let lines: Vec<String> = (0..4).map(|i| format!("line {i:05}")).collect();
    let input = cluster.write("lines.txt", lines.join("\n") + "\n");
    let parts_out = cluster.path("results/parts");
    let parts_job = cluster.write(
        "parts.toml",
        format!(
            "name = \"parts\"\n[input]\npath = {:?}\nsplit_size = {}\n[[step]]\n\
             map = \"slow/nap\"\n[output]\npath = {:?}\n",
            path(&input),
            lines[0].len() + 1,
            path(&parts_out)
        ),
    );
    let numbers = cluster.write("numbers.txt", "1\n2\n3\n4\n");
    let blocks_out = cluster.path("results/blocks");
    let blocks_job = cluster.write(
        "blocks.toml",
        format!(
            "name = \"blocks\"\n[input]\npath = {:?}\nsplit_size = 2\n[[step]]\n\
             map = \"slow/nap\"\n[[step]]\nreduce = \"wordcount/sum\"\n[output]\n\
             path = {:?}\npartitions = 2\n",
            path(&numbers),
            path(&blocks_out)
        ),
    );
    let ids = [
        cluster.submit(&parts_job, &[]),
        cluster.submit(&blocks_job, &[]),
    ];
    let dir = cluster.path("clients");
    let watches: Vec<Child> = ids.iter().map(|id| watch(&cluster, id, &dir)).collect();
    let workers: BTreeSet<String> = cluster.workers().iter().map(|w| w.id.clone()).collect();

    // The first wave done, the second running: the scheduler dies.
    let before: Vec<Attempts> = wait_until("a first wave of tasks done", START_DEADLINE, || {
        let statuses: Vec<Value> = ids.iter().map(|id| cluster.status(id)).collect();
        let done: u64 = statuses
            .iter()
            .map(|s| stages(s)[0]["tasks_done"].as_u64().unwrap())
            .sum();
        if done >= 6 {
            Ok(statuses.iter().map(attempts).collect())
        } else {
            Err(format!("{statuses:#?}"))
        }
    });
    cluster.crash_and_restart_scheduler();

    // The watches started before the crash end with each job's outcome.
    for (child, id) in watches.into_iter().zip(&ids) {
        let (code, text) = finish(child, id, &dir);
        assert_eq!(code, Some(0), "{text}");
        assert!(ends_with_outcome(&text, "succeeded"), "{text}");
    }
    let mut got: Vec<Vec<u8>> = read_output(&parts_out).into_values().collect();
    got.sort();
    let want: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(got, want);
    assert_numbers(&blocks_out);

    // A task done before the crash did not run again: its one succeeded attempt is all there is.
    let mut rerun = 0;
    for (id, before) in ids.iter().zip(&before) {
        let status = cluster.status(id);
        assert_eq!(status["state"], "succeeded", "{status:#}");
        let after = attempts(&status);
        let mut kept = 0;
        for (task, tried) in before {
            let won: Vec<&(u64, String)> = tried.iter().filter(|(_, s)| s == "succeeded").collect();
            if let [(attempt, _)] = won[..] {
                assert_eq!(
                    after[task],
                    [(*attempt, "succeeded".to_owned())],
                    "{id} {task:?} ran again: {status:#}"
                );
                kept += 1;
            }
        }
        // Both kinds of output were kept: parts of one job, shuffle blocks of the other.
        assert!(kept >= 2, "{id}: the first wave's tasks are kept ({kept})");
        rerun += after.keys().filter(|t| !before.contains_key(t)).count();
        // Every task has exactly one succeeded attempt, the map stage's four included.
        for (task, tried) in &after {
            let won = tried.iter().filter(|(_, s)| s == "succeeded").count();
            assert_eq!(won, 1, "{id} {task:?}: {status:#}");
        }
        assert_eq!(stages(&status)[0]["tasks_done"], 4, "{status:#}");
    }
    assert!(
        rerun >= 1,
        "the tasks that ran at the crash ran again ({rerun})"
    );
    assert!(cluster.log("scheduler-2").contains("picked up the job"));

    // The workers came back under their own ids.
    wait_until("the workers registered again", START_DEADLINE, || {
        let now: BTreeSet<String> = cluster
            .cluster_workers()
            .iter()
            .map(|w| w["worker_id"].as_str().unwrap().to_owned())
            .collect();
        if now == workers {
            Ok(())
        } else {
            Err(format!("{now:?}, expected {workers:?}"))
        }
    });
    // Nothing of the staging directories is left beside the outputs.
    let results: Vec<String> = std::fs::read_dir(cluster.path("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(results.len(), 2, "{results:?}");
}
