//! Native modules (`GuestModule::native`): the examples' UDFs compiled into this test binary by the
//! Rust SDK must answer exactly as their wasm modules do, batch for batch, kind for kind, error
//! message for error message, and both exactly as references written here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use weft_guest::native_udfs;
use weft_host::{
    CallError, Groups, GuestInstance, GuestModule, Records, SandboxLimits, UdfKind, ValidationError,
};
use weft_testkit::reference::words;

use crate::{instantiate, read};

pub(crate) fn wordcount_native() -> GuestInstance {
    GuestModule::native(&native_udfs![
        weft_example_wordcount::split_words,
        weft_example_wordcount::sum
    ])
    .unwrap()
    .instantiate(&SandboxLimits::default())
    .unwrap()
}

fn textkit_native() -> GuestInstance {
    use weft_example_textkit as t;
    GuestModule::native(&native_udfs![
        t::upper,
        t::non_empty,
        t::words_with_line,
        t::distinct_sorted,
        t::fail_on_boom,
        t::panic_on_boom,
        t::echo,
        t::burn
    ])
    .unwrap()
    .instantiate(&SandboxLimits::default())
    .unwrap()
}

fn stocks_native() -> GuestInstance {
    GuestModule::native(&native_udfs![
        weft_example_stocks::parse,
        weft_example_stocks::max
    ])
    .unwrap()
    .instantiate(&SandboxLimits::default())
    .unwrap()
}

/// Lines of pseudo-random text (xorshift) with multi-byte UTF-8, invalid UTF-8 and every ASCII
/// whitespace byte, so the comparison needs no data files.
fn lines(count: usize, seed: u64) -> Vec<Vec<u8>> {
    const WORDS: &[&[u8]] = &[
        b"the",
        b"The",
        b"a",
        b"weft",
        "naïve".as_bytes(),
        "日本語".as_bytes(),
        b"\xff\xfe",
        b"x",
        b"don't",
        b"1234",
    ];
    const SPACES: &[&[u8]] = &[b" ", b"\t", b"\x0b", b"\x0c", b"\r", b"  \n"];
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as usize
    };
    (0..count)
        .map(|_| {
            let mut line = Vec::new();
            for _ in 0..next() % 9 {
                line.extend_from_slice(SPACES[next() % SPACES.len()]);
                line.extend_from_slice(WORDS[(next() % WORDS.len()).min(next() % WORDS.len())]);
            }
            line
        })
        .collect()
}

/// Records `(line number, line)`.
fn records(lines: &[Vec<u8>]) -> Records {
    Records::from_pairs(lines.iter().enumerate().map(|(i, l)| (i.to_string(), l)))
}

/// The same records with arrays that are slices of larger ones (offsets not starting at 0), as a
/// batch cut out of a bigger one is.
fn sliced(records: &Records, skip: usize) -> Records {
    let len = records.len() - skip;
    Records::new(
        records.keys().slice(skip, len),
        records.values().slice(skip, len),
    )
    .unwrap()
}

#[test]
fn wordcount_splits_and_sums_exactly_as_its_wasm_module() {
    let mut wasm = instantiate(&read(weft_examples::WORDCOUNT_RUST));
    let mut native = wordcount_native();
    let text = lines(3000, 7);
    let mut reference: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for line in &text {
        for word in words(line) {
            *reference.entry(word.to_vec()).or_default() += 1;
        }
    }

    // Batch by batch, as a task does, with the same instance across batches.
    let mut counts: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for chunk in text.chunks(700) {
        let batch = records(chunk);
        let words = native.flat_map("split_words", &batch).unwrap();
        assert_eq!(words, wasm.flat_map("split_words", &batch).unwrap());
        for (word, one) in words.iter() {
            counts.entry(word.to_vec()).or_default().push(one.to_vec());
        }
    }
    let groups = Groups::from_groups(counts.iter());
    let sums = native.reduce("sum", &groups).unwrap();
    assert_eq!(sums, wasm.reduce("sum", &groups).unwrap());
    let got: BTreeMap<Vec<u8>, u64> = counts
        .keys()
        .zip(sums.iter())
        .map(|(w, n)| {
            let n = std::str::from_utf8(n.unwrap()).unwrap().parse().unwrap();
            (w.clone(), n)
        })
        .collect();
    assert_eq!(got, reference);
}

