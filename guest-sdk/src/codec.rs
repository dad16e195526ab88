//! How keys and values turn into Rust types and back: the [`Decode`] and [`Encode`] traits.
//!
//! Weft moves keys and values as plain bytes; a UDF's parameter and return types say how to read
//! and write them. The glue decodes each parameter with [`Decode`] and appends each output with
//! [`Encode`], so the choice of types *is* the record format:
//!
//! | type | bytes |
//! |---|---|
//! | `&[u8]`, `Vec<u8>` | any bytes, as they are (`&[u8]` borrows the input: no copy) |
//! | `&str`, `String` | UTF-8 text; invalid UTF-8 is a decode error |
//! | `()` | anything; decoding ignores the field, encoding writes nothing |
//! | [`Decimal<T>`] | an integer in ASCII decimal (`"42"`, `"-7"`), any std integer type |
//! | [`Le<T>`] | an integer or float in little-endian binary, exactly `size_of::<T>()` bytes |
//! | `Json<T>` (feature `json`, on by default) | a JSON document, through serde |
//!
//! A decode error fails the whole call with a message naming the UDF, the field and the record,
//! e.g. `split_words: value of record 17 is not valid UTF-8`; that is why [`DecodeError`] messages
//! are written as the end of such a sentence.

use std::borrow::Cow;
use std::fmt;

/// Reads a value from the bytes of a key or value.
///
/// `'a` is the lifetime of the input batch, so an implementation may borrow from it (`&'a str`,
/// `&'a [u8]`) and avoid copying. Implement it for your own types to accept them as UDF parameters.
///
/// ```
/// use weft_guest::{Decode, DecodeError};
///
/// /// A flag stored as the single byte `y` or `n`.
/// struct YesNo(bool);
///
/// impl Decode<'_> for YesNo {
///     fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
///         match bytes {
///             b"y" => Ok(YesNo(true)),
///             b"n" => Ok(YesNo(false)),
///             _ => Err(DecodeError::new("is neither `y` nor `n`")),
///         }
///     }
/// }
///
/// assert!(YesNo::decode(b"y").unwrap().0);
/// assert_eq!(YesNo::decode(b"maybe").err().unwrap().to_string(), "is neither `y` nor `n`");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a key or value parameter of a UDF",
    label = "does not implement `weft_guest::Decode`",
    note = "use `&[u8]`, `&str`, `String`, `Vec<u8>`, `()`, `Decimal<T>`, `Le<T>`, `Json<T>`, \
            or implement `Decode` for it"
)]
pub trait Decode<'a>: Sized {
    /// Decodes `bytes`, the whole key or value.
    fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError>;
}

/// Writes a value as the bytes of a key or value.
///
/// Encoding appends to `out` (which already holds earlier records' bytes) and cannot fail: the
/// output is built in place in the reusable output buffers, without a per-record allocation.
///
/// ```
/// use weft_guest::Encode;
///
/// struct Point { x: i32, y: i32 }
///
/// impl Encode for Point {
///     fn encode(&self, out: &mut Vec<u8>) {
///         out.extend_from_slice(format!("{},{}", self.x, self.y).as_bytes());
///     }
/// }
///
/// let mut out = b"earlier".to_vec();
/// Point { x: 1, y: -2 }.encode(&mut out);
/// assert_eq!(out, b"earlier1,-2");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be written as a key or value",
    label = "does not implement `weft_guest::Encode`",
    note = "use `&[u8]`, `&str`, `String`, `Vec<u8>`, `()`, `Decimal<T>`, `Le<T>`, `Json<T>`, \
            or implement `Encode` for it"
)]
pub trait Encode {
    /// Appends the encoded bytes to `out`; never clears it.
    fn encode(&self, out: &mut Vec<u8>);
}

/// Why a key or value could not be decoded.
///
/// The message completes a sentence that starts with the field and the record, as in
/// `sum: value 2 of group 5` + ` ` + `is not a decimal integer`, so write it as a predicate
/// ("is not valid UTF-8", "is 3 bytes long, not 8").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    message: Cow<'static, str>,
}

impl DecodeError {
    /// An error with the given message (see the type's docs for how to phrase it). A `&'static str`
    /// costs no allocation.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        DecodeError {
            message: message.into(),
        }
    }

    /// The message, e.g. `is not valid UTF-8`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

