//! Two tenants on one cluster of real processes (`weft scheduler --tenants FILE` and two workers
//! joined with the cluster secret): each sees only its own modules and jobs, and what it asks about
//! the other's gets the very answer a name or id that does not exist gets; wrong, missing and
//! revoked tokens are refused saying how to pass one; a worker without the secret cannot join; an
//! operator sees every tenant's jobs and the workers; a tenant's limits are its own; and no token
//! is written anywhere in the clear.

use std::path::Path;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::{Weft, assert_same_counts, counts_of, path, read_output, word_counts};

/// A minted token and the digest the tenants file keeps.
struct Minted {
    token: String,
    hash: String,
}

fn mint() -> Minted {
    let run = Weft::new().ok(&["--json", "tenant", "token"]);
    let json = run.json();
    let minted = Minted {
        token: json["token"].as_str().unwrap().to_owned(),
        hash: json["hash"].as_str().unwrap().to_owned(),
    };
    assert!(minted.token.starts_with("weft_"), "{json}");
    assert!(minted.hash.starts_with("blake3:"), "{json}");
    minted
}

struct Tenants {
    cluster: Cluster,
    alice: Minted,
    bob: Minted,
    operator: Minted,
    /// A tenant held to tiny module ceilings: 1 KiB modules, compiled in 1 ms.
    carol: Minted,
    /// A token the file never listed (or no longer lists: revoked).
    revoked: Minted,
    secret: Minted,
    /// Holds the tenants file, and each tenant's data under `data/NAME` (its read root) and
    /// `data/NAME/out` (its write root).
    config: tempfile::TempDir,
}

impl Tenants {
    fn start() -> Tenants {
        let (alice, bob, carol, operator, revoked, secret) =
            (mint(), mint(), mint(), mint(), mint(), mint());
        let config = tempfile::tempdir().unwrap();
        let data = config.path().join("data");
        for tenant in ["alice", "bob"] {
            std::fs::create_dir_all(data.join(tenant).join("out")).unwrap();
        }
        let roots = |tenant: &str| {
            format!(
                "[tenants.{tenant}.data]\nread = [{:?}]\nwrite = [{:?}]\n",
                path(&data.join(tenant)),
                path(&data.join(tenant).join("out"))
            )
        };
        let file = config.path().join("tenants.toml");
        std::fs::write(
            &file,
            format!(
                "[tenants.alice]\ntokens = [\"{}\"]\n[tenants.alice.limits]\nmemory = \"256MiB\"\n\
                 {}\n[tenants.bob]\ntokens = [\"{}\"]\n{}\n[tenants.carol]\ntokens = [\"{}\"]\n\
                 [tenants.carol.modules]\nsize = \"1KiB\"\ncompile_time = \"1ms\"\n\
                 [operators]\ntokens = [\"{}\"]\n",
                alice.hash,
                roots("alice"),
                bob.hash,
                roots("bob"),
                carol.hash,
                operator.hash
            ),
        )
        .unwrap();
        let cluster = Cluster::start_with_env(
            2,
            &[("WEFT_CLUSTER_SECRET", &secret.token)],
            &["--tenants", path(&file)],
            &[],
        );
        Tenants {
            cluster,
            alice,
            bob,
            carol,
            operator,
            revoked,
            secret,
            config,
        }
    }

    /// A path under the tenants' `data/`.
    fn data(&self, path: &str) -> std::path::PathBuf {
        self.config.path().join("data").join(path)
    }

    /// Runs `weft --scheduler URL ARGS` with `token` in `WEFT_TOKEN`.
    fn as_(&self, token: &Minted, args: &[&str]) -> crate::Run {
        self.cluster
            .client_with_env(&[("WEFT_TOKEN", &token.token)], args)
    }

    fn ok_as(&self, token: &Minted, args: &[&str]) -> crate::Run {
        let run = self.as_(token, args);
        assert!(
            run.0.status.success(),
            "weft {args:?} failed:\n{}\n{}",
            run.stdout(),
            run.stderr()
        );
        run
    }

    fn json_as(&self, token: &Minted, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        self.ok_as(token, &full).json()
    }
}

fn wordcount_job(input: &Path, output: &Path, limits: &str) -> String {
    format!(
        "name = \"wc\"\n[input]\npath = {:?}\nsplit_size = \"4KB\"\n[[step]]\n\
         flat_map = \"wordcount/split_words\"\n[[step]]\nreduce = \"wordcount/sum\"\n[output]\n\
         path = {:?}\n{limits}",
        path(input),
        path(output)
    )
}

/// The error a failed command printed, first line.
fn error_of(run: &crate::Run) -> String {
    assert!(!run.0.status.success(), "succeeded:\n{}", run.stdout());
    run.stderr().lines().next().unwrap_or_default().to_owned()
}

