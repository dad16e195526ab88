//! Largest daily volume per stock symbol, from CSV quotes with a header naming the columns
//! `symbol` and `volume` (and any others): `parse` reads each row's two fields by name, through the
//! SDK's [`Row`], into `(symbol, volume)` records, and `max` keeps the largest volume of each
//! symbol. Weft parses the CSV (quoting, any delimiter); the UDF only reads fields.
//!
//! Build the module with `cargo build --release --target wasm32-wasip1 -p weft-example-stocks`; it
//! is `target/wasm32-wasip1/release/weft_example_stocks.wasm` and exports `weft_flat_map_parse` and
//! `weft_reduce_max`. Run the unit tests natively with `cargo test -p weft-example-stocks`.

use weft_guest::{Decimal, Emitter, Row, flat_map, reduce};

/// Emits `(symbol, volume)` for a quote row; the key (where the row is) is ignored.
///
/// A row without a `symbol` or `volume` column, or whose volume is not a non-negative decimal
/// integer, fails the call with a message naming the field; Weft adds the file and line. The
/// volume is re-encoded, so `0042` comes out as `42`.
#[flat_map]
pub fn parse(_key: (), row: Row<'_>, out: &mut Emitter) -> Result<(), String> {
    let symbol = row.require("symbol").map_err(|e| format!("the row {e}"))?;
    let volume: Decimal<u64> = row.parse("volume").map_err(|e| format!("the row {e}"))?;
    out.emit(symbol, volume);
    Ok(())
}

/// Keeps the larger of two decimal volumes.
#[reduce]
pub fn max(a: Decimal<u64>, b: Decimal<u64>) -> Decimal<u64> {
    a.max(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_guest::Decode;
    use weft_guest::abi::row::encode_row;

    /// Output records as `(key, value)` bytes.
    type Records = Vec<(Vec<u8>, Vec<u8>)>;

    const NAMES: [&[u8]; 7] = [
        b"symbol", b"date", b"open", b"high", b"low", b"close", b"volume",
    ];

    fn parsed(fields: &[&[u8]], names: Option<&[&[u8]]>) -> Result<Records, String> {
        let mut value = Vec::new();
        encode_row(&mut value, fields.iter().copied(), names);
        let mut out = Emitter::new();
        parse((), Row::decode(&value).unwrap(), &mut out)?;
        Ok(out.to_records())
    }

    #[test]
    fn emits_symbol_and_volume_by_name() {
        let row: [&[u8]; 7] = [
            b"ACME",
            b"2024-01-02",
            b"10.5",
            b"11",
            b"10",
            b"10.75",
            b"0012345",
        ];
        assert_eq!(
            parsed(&row, Some(&NAMES)).unwrap(),
            [(b"ACME".to_vec(), b"12345".to_vec())]
        );
        // Columns in another order, and others besides: found by name.
        let names: [&[u8]; 3] = [b"volume", b"note", b"symbol"];
        assert_eq!(
            parsed(&[b"7", b"x, y", b"ZETA"], Some(&names)).unwrap(),
            [(b"ZETA".to_vec(), b"7".to_vec())]
        );
    }

    #[test]
    fn a_missing_column_or_header_is_named() {
        let names: [&[u8]; 2] = [b"symbol", b"vol"];
        assert_eq!(
            parsed(&[b"A", b"1"], Some(&names)).unwrap_err(),
            r#"the row has no field "volume" (its fields: symbol, vol)"#
        );
        let error = parsed(&[b"A", b"1"], None).unwrap_err();
        assert!(error.contains("the input has no header"), "{error}");
    }

    #[test]
    fn a_bad_volume_names_the_field() {
        let row: [&[u8]; 7] = [b"ACME", b"d", b"1", b"1", b"1", b"1", b"12.5"];
        assert_eq!(
            parsed(&row, Some(&NAMES)).unwrap_err(),
            r#"the row field "volume" is not a decimal integer"#
        );
        let row: [&[u8]; 7] = [b"ACME", b"d", b"1", b"1", b"1", b"1", b"-3"];
        assert!(parsed(&row, Some(&NAMES)).is_err());
    }

    #[test]
    fn max_keeps_the_larger_volume() {
        assert_eq!(max(Decimal(3), Decimal(12)), Decimal(12));
        assert_eq!(max(Decimal(12), Decimal(3)), Decimal(12));
    }
}
