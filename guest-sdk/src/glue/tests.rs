//! Native tests of the drivers, with closures shaped like the ones the macros generate.

use super::*;
use crate::{Decimal, Values};

/// An owned binary array, built from items.
struct Array {
    offsets: Vec<u32>,
    data: Vec<u8>,
}

impl Array {
    fn of<T: AsRef<[u8]>>(items: &[T]) -> Array {
        let mut array = Array {
            offsets: vec![0],
            data: Vec::new(),
        };
        for item in items {
            array.data.extend_from_slice(item.as_ref());
            array.offsets.push(array.data.len() as u32);
        }
        array
    }

    fn view(&self) -> BinaryArray<'_> {
        BinaryArray::new(&self.offsets, &self.data)
    }
}

fn message(error: &CallError, udf: &str) -> String {
    error.display(udf).to_string()
}

#[test]
fn map_emits_one_record_per_input() {
    let (keys, values) = (Array::of(&["a", "b"]), Array::of(&["x", "yy"]));
    let input = Records::new(keys.view(), values.view());
    let mut out = Emitter::new();
    run_records(&input, &mut out, |key, value, out| {
        let key: &str = decode_key(key)?;
        let value: &[u8] = decode_value(value)?;
        emit_map_output((value, Decimal(key.len() as u32)), out)
    })
    .unwrap();
    assert_eq!(
        out.to_records(),
        [
            (b"x".to_vec(), b"1".to_vec()),
            (b"yy".to_vec(), b"1".to_vec())
        ]
    );
}