#[test]
fn tenants_see_only_their_own_and_need_their_tokens() {
    let t = Tenants::start();
    let c = &t.cluster;
    let wasm = weft_examples::WORDCOUNT_RUST;

    // Alice registers and runs a word count: the exact answer.
    let alice_id = t
        .ok_as(
            &t.alice,
            &["module", "register", wasm, "--name", "wordcount"],
        )
        .stdout()
        .trim()
        .to_owned();
    let text: String = (0..400)
        .map(|i| format!("alice counts {} words\n", i % 7))
        .collect();
    let input = t.data("alice/in.txt");
    std::fs::write(&input, &text).unwrap();
    let out = t.data("alice/out/wc");
    let job = c.write("alice.toml", wordcount_job(&input, &out, ""));
    let status = t.json_as(&t.alice, &["job", "submit", path(&job), "--wait"]);
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(status["tenant"], "alice", "{status:#}");
    assert_same_counts(&counts_of(read_output(&out)), &word_counts(text.as_bytes()));
    let alice_job = status["job_id"].as_str().unwrap().to_owned();
    let status = t.json_as(&t.alice, &["job", "status", &alice_job]);
    assert_accounted(&status);
    let tasks = status["tasks"].as_array().unwrap();
    let read: u64 = tasks
        .iter()
        .filter(|t| t["stage"] == 0)
        .map(|t| t["records_in"].as_u64().unwrap())
        .sum();
    assert_eq!(read, text.lines().count() as u64, "{status:#}");

    // Bob sees nothing of it, and learns nothing: each answer is the one for what does not exist.
    let listed = t.json_as(&t.bob, &["module", "list"]);
    assert_eq!(listed, serde_json::json!([]), "{listed:#}");
    let nothing = error_of(&t.as_(&t.bob, &["module", "show", "never-registered"]));
    let hidden = error_of(&t.as_(&t.bob, &["module", "show", "wordcount"]));
    assert_eq!(
        hidden.replace("wordcount", "NAME"),
        nothing.replace("never-registered", "NAME")
    );
    let by_id = error_of(&t.as_(&t.bob, &["module", "show", &alice_id]));
    assert!(by_id.contains("no module"), "{by_id}");
    let removed = error_of(&t.as_(&t.bob, &["module", "rm", "wordcount", "--yes"]));
    assert!(removed.contains("no module"), "{removed}");
    let jobs = t.json_as(&t.bob, &["job", "list"]);
    assert_eq!(jobs, serde_json::json!([]), "{jobs:#}");
    for verb in ["status", "logs", "cancel"] {
        let theirs = error_of(&t.as_(&t.bob, &["job", verb, &alice_job]));
        let none = error_of(&t.as_(&t.bob, &["job", verb, "wc-999"]));
        assert_eq!(
            theirs.replace(&alice_job, "ID"),
            none.replace("wc-999", "ID"),
            "{verb}"
        );
    }
    // Running alice's module by name or by id: unknown to bob.
    let bob_out = t.data("bob/out/wc");
    let job = c.write("bob.toml", wordcount_job(&input, &bob_out, ""));
    let refused = error_of(&t.as_(&t.bob, &["job", "submit", path(&job), "--wait"]));
    assert!(refused.contains("wordcount"), "{refused}");
    let by_id_job = c.write(
        "bob-by-id.toml",
        wordcount_job(&input, &bob_out, "").replace("wordcount/", &format!("{alice_id}/")),
    );
    let refused = error_of(&t.as_(&t.bob, &["job", "submit", path(&by_id_job)]));
    assert!(refused.contains(&alice_id), "{refused}");
    assert!(!bob_out.exists());
    // Alice's module is still hers, untouched.
    t.ok_as(&t.alice, &["module", "show", "wordcount"]);

    // Bob's own word count runs within his roots; alice's data is out of his reach by any path.
    t.ok_as(&t.bob, &["module", "register", wasm, "--name", "wordcount"]);
    let bob_input = t.data("bob/in.txt");
    std::fs::write(&bob_input, "bob has his own words\n").unwrap();
    let job = c.write("bob-own.toml", wordcount_job(&bob_input, &bob_out, ""));
    t.ok_as(&t.bob, &["job", "submit", path(&job), "--wait"]);
    std::os::unix::fs::symlink(&input, t.data("bob/link.txt")).unwrap();
    for (what, input, output, rule) in [
        ("her input", input.clone(), t.data("bob/out/a"), "may read"),
        (
            "her input by ..",
            t.data("bob/../alice/in.txt"),
            t.data("bob/out/b"),
            "may read",
        ),
        (
            "a link to her input",
            t.data("bob/link.txt"),
            t.data("bob/out/c"),
            "may read",
        ),
        (
            "into her output root",
            bob_input.clone(),
            t.data("alice/out/stolen"),
            "may write",
        ),
        (
            "his write root itself",
            bob_input.clone(),
            t.data("bob/out"),
            "may write",
        ),
    ] {
        let job = c.write("bob-reach.toml", wordcount_job(&input, &output, ""));
        let refused = error_of(&t.as_(&t.bob, &["job", "submit", path(&job)]));
        assert!(
            refused.contains("outside the directories this job may") && refused.contains(rule),
            "{what}: {refused}"
        );
    }
    assert!(!t.data("alice/out/stolen").exists());

    // A tenant's limits are its own: alice's ceiling is 256 MiB, bob's the cluster's.
    let greedy = c.write(
        "greedy.toml",
        wordcount_job(
            &input,
            &t.data("alice/out/greedy"),
            "[limits]\nmemory = \"512MiB\"\n",
        ),
    );
    let refused = error_of(&t.as_(&t.alice, &["job", "submit", path(&greedy)]));
    assert!(
        refused.contains("limits.memory = 512 MiB is above tenant `alice`'s ceiling of 256 MiB"),
        "{refused}"
    );

    // So are the ceilings on what a tenant registers: carol's modules may have 1 KiB and take 1 ms
    // to compile, which the word count (and any compile in a child process) does not fit.
    let refused = error_of(&t.as_(&t.carol, &["module", "register", wasm, "--name", "wc"]));
    assert!(
        refused.contains("over the size limit of 1024 bytes"),
        "{refused}"
    );
    let tiny = c.write(
        "tiny.wasm",
        weft_testkit::wat::guest("", weft_testkit::wat::IDENTITY_MAP),
    );
    assert!(std::fs::metadata(&tiny).unwrap().len() < 1024);
    let refused = error_of(&t.as_(
        &t.carol,
        &["module", "register", path(&tiny), "--name", "tiny"],
    ));
    assert!(
        refused.contains("compiling took longer than the limit of 1ms"),
        "{refused}"
    );
    // Alice, under the cluster's limits only, registers the same module.
    t.ok_as(
        &t.alice,
        &["module", "register", path(&tiny), "--name", "tiny"],
    );

    // Workers and every tenant's jobs are the operator's to see.
    let workers = error_of(&t.as_(&t.alice, &["cluster", "workers"]));
    assert!(workers.contains("operator token"), "{workers}");
    let workers = t.json_as(&t.operator, &["cluster", "workers"]);
    assert_eq!(workers.as_array().map(Vec::len), Some(2), "{workers:#}");
    let all = t.json_as(&t.operator, &["job", "list"]);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|j| j["job_id"] == alice_job.as_str()),
        "{all:#}"
    );
    let theirs = t.json_as(&t.operator, &["job", "status", &alice_job]);
    assert_eq!(theirs["tenant"], "alice");

    // Accounting: each tenant's usage is the sum of its jobs'; a tenant sees only its own.
    let everyone = t.json_as(&t.operator, &["tenant", "usage"]);
    let everyone = everyone.as_array().unwrap();
    for tenant in ["alice", "bob"] {
        let jobs: Vec<Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["tenant"] == tenant)
            .cloned()
            .collect();
        let row = everyone.iter().find(|r| r["tenant"] == tenant).unwrap();
        assert_eq!(row["jobs"].as_u64(), Some(jobs.len() as u64), "{row:#}");
        for key in ["cpu_us", "wall_us", "attempts"] {
            let sum: u64 = jobs.iter().map(|j| j["usage"][key].as_u64().unwrap()).sum();
            assert_eq!(
                row["usage"][key].as_u64(),
                Some(sum),
                "{tenant} {key}: {row:#}"
            );
        }
        // ... and the sum of every task attempt of those jobs, as `job status --json` lists them.
        let tasks: Vec<Value> = jobs
            .iter()
            .flat_map(|j| {
                let id = j["job_id"].as_str().unwrap();
                let status = t.json_as(&t.operator, &["job", "status", id]);
                status["tasks"].as_array().unwrap().clone()
            })
            .collect();
        assert_eq!(row["usage"]["attempts"].as_u64(), Some(tasks.len() as u64));
        for key in ["cpu_us", "wall_us"] {
            let sum: u64 = tasks.iter().map(|t| t[key].as_u64().unwrap()).sum();
            assert_eq!(row["usage"][key].as_u64(), Some(sum), "{tenant} {key}");
        }
    }
    let own = t.json_as(&t.alice, &["tenant", "usage"]);
    assert_eq!(own.as_array().map(Vec::len), Some(1), "{own:#}");
    assert_eq!(own[0]["tenant"], "alice");

    // No token, a wrong one, a revoked one, the workers' secret: refused, saying how to pass one.
    let missing = error_of(&c.client(&["module", "list"]));
    assert!(
        missing.contains("needs your API token") && missing.contains("WEFT_TOKEN"),
        "{missing}"
    );
    let revoked = error_of(&t.as_(&t.revoked, &["job", "list"]));
    assert!(
        revoked.contains("not one this scheduler knows"),
        "{revoked}"
    );
    let garbage = error_of(&c.client_with_env(
        &[("WEFT_TOKEN", "weft_not-a-real-token-at-all")],
        &["module", "list"],
    ));
    assert!(
        garbage.contains("not one this scheduler knows"),
        "{garbage}"
    );
    let secret = error_of(&t.as_(&t.secret, &["module", "list"]));
    assert!(secret.contains("for workers"), "{secret}");

    // A worker without the secret cannot join.
    let fake = c.client(&[
        "--data-dir",
        path(&c.path("fake-worker")),
        "worker",
        "--listen",
        "127.0.0.1:0",
    ]);
    let refused = error_of(&fake);
    assert!(
        refused.contains("cluster secret"),
        "{refused}\n{}",
        fake.stderr()
    );
    let workers = t.json_as(&t.operator, &["cluster", "workers"]);
    assert_eq!(workers.as_array().map(Vec::len), Some(2), "{workers:#}");

    // No token or secret is written anywhere in the clear: logs, data directories, job records.
    let secrets = [
        &t.alice,
        &t.bob,
        &t.carol,
        &t.operator,
        &t.revoked,
        &t.secret,
    ];
    for file in files_under(&c.path(""))
        .into_iter()
        .chain(files_under(&t.data("")))
    {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for s in secrets {
            assert!(
                !contains(&bytes, s.token.as_bytes()),
                "a token is written in {}",
                file.display()
            );
        }
    }
}

