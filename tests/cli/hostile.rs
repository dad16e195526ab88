//! The hostile-module suite: guests written against ABI.md to break the sandbox, the worker or the
//! scheduler, each built from WAT source here, registered and run by tenant `mallory` through a
//! real `weft scheduler --tenants` and two `weft worker` processes (two slots each) under low
//! limits. Each case asserts its outcome — refused at registration, or the job failed with a message
//! naming the cause or limit, or (for what must simply be harmless) the job succeeded — and how soon
//! it was stopped; after each, both workers must still be running and registered, and word counts
//! another tenant, `bystander`, runs beside the suite the whole time must give the exact answer. A
//! table of the cases and their times is printed.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_testkit::wat::{ABI_V1, ALLOC, FREE};
use weft_testkit::wat::{
    BLOAT_FLAT_MAP, CHATTY_MAP, HUGE_ERROR_MAP, IDENTITY_MAP, PASS_THROUGH, SOCKET_FLOOD_MAP,
    SPIN_MAP, WASI_IMPORTS, guest, module, sleep_map,
};

use crate::cluster::Cluster;
use crate::{assert_same_counts, counts_of, path, read_output, word_counts};

/// The limits the suite's scheduler runs under: low, so that each case is stopped soon.
const CALL_TIME: &str = "2s";
const MEMORY: &str = "128MiB";
const BATCH_OUTPUT: &str = "8MiB";
const LOG: &str = "4KiB";
const COMPILE_TIMEOUT: &str = "5s";
const COMPILE_MEMORY: &str = "1GiB";

/// What a case must come to.
enum Expect {
    /// Registration refuses the module with a message containing one of these (a compile bomb
    /// meets whichever of its limits first).
    Refused(&'static [&'static str]),
    /// The module registers; a job of one step, `step` (`KIND/FUNCTION` of the module), fails
    /// with an error containing this.
    Fails {
        step: &'static str,
        error: &'static str,
    },
    /// The module registers and the job succeeds: what the guest tried did it no good.
    Harmless { step: &'static str },
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
    /// The most the case may take, from submission (or registration) to its outcome.
    bound: Duration,
}

fn case(name: &'static str, bytes: Vec<u8>, expect: Expect, bound: Duration) -> Case {
    Case {
        name,
        bytes,
        expect,
        bound,
    }
}

const SECS_10: Duration = Duration::from_secs(10);
const SECS_20: Duration = Duration::from_secs(20);

fn map(body: &str) -> Vec<u8> {
    guest("", body)
}

