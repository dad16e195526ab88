//! The row encoding: how a CSV record reaches a UDF as one value — its fields, already unquoted,
//! and, when the file has a header, the header's names — so that no UDF parses CSV itself.
//!
//! It is a value encoding, not part of the call ABI: a value in this layout is bytes like any
//! other. All integers are little-endian `u32`:
//!
//! ```text
//! n        number of fields
//! named    1 if the names follow the fields, else 0
//! len[n]   each field's length
//! nlen[n]  each name's length            (only when named = 1)
//! bytes    the fields, one after another, then the names, one after another
//! ```
//!
//! For example, the row `ACME,12` of a file with header `symbol,volume` is
//! `02000000 01000000 04000000 02000000 06000000 06000000 "ACME" "12" "symbol" "volume"`.

use alloc::vec::Vec;

/// Appends the row encoding of `fields` (and `names`, which must be as many, when given) to
/// `out`.
pub fn encode_row<'a, N: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    fields: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
    names: Option<&[N]>,
) {
    let n = fields.len();
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&u32::from(names.is_some()).to_le_bytes());
    for field in fields.clone() {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    }
    if let Some(names) = names {
        for name in names {
            out.extend_from_slice(&(name.as_ref().len() as u32).to_le_bytes());
        }
    }
    for field in fields {
        out.extend_from_slice(field);
    }
    if let Some(names) = names {
        for name in names {
            out.extend_from_slice(name.as_ref());
        }
    }
}

/// How many bytes [`encode_row`] appends for `fields` and `names`.
pub fn encoded_len<'a, N: AsRef<[u8]>>(
    fields: impl ExactSizeIterator<Item = &'a [u8]>,
    names: Option<&[N]>,
) -> usize {
    let n = fields.len();
    let names_len = names.map_or(0, |names| {
        4 * names.len() + names.iter().map(|n| n.as_ref().len()).sum::<usize>()
    });
    8 + 4 * n + fields.map(<[u8]>::len).sum::<usize>() + names_len
}

/// The row encoding of many rows that share one set of names (a CSV file's header) or none, with
/// the names' part built once. [`RowEncoder::encode`] appends a row whose fields lie one after
/// another in one buffer (as a CSV parser leaves them) in three copies and a length per field,
/// where [`encode_row`] makes two copies per field and two per name: a reader of a wide CSV file
/// spent a fifth of its time in those copies.
#[derive(Debug, Clone, Default)]
pub struct RowEncoder {
    /// The names' count, when the rows have names.
    names: Option<usize>,
    /// The names' lengths, encoded, then their bytes: the two runs the encoding puts after the
    /// fields' lengths and after the fields' bytes.
    name_lengths: Vec<u8>,
    name_bytes: Vec<u8>,
}

impl RowEncoder {
    /// An encoder of rows with these `names`, or of rows without names.
    pub fn new<N: AsRef<[u8]>>(names: Option<&[N]>) -> RowEncoder {
        let mut encoder = RowEncoder::default();
        if let Some(names) = names {
            encoder.names = Some(names.len());
            for name in names {
                let name = name.as_ref();
                encoder
                    .name_lengths
                    .extend_from_slice(&(name.len() as u32).to_le_bytes());
                encoder.name_bytes.extend_from_slice(name);
            }
        }
        encoder
    }

    /// How many names each row carries, when it carries names.
    pub fn names(&self) -> Option<usize> {
        self.names
    }

    /// How many bytes [`RowEncoder::encode`] appends for `fields` fields of `bytes` bytes in all.
    pub fn encoded_len(&self, fields: usize, bytes: usize) -> usize {
        8 + 4 * fields + bytes + self.name_lengths.len() + self.name_bytes.len()
    }

