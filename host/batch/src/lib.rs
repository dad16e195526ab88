//! Weft's batches: records and groups as Arrow binary arrays, the shapes a UDF call takes and gives,
//! and what readers, shuffles and guests pass around.
//!
//! They use Arrow's `Binary` layout (i32 offsets + data), the same layout the guest ABI uses, so a call
//! copies each buffer once into guest memory and once out, with no per-record encoding. A crate of its
//! own so that what reads and writes batches (weft-io) does not build the sandbox (weft-host, wasmtime).

mod size;

pub use size::{format_size, parse_size};

use arrow_array::{Array, BinaryArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};

/// Parts that do not make a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Records need as many values as keys.
    #[error("{keys} keys but {values} values")]
    Lengths { keys: usize, values: usize },
    /// Group offsets that do not partition the values, one group per key.
    #[error("group offsets: {0}")]
    GroupOffsets(String),
    /// More bytes than a batch (or the guest memory it is going to) can hold.
    #[error("{0}")]
    TooLarge(String),
}

/// A batch of (key, value) records: two binary arrays of equal length.
#[derive(Debug, Clone, PartialEq)]
pub struct Records {
    keys: BinaryArray,
    values: BinaryArray,
}

impl Records {
    /// Pairs two arrays. Nulls are not part of the model: a null is read as an empty string.
    pub fn new(keys: BinaryArray, values: BinaryArray) -> Result<Records, BatchError> {
        if keys.len() != values.len() {
            return Err(BatchError::Lengths {
                keys: keys.len(),
                values: values.len(),
            });
        }
        Ok(Records { keys, values })
    }

    /// An empty batch.
    pub fn empty() -> Records {
        Records::from_pairs(std::iter::empty::<(&[u8], &[u8])>())
    }

    /// Builds a batch from (key, value) pairs.
    ///
    /// # Panics
    /// If the keys or the values add up to more than 2 GiB (Arrow's `Binary` offsets are `i32`).
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Records {
        let mut keys = BinaryBuilder::default();
        let mut values = BinaryBuilder::default();
        for (k, v) in pairs {
            keys.push(k.as_ref());
            values.push(v.as_ref());
        }
        Records {
            keys: keys.finish(),
            values: values.finish(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &BinaryArray {
        &self.keys
    }

    pub fn values(&self) -> &BinaryArray {
        &self.values
    }

    /// The bytes of the records' keys and values (offsets not counted).
    pub fn data_bytes(&self) -> u64 {
        let span = |a: &BinaryArray| {
            let offsets = a.value_offsets();
            (offsets[offsets.len() - 1] - offsets[0]) as u64
        };
        span(&self.keys) + span(&self.values)
    }

    /// `len` records from `offset`, sharing this batch's buffers (no copy).
    pub fn slice(&self, offset: usize, len: usize) -> Records {
        Records {
            keys: self.keys.slice(offset, len),
            values: self.values.slice(offset, len),
        }
    }

    /// Record `i` as borrowed byte slices.
    pub fn get(&self, i: usize) -> (&[u8], &[u8]) {
        (self.keys.value(i), self.values.value(i))
    }

    /// Iterates over the records in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Copies the records out as owned pairs (convenient in tests and small outputs).
    pub fn to_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }
}

/// A batch of groups: one key per group, and the group's values, for `reduce` and `group_reduce`.
///
/// `group_offsets` has one entry more than there are groups; group `g` owns the values at indexes
/// `group_offsets[g]..group_offsets[g + 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    keys: BinaryArray,
    group_offsets: ScalarBuffer<u32>,
    values: BinaryArray,
}

impl Groups {
    /// Checks that the offsets partition the values, one group per key.
    pub fn new(
        keys: BinaryArray,
        group_offsets: ScalarBuffer<u32>,
        values: BinaryArray,
    ) -> Result<Groups, BatchError> {
        let bad = |why: String| Err(BatchError::GroupOffsets(why));
        if group_offsets.len() != keys.len() + 1 {
            return bad(format!(
                "{} keys need {} group offsets, got {}",
                keys.len(),
                keys.len() + 1,
                group_offsets.len()
            ));
        }
        if group_offsets[0] != 0 {
            return bad("group offsets must start at 0".into());
        }
        if group_offsets.windows(2).any(|w| w[0] > w[1]) {
            return bad("group offsets must not decrease".into());
        }
        if group_offsets[keys.len()] as usize != values.len() {
            return bad(format!(
                "group offsets cover {} values, the batch has {}",
                group_offsets[keys.len()],
                values.len()
            ));
        }
        Ok(Groups {
            keys,
            group_offsets,
            values,
        })
    }

