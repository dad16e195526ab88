//! Atomic commit of a job's output directory: parts are written into a hidden staging directory
//! beside the final one, and only a job that finishes renames it into place, so readers of the
//! final path see either nothing (or the previous output) or a complete output with `_SUCCESS`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The marker a committed output directory holds (Hadoop's name, which downstream tools check).
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// The marker saying Weft committed a directory, beside [`SUCCESS_MARKER`] (which other tools
/// write too): `--overwrite` replaces only a directory holding both.
pub const WEFT_MARKER: &str = "_WEFT";

/// The directory of a committed output holding the malformed input records a job with
/// `on_error = "quarantine"` dropped: one JSON Lines file per map task that had any.
pub const BAD_RECORDS_DIR: &str = "_bad_records";

/// The directory of the staging directory task attempts write their parts into, each under an
/// [`attempt_part_name`](crate::attempt_part_name); the commit moves one per partition out of it
/// and sets the rest aside before publishing, so no other attempt's part can reach the output.
const ATTEMPTS_DIR: &str = "_attempts";

/// What [`WEFT_MARKER`] holds.
const WEFT_MARKER_TEXT: &str = "written by weft\n";

/// How many unexpected entries [`Error::NotWeftOutput`] lists.
const LISTED_ENTRIES: usize = 5;

/// Stages one job's output and publishes it atomically.
///
/// ```no_run
/// # fn main() -> weft_io::Result<()> {
/// use weft_io::{OutputCommitter, OutputFormat, PartWriter};
/// let committer = OutputCommitter::begin("out/wordcount".as_ref(), false)?;
/// let part = PartWriter::create(committer.staging_dir(), 0, OutputFormat::Text)?;
/// part.finish()?;
/// committer.commit()?; // out/wordcount now holds part-00000 and _SUCCESS
/// # Ok(())
/// # }
/// ```
///
/// If neither [`commit`](Self::commit) nor [`abort`](Self::abort) is called, dropping the committer
/// removes the staging directory, so a failed job leaves nothing behind.
#[derive(Debug)]
pub struct OutputCommitter {
    final_dir: PathBuf,
    staging_dir: PathBuf,
    overwrite: bool,
    /// Set once commit or abort has run (successfully or not), so `Drop` does not clean up twice
    /// or remove a directory that is now the committed output.
    settled: bool,
}

