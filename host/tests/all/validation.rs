//! Every refusal of registration: each names what is wrong.

use weft_host::{UdfKind, ValidatedModule, ValidationError, ValidationLimits};
use weft_testkit::wat::{ABI_V1, ALLOC, FREE, IDENTITY_MAP, MEMORY, guest, module};

use crate::engine;

fn refuse(bytes: &[u8]) -> ValidationError {
    match ValidatedModule::new(engine(), bytes, &ValidationLimits::default()) {
        Ok(m) => panic!("module was accepted: {:?}", m.info()),
        Err(e) => e,
    }
}

#[test]
fn a_minimal_wat_guest_is_accepted() {
    let bytes = guest("", IDENTITY_MAP);
    let module = ValidatedModule::new(engine(), &bytes, &ValidationLimits::default()).unwrap();
    assert_eq!(module.info().udfs.len(), 1);
    assert_eq!(module.info().udfs[0].name, "identity");
    assert_eq!(module.info().udfs[0].kind, UdfKind::Map);
    assert!(module.info().wasi_imports.is_empty());
}

#[test]
fn not_wasm() {
    let e = refuse(b"#!/bin/sh\necho hello\n");
    assert!(matches!(e, ValidationError::NotWasm(_)), "{e}");
    assert!(e.to_string().contains("magic"), "{e}");
    assert!(matches!(refuse(b""), ValidationError::NotWasm(_)));
}

#[test]
fn truncated_wasm() {
    let full = std::fs::read(weft_examples::WORDCOUNT_RUST).unwrap();
    for cut in [9, full.len() / 2, full.len() - 1] {
        let e = refuse(&full[..cut]);
        assert!(
            matches!(e, ValidationError::Invalid(_)),
            "cut at {cut}: {e}"
        );
    }
}

#[test]
fn a_component_is_not_a_core_module() {
    let e = refuse(b"\0asm\x0d\0\x01\0");
    assert!(e.to_string().contains("component"), "{e}");
}