/// Every case of the suite.
fn cases() -> Vec<Case> {
    use Expect::*;
    let fails = |step, error| Fails { step, error };
    vec![
        // Runaway guests: stopped at the call time limit (2 s), even asleep in a host function.
        case(
            "infinite loop",
            map(SPIN_MAP),
            fails("map/spin", "exceeded the time limit of 2s per call"),
            SECS_10,
        ),
        case(
            "sleep in poll_oneoff",
            guest(WASI_IMPORTS, &sleep_map()),
            fails("map/sleep", "exceeded the time limit of 2s per call"),
            SECS_10,
        ),
        // Memory.
        case(
            "memory.grow until refused",
            map(GROW_UNTIL_REFUSED),
            fails("map/grow", "exceeded the memory limit of 128 MiB"),
            SECS_10,
        ),
        case(
            "one huge memory.grow",
            map(HUGE_GROW),
            fails("map/grow", "exceeded the memory limit of 128 MiB"),
            SECS_10,
        ),
        case(
            "huge initial memory",
            module(&[
                r#"(memory (export "memory") 65536)"#,
                ABI_V1,
                ALLOC,
                FREE,
                IDENTITY_MAP,
            ]),
            Refused(&["the module failed to start"]),
            SECS_10,
        ),
        case(
            "huge table",
            guest("", &format!("(table 100000000 funcref){IDENTITY_MAP}")),
            Refused(&["table"]),
            SECS_10,
        ),
        case(
            "unbounded recursion",
            map(RECURSE),
            fails(
                "map/recurse",
                "exceeded the stack limit of 512 KiB (limits.stack): call stack exhausted",
            ),
            SECS_10,
        ),
        // Output the guest claims.
        case(
            "output outside memory",
            map(OUTPUT_OUTSIDE),
            fails("flat_map/wild", "lies outside guest memory"),
            SECS_10,
        ),
        case(
            "output wrapping past 4 GiB",
            map(OUTPUT_WRAPS),
            fails("flat_map/wrap", "lies outside guest memory"),
            SECS_10,
        ),
        case(
            "more records than the buffer",
            map(TOO_MANY_RECORDS),
            fails("flat_map/many", "lies outside guest memory"),
            SECS_10,
        ),
        case(
            "error message out of bounds",
            map(ERROR_OUTSIDE),
            fails("map/err", "error message lies outside guest memory"),
            SECS_10,
        ),
        case(
            "10 MiB error message",
            map(HUGE_ERROR_MAP),
            fails("map/shout", "the guest's message is 10485760 bytes"),
            SECS_10,
        ),
        case(
            "batch output of 64 MiB",
            map(BLOAT_FLAT_MAP),
            fails(
                "flat_map/bloat",
                "over the limit of 8 MiB (limits.batch_output)",
            ),
            SECS_10,
        ),
        case(
            "proc_exit mid-call",
            guest(PROC_EXIT_IMPORT, PROC_EXIT_MAP),
            fails(
                "map/quit",
                "the guest called proc_exit(3) in the middle of the call",
            ),
            SECS_10,
        ),
        // Ambient capabilities: none to be had.
        case(
            "path_open of /etc/passwd, .. and low fds",
            guest(PATH_OPEN_IMPORT, &format!("{PATH_OPEN_MAP}{PASS_THROUGH})")),
            Harmless { step: "map/open" },
            SECS_10,
        ),
        case(
            "environ, args and sockets",
            guest(ENV_IMPORTS, &format!("{ENV_MAP}{PASS_THROUGH})")),
            Harmless { step: "map/env" },
            SECS_10,
        ),
        case(
            "100,000 sock_accept calls",
            guest(WASI_IMPORTS, SOCKET_FLOOD_MAP),
            Harmless {
                step: "map/sockets",
            },
            SECS_20,
        ),
        case(
            "2 MiB of stdout per call",
            guest(WASI_IMPORTS, CHATTY_MAP),
            Harmless { step: "map/chatty" },
            SECS_20,
        ),
        // Imports and files.
        case(
            "import that does not exist",
            guest(r#"(import "env" "launch" (func))"#, IDENTITY_MAP),
            Refused(&["which the sandbox does not provide"]),
            SECS_10,
        ),
        case(
            "imported memory",
            module(&[
                r#"(import "env" "memory" (memory 1))"#,
                ABI_V1,
                ALLOC,
                FREE,
                IDENTITY_MAP,
            ]),
            Refused(&["`env::memory`"]),
            SECS_10,
        ),
        case(
            "imported table",
            guest(r#"(import "env" "table" (table 1 funcref))"#, IDENTITY_MAP),
            Refused(&["`env::table`"]),
            SECS_10,
        ),
        case(
            "imported global",
            guest(r#"(import "env" "g" (global i32))"#, IDENTITY_MAP),
            Refused(&["`env::g`"]),
            SECS_10,
        ),
        case(
            "invalid bytes",
            b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\x0f".to_vec(),
            Refused(&["invalid WebAssembly"]),
            SECS_10,
        ),
        case(
            "truncated module",
            truncated(),
            Refused(&["invalid WebAssembly"]),
            SECS_10,
        ),
        case(
            "empty file",
            Vec::new(),
            Refused(&["not a WebAssembly module"]),
            SECS_10,
        ),
        case(
            "component",
            b"\0asm\x0d\0\x01\0".to_vec(),
            Refused(&["WebAssembly"]),
            SECS_10,
        ),
        case(
            "oversized file",
            oversized(),
            Refused(&["over the size limit"]),
            SECS_20,
        ),
        // Compile bombs: stopped at the compile limits, in a child the scheduler kills.
        case(
            // 100,000 compile in about 3.8 s and 570 MB here: not a bomb under 5 s and 1 GiB.
            "250,000 functions",
            many_functions(250_000),
            Refused(&[
                "compiling took longer than the limit of 5s",
                "compiling needed more than the memory limit",
            ]),
            SECS_20,
        ),
        case(
            "one huge function body",
            huge_body(64_000),
            Refused(&[
                "compiling took longer than the limit of 5s",
                "compiling needed more than the memory limit",
            ]),
            SECS_20,
        ),
        // Start-up.
        case(
            "_initialize that traps",
            guest("", &format!("{INIT_TRAPS}{IDENTITY_MAP}")),
            Refused(&["`_initialize` failed"]),
            SECS_10,
        ),
        case(
            "_initialize that loops",
            guest("", &format!("{INIT_LOOPS}{IDENTITY_MAP}")),
            Refused(&["`_initialize` failed: ran longer than the time limit of 2s"]),
            SECS_10,
        ),
    ]
}

const GROW_UNTIL_REFUSED: &str = r#"
  (func (export "weft_map_grow") (param i32) (result i32)
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)"#;

pub(crate) const HUGE_GROW: &str = r#"
  (func (export "weft_map_grow") (param i32) (result i32)
    (if (i32.eq (memory.grow (i32.const 65000)) (i32.const -1)) (then unreachable))
    i32.const 0)"#;

pub(crate) const RECURSE: &str = r#"
  (func $deeper (param i32) (result i32) (call $deeper (i32.add (local.get 0) (i32.const 1))))
  (func (export "weft_map_recurse") (param i32) (result i32) (call $deeper (i32.const 0)))"#;

/// One record whose offsets lie past the end of memory.
const OUTPUT_OUTSIDE: &str = r#"
  (func (export "weft_flat_map_wild") (param $f i32) (result i32)
    (i32.store offset=24 (local.get $f) (i32.const 1))
    (i32.store offset=28 (local.get $f) (i32.const 0x00fffff0))
    (i32.store offset=36 (local.get $f) (i32.const 0x00fffff0))
    (i32.const 0))"#;

/// Offsets near the top of the address space, so that pointer + length wraps past 4 GiB.
const OUTPUT_WRAPS: &str = r#"
  (func (export "weft_flat_map_wrap") (param $f i32) (result i32)
    (i32.store offset=24 (local.get $f) (i32.const 4))
    (i32.store offset=28 (local.get $f) (i32.const 0xfffffff8))
    (i32.store offset=36 (local.get $f) (i32.const 0xfffffff8))
    (i32.const 0))"#;

/// Claims a million records over a 16-byte offsets buffer.
const TOO_MANY_RECORDS: &str = r#"
  (func (export "weft_flat_map_many") (param $f i32) (result i32)
    (i32.store offset=24 (local.get $f) (i32.const 1000000))
    (i32.store offset=28 (local.get $f) (i32.const 64))
    (i32.store offset=36 (local.get $f) (i32.const 64))
    (i32.const 0))"#;

/// Fails with a message whose pointer lies past the end of memory.
const ERROR_OUTSIDE: &str = r#"
  (func (export "weft_map_err") (param $f i32) (result i32)
    (i32.store offset=48 (local.get $f) (i32.const 0x7ffffff0))
    (i32.store offset=52 (local.get $f) (i32.const 100))
    (i32.const 1))"#;

const PROC_EXIT_IMPORT: &str =
    r#"(import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))"#;
const PROC_EXIT_MAP: &str = r#"
  (func (export "weft_map_quit") (param i32) (result i32) (call $proc_exit (i32.const 3)) i32.const 0)"#;

const PATH_OPEN_IMPORT: &str = r#"(import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#;

/// Tries `path_open` of `/etc/passwd`, `..` and `../../etc/passwd` from every fd 0..16; traps if
/// any succeeds (the map's body: [`PASS_THROUGH`] ends it).
const PATH_OPEN_MAP: &str = r#"
  (data (i32.const 128) "/etc/passwd")
  (data (i32.const 160) "..")
  (data (i32.const 176) "../../etc/passwd")
  (func $try (param $fd i32) (param $path i32) (param $len i32)
    (if (i32.eqz (call $path_open (local.get $fd) (i32.const 1) (local.get $path) (local.get $len)
                   (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 240)))
      (then unreachable)))
  (func (export "weft_map_open") (param $f i32) (result i32)
    (local $fd i32)
    (loop $each
      (call $try (local.get $fd) (i32.const 128) (i32.const 11))
      (call $try (local.get $fd) (i32.const 160) (i32.const 2))
      (call $try (local.get $fd) (i32.const 176) (i32.const 16))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $fd) (i32.const 16))))
"#;

const ENV_IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))"#;

