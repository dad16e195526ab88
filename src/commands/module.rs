//! `weft module …`: register, list, show and remove modules, in the local registry or, with
//! `--scheduler URL`, in a cluster scheduler's. Both give the same domain types, printed alike.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Subcommand;
use weft_host::{Engine, ValidatedModule, ValidationLimits};
use weft_scheduler::Tenant;
use weft_scheduler::client::RegistryClient;
use weft_scheduler::registry::{
    ModuleEntry, ModuleRef, Registration, Removal, UdfRecord, VersionRecord,
};
use weft_task::link::Link;

use super::{open_registry, print_json, read_registry};
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
    /// pointing at those bytes. Removing more than one version asks first on a terminal, and
    /// needs --yes elsewhere.
    #[command(alias = "remove")]
    Rm {
        #[arg(value_name = "NAME|ID")]
        module: String,
        /// Remove without asking, whatever the reference covers.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// What a module command did, whichever registry did it: printing depends on nothing else.
enum Outcome {
    /// The registration, and the version it made or found (its UDFs are printed).
    Registered(Registration, ModuleEntry),
    Listed(Vec<ModuleEntry>),
    Shown(ModuleEntry, Vec<VersionRecord>),
    Removed(Removal),
}

pub fn run(globals: &Globals, command: ModuleCommand) -> Result<()> {
    let tenant = Tenant::default();
    if let ModuleCommand::Rm { module, yes: false } = &command {
        confirm_removal(module)?;
    }
    let (outcome, location) = match &globals.scheduler {
        Some(url) => (
            remote(url, super::client_link(globals)?, &tenant, command)?,
            format!("at {url}"),
        ),
        None => (
            local(globals, &tenant, command)?,
            format!("in {}", globals.data_dir.display()),
        ),
    };
    print(globals, &outcome, &location)
}

/// Checks a removal that may take more than one version (`NAME`, `NAME@TAG` is one, `blake3:ID`
/// every version with those bytes): on a terminal the user says yes; elsewhere `--yes` is needed.
/// A malformed reference is named as such here, before any registry is opened.
fn confirm_removal(module: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let what = match ModuleRef::parse(module)? {
        ModuleRef::Version(..) | ModuleRef::Tag(..) => return Ok(()),
        ModuleRef::Latest(name) => format!("every version of module {name}"),
        ModuleRef::Id(id) => format!("every module version with id {id}"),
    };
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        anyhow::bail!(
            "`module rm {module}` removes {what}: pass --yes to confirm, or name one version \
             (NAME@VERSION)"
        );
    }
    eprint!("remove {what}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    match answer.trim() {
        "y" | "Y" | "yes" | "Yes" | "YES" => Ok(()),
        _ => Err(anyhow::anyhow!("nothing removed")),
    }
}

/// The command on the registry in the local data directory.
fn local(globals: &Globals, tenant: &Tenant, command: ModuleCommand) -> Result<Outcome> {
    Ok(match command {
        ModuleCommand::Register { file, name, tags } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            // Validate before opening the registry, so a refused module leaves no trace at all.
            let engine = Engine::new().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let module = ValidatedModule::new(&engine, &bytes, &ValidationLimits::default())
                .with_context(|| format!("{} was refused", file.display()))?;
            let registry = open_registry(globals)?;
            let registration = registry.register(tenant, &name, &module, &tags)?;
            let entry = registry.resolve(tenant, &version_ref(&registration))?;
            Outcome::Registered(registration, entry)
        }
        ModuleCommand::List => Outcome::Listed(read_registry(globals)?.list(tenant)?),
        ModuleCommand::Show { module } => {
            let registry = read_registry(globals)?;
            let entry = registry.resolve(tenant, &module)?;
            let versions = registry.versions_of(tenant, &entry.version.name)?;
            Outcome::Shown(entry, versions)
        }
        ModuleCommand::Rm { module, .. } => {
            Outcome::Removed(read_registry(globals)?.remove(tenant, &module)?)
        }
    })
}

/// The command on the registry of the scheduler at `url`; the scheduler validates uploads.
fn remote(url: &str, link: Link, tenant: &Tenant, command: ModuleCommand) -> Result<Outcome> {
    // Read the file before connecting: a typo in the path is reported as such.
    let upload = match &command {
        ModuleCommand::Register { file, .. } => {
            Some(std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?)
        }
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = RegistryClient::connect_with(url, &link).await?;
        Ok(match command {
            ModuleCommand::Register { file, name, tags } => {
                let bytes = upload.unwrap_or_default();
                match client.register(tenant, &name, &tags, &bytes).await {
                    Ok(registration) => {
                        let (entry, _) = client.show(tenant, &version_ref(&registration)).await?;
                        Outcome::Registered(registration, entry)
                    }
                    // The scheduler's validator refused the module: say which file, as locally.
                    Err(e) if e.is_invalid_request() => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("{} was refused", file.display())));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            ModuleCommand::List => Outcome::Listed(client.list(tenant).await?),
            ModuleCommand::Show { module } => {
                let (entry, versions) = client.show(tenant, &module).await?;
                Outcome::Shown(entry, versions)
            }
            ModuleCommand::Rm { module, .. } => {
                Outcome::Removed(client.remove(tenant, &module).await?)
            }
        })
    })
}