#[test]
fn missing_abi_version_export() {
    let e = refuse(&module(&[MEMORY, ALLOC, FREE, IDENTITY_MAP]));
    assert!(
        matches!(
            e,
            ValidationError::MissingExport {
                name: "weft_abi_version",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("weft_abi_version"), "{e}");
}

#[test]
fn missing_memory_alloc_or_free() {
    let e = refuse(&module(&[
        r#"(memory 1)"#,
        ABI_V1,
        ALLOC,
        FREE,
        IDENTITY_MAP,
    ]));
    assert!(
        matches!(e, ValidationError::MissingExport { name: "memory", .. }),
        "{e}"
    );
    let e = refuse(&module(&[MEMORY, ABI_V1, FREE, IDENTITY_MAP]));
    assert!(
        matches!(
            e,
            ValidationError::MissingExport {
                name: "weft_alloc",
                ..
            }
        ),
        "{e}"
    );
    let e = refuse(&module(&[MEMORY, ABI_V1, ALLOC, IDENTITY_MAP]));
    assert!(
        matches!(
            e,
            ValidationError::MissingExport {
                name: "weft_free",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn wrong_abi_version() {
    let e = refuse(&module(&[
        MEMORY,
        r#"(func (export "weft_abi_version") (result i32) i32.const 2)"#,
        ALLOC,
        FREE,
        IDENTITY_MAP,
    ]));
    assert!(
        matches!(
            e,
            ValidationError::AbiVersion {
                found: 2,
                expected: 1
            }
        ),
        "{e}"
    );
}

#[test]
fn imports_the_sandbox_does_not_provide() {
    let e = refuse(&guest(
        r#"(import "env" "open_socket" (func (param i32) (result i32)))"#,
        IDENTITY_MAP,
    ));
    match &e {
        ValidationError::ForbiddenImport { module, name, kind } => {
            assert_eq!(
                (module.as_str(), name.as_str(), *kind),
                ("env", "open_socket", "function")
            );
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("env::open_socket"), "{e}");

    let e = refuse(&guest(
        r#"(import "wasi_snapshot_preview1" "no_such_call" (func))"#,
        IDENTITY_MAP,
    ));
    assert!(matches!(e, ValidationError::ForbiddenImport { .. }), "{e}");

    // A real WASI function with the wrong signature.
    let e = refuse(&guest(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32) (result i32)))"#,
        IDENTITY_MAP,
    ));
    assert!(
        matches!(e, ValidationError::ImportTypeMismatch { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("fd_write"), "{e}");

    // Imported memory, globals and tables are not provided either.
    let e = refuse(&module(&[
        r#"(import "env" "memory" (memory 1))"#,
        ABI_V1,
        ALLOC,
        FREE,
        IDENTITY_MAP,
    ]));
    assert!(
        matches!(e, ValidationError::ForbiddenImport { kind: "memory", .. }),
        "{e}"
    );
    let e = refuse(&guest(r#"(import "env" "g" (global i32))"#, IDENTITY_MAP));
    assert!(
        matches!(e, ValidationError::ForbiddenImport { kind: "global", .. }),
        "{e}"
    );
}

#[test]
fn over_the_size_limit() {
    let bytes = guest("", IDENTITY_MAP);
    let limits = ValidationLimits {
        max_module_bytes: bytes.len() - 1,
        ..ValidationLimits::default()
    };
    match ValidatedModule::new(engine(), &bytes, &limits) {
        Err(ValidationError::TooLarge { size, limit }) => {
            assert_eq!((size, limit), (bytes.len(), bytes.len() - 1))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn udf_exports_must_be_well_formed() {
    let e = refuse(&guest(
        "",
        r#"(func (export "weft_map_bad") (param i32 i32) (result i32) i32.const 0)"#,
    ));
    match &e {
        ValidationError::WrongExportType {
            name,
            expected,
            found,
        } => {
            assert_eq!(name, "weft_map_bad");
            assert_eq!(expected, "[i32] -> [i32]");
            assert_eq!(found, "[i32, i32] -> [i32]");
        }
        other => panic!("{other}"),
    }
    let e = refuse(&guest(
        "",
        r#"(func (export "weft_mapp_x") (param i32) (result i32) i32.const 0)"#,
    ));
    assert!(
        matches!(e, ValidationError::UnknownWeftExport(ref n) if n == "weft_mapp_x"),
        "{e}"
    );
    let e = refuse(&guest(
        "",
        r#"(func (export "weft_map_x") (param i32) (result i32) i32.const 0)
           (func (export "weft_filter_x") (param i32) (result i32) i32.const 0)"#,
    ));
    assert!(matches!(e, ValidationError::DuplicateUdf { .. }), "{e}");
    let e = refuse(&guest("", ""));
    assert!(matches!(e, ValidationError::NoUdfs), "{e}");
    let e = refuse(&guest(
        "",
        r#"(global (export "weft_map_g") i32 (i32.const 0))"#,
    ));
    assert!(matches!(e, ValidationError::WrongExportType { .. }), "{e}");
}

#[test]
fn a_trapping_initializer_is_refused() {
    let e = refuse(&guest(
        "",
        &format!(r#"{IDENTITY_MAP} (func (export "_initialize") unreachable)"#),
    ));
    assert!(matches!(e, ValidationError::Startup(_)), "{e}");
    assert!(e.to_string().contains("_initialize"), "{e}");
}

#[test]
fn an_endless_initializer_is_stopped() {
    let e = refuse(&guest(
        "",
        &format!(r#"{IDENTITY_MAP} (func (export "_initialize") (loop br 0))"#),
    ));
    assert!(matches!(e, ValidationError::Startup(_)), "{e}");
}

#[test]
fn every_example_module_is_accepted_with_its_udf_table() {
    use UdfKind::*;
    // The matrix's word counts (every SDK language) also have `long_words`; the hand-written WAT
    // one has the original two.
    let wordcount = [
        ("long_words", Filter),
        ("split_words", FlatMap),
        ("sum", Reduce),
    ];
    let wat_wordcount = [("split_words", FlatMap), ("sum", Reduce)];
    let stocks = [("max", Reduce), ("parse", FlatMap)];
    let logfilter = [("errors", Filter), ("service_msg", Map)];
    let invindex = [("postings", GroupReduce), ("terms", FlatMap)];
    let textkit = [
        ("burn", Map),
        ("by_count", Map),
        ("distinct_sorted", GroupReduce),
        ("echo", Map),
        ("fail_on_boom", Map),
        ("longest", Reduce),
        ("non_empty", Filter),
        ("panic_on_boom", Map),
        ("shortest", Reduce),
        ("upper", Map),
        ("words_with_line", FlatMap),
    ];
    let mut modules: Vec<(&str, &[(&str, UdfKind)])> = vec![
        (weft_examples::WORDCOUNT_WAT, &wat_wordcount[..]),
        (weft_examples::TEXTKIT_RUST, &textkit[..]),
    ];
    for &(scenario, _, path) in weft_examples::MATRIX {
        let expected = match scenario {
            "wordcount" => &wordcount[..],
            "stocks" => &stocks[..],
            "logfilter" => &logfilter[..],
            "invindex" => &invindex[..],
            other => panic!("no UDF table for the scenario {other}"),
        };
        modules.push((path, expected));
    }
    for (path, expected) in modules {
        let bytes = std::fs::read(path).unwrap();
        let m = ValidatedModule::new(engine(), &bytes, &ValidationLimits::default())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let got: Vec<(&str, UdfKind)> = m
            .info()
            .udfs
            .iter()
            .map(|u| (u.name.as_str(), u.kind))
            .collect();
        assert_eq!(got, expected, "{path}");
        assert_eq!(m.info().abi_version, 1, "{path}");
    }
}
