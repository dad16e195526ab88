//! Shapes the attributes must accept, checked natively: each function below only compiles if the
//! generated glue type-checks (the native build passes it to the stand-ins of `glue::check`), and
//! the tests show the functions stay callable as written.

use std::result::Result as StdResult;

use crate::{Decimal, Emitter, Json, Values, filter, flat_map, group_reduce, map, reduce};

/// A return type spelled through an alias: the macros never look at its name.
type Outcome<T> = StdResult<T, String>;

/// A UDF named like the glue's own locals (`key`, `value`, `out`): hygiene keeps them apart.
#[map]
fn key(key: &[u8], value: &[u8]) -> (Vec<u8>, Decimal<usize>) {
    (key.to_vec(), Decimal(value.len()))
}

/// Borrowed output through named lifetimes, exported under another name.
#[map(name = "swap")]
fn swap_fields<'a>(key: &'a str, value: &'a str) -> (&'a str, &'a str) {
    (value, key)
}

/// A raw identifier: the UDF name is `type`.
#[filter]
fn r#type(_key: (), value: &str) -> Outcome<bool> {
    if value.is_empty() {
        return Err("empty".into());
    }
    Ok(value.starts_with('t'))
}

/// Parameters that are patterns, and JSON values.
#[flat_map]
fn pairs(_: (), Json((a, b)): Json<(u32, u32)>, out: &mut Emitter) -> Result<(), &'static str> {
    out.emit(Decimal(a), Decimal(b));
    Ok(())
}

/// A keyed reduce; the key is cloned for each step.
#[reduce]
fn tagged(key: &str, a: String, b: String) -> Outcome<String> {
    Ok(format!("{a}{key}{b}"))
}

/// A group reduce over JSON values that returns a `Result`.
#[group_reduce]
fn total(key: &[u8], values: Values<'_, Json<u64>>, out: &mut Emitter) -> Outcome<()> {
    let sum: u64 = values.map(|Json(v)| v).sum();
    out.emit(key, Json(sum));
    Ok(())
}

