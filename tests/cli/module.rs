//! `weft module register|list|show|rm`, and every refusal of a bad module with nothing written.

use crate::{Weft, path};

fn expected_id(file: &str) -> String {
    format!(
        "blake3:{}",
        blake3::hash(&std::fs::read(file).unwrap()).to_hex()
    )
}

#[test]
fn register_prints_the_blake3_id_and_is_idempotent() {
    let weft = Weft::new();
    let wasm = weft_examples::WORDCOUNT_RUST;
    let run = weft.ok(&["module", "register", wasm, "--name", "wordcount"]);
    assert_eq!(run.stdout().trim(), expected_id(wasm));

    let again = weft.ok(&["module", "register", wasm, "--name", "wordcount"]);
    assert_eq!(again.stdout().trim(), expected_id(wasm));
    assert!(
        again.stderr().contains("nothing changed"),
        "{}",
        again.stderr()
    );

    let blobs = std::fs::read_dir(weft.data_dir().join("registry/blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1, "the same bytes are stored once");
    let list = weft.ok(&["--json", "module", "list"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["version"], 1);
}

#[test]
fn show_lists_udfs_and_kinds() {
    let weft = Weft::new();
    let id = weft
        .ok(&[
            "module",
            "register",
            weft_examples::WORDCOUNT_RUST,
            "--name",
            "wordcount",
        ])
        .stdout();
    let show = weft.ok(&["module", "show", "wordcount"]).stdout();
    assert!(show.contains(id.trim()), "{show}");
    let udf_lines: Vec<String> = show
        .lines()
        .skip_while(|l| !l.starts_with("udfs:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    // The Rust SDK gives every `reduce` a combiner, states that a `()` key is unused (issue 19),
    // and `show` says both.
    assert_eq!(
        udf_lines,
        [
            "filter long_words",
            "flat_map split_words (key unused: input read for it has empty keys)",
            "reduce sum (with a combiner: map tasks combine inside the guest)"
        ],
        "{show}"
    );

    // By id, and as JSON.
    let json = weft.ok(&["--json", "module", "show", id.trim()]).json();
    assert_eq!(json["module"]["name"], "wordcount");
    assert_eq!(json["module"]["id"], id.trim());
    let udfs = &json["module"]["module"]["udfs"];
    assert_eq!(udfs[1]["kind"], "flat_map");
    assert_eq!(udfs[1]["combiner"], false);
    assert_eq!(udfs[2]["name"], "sum");
    assert_eq!(udfs[2]["combiner"], true);
    assert_eq!(json["module"]["module"]["abi_version"], 1);

    // The hand-written WAT word count has no combiner: its reduce is combined by the host.
    weft.ok(&[
        "module",
        "register",
        weft_examples::WORDCOUNT_WAT,
        "--name",
        "wc-wat",
    ]);
    let list = weft.ok(&["module", "list"]).stdout();
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .to_owned()
    };
    assert!(
        line("wordcount ").ends_with("filter:long_words flat_map:split_words reduce:sum+combiner"),
        "{list}"
    );
    assert!(
        line("wc-wat ").ends_with("flat_map:split_words reduce:sum"),
        "{list}"
    );
}

#[test]
fn new_bytes_under_a_name_make_a_version_and_rm_removes() {
    let weft = Weft::new();
    let v1 = weft
        .ok(&[
            "module",
            "register",
            weft_examples::WORDCOUNT_RUST,
            "--name",
            "wc",
        ])
        .stdout();
    let v2 = weft
        .ok(&[
            "module",
            "register",
            weft_examples::WORDCOUNT_C,
            "--name",
            "wc",
            "--tag",
            "c",
        ])
        .stdout();
    assert_ne!(v1, v2);
    assert_eq!(
        weft.ok(&["--json", "module", "show", "wc"]).json()["module"]["version"],
        2
    );
    assert_eq!(
        weft.ok(&["--json", "module", "show", "wc@1"]).json()["module"]["id"],
        v1.trim()
    );
    assert_eq!(
        weft.ok(&["--json", "module", "show", "wc@c"]).json()["module"]["id"],
        v2.trim()
    );
    assert_eq!(
        weft.ok(&["--json", "module", "list"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let rm = weft.ok(&["module", "rm", "wc@1"]).stdout();
    assert!(rm.contains("removed wc@1"), "{rm}");
    let missing = weft.run(&["module", "show", v1.trim()]);
    assert_ne!(missing.code(), Some(0));
    assert!(
        missing.stderr().contains("no module"),
        "{}",
        missing.stderr()
    );

    // Every version at once needs --yes when no terminal can ask.
    let unconfirmed = weft.run(&["module", "rm", "wc"]);
    assert_eq!(unconfirmed.code(), Some(1));
    assert!(
        unconfirmed.stderr().contains("every version of module wc")
            && unconfirmed.stderr().contains("--yes"),
        "{}",
        unconfirmed.stderr()
    );
    assert_eq!(
        weft.ok(&["--json", "module", "list"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing was removed"
    );
    weft.ok(&["module", "rm", "wc", "--yes"]);
    assert!(
        weft.ok(&["--json", "module", "list"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        std::fs::read_dir(weft.data_dir().join("registry/blobs"))
            .unwrap()
            .count(),
        0
    );
}

/// Registers `bytes` and expects a refusal whose message contains every `needle`, with nothing
/// written: the data directory is not even created.
fn refused(bytes: &[u8], needles: &[&str]) {
    let weft = Weft::new();
    let file = weft.scratch("module.wasm");
    std::fs::write(&file, bytes).unwrap();
    let run = weft.run(&["module", "register", path(&file), "--name", "bad"]);
    assert_eq!(run.code(), Some(1), "stderr: {}", run.stderr());
    assert!(run.stdout().is_empty(), "{}", run.stdout());
    let stderr = run.stderr();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("module.wasm was refused"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !weft.data_dir().exists(),
        "a refused module must leave no trace"
    );
}

const MEMORY_AND_FUNCS: &str = r#"
  (memory (export "memory") 1)
  (func (export "weft_alloc") (param i32 i32) (result i32) i32.const 8)
  (func (export "weft_free") (param i32 i32 i32))
  (func (export "weft_map_x") (param i32) (result i32) i32.const 0)"#;

#[test]
fn a_non_wasm_file_is_refused() {
    refused(
        b"hello, I am a text file\n",
        &["not a WebAssembly module", "magic"],
    );
}

#[test]
fn a_truncated_wasm_file_is_refused() {
    let full = std::fs::read(weft_examples::WORDCOUNT_RUST).unwrap();
    refused(&full[..full.len() / 3], &["invalid WebAssembly"]);
}

#[test]
fn a_module_without_the_abi_version_export_is_refused() {
    let wasm = wat::parse_str(format!("(module {MEMORY_AND_FUNCS})")).unwrap();
    refused(&wasm, &["weft_abi_version"]);
}

#[test]
fn a_module_importing_what_the_sandbox_lacks_is_refused() {
    let wasm = wat::parse_str(format!(
        r#"(module (import "env" "launch_missiles" (func))
             (func (export "weft_abi_version") (result i32) i32.const 1) {MEMORY_AND_FUNCS})"#
    ))
    .unwrap();
    refused(&wasm, &["env::launch_missiles", "does not provide"]);
}

#[test]
fn a_module_over_the_size_limit_is_refused() {
    // A valid module with a 64 MiB + 1 byte data segment: over the default limit.
    let mut wasm = wat::parse_str(format!(
        r#"(module (func (export "weft_abi_version") (result i32) i32.const 1) {MEMORY_AND_FUNCS})"#
    ))
    .unwrap();
    // Append a custom section to push it over the limit without a giant text file.
    let limit = weft_host::DEFAULT_MAX_MODULE_BYTES;
    let payload = limit + 1 - wasm.len();
    wasm.push(0); // custom section id
    let mut size = payload as u64 + 2; // + name length byte + name "x"
    let mut leb = Vec::new();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            leb.push(byte);
            break;
        }
        leb.push(byte | 0x80);
    }
    wasm.extend_from_slice(&leb);
    wasm.extend_from_slice(&[1, b'x']);
    wasm.resize(wasm.len() + payload, 0);
    assert!(wasm.len() > limit);
    refused(&wasm, &["over the size limit", &limit.to_string()]);
}

#[test]
fn bad_arguments_are_usage_errors() {
    let weft = Weft::new();
    let run = weft.run(&["module", "register", weft_examples::WORDCOUNT_RUST]);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr().contains("--name"), "{}", run.stderr());
    let run = weft.run(&["module", "register", "/no/such/file.wasm", "--name", "x"]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr().contains("/no/such/file.wasm"),
        "{}",
        run.stderr()
    );
    let run = weft.run(&["module", "show", "bad/name"]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr().contains("invalid module reference"),
        "{}",
        run.stderr()
    );
    let run = weft.run(&["--json", "module", "show", "nothing"]);
    assert_eq!(run.code(), Some(1));
    assert!(run.json()["error"].as_str().unwrap().contains("nothing"));
}

#[test]
fn weft_home_selects_the_data_directory() {
    let home = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "module",
            "register",
            weft_examples::STOCKS_RUST,
            "--name",
            "stocks",
        ])
        .env("WEFT_HOME", home.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(home.path().join("registry/blobs").is_dir());
}
