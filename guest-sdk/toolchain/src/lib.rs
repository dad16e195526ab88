//! One way to build a Weft guest module from source, whatever its language, shared by
//! `weft udf new` / `weft udf build` and by the build script that compiles the examples for the
//! tests (`examples/artifacts`).
//!
//! A guest project is a directory with a `udf.toml`:
//!
//! ```toml
//! name = "hello"          # the module file: target/hello.wasm
//! language = "c"          # rust, c, zig or assemblyscript
//! source = "hello.c"      # the entry source file (not for rust: Cargo.toml says)
//! # profile = "guest"     # rust only: the cargo profile (default: release)
//! ```
//!
//! The SDK of each language is compiled into this crate (`include_str!` of `guest-sdk/<language>`),
//! and a build writes it under `<project>/target/weft-sdk/` and points the compiler there: a
//! module is always built against the SDK of the `weft` that builds it, and a project never holds
//! a copy that could go stale. The Rust SDK is a crate, so a Rust project depends on it by path
//! (see [`rust`]).

mod assemblyscript;
mod c;
mod rust;
mod zig;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use serde::Deserialize;

/// The name of a guest project's manifest.
pub const MANIFEST: &str = "udf.toml";

/// A language with a Weft SDK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    C,
    Zig,
    #[serde(rename = "assemblyscript")]
    AssemblyScript,
}

impl Language {
    pub const ALL: [Language; 4] = [
        Language::Rust,
        Language::C,
        Language::Zig,
        Language::AssemblyScript,
    ];

    /// The name `udf.toml` and `--lang` use.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::C => "c",
            Language::Zig => "zig",
            Language::AssemblyScript => "assemblyscript",
        }
    }

    /// The SDK's files as this crate embeds them: (path under the SDK directory, contents).
    pub fn sdk_files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Language::Rust => &[],
            Language::C => c::SDK,
            Language::Zig => zig::SDK,
            Language::AssemblyScript => assemblyscript::SDK,
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Language {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Language::Rust),
            "c" => Ok(Language::C),
            "zig" => Ok(Language::Zig),
            "assemblyscript" | "as" => Ok(Language::AssemblyScript),
            _ => Err(Error::UnknownLanguage(s.to_owned())),
        }
    }
}

/// What can go wrong building or scaffolding a guest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown language {0:?}: Weft has SDKs for rust, c, zig and assemblyscript")]
    UnknownLanguage(String),
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{tool} is needed to build {language} guests and was not found: {hint}")]
    ToolMissing {
        tool: &'static str,
        language: Language,
        hint: &'static str,
    },
    #[error("`{command}` failed ({status}):\n{output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Scaffold(String),
}

impl Error {
    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
        move |source| Error::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    language: Language,
    source: Option<PathBuf>,
    profile: Option<String>,
}

/// A guest project: a directory and what its `udf.toml` says.
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    /// The module's name: its file is `target/<name>.wasm`. ASCII letters, digits, `_` and `-`.
    pub name: String,
    pub language: Language,
    /// The entry source file, relative to `dir` (C, Zig, AssemblyScript).
    pub source: Option<PathBuf>,
    /// Rust: the cargo profile to build with (`profile = "guest"` in udf.toml); default `release`.
    pub profile: Option<String>,
    /// Rust: cargo's target directory for the build; default cargo's own choice.
    pub cargo_target_dir: Option<PathBuf>,
}

