//! `weft module …`: register, list, show and remove modules in the local registry.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Subcommand;
use weft_host::{Engine, ValidationLimits};
use weft_scheduler::Tenant;
use weft_scheduler::registry::{ModuleEntry, ModuleRef};

use super::{open_registry, print_json};
use crate::Globals;

#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    /// Validate a .wasm file and store it; prints its id (blake3:<hex>).
    Register {
        /// The WebAssembly module (see guest-sdk/ABI.md).
        file: PathBuf,
        /// Name to register it under; new bytes under an existing name make a new version.
        #[arg(long)]
        name: String,
        /// Tag this version (repeatable); `NAME@TAG` then resolves to it.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
    /// List every registered module version.
    List,
    /// Show a module (NAME, NAME@VERSION, NAME@TAG or blake3:ID) and its UDFs.
    Show {
        #[arg(value_name = "NAME|ID")]
        module: String,
    },
    /// Remove a module: NAME removes every version, NAME@VERSION one, blake3:ID every version
    /// pointing at those bytes.
    #[command(alias = "remove")]
    Rm {
        #[arg(value_name = "NAME|ID")]
        module: String,
    },
}

pub fn run(globals: &Globals, command: ModuleCommand) -> Result<()> {
    let tenant = Tenant::default();
    match command {
        ModuleCommand::Register { file, name, tags } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            // Validate before opening the registry, so a refused module leaves no trace at all.
            let engine = Engine::new().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let module = engine
                .validate(&bytes, &ValidationLimits::default())
                .with_context(|| format!("{} was refused", file.display()))?;
            let registry = open_registry(globals)?;
            let registration = registry.register(&tenant, &name, &module, &tags)?;
            if globals.json {
                print_json(&registration)?;
            } else {
                println!("{}", registration.id);
                let what = match (registration.new_version, registration.stored_blob) {
                    (false, _) => "already registered; nothing changed".to_owned(),
                    (true, true) => "stored".to_owned(),
                    (true, false) => "bytes already stored; new version recorded".to_owned(),
                };
                eprintln!(
                    "{} version {}: {what}",
                    registration.name, registration.version
                );
            }
        }
        ModuleCommand::List => {
            let entries = open_registry(globals)?.list(&tenant)?;
            if globals.json {
                print_json(&entries)?;
            } else if entries.is_empty() {
                eprintln!("no modules registered in {}", globals.data_dir.display());
            } else {
                println!(
                    "{:<24} {:>4}  {:<20} {:>9}  {:<20}  UDFS",
                    "NAME", "VER", "ID", "SIZE", "REGISTERED"
                );
                for e in &entries {
                    let v = &e.version;
                    let mut name = v.name.clone();
                    if !v.tags.is_empty() {
                        name = format!("{name} [{}]", v.tags.join(","));
                    }
                    let udfs: Vec<String> = e
                        .module
                        .udfs
                        .iter()
                        .map(|u| format!("{}:{}", u.kind, u.name))
                        .collect();
                    println!(
                        "{:<24} {:>4}  {:<20} {:>9}  {:<20}  {}",
                        name,
                        v.version,
                        short_id(&v.id.to_string()),
                        e.module.size,
                        time(v.registered_ms),
                        udfs.join(" ")
                    );
                }
            }
        }
        ModuleCommand::Show { module } => {
            let registry = open_registry(globals)?;
            let entry = registry.resolve(&tenant, &module)?;
            let versions = registry.versions_of(&tenant, &entry.version.name)?;
            if globals.json {
                print_json(&serde_json::json!({
                    "module": entry,
                    "versions": versions,
                }))?;
            } else {
                show(&entry, &versions);
            }
        }
        ModuleCommand::Rm { module } => {
            // Parse first so a malformed reference is named as such, not as "not found".
            ModuleRef::parse(&module)?;
            let removal = open_registry(globals)?.remove(&tenant, &module)?;
            if globals.json {
                print_json(&removal)?;
            } else {
                for v in &removal.versions {
                    println!("removed {}@{} ({})", v.name, v.version, v.id);
                }
                for id in &removal.deleted_blobs {
                    println!("deleted {id}: no version refers to it any more");
                }
            }
        }
    }
    Ok(())
}

fn show(entry: &ModuleEntry, versions: &[weft_scheduler::registry::VersionRecord]) {
    let (v, m) = (&entry.version, &entry.module);
    println!("name:        {}", v.name);
    println!("version:     {}", v.version);
    println!("id:          {}", v.id);
    if !v.tags.is_empty() {
        println!("tags:        {}", v.tags.join(", "));
    }
    println!("size:        {} bytes", m.size);
    println!("abi version: {}", m.abi_version);
    println!("registered:  {}", time(v.registered_ms));
    let imports = if m.wasi_imports.is_empty() {
        "none".to_owned()
    } else {
        m.wasi_imports.join(", ")
    };
    println!("wasi:        {imports}");
    println!("udfs:");
    for u in &m.udfs {
        println!("  {:<14} {}", u.kind, u.name);
    }
    if versions.len() > 1 {
        println!("versions:");
        for other in versions {
            let marker = if other.version == v.version { "*" } else { " " };
            println!(
                "  {marker}{:>3}  {}  {}",
                other.version,
                other.id,
                time(other.registered_ms)
            );
        }
    }
}

fn short_id(id: &str) -> String {
    id.chars().take(19).collect()
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