/// Traps if the sandbox shows any environment variable or argument, or a socket on fds 0..8 (the
/// map's body: [`PASS_THROUGH`] ends it).
const ENV_MAP: &str = r#"
  (func (export "weft_map_env") (param $f i32) (result i32)
    (local $fd i32)
    (drop (call $environ_sizes (i32.const 200) (i32.const 204)))
    (if (i32.or (i32.load (i32.const 200)) (i32.load (i32.const 204))) (then unreachable))
    (drop (call $args_sizes (i32.const 200) (i32.const 204)))
    (if (i32.or (i32.load (i32.const 200)) (i32.load (i32.const 204))) (then unreachable))
    (loop $each
      (if (i32.eqz (call $sock_accept (local.get $fd) (i32.const 0) (i32.const 208)))
        (then unreachable))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $fd) (i32.const 8))))
"#;

const INIT_TRAPS: &str = r#"(func (export "_initialize") unreachable)"#;
const INIT_LOOPS: &str = r#"(func (export "_initialize") (loop br 0))"#;

/// A valid module cut in the middle of its code.
fn truncated() -> Vec<u8> {
    let whole = guest("", IDENTITY_MAP);
    whole[..whole.len() - 7].to_vec()
}

/// A module header followed by 65 MiB: over the registry's 64 MiB limit.
fn oversized() -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.resize(65 << 20, 0);
    bytes
}

