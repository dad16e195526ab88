//! A `reduce`'s combiner in the guest (ABI.md §3a): map output folded where it was produced, then
//! drained, must give exactly the counts a reference computes on its own, through wasm and native
//! builds alike; and every way a combiner can be missing, misdeclared or broken is reported.

use std::collections::BTreeMap;

use weft_host::{
    CallError, GuestInstance, Records, UdfKind, ValidatedModule, ValidationError, ValidationLimits,
};
use weft_testkit::reference::words;
use weft_testkit::wat::{IDENTITY_MAP, guest};

use crate::native::wordcount_native;
use crate::wordcount::corpus;
use crate::{engine, instantiate, read};

fn wordcount_wasm() -> GuestInstance {
    instantiate(&read(weft_examples::WORDCOUNT_RUST))
}

type Counts = BTreeMap<Vec<u8>, u64>;

/// Adds drained records into `counts`, checking each key comes once per drain.
fn add_drained(counts: &mut Counts, drained: &Records) {
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in drained.iter() {
        assert!(seen.insert(key.to_vec()), "key {key:?} drained twice");
        let n: u64 = std::str::from_utf8(value).unwrap().parse().unwrap();
        *counts.entry(key.to_vec()).or_default() += n;
    }
}

/// Word count of `lines` in batches of 700 lines: split and combined in the guest, drained after
/// the batches listed in `drain_after` and at the end.
fn combined_counts(guest: &mut GuestInstance, lines: &[Vec<u8>], drain_after: &[usize]) -> Counts {
    let mut counts = Counts::new();
    for (i, chunk) in lines.chunks(700).enumerate() {
        let input = Records::from_pairs(chunk.iter().map(|l| (b"", l)));
        let folded = guest
            .map_into_combiner(UdfKind::FlatMap, "split_words", &input, "sum")
            .unwrap();
        assert!(folded.held > 0, "a fold of words leaves something held");
        let words: usize = chunk
            .iter()
            .map(|l| {
                // The guest's separators: ASCII whitespace and \v.
                l.split(|b| b" \t\n\x0b\x0c\r".contains(b))
                    .filter(|w| !w.is_empty())
                    .count()
            })
            .sum();
        assert_eq!(
            folded.records, words,
            "the fold counts the map's output records"
        );
        if drain_after.contains(&i) {
            add_drained(&mut counts, &guest.drain_combiner("sum").unwrap());
        }
    }
    add_drained(&mut counts, &guest.drain_combiner("sum").unwrap());
    assert!(
        guest.drain_combiner("sum").unwrap().is_empty(),
        "a drain empties the combiner"
    );
    counts
}

fn reference(lines: &[Vec<u8>]) -> Counts {
    let mut counts = Counts::new();
    for line in lines {
        for word in words(line) {
            *counts.entry(word.to_vec()).or_default() += 1;
        }
    }
    counts
}

#[test]
fn word_count_combined_in_the_guest_is_exact_whenever_it_is_drained() {
    let lines = corpus(5000, 0xc0b1);
    let expected = reference(&lines);
    for guest in [&mut wordcount_wasm(), &mut wordcount_native()] {
        assert!(guest.has_combiner("sum"));
        assert!(!guest.has_combiner("split_words"));
        assert_eq!(combined_counts(guest, &lines, &[]), expected);
        // Drained early and often: partial sums, still exact once added up.
        assert_eq!(combined_counts(guest, &lines, &[0, 1, 4]), expected);
    }
}

#[test]
fn records_from_the_host_fold_into_running_values() {
    for guest in [&mut wordcount_wasm(), &mut wordcount_native()] {
        let batch = |pairs: &[(&str, &str)]| Records::from_pairs(pairs.iter().copied());
        guest
            .combine("sum", &batch(&[("b", "2"), ("a", "007"), ("b", "40")]))
            .unwrap();
        let folded = guest
            .combine(
                "sum",
                &batch(&[("a", "1"), ("c", "18446744073709551614"), ("c", "1")]),
            )
            .unwrap();
        assert!(folded.held > 0);
        assert_eq!(folded.records, 3);
        // First-seen order; a lone value comes back normalised, as a reduce group of one does.
        assert_eq!(
            guest.drain_combiner("sum").unwrap().to_pairs(),
            [
                (b"b".to_vec(), b"42".to_vec()),
                (b"a".to_vec(), b"8".to_vec()),
                (b"c".to_vec(), b"18446744073709551615".to_vec()),
            ]
        );
        guest.combine("sum", &batch(&[("z", "09")])).unwrap();
        assert_eq!(
            guest.drain_combiner("sum").unwrap().to_pairs(),
            [(b"z".to_vec(), b"9".to_vec())]
        );
    }
}

