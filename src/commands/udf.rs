//! `weft udf …`: a UDF author's loop on one machine. `new` scaffolds a guest project in Rust, C,
//! Zig or AssemblyScript that builds as it is; `build` builds one with its language's toolchain and
//! the flags Weft needs (both through `weft-toolchain`, the one way guests are built, the examples'
//! included); `test` runs one function of a module over sample records in the sandbox, and under
//! the limits, a worker gives a task, and prints what it returned — or its error, trap and stderr.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use weft_host::{
    Engine, Groups, GuestInstance, GuestModule, Records, UdfInfo, UdfKind, ValidatedModule,
    ValidationLimits,
};
use weft_io::{InputFormat, InputSplit, SplitReader};
use weft_task::TaskLimits;
use weft_toolchain::{Language, Project};

use crate::{Globals, Reported};

#[derive(Debug, Subcommand)]
pub enum UdfCommand {
    /// Scaffold a guest project that builds as it is: the UDFs `words` (flat_map) and `count`
    /// (reduce), a udf.toml, a sample input and a job file.
    New {
        /// The project's and module's name (ASCII letters, digits, `_`, `-`).
        name: String,
        /// rust, c, zig or assemblyscript.
        #[arg(long, value_name = "LANG", value_parser = parse_language)]
        lang: Language,
        /// Where to create it (a new or empty directory). Default: ./NAME.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Build a guest project (a directory with a udf.toml) into a .wasm module with its
    /// language's toolchain; prints the module's path.
    Build {
        /// The project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the module. Default: DIR/target/NAME.wasm.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Run one function of a module over records of a sample file, in the sandbox and limits of
    /// a worker, and print its output as `key<TAB>value` lines. A failing UDF's error, trap and
    /// stderr are shown, and the exit status is 1.
    Test {
        /// The WebAssembly module (it is validated as registration would).
        module: PathBuf,
        /// The UDF's name (`split_words`, not `weft_flat_map_split_words`).
        function: String,
        /// The sample records: a file read as a job reads its input.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// How to read it: text, csv (with a header), jsonl, or kv (`key<TAB>value` lines, as
        /// Weft's text output writes them: to feed a reduce). Default: by the extension (.csv,
        /// .jsonl, .ndjson; else text), or kv for a reduce or group_reduce.
        #[arg(long, value_enum)]
        format: Option<TestFormat>,
        /// Read at most this many records.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        limit: usize,
    },
}

/// How `weft udf test` reads its sample records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    Text,
    Csv,
    Jsonl,
    Kv,
}

fn parse_language(s: &str) -> Result<Language, String> {
    s.parse().map_err(|e: weft_toolchain::Error| e.to_string())
}

pub fn run(globals: &Globals, command: UdfCommand) -> Result<()> {
    match command {
        UdfCommand::New { name, lang, dir } => new(globals, &name, lang, dir),
        UdfCommand::Build { dir, output } => build(globals, &dir, output),
        UdfCommand::Test {
            module,
            function,
            input,
            format,
            limit,
        } => test(globals, &module, &function, &input, format, limit),
    }
}

fn new(globals: &Globals, name: &str, language: Language, dir: Option<PathBuf>) -> Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = weft_toolchain::scaffold(&dir, name, language)?;
    if globals.json {
        return super::print_json(&serde_json::json!({
            "dir": dir,
            "language": language.name(),
            "files": files,
        }));
    }
    outln!("created {} ({language}):", dir.display())?;
    for file in &files {
        outln!("  {}", file.display())?;
    }
    let shown = dir.display();
    outln!("next:")?;
    outln!("  weft udf build {shown}")?;
    outln!("  weft udf test {shown}/target/{name}.wasm words --input {shown}/sample.txt")?;
    outln!("  weft module register {shown}/target/{name}.wasm --name {name}")?;
    outln!("  weft run {shown}/job.toml --output {shown}/out")?;
    Ok(())
}