fn many_functions(n: usize) -> Vec<u8> {
    let mut items = String::from(IDENTITY_MAP);
    for i in 0..n {
        let _ = writeln!(
            items,
            "(func (param i32) (result i32) (i32.add (local.get 0) (i32.const {i})))"
        );
    }
    guest("", &items)
}

/// One function of `n` conditional branches: compile time grows faster than its size.
fn huge_body(n: usize) -> Vec<u8> {
    let mut body =
        String::from(r#"(func (export "weft_map_big") (param $f i32) (result i32) (local $a i32)"#);
    for i in 0..n {
        let _ = write!(
            body,
            "(if (i32.eq (local.get $a) (i32.const {i})) (then (local.set $a (i32.const {}))))",
            i + 1
        );
    }
    body.push_str("(i32.const 0))");
    guest("", &body)
}

/// A map that counts its calls in a global and outputs the count as every record's value: run
/// over many tasks, each value must be 1 if no instance outlives its task.
const COUNTING_MAP: &str = r#"
  (global $calls (mut i32) (i32.const 0))
  (func (export "weft_map_count") (param $f i32) (result i32)
    (local $n i32) (local $i i32) (local $offsets i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 100) (i32.add (i32.const 48) (global.get $calls)))
    (local.set $n (i32.load (local.get $f)))
    ;; values: every one the byte at 100; offsets at 4096
    (local.set $offsets (i32.const 4096))
    (loop $each
      (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $i) (i32.const 2)))
        (i32.const 0))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $each (i32.le_u (local.get $i) (local.get $n))))
    (local.set $i (i32.const 1))
    (loop $each
      (i32.store (i32.add (local.get $offsets) (i32.shl (local.get $i) (i32.const 2)))
        (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $each (i32.le_u (local.get $i) (local.get $n))))
    ;; each value i is data[i-1 .. i]: make the data all the same byte
    (memory.fill (i32.const 8192) (i32.load8_u (i32.const 100)) (local.get $n))
    (i32.store offset=24 (local.get $f) (local.get $n))
    (i32.store offset=28 (local.get $f) (i32.load offset=4 (local.get $f)))
    (i32.store offset=32 (local.get $f) (i32.load offset=8 (local.get $f)))
    (i32.store offset=36 (local.get $f) (local.get $offsets))
    (i32.store offset=40 (local.get $f) (i32.const 8192))
    (i32.const 0))"#;