    /// Builds a batch of groups from (key, values) pairs.
    ///
    /// # Panics
    /// If the keys or the values add up to more than 2 GiB (Arrow's `Binary` offsets are `i32`).
    pub fn from_groups<K, V, I>(groups: impl IntoIterator<Item = (K, I)>) -> Groups
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        I: IntoIterator<Item = V>,
    {
        let mut keys = BinaryBuilder::default();
        let mut values = BinaryBuilder::default();
        let mut offsets = vec![0u32];
        for (k, vs) in groups {
            keys.push(k.as_ref());
            for v in vs {
                values.push(v.as_ref());
            }
            offsets.push(values.len() as u32);
        }
        Groups {
            keys: keys.finish(),
            group_offsets: offsets.into(),
            values: values.finish(),
        }
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &BinaryArray {
        &self.keys
    }

    pub fn group_offsets(&self) -> &ScalarBuffer<u32> {
        &self.group_offsets
    }

    pub fn values(&self) -> &BinaryArray {
        &self.values
    }
}

/// Accumulates byte strings into a `BinaryArray` without per-item allocation.
#[derive(Debug)]
struct BinaryBuilder {
    offsets: Vec<i32>,
    data: Vec<u8>,
}

impl Default for BinaryBuilder {
    fn default() -> Self {
        BinaryBuilder {
            offsets: vec![0],
            data: Vec::new(),
        }
    }
}

impl BinaryBuilder {
    fn push(&mut self, item: &[u8]) {
        self.data.extend_from_slice(item);
        let end = i32::try_from(self.data.len()).expect("binary batch over 2 GiB");
        self.offsets.push(end);
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn finish(self) -> BinaryArray {
        binary_array(self.offsets, self.data)
    }
}

/// Assembles a `BinaryArray` from offsets already known to be valid (start at 0, non-decreasing,
/// last one equal to the data length), without checking them again.
pub fn binary_array(offsets: Vec<i32>, data: Vec<u8>) -> BinaryArray {
    debug_assert_eq!(offsets.last().copied(), Some(data.len() as i32));
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    BinaryArray::new(offsets, Buffer::from_vec(data), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(items: &[&str]) -> BinaryArray {
        Records::from_pairs(items.iter().map(|i| (*i, "")))
            .keys()
            .clone()
    }

    #[test]
    fn records_need_as_many_values_as_keys() {
        assert_eq!(
            Records::new(binary(&["a", "b"]), binary(&["1"])),
            Err(BatchError::Lengths { keys: 2, values: 1 })
        );
        let records = Records::new(binary(&["a", "b"]), binary(&["1", "2"])).unwrap();
        assert_eq!(records.get(1), (&b"b"[..], &b"2"[..]));
    }

    #[test]
    fn pairs_round_trip() {
        let pairs = vec![
            (b"k1".to_vec(), b"v1".to_vec()),
            (Vec::new(), Vec::new()),
            (b"k3".to_vec(), b"value three".to_vec()),
        ];
        let records = Records::from_pairs(pairs.clone());
        assert_eq!(records.len(), 3);
        assert_eq!(records.to_pairs(), pairs);
        assert!(Records::empty().is_empty());
    }

    #[test]
    fn groups_offsets_must_partition_the_values_one_group_per_key() {
        let keys = || binary(&["a", "b"]);
        let values = || binary(&["1", "2", "3"]);
        let groups = |offsets: Vec<u32>| Groups::new(keys(), offsets.into(), values());
        let refused = |offsets: Vec<u32>| match groups(offsets) {
            Err(BatchError::GroupOffsets(why)) => why,
            other => panic!("expected refused group offsets, got {other:?}"),
        };
        assert!(refused(vec![0, 3]).contains("2 keys need 3 group offsets, got 2"));
        assert!(refused(vec![1, 2, 3]).contains("start at 0"));
        assert!(refused(vec![0, 2, 1]).contains("must not decrease"));
        assert!(refused(vec![0, 1, 2]).contains("cover 2 values, the batch has 3"));

        let ok = groups(vec![0, 1, 3]).unwrap();
        assert_eq!(
            ok,
            Groups::from_groups([("a", vec!["1"]), ("b", vec!["2", "3"])])
        );
        assert_eq!(ok.len(), 2);
        assert_eq!(&ok.group_offsets()[..], &[0, 1, 3]);
    }
}