    /// Appends the row whose fields are `data` cut at `ends`: field `i` is
    /// `data[ends[i - 1]..ends[i]]` (the first from 0), so `ends` ascends and its last is at most
    /// `data.len()`; bytes after it are not part of the row. The rows have as many fields as the
    /// encoder has names, when it has names.
    ///
    /// # Panics
    /// When an end is past `data` or before the end before it.
    pub fn encode(&self, out: &mut Vec<u8>, data: &[u8], ends: &[usize]) {
        let data = &data[..ends.last().copied().unwrap_or(0)];
        out.reserve(self.encoded_len(ends.len(), data.len()));
        out.extend_from_slice(&(ends.len() as u32).to_le_bytes());
        out.extend_from_slice(&u32::from(self.names.is_some()).to_le_bytes());
        let mut start = 0;
        for &end in ends {
            let len = end.checked_sub(start).expect("field ends ascend");
            out.extend_from_slice(&(len as u32).to_le_bytes());
            start = end;
        }
        out.extend_from_slice(&self.name_lengths);
        out.extend_from_slice(data);
        out.extend_from_slice(&self.name_bytes);
    }
}

/// A row read in place from its encoding.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    n: usize,
    named: bool,
    /// The lengths: `n`, then `n` more when named, as raw little-endian `u32`s.
    lengths: &'a [u8],
    /// The fields' bytes, then the names'.
    data: &'a [u8],
    /// Where the names start in `data`.
    names_at: usize,
}

/// Why bytes are not a row encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotARow;