/// The suite's cluster: two tenants, `mallory` (who runs the hostile modules) and `bystander`
/// (who counts words beside them), each with its token and its data under `data/NAME` (read) and
/// `data/NAME/out` (write), and an operator token to look at the workers.
struct Shared {
    cluster: Cluster,
    mallory: String,
    bystander: String,
    operator: String,
    data: tempfile::TempDir,
}

impl Shared {
    fn as_(&self, token: &str, args: &[&str]) -> crate::Run {
        self.cluster.client_with_env(&[("WEFT_TOKEN", token)], args)
    }

    fn as_mallory(&self, args: &[&str]) -> crate::Run {
        self.as_(&self.mallory, args)
    }

    fn as_bystander(&self, args: &[&str]) -> crate::Run {
        self.as_(&self.bystander, args)
    }

    /// A path under `data/`.
    fn data(&self, path: &str) -> std::path::PathBuf {
        self.data.path().join(path)
    }

    /// Writes a file under `data/` and returns its path.
    fn write(&self, path: &str, bytes: impl AsRef<[u8]>) -> std::path::PathBuf {
        let file = self.data(path);
        std::fs::write(&file, bytes).unwrap();
        file
    }
}

/// A token minted by `weft tenant token`, and its digest.
fn mint() -> (String, String) {
    let json = crate::Weft::new().ok(&["--json", "tenant", "token"]).json();
    (
        json["token"].as_str().unwrap().to_owned(),
        json["hash"].as_str().unwrap().to_owned(),
    )
}

/// A cluster of tenants under the suite's limits, with the bystander's word count registered.
fn hostile_cluster() -> Shared {
    let ((mallory, mallory_hash), (bystander, bystander_hash)) = (mint(), mint());
    let ((operator, operator_hash), (secret, _)) = (mint(), mint());
    let data = tempfile::tempdir().unwrap();
    let mut tenants = String::new();
    for (tenant, hash) in [("mallory", &mallory_hash), ("bystander", &bystander_hash)] {
        let root = data.path().join(tenant);
        std::fs::create_dir_all(root.join("out")).unwrap();
        let _ = write!(
            tenants,
            "[tenants.{tenant}]\ntokens = [{hash:?}]\n[tenants.{tenant}.data]\nread = [{:?}]\n\
             write = [{:?}]\n",
            path(&root),
            path(&root.join("out"))
        );
    }
    let _ = write!(tenants, "[operators]\ntokens = [{operator_hash:?}]\n");
    let file = data.path().join("tenants.toml");
    std::fs::write(&file, tenants).unwrap();
    let cluster = Cluster::start_with_env(
        2,
        &[("WEFT_CLUSTER_SECRET", &secret)],
        &[
            "--tenants",
            path(&file),
            "--limit",
            &format!("call_time={CALL_TIME}"),
            "--limit",
            &format!("memory={MEMORY}"),
            "--limit",
            &format!("batch_output={BATCH_OUTPUT}"),
            "--limit",
            &format!("log={LOG}"),
            "--compile-timeout",
            COMPILE_TIMEOUT,
            "--compile-memory",
            COMPILE_MEMORY,
        ],
        &[],
    );
    let shared = Shared {
        cluster,
        mallory,
        bystander,
        operator,
        data,
    };
    let run = shared.as_bystander(&[
        "module",
        "register",
        weft_examples::WORDCOUNT_RUST,
        "--name",
        "wordcount",
    ]);
    assert!(run.0.status.success(), "{}", run.stderr());
    shared
}

/// A one-step job over `input`.
fn one_step_job(name: &str, step: &str, input: &Path, output: &Path) -> String {
    format!(
        "name = {name:?}\n[input]\npath = {:?}\nsplit_size = 64\n[[step]]\n{step}\n[output]\npath = {:?}\n",
        path(input),
        path(output)
    )
}

/// The word count that runs beside the suite: its input, and its answer computed here.
struct Bystander {
    input: std::path::PathBuf,
    expected: std::collections::HashMap<Vec<u8>, u64>,
}

fn bystander(shared: &Shared) -> Bystander {
    let text: String = (0..3000)
        .map(|i| format!("bystander {} counts words {}\n", i % 97, i % 13))
        .collect();
    let input = shared.write("bystander/in.txt", &text);
    Bystander {
        expected: word_counts(text.as_bytes()),
        input,
    }
}