/// A finished job's usage: CPU and wall time in every stage, and the job's the stages' sum; each
/// stage's usage, records and bytes the sum of its task attempts' (`job status --json`'s `tasks`).
fn assert_accounted(status: &Value) {
    let stages = status["stages"].as_array().unwrap();
    let tasks = status["tasks"]
        .as_array()
        .expect("tasks in job status --json");
    for stage in stages {
        let mine: Vec<&Value> = tasks
            .iter()
            .filter(|t| t["stage"] == stage["stage"])
            .collect();
        assert_eq!(
            mine.len() as u64,
            stage["usage"]["attempts"].as_u64().unwrap()
        );
        let sum = |key: &str| -> u64 { mine.iter().map(|t| t[key].as_u64().unwrap()).sum() };
        for key in ["cpu_us", "wall_us"] {
            assert_eq!(
                stage["usage"][key].as_u64(),
                Some(sum(key)),
                "{key}: {status:#}"
            );
        }
        for key in ["records_in", "records_out", "bytes_in", "bytes_out"] {
            assert_eq!(stage[key].as_u64(), Some(sum(key)), "{key}: {status:#}");
        }
        for t in &mine {
            assert_eq!(t["state"], "succeeded", "{t:#}");
            assert!(t["cpu_us"].as_u64() > Some(0), "{t:#}");
            assert!(t["peak_memory_bytes"].as_u64() > Some(0), "{t:#}");
            assert!(!t["worker_id"].as_str().unwrap().is_empty(), "{t:#}");
        }
        // A map stage writes its output into the shuffle; the reduce stage reads all of it.
        let (read, written) = (sum("shuffle_bytes_read"), sum("shuffle_bytes_written"));
        if stage["parents"].as_array().unwrap().is_empty() {
            assert_eq!((read, written), (0, sum("bytes_out")), "{status:#}");
        } else {
            assert_eq!((read, written), (sum("bytes_in"), 0), "{status:#}");
        }
    }
    for key in ["cpu_us", "wall_us", "attempts"] {
        let sum: u64 = stages
            .iter()
            .map(|s| s["usage"][key].as_u64().unwrap())
            .sum();
        assert_eq!(
            status["usage"][key].as_u64(),
            Some(sum),
            "{key}: {status:#}"
        );
    }
    for stage in stages {
        let usage = &stage["usage"];
        assert!(usage["cpu_us"].as_u64() > Some(0), "{stage:#}");
        assert!(
            usage["wall_us"].as_u64() >= usage["cpu_us"].as_u64(),
            "{stage:#}"
        );
        assert!(usage["peak_memory_bytes"].as_u64() > Some(0), "{stage:#}");
        assert_eq!(usage["attempts"], stage["tasks_done"], "{stage:#}");
    }
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