fn build(globals: &Globals, dir: &Path, output: Option<PathBuf>) -> Result<()> {
    let project = Project::open(dir)?;
    let output = output.unwrap_or_else(|| project.default_output());
    let started = Instant::now();
    if !globals.json {
        eprintln!(
            "building {} ({}) in {}",
            project.name,
            project.language,
            dir.display()
        );
    }
    project
        .build(&output)
        .with_context(|| format!("building {} failed", dir.display()))?;
    let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    if globals.json {
        return super::print_json(&serde_json::json!({
            "module": output,
            "language": project.language.name(),
            "bytes": size,
        }));
    }
    eprintln!(
        "built {} bytes in {:.1} s",
        size,
        started.elapsed().as_secs_f64()
    );
    outln!("{}", output.display())
}

fn test(
    globals: &Globals,
    module_path: &Path,
    function: &str,
    input: &Path,
    format: Option<TestFormat>,
    limit: usize,
) -> Result<()> {
    let bytes = std::fs::read(module_path)
        .with_context(|| format!("cannot read {}", module_path.display()))?;
    let engine = Engine::new().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    if let Some(warning) = super::pool_warning(&engine) {
        eprintln!("warning: {warning}");
    }
    let validated = ValidatedModule::new(&engine, &bytes, &ValidationLimits::default())
        .with_context(|| format!("{} was refused", module_path.display()))?;
    let Some(udf) = validated.info().udf(function).cloned() else {
        let names: Vec<String> = validated
            .info()
            .udfs
            .iter()
            .map(|u| format!("{} ({})", u.name, u.kind))
            .collect();
        bail!(
            "{} has no UDF named `{function}`; it has: {}",
            module_path.display(),
            names.join(", ")
        );
    };
    let module = GuestModule::new(&engine, &bytes)
        .with_context(|| format!("cannot compile {}", module_path.display()))?;

    let grouped = matches!(udf.kind, UdfKind::Reduce | UdfKind::GroupReduce);
    let format = format.unwrap_or_else(|| default_format(input, grouped));
    let records = read_records(input, format, limit, !udf.key_unused)?;

    // What a worker gives a task: its sandbox limits, its stack, its task deadline.
    let limits = TaskLimits::default();
    let mut instance = module
        .instantiate(&weft_worker::sandbox_limits(limits))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    instance.set_task_deadline(Instant::now() + limits.max_task_time, limits.max_task_time);

    let started = Instant::now();
    let outcome = call(&mut instance, &udf, &records);
    let elapsed = started.elapsed();
    let stdout = instance.stdout();
    let stderr = instance.stderr();
    let shown = match outcome {
        Ok(output) => output,
        Err(error) => {
            eprintln!(
                "error: {} `{function}` of {} over {} record{} of {}: {error}",
                udf.kind,
                module_path.display(),
                records.len(),
                plural(records.len()),
                input.display()
            );
            show_guest_output(&stdout, &stderr);
            return Err(Reported.into());
        }
    };
    if globals.json {
        let records: Vec<serde_json::Value> = shown
            .iter()
            .map(|(k, v)| {
                serde_json::json!({
                    "key": String::from_utf8_lossy(k),
                    "value": String::from_utf8_lossy(v),
                })
            })
            .collect();
        super::print_json(&serde_json::json!({
            "udf": function,
            "kind": udf.kind.to_string(),
            "input_records": records.len(),
            "output": records,
            "stdout": String::from_utf8_lossy(&stdout),
            "stderr": String::from_utf8_lossy(&stderr),
        }))?;
    } else {
        let mut out = Vec::new();
        for (key, value) in &shown {
            out.extend_from_slice(key);
            out.push(b'\t');
            out.extend_from_slice(value);
            out.push(b'\n');
        }
        write_raw(&out)?;
        eprintln!(
            "{} `{function}`: {} record{} in, {} out, in {:.1} ms",
            udf.kind,
            records.len(),
            plural(records.len()),
            shown.len(),
            elapsed.as_secs_f64() * 1e3
        );
        show_guest_output(&stdout, &stderr);
    }
    Ok(())
}

/// Records as owned `(key, value)` pairs.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The most bytes of records `weft udf test` reads: a batch crosses the ABI with 32-bit offsets,
/// and a sample this big is a job, not a try.
const MAX_SAMPLE_BYTES: usize = 512 << 20;

/// The format a sample is read in unless `--format` says.
fn default_format(input: &Path, grouped: bool) -> TestFormat {
    match input.extension().and_then(|e| e.to_str()) {
        Some("csv") => TestFormat::Csv,
        Some("jsonl" | "ndjson") => TestFormat::Jsonl,
        _ if grouped => TestFormat::Kv,
        _ => TestFormat::Text,
    }
}

