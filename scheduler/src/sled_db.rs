//! Opening sled databases despite sled's lazy lock release.
//!
//! sled holds an exclusive `flock` on each database for as long as its background flusher thread
//! lives, and that thread exits a moment *after* the last `sled::Db` handle drops. A scheduler
//! reopened in the same process — a restarted in-process cluster (`weft-local`), the restart
//! tests — can race it and be refused with `WouldBlock` for a lock nobody holds any more (sled
//! issues #1234, #1289). Opening therefore retries lock contention for a while.
//!
//! Several `weft` processes share one local data directory (two `weft run`s, a `job list` beside
//! them), and each holds a database only for as long as one command needs it, so a lock is
//! normally released within moments. Whoever opens a database writes its pid and command line to
//! `<path>.holder`; a database still held after [`LOCK_PATIENCE`] fails with an error naming it
//! and that holder, and saying what to do.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long to wait out a lock: held by a dropped handle's flusher thread, or briefly by another
/// process's command.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// Opens (creating if needed) the sled database at `path`.
pub(crate) fn open(path: &Path) -> Result<sled::Db, sled::Error> {
    open_with_patience(path, LOCK_PATIENCE)
}

fn open_with_patience(path: &Path, patience: Duration) -> Result<sled::Db, sled::Error> {
    let deadline = Instant::now() + patience;
    loop {
        match sled::open(path) {
            Err(e) if is_lock_contention(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) if is_lock_contention(&e) => return Err(held_error(path, patience)),
            Ok(db) => {
                // Best effort: the note only improves another process's error message.
                let _ = std::fs::write(holder_path(path), holder_note());
                return Ok(db);
            }
            other => return other,
        }
    }
}

fn holder_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".holder");
    name.into()
}

/// `pid N (weft run job.toml ...)`: who this process is.
fn holder_note() -> String {
    let command: Vec<String> = std::env::args().collect();
    format!("pid {} ({})", std::process::id(), command.join(" "))
}

/// The error for a database another process keeps holding: who holds it and what to do.
fn held_error(path: &Path, patience: Duration) -> sled::Error {
    let holder = std::fs::read_to_string(holder_path(path))
        .map(|note| note.trim().to_owned())
        .unwrap_or_else(|_| "another process".to_owned());
    sled::Error::Io(std::io::Error::new(
        std::io::ErrorKind::WouldBlock,
        format!(
            "{} is in use by {holder}, still after {patience:?}; wait for it to finish, or stop \
             it if it hangs",
            path.display()
        ),
    ))
}

/// sled reports a held lock as a custom `io::Error` whose text is the only distinguishing mark.
fn is_lock_contention(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Whether `e` is the error of a database held by another process past the wait.
#[cfg(test)]
fn is_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_released_late_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let held = sled::open(&path).unwrap();
        held.insert(b"k", b"v").unwrap();
        held.flush().unwrap();
        // Drop the handle on another thread a little later, as a flusher thread would.
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            drop(held);
        });
        let reopened = open(&path).unwrap();
        assert_eq!(reopened.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        dropper.join().unwrap();
    }

    #[test]
    fn a_lock_that_stays_held_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let _held = open(&path).unwrap();
        let started = Instant::now();
        let err = open_with_patience(&path, Duration::from_millis(100)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(is_held(&err), "{err}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        let holder = format!("in use by pid {} (", std::process::id());
        assert!(message.contains(&holder), "{message}");
        assert!(message.contains("wait for it to finish"), "{message}");
    }
}