#[test]
fn decode_errors_name_the_field_and_record() {
    let (keys, values) = (
        Array::of(&["a", "b", "c"]),
        Array::of(&[&b"1"[..], b"2", b"\xff"]),
    );
    let input = Records::new(keys.view(), values.view());
    let error = run_records(&input, &mut Emitter::new(), |key, value, _out| {
        let _: &str = decode_key(key)?;
        let _: &str = decode_value(value)?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(
        message(&error, "split_words"),
        "split_words: value of record 2 (\"\\xff\") is not valid UTF-8"
    );

    let error = run_records(&input, &mut Emitter::new(), |key, _value, _out| {
        let _: Decimal<u8> = decode_key(key)?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(
        message(&error, "f"),
        "f: key of record 0 (\"a\") is not a decimal integer"
    );
}

#[test]
fn user_errors_name_the_record() {
    let (keys, values) = (Array::of(&["a", "b"]), Array::of(&["ok", "boom"]));
    let input = Records::new(keys.view(), values.view());
    let error = run_records(&input, &mut Emitter::new(), |key, value, out| {
        let key: &[u8] = decode_key(key)?;
        let value: &[u8] = decode_value(value)?;
        let result = if value == b"boom" {
            Err("boom: bad record")
        } else {
            Ok((key, value))
        };
        emit_map_output(result, out)
    })
    .unwrap_err();
    assert_eq!(message(&error, "m"), "m: record 1: boom: bad record");
}

#[test]
fn filter_writes_one_keep_byte_per_record() {
    let (keys, values) = (Array::of(&["", "", ""]), Array::of(&["x", "", "y"]));
    let input = Records::new(keys.view(), values.view());
    let mut keep = vec![9, 9];
    keep.clear();
    run_filter(&input, &mut keep, |_key, value| {
        let value: &[u8] = decode_value(value)?;
        filter_output(!value.is_empty())
    })
    .unwrap();
    assert_eq!(keep, [1, 0, 1]);

    let error = run_filter(&input, &mut Vec::new(), |_key, _value| {
        filter_output(Err::<bool, _>("no"))
    })
    .unwrap_err();
    assert_eq!(message(&error, "keep"), "keep: record 0: no");
}

#[test]
fn empty_batches_succeed() {
    let input = Records::new(BinaryArray::EMPTY, BinaryArray::EMPTY);
    let mut out = Emitter::new();
    run_records(&input, &mut out, |_, _, _| unreachable!()).unwrap();
    assert!(out.is_empty());
    let groups = Groups::new(BinaryArray::EMPTY, &[], BinaryArray::EMPTY);
    run_reduce(&groups, &mut out, |_| -> Result<(), Failure> {
        unreachable!()
    })
    .unwrap();
    assert_eq!(out.values.offsets, [0]);
}

/// Three groups: `a` = [1, 2, 3], `b` = [40], `c` = [5, 6].
fn sample_groups() -> (Array, Vec<u32>, Array) {
    (
        Array::of(&["a", "b", "c"]),
        vec![0, 3, 4, 6],
        Array::of(&["1", "2", "3", "40", "5", "6"]),
    )
}

#[test]
fn reduce_folds_each_group_and_reencodes_single_values() {
    let (keys, groups, values) = sample_groups();
    let input = Groups::new(keys.view(), &groups, values.view());
    let mut out = Emitter::new();
    let mut steps = Vec::new();
    run_reduce(&input, &mut out, |group| {
        group.fold(|a: Decimal<u64>, b: Decimal<u64>| {
            steps.push((a.0, b.0));
            reduce_output(Decimal(a.0 + b.0))
        })
    })
    .unwrap();
    let values: Vec<&[u8]> = (0..out.values.len())
        .map(|i| out.values.get(i).unwrap())
        .collect();
    assert_eq!(values, [&b"6"[..], b"40", b"11"]);
    // Left to right, within each group.
    assert_eq!(steps, [(1, 2), (3, 3), (5, 6)]);
    assert_eq!(out.len(), 0, "reduce writes values only");
}

#[test]
fn reduce_reports_the_value_and_group() {
    let (keys, groups) = (Array::of(&["a", "b"]), vec![0, 1, 3]);
    let values = Array::of(&["1", "2", "x"]);
    let input = Groups::new(keys.view(), &groups, values.view());
    let error = run_reduce(&input, &mut Emitter::new(), |group| {
        group.fold(|a: Decimal<u64>, b: Decimal<u64>| reduce_output(Decimal(a.0 + b.0)))
    })
    .unwrap_err();
    assert_eq!(
        message(&error, "sum"),
        "sum: value 1 of group 1 (\"x\") is not a decimal integer"
    );

    let error = run_reduce(&input, &mut Emitter::new(), |group| {
        group.fold(|_: Vec<u8>, _: Vec<u8>| reduce_output(Err::<Vec<u8>, _>("overflow")))
    })
    .unwrap_err();
    assert_eq!(message(&error, "sum"), "sum: group 1: overflow");
}

#[test]
fn keyed_reduce_decodes_the_key_even_for_one_value() {
    let (keys, groups, values) = (Array::of(&[b"\xff"]), vec![0, 1], Array::of(&["v"]));
    let input = Groups::new(keys.view(), &groups, values.view());
    let error = run_reduce(&input, &mut Emitter::new(), |group| {
        let key: &str = group.key()?;
        group.fold(|a: String, b: String| reduce_output(format!("{key}{a}{b}")))
    })
    .unwrap_err();
    assert_eq!(
        message(&error, "r"),
        "r: key of group 0 (\"\\xff\") is not valid UTF-8"
    );
}

#[test]
fn group_reduce_sees_all_values_of_each_group() {
    let (keys, groups, values) = sample_groups();
    let input = Groups::new(keys.view(), &groups, values.view());
    let mut out = Emitter::new();
    run_group_reduce(&input, &mut out, |group, out| {
        let key: &str = group.key()?;
        let slot = ValueSlot::new();
        let values: Values<'_, &str> = group.values(&slot);
        let joined = values.collect::<Vec<_>>().join("+");
        slot.check()?;
        out.emit(key, joined);
        unit_output(())
    })
    .unwrap();
    assert_eq!(
        out.to_records(),
        [
            (b"a".to_vec(), b"1+2+3".to_vec()),
            (b"b".to_vec(), b"40".to_vec()),
            (b"c".to_vec(), b"5+6".to_vec())
        ]
    );
}

#[test]
fn group_reduce_reports_a_bad_value_before_the_udf_result() {
    let (keys, groups, values) = (Array::of(&["a"]), vec![0, 3], Array::of(&["1", "x", "3"]));
    let input = Groups::new(keys.view(), &groups, values.view());
    let error = run_group_reduce(&input, &mut Emitter::new(), |group, _out| {
        let slot = ValueSlot::new();
        let values: Values<'_, Decimal<u8>> = group.values(&slot);
        // The UDF sees a short group and fails on its own; the decode error is the one reported.
        let result = if values.count() == 3 {
            Ok(())
        } else {
            Err("short group")
        };
        slot.check()?;
        unit_output(result)
    })
    .unwrap_err();
    assert_eq!(
        message(&error, "g"),
        "g: value 1 of group 0 (\"x\") is not a decimal integer"
    );
}

#[test]
fn bad_offsets_are_reported_not_trusted() {
    let keys = Array::of(&["a", "b"]);
    let values = Array {
        offsets: vec![0, 5, 2],
        data: b"abcde".to_vec(),
    };
    let input = Records::new(keys.view(), values.view());
    let error = run_records(&input, &mut Emitter::new(), |_, _, _| Ok(())).unwrap_err();
    assert_eq!(
        message(&error, "m"),
        "m: the input breaks the guest ABI at record 1: \
         an input offset is out of bounds or decreasing"
    );

    let (keys, values) = (Array::of(&["a"]), Array::of(&["1"]));
    let groups = [0, 2];
    let input = Groups::new(keys.view(), &groups, values.view());
    let error = run_reduce(&input, &mut Emitter::new(), |group| {
        group.fold(|a: Vec<u8>, _: Vec<u8>| Ok(a))
    })
    .unwrap_err();
    assert!(message(&error, "r").contains("value indexes are out of bounds"));

    let groups = [0, 0];
    let input = Groups::new(keys.view(), &groups, values.view());
    let error = run_reduce(&input, &mut Emitter::new(), |group| {
        group.fold(|a: Vec<u8>, _: Vec<u8>| Ok(a))
    })
    .unwrap_err();
    assert!(message(&error, "r").contains("a reduce group has no values"));
}

#[test]
fn export_names_are_checked_against_the_abi() {
    check_export_name(UdfKind::FlatMap, "split_words", "weft_flat_map_split_words");
    let wrong = std::panic::catch_unwind(|| {
        check_export_name(UdfKind::Map, "split_words", "weft_flat_map_split_words")
    });
    assert!(wrong.is_err());
    let too_long = std::panic::catch_unwind(|| check_export_name(UdfKind::Map, "x", "weft_map_xy"));
    assert!(too_long.is_err());
}
