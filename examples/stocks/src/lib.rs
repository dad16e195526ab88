//! Largest daily volume per stock symbol, from CSV quotes: `parse` reads lines of
//! `symbol,date,open,high,low,close,volume` into `(symbol, volume)` records, and `max` keeps the
//! largest volume of each symbol.
//!
//! Build the module with `cargo build --release --target wasm32-wasip1 -p weft-example-stocks`; it
//! is `target/wasm32-wasip1/release/weft_example_stocks.wasm` and exports `weft_flat_map_parse` and
//! `weft_reduce_max`. Run the unit tests natively with `cargo test -p weft-example-stocks`.

use weft_guest::{Decimal, Decode, Emitter, flat_map, reduce};

/// The columns of a quote line; `volume` is the last.
const FIELDS: usize = 7;

/// How much of a bad line an error message quotes: enough to find it, short enough to read.
const QUOTE_LEN: usize = 48;

/// Emits `(symbol, volume)` for a CSV quote line `symbol,date,open,high,low,close,volume`; the key
/// is ignored.
///
/// The header line (`symbol,date,...`) and blank lines emit nothing, and a trailing `\r` (CRLF
/// files) is dropped. A line with a number of fields other than seven, or whose volume is not a
/// non-negative decimal integer, fails the call with a message quoting the start of the line. The
/// volume is re-encoded, so `0042` comes out as `42`.
#[flat_map]
pub fn parse(_key: (), line: &[u8], out: &mut Emitter) -> Result<(), String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) || line.starts_with(b"symbol,date,") {
        return Ok(());
    }
    let mut fields = [&b""[..]; FIELDS];
    let mut count = 0;
    for field in line.split(|&b| b == b',') {
        if let Some(slot) = fields.get_mut(count) {
            *slot = field;
        }
        count += 1;
    }
    if count != FIELDS {
        return Err(format!(
            "line {} has {count} fields, not {FIELDS}",
            quote(line)
        ));
    }
    let [symbol, .., volume] = fields;
    let volume = Decimal::<u64>::decode(volume).map_err(|e| {
        format!(
            "line {}: the volume {} {e}",
            quote(line),
            String::from_utf8_lossy(volume)
        )
    })?;
    out.emit(symbol, volume);
    Ok(())
}

/// Keeps the larger of two decimal volumes.
#[reduce]
pub fn max(a: Decimal<u64>, b: Decimal<u64>) -> Decimal<u64> {
    a.max(b)
}

/// The start of `line`, quoted, for error messages.
fn quote(line: &[u8]) -> String {
    let shown = &line[..line.len().min(QUOTE_LEN)];
    let ellipsis = if shown.len() < line.len() { "..." } else { "" };
    format!(
        "{:?}",
        format!("{}{ellipsis}", String::from_utf8_lossy(shown))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output records as `(key, value)` bytes.
    type Records = Vec<(Vec<u8>, Vec<u8>)>;

    fn parsed(line: &[u8]) -> Result<Records, String> {
        let mut out = Emitter::new();
        parse((), line, &mut out)?;
        Ok(out.to_records())
    }

    #[test]
    fn emits_symbol_and_volume() {
        assert_eq!(
            parsed(b"ACME,2024-01-02,10.5,11,10,10.75,0012345").unwrap(),
            [(b"ACME".to_vec(), b"12345".to_vec())]
        );
    }

    #[test]
    fn tolerates_a_trailing_carriage_return() {
        assert_eq!(
            parsed(b"ACME,2024-01-02,1,1,1,1,7\r").unwrap(),
            [(b"ACME".to_vec(), b"7".to_vec())]
        );
    }

    #[test]
    fn skips_header_and_blank_lines() {
        assert_eq!(
            parsed(b"symbol,date,open,high,low,close,volume").unwrap(),
            []
        );
        assert_eq!(
            parsed(b"symbol,date,open,high,low,close,volume\r").unwrap(),
            []
        );
        assert_eq!(parsed(b"").unwrap(), []);
        assert_eq!(parsed(b"\r").unwrap(), []);
        assert_eq!(parsed(b"  \t").unwrap(), []);
    }

    #[test]
    fn a_wrong_field_count_names_the_line() {
        let error = parsed(b"ACME,2024-01-02,1,2").unwrap_err();
        assert_eq!(error, r#"line "ACME,2024-01-02,1,2" has 4 fields, not 7"#);
        let error = parsed(b"A,d,1,1,1,1,1,extra").unwrap_err();
        assert!(error.contains("has 8 fields"), "{error}");
    }

    #[test]
    fn a_bad_volume_names_the_line() {
        let error = parsed(b"ACME,2024-01-02,1,1,1,1,12.5").unwrap_err();
        assert_eq!(
            error,
            r#"line "ACME,2024-01-02,1,1,1,1,12.5": the volume 12.5 is not a decimal integer"#
        );
        assert!(parsed(b"ACME,2024-01-02,1,1,1,1,-3").is_err());
        assert!(parsed(b"ACME,2024-01-02,1,1,1,1,").is_err());
    }

    #[test]
    fn long_lines_are_quoted_in_part() {
        let line = format!("{},1", "x".repeat(100));
        let error = parsed(line.as_bytes()).unwrap_err();
        assert!(
            error.starts_with(&format!("line \"{}...\"", "x".repeat(QUOTE_LEN))),
            "{error}"
        );
    }

    #[test]
    fn max_keeps_the_larger_volume() {
        assert_eq!(max(Decimal(3), Decimal(12)), Decimal(12));
        assert_eq!(max(Decimal(12), Decimal(3)), Decimal(12));
    }
}