// ---------------------------------------------------------------------------------------------
// Bytes, text and "ignore".

impl<'a> Decode<'a> for &'a [u8] {
    fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Ok(bytes)
    }
}

impl Decode<'_> for Vec<u8> {
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(bytes.to_vec())
    }
}

impl<'a> Decode<'a> for &'a str {
    fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        std::str::from_utf8(bytes).map_err(|_| not_utf8())
    }
}

impl Decode<'_> for String {
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        <&str>::decode(bytes).map(str::to_owned)
    }
}

fn not_utf8() -> DecodeError {
    DecodeError::new("is not valid UTF-8")
}

/// Ignores the field: a UDF that does not look at its key takes `_key: ()` and pays nothing for it.
impl Decode<'_> for () {
    fn decode(_bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(())
    }
}

impl Encode for [u8] {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        append(out, self);
    }
}

/// Appends `bytes` to `out`. Slices of up to 16 bytes (most keys: words, ids) are copied with two
/// fixed-size moves, possibly overlapping, rather than `extend_from_slice`: on wasm32 a copy of
/// variable length compiles to `memory.copy`, which wasmtime runs as a call into the runtime, and
/// for a short word that call costs more than everything else done with it.
#[inline]
pub(crate) fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len > 16 {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(16);
    let at = out.len();
    let dst = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    // SAFETY: `reserve(16)` leaves at least 16 bytes of spare capacity at `dst`, and every write
    // below lies within its first `len <= 16` bytes; together the writes cover all of them (the
    // second of a pair overlaps the first when `len` is less than twice its size), so the first
    // `len` spare bytes are initialised before `set_len` counts them in.
    unsafe {
        if len >= 8 {
            dst.cast::<[u8; 8]>().write_unaligned(head(bytes));
            dst.add(len - 8)
                .cast::<[u8; 8]>()
                .write_unaligned(head(&bytes[len - 8..]));
        } else if len >= 4 {
            dst.cast::<[u8; 4]>().write_unaligned(head(bytes));
            dst.add(len - 4)
                .cast::<[u8; 4]>()
                .write_unaligned(head(&bytes[len - 4..]));
        } else if len > 0 {
            *dst = bytes[0];
            *dst.add(len / 2) = bytes[len / 2];
            *dst.add(len - 1) = bytes[len - 1];
        }
        out.set_len(at + len);
    }
}