impl<'a> RowRef<'a> {
    /// Reads `bytes` as a row, checking every length against the bytes there are.
    pub fn parse(bytes: &'a [u8]) -> Result<RowRef<'a>, NotARow> {
        let word = |i: usize| -> Result<usize, NotARow> {
            let at = i.checked_mul(4).ok_or(NotARow)?;
            let b = bytes.get(at..at + 4).ok_or(NotARow)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let n = word(0)?;
        let named = match word(1)? {
            0 => false,
            1 => true,
            _ => return Err(NotARow),
        };
        let count = if named {
            n.checked_mul(2).ok_or(NotARow)?
        } else {
            n
        };
        let header = count
            .checked_add(2)
            .and_then(|w| w.checked_mul(4))
            .ok_or(NotARow)?;
        let lengths = bytes.get(8..header).ok_or(NotARow)?;
        let data = &bytes[header..];
        let (mut fields, mut total) = (0usize, 0usize);
        for i in 0..count {
            total = total.checked_add(word(2 + i)?).ok_or(NotARow)?;
            if i + 1 == n {
                fields = total;
            }
        }
        if total != data.len() {
            return Err(NotARow);
        }
        Ok(RowRef {
            n,
            named,
            lengths,
            data,
            names_at: fields,
        })
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Whether the row carries its header's names.
    pub fn has_names(&self) -> bool {
        self.named
    }

    fn length(&self, i: usize) -> usize {
        let b = &self.lengths[i * 4..i * 4 + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// The `i`th of the `count` strings starting at length index `first`, whose bytes start at
    /// `base`.
    fn nth(&self, first: usize, base: usize, i: usize) -> &'a [u8] {
        let start = base + (0..i).map(|j| self.length(first + j)).sum::<usize>();
        &self.data[start..start + self.length(first + i)]
    }

    /// Field `i` (from 0).
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        (i < self.n).then(|| self.nth(0, 0, i))
    }

    /// Name `i` (from 0), when the row has names.
    pub fn name(&self, i: usize) -> Option<&'a [u8]> {
        (self.named && i < self.n).then(|| self.nth(self.n, self.names_at, i))
    }

    /// The field named `name` (the first, if the header repeats it). One pass over the lengths.
    pub fn field(&self, name: &[u8]) -> Option<&'a [u8]> {
        if !self.named {
            return None;
        }
        let (mut field_at, mut name_at) = (0, self.names_at);
        for i in 0..self.n {
            let (field_len, name_len) = (self.length(i), self.length(self.n + i));
            if &self.data[name_at..name_at + name_len] == name {
                return Some(&self.data[field_at..field_at + field_len]);
            }
            field_at += field_len;
            name_at += name_len;
        }
        None
    }

    /// The fields in order.
    pub fn fields(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.n).map(|i| self.nth(0, 0, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_names() {
        let fields: [&[u8]; 3] = [b"ACME", b"", b"a,\"b\"\nc"];
        let names: [&[u8]; 3] = [b"symbol", b"note", b"text"];
        let mut named = Vec::new();
        encode_row(&mut named, fields.iter().copied(), Some(&names));
        assert_eq!(
            encoded_len(fields.iter().copied(), Some(&names)),
            named.len()
        );
        let row = RowRef::parse(&named).unwrap();
        assert_eq!(row.len(), 3);
        assert!(row.has_names());
        assert_eq!(row.fields().collect::<Vec<_>>(), fields);
        assert_eq!(row.name(2), Some(&b"text"[..]));
        assert_eq!(row.field(b"symbol"), Some(&b"ACME"[..]));
        assert_eq!(row.field(b"nope"), None);
        assert_eq!(row.get(3), None);

        let mut plain = Vec::new();
        encode_row::<&[u8]>(&mut plain, fields.iter().copied(), None);
        let row = RowRef::parse(&plain).unwrap();
        assert!(!row.has_names());
        assert_eq!(row.get(2), Some(fields[2]));
        assert_eq!(row.name(0), None);
        assert_eq!(row.field(b"symbol"), None);
    }

    #[test]
    fn a_row_encoder_writes_what_encode_row_writes() {
        let rows: [&[&[u8]]; 5] = [
            &[b"ACME", b"", b"a,\"b\"\nc"],
            &[b"", b"", b""],
            &[b"x", b"yy", b"zzz"],
            &[b"only"],
            &[],
        ];
        let names: [&[u8]; 3] = [b"symbol", b"", b"text"];
        for row in rows {
            // The fields one after another, as a CSV parser leaves them, with bytes after the
            // record that are not part of it.
            let mut data = Vec::new();
            let mut ends = Vec::new();
            for field in row {
                data.extend_from_slice(field);
                ends.push(data.len());
            }
            data.extend_from_slice(b"left over");
            let named = (row.len() == names.len()).then_some(&names[..]);
            for names in [named, None] {
                let mut want = b"before".to_vec();
                encode_row(&mut want, row.iter().copied(), names);
                let encoder = RowEncoder::new(names);
                let mut got = b"before".to_vec();
                encoder.encode(&mut got, &data, &ends);
                assert_eq!(got, want, "{row:?} {names:?}");
                assert_eq!(
                    encoder.encoded_len(ends.len(), ends.last().copied().unwrap_or(0)),
                    encoded_len(row.iter().copied(), names)
                );
                assert_eq!(encoder.names(), names.map(<[&[u8]]>::len));
            }
        }
    }

    #[test]
    fn the_documented_example() {
        let mut out = Vec::new();
        encode_row(
            &mut out,
            [&b"ACME"[..], b"12"].into_iter(),
            Some(&[&b"symbol"[..], b"volume"]),
        );
        let mut want = Vec::new();
        for w in [2u32, 1, 4, 2, 6, 6] {
            want.extend_from_slice(&w.to_le_bytes());
        }
        want.extend_from_slice(b"ACME12symbolvolume");
        assert_eq!(out, want);
    }

    #[test]
    fn malformed_rows_are_refused() {
        let mut good = Vec::new();
        encode_row::<&[u8]>(&mut good, [&b"ab"[..]].into_iter(), None);
        for bad in [
            &good[..good.len() - 1],
            &good[..4],
            &[][..],
            &[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0][..],
            &[255, 255, 255, 255, 1, 0, 0, 0][..],
        ] {
            assert_eq!(RowRef::parse(bad).unwrap_err(), NotARow, "{bad:?}");
        }
        let mut long = good.clone();
        long.push(b'x');
        assert!(RowRef::parse(&long).is_err());
    }
}
