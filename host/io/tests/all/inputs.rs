//! Resolving input patterns: files, directories (hidden files skipped) and globs, sorted, with
//! errors that name the pattern.

use std::fs;

use weft_io::{Error, InputFile, resolve_inputs};

fn names(files: &[InputFile]) -> Vec<String> {
    files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// A directory with data files, hidden files of both kinds, and a subdirectory.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("b.txt"), "bb").unwrap();
    fs::write(dir.path().join("a.txt"), "a").unwrap();
    fs::write(dir.path().join("c.csv"), "ccc").unwrap();
    fs::write(dir.path().join(".hidden.txt"), "").unwrap();
    fs::write(dir.path().join("_SUCCESS"), "").unwrap();
    fs::create_dir(dir.path().join("sub.txt")).unwrap();
    fs::write(dir.path().join("sub.txt/inner.txt"), "x").unwrap();
    dir
}

#[test]
fn a_file_names_itself() {
    let dir = fixture();
    let path = dir.path().join("b.txt");
    let files = resolve_inputs(path.to_str().unwrap()).unwrap();
    assert_eq!(files, [InputFile { path, size: 2 }]);
}

#[test]
fn a_directory_names_its_visible_files_sorted() {
    let dir = fixture();
    let files = resolve_inputs(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(names(&files), ["a.txt", "b.txt", "c.csv"]);
    assert_eq!(files.iter().map(|f| f.size).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(files[0].path, dir.path().join("a.txt"));
}

#[test]
fn a_glob_names_matching_files_sorted() {
    let dir = fixture();
    let pattern = format!("{}/*.txt", dir.path().display());
    assert_eq!(
        names(&resolve_inputs(&pattern).unwrap()),
        ["a.txt", "b.txt"]
    );
    let pattern = format!("{}/*", dir.path().display());
    assert_eq!(
        names(&resolve_inputs(&pattern).unwrap()),
        ["a.txt", "b.txt", "c.csv"],
        "directories and hidden files are not inputs"
    );
    let pattern = format!("{}/[bc].*", dir.path().display());
    assert_eq!(
        names(&resolve_inputs(&pattern).unwrap()),
        ["b.txt", "c.csv"]
    );
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let dir = fixture();
    let pattern = format!("{}/missing.txt", dir.path().display());
    let err = resolve_inputs(&pattern).unwrap_err();
    assert!(
        matches!(&err, Error::InputNotFound { pattern: p } if *p == pattern),
        "{err:?}"
    );
    assert!(err.to_string().contains(&pattern));
}

#[test]
fn a_glob_matching_nothing_is_an_error_naming_it() {
    let dir = fixture();
    let pattern = format!("{}/*.parquet", dir.path().display());
    let err = resolve_inputs(&pattern).unwrap_err();
    assert!(
        matches!(&err, Error::NoInputFiles { pattern: p } if *p == pattern),
        "{err:?}"
    );
    assert!(err.to_string().contains(&pattern));
}

#[test]
fn an_empty_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("_SUCCESS"), "").unwrap();
    let pattern = dir.path().to_str().unwrap();
    assert!(matches!(
        resolve_inputs(pattern),
        Err(Error::NoInputFiles { .. })
    ));
}

#[test]
fn a_malformed_glob_is_an_error() {
    let dir = fixture();
    let pattern = format!("{}/[", dir.path().display());
    let err = resolve_inputs(&pattern).unwrap_err();
    assert!(matches!(err, Error::BadPattern { .. }), "{err:?}");
}
