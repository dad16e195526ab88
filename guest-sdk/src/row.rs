//! [`Row`]: a CSV record as a UDF receives it — its fields, unquoted, by index and, when the input
//! has a header, by name. The host parses the CSV (quotes, `""` escapes, quoted newlines, any
//! delimiter); the UDF only reads fields.

use std::fmt;

use weft_abi::row::RowRef;

use crate::codec::{Decode, DecodeError};

/// One CSV record: take it as the value of a UDF over `format = "csv"` input.
///
/// ```
/// use weft_guest::{Decode, Row, abi::row::encode_row};
///
/// let mut value = Vec::new();
/// let names = [&b"symbol"[..], b"volume"];
/// encode_row(&mut value, [&b"ACME"[..], b"12"].into_iter(), Some(&names));
/// let row = Row::decode(&value).unwrap();
/// assert_eq!(row.get(0), Some(&b"ACME"[..]));
/// assert_eq!(row.str("volume"), Ok("12"));
/// assert_eq!(
///     row.str("price").unwrap_err().message(),
///     "has no field \"price\" (its fields: symbol, volume)"
/// );
/// ```
#[derive(Clone, Copy)]
pub struct Row<'a>(RowRef<'a>);

impl<'a> Row<'a> {
    /// The number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Field `i` (from 0), `None` past the last.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.0.get(i)
    }

    /// The field called `name` in the header; `None` without a header or such a column.
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        self.0.field(name.as_bytes())
    }

    /// The field called `name`, or an error naming what is missing, ready to return from the UDF
    /// with `?`.
    pub fn require(&self, name: &str) -> Result<&'a [u8], DecodeError> {
        self.field(name).ok_or_else(|| self.no_field(name))
    }

    /// The field called `name` as text, with an error naming what is missing or not UTF-8, ready
    /// to return from the UDF with `?`.
    pub fn str(&self, name: &str) -> Result<&'a str, DecodeError> {
        let bytes = self.field(name).ok_or_else(|| self.no_field(name))?;
        std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::new(format!("field {name:?} is not valid UTF-8")))
    }

    /// Field `name` decoded as `T` (e.g. `Decimal<u64>`), the error naming the field.
    pub fn parse<T: Decode<'a>>(&self, name: &str) -> Result<T, DecodeError> {
        let bytes = self.field(name).ok_or_else(|| self.no_field(name))?;
        T::decode(bytes).map_err(|e| DecodeError::new(format!("field {name:?} {e}")))
    }

    /// Field `i` decoded as `T`, the error naming its position.
    pub fn parse_at<T: Decode<'a>>(&self, i: usize) -> Result<T, DecodeError> {
        let bytes = self
            .get(i)
            .ok_or_else(|| DecodeError::new(format!("has no field {i} (it has {})", self.len())))?;
        T::decode(bytes).map_err(|e| DecodeError::new(format!("field {i} {e}")))
    }

    /// The header's names, in order, when the input has a header.
    pub fn names(&self) -> Option<impl Iterator<Item = &'a [u8]> + '_> {
        self.0
            .has_names()
            .then(|| (0..self.len()).filter_map(|i| self.0.name(i)))
    }

    /// The fields in order.
    pub fn fields(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.0.fields()
    }

    fn no_field(&self, name: &str) -> DecodeError {
        match self.names() {
            Some(names) => {
                let names: Vec<String> = names
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect();
                DecodeError::new(format!(
                    "has no field {name:?} (its fields: {})",
                    names.join(", ")
                ))
            }
            None => DecodeError::new(format!(
                "has no field {name:?}: the input has no header (set `header = true`, or read \
                 fields by index)"
            )),
        }
    }
}

impl fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<_> = self.fields().map(String::from_utf8_lossy).collect();
        f.debug_tuple("Row").field(&fields).finish()
    }
}

impl<'a> Decode<'a> for Row<'a> {
    fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        RowRef::parse(bytes)
            .map(Row)
            .map_err(|_| DecodeError::new("is not a CSV row (is the input's format \"csv\"?)"))
    }
}