/// Runs word counts one after another until `stop` is raised; returns how many ran, each checked
/// exact.
fn run_bystanders(shared: &Shared, who: &Bystander, stop: &AtomicBool) -> usize {
    let mut runs = 0;
    while !stop.load(Ordering::Relaxed) || runs == 0 {
        let out = shared.data(&format!("bystander/out/{runs}"));
        let job = shared.cluster.write(
            &format!("bystander-{runs}.toml"),
            format!(
                "name = \"bystander\"\n[input]\npath = {:?}\nsplit_size = \"16KB\"\n[[step]]\n\
                 flat_map = \"wordcount/split_words\"\n[[step]]\nreduce = \"wordcount/sum\"\n\
                 [output]\npath = {:?}\npartitions = 2\n",
                path(&who.input),
                path(&out)
            ),
        );
        let run = shared.as_bystander(&["job", "submit", path(&job), "--wait"]);
        assert!(
            run.0.status.success(),
            "a bystander's word count failed beside the hostile suite:\n{}\n{}",
            run.stdout(),
            run.stderr()
        );
        assert_same_counts(&counts_of(read_output(&out)), &who.expected);
        runs += 1;
    }
    runs
}

/// The worker processes are running and both registered.
fn assert_workers_serving(shared: &Shared, after: &str) {
    shared.cluster.assert_running(after);
    let workers = shared
        .as_(&shared.operator, &["--json", "cluster", "workers"])
        .json();
    assert_eq!(
        workers.as_array().map(Vec::len),
        Some(2),
        "after {after}: {workers:#}"
    );
}

/// The bystanders' thread, stopped and waited for when dropped: on a failed case too, so that the
/// cluster it shares is dropped, and its processes stopped, before the test ends.
struct Beside {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Drop for Beside {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn hostile_modules_are_refused_or_stopped_and_the_cluster_serves_on() {
    let shared = Arc::new(hostile_cluster());
    let cluster = &shared.cluster;
    let input = shared.write("mallory/in.txt", "one line\nanother line\nand a third\n");
    let who = bystander(&shared);
    let stop = Arc::new(AtomicBool::new(false));
    let mut beside = Beside {
        stop: stop.clone(),
        thread: Some({
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || run_bystanders(&shared, &who, &stop))
        }),
    };

    let table = Mutex::new(Vec::new());
    for (n, case) in cases().into_iter().enumerate() {
        let slug: String = format!("case{n}-{}", case.name)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let wasm = cluster.path(&format!("case-{n}.wasm"));
        std::fs::write(&wasm, &case.bytes).unwrap();
        let logs_before: Vec<usize> = ["worker-0", "worker-1"]
            .iter()
            .map(|w| cluster.log(w).len())
            .collect();
        let started = Instant::now();
        let register = shared.as_mallory(&["module", "register", path(&wasm), "--name", &slug]);
        let outcome = match &case.expect {
            Expect::Refused(needles) => {
                let stderr = register.stderr();
                assert!(!register.0.status.success(), "{}: registered", case.name);
                assert!(
                    needles.iter().any(|n| stderr.contains(n)),
                    "{}: none of {needles:?} in {stderr}",
                    case.name
                );
                format!("refused: {}", after_scheduler(&stderr))
            }
            Expect::Fails { step, error } => {
                assert!(
                    register.0.status.success(),
                    "{}: refused at registration: {}",
                    case.name,
                    register.stderr()
                );
                let status = run_job(&shared, &slug, step, &input);
                assert_eq!(status["state"], "failed", "{}: {status:#}", case.name);
                let message = status["error"].as_str().unwrap_or_default();
                assert!(
                    message.contains(error),
                    "{}: {error:?} not in {message}",
                    case.name
                );
                format!("failed: {}", cause(message))
            }
            Expect::Harmless { step } => {
                assert!(
                    register.0.status.success(),
                    "{}: refused at registration: {}",
                    case.name,
                    register.stderr()
                );
                let status = run_job(&shared, &slug, step, &input);
                assert_eq!(status["state"], "succeeded", "{}: {status:#}", case.name);
                "harmless: the job succeeded".to_owned()
            }
        };
        let took = started.elapsed();
        assert!(
            took <= case.bound,
            "{}: took {took:?}, over {:?}",
            case.name,
            case.bound
        );
        // Nothing a guest does floods a worker's own log.
        for (i, before) in logs_before.iter().enumerate() {
            let grown = cluster.log(&format!("worker-{i}")).len() - before;
            assert!(
                grown < 64 << 10,
                "{}: worker-{i}'s log grew {grown} bytes",
                case.name
            );
        }
        assert_workers_serving(&shared, case.name);
        table.lock().unwrap().push((case.name, took, outcome));
    }

