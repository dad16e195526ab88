//! Files that appear whole or not at all: written under a hidden temporary name beside their
//! destination, made durable, then renamed into place. Every file Weft publishes by name — output
//! parts, registry blobs, cached modules and compiled artifacts — goes through here, so all of them
//! follow one policy:
//!
//! - the data is fsynced before the rename, so after a crash a name never points at a torn file
//!   (readers of caches still verify hashes, since disks fail in other ways too);
//! - the rename replaces a file already at the destination (a retried task rewrites its part; two
//!   workers caching the same module write the same bytes);
//! - a file dropped before [`AtomicFile::commit`] is deleted, and its temporary name starts with
//!   `.`, which input listing skips, so an abandoned write is never read as data.
//!
//! The directory is not fsynced after the rename: a rename lost to a power cut only costs the work
//! again (a re-download, a recompile, a task retry). Where a whole output must survive, the
//! committer syncs its directory itself (see `commit`).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// A file being written, to appear at its path only on [`commit`](AtomicFile::commit).
#[derive(Debug)]
pub struct AtomicFile {
    temp: NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing what will be `path`, in a temporary file in the same directory (which must
    /// exist). The temporary name is `.{file name}.{random}.tmp`, unique among concurrent writers.
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| Error::BadOutputPath {
                path: path.to_owned(),
            })?
            .to_string_lossy();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|source| Error::Write {
                path: path.to_owned(),
                source,
            })?;
        Ok(AtomicFile {
            temp,
            path: path.to_owned(),
        })
    }

    /// The temporary file being written.
    pub fn as_file(&self) -> &File {
        self.temp.as_file()
    }

    /// Where the file will be once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the data durable and renames the file to its path, replacing what was there.
    pub fn commit(self) -> Result<()> {
        self.temp
            .as_file()
            .sync_all()
            .map_err(|source| Error::Write {
                path: self.temp.path().to_owned(),
                source,
            })?;
        let from = self.temp.path().to_owned();
        self.temp.persist(&self.path).map_err(|e| Error::Rename {
            from,
            to: self.path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

/// Writes `bytes` as `path`, atomically and durably (see the module's policy).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })?;
    file.commit()
}

/// Whether `name` is an [`AtomicFile`]'s temporary name (`.{file name}.{random}.tmp`).
pub(crate) fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp") && name.len() > ".x..tmp".len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_appears_only_when_committed_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.wasm");
        std::fs::write(&path, b"old").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"new bytes").unwrap();
        // Until the commit, readers see the old file, and the new one under a hidden name.
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let during = names(dir.path());
        assert_eq!(during.len(), 2, "{during:?}");
        assert!(during[0].starts_with(".blob.wasm.") && during[0].ends_with(".tmp"));
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new bytes");
        assert_eq!(names(dir.path()), ["blob.wasm"]);
    }

    #[test]
    fn a_dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = AtomicFile::create(&dir.path().join("part-00000")).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nowhere").join("x");
        let err = write_atomically(&path, b"x").unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