#[test]
fn sliced_input_arrays_are_rebased() {
    let mut wasm = instantiate(&read(weft_examples::WORDCOUNT_RUST));
    let mut native = wordcount_native();
    let text = lines(200, 11);
    let batch = sliced(&records(&text), 37);
    assert_ne!(
        batch.values().value_offsets()[0],
        0,
        "the slice must be offset"
    );
    let words = native.flat_map("split_words", &batch).unwrap();
    assert_eq!(words, wasm.flat_map("split_words", &batch).unwrap());
    let expected: Vec<&[u8]> = text[37..]
        .iter()
        .flat_map(|l| weft_testkit::reference::words(l))
        .collect();
    let got: Vec<&[u8]> = words.iter().map(|(w, _)| w).collect();
    assert_eq!(got, expected);

    let mut wasm = instantiate(&read(weft_examples::TEXTKIT_RUST));
    let mut native = textkit_native();
    // Line numbers 37.. and their lines, as the sliced batch holds them.
    let expected = records(&text).to_pairs().split_off(37);
    assert!(native.map("echo", &batch).unwrap().to_pairs() == expected);
    assert_eq!(
        native.filter("non_empty", &batch).unwrap(),
        wasm.filter("non_empty", &batch).unwrap()
    );
}

#[test]
fn textkit_gives_the_same_output_for_every_kind() {
    let mut wasm = instantiate(&read(weft_examples::TEXTKIT_RUST));
    let mut native = textkit_native();
    let text = lines(500, 3);
    let batch = records(&text);

    let upper = native.map("upper", &batch).unwrap();
    assert_eq!(upper, wasm.map("upper", &batch).unwrap());
    let expected: Vec<_> = text.iter().map(|l| l.to_ascii_uppercase()).collect();
    assert_eq!(
        upper.iter().map(|(_, v)| v.to_vec()).collect::<Vec<_>>(),
        expected
    );

    let keep = native.filter("non_empty", &batch).unwrap();
    assert_eq!(keep, wasm.filter("non_empty", &batch).unwrap());
    let expected: Vec<bool> = text.iter().map(|l| words(l).next().is_some()).collect();
    assert_eq!(
        keep.iter().map(Option::unwrap).collect::<Vec<_>>(),
        expected
    );

    let postings = native.flat_map("words_with_line", &batch).unwrap();
    assert_eq!(postings, wasm.flat_map("words_with_line", &batch).unwrap());
    let mut index: BTreeMap<&[u8], Vec<&[u8]>> = BTreeMap::new();
    for (word, line) in postings.iter() {
        index.entry(word).or_default().push(line);
    }
    let groups = Groups::from_groups(index.iter());
    let out = native.group_reduce("distinct_sorted", &groups).unwrap();
    assert_eq!(out, wasm.group_reduce("distinct_sorted", &groups).unwrap());
    for ((word, lines), (key, value)) in index.iter().zip(out.iter()) {
        let mut lines = lines.clone();
        lines.sort_unstable();
        lines.dedup();
        assert_eq!((*word, lines.join(&b","[..])), (key, value.to_vec()));
    }

    // Empty batches, of records and of groups.
    assert_eq!(native.map("upper", &Records::empty()).unwrap().len(), 0);
    assert_eq!(
        native.filter("non_empty", &Records::empty()).unwrap().len(),
        0
    );
    let none = Groups::from_groups(std::iter::empty::<(&str, Vec<&str>)>());
    assert_eq!(
        native.group_reduce("distinct_sorted", &none).unwrap().len(),
        0
    );
}

