//! Small text UDFs of every kind, for demos and for the host's tests: they exercise each kind of
//! UDF, the error path (`fail_on_boom`), a trap (`panic_on_boom`), large values (`echo`), long
//! tasks (`burn`), and running values that shrink and grow (`shortest`, `longest`).
//!
//! Build the module with `cargo build --release --target wasm32-wasip1 -p weft-example-textkit`; it
//! is `target/wasm32-wasip1/release/weft_example_textkit.wasm` and exports `weft_map_upper`,
//! `weft_filter_non_empty`, `weft_flat_map_words_with_line`, `weft_group_reduce_distinct_sorted`,
//! `weft_reduce_shortest`, `weft_reduce_longest`, `weft_map_fail_on_boom`, `weft_map_panic_on_boom`,
//! `weft_map_echo` and `weft_map_burn`. Run the
//! unit tests natively with `cargo test -p weft-example-textkit`.
//!
//! Keys and values are bytes throughout; none of these UDFs needs UTF-8.

use weft_guest::{
    Decimal, Decode, Emitter, Encode, Values, filter, flat_map, group_reduce, map, reduce,
};

/// The whitespace of these UDFs: space, `\t`, `\n`, `\v` (0x0B), `\f`, `\r`, as C's `isspace` has
/// it (`u8::is_ascii_whitespace` leaves out `\v`), the same set as the word count example.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// The value every `*_on_boom` UDF trips on.
const BOOM: &[u8] = b"boom";

/// Bytes written upper-cased (ASCII letters only) straight into the output buffer, so `upper`
/// allocates nothing per record.
struct AsciiUpper<'a>(&'a [u8]);

impl Encode for AsciiUpper<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.0.iter().map(u8::to_ascii_uppercase));
    }
}

/// Upper-cases the ASCII letters of the value; the key and every other byte are kept.
#[map]
pub fn upper<'a>(key: &'a [u8], value: &'a [u8]) -> (&'a [u8], impl Encode + 'a) {
    (key, AsciiUpper(value))
}

/// Turns a count into a key: `(word, count)` becomes `(count, 1)`, so that a `reduce` summing
/// the ones (word count's `sum`) makes a histogram of counts: how many words occur once, twice...
#[map]
pub fn by_count<'a>(_word: &'a [u8], count: &'a [u8]) -> (&'a [u8], &'static [u8]) {
    (count, b"1")
}

/// Keeps the records whose value has something besides whitespace (space, `\t`, `\n`, `\v`, `\f`,
/// `\r`): empty and blank values are dropped.
#[filter]
pub fn non_empty(_key: (), value: &[u8]) -> bool {
    !value.iter().all(|&b| is_space(b))
}

/// Emits `(word, key)` for each word of the value, a word being a maximal run of bytes other than
/// whitespace (space, `\t`, `\n`, `\v`, `\f`, `\r`). With line numbers as keys, a `group_reduce`
/// such as [`distinct_sorted`] then builds an inverted index: each word with the lines it occurs
/// on.
#[flat_map]
pub fn words_with_line(line_id: &[u8], line: &[u8], out: &mut Emitter) {
    for word in line.split(|&b| is_space(b)).filter(|word| !word.is_empty()) {
        out.emit(word, line_id);
    }
}

/// Emits one record per key: the key, and its distinct values sorted bytewise and joined with `,`.
#[group_reduce]
pub fn distinct_sorted(key: &[u8], values: Values<'_, &[u8]>, out: &mut Emitter) {
    let mut values: Vec<&[u8]> = values.collect();
    values.sort_unstable();
    values.dedup();
    out.emit(key, values.join(&b","[..]));
}

/// Keeps the shorter of two values (of equal lengths, the bytewise smaller): a running value that
/// shrinks, for the host's tests of reduce state kept in place.
#[reduce]
pub fn shortest(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    (a.len(), a).min((b.len(), b)).1
}

/// Keeps the longer of two values (of equal lengths, the bytewise larger): a running value that
/// outgrows the room it was first given, for the host's tests of reduce state that moves.
#[reduce]
pub fn longest(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    (a.len(), a).max((b.len(), b)).1
}

/// Passes records through, but fails the call on a record whose value is `boom`, naming its key:
/// how the host reports a UDF's error.
#[map]
pub fn fail_on_boom<'a>(key: &'a [u8], value: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), String> {
    if value == BOOM {
        return Err(format!(
            "boom: found a bad record with key {:?}",
            String::from_utf8_lossy(key)
        ));
    }
    Ok((key, value))
}

/// Passes records through, but panics with the message `boom panic` on a record whose value is
/// `boom`: in a module the panic is a trap, and its message reaches the host through stderr.
#[map]
pub fn panic_on_boom<'a>(key: &'a [u8], value: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    assert!(value != BOOM, "boom panic");
    (key, value)
}

/// Passes every record through unchanged, for tests of large keys and values.
#[map]
pub fn echo<'a>(key: &'a [u8], value: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    (key, value)
}

