//! The output committer: nothing at the final path until commit, nothing left after abort or drop,
//! existing outputs refused unless overwriting, and overwrite replaces.

use std::fs;
use std::path::Path;

use weft_batch::Records;
use weft_io::{
    Error, OutputCommitter, OutputFormat, PartWriter, SUCCESS_MARKER, WEFT_MARKER,
    attempt_part_name, check_apart, check_output,
};

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn write_part(committer: &OutputCommitter, partition: u32, value: &str) {
    let mut part =
        PartWriter::create(committer.staging_dir(), partition, OutputFormat::Text).unwrap();
    part.write(&Records::from_pairs([("k", value)])).unwrap();
    part.finish().unwrap();
}

#[test]
fn output_appears_only_on_commit() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    let committer = OutputCommitter::begin(&final_dir, false).unwrap();

    let staging = committer.staging_dir().to_owned();
    assert_eq!(
        staging.parent(),
        Some(parent.path()),
        "staged next to the final directory"
    );
    let staging_name = staging.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        staging_name.starts_with(".out.weft-staging-"),
        "{staging_name}"
    );

    write_part(&committer, 0, "a");
    write_part(&committer, 1, "b");
    assert!(!final_dir.exists(), "invisible until commit");
    assert_eq!(
        dir_names(&staging),
        ["_attempts", "part-00000", "part-00001"]
    );

    committer.commit().unwrap();
    assert_eq!(dir_names(parent.path()), ["out"], "staging is gone");
    assert_eq!(
        dir_names(&final_dir),
        [SUCCESS_MARKER, WEFT_MARKER, "part-00000", "part-00001"]
    );
    assert_eq!(fs::read(final_dir.join("part-00001")).unwrap(), b"k\tb\n");
    assert_eq!(fs::read(final_dir.join(SUCCESS_MARKER)).unwrap(), b"");
}

fn write_attempt(committer: &OutputCommitter, partition: u32, attempt: u32, value: &str) {
    let name = attempt_part_name(partition, attempt);
    let mut part =
        PartWriter::create_within(&committer.attempts_dir(), &name, OutputFormat::Text, None)
            .unwrap();
    part.write(&Records::from_pairs([("k", value)])).unwrap();
    part.finish().unwrap();
}

#[test]
fn one_attempt_per_partition_is_committed_and_the_others_are_not() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    let committer = OutputCommitter::begin(&final_dir, false).unwrap();
    assert_eq!(attempt_part_name(3, 12), "part-00003.attempt-12");
    // Partition 0: attempt 0 lost its worker but finished anyway (a zombie), attempt 1 won.
    // Partition 1: a speculative copy (attempt 2) and the original (attempt 0) both finished.
    write_attempt(&committer, 0, 0, "zombie");
    write_attempt(&committer, 0, 1, "a");
    write_attempt(&committer, 1, 0, "b");
    write_attempt(&committer, 1, 2, "b-copy");
    // And one was killed mid-write.
    let half = PartWriter::create_within(
        &committer.attempts_dir(),
        &attempt_part_name(1, 3),
        OutputFormat::Text,
        None,
    )
    .unwrap();
    std::mem::forget(half);
    assert_eq!(dir_names(&committer.attempts_dir()).len(), 5);
    assert!(committer.has_attempt_part(0, 1));
    assert!(!committer.has_attempt_part(1, 3), "not finished");
    committer.commit_attempts(&[(0, 1), (1, 0)]).unwrap();
    assert_eq!(
        dir_names(parent.path()),
        ["out"],
        "nothing is left beside it"
    );
    assert_eq!(
        dir_names(&final_dir),
        [SUCCESS_MARKER, WEFT_MARKER, "part-00000", "part-00001"]
    );
    assert_eq!(fs::read(final_dir.join("part-00000")).unwrap(), b"k\ta\n");
    assert_eq!(fs::read(final_dir.join("part-00001")).unwrap(), b"k\tb\n");
}

#[test]
fn a_missing_winner_fails_the_commit_and_leaves_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    let committer = OutputCommitter::begin(&final_dir, false).unwrap();
    write_attempt(&committer, 0, 0, "a");
    let err = committer.commit_attempts(&[(0, 0), (1, 0)]).unwrap_err();
    assert!(
        err.to_string().contains("part-00001.attempt-0"),
        "names the missing part: {err}"
    );
    assert_eq!(dir_names(parent.path()), Vec::<String>::new());
}

