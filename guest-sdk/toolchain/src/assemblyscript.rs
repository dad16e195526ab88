//! AssemblyScript guests: the entry file compiled by `asc` (npm's `assemblyscript`) against the
//! SDK in `guest-sdk/assemblyscript`, which a build writes as the package `weft-guest` under
//! `target/weft-sdk/` and hands to asc with `--path`: the user's code imports it by name
//! (`import { ... } from "weft-guest"`), and the SDK's `exports.ts` (`weft_alloc`, `weft_free`,
//! `weft_abi_version`) is compiled as a second entry file, so its exports are the module's.
//!
//! The flags are what the ABI needs of an AssemblyScript module: the `minimal` runtime (the SDK
//! runs its collector at the start of every call, never while the host may read an output), the
//! start function exported as the WASI reactor's `_initialize`, and `abort` routed to the SDK's
//! handler (a message on stderr, then a trap) instead of the `env.abort` import the host refuses.
//! No runtime helpers are exported and no debug information is emitted.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Language, Project};

/// The SDK's files, embedded: the package `weft-guest` as asc resolves it under `--path`.
pub(crate) const SDK: &[(&str, &str)] = &[
    (
        "weft-guest/index.ts",
        include_str!("../../assemblyscript/assembly/index.ts"),
    ),
    (
        "weft-guest/exports.ts",
        include_str!("../../assemblyscript/assembly/exports.ts"),
    ),
    (
        "weft-guest/abort.ts",
        include_str!("../../assemblyscript/assembly/abort.ts"),
    ),
];

/// The version of the compiler the SDK is written for and a scaffold pins; the same as
/// `guest-sdk/assemblyscript/package.json`.
const ASSEMBLYSCRIPT_VERSION: &str = "0.28.20";

const HINT: &str = "install Node.js with npm, then `npm ci --prefix guest-sdk/assemblyscript` in \
                    the Weft checkout (or `npm install` in a project whose package.json has \
                    assemblyscript as a devDependency), or set WEFT_ASC to an asc executable";

/// What asc is given besides the entry files: speed first (`-O3`, re-optimised until it stops
/// shrinking), no assertions, and the runtime, start and abort the ABI needs (see the module doc).
const FLAGS: &[&str] = &[
    "--runtime",
    "minimal",
    "--exportStart",
    "_initialize",
    "--use",
    "abort=~lib/weft-guest/abort/abort",
    "-O3",
    "--converge",
    "--noAssert",
    "--noColors",
];

pub(crate) fn build(project: &Project, sdk_dir: &Path, output: &Path) -> Result<(), Error> {
    let source = project.source_path().ok_or_else(|| Error::Manifest {
        path: project.dir.join(crate::MANIFEST),
        message: "an assemblyscript project names its entry file: source = \"...\"".into(),
    })?;
    let asc = find_asc(&project.dir)?;
    // asc runs in the project directory, so that packages the project installed resolve from its
    // node_modules and messages name files as the user sees them; every path is made absolute.
    let absolute =
        |path: &Path| std::path::absolute(path).map_err(Error::io("cannot resolve", path));
    let sdk_dir = absolute(sdk_dir)?;
    let mut command = Command::new(&asc);
    command
        .current_dir(&project.dir)
        .arg(absolute(&source)?)
        .arg(sdk_dir.join("weft-guest").join("exports.ts"))
        .arg("--path")
        .arg(&sdk_dir)
        .arg("--outFile")
        .arg(absolute(output)?)
        .args(FLAGS);
    crate::run(&mut command)
}

/// The asc to build with: `$WEFT_ASC`, the project's own, the one installed beside the SDK in the
/// Weft checkout, or one on PATH; failing those, a project with a package.json gets its
/// dependencies installed (a scaffold's pins assemblyscript).
fn find_asc(project_dir: &Path) -> Result<PathBuf, Error> {
    if let Some(asc) = std::env::var_os("WEFT_ASC") {
        let asc = PathBuf::from(asc);
        return if asc.is_file() || crate::runs(&asc, &["--version"]) {
            Ok(asc)
        } else {
            Err(missing("WEFT_ASC does not name an asc executable"))
        };
    }
    let local = project_dir.join("node_modules").join(".bin").join(ASC);
    let beside_sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("assemblyscript")
        .join("node_modules")
        .join(".bin")
        .join(ASC);
    if let Some(asc) = [&local, &beside_sdk].into_iter().find(|p| p.is_file()) {
        return Ok(asc.clone());
    }
    if let Some(asc) = crate::on_path(&[ASC]) {
        return Ok(asc);
    }
    if project_dir.join("package.json").is_file() {
        let npm = crate::on_path(&[NPM]).ok_or_else(|| missing(HINT))?;
        crate::run(Command::new(npm).current_dir(project_dir).args([
            "install",
            "--no-audit",
            "--no-fund",
        ]))?;
        if local.is_file() {
            return Ok(local);
        }
    }
    Err(missing(HINT))
}