#[test]
fn stocks_parses_and_keeps_the_largest_volume() {
    let mut wasm = instantiate(&read(weft_examples::STOCKS_RUST));
    let mut native = stocks_native();
    // Rows as the CSV reader hands them over: fields and the header's names.
    let rows = [
        "AAA,2024-01-02,1,2,0.5,1.5,0042",
        "BBB,2024-01-02,1,2,0.5,1.5,7",
        "AAA,2024-01-03,1,2,0.5,1.5,100",
    ];
    let batch = Records::from_pairs(rows.iter().map(|l| ("", quote_row(l))));
    let quotes = native.flat_map("parse", &batch).unwrap();
    assert_eq!(quotes, wasm.flat_map("parse", &batch).unwrap());
    assert_eq!(
        quotes.to_pairs(),
        [("AAA", "42"), ("BBB", "7"), ("AAA", "100")]
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
    );
    let groups = Groups::from_groups([("AAA", vec!["42", "100", "9"]), ("BBB", vec!["7"])]);
    let max = native.reduce("max", &groups).unwrap();
    assert_eq!(max, wasm.reduce("max", &groups).unwrap());
    let max: Vec<_> = max.iter().map(Option::unwrap).collect();
    assert_eq!(max, [&b"100"[..], b"7"]);
}

