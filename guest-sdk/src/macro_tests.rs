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