/// Up to `limit` records of `input`, read as a job's input is (`PATH:OFFSET` keys unless the UDF
/// states it ignores them), or as `key<TAB>value` lines.
fn read_records(input: &Path, format: TestFormat, limit: usize, keys: bool) -> Result<Records> {
    let reader_format = match format {
        TestFormat::Text | TestFormat::Kv => InputFormat::Text,
        TestFormat::Csv => InputFormat::CSV,
        TestFormat::Jsonl => InputFormat::Jsonl,
    };
    let size = std::fs::metadata(input)
        .with_context(|| format!("cannot read {}", input.display()))?
        .len();
    let split = InputSplit {
        path: input.to_owned(),
        start: 0,
        length: size,
    };
    let mut reader = SplitReader::open(&split, reader_format)?.with_keys(keys);
    let mut pairs: Pairs = Vec::new();
    let mut bytes = 0usize;
    while pairs.len() < limit {
        let Some(batch) = reader.next_batch()? else {
            break;
        };
        for (key, value) in batch.iter().take(limit - pairs.len()) {
            bytes += key.len() + value.len();
            if bytes > MAX_SAMPLE_BYTES {
                bail!(
                    "the first {} records of {} hold over {} MiB: a sample is for trying a UDF \
                     (pass a smaller --limit, or run a job)",
                    pairs.len() + 1,
                    input.display(),
                    MAX_SAMPLE_BYTES >> 20
                );
            }
            pairs.push(match format {
                TestFormat::Kv => {
                    let line = value.strip_suffix(b"\r").unwrap_or(value);
                    match line.iter().position(|&b| b == b'\t') {
                        Some(tab) => (line[..tab].to_vec(), line[tab + 1..].to_vec()),
                        None => (line.to_vec(), Vec::new()),
                    }
                }
                _ => (key.to_vec(), value.to_vec()),
            });
        }
    }
    Ok(Records::from_pairs(pairs))
}

/// Calls the UDF once over every record (grouped by key for the grouped kinds) and returns what it
/// gave: records, the kept records of a filter, `(key, value)` per group of a reduce.
fn call(
    instance: &mut GuestInstance,
    udf: &UdfInfo,
    records: &Records,
) -> Result<Pairs, weft_host::CallError> {
    let name = udf.name.as_str();
    Ok(match udf.kind {
        UdfKind::Map => instance.map(name, records)?.to_pairs(),
        UdfKind::FlatMap => instance.flat_map(name, records)?.to_pairs(),
        UdfKind::Filter => {
            let keep = instance.filter(name, records)?;
            records
                .iter()
                .zip(keep.iter())
                .filter(|(_, keep)| keep.unwrap_or(false))
                .map(|((k, v), _)| (k.to_vec(), v.to_vec()))
                .collect()
        }
        UdfKind::Reduce | UdfKind::GroupReduce => {
            let mut by_key: BTreeMap<&[u8], Vec<&[u8]>> = BTreeMap::new();
            for (key, value) in records.iter() {
                by_key.entry(key).or_default().push(value);
            }
            let keys: Vec<Vec<u8>> = by_key.keys().map(|k| k.to_vec()).collect();
            let groups = Groups::from_groups(by_key);
            if udf.kind == UdfKind::Reduce {
                let values = instance.reduce(name, &groups)?;
                keys.into_iter()
                    .zip(values.iter())
                    .map(|(k, v)| (k, v.unwrap_or_default().to_vec()))
                    .collect()
            } else {
                instance.group_reduce(name, &groups)?.to_pairs()
            }
        }
    })
}

/// What the guest printed, on stderr, each stream under a heading.
fn show_guest_output(stdout: &[u8], stderr: &[u8]) {
    for (name, bytes) in [("stdout", stdout), ("stderr", stderr)] {
        if bytes.is_empty() {
            continue;
        }
        eprintln!("--- guest {name} ---");
        let _ = std::io::stderr().write_all(bytes);
        if !bytes.ends_with(b"\n") {
            eprintln!();
        }
    }
}

/// Writes bytes (records need not be UTF-8) to stdout.
fn write_raw(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(crate::StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