/// The first `N` bytes of `bytes`, which has at least that many.
#[inline]
fn head<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// So byte-string literals work directly: `out.emit(word, b"1")`.
impl<const N: usize> Encode for [u8; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Encode for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

/// An empty key or value.
impl Encode for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl<T: Encode + ?Sized> Encode for &mut T {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl<T: Encode + ?Sized> Encode for Box<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl<B: Encode + ToOwned + ?Sized> Encode for Cow<'_, B> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

// ---------------------------------------------------------------------------------------------
// Decimal integers.

/// An integer written in ASCII decimal, the format of counts and sums in most jobs (`"42"`).
///
/// Decoding is strict, so a malformed record fails loudly instead of being read as something else:
/// only the digits `0`-`9`, at least one, with a leading `-` allowed for signed types only (no `+`,
/// no spaces, leading zeros are fine); a value outside the type's range is an error, never a wrap.
/// Encoding writes the shortest form (`-7`, `0`).
///
/// ```
/// use weft_guest::{Decimal, Decode, Encode};
///
/// assert_eq!(Decimal::<u64>::decode(b"0042").unwrap(), Decimal(42));
/// assert_eq!(Decimal::<i8>::decode(b"-128").unwrap(), Decimal(-128));
/// assert!(Decimal::<u8>::decode(b"256").is_err()); // out of range
/// assert!(Decimal::<u32>::decode(b"-1").is_err()); // no sign for unsigned types
/// assert!(Decimal::<i32>::decode(b" 1").is_err());
///
/// let mut out = Vec::new();
/// Decimal(-1234i32).encode(&mut out);
/// assert_eq!(out, b"-1234");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Decimal<T>(pub T);

/// An integer or float in little-endian binary: exactly `size_of::<T>()` bytes, the compact format
/// for numbers that no human reads.
///
/// ```
/// use weft_guest::{Decode, Encode, Le};
///
/// assert_eq!(Le::<u16>::decode(&[0x34, 0x12]).unwrap(), Le(0x1234));
/// assert!(Le::<u32>::decode(&[1, 2, 3]).is_err()); // wrong length
///
/// let mut out = Vec::new();
/// Le(1.5f64).encode(&mut out);
/// assert_eq!(out, 1.5f64.to_le_bytes());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Le<T>(pub T);

fn not_decimal() -> DecodeError {
    DecodeError::new("is not a decimal integer")
}

/// Room for the longest decimal integer: `i128::MIN` has 39 digits and a sign.
const DECIMAL_MAX_LEN: usize = 40;

/// Writes the digits of `n` at the end of `buf` and returns where they start.
macro_rules! write_digits {
    ($buf:ident, $n:expr) => {{
        let mut n = $n;
        let mut start = $buf.len();
        loop {
            start -= 1;
            // `n % 10 < 10`, so the cast cannot truncate.
            $buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break start;
            }
        }
    }};
}

/// After an overflow, tells "too large" from "not a number at all" for a better message.
fn overflow_or_not_decimal(digits: &[u8], ty: &'static str) -> DecodeError {
    if digits.iter().all(u8::is_ascii_digit) {
        DecodeError::new(format!("is out of range for {ty}"))
    } else {
        not_decimal()
    }
}

macro_rules! decimal_unsigned {
    ($($t:ty),*) => {$(
        impl Decode<'_> for Decimal<$t> {
            #[inline]
            fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                if bytes.is_empty() {
                    return Err(not_decimal());
                }
                let mut n: $t = 0;
                // Fewer digits than `MAX` has cannot overflow: skip the checked arithmetic, which
                // costs a 128-bit multiply per digit on wasm32 (no overflow flag there).
                if bytes.len() <= <$t>::MAX.ilog10() as usize {
                    for &b in bytes {
                        let digit = b.wrapping_sub(b'0');
                        if digit > 9 {
                            return Err(not_decimal());
                        }
                        n = n * 10 + <$t>::from(digit);
                    }
                    return Ok(Decimal(n));
                }
                for &b in bytes {
                    let digit = b.wrapping_sub(b'0');
                    if digit > 9 {
                        return Err(not_decimal());
                    }
                    n = match n.checked_mul(10).and_then(|n| n.checked_add(<$t>::from(digit))) {
                        Some(n) => n,
                        None => return Err(overflow_or_not_decimal(bytes, stringify!($t))),
                    };
                }
                Ok(Decimal(n))
            }
        }

        impl Encode for Decimal<$t> {
            fn encode(&self, out: &mut Vec<u8>) {
                let mut buf = [0u8; DECIMAL_MAX_LEN];
                let start = write_digits!(buf, self.0);
                out.extend_from_slice(&buf[start..]);
            }
        }
    )*};
}

macro_rules! decimal_signed {
    ($($t:ty),*) => {$(
        impl Decode<'_> for Decimal<$t> {
            fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                let (negative, digits) = match bytes.split_first() {
                    Some((b'-', rest)) => (true, rest),
                    _ => (false, bytes),
                };
                if digits.is_empty() {
                    return Err(not_decimal());
                }
                // Accumulate towards the sign of the result so that `MIN`, whose magnitude does
                // not fit in the type, parses too.
                let mut n: $t = 0;
                for &b in digits {
                    let digit = b.wrapping_sub(b'0');
                    if digit > 9 {
                        return Err(not_decimal());
                    }
                    let digit = <$t>::from(digit as i8);
                    let next = n.checked_mul(10).and_then(|n| {
                        if negative { n.checked_sub(digit) } else { n.checked_add(digit) }
                    });
                    n = match next {
                        Some(n) => n,
                        None => return Err(overflow_or_not_decimal(digits, stringify!($t))),
                    };
                }
                Ok(Decimal(n))
            }
        }

        impl Encode for Decimal<$t> {
            fn encode(&self, out: &mut Vec<u8>) {
                let mut buf = [0u8; DECIMAL_MAX_LEN];
                let mut start = write_digits!(buf, self.0.unsigned_abs());
                if self.0 < 0 {
                    start -= 1;
                    buf[start] = b'-';
                }
                out.extend_from_slice(&buf[start..]);
            }
        }
    )*};
}