/// Passes each record through unchanged after `N` rounds of integer mixing, `N` being the value
/// read as a decimal `u64` (a value that is not one fails the call): a task as long as its input
/// says, so a test can make a job that runs for seconds on a few bytes and cancel it. Guests have
/// no clock, so the work is counted in rounds, not time.
#[map]
pub fn burn<'a>(key: &'a [u8], value: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), String> {
    let Decimal(rounds) = Decimal::<u64>::decode(value)
        .map_err(|e| format!("burn: the value {:?} {e}", String::from_utf8_lossy(value)))?;
    std::hint::black_box(mix_rounds(rounds));
    Ok((key, value))
}

/// `rounds` steps of a multiply-xorshift mixer (splitmix64's finaliser). Each step depends on the
/// one before and has no closed form, so the optimiser can neither skip nor shorten the loop once
/// the result is used (`burn` passes it to `black_box`).
fn mix_rounds(rounds: u64) -> u64 {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..rounds {
        state = state.wrapping_add(i);
        state = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        state = (state ^ (state >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        state ^= state >> 31;
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: impl Encode) -> Vec<u8> {
        let mut out = Vec::new();
        value.encode(&mut out);
        out
    }

    #[test]
    fn upper_changes_only_ascii_letters_of_the_value() {
        let (key, value) = upper(b"k-1", b"Hello, w\xc3\xb6rld 42");
        assert_eq!(key, b"k-1");
        assert_eq!(encoded(value), b"HELLO, W\xc3\xb6RLD 42");
    }

    #[test]
    fn non_empty_ignores_surrounding_whitespace() {
        assert!(non_empty((), b"x"));
        assert!(non_empty((), b"  x \n"));
        assert!(!non_empty((), b""));
        assert!(!non_empty((), b" \t\r\n\x0B\x0C"));
    }

    #[test]
    fn words_carry_their_line() {
        let mut out = Emitter::new();
        words_with_line(b"7", b" to be\tor\x0Bnot ", &mut out);
        words_with_line(b"8", b"", &mut out);
        let records: Vec<_> = out.iter().collect();
        assert_eq!(
            records,
            [
                (&b"to"[..], &b"7"[..]),
                (b"be", b"7"),
                (b"or", b"7"),
                (b"not", b"7")
            ]
        );
    }

    #[test]
    fn distinct_sorted_dedups_and_sorts_bytewise() {
        let mut out = Emitter::new();
        distinct_sorted(
            b"be",
            Values::from_strs(&["3", "10", "3", "1", "B", "a"]),
            &mut out,
        );
        assert_eq!(out.to_records(), [(b"be".to_vec(), b"1,10,3,B,a".to_vec())]);
    }

    #[test]
    fn distinct_sorted_of_one_value_is_that_value() {
        let mut out = Emitter::new();
        distinct_sorted(b"k", Values::from_slices(&[b"".as_slice()]), &mut out);
        assert_eq!(out.to_records(), [(b"k".to_vec(), b"".to_vec())]);
    }

    #[test]
    fn fail_on_boom_names_the_record() {
        assert_eq!(fail_on_boom(b"k", b"fine"), Ok((&b"k"[..], &b"fine"[..])));
        let error = fail_on_boom(b"line 3", b"boom").unwrap_err();
        assert_eq!(error, r#"boom: found a bad record with key "line 3""#);
        // Only the exact value trips it.
        assert!(fail_on_boom(b"k", b"boom!").is_ok());
    }

    #[test]
    #[should_panic(expected = "boom panic")]
    fn panic_on_boom_panics() {
        let _ = panic_on_boom(b"k", b"boom");
    }

    #[test]
    fn panic_on_boom_passes_other_records() {
        assert_eq!(panic_on_boom(b"k", b"v"), (&b"k"[..], &b"v"[..]));
    }

    #[test]
    fn burn_passes_the_record_through() {
        assert_eq!(burn(b"k", b"1000"), Ok((&b"k"[..], &b"1000"[..])));
        assert_eq!(burn(b"k", b"0"), Ok((&b"k"[..], &b"0"[..])));
    }

    #[test]
    fn burn_refuses_a_value_that_is_not_a_count() {
        let error = burn(b"k", b"ten").unwrap_err();
        assert!(error.starts_with(r#"burn: the value "ten" "#), "{error}");
    }

    #[test]
    fn mixing_depends_on_the_number_of_rounds() {
        assert_ne!(mix_rounds(1), mix_rounds(2));
        assert_eq!(mix_rounds(1000), mix_rounds(1000));
    }

    #[test]
    fn by_count_keys_a_one_by_the_count() {
        assert_eq!(by_count(b"word", b"17"), (&b"17"[..], &b"1"[..]));
    }

    #[test]
    fn echo_is_the_identity() {
        let big = vec![0xAB; 1 << 20];
        assert_eq!(echo(b"k", &big), (&b"k"[..], &big[..]));
    }
}