#[test]
fn functions_stay_callable() {
    assert_eq!(key(b"k", b"abc"), (b"k".to_vec(), Decimal(3)));
    assert_eq!(swap_fields("k", "v"), ("v", "k"));
    assert_eq!(r#type((), "tea"), Ok(true));
    assert!(r#type((), "").is_err());

    let mut out = Emitter::new();
    pairs((), Json((1, 2)), &mut out).unwrap();
    assert_eq!(out.to_records(), [(b"1".to_vec(), b"2".to_vec())]);

    assert_eq!(tagged("-", "a".into(), "b".into()).unwrap(), "a-b");

    let mut out = Emitter::new();
    total(b"k", Values::from_strs(&["1", "2", "39"]), &mut out).unwrap();
    assert_eq!(out.to_records(), [(b"k".to_vec(), b"42".to_vec())]);
}

// ---------------------------------------------------------------------------------------------
// The native constants the attributes make: the same glue as the wasm exports, called in-process.

mod native {
    use weft_abi::UdfKind;
    use weft_abi::native::{Binary, Input, NativeUdf, Output};

    use super::*;
    use crate::native_udfs;

    /// An owned binary array.
    struct Array {
        offsets: Vec<u32>,
        data: Vec<u8>,
    }

    impl Array {
        fn of(items: &[&str]) -> Array {
            let mut array = Array {
                offsets: vec![0],
                data: Vec::new(),
            };
            for item in items {
                array.data.extend_from_slice(item.as_bytes());
                array.offsets.push(array.data.len() as u32);
            }
            array
        }

        fn view(&self) -> Binary<'_> {
            Binary {
                offsets: &self.offsets,
                data: &self.data,
            }
        }
    }

    /// What a call gave, copied out of the callback.
    #[derive(Debug, PartialEq)]
    struct Copied {
        keys: Vec<Vec<u8>>,
        values: Vec<Vec<u8>>,
        keep: Vec<u8>,
    }

    fn items(binary: &Binary<'_>) -> Vec<Vec<u8>> {
        binary
            .offsets
            .windows(2)
            .map(|w| binary.data[w[0] as usize..w[1] as usize].to_vec())
            .collect()
    }

    fn call(udf: &NativeUdf, input: &Input<'_>) -> Result<Copied, String> {
        let mut result = None;
        (udf.call)(input, &mut |outcome: Result<&Output<'_>, &str>| {
            result = Some(outcome.map_err(str::to_owned).map(|out| Copied {
                keys: items(&out.keys),
                values: items(&out.values),
                keep: out.keep.to_vec(),
            }));
        });
        result.expect("the callback is called once")
    }

    fn records<'a>(keys: &'a Array, values: &'a Array) -> Input<'a> {
        Input {
            count: keys.offsets.len() - 1,
            keys: keys.view(),
            values: values.view(),
            groups: &[],
        }
    }

    fn strings(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn constants_describe_each_udf_under_its_udf_name() {
        let udfs = native_udfs![key, swap_fields, r#type, pairs, tagged, total];
        let described: Vec<_> = udfs.iter().map(|u| (u.kind, u.name)).collect();
        assert_eq!(
            described,
            [
                (UdfKind::Map, "key"),
                (UdfKind::Map, "swap"),
                (UdfKind::Filter, "type"),
                (UdfKind::FlatMap, "pairs"),
                (UdfKind::Reduce, "tagged"),
                (UdfKind::GroupReduce, "total"),
            ]
        );
        assert_eq!(native_udfs![].len(), 0);
    }

    #[test]
    fn record_kinds_run_the_function_over_the_batch() {
        let (keys, values) = (Array::of(&["k1", "k2"]), Array::of(&["abc", ""]));
        let out = call(&__WEFT_NATIVE_key, &records(&keys, &values)).unwrap();
        assert_eq!(out.keys, strings(&["k1", "k2"]));
        assert_eq!(out.values, strings(&["3", "0"]));

        let out = call(&__WEFT_NATIVE_swap_fields, &records(&keys, &values)).unwrap();
        assert_eq!(out.keys, strings(&["abc", ""]));
        assert_eq!(out.values, strings(&["k1", "k2"]));

        let (keys, values) = (Array::of(&["", "", ""]), Array::of(&["tea", "cup", "toy"]));
        let out = call(&__WEFT_NATIVE_type, &records(&keys, &values)).unwrap();
        assert_eq!(out.keep, [1, 0, 1]);
        assert!(out.keys.is_empty() && out.values.is_empty());

        let (keys, values) = (Array::of(&["", ""]), Array::of(&["[1,2]", "[3,4]"]));
        let out = call(&__WEFT_NATIVE_pairs, &records(&keys, &values)).unwrap();
        assert_eq!(out.keys, strings(&["1", "3"]));
        assert_eq!(out.values, strings(&["2", "4"]));
    }

    #[test]
    fn grouped_kinds_run_once_per_group() {
        let (keys, values) = (Array::of(&["-", "+"]), Array::of(&["a", "b", "c", "d"]));
        let groups = [0, 3, 4];
        let input = Input {
            count: 2,
            keys: keys.view(),
            values: values.view(),
            groups: &groups,
        };
        let out = call(&__WEFT_NATIVE_tagged, &input).unwrap();
        assert!(out.keys.is_empty());
        assert_eq!(out.values, strings(&["a-b-c", "d"]));

        let values = Array::of(&["1", "2", "39", "7"]);
        let input = Input {
            values: values.view(),
            ..input
        };
        let out = call(&__WEFT_NATIVE_total, &input).unwrap();
        assert_eq!(out.keys, strings(&["-", "+"]));
        assert_eq!(out.values, strings(&["42", "7"]));
    }

    #[test]
    fn an_empty_batch_gives_empty_output() {
        let out = call(&__WEFT_NATIVE_key, &Input::default()).unwrap();
        assert_eq!(out.keys, Vec::<Vec<u8>>::new());
        let out = call(&__WEFT_NATIVE_tagged, &Input::default()).unwrap();
        assert_eq!(out.values, Vec::<Vec<u8>>::new());
    }

    /// The messages are the wasm exports' own: both come from the same drivers.
    #[test]
    fn failures_carry_the_wasm_messages() {
        let (keys, values) = (Array::of(&["", ""]), Array::of(&["tea", ""]));
        let error = call(&__WEFT_NATIVE_type, &records(&keys, &values)).unwrap_err();
        assert_eq!(error, "type: record 1: empty");

        let (keys, values) = (Array::of(&["k"]), Array::of(&["\u{e9}"]));
        let mut values = values;
        values.data = vec![0xff, 0xfe];
        values.offsets = vec![0, 2];
        let error = call(&__WEFT_NATIVE_swap_fields, &records(&keys, &values)).unwrap_err();
        assert_eq!(
            error,
            "swap: value of record 0 (\"\\xff\\xfe\") is not valid UTF-8"
        );

        let (keys, values) = (Array::of(&["a"]), Array::of(&["1", "x"]));
        let groups = [0, 2];
        let input = Input {
            count: 1,
            keys: keys.view(),
            values: values.view(),
            groups: &groups,
        };
        let error = call(&__WEFT_NATIVE_total, &input).unwrap_err();
        assert!(
            error.starts_with("total: value 1 of group 0 (\"x\")"),
            "{error}"
        );
    }

    #[test]
    fn inconsistent_views_are_abi_failures_not_panics() {
        let (keys, values) = (Array::of(&["a", "b"]), Array::of(&["x"]));
        let error = call(&__WEFT_NATIVE_key, &records(&keys, &values)).unwrap_err();
        assert_eq!(
            error,
            "key: the input breaks the guest ABI: \
             an offsets array does not have one entry more than its items"
        );

        let (keys, values) = (Array::of(&["a"]), Array::of(&["1"]));
        let input = Input {
            count: 1,
            keys: keys.view(),
            values: values.view(),
            groups: &[0],
        };
        let error = call(&__WEFT_NATIVE_tagged, &input).unwrap_err();
        assert!(error.contains("group indexes"), "{error}");

        let bad = Array {
            offsets: vec![0, 9],
            data: b"ab".to_vec(),
        };
        let error = call(&__WEFT_NATIVE_key, &records(&keys, &bad)).unwrap_err();
        assert!(error.contains("out of bounds"), "{error}");
    }

    /// A callback that calls a native UDF in turn gets its own output, not a clash over the
    /// thread's buffers.
    #[test]
    fn a_nested_call_does_not_clash_with_the_outer_one() {
        let (keys, values) = (Array::of(&["k"]), Array::of(&["abcd"]));
        let input = records(&keys, &values);
        let mut seen = Vec::new();
        (__WEFT_NATIVE_key.call)(&input, &mut |outer: Result<&Output<'_>, &str>| {
            let inner = call(&__WEFT_NATIVE_swap_fields, &input).unwrap();
            let outer = outer.unwrap();
            seen.push((items(&outer.values), inner.values));
        });
        assert_eq!(seen, [(strings(&["4"]), strings(&["k"]))]);
    }
}
