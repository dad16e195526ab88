//! Paths as the file system sees them: [`normalize`] for what is stored and printed, [`real_path`]
//! for comparing two paths, and [`check_apart`], which keeps a job's output away from its input.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// `path` made absolute against the working directory, without `.` and `..` components.
///
/// A `..` is resolved as the kernel would: the path before it is first resolved through its
/// symlinks, so `link/..` is the parent of the link's target, not the directory holding the link.
/// Other symlinks stay as named, so the result still names the same file, and what does not exist
/// yet is kept as written.
pub fn normalize(path: &Path) -> io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                if let Ok(real) = fs::canonicalize(&out) {
                    out = real;
                }
                out.pop();
            }
        }
    }
    Ok(out)
}

/// `path` with every symlink resolved: the canonical form of its longest existing prefix, followed
/// by the rest. Two paths naming the same file have the same real path (hard links aside).
pub fn real_path(path: &Path) -> io::Result<PathBuf> {
    let normal = normalize(path)?;
    let mut existing = normal.as_path();
    let mut rest = Vec::new();
    loop {
        match fs::canonicalize(existing) {
            Ok(real) => {
                return Ok(rest.iter().rev().fold(real, |p, name| p.join(name)));
            }
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    existing = parent;
                }
                // Not even the root resolves: compare the path as written.
                _ => return Ok(normal),
            },
        }
    }
}

/// Refuses an output that is one of `inputs`, contains one, or lies inside one, after resolving
/// `..` and symlinks: replacing such an output would delete input, and writing into it would let
/// the output be read back as input. `inputs` are the input files and the directory the input
/// pattern named, if it named one.
pub fn check_apart<'a>(output: &Path, inputs: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    let real = |path: &Path| {
        real_path(path).map_err(|source| Error::Inspect {
            pattern: path.to_string_lossy().into_owned(),
            path: path.to_owned(),
            source,
        })
    };
    let real_output = real(output)?;
    // The closest relation found is reported: "is" before "contains" before "lies inside".
    let mut closest: Option<(usize, &Path)> = None;
    for input in inputs {
        let real_input = real(input)?;
        let rank = if real_output == real_input {
            0
        } else if real_input.starts_with(&real_output) {
            1
        } else if real_output.starts_with(&real_input) {
            2
        } else {
            continue;
        };
        if closest.is_none_or(|(best, _)| rank < best) {
            closest = Some((rank, input));
        }
    }
    if let Some((rank, input)) = closest {
        return Err(Error::OutputOverlapsInput {
            output: output.to_owned(),
            input: input.to_owned(),
            relation: ["is", "contains", "lies inside"][rank],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_dots() {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(base.join("a")).unwrap();
        assert_eq!(
            normalize(&base.join("a/./../b/c/../d")).unwrap(),
            base.join("b/d")
        );
    }

    #[cfg(unix)]
    #[test]
    fn dot_dot_after_a_symlink_goes_to_the_targets_parent() {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(base.join("x/y")).unwrap();
        std::os::unix::fs::symlink(base.join("x/y"), base.join("link")).unwrap();
        assert_eq!(
            normalize(&base.join("link/../z")).unwrap(),
            base.join("x/z")
        );
        // A symlink not followed by `..` stays as named.
        assert_eq!(
            normalize(&base.join("link/f")).unwrap(),
            base.join("link/f")
        );
        assert_eq!(real_path(&base.join("link/f")).unwrap(), base.join("x/y/f"));
    }
}