impl OutputCommitter {
    /// Creates the staging directory `.{name}.weft-staging-{unique}` next to `final_dir` (creating
    /// `final_dir`'s parent if needed).
    ///
    /// Fails with [`Error::OutputExists`] if `final_dir` exists and `overwrite` is false, and with
    /// [`Error::OutputNotDirectory`] if it exists and is not a directory: only a directory is ever
    /// replaced.
    pub fn begin(final_dir: &Path, overwrite: bool) -> Result<OutputCommitter> {
        check_output(final_dir, overwrite)?;
        let (parent, name) = split_output_path(final_dir)?;
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(&parent).map_err(|source| Error::CreateDir {
                path: parent.clone(),
                source,
            })?;
        }
        let staging_dir = parent.join(hidden_sibling(&name, STAGING));
        fs::create_dir(&staging_dir).map_err(|source| Error::CreateDir {
            path: staging_dir.clone(),
            source,
        })?;
        let committer = OutputCommitter {
            final_dir: final_dir.to_owned(),
            staging_dir,
            overwrite,
            settled: false,
        };
        let attempts = committer.attempts_dir();
        fs::create_dir(&attempts).map_err(|source| Error::CreateDir {
            path: attempts,
            source,
        })?;
        Ok(committer)
    }

    /// Takes up again the staging directory `staging_dir` that [`begin`](Self::begin) made for
    /// `final_dir` in an earlier process (a scheduler that restarted while the job ran), with the
    /// parts written there so far. Fails with [`Error::BadStaging`] if it is gone, or is not a
    /// staging directory of `final_dir`.
    pub fn resume(
        final_dir: &Path,
        staging_dir: &Path,
        overwrite: bool,
    ) -> Result<OutputCommitter> {
        let bad = |problem: &str| Error::BadStaging {
            output: final_dir.to_owned(),
            staging: staging_dir.to_owned(),
            problem: problem.to_owned(),
        };
        let (parent, name) = split_output_path(final_dir)?;
        let mut prefix = OsString::from(".");
        prefix.push(&name);
        prefix.push(format!(".{STAGING}-"));
        let ours = staging_dir.parent() == Some(parent.as_path())
            && staging_dir
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(prefix.as_encoded_bytes()));
        if !ours {
            return Err(bad("is not one weft makes for it"));
        }
        match fs::symlink_metadata(staging_dir.join(ATTEMPTS_DIR)) {
            Ok(meta) if meta.is_dir() => Ok(OutputCommitter {
                final_dir: final_dir.to_owned(),
                staging_dir: staging_dir.to_owned(),
                overwrite,
                settled: false,
            }),
            Ok(_) => Err(bad("holds no directory of task attempts' parts")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(bad("is gone")),
            Err(e) => Err(bad(&format!("cannot be read: {e}"))),
        }
    }

    /// Where the job writes its parts until commit.
    pub fn staging_dir(&self) -> &Path {
        &self.staging_dir
    }

    /// Where task attempts write their parts, each under its
    /// [`attempt_part_name`](crate::attempt_part_name), until
    /// [`commit_attempts`](Self::commit_attempts) keeps one per partition.
    pub fn attempts_dir(&self) -> PathBuf {
        self.staging_dir.join(ATTEMPTS_DIR)
    }

    /// Whether attempt `attempt` of `partition` left its finished part in the
    /// [`attempts_dir`](Self::attempts_dir).
    pub fn has_attempt_part(&self, partition: u32, attempt: u32) -> bool {
        self.attempts_dir()
            .join(crate::attempt_part_name(partition, attempt))
            .is_file()
    }

    /// Commits the parts of the attempts that won, `(partition, attempt)` each: they are moved
    /// out of the [`attempts_dir`](Self::attempts_dir) as `part-NNNNN`, what other attempts wrote
    /// there (a retry's loser, a zombie on a worker taken for lost) is set aside and deleted —
    /// an attempt still writing finds its directory gone — and the output is published as
    /// [`commit`](Self::commit) does.
    pub fn commit_attempts(mut self, winners: &[(u32, u32)]) -> Result<()> {
        self.settled = true;
        let result = self.keep_attempts(winners).and_then(|()| self.publish());
        if result.is_err() && self.staging_dir.exists() {
            // Nothing was published: do not leave the staging directory behind.
            let _ = fs::remove_dir_all(&self.staging_dir);
        }
        result
    }

    /// Moves the winners' parts into the staging directory and the attempts directory (with
    /// whatever else is in it) out of it.
    fn keep_attempts(&self, winners: &[(u32, u32)]) -> Result<()> {
        let attempts = self.attempts_dir();
        for &(partition, attempt) in winners {
            rename(
                &attempts.join(crate::attempt_part_name(partition, attempt)),
                &self.staging_dir.join(crate::part_file_name(partition)),
            )?;
        }
        if fs::symlink_metadata(&attempts).is_err() {
            return Ok(());
        }
        let (parent, name) = split_output_path(&self.final_dir)?;
        let aside = parent.join(hidden_sibling(&name, ATTEMPTS_ASIDE));
        rename(&attempts, &aside)?;
        fs::remove_dir_all(&aside).map_err(|source| Error::Remove {
            path: aside,
            source,
        })
    }

    pub fn final_dir(&self) -> &Path {
        &self.final_dir
    }

    /// Writes `_SUCCESS`, makes the staging directory durable and renames it to the final path.
    ///
    /// With `overwrite`, an existing output is first renamed aside, then the new one moved in, then
    /// the old one deleted; if moving the new one in fails, the old one is put back. A failure to
    /// delete the old one is reported as [`Error::RemoveReplaced`], with the new output already
    /// committed.
    pub fn commit(self) -> Result<()> {
        self.commit_attempts(&[])
    }

    fn publish(&self) -> Result<()> {
        // An attempt killed while it wrote (its worker died) leaves its part's temporary file;
        // the part itself came from the attempt that won. Such leftovers are not output.
        for dir in [
            self.staging_dir.clone(),
            self.staging_dir.join(BAD_RECORDS_DIR),
        ] {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if crate::atomic::is_temporary(&name) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        for (name, text) in [(WEFT_MARKER, WEFT_MARKER_TEXT), (SUCCESS_MARKER, "")] {
            let marker = self.staging_dir.join(name);
            let write = |source| Error::Write {
                path: marker.clone(),
                source,
            };
            let mut file = File::create(&marker).map_err(write)?;
            file.write_all(text.as_bytes()).map_err(write)?;
            file.sync_all().map_err(write)?;
        }
        // The parts were fsynced by their writers; fsyncing the directory makes their names (and
        // the marker's) durable before the rename publishes them.
        sync_dir(&self.staging_dir)?;

        // Checked again: the final path may have appeared since `begin`, and `rename` would
        // silently replace an empty directory.
        check_output(&self.final_dir, self.overwrite)?;
        let (parent, name) = split_output_path(&self.final_dir)?;
        let replaced = match fs::symlink_metadata(&self.final_dir) {
            Ok(_) => {
                let aside = parent.join(hidden_sibling(&name, REPLACED));
                rename(&self.final_dir, &aside)?;
                Some(aside)
            }
            Err(_) => None,
        };
        if let Err(e) = rename(&self.staging_dir, &self.final_dir) {
            if let Some(aside) = &replaced {
                // Best effort: put the previous output back where it was.
                let _ = fs::rename(aside, &self.final_dir);
            }
            return Err(e);
        }
        // The new output is in place whatever happens next, so the replaced one is deleted even
        // if making the rename durable fails.
        let synced = sync_dir(&parent);
        if let Some(aside) = replaced {
            fs::remove_dir_all(&aside).map_err(|source| Error::RemoveReplaced {
                path: aside,
                source,
            })?;
        }
        synced
    }

    /// Removes the staging directory and everything written to it.
    pub fn abort(mut self) -> Result<()> {
        self.settled = true;
        match fs::remove_dir_all(&self.staging_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Remove {
                path: self.staging_dir.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for OutputCommitter {
    fn drop(&mut self) {
        if !self.settled {
            // An implicit abort (an error path returned early): errors have nowhere to go.
            let _ = fs::remove_dir_all(&self.staging_dir);
        }
    }
}

/// Whether a job may write its output at `final_dir`: only if nothing is there, or, with
/// `overwrite`, an empty directory or one Weft committed ([`WEFT_MARKER`], [`SUCCESS_MARKER`]
/// and part files, nothing else). Otherwise [`Error::OutputExists`], [`Error::OutputNotDirectory`]
/// or [`Error::NotWeftOutput`], naming what was found. [`OutputCommitter::begin`] checks it when
/// the job starts and again at commit; checking first lets a job be refused before it runs.
pub fn check_output(final_dir: &Path, overwrite: bool) -> Result<()> {
    match fs::symlink_metadata(final_dir) {
        Ok(meta) if !meta.is_dir() => Err(Error::OutputNotDirectory {
            path: final_dir.to_owned(),
        }),
        Ok(_) if !overwrite => Err(Error::OutputExists {
            path: final_dir.to_owned(),
        }),
        Ok(_) => check_weft_output(final_dir),
        _ => Ok(()),
    }
}

/// Refuses a directory that holds anything but what a committed Weft output holds, or lacks its
/// markers (an empty directory holds nothing to lose).
fn check_weft_output(dir: &Path) -> Result<()> {
    let inspect = |source| Error::Inspect {
        pattern: dir.to_string_lossy().into_owned(),
        path: dir.to_owned(),
        source,
    };
    let mut unexpected = Vec::new();
    let mut markers = 0;
    let mut entries = 0;
    for entry in fs::read_dir(dir).map_err(inspect)? {
        let entry = entry.map_err(inspect)?;
        entries += 1;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = entry.file_type().map_err(inspect)?.is_file();
        let is_dir = entry.file_type().map_err(inspect)?.is_dir();
        if is_file && (name == SUCCESS_MARKER || name == WEFT_MARKER) {
            markers += 1;
        } else if !(is_file && is_part_name(&name) || is_dir && name == BAD_RECORDS_DIR) {
            unexpected.push(name.into_owned());
        }
    }
    if entries == 0 || (markers == 2 && unexpected.is_empty()) {
        return Ok(());
    }
    unexpected.sort();
    let mut found = if unexpected.is_empty() {
        format!("no `{WEFT_MARKER}` and `{SUCCESS_MARKER}` markers")
    } else {
        let shown: Vec<String> = unexpected
            .iter()
            .take(LISTED_ENTRIES)
            .map(|name| format!("{name:?}"))
            .collect();
        let more = unexpected.len().saturating_sub(LISTED_ENTRIES);
        let mut found = shown.join(", ");
        if more > 0 {
            found.push_str(&format!(" and {more} more"));
        }
        found
    };
    if markers < 2 && !unexpected.is_empty() {
        found.push_str(" and lacks Weft's markers");
    }
    Err(Error::NotWeftOutput {
        path: dir.to_owned(),
        found,
    })
}

/// `part-` followed by at least five digits: what [`crate::part_file_name`] writes.
fn is_part_name(name: &str) -> bool {
    name.strip_prefix("part-")
        .is_some_and(|n| n.len() >= 5 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The directory holding `final_dir` ("" for a bare relative name) and `final_dir`'s own name.
fn split_output_path(final_dir: &Path) -> Result<(PathBuf, OsString)> {
    match (final_dir.parent(), final_dir.file_name()) {
        (Some(parent), Some(name)) => Ok((parent.to_owned(), name.to_owned())),
        _ => Err(Error::BadOutputPath {
            path: final_dir.to_owned(),
        }),
    }
}

/// The role of a staging directory in its name (see [`hidden_sibling`]).
const STAGING: &str = "weft-staging";
/// The role of a replaced output set aside during a commit.
const REPLACED: &str = "weft-replaced";
/// The role of the attempts' parts not committed, set aside during a commit.
const ATTEMPTS_ASIDE: &str = "weft-attempts";

/// Removes the staging directories process `pid` made beside `final_dir` and left behind (it was
/// killed before it could commit or abort). Only for a process known to be gone: a live one's
/// staging is its job's output in the making. A replaced output set aside is never touched.
pub fn remove_abandoned_staging(final_dir: &Path, pid: u32) {
    let Ok((parent, name)) = split_output_path(final_dir) else {
        return;
    };
    // `hidden_sibling` names start with the pid (`crate::unique_suffix`).
    let mut prefix = OsString::from(".");
    prefix.push(&name);
    prefix.push(format!(".{STAGING}-{pid}-"));
    let dir = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &parent
    };
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .as_encoded_bytes()
                .starts_with(prefix.as_encoded_bytes())
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// `.{name}.{role}-{unique}`: hidden, so input resolution skips it, and unique per attempt.
fn hidden_sibling(name: &OsString, role: &str) -> OsString {
    let mut sibling = OsString::from(".");
    sibling.push(name);
    sibling.push(format!(".{role}-{}", crate::unique_suffix()));
    sibling
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|source| Error::Rename {
        from: from.to_owned(),
        to: to.to_owned(),
        source,
    })
}

/// Makes a directory's entries durable. Only Unix can open a directory to fsync it; elsewhere the
/// rename's own durability is all there is.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error::Write {
                path: dir.to_owned(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
