//! [`Emitter`]: where `flat_map` and `group_reduce` UDFs write their output records.
//!
//! The emitter *is* the output of a call: two Arrow-style binary arrays (keys and values) that the
//! glue hands to the host as they are. Emitting appends the encoded key and value to them and
//! pushes one offset each, so a record costs no allocation once the buffers have grown to the size
//! of a batch; the glue keeps one emitter for the whole life of the module and clears it (keeping
//! its capacity) before each call.

use crate::codec::Encode;

/// An Arrow variable-size binary array under construction: `offsets` always holds one more entry
/// than there are items, starting at 0.
#[derive(Debug, Clone)]
pub(crate) struct BinaryBuilder {
    pub(crate) offsets: Vec<u32>,
    pub(crate) data: Vec<u8>,
}

impl BinaryBuilder {
    fn new() -> Self {
        BinaryBuilder {
            offsets: vec![0],
            data: Vec::new(),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.offsets.clear();
        self.offsets.push(0);
        self.data.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    #[inline]
    pub(crate) fn push(&mut self, item: impl Encode) {
        item.encode(&mut self.data);
        self.offsets.push(offset(self.data.len()));
    }

    pub(crate) fn get(&self, index: usize) -> Option<&[u8]> {
        let start = *self.offsets.get(index)? as usize;
        let end = *self.offsets.get(index + 1)? as usize;
        self.data.get(start..end)
    }
}

/// Converts a buffer length to an ABI offset. On wasm32 a `Vec` holds less than 2 GiB, so this
/// never fails there; natively it only could for a test that emits more than 4 GiB.
#[inline]
fn offset(len: usize) -> u32 {
    u32::try_from(len).expect("output buffer exceeds the 4 GiB an ABI offset can address")
}

/// Collects the output records of a `flat_map` or `group_reduce` UDF.
///
/// The glue passes one to the UDF; in a native unit test, make one with [`Emitter::new`] and read
/// the records back with [`Emitter::to_records`] or [`Emitter::iter`]:
///
/// ```
/// use weft_guest::{Decimal, Emitter};
///
/// let mut out = Emitter::new();
/// out.emit("word", b"1");
/// out.emit(b"\xff", Decimal(42u64));
/// assert_eq!(out.len(), 2);
/// assert_eq!(
///     out.to_records(),
///     [(b"word".to_vec(), b"1".to_vec()), (b"\xff".to_vec(), b"42".to_vec())]
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Emitter {
    pub(crate) keys: BinaryBuilder,
    pub(crate) values: BinaryBuilder,
}

impl Emitter {
    /// An emitter with no records.
    pub fn new() -> Self {
        Emitter {
            keys: BinaryBuilder::new(),
            values: BinaryBuilder::new(),
        }
    }

    /// Appends one output record, encoding `key` and `value` straight into the output buffers.
    #[inline]
    pub fn emit(&mut self, key: impl Encode, value: impl Encode) {
        self.keys.push(key);
        self.values.push(value);
    }

    /// Number of records emitted so far.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `index` as `(key, value)` bytes.
    pub fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        Some((self.keys.get(index)?, self.values.get(index)?))
    }

    /// The records in the order they were emitted.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        // Both arrays have the same length: `emit` is the only way in.
        (0..self.len()).map(|i| (item(&self.keys, i), item(&self.values, i)))
    }

    /// Copies the records out, for assertions in tests.
    pub fn to_records(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    /// Forgets every record but keeps the memory, so the next batch does not allocate again.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
    }
}

fn item(array: &BinaryBuilder, index: usize) -> &[u8] {
    let (start, end) = (
        array.offsets[index] as usize,
        array.offsets[index + 1] as usize,
    );
    &array.data[start..end]
}

impl Default for Emitter {
    fn default() -> Self {
        Emitter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decimal;

    #[test]
    fn records_come_back_in_order_with_empty_fields() {
        let mut out = Emitter::new();
        assert!(out.is_empty());
        out.emit("", "v");
        out.emit("k", ());
        out.emit(Decimal(-3i32), vec![1u8, 2]);
        let records: Vec<_> = out.iter().collect();
        assert_eq!(
            records,
            [(&b""[..], &b"v"[..]), (b"k", b""), (b"-3", &[1, 2])]
        );
        assert_eq!(out.get(1), Some((&b"k"[..], &b""[..])));
        assert_eq!(out.get(3), None);
        assert_eq!(out.keys.offsets, [0, 0, 1, 3]);
        assert_eq!(out.values.offsets, [0, 1, 1, 3]);
    }

    #[test]
    fn clear_keeps_capacity() {
        let mut out = Emitter::new();
        for i in 0..100u32 {
            out.emit(Decimal(i), "value");
        }
        let capacity = (out.keys.data.capacity(), out.values.offsets.capacity());
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.keys.offsets, [0]);
        assert_eq!(
            (out.keys.data.capacity(), out.values.offsets.capacity()),
            capacity
        );
    }
}