decimal_unsigned!(u8, u16, u32, u64, u128, usize);
decimal_signed!(i8, i16, i32, i64, i128, isize);

// ---------------------------------------------------------------------------------------------
// Little-endian binary numbers.

macro_rules! little_endian {
    ($($t:ty),*) => {$(
        impl Decode<'_> for Le<$t> {
            fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                const SIZE: usize = size_of::<$t>();
                match <[u8; SIZE]>::try_from(bytes) {
                    Ok(array) => Ok(Le(<$t>::from_le_bytes(array))),
                    Err(_) => Err(DecodeError::new(format!(
                        "is {} bytes long, not the {SIZE} bytes of a little-endian {}",
                        bytes.len(),
                        stringify!($t),
                    ))),
                }
            }
        }

        impl Encode for Le<$t> {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0.to_le_bytes());
            }
        }
    )*};
}

little_endian!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

// ---------------------------------------------------------------------------------------------
// JSON.

#[cfg(feature = "json")]
pub use json::Json;

#[cfg(feature = "json")]
mod json {
    use super::{Decode, DecodeError, Encode};

    /// A JSON document, read and written with serde (feature `json`, on by default).
    ///
    /// `T` may borrow from the input (`Json<Event<'a>>` with `#[serde(borrow)]` fields).
    ///
    /// ```
    /// use weft_guest::{Decode, Encode, Json};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Trade { symbol: String, volume: u64 }
    ///
    /// let Json(trade) = Json::<Trade>::decode(br#"{"symbol":"ACME","volume":10}"#).unwrap();
    /// assert_eq!(trade, Trade { symbol: "ACME".into(), volume: 10 });
    ///
    /// let mut out = Vec::new();
    /// Json(&trade).encode(&mut out);
    /// assert_eq!(out, br#"{"symbol":"ACME","volume":10}"#);
    /// ```
    ///
    /// # Panics
    /// Encoding panics (so the call traps) if `T`'s `Serialize` implementation fails, which for
    /// derived implementations only happens for maps whose keys are not strings: a bug in the UDF,
    /// not in the data, so it is not reported as a record error.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct Json<T>(pub T);

