//! Builds every guest module of the examples from source, so no `.wasm` is ever committed:
//! the Rust examples with a nested `cargo build --target wasm32-wasip1`, the C example with clang and
//! wasi-libc, the WAT example with the `wat` crate. Writes `$OUT_DIR/artifacts.rs` with the path of
//! each module and the `foreach_wordcount!` macro, which makes every word-count implementation run
//! the same tests (adding one forces it through them).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust example crates and the module file each produces.
const RUST_EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "WORDCOUNT_RUST",
        "weft-example-wordcount",
        "weft_example_wordcount.wasm",
    ),
    (
        "STOCKS_RUST",
        "weft-example-stocks",
        "weft_example_stocks.wasm",
    ),
    (
        "TEXTKIT_RUST",
        "weft-example-textkit",
        "weft_example_textkit.wasm",
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    for dir in [
        "examples/wordcount",
        "examples/stocks",
        "examples/textkit",
        "examples/c",
        "examples/wat",
        "guest-sdk/src",
        "guest-sdk/macros/src",
        "guest-sdk/abi/src",
        "guest-sdk/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=WEFT_CLANG");
    println!("cargo:rerun-if-env-changed=WEFT_WASI_SYSROOT");

    let mut consts = Vec::new();
    let wasm_dir = build_rust(&root);
    for (constant, _, file) in RUST_EXAMPLES {
        consts.push((*constant, wasm_dir.join(file)));
    }
    consts.push((
        "WORDCOUNT_C",
        build_c(&root.join("examples/c/wordcount.c"), &out_dir),
    ));
    consts.push((
        "WORDCOUNT_WAT",
        build_wat(&root.join("examples/wat/wordcount.wat"), &out_dir),
    ));

    let mut code = String::new();
    for (constant, path) in &consts {
        assert!(path.exists(), "guest build produced no {}", path.display());
        code.push_str(&format!(
            "/// Path of a guest module built from source.\npub const {constant}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    code.push_str(
        "/// Invokes `$mac!(name, PATH)` once per word-count implementation (Rust, C, WAT).\n\
         #[macro_export]\n\
         macro_rules! foreach_wordcount {\n    ($mac:ident) => {\n\
         \x20       $mac!(rust, $crate::WORDCOUNT_RUST);\n\
         \x20       $mac!(c, $crate::WORDCOUNT_C);\n\
         \x20       $mac!(wat, $crate::WORDCOUNT_WAT);\n    };\n}\n",
    );
    std::fs::write(out_dir.join("artifacts.rs"), code).unwrap();
}

/// Builds the Rust examples with the `guest` profile for wasm32-wasip1, in a target directory of their own
/// (the outer cargo holds the lock of the main one).
fn build_rust(root: &Path) -> PathBuf {
    let target_dir = root.join("target").join("wasm-guests");
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root)
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            "wasm32-wasip1",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (_, package, _) in RUST_EXAMPLES {
        cmd.args(["-p", package]);
    }
    // The outer build's flags and wrappers (clippy, coverage, host RUSTFLAGS) are not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("could not run cargo to build the wasm examples");
    assert!(
        status.success(),
        "building the Rust wasm examples failed (is the wasm32-wasip1 target installed? \
         rust-toolchain.toml lists it; `rustup target add wasm32-wasip1`)"
    );
    target_dir.join("wasm32-wasip1").join("guest")
}

/// Compiles the C example as a WASI reactor with clang and wasi-libc.
fn build_c(source: &Path, out_dir: &Path) -> PathBuf {
    let clang = env::var("WEFT_CLANG").unwrap_or_else(|_| {
        ["clang-14", "clang"]
            .into_iter()
            .find(|c| {
                Command::new(c)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .unwrap_or("clang-14")
            .to_owned()
    });
    // Debian installs wasi-libc with /usr as its sysroot (headers in /usr/include/wasm32-wasi).
    let sysroot = env::var("WEFT_WASI_SYSROOT").unwrap_or_else(|_| "/usr".into());
    let output = out_dir.join("wordcount_c.wasm");
    let result = Command::new(&clang)
        .args(["--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-Wl,--strip-debug"])
        .arg(format!("--sysroot={sysroot}"))
        .arg("-o")
        .arg(&output)
        .arg(source)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {clang} to build the C example ({e}); install clang-14, lld-14, wasi-libc and libclang-rt-14-dev-wasm32 (scripts/setup.sh does)")
        });
    assert!(
        result.status.success(),
        "{clang} failed to build {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    output
}

/// Assembles the WAT example.
fn build_wat(source: &Path, out_dir: &Path) -> PathBuf {
    let wasm = wat::parse_file(source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let output = out_dir.join("wordcount_wat.wasm");
    std::fs::write(&output, wasm).unwrap();
    output
}
