//! Every UDF kind through the ABI, with the Rust SDK's textkit example: map, filter, flat_map,
//! group_reduce, errors and panics, kind checks.

use weft_host::{CallError, Groups, Records, UdfKind, ValidatedModule};

use crate::{instantiate, read};

fn textkit() -> weft_host::GuestInstance {
    instantiate(&read(weft_examples::TEXTKIT_RUST))
}

#[test]
fn map_uppercases_values_and_keeps_keys() {
    let mut g = textkit();
    let input = Records::from_pairs([
        ("k1", "hello"),
        ("", "MiXeD 123"),
        ("k3", ""),
        ("k4", "naïve"),
    ]);
    let out = g.map("upper", &input).unwrap();
    assert_eq!(
        out.to_pairs(),
        [
            (b"k1".to_vec(), b"HELLO".to_vec()),
            (b"".to_vec(), b"MIXED 123".to_vec()),
            (b"k3".to_vec(), b"".to_vec()),
            (b"k4".to_vec(), "NAïVE".as_bytes().to_vec()),
        ]
    );
}

#[test]
fn filter_keeps_non_blank_values() {
    let mut g = textkit();
    let input = Records::from_pairs([("a", "x"), ("b", ""), ("c", " \t "), ("d", " y ")]);
    let keep = g.filter("non_empty", &input).unwrap();
    let keep: Vec<bool> = keep.iter().map(|b| b.unwrap()).collect();
    assert_eq!(keep, [true, false, false, true]);
    assert_eq!(g.filter("non_empty", &Records::empty()).unwrap().len(), 0);
}

#[test]
fn flat_map_and_group_reduce_build_an_inverted_index() {
    let mut g = textkit();
    let lines = Records::from_pairs([("l1", "b a b"), ("l2", "a c"), ("l3", ""), ("l10", "c")]);
    let postings = g.flat_map("words_with_line", &lines).unwrap();
    assert_eq!(
        postings.to_pairs(),
        [
            ("b", "l1"),
            ("a", "l1"),
            ("b", "l1"),
            ("a", "l2"),
            ("c", "l2"),
            ("c", "l10")
        ]
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
    );
    let groups = Groups::from_groups([
        ("a", vec!["l2", "l1"]),
        ("b", vec!["l1", "l1"]),
        ("c", vec!["l2", "l10"]),
    ]);
    let index = g.group_reduce("distinct_sorted", &groups).unwrap();
    assert_eq!(
        index.to_pairs(),
        [("a", "l1,l2"), ("b", "l1"), ("c", "l10,l2")]
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
    );
}

#[test]
fn a_guest_error_carries_the_guests_message() {
    let mut g = textkit();
    let input = Records::from_pairs([("1", "fine"), ("2", "boom")]);
    match g.map("fail_on_boom", &input) {
        Err(CallError::Guest { udf, message }) => {
            assert_eq!(udf, "fail_on_boom");
            assert!(message.contains("boom"), "{message}");
        }
        other => panic!("expected a guest error, got {other:?}"),
    }
    // The instance survives a reported error.
    let ok = g
        .map("fail_on_boom", &Records::from_pairs([("1", "fine")]))
        .unwrap();
    assert_eq!(ok.to_pairs(), [(b"1".to_vec(), b"fine".to_vec())]);
}

#[test]
fn a_panic_is_a_trap_with_the_panic_message() {
    let mut g = textkit();
    let err = g
        .map("panic_on_boom", &Records::from_pairs([("1", "boom")]))
        .unwrap_err();
    match &err {
        CallError::Trap { udf, stderr, .. } => {
            assert_eq!(udf, "panic_on_boom");
            assert!(stderr.contains("boom panic"), "stderr: {stderr}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(err.to_string().contains("boom panic"), "{err}");
    assert!(err.is_guest_fault());
}

#[test]
fn large_values_round_trip() {
    let mut g = textkit();
    let big: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
    let input = Records::from_pairs([(vec![7u8; 1 << 20], big.clone()), (vec![], vec![])]);
    let out = g.map("echo", &input).unwrap();
    assert_eq!(out, input);
    // Many batches in a row through the same instance reuse its buffers and stay correct.
    for n in [0usize, 1, 1000, 10] {
        let input = Records::from_pairs((0..n).map(|i| (i.to_string(), "v".repeat(i % 7))));
        assert_eq!(g.map("echo", &input).unwrap(), input);
    }
}

#[test]
fn kind_mismatch_and_unknown_udf_are_refused() {
    let mut g = textkit();
    let input = Records::from_pairs([("a", "b")]);
    match g.flat_map("upper", &input) {
        Err(CallError::KindMismatch {
            name,
            actual,
            requested,
        }) => {
            assert_eq!(
                (name.as_str(), actual, requested),
                ("upper", UdfKind::Map, UdfKind::FlatMap)
            );
        }
        other => panic!("expected a kind mismatch, got {other:?}"),
    }
    assert!(matches!(g.map("nope", &input), Err(CallError::NoSuchUdf(n)) if n == "nope"));
}

#[test]
fn the_module_lists_its_udfs_and_kinds() {
    let bytes = read(weft_examples::TEXTKIT_RUST);
    let module = ValidatedModule::new(crate::engine(), &bytes, &Default::default()).unwrap();
    let udfs: Vec<(String, UdfKind)> = module
        .info()
        .udfs
        .iter()
        .map(|u| (u.name.clone(), u.kind))
        .collect();
    for expected in [
        ("upper", UdfKind::Map),
        ("non_empty", UdfKind::Filter),
        ("words_with_line", UdfKind::FlatMap),
        ("distinct_sorted", UdfKind::GroupReduce),
    ] {
        assert!(
            udfs.contains(&(expected.0.to_owned(), expected.1)),
            "{udfs:?}"
        );
    }
    assert_eq!(module.info().abi_version, 1);
}