/// The name of the asc and npm launchers: npm writes `.cmd` shims on Windows.
const ASC: &str = if cfg!(windows) { "asc.cmd" } else { "asc" };
const NPM: &str = if cfg!(windows) { "npm.cmd" } else { "npm" };

fn missing(hint: &'static str) -> Error {
    Error::ToolMissing {
        tool: "asc (AssemblyScript)",
        language: Language::AssemblyScript,
        hint,
    }
}

pub(crate) fn scaffold(name: &str) -> Vec<(String, String)> {
    // npm wants a lower-case package name; the module's name is udf.toml's.
    let package = format!(
        r#"{{
  "name": "{package}",
  "version": "0.1.0",
  "description": "A Weft guest module in AssemblyScript: `weft udf build` builds it into target/{name}.wasm",
  "private": true,
  "devDependencies": {{
    "assemblyscript": "{ASSEMBLYSCRIPT_VERSION}"
  }}
}}
"#,
        package = name.to_ascii_lowercase().replace('_', "-"),
    );
    // For editors only: asc itself gets the SDK with --path when `weft udf build` runs (which
    // writes target/weft-sdk/ first).
    let tsconfig = r#"{
  "extends": "../node_modules/assemblyscript/std/assembly.json",
  "compilerOptions": {
    "paths": { "weft-guest": ["../target/weft-sdk/weft-guest/index.ts"] }
  },
  "include": ["./**/*.ts"]
}
"#;
    let source = r#"// A Weft guest module in AssemblyScript: `words` splits lines into `(word, "1")` records and
// `count` adds up the counts of each word. `weft udf build` compiles it with asc against the
// Weft SDK (the package "weft-guest", see guest-sdk/assemblyscript/README.md).
//
// A UDF is an exported function `weft_<kind>_<name>(frame: usize): i32` that hands the call to
// the SDK's driver for its kind, with the function that does the work.

import { Bytes, DECIMAL, Emitter, Reducer, fail, flatMap } from "weft-guest";

/** Whether `byte` is ASCII whitespace: space, `\t`, `\n`, `\v`, `\f` or `\r`. */
function isSpace(byte: u8): bool {
  return byte == 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/** Emits `(word, "1")` for every word of a line: a maximal run of bytes other than ASCII
 *  whitespace. `line` is a view of the input, valid while the function runs; `emitSlice` copies
 *  the word out of it without allocating anything per word. */
function words(key: Bytes, line: Bytes, out: Emitter): void {
  let i = 0;
  while (i < line.length) {
    while (i < line.length && isSpace(line[i])) i++;
    const start = i;
    while (i < line.length && !isSpace(line[i])) i++;
    if (i > start) out.emitSlice(line, start, i, "1");
  }
}

/** Adds two counts (the SDK's DECIMAL codec parses and formats them); an overflow fails the job
 *  with this message. */
function add(a: u64, b: u64): u64 {
  const total = a + b;
  if (total < a) fail("the count " + a.toString() + " + " + b.toString() + " overflows a u64");
  return total;
}

const count = new Reducer<u64>(DECIMAL, add);

export function weft_flat_map_words(frame: usize): i32 {
  return flatMap(frame, words);
}

export function weft_reduce_count(frame: usize): i32 {
  return count.reduce(frame);
}

/** The combiner of `count` (ABI.md §3a): map tasks add up counts inside the module. */
export function weft_combine_count(frame: usize, op: i32): i32 {
  return count.combine(frame, op);
}
"#;
    vec![
        ("package.json".to_owned(), package),
        ("assembly/tsconfig.json".to_owned(), tsconfig.to_owned()),
        (format!("assembly/{name}.ts"), source.to_owned()),
    ]
}