#[test]
fn a_staging_directory_is_taken_up_again_by_a_later_process() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    let staging = {
        let committer = OutputCommitter::begin(&final_dir, false).unwrap();
        write_attempt(&committer, 0, 4, "a");
        let staging = committer.staging_dir().to_owned();
        // The process dies: nothing runs the committer's drop.
        std::mem::forget(committer);
        staging
    };
    let committer = OutputCommitter::resume(&final_dir, &staging, false).unwrap();
    assert!(committer.has_attempt_part(0, 4));
    write_attempt(&committer, 1, 0, "b");
    committer.commit_attempts(&[(0, 4), (1, 0)]).unwrap();
    assert_eq!(
        dir_names(&final_dir),
        [SUCCESS_MARKER, WEFT_MARKER, "part-00000", "part-00001"]
    );

    // Gone, or not a staging directory of this output: refused, naming both paths.
    for (staging, problem) in [
        (staging.clone(), "is gone"),
        (parent.path().join("elsewhere"), "is not one weft makes"),
        (
            parent.path().join(".other.weft-staging-1-2"),
            "is not one weft makes",
        ),
    ] {
        let err = OutputCommitter::resume(&final_dir, &staging, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(problem), "{err}");
        assert!(err.contains(&*staging.to_string_lossy()), "{err}");
    }
}

#[test]
fn what_a_killed_attempt_left_half_written_is_not_committed() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    let committer = OutputCommitter::begin(&final_dir, false).unwrap();
    // An attempt killed mid-write (its process died: nothing ran its drop) leaves its temporary
    // file; another attempt wrote the part.
    let half = PartWriter::create(committer.staging_dir(), 0, OutputFormat::Text).unwrap();
    std::mem::forget(half);
    write_part(&committer, 0, "a");
    assert_eq!(dir_names(committer.staging_dir()).len(), 3);
    committer.commit().unwrap();
    assert_eq!(
        dir_names(&final_dir),
        [SUCCESS_MARKER, WEFT_MARKER, "part-00000"]
    );
}

#[test]
fn abort_and_drop_remove_the_staging_directory() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");

    let committer = OutputCommitter::begin(&final_dir, false).unwrap();
    write_part(&committer, 0, "a");
    committer.abort().unwrap();
    assert!(dir_names(parent.path()).is_empty());

    let committer = OutputCommitter::begin(&final_dir, false).unwrap();
    write_part(&committer, 0, "a");
    drop(committer);
    assert!(dir_names(parent.path()).is_empty());
}

#[test]
fn an_existing_output_is_refused_without_overwrite() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    fs::create_dir(&final_dir).unwrap();
    fs::write(final_dir.join("keep"), "precious").unwrap();

    let err = OutputCommitter::begin(&final_dir, false).unwrap_err();
    assert!(
        matches!(&err, Error::OutputExists { path } if *path == final_dir),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&final_dir.display().to_string()),
        "{message}"
    );
    assert!(message.contains("--overwrite"), "{message}");
    assert_eq!(
        dir_names(parent.path()),
        ["out"],
        "no staging directory was made"
    );
    assert_eq!(fs::read(final_dir.join("keep")).unwrap(), b"precious");
}

/// Commits an output holding `values`, one part each.
fn commit_output(final_dir: &Path, overwrite: bool, values: &[&str]) {
    let committer = OutputCommitter::begin(final_dir, overwrite).unwrap();
    for (i, value) in values.iter().enumerate() {
        write_part(&committer, i as u32, value);
    }
    committer.commit().unwrap();
}

#[test]
fn overwrite_replaces_the_old_output_at_commit() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    commit_output(&final_dir, false, &["old", "old"]);

    let committer = OutputCommitter::begin(&final_dir, true).unwrap();
    write_part(&committer, 0, "new");
    assert_eq!(
        fs::read(final_dir.join("part-00000")).unwrap(),
        b"k\told\n",
        "the old output stays until commit"
    );
    committer.commit().unwrap();

    assert_eq!(dir_names(parent.path()), ["out"], "nothing left aside");
    assert_eq!(
        dir_names(&final_dir),
        [SUCCESS_MARKER, WEFT_MARKER, "part-00000"]
    );
    assert_eq!(fs::read(final_dir.join("part-00000")).unwrap(), b"k\tnew\n");
}

#[test]
fn a_failed_rerun_leaves_the_previous_output_intact() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    commit_output(&final_dir, false, &["old"]);
    let before = dir_names(&final_dir);

    for abort in [true, false] {
        let committer = OutputCommitter::begin(&final_dir, true).unwrap();
        write_part(&committer, 0, "new");
        if abort {
            committer.abort().unwrap();
        } else {
            drop(committer);
        }
        assert_eq!(dir_names(parent.path()), ["out"]);
        assert_eq!(dir_names(&final_dir), before);
        assert_eq!(fs::read(final_dir.join("part-00000")).unwrap(), b"k\told\n");
    }
}