    // State kept in a guest's globals does not outlive its task, nor reach another job.
    let counting = cluster.write("counting.wasm", guest("", COUNTING_MAP));
    let run = shared.as_mallory(&["module", "register", path(&counting), "--name", "counting"]);
    assert!(run.0.status.success(), "{}", run.stderr());
    for round in 0..2 {
        let out = shared.data(&format!("mallory/out/counting-{round}"));
        let job = cluster.write(
            &format!("counting-{round}.toml"),
            one_step_job("counting", "map = \"counting/count\"", &input, &out),
        );
        let run = shared.as_mallory(&["job", "submit", path(&job), "--wait"]);
        assert!(run.0.status.success(), "{}", run.stderr());
        let values: Vec<Vec<u8>> = read_output(&out).into_values().collect();
        assert_eq!(values.len(), 3, "one record per line");
        assert!(
            values.iter().all(|v| v == b"1"),
            "a guest saw calls of another task or job: {values:?}"
        );
    }

    stop.store(true, Ordering::Relaxed);
    let bystanders = beside
        .thread
        .take()
        .expect("joined once")
        .join()
        .expect("the bystander's word counts");
    assert_workers_serving(&shared, "the suite");

    let mut report = format!(
        "\nhostile-module suite: {} cases, {bystanders} exact word counts beside them\n",
        table.lock().unwrap().len()
    );
    let _ = writeln!(report, "{:<44} {:>8}  outcome", "case", "stopped");
    for (name, took, outcome) in table.lock().unwrap().iter() {
        let _ = writeln!(
            report,
            "{name:<44} {:>7.2}s  {}",
            took.as_secs_f64(),
            truncate(outcome, 110)
        );
    }
    eprintln!("{report}");
}

/// Submits a job of one step, `step` (`KIND/FUNCTION`) of module `slug`, over `input`, waits,
/// and returns its final status.
fn run_job(shared: &Shared, slug: &str, step: &str, input: &Path) -> Value {
    let cluster = &shared.cluster;
    let out = shared.data(&format!("mallory/out/{slug}"));
    let (kind, function) = step.split_once('/').expect("KIND/FUNCTION");
    let step = format!("{kind} = \"{slug}/{function}\"");
    let job = cluster.write(
        &format!("{slug}.toml"),
        one_step_job("hostile", &step, input, &out),
    );
    let run = shared.as_mallory(&["--json", "job", "submit", path(&job), "--wait"]);
    serde_json::Deserializer::from_slice(&run.0.stdout)
        .into_iter::<Value>()
        .next()
        .unwrap_or_else(|| panic!("no status for {slug}: {}\n{}", run.stdout(), run.stderr()))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

/// What the scheduler said, without the client's `error: FILE was refused: scheduler:` prefix.
fn after_scheduler(stderr: &str) -> String {
    let line = stderr.lines().next().unwrap_or_default();
    line.split_once("scheduler: ")
        .map_or(line, |(_, said)| said)
        .to_owned()
}

/// The cause of a failed job: what follows its failed step's name (`…/FUNCTION: `), first line
/// only, a long one shown by its two ends.
fn cause(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let cause = line
        .match_indices(": ")
        .nth(2)
        .map_or(line, |(at, _)| &line[at + 2..]);
    let chars: Vec<char> = cause.chars().collect();
    if chars.len() <= 110 {
        return cause.to_owned();
    }
    let head: String = chars[..30].iter().collect();
    let tail: String = chars[chars.len() - 70..].iter().collect();
    format!("{head}…{tail}")
}

fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        text.chars().take(chars).collect::<String>() + "…"
    }
}
