//! Rust guests: a cargo crate of type `cdylib` using the Rust SDK (`weft-guest`), built for
//! `wasm32-wasip1`. The SDK is a crate, not a file: a new project depends on it by path, the
//! `guest-sdk` directory of the Weft checkout this `weft` was built from (or `$WEFT_RUST_SDK`),
//! since `weft-guest` is not on crates.io.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Language, Project};

/// Variables of an enclosing cargo (a build script's, `cargo test`'s) that are not for the
/// guest's build: its flags, wrappers, target and jobserver.
const OUTER_CARGO_VARS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];

/// The Rust SDK's directory (holding `weft-guest`'s Cargo.toml).
fn sdk_dir() -> Result<PathBuf, Error> {
    let dir = match std::env::var_os("WEFT_RUST_SDK") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    };
    if dir.join("Cargo.toml").is_file() && dir.join("src").join("lib.rs").is_file() {
        // Canonical, so that the Cargo.toml of a scaffold names it plainly.
        Ok(dir.canonicalize().unwrap_or(dir))
    } else {
        Err(Error::Scaffold(format!(
            "the Rust SDK (weft-guest, not on crates.io) is not at {}: set WEFT_RUST_SDK to the \
             guest-sdk directory of a Weft checkout",
            dir.display()
        )))
    }
}

pub(crate) fn build(project: &Project, output: &Path) -> Result<(), Error> {
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    if !crate::runs(&cargo, &["--version"]) {
        return Err(Error::ToolMissing {
            tool: "cargo",
            language: Language::Rust,
            hint: "install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip1`",
        });
    }
    let manifest = project.dir.join("Cargo.toml");
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--target", "wasm32-wasip1", "--message-format=json"]);
    match &project.profile {
        Some(profile) => command.args(["--profile", profile]),
        None => command.arg("--release"),
    };
    if let Some(dir) = &project.cargo_target_dir {
        command.arg("--target-dir").arg(dir);
    }
    for var in OUTER_CARGO_VARS {
        command.env_remove(var);
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let line = format!("{command:?}").replace('"', "");
    let child = command.spawn().map_err(|e| Error::Failed {
        command: line.clone(),
        status: "could not start".into(),
        output: e.to_string(),
    })?;
    let result = child.wait_with_output().map_err(|e| Error::Failed {
        command: line.clone(),
        status: "could not wait".into(),
        output: e.to_string(),
    })?;
    if !result.status.success() {
        let mut text = String::from_utf8_lossy(&result.stderr).into_owned();
        if text.contains("wasm32-wasip1") && text.contains("target may not be installed") {
            text.push_str("\n(add the target: `rustup target add wasm32-wasip1`)");
        }
        return Err(Error::Failed {
            command: line,
            status: result.status.to_string(),
            output: text,
        });
    }
    let wasm = built_module(&result.stdout).ok_or_else(|| Error::Failed {
        command: line,
        status: "built no module".into(),
        output: format!(
            "{} made no .wasm: a guest crate needs `crate-type = [\"cdylib\"]` under [lib]",
            manifest.display()
        ),
    })?;
    std::fs::copy(&wasm, output).map_err(Error::io("cannot copy the module to", output))?;
    Ok(())
}

/// The `.wasm` a cdylib's build produced, from cargo's JSON messages (the last one: the crate
/// built last is the project's own).
fn built_module(messages: &[u8]) -> Option<PathBuf> {
    #[derive(serde::Deserialize)]
    struct Message {
        reason: String,
        #[serde(default)]
        filenames: Vec<PathBuf>,
    }
    messages
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Message>(&line).ok())
        .filter(|m| m.reason == "compiler-artifact")
        .flat_map(|m| m.filenames)
        .filter(|f| f.extension().is_some_and(|e| e == "wasm"))
        .last()
}

pub(crate) fn scaffold(name: &str) -> Result<Vec<(String, String)>, Error> {
    let sdk = sdk_dir()?;
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the .wasm module; rlib: so `cargo test` runs the unit tests natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
# The Rust SDK of Weft (not on crates.io): the guest-sdk directory of a Weft checkout.
weft-guest = {{ path = {sdk:?} }}

# A workspace of its own, so the project builds wherever it sits.
[workspace]

# What a guest wants: small and fast (no debug info, whole-program optimisation).
[profile.release]
opt-level = 3
debug = false
strip = true
lto = true
codegen-units = 1
"#,
        sdk = sdk.display().to_string()
    );
    let lib = r#"//! A Weft guest module: `words` splits lines into `(word, "1")` records and `count` adds up
//! the counts of each word. `weft udf build` builds it; `cargo test` runs the tests natively.

use weft_guest::{Decimal, Emitter, flat_map, reduce};

/// Emits `(word, "1")` for every word of a line: a maximal run of bytes other than ASCII
/// whitespace. `()` as the key says the UDF never reads it (the host then skips making keys).
#[flat_map]
pub fn words(_key: (), line: &[u8], out: &mut Emitter) {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    for word in line.split(space).filter(|w| !w.is_empty()) {
        out.emit(word, b"1");
    }
}

/// Adds two decimal counts (the SDK parses and formats them); an overflow is the job's error.
#[reduce]
pub fn count(a: Decimal<u64>, b: Decimal<u64>) -> Result<Decimal<u64>, String> {
    a.0.checked_add(b.0)
        .map(Decimal)
        .ok_or_else(|| format!("the count {} + {} overflows a u64", a.0, b.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_whitespace() {
        let mut out = Emitter::new();
        words((), b" to be\tor  not ", &mut out);
        let words: Vec<&[u8]> = out.iter().map(|(w, _)| w).collect();
        assert_eq!(words, [&b"to"[..], b"be", b"or", b"not"]);
    }

    #[test]
    fn count_adds() {
        assert_eq!(count(Decimal(2), Decimal(40)), Ok(Decimal(42)));
        assert!(count(Decimal(u64::MAX), Decimal(1)).is_err());
    }
}
"#;
    Ok(vec![
        ("Cargo.toml".to_owned(), cargo),
        ("src/lib.rs".to_owned(), lib.to_owned()),
    ])
}
