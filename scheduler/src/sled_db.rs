//! Opening sled databases despite sled's lazy lock release.
//!
//! sled holds an exclusive `flock` on each database for as long as its background flusher thread
//! lives, and that thread exits a moment *after* the last `sled::Db` handle drops. A scheduler
//! reopened in the same process — a restarted in-process cluster (`weft-local`), the restart
//! tests — can race it and be refused with `WouldBlock` for a lock nobody holds any more (sled
//! issues #1234, #1289). Opening therefore retries lock contention for a short while; a database that another
//! live process really holds still fails, after that wait, with sled's own error naming the path.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long to wait out a lock that may only be held by a dropped handle's flusher thread.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

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
            other => return other,
        }
    }
}

/// sled reports a held lock as a custom `io::Error` whose text is the only distinguishing mark.
fn is_lock_contention(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
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
        let _held = sled::open(&path).unwrap();
        let started = Instant::now();
        let err = open_with_patience(&path, Duration::from_millis(100)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(is_lock_contention(&err), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