#[test]
fn overwrite_refuses_a_directory_weft_did_not_commit() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    fs::create_dir(&final_dir).unwrap();
    fs::write(final_dir.join("important.txt"), "precious").unwrap();
    let err = OutputCommitter::begin(&final_dir, true).unwrap_err();
    assert!(matches!(&err, Error::NotWeftOutput { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("\"important.txt\"") && message.contains("lacks Weft's markers"),
        "{message}"
    );
    assert_eq!(dir_names(parent.path()), ["out"], "no staging directory");
    assert_eq!(
        fs::read(final_dir.join("important.txt")).unwrap(),
        b"precious"
    );

    // Hadoop's marker alone is not Weft's.
    fs::remove_file(final_dir.join("important.txt")).unwrap();
    fs::write(final_dir.join(SUCCESS_MARKER), "").unwrap();
    fs::write(final_dir.join("part-00000"), "theirs").unwrap();
    let err = check_output(&final_dir, true).unwrap_err();
    assert!(err.to_string().contains("no `_WEFT`"), "{err}");

    // A Weft output the user added a file to.
    let weft_dir = parent.path().join("weft");
    commit_output(&weft_dir, false, &["a"]);
    fs::create_dir(weft_dir.join("notes")).unwrap();
    let err = check_output(&weft_dir, true).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("\"notes\"") && !message.contains("lacks"),
        "{message}"
    );

    // An empty directory holds nothing to lose.
    let empty = parent.path().join("empty");
    fs::create_dir(&empty).unwrap();
    commit_output(&empty, true, &["x"]);
    assert_eq!(fs::read(empty.join("part-00000")).unwrap(), b"k\tx\n");
}

#[test]
fn an_output_overlapping_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(dir.path()).unwrap();
    let data = base.join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    let input = data.join("in.txt");
    fs::write(&input, "x").unwrap();
    let inputs = [data.as_path(), input.as_path()];

    let refused = |output: &Path, relation: &str| {
        let err = check_apart(output, inputs).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, Error::OutputOverlapsInput { .. })
                && message.contains(&format!(" {relation} input "))
                && message.contains(&output.display().to_string()),
            "{output:?}: {message}"
        );
    };
    refused(&data, "is");
    refused(&base.join("data/sub/../"), "is");
    refused(&input, "is");
    refused(&base, "contains");
    refused(&base.join("data/.."), "contains");
    refused(&data.join("out"), "lies inside");
    refused(&data.join("sub/../out"), "lies inside");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&data, base.join("alias")).unwrap();
        refused(&base.join("alias"), "is");
        refused(&base.join("alias/new"), "lies inside");
        std::os::unix::fs::symlink(base.join("data/sub"), base.join("deep")).unwrap();
        refused(&base.join("deep/../out"), "lies inside");
    }
    check_apart(&base.join("out"), inputs).unwrap();
    check_apart(&base.join("data-out"), inputs).unwrap();
}

#[test]
fn an_output_created_during_the_job_is_not_clobbered() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    let committer = OutputCommitter::begin(&final_dir, false).unwrap();
    write_part(&committer, 0, "a");
    // Someone else publishes the same path while the job runs.
    fs::create_dir(&final_dir).unwrap();

    let err = committer.commit().unwrap_err();
    assert!(matches!(err, Error::OutputExists { .. }), "{err:?}");
    assert_eq!(dir_names(parent.path()), ["out"], "staging cleaned up");
    assert!(
        dir_names(&final_dir).is_empty(),
        "the other output is untouched"
    );
}

#[test]
fn a_file_at_the_output_path_is_never_replaced() {
    let parent = tempfile::tempdir().unwrap();
    let final_path = parent.path().join("out");
    fs::write(&final_path, "a file").unwrap();
    let err = OutputCommitter::begin(&final_path, true).unwrap_err();
    assert!(matches!(err, Error::OutputNotDirectory { .. }), "{err:?}");
    assert_eq!(fs::read(&final_path).unwrap(), b"a file");
}

#[test]
fn missing_parent_directories_are_created() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("a/b/out");
    let committer = OutputCommitter::begin(&final_dir, false).unwrap();
    write_part(&committer, 0, "x");
    committer.commit().unwrap();
    assert_eq!(
        dir_names(&final_dir),
        [SUCCESS_MARKER, WEFT_MARKER, "part-00000"]
    );
    assert_eq!(dir_names(&parent.path().join("a/b")), ["out"]);
}

#[test]
fn abandoned_staging_is_removed_by_the_pid_that_made_it() {
    let parent = tempfile::tempdir().unwrap();
    let final_dir = parent.path().join("out");
    let committer = OutputCommitter::begin(&final_dir, false).unwrap();
    write_part(&committer, 0, "a");
    // Another pid's staging, and this one's under another output name, stay.
    weft_io::remove_abandoned_staging(&final_dir, std::process::id() + 1);
    weft_io::remove_abandoned_staging(&parent.path().join("ou"), std::process::id());
    assert!(committer.staging_dir().is_dir());
    weft_io::remove_abandoned_staging(&final_dir, std::process::id());
    assert!(
        dir_names(parent.path()).is_empty(),
        "{:?}",
        dir_names(parent.path())
    );
    drop(committer);
}