impl Project {
    /// Reads `dir/udf.toml`.
    pub fn open(dir: &Path) -> Result<Project, Error> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "not found: a guest project has a {MANIFEST} (`weft udf new NAME --lang LANG` makes one)"
                )
            } else {
                e.to_string()
            },
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: e.message().to_owned(),
        })?;
        check_name(&manifest.name).map_err(|message| Error::Manifest {
            path: path.clone(),
            message,
        })?;
        if manifest.language != Language::Rust && manifest.source.is_none() {
            return Err(Error::Manifest {
                path,
                message: format!(
                    "a {} project names its entry file: source = \"...\"",
                    manifest.language
                ),
            });
        }
        Ok(Project {
            dir: dir.to_owned(),
            name: manifest.name,
            language: manifest.language,
            source: manifest.source,
            profile: manifest.profile,
            cargo_target_dir: None,
        })
    }

    /// The entry source file's path; Rust projects have none.
    pub fn source_path(&self) -> Option<PathBuf> {
        self.source.as_ref().map(|s| self.dir.join(s))
    }

    /// Where [`Project::build`] writes the module unless told otherwise.
    pub fn default_output(&self) -> PathBuf {
        self.dir.join("target").join(format!("{}.wasm", self.name))
    }

    /// Builds the module into `output` (its directory is created), with the language's
    /// toolchain and the flags Weft needs (exports kept, no entry point, optimised).
    pub fn build(&self, output: &Path) -> Result<(), Error> {
        if let Some(parent) = output.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
        }
        let sdk_dir = self.write_sdk()?;
        match self.language {
            Language::Rust => rust::build(self, output),
            Language::C => c::build(self, &sdk_dir, output),
            Language::Zig => zig::build(self, &sdk_dir, output),
            Language::AssemblyScript => assemblyscript::build(self, &sdk_dir, output),
        }
    }

    /// Writes the embedded SDK under `target/weft-sdk/` (unchanged files are left alone, so
    /// compilers' caches stay warm) and returns that directory.
    fn write_sdk(&self) -> Result<PathBuf, Error> {
        let sdk_dir = self.dir.join("target").join("weft-sdk");
        for (relative, contents) in self.language.sdk_files() {
            let path = sdk_dir.join(relative);
            if std::fs::read(&path).is_ok_and(|old| old == contents.as_bytes()) {
                continue;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
            }
            std::fs::write(&path, contents).map_err(Error::io("cannot write", &path))?;
        }
        Ok(sdk_dir)
    }
}

/// Checks a module/project name: ASCII letters, digits, `_` and `-`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if first_ok
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use 1 to 64 ASCII letters, digits, `_` or `-`, starting with a letter"
        ))
    }
}

/// Writes a new project called `name` in language `language` into `dir`, which must not exist
/// or be empty. Returns the files written (relative to `dir`).
pub fn scaffold(dir: &Path, name: &str, language: Language) -> Result<Vec<PathBuf>, Error> {
    check_name(name).map_err(Error::Scaffold)?;
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(Error::Scaffold(format!(
            "{} exists and is not empty: a new project needs a new directory",
            dir.display()
        )));
    }
    let mut files = match language {
        Language::Rust => rust::scaffold(name)?,
        Language::C => c::scaffold(name),
        Language::Zig => zig::scaffold(name),
        Language::AssemblyScript => assemblyscript::scaffold(name),
    };
    files.extend(common_files(name, language));
    let mut written = Vec::new();
    for (relative, contents) in files {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
        }
        std::fs::write(&path, contents).map_err(Error::io("cannot write", &path))?;
        written.push(PathBuf::from(relative));
    }
    Ok(written)
}

/// The sample input and job file every scaffold has: the scaffolds all implement the same two
/// UDFs, `words` (flat_map: `(word, "1")` for every word of a line, words being runs of bytes
/// other than ASCII whitespace) and `count` (reduce: the sum of decimal counts), so the sample
/// job runs, and gives the same answer, in every language.
fn common_files(name: &str, language: Language) -> Vec<(String, String)> {
    let job = format!(
        "# A sample job for the `{name}` module ({language}). Build and register it, then run it:\n\
         #\n\
         #   weft udf build\n\
         #   weft module register target/{name}.wasm --name {name}\n\
         #   weft udf test target/{name}.wasm words --input sample.txt\n\
         #   weft run job.toml --output out\n\
         name = \"{name}\"\n\n\
         [input]\n\
         path = \"sample.txt\"\n\
         format = \"text\"\n\n\
         [[step]]\n\
         flat_map = \"{name}/words\"\n\n\
         [[step]]\n\
         reduce = \"{name}/count\"\n\n\
         [output]\n\
         path = \"out\"\n\
         format = \"text\"\n\
         partitions = 1\n"
    );
    let manifest_source = match language {
        Language::Rust => String::new(),
        Language::C => format!("source = \"{name}.c\"\n"),
        Language::Zig => format!("source = \"{name}.zig\"\n"),
        Language::AssemblyScript => format!("source = \"assembly/{name}.ts\"\n"),
    };
    vec![
        (
            MANIFEST.to_owned(),
            format!(
                "# A Weft guest module: `weft udf build` builds it into target/{name}.wasm.\n\
                 name = \"{name}\"\nlanguage = \"{language}\"\n{manifest_source}"
            ),
        ),
        ("job.toml".to_owned(), job),
        (
            "sample.txt".to_owned(),
            "the quick brown fox\njumps over the lazy dog\nthe end\n".to_owned(),
        ),
        (
            ".gitignore".to_owned(),
            "target/\nout/\nnode_modules/\n".to_owned(),
        ),
    ]
}

