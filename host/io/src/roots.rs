//! Data roots: the directories a tenant's jobs may read from and write to ([`DataRoots`]).
//!
//! A path is inside a root when its real path — `..` resolved, every symlink followed
//! ([`real_path`]) — lies under the root's real path. The scheduler checks a job's paths when it is
//! submitted; a worker checks again what it really opened ([`DataRoots::check_opened`]: the path
//! the kernel gives for the open descriptor), so a path swapped for a symlink after submission
//! cannot make it read or write outside.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::paths::real_path;
use crate::{Error, Result};

/// What a job may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataRoots {
    /// Directories whose files may be read (the write roots may be read too).
    pub read: Vec<PathBuf>,
    /// Directories inside which outputs may be written.
    pub write: Vec<PathBuf>,
}

/// Reading or writing, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    fn verb(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

impl DataRoots {
    /// The roots `access` may use.
    fn roots(&self, access: Access) -> Vec<&Path> {
        match access {
            Access::Read => self
                .read
                .iter()
                .chain(&self.write)
                .map(PathBuf::as_path)
                .collect(),
            Access::Write => self.write.iter().map(PathBuf::as_path).collect(),
        }
    }

    /// Refuses `path` unless its real path lies inside a root for `access`: for a read, the file
    /// or directory itself; for a write, the output directory, which must be strictly inside a
    /// write root (its staging directory is made beside it).
    pub fn check(&self, path: &Path, access: Access) -> Result<()> {
        let real = real_path(path).map_err(|source| Error::Inspect {
            pattern: path.to_string_lossy().into_owned(),
            path: path.to_owned(),
            source,
        })?;
        self.check_real(path, &real, access)
    }

    /// Refuses `file`, opened from `path`, unless what the kernel says it opened lies inside a
    /// root for `access`. Where the kernel cannot say (no `/proc`), the path is checked instead.
    pub fn check_opened(&self, file: &File, path: &Path, access: Access) -> Result<()> {
        match opened_path(file) {
            Some(real) => self.check_real(path, &real, access),
            None => self.check(path, access),
        }
    }

    fn check_real(&self, path: &Path, real: &Path, access: Access) -> Result<()> {
        let roots = self.roots(access);
        let inside = roots.iter().any(|root| {
            let root = real_path(root).unwrap_or_else(|_| root.to_path_buf());
            match access {
                Access::Read => real.starts_with(&root),
                Access::Write => real.starts_with(&root) && real != root,
            }
        });
        if inside {
            return Ok(());
        }
        Err(Error::OutsideRoots {
            path: path.to_owned(),
            real: real.to_owned(),
            access: access.verb(),
            roots: if roots.is_empty() {
                "none".to_owned()
            } else {
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }
}

/// The real path of what `file` is open on, as the kernel tells it.
#[cfg(target_os = "linux")]
fn opened_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

#[cfg(not(target_os = "linux"))]
fn opened_path(_file: &File) -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_judged_by_where_they_really_lead() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("mine");
        let theirs = dir.path().join("theirs");
        for d in [&mine, &theirs] {
            std::fs::create_dir_all(d.join("out")).unwrap();
            std::fs::write(d.join("in.txt"), "x").unwrap();
        }
        let roots = DataRoots {
            read: vec![mine.clone()],
            write: vec![mine.join("out")],
        };
        roots.check(&mine.join("in.txt"), Access::Read).unwrap();
        roots
            .check(&mine.join("out/result"), Access::Write)
            .unwrap();
        // Outside, by name, by `..`, and by a symlink inside that leads outside.
        let refused = roots
            .check(&theirs.join("in.txt"), Access::Read)
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("outside the directories this job may read"),
            "{refused}"
        );
        roots
            .check(&mine.join("../theirs/in.txt"), Access::Read)
            .unwrap_err();
        std::os::unix::fs::symlink(theirs.join("in.txt"), mine.join("link.txt")).unwrap();
        roots
            .check(&mine.join("link.txt"), Access::Read)
            .unwrap_err();
        // A write root itself is not an output: its staging would be made outside it.
        roots.check(&mine.join("out"), Access::Write).unwrap_err();
        roots
            .check(&mine.join("elsewhere"), Access::Write)
            .unwrap_err();
        // What was opened is what counts.
        let file = File::open(mine.join("link.txt")).unwrap();
        roots
            .check_opened(&file, &mine.join("link.txt"), Access::Read)
            .unwrap_err();
        let file = File::open(mine.join("in.txt")).unwrap();
        roots
            .check_opened(&file, &mine.join("in.txt"), Access::Read)
            .unwrap();
    }
}