/// The message a failed call carries, natively and in wasm.
fn guest_message(result: Result<impl std::fmt::Debug, CallError>) -> (String, String) {
    match result {
        Err(CallError::Guest { udf, message }) => (udf, message),
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[test]
fn guest_errors_carry_the_same_message() {
    let mut wasm = instantiate(&read(weft_examples::TEXTKIT_RUST));
    let mut native = textkit_native();
    let batch = Records::from_pairs([("1", "fine"), ("k2", "boom")]);
    let expected = (
        "fail_on_boom".to_owned(),
        "fail_on_boom: record 1: boom: found a bad record with key \"k2\"".to_owned(),
    );
    assert_eq!(guest_message(native.map("fail_on_boom", &batch)), expected);
    assert_eq!(guest_message(wasm.map("fail_on_boom", &batch)), expected);
    // The instance serves the next batch after an error.
    let ok = Records::from_pairs([("1", "fine")]);
    assert_eq!(native.map("fail_on_boom", &ok).unwrap(), ok);

    // A value the glue cannot decode, and an error of the user's reduce.
    let batch = Records::from_pairs([("", "x"), ("", "not a number")]);
    let native_error = guest_message(native.map("burn", &batch));
    assert_eq!(native_error, guest_message(wasm.map("burn", &batch)));
    assert!(
        native_error
            .1
            .starts_with("burn: record 0: burn: the value"),
        "{native_error:?}"
    );

    let mut wasm = instantiate(&read(weft_examples::WORDCOUNT_RUST));
    let mut native = wordcount_native();
    let groups = Groups::from_groups([
        ("a", vec!["1", "2"]),
        ("b", vec!["18446744073709551615", "1"]),
    ]);
    let native_error = guest_message(native.reduce("sum", &groups));
    assert_eq!(native_error, guest_message(wasm.reduce("sum", &groups)));
    assert_eq!(
        native_error.1,
        "sum: group 1: the count 18446744073709551615 + 1 overflows a u64"
    );
    let groups = Groups::from_groups([("a", vec!["1", "x"])]);
    let native_error = guest_message(native.reduce("sum", &groups));
    assert_eq!(native_error, guest_message(wasm.reduce("sum", &groups)));
    assert!(
        native_error
            .1
            .starts_with("sum: value 1 of group 0 (\"x\")"),
        "{native_error:?}"
    );

    let mut wasm = instantiate(&read(weft_examples::STOCKS_RUST));
    let mut native = stocks_native();
    let batch = Records::from_pairs([("", quote_row("AAA,2024-01-02,1,2,0.5,1.5,1x"))]);
    let native_error = guest_message(native.flat_map("parse", &batch));
    assert_eq!(native_error, guest_message(wasm.flat_map("parse", &batch)));
    assert!(
        native_error
            .1
            .contains(r#"the row field "volume" is not a decimal integer"#),
        "{native_error:?}"
    );
}

#[test]
fn a_native_panic_is_a_trap_not_a_crash() {
    let mut native = textkit_native();
    let err = native
        .map("panic_on_boom", &Records::from_pairs([("1", "boom")]))
        .unwrap_err();
    match &err {
        CallError::Trap { udf, trap, .. } => {
            assert_eq!(udf, "panic_on_boom");
            assert!(trap.contains("boom panic"), "{trap}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(err.is_guest_fault());
    // The thread and the instance carry on.
    let ok = Records::from_pairs([("1", "fine")]);
    assert_eq!(native.map("panic_on_boom", &ok).unwrap(), ok);
}

#[test]
fn kinds_and_names_are_checked_as_for_wasm() {
    let mut native = textkit_native();
    let input = Records::from_pairs([("a", "b")]);
    assert!(matches!(
        native.flat_map("upper", &input),
        Err(CallError::KindMismatch {
            actual: UdfKind::Map,
            requested: UdfKind::FlatMap,
            ..
        })
    ));
    assert!(matches!(native.map("nope", &input), Err(CallError::NoSuchUdf(n)) if n == "nope"));

    let module = GuestModule::native(&native_udfs![
        weft_example_wordcount::sum,
        weft_example_wordcount::split_words
    ])
    .unwrap();
    assert!(module.is_native());
    let udfs: Vec<_> = module
        .udfs()
        .iter()
        .map(|u| (u.name.as_str(), u.kind))
        .collect();
    assert_eq!(
        udfs,
        [("split_words", UdfKind::FlatMap), ("sum", UdfKind::Reduce)]
    );
    assert!(
        module.to_artifact().is_err(),
        "a native module has no artifact"
    );
}

#[test]
fn a_bad_list_of_udfs_is_refused() {
    assert!(matches!(
        GuestModule::native(&[]),
        Err(ValidationError::NoUdfs)
    ));
    let twice = native_udfs![
        weft_example_wordcount::sum,
        weft_example_stocks::max,
        weft_example_wordcount::sum
    ];
    assert!(matches!(
        GuestModule::native(&twice),
        Err(ValidationError::DuplicateUdf { name, .. }) if name == "sum"
    ));
    let mut bad = native_udfs![weft_example_wordcount::sum];
    bad[0].name = "not-a-name";
    assert!(matches!(
        GuestModule::native(&bad),
        Err(ValidationError::UnknownWeftExport(export)) if export == "weft_reduce_not-a-name"
    ));
}

#[test]
fn an_interrupt_fails_the_next_native_call() {
    let mut native = textkit_native();
    let flag = Arc::new(AtomicBool::new(false));
    native.set_interrupt(flag.clone());
    let input = Records::from_pairs([("a", "b")]);
    assert_eq!(native.map("echo", &input).unwrap(), input);
    flag.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        native.map("echo", &input),
        Err(CallError::Cancelled { udf }) if udf == "echo"
    ));
    assert!(native.stdout().is_empty() && native.stderr().is_empty());
}

#[test]
fn an_interrupt_fails_the_next_native_combiner_call() {
    let mut native = wordcount_native();
    let flag = Arc::new(AtomicBool::new(false));
    native.set_interrupt(flag.clone());
    let input = Records::from_pairs([("a", "1")]);
    native.combine("sum", &input).unwrap();
    flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let cancelled = |r: Result<_, CallError>, name: &str| matches!(r, Err(CallError::Cancelled { udf }) if udf == name);
    assert!(cancelled(native.combine("sum", &input).map(|_| ()), "sum"));
    assert!(cancelled(native.drain_combiner("sum").map(|_| ()), "sum"));
    // In front of the combiner, the flat_map is the call refused.
    assert!(cancelled(
        native
            .map_into_combiner(UdfKind::FlatMap, "split_words", &input, "sum")
            .map(|_| ()),
        "split_words"
    ));
}

/// A stocks quote row (comma-separated fields, none quoted) in the row encoding, with its header's
/// names.
fn quote_row(fields: &str) -> Vec<u8> {
    let names = ["symbol", "date", "open", "high", "low", "close", "volume"];
    let mut row = Vec::new();
    let fields: Vec<&[u8]> = fields.split(',').map(str::as_bytes).collect();
    weft_abi::row::encode_row(&mut row, fields.into_iter(), Some(&names));
    row
}