/// Runs a toolchain command, its output captured: a failure carries the command line and what
/// the tool printed.
pub(crate) fn run(command: &mut Command) -> Result<(), Error> {
    let line = format!("{command:?}").replace('"', "");
    let output = command.output().map_err(|source| Error::Failed {
        command: line.clone(),
        status: "could not start".into(),
        output: source.to_string(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    Err(Error::Failed {
        command: line,
        status: output.status.to_string(),
        output: text,
    })
}

/// Whether `program --version` (or the given probe arguments) runs and succeeds.
pub(crate) fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The first of `names` found on `PATH`.
pub(crate) fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        names
            .iter()
            .map(|n| dir.join(n))
            .find(|candidate| candidate.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Result<Project, Error> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), text).unwrap();
        Project::open(dir.path())
    }

    #[test]
    fn a_manifest_names_the_module_its_language_and_entry() {
        let project =
            manifest("name = \"hello\"\nlanguage = \"zig\"\nsource = \"hello.zig\"\n").unwrap();
        assert_eq!(project.name, "hello");
        assert_eq!(project.language, Language::Zig);
        assert_eq!(
            project.source_path().unwrap(),
            project.dir.join("hello.zig")
        );
        assert_eq!(
            project.default_output(),
            project.dir.join("target").join("hello.wasm")
        );
        let rust = manifest("name = \"r\"\nlanguage = \"rust\"\nprofile = \"guest\"\n").unwrap();
        assert_eq!(rust.profile.as_deref(), Some("guest"));
    }

    #[test]
    fn a_bad_manifest_says_what_is_wrong() {
        let missing = Project::open(tempfile::tempdir().unwrap().path()).unwrap_err();
        assert!(missing.to_string().contains("weft udf new"), "{missing}");
        let cases = [
            (
                "name = \"x\"\nlanguage = \"cobol\"\nsource = \"a\"\n",
                "unknown variant",
            ),
            ("name = \"x\"\nlanguage = \"c\"\n", "source = "),
            (
                "name = \"9x\"\nlanguage = \"c\"\nsource = \"a.c\"\n",
                "not a valid name",
            ),
            (
                "name = \"x\"\nlanguage = \"c\"\nsource = \"a.c\"\nflags = 1\n",
                "unknown field",
            ),
            ("name = \"x\"\n", "missing field"),
        ];
        for (text, says) in cases {
            let error = manifest(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text:?}: {error}");
            assert!(error.contains(MANIFEST), "{error}");
        }
    }

    #[test]
    fn languages_parse_by_name_and_alias() {
        for language in Language::ALL {
            assert_eq!(language.name().parse::<Language>().unwrap(), language);
        }
        assert_eq!("AS".parse::<Language>().unwrap(), Language::AssemblyScript);
        let error = "go".parse::<Language>().unwrap_err().to_string();
        assert!(error.contains("rust, c, zig and assemblyscript"), "{error}");
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "hello_world", "x-1", "Z9"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "9lives", "_x", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_scaffold_needs_a_new_or_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let error = scaffold(dir.path(), "hello", Language::C).unwrap_err();
        assert!(error.to_string().contains("not empty"), "{error}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn every_scaffold_has_a_manifest_that_opens_and_its_entry_file() {
        for language in [Language::C, Language::Zig, Language::AssemblyScript] {
            let dir = tempfile::tempdir().unwrap();
            let project_dir = dir.path().join("p");
            let files = scaffold(&project_dir, "hello", language).unwrap();
            assert!(files.contains(&PathBuf::from(MANIFEST)), "{files:?}");
            let project = Project::open(&project_dir).unwrap();
            assert_eq!(
                (project.name.as_str(), project.language),
                ("hello", language)
            );
            let entry = project.source_path().unwrap();
            assert!(entry.is_file(), "{language}: no {}", entry.display());
            for file in ["job.toml", "sample.txt", ".gitignore"] {
                assert!(project_dir.join(file).is_file(), "{language}: no {file}");
            }
        }
    }
}