#[test]
fn a_failing_fold_names_the_reduce_and_the_record_and_leaves_nothing_held() {
    for guest in [&mut wordcount_wasm(), &mut wordcount_native()] {
        let bad = Records::from_pairs([("a", "1"), ("b", "2"), ("a", "abc")]);
        match guest.combine("sum", &bad) {
            Err(CallError::Guest { udf, message }) => {
                assert_eq!(udf, "sum");
                assert!(message.contains("record 2"), "{message}");
                assert!(message.contains("abc"), "{message}");
            }
            other => panic!("expected the guest's error, got {other:?}"),
        }
        assert!(guest.drain_combiner("sum").unwrap().is_empty());

        // An overflow is the UDF's own error, raised while folding.
        let overflow = Records::from_pairs([("a", "18446744073709551615"), ("a", "1")]);
        match guest.combine("sum", &overflow) {
            Err(CallError::Guest { message, .. }) => {
                assert!(message.contains("overflows"), "{message}")
            }
            other => panic!("expected the overflow error, got {other:?}"),
        }
        // The instance goes on working.
        guest
            .combine("sum", &Records::from_pairs([("a", "1")]))
            .unwrap();
        assert_eq!(guest.drain_combiner("sum").unwrap().len(), 1);
    }
}

#[test]
fn only_a_map_or_a_flat_map_feeds_a_combiner() {
    // The kind is checked before anything runs.
    let mut guest = wordcount_wasm();
    let input = Records::from_pairs([("", "a b")]);
    match guest.map_into_combiner(UdfKind::FlatMap, "sum", &input, "sum") {
        Err(CallError::KindMismatch { name, actual, .. }) => {
            assert_eq!(name, "sum");
            assert_eq!(actual, UdfKind::Reduce);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        guest.map_into_combiner(UdfKind::Reduce, "sum", &input, "sum"),
        Err(CallError::KindMismatch { .. })
    ));
}

#[test]
fn modules_without_a_combiner_say_so() {
    // The hand-written WAT word count has none (every SDK's reduce has one).
    for path in [weft_examples::WORDCOUNT_WAT] {
        let mut guest = instantiate(&read(path));
        assert!(!guest.has_combiner("sum"), "{path}");
        let input = Records::from_pairs([("", "a b a")]);
        for result in [
            guest.map_into_combiner(UdfKind::FlatMap, "split_words", &input, "sum"),
            guest.combine("sum", &input),
        ] {
            match result {
                Err(e @ CallError::NoCombiner(_)) => {
                    assert!(e.to_string().contains("weft_combine_sum"), "{e}")
                }
                other => panic!("{path}: expected NoCombiner, got {other:?}"),
            }
        }
    }
}

/// A reduce `x` and a combiner whose drain describes records outside the guest's memory.
const LYING_COMBINER: &str = r#"
  (func (export "weft_reduce_x") (param i32) (result i32) i32.const 0)
  (func (export "weft_combine_x") (param $f i32) (param $op i32) (result i32)
    (i32.store offset=24 (local.get $f) (i32.const 3))
    (i32.store offset=28 (local.get $f) (i32.const 0x7ffffff0))
    (i32.store offset=36 (local.get $f) (i32.const 0x7ffffff0))
    (i32.const 0))"#;

#[test]
fn a_combiner_is_checked_at_registration_and_its_output_when_drained() {
    let refuse = |items: &str| {
        ValidatedModule::new(engine(), &guest("", items), &ValidationLimits::default())
            .map(|_| ())
            .unwrap_err()
    };
    // No reduce of that name, or not a reduce.
    for items in [
        format!(
            r#"{IDENTITY_MAP} (func (export "weft_combine_x") (param i32 i32) (result i32) i32.const 0)"#
        ),
        format!(
            r#"{IDENTITY_MAP} (func (export "weft_combine_identity") (param i32 i32) (result i32) i32.const 0)"#
        ),
    ] {
        match refuse(&items) {
            ValidationError::OrphanCombiner { export, name } => {
                assert!(export.starts_with("weft_combine_"));
                assert!(export.ends_with(&name));
            }
            other => panic!("{other}"),
        }
    }
    match refuse(
        r#"(func (export "weft_reduce_x") (param i32) (result i32) i32.const 0)
           (func (export "weft_combine_x") (param i32) (result i32) i32.const 0)"#,
    ) {
        ValidationError::WrongExportType { name, expected, .. } => {
            assert_eq!(name, "weft_combine_x");
            assert_eq!(expected, "[i32, i32] -> [i32]");
        }
        other => panic!("{other}"),
    }

    let mut lying = instantiate(&guest("", LYING_COMBINER));
    assert!(lying.has_combiner("x"));
    match lying.drain_combiner("x") {
        Err(CallError::Abi { udf, detail }) => {
            assert_eq!(udf, "x");
            assert!(detail.contains("outside guest memory"), "{detail}");
        }
        other => panic!("expected an ABI error, got {other:?}"),
    }
}
