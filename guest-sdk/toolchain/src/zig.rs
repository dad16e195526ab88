//! Zig guests: one entry file that imports the SDK as the module `weft` (`guest-sdk/zig/weft.zig`)
//! and registers its UDFs in a `comptime` block; `zig build-exe` makes it a WASI reactor without
//! an entry point (wasm32-wasi, so `std.debug.print` reaches the task's logs).
//!
//! The SDK is written for Zig 0.14.1 (the language and its std change between minor versions).
//! The compiler is `$WEFT_ZIG`, else a `zig` 0.14 on `PATH`, else the one PyPI's `ziglang` package
//! installs (`python3 -m pip install ziglang==0.14.1`, run as `python3 -m ziglang`), else any zig
//! that runs (a build that fails with it then says which version it is).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Language, Project};

/// The SDK's files, embedded: (path under the SDK directory target/weft-sdk/, contents).
pub(crate) const SDK: &[(&str, &str)] = &[("weft.zig", include_str!("../../zig/weft.zig"))];

/// The Zig version the SDK is written for and tested with.
const ZIG_VERSION: &str = "0.14.1";

/// A zig of another minor version most likely fails on the SDK: preferred are those of this one.
const ZIG_MINOR: &str = "0.14.";

const INSTALL_HINT: &str = "install Zig 0.14.1 with `python3 -m pip install ziglang==0.14.1` (or put a \
     zig 0.14.1 on PATH, or set WEFT_ZIG to one)";

/// Linear-memory stack of a Zig guest: 1 MiB, as Rust's wasm targets (Zig's default for wasi is
/// 16 MiB, all of it in the module's initial memory).
const STACK_BYTES: &str = "1048576";

/// How to run the compiler: a program, and the arguments that come before zig's own.
#[derive(Debug)]
struct Zig {
    program: PathBuf,
    prefix: &'static [&'static str],
    /// What `zig version` printed.
    version: String,
}

impl Zig {
    /// `program prefix... version`, if it runs and succeeds.
    fn probe(program: PathBuf, prefix: &'static [&'static str]) -> Option<Zig> {
        let output = Command::new(&program)
            .args(prefix)
            .arg("version")
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Some(Zig {
            program,
            prefix,
            version,
        })
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(self.prefix);
        command
    }

    fn is_supported(&self) -> bool {
        self.version.starts_with(ZIG_MINOR)
    }
}

/// Finds the compiler: `$WEFT_ZIG` if set (whatever its version), else the first zig 0.14 of
/// `zig` on PATH and `python3 -m ziglang`, else the first of those that runs.
fn find_zig() -> Result<Zig, Error> {
    if let Some(path) = std::env::var_os("WEFT_ZIG") {
        return Zig::probe(PathBuf::from(&path), &[]).ok_or(Error::ToolMissing {
            tool: "zig (WEFT_ZIG)",
            language: Language::Zig,
            hint: "WEFT_ZIG names a program that does not run `zig version`: point it at a zig \
                   0.14.1 binary, or unset it",
        });
    }
    let on_path = crate::on_path(&["zig"]).and_then(|zig| Zig::probe(zig, &[]));
    let mut found = None;
    for candidate in [on_path, pip_zig()].into_iter().flatten() {
        if candidate.is_supported() {
            return Ok(candidate);
        }
        found.get_or_insert(candidate);
    }
    found.ok_or(Error::ToolMissing {
        tool: "zig",
        language: Language::Zig,
        hint: INSTALL_HINT,
    })
}

/// The zig of PyPI's `ziglang` package, run through the Python that installed it.
fn pip_zig() -> Option<Zig> {
    let python = crate::on_path(&["python3", "python"])?;
    Zig::probe(python, &["-m", "ziglang"])
}

/// Builds `project` into `output`: `zig build-exe` for wasm32-wasi, optimised for speed, without
/// debug info or an entry point, every `export` kept (`-rdynamic`: the SDK's `@export`s are the
/// module's exports), the SDK passed as the module `weft`.
pub(crate) fn build(project: &Project, sdk_dir: &Path, output: &Path) -> Result<(), Error> {
    let source = project.source_path().ok_or_else(|| Error::Manifest {
        path: project.dir.join(crate::MANIFEST),
        message: "a zig project names its entry file: source = \"...\"".into(),
    })?;
    let zig = find_zig()?;
    let cache = project.dir.join("target").join("zig-cache");
    let mut command = zig.command();
    command
        .args(["build-exe", "-target", "wasm32-wasi", "-O", "ReleaseFast"])
        // No debug info, no name section: the module is what registration stores and ships.
        .arg("-fstrip")
        .args(["-fno-entry", "-rdynamic"])
        .args(["--stack", STACK_BYTES])
        // WebAssembly 2.0 (ABI.md §1): Zig's generic wasm CPU less extended-const (not in 2.0),
        // plus SIMD (in 2.0), which Zig's std uses for searches such as `indexOfScalar`.
        .arg("-mcpu=generic-extended_const+simd128")
        .args(["--dep", "weft"])
        .arg(flag("-Mroot=", &source))
        .arg(flag("-Mweft=", &sdk_dir.join("weft.zig")))
        .arg(flag("-femit-bin=", output))
        .arg("--cache-dir")
        .arg(&cache);
    let built = crate::run(&mut command);
    // Zig leaves the linker's input object beside the module.
    let mut object = output.as_os_str().to_owned();
    object.push(".o");
    let _ = std::fs::remove_file(PathBuf::from(object));
    built.map_err(|error| match error {
        Error::Failed {
            command,
            status,
            mut output,
        } if !zig.is_supported() => {
            output.push_str(&format!(
                "\n(the Zig SDK is written for Zig {ZIG_VERSION}, and {} is Zig {}: {INSTALL_HINT})",
                zig.program.display(),
                zig.version
            ));
            Error::Failed {
                command,
                status,
                output,
            }
        }
        other => other,
    })
}

/// `name` followed by a path, as one argument (zig's `-Mname=path`, `-femit-bin=path`).
fn flag(name: &str, path: &Path) -> OsString {
    let mut flag = OsString::from(name);
    flag.push(path.as_os_str());
    flag
}

/// The files of a new project `name`: `NAME.zig`, with the sample job's `words` and `count`.
pub(crate) fn scaffold(name: &str) -> Vec<(String, String)> {
    let source = format!(
        r#"//! The `{name}` Weft module: `words` splits lines into `(word, "1")` records and `count`
//! adds the counts of each word. Build it with `weft udf build` (into target/{name}.wasm); the
//! Zig SDK's API is documented at the top of target/weft-sdk/weft.zig once built.

const std = @import("std");
const weft = @import("weft");
const Bytes = weft.Bytes;

// Each line exports one UDF: weft_flat_map_words, and weft_reduce_count with its combiner.
comptime {{
    weft.flatMap("words", words);
    weft.reduce("count", count);
}}

/// Emits `(word, "1")` for each word of the line: a run of bytes other than ASCII whitespace.
/// The key (where the line is) is not read: `void` says so.
fn words(_: void, line: Bytes, out: *weft.Emitter) !void {{
    var it = std.mem.tokenizeAny(u8, line, " \t\n\r\x0b\x0c");
    while (it.next()) |word| try out.emit(word, "1");
}}

/// Adds two counts. The values are decimal integers, which the SDK parses and prints; the map
/// side folds them inside the module before they leave it.
fn count(a: u64, b: u64) !u64 {{
    return std.math.add(u64, a, b) catch weft.fail("the count {{d}} + {{d}} overflows a u64", .{{ a, b }});
}}
"#
    );
    vec![(format!("{name}.zig"), source)]
}
