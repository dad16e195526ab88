//! Builds every guest module of the examples from source, so no `.wasm` is ever committed: each
//! scenario of the example matrix (`examples/README.md`) in Rust, C, Zig and AssemblyScript, and
//! the Rust test module `textkit`, all through `weft-toolchain` — the way `weft udf build` builds
//! a project — and the hand-written WAT word count with the `wat` crate. Writes
//! `$OUT_DIR/artifacts.rs` with the path of each module, the `MATRIX` of them all and the
//! `foreach_wordcount!` macro, which makes every word-count implementation run the same tests
//! (adding one forces it through them).

use std::env;
use std::path::{Path, PathBuf};

use weft_toolchain::{Language, Project};

/// The scenarios of the example matrix; each has a project per language under
/// `examples/<scenario>/<language>/`.
const SCENARIOS: &[&str] = &["wordcount", "stocks", "logfilter", "invindex"];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    for dir in SCENARIOS.iter().map(|s| format!("examples/{s}")).chain(
        [
            "examples/textkit",
            "guest-sdk/src",
            "guest-sdk/macros/src",
            "guest-sdk/abi/src",
            "guest-sdk/Cargo.toml",
            "guest-sdk/c",
            "guest-sdk/zig",
            "guest-sdk/assemblyscript/assembly",
            "Cargo.lock",
        ]
        .map(String::from),
    ) {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for var in [
        "WEFT_CLANG",
        "WEFT_WASI_SYSROOT",
        "WEFT_ZIG",
        "WEFT_ASC",
        "PATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    // Rust guests share one target directory of their own (the outer cargo holds the lock of the
    // main one), so the SDK is compiled once for all of them.
    let rust_target = root.join("target").join("wasm-guests");
    let mut code = String::new();
    let mut matrix = Vec::new();
    for scenario in SCENARIOS {
        for language in Language::ALL {
            let dir = root.join("examples").join(scenario).join(language.name());
            // Rust modules keep the names cargo gives them (`weft_example_wordcount.wasm`), which
            // `weft-bench --wasm-dir` expects; the others are `wordcount_zig.wasm` and so on.
            let file = match language {
                Language::Rust => format!("weft_example_{scenario}"),
                _ => format!("{scenario}_{language}"),
            };
            let path = build(&dir, &out_dir, &rust_target, &file);
            let constant = format!(
                "{}_{}",
                scenario.to_uppercase(),
                language.name().to_uppercase()
            );
            push_const(&mut code, &constant, &path);
            matrix.push(format!("({scenario:?}, {:?}, {constant})", language.name()));
        }
    }
    let textkit = build(
        &root.join("examples/textkit"),
        &out_dir,
        &rust_target,
        "weft_example_textkit",
    );
    push_const(&mut code, "TEXTKIT_RUST", &textkit);
    let wat = build_wat(&root.join("examples/wordcount/wat/wordcount.wat"), &out_dir);
    push_const(&mut code, "WORDCOUNT_WAT", &wat);
    let freestanding = build_c_freestanding(&root, &out_dir);
    push_const(&mut code, "WORDCOUNT_C_FREESTANDING", &freestanding);

    code.push_str(&format!(
        "/// Every scenario of the example matrix in every language: (scenario, language, module).\n\
         pub const MATRIX: &[(&str, &str, &str)] = &[\n    {},\n];\n",
        matrix.join(",\n    ")
    ));
    code.push_str(
        "/// Invokes `$mac!(name, PATH)` once per word-count implementation (Rust, C, Zig,\n\
         /// AssemblyScript, WAT; C also freestanding).\n\
         #[macro_export]\n\
         macro_rules! foreach_wordcount {\n    ($mac:ident) => {\n\
         \x20       $mac!(rust, $crate::WORDCOUNT_RUST);\n\
         \x20       $mac!(c, $crate::WORDCOUNT_C);\n\
         \x20       $mac!(c_freestanding, $crate::WORDCOUNT_C_FREESTANDING);\n\
         \x20       $mac!(zig, $crate::WORDCOUNT_ZIG);\n\
         \x20       $mac!(assemblyscript, $crate::WORDCOUNT_ASSEMBLYSCRIPT);\n\
         \x20       $mac!(wat, $crate::WORDCOUNT_WAT);\n    };\n}\n",
    );
    std::fs::write(out_dir.join("artifacts.rs"), code).unwrap();
}

fn push_const(code: &mut String, constant: &str, path: &Path) {
    assert!(path.exists(), "guest build produced no {}", path.display());
    code.push_str(&format!(
        "/// Path of a guest module built from source.\npub const {constant}: &str = {:?};\n",
        path.display().to_string()
    ));
}

/// Builds the project in `dir` into `$OUT_DIR/<file>.wasm`; a failure stops the build with the
/// toolchain's own message (which names what to install: `scripts/setup.sh` installs it all).
fn build(dir: &Path, out_dir: &Path, rust_target: &Path, file: &str) -> PathBuf {
    let mut project = Project::open(dir).unwrap_or_else(|e| panic!("{e}"));
    if project.language == Language::Rust {
        project.cargo_target_dir = Some(rust_target.to_owned());
    }
    let output = out_dir.join(format!("{file}.wasm"));
    if let Err(e) = project.build(&output) {
        panic!(
            "building the example {} failed (scripts/setup.sh installs every guest toolchain): {e}",
            dir.display()
        );
    }
    output
}

/// The C word count built freestanding (no wasi-libc: `weft.h` brings its own allocator and
/// memory functions, and the module imports nothing), as guest-sdk/c/README.md documents; the
/// toolchain builds C against wasi-libc, so this second way is built here.
fn build_c_freestanding(root: &Path, out_dir: &Path) -> PathBuf {
    let clang = env::var("WEFT_CLANG").unwrap_or_else(|_| {
        ["clang-14", "clang"]
            .into_iter()
            .find(|c| {
                std::process::Command::new(c)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .unwrap_or("clang-14")
            .to_owned()
    });
    let output = out_dir.join("wordcount_c_freestanding.wasm");
    let result = std::process::Command::new(&clang)
        .args([
            "--target=wasm32",
            "-nostdlib",
            "-Wl,--no-entry",
            "-mbulk-memory",
            "-O2",
            "-Wl,--strip-debug",
        ])
        .arg("-I")
        .arg(root.join("guest-sdk/c"))
        .arg("-o")
        .arg(&output)
        .arg(root.join("examples/wordcount/c/wordcount.c"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {clang} (scripts/setup.sh installs clang-14): {e}"));
    assert!(
        result.status.success(),
        "{clang} failed to build the freestanding C word count:\n{}",
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