    impl<'a, T: serde::Deserialize<'a>> Decode<'a> for Json<T> {
        fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
            serde_json::from_slice(bytes)
                .map(Json)
                .map_err(|e| DecodeError::new(format!("is not valid JSON: {e}")))
        }
    }

    impl<T: serde::Serialize> Encode for Json<T> {
        fn encode(&self, out: &mut Vec<u8>) {
            if let Err(e) = serde_json::to_writer(&mut *out, &self.0) {
                panic!("weft_guest::Json: serializing an output failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_byte_strings_append_exactly() {
        let bytes: Vec<u8> = (1..=40).collect();
        for len in 0..=bytes.len() {
            for before in [0, 3] {
                let mut out = vec![0xee; before];
                append(&mut out, &bytes[..len]);
                let mut want = vec![0xee; before];
                want.extend_from_slice(&bytes[..len]);
                assert_eq!(out, want, "length {len} after {before}");
            }
        }
    }

    fn encoded(value: impl Encode) -> Vec<u8> {
        let mut out = Vec::new();
        value.encode(&mut out);
        out
    }

    #[test]
    fn text_must_be_utf8() {
        assert_eq!(<&str>::decode(b"caf\xc3\xa9").unwrap(), "café");
        assert_eq!(String::decode(b"ok").unwrap(), "ok");
        let err = <&str>::decode(b"\xff").unwrap_err();
        assert_eq!(err.message(), "is not valid UTF-8");
        assert!(String::decode(b"a\xc3").is_err());
    }

    #[test]
    fn bytes_and_unit_accept_anything() {
        assert_eq!(<&[u8]>::decode(b"\xff\x00").unwrap(), b"\xff\x00");
        assert_eq!(Vec::<u8>::decode(b"").unwrap(), b"");
        <()>::decode(b"\xff").unwrap();
        assert_eq!(encoded(()), b"");
        assert_eq!(encoded(b"raw"), b"raw");
        assert_eq!(encoded("text"), b"text");
        assert_eq!(encoded(String::from("s")), b"s");
        assert_eq!(encoded(Cow::Borrowed("cow")), b"cow");
    }

    #[test]
    fn encoding_appends() {
        let mut out = b"ab".to_vec();
        "cd".encode(&mut out);
        Decimal(5u8).encode(&mut out);
        assert_eq!(out, b"abcd5");
    }

    #[test]
    fn decimal_unsigned_is_strict() {
        assert_eq!(Decimal::<u64>::decode(b"0").unwrap().0, 0);
        assert_eq!(
            Decimal::<u64>::decode(b"18446744073709551615").unwrap().0,
            u64::MAX
        );
        assert_eq!(Decimal::<u8>::decode(b"007").unwrap().0, 7);
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"1e3",
            b"x",
            b"-",
        ] {
            let err = Decimal::<u32>::decode(bad).unwrap_err();
            assert_eq!(err.message(), "is not a decimal integer", "{bad:?}");
        }
        let err = Decimal::<u64>::decode(b"18446744073709551616").unwrap_err();
        assert_eq!(err.message(), "is out of range for u64");
        let err = Decimal::<u8>::decode(b"99999x").unwrap_err();
        assert_eq!(err.message(), "is not a decimal integer");
    }

    #[test]
    fn decimal_signed_reaches_both_ends() {
        assert_eq!(Decimal::<i8>::decode(b"-128").unwrap().0, i8::MIN);
        assert_eq!(Decimal::<i8>::decode(b"127").unwrap().0, i8::MAX);
        assert_eq!(Decimal::<i64>::decode(b"-0").unwrap().0, 0);
        assert_eq!(
            Decimal::<i128>::decode(i128::MIN.to_string().as_bytes())
                .unwrap()
                .0,
            i128::MIN
        );
        assert_eq!(
            Decimal::<i8>::decode(b"128").unwrap_err().message(),
            "is out of range for i8"
        );
        assert_eq!(
            Decimal::<i8>::decode(b"-129").unwrap_err().message(),
            "is out of range for i8"
        );
        for bad in [&b""[..], b"-", b"--1", b"+1", b"1-", b"- 1"] {
            assert!(Decimal::<i32>::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decimal_round_trips_extremes() {
        macro_rules! round_trip {
            ($($t:ty),*) => {$(
                for n in [<$t>::MIN, <$t>::MAX, 0, 1, 9, 10] {
                    let bytes = encoded(Decimal(n));
                    assert_eq!(bytes, n.to_string().as_bytes());
                    assert_eq!(Decimal::<$t>::decode(&bytes).unwrap().0, n);
                }
            )*};
        }
        round_trip!(
            u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
        );
    }

    #[test]
    fn little_endian_needs_the_exact_length() {
        assert_eq!(Le::<u32>::decode(&7u32.to_le_bytes()).unwrap().0, 7);
        assert_eq!(Le::<i16>::decode(&(-2i16).to_le_bytes()).unwrap().0, -2);
        assert_eq!(Le::<f32>::decode(&0.25f32.to_le_bytes()).unwrap().0, 0.25);
        assert_eq!(
            Le::<u64>::decode(b"abc").unwrap_err().message(),
            "is 3 bytes long, not the 8 bytes of a little-endian u64"
        );
        assert!(Le::<u8>::decode(b"").is_err());
        assert_eq!(encoded(Le(0x0102u16)), [2, 1]);
        assert_eq!(encoded(Le(-1.0f64)), (-1.0f64).to_le_bytes());
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_round_trips_and_reports_errors() {
        let Json(v) = Json::<Vec<u32>>::decode(b"[1,2]").unwrap();
        assert_eq!(v, [1, 2]);
        let Json(s) = Json::<&str>::decode(br#""borrowed""#).unwrap();
        assert_eq!(s, "borrowed");
        let err = Json::<u32>::decode(b"{").unwrap_err();
        assert!(err.message().starts_with("is not valid JSON: "), "{err}");
        assert_eq!(encoded(Json(vec!["a", "b"])), br#"["a","b"]"#);
    }
}
