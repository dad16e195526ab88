//! C guests: one `.c` file including the header-only SDK `weft.h` (`guest-sdk/c`), compiled by
//! clang as a WASI reactor against wasi-libc (Debian 12: clang-14, lld-14, wasi-libc and
//! libclang-rt-14-dev-wasm32, whose sysroot is `/usr`). `$WEFT_CLANG` names another clang and
//! `$WEFT_WASI_SYSROOT` another sysroot. (`weft.h` also builds freestanding, without wasi-libc:
//! its README has the command.)

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Language, Project};

/// The SDK's files, embedded: (path under the SDK directory target/weft-sdk/, contents).
pub(crate) const SDK: &[(&str, &str)] = &[("weft.h", include_str!("../../c/weft.h"))];

const HINT: &str = "install clang 14 with wasm32 support: `apt-get install clang-14 lld-14 wasi-libc \
                    libclang-rt-14-dev-wasm32` (scripts/setup.sh does), or set WEFT_CLANG";

fn clang() -> Result<PathBuf, Error> {
    let candidates: Vec<PathBuf> = match std::env::var_os("WEFT_CLANG") {
        Some(clang) => vec![PathBuf::from(clang)],
        None => ["clang-14", "clang"]
            .into_iter()
            .filter_map(|name| crate::on_path(&[name]))
            .collect(),
    };
    candidates
        .into_iter()
        .find(|c| crate::runs(c, &["--version"]))
        .ok_or(Error::ToolMissing {
            tool: "clang",
            language: Language::C,
            hint: HINT,
        })
}

pub(crate) fn build(project: &Project, sdk_dir: &Path, output: &Path) -> Result<(), Error> {
    let source = project.source_path().ok_or_else(|| Error::Manifest {
        path: project.dir.join(crate::MANIFEST),
        message: "a c project names its entry file: source = \"...\"".into(),
    })?;
    let sysroot = std::env::var_os("WEFT_WASI_SYSROOT").unwrap_or_else(|| "/usr".into());
    let mut sysroot_arg = std::ffi::OsString::from("--sysroot=");
    sysroot_arg.push(&sysroot);
    crate::run(
        Command::new(clang()?)
            .args([
                "--target=wasm32-wasi",
                "-O2",
                "-mexec-model=reactor",
                "-Wl,--strip-debug",
                "-Wall",
            ])
            .arg(sysroot_arg)
            .arg("-I")
            .arg(sdk_dir)
            .arg("-o")
            .arg(output)
            .arg(source),
    )
}

pub(crate) fn scaffold(name: &str) -> Vec<(String, String)> {
    let source = r#"/* A Weft guest module in C: `words` splits lines into (word, "1") records and `count` adds up
 * the counts of each word. weft.h (guest-sdk/c) is the SDK; `weft udf build` compiles this file
 * against it, and its API is documented at its top. */
#include "weft.h"

static inline int is_space(uint8_t b) { return b == ' ' || (b >= '\t' && b <= '\r'); }

/* (word, "1") for every word of a line: a run of bytes other than ASCII whitespace. */
static int words(weft_bytes key, weft_bytes line) {
  (void)key;
  uint32_t i = 0;
  while (i < line.len) {
    while (i < line.len && is_space(line.ptr[i])) i++;
    uint32_t start = i;
    while (i < line.len && !is_space(line.ptr[i])) i++;
    if (i > start && weft_emit((weft_bytes){line.ptr + start, i - start}, weft_str("1")) != WEFT_OK)
      return WEFT_ERROR;
  }
  return WEFT_OK;
}

/* The sum of two decimal counts (the SDK parses and prints them, and folds them inside the module
 * on the map side); an overflow fails the job with a message naming the counts. */
static int count(uint64_t a, uint64_t b, uint64_t *out) {
  if (a > UINT64_MAX - b) {
    weft_fail("the count ");
    weft_error_u64(a);
    weft_error_str(" + ");
    weft_error_u64(b);
    return weft_error_str(" overflows a u64");
  }
  *out = a + b;
  return WEFT_OK;
}

/* _NO_KEY: `words` never reads its key, so the host need not make one. */
WEFT_FLAT_MAP_NO_KEY(words, words)
WEFT_REDUCE_U64(count, count)
"#;
    vec![(format!("{name}.c"), source.to_owned())]
}
