//! The `weft.udfs` custom section (ABI.md §3b): what registration learns from it, and how it
//! refuses a malformed one.

use weft_host::{ModuleInfo, ValidatedModule, ValidationError, ValidationLimits};
use weft_testkit::wat::{IDENTITY_MAP, guest};

use crate::engine;

fn validate(bytes: &[u8]) -> Result<ModuleInfo, ValidationError> {
    ValidatedModule::new(engine(), bytes, &ValidationLimits::default()).map(|m| m.info().clone())
}

/// The UDFs of a module that state `key=unused`.
fn key_unused(info: &ModuleInfo) -> Vec<&str> {
    info.udfs
        .iter()
        .filter(|u| u.key_unused)
        .map(|u| u.name.as_str())
        .collect()
}

/// A WAT guest with the identity map and a `weft.udfs` section holding `text`.
fn with_section(text: &str) -> Vec<u8> {
    let text = text.replace('\n', "\\n");
    guest(
        "",
        &format!(r#"{IDENTITY_MAP} (@custom "weft.udfs" "{text}")"#),
    )
}

/// The Rust SDK states it for a `map`, `filter` or `flat_map` whose key is `()`, and only then.
#[test]
fn rust_udfs_with_a_unit_key_are_registered_as_not_reading_it() {
    let wordcount = std::fs::read(weft_examples::WORDCOUNT_RUST).unwrap();
    assert_eq!(key_unused(&validate(&wordcount).unwrap()), ["split_words"]);
    // `non_empty` takes `_key: ()`; `words_with_line`, `upper`, `echo`... read their keys.
    let textkit = std::fs::read(weft_examples::TEXTKIT_RUST).unwrap();
    assert_eq!(key_unused(&validate(&textkit).unwrap()), ["non_empty"]);
    // The hand-written WAT guest states nothing, and keeps its keys.
    let wat = std::fs::read(weft_examples::WORDCOUNT_WAT).unwrap();
    assert!(key_unused(&validate(&wat).unwrap()).is_empty());
}

/// The C and Zig SDKs state it too (AssemblyScript cannot emit a custom section): the matrix's
/// word counts ignore the line's key, the log filter's `errors` and `service_msg` too.
#[test]
fn c_and_zig_udfs_that_ignore_their_keys_say_so() {
    for path in [
        weft_examples::WORDCOUNT_C,
        weft_examples::WORDCOUNT_C_FREESTANDING,
        weft_examples::WORDCOUNT_ZIG,
    ] {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            key_unused(&validate(&bytes).unwrap()),
            ["split_words"],
            "{path}"
        );
    }
    // Built freestanding, a C module brings its own allocator and imports nothing at all.
    let freestanding = std::fs::read(weft_examples::WORDCOUNT_C_FREESTANDING).unwrap();
    assert!(validate(&freestanding).unwrap().wasi_imports.is_empty());
    let wordcount = std::fs::read(weft_examples::WORDCOUNT_ASSEMBLYSCRIPT).unwrap();
    assert!(key_unused(&validate(&wordcount).unwrap()).is_empty());
}

#[test]
fn a_hand_written_section_is_read_and_its_unknown_entries_skipped() {
    let info = validate(&with_section(
        "1 identity colour=blue key=unused\n2 whatever\n",
    ))
    .unwrap();
    assert_eq!(key_unused(&info), ["identity"]);
    let info = validate(&with_section("1 identity key=used\n")).unwrap();
    assert!(key_unused(&info).is_empty());
    // Two sections of the name read as one text, as a linker would have concatenated them.
    let bytes = guest(
        "",
        &format!(
            r#"{IDENTITY_MAP} (@custom "weft.udfs" "1 identity\n") (@custom "weft.udfs" "1 identity key=unused\n")"#
        ),
    );
    assert_eq!(key_unused(&validate(&bytes).unwrap()), ["identity"]);
}

#[test]
fn a_malformed_section_is_refused_with_its_line() {
    for (text, message) in [
        (
            "1 identity key=unused",
            "custom section `weft.udfs`: does not end with a newline",
        ),
        (
            "1 identity\nidentity key=unused\n",
            "line 2: does not start with a version",
        ),
        (
            "1 identity key:unused\n",
            "line 1: a fact is not `name=value`",
        ),
        (
            "1 split key=unused\n",
            "line 1: `split` is not a UDF of this module",
        ),
    ] {
        let e = validate(&with_section(text)).expect_err(text);
        assert!(e.to_string().contains(message), "{text:?}: {e}");
    }
    let huge = "1 identity\n".repeat(7000);
    let e = validate(&with_section(&huge)).unwrap_err();
    assert!(e.to_string().contains("over 64 KiB"), "{e}");
}