/// Prints what a command did; `location` says where the registry is, for "nothing there" notes.
fn print(globals: &Globals, outcome: &Outcome, location: &str) -> Result<()> {
    match outcome {
        Outcome::Registered(registration, entry) => {
            if globals.json {
                let mut json = serde_json::to_value(registration)?;
                json["udfs"] = serde_json::to_value(&entry.module.udfs)?;
                print_json(&json)?;
            } else {
                outln!("{}", registration.id)?;
                let what = match (registration.new_version, registration.stored_blob) {
                    (false, _) => "already registered; nothing changed".to_owned(),
                    (true, true) => "stored".to_owned(),
                    (true, false) => "bytes already stored; new version recorded".to_owned(),
                };
                eprintln!(
                    "{} version {}: {what}",
                    registration.name, registration.version
                );
                let udfs = &entry.module.udfs;
                eprintln!(
                    "{} UDF{}:",
                    udfs.len(),
                    if udfs.len() == 1 { "" } else { "s" }
                );
                for u in udfs {
                    eprintln!("  {:<14} {}{}", u.kind, u.name, udf_notes(u));
                }
            }
        }
        Outcome::Listed(entries) => {
            if globals.json {
                print_json(entries)?;
            } else if entries.is_empty() {
                eprintln!("no modules registered {location}");
            } else {
                outln!(
                    "{:<24} {:>4}  {:<20} {:>9}  {:<20}  UDFS",
                    "NAME",
                    "VER",
                    "ID",
                    "SIZE",
                    "REGISTERED"
                )?;
                for e in entries {
                    let v = &e.version;
                    let mut name = v.name.clone();
                    if !v.tags.is_empty() {
                        name = format!("{name} [{}]", v.tags.join(","));
                    }
                    let udfs: Vec<String> = e
                        .module
                        .udfs
                        .iter()
                        .map(|u| {
                            let combiner = if u.combiner { "+combiner" } else { "" };
                            format!("{}:{}{combiner}", u.kind, u.name)
                        })
                        .collect();
                    outln!(
                        "{:<24} {:>4}  {:<20} {:>9}  {:<20}  {}",
                        name,
                        v.version,
                        short_id(&v.id.to_string()),
                        e.module.size,
                        time(v.registered_ms),
                        udfs.join(" ")
                    )?;
                }
            }
        }
        Outcome::Shown(entry, versions) => {
            if globals.json {
                print_json(&serde_json::json!({
                    "module": entry,
                    "versions": versions,
                }))?;
            } else {
                show(entry, versions)?;
            }
        }
        Outcome::Removed(removal) => {
            if globals.json {
                print_json(removal)?;
            } else {
                for v in &removal.versions {
                    outln!("removed {}@{} ({})", v.name, v.version, v.id)?;
                }
                for id in &removal.deleted_blobs {
                    outln!("deleted {id}: no version refers to it any more")?;
                }
            }
        }
    }
    Ok(())
}

fn show(entry: &ModuleEntry, versions: &[VersionRecord]) -> Result<()> {
    let (v, m) = (&entry.version, &entry.module);
    outln!("name:        {}", v.name)?;
    outln!("version:     {}", v.version)?;
    outln!("id:          {}", v.id)?;
    if !v.tags.is_empty() {
        outln!("tags:        {}", v.tags.join(", "))?;
    }
    outln!("size:        {} bytes", m.size)?;
    outln!("abi version: {}", m.abi_version)?;
    outln!("registered:  {}", time(v.registered_ms))?;
    let imports = if m.wasi_imports.is_empty() {
        "none".to_owned()
    } else {
        m.wasi_imports.join(", ")
    };
    outln!("wasi:        {imports}")?;
    outln!("udfs:")?;
    for u in &m.udfs {
        outln!("  {:<14} {}{}", u.kind, u.name, udf_notes(u))?;
    }
    if versions.len() > 1 {
        outln!("versions:")?;
        for other in versions {
            let marker = if other.version == v.version { "*" } else { " " };
            outln!(
                "  {marker}{:>3}  {}  {}",
                other.version,
                other.id,
                time(other.registered_ms)
            )?;
        }
    }
    Ok(())
}

/// `NAME@VERSION` of what a registration made or found.
fn version_ref(registration: &Registration) -> String {
    format!("{}@{}", registration.name, registration.version)
}

/// What a UDF's record says beyond its kind and name, for `show` and `register`: ` (with a
/// combiner: ...; key unused: ...)`, or nothing.
fn udf_notes(u: &UdfRecord) -> String {
    let notes: Vec<&str> = [
        (
            u.combiner,
            "with a combiner: map tasks combine inside the guest",
        ),
        (u.key_unused, "key unused: input read for it has empty keys"),
    ]
    .into_iter()
    .filter_map(|(on, note)| on.then_some(note))
    .collect();
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

fn short_id(id: &str) -> String {
    id.chars().take(19).collect()
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
