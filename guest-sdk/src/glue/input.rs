//! Read-only views of an input batch: Arrow binary arrays of keys and values, as records or groups.
//!
//! The views never trust an offset: every item access is bounds-checked and a bad offset becomes
//! an ABI failure (reported as the UDF's error) instead of a panic or an out-of-bounds read. The
//! views are built from plain slices, so the drivers that walk them are tested natively; only
//! `wasm.rs` builds them from raw frame pointers.

use crate::codec::{Decode, Encode};
use crate::values::Values;

use super::{Failure, ValueSlot};

/// A list of byte strings in Arrow's variable-size binary layout (ABI.md, "Binary arrays").
#[derive(Debug, Clone, Copy)]
pub struct BinaryArray<'a> {
    /// One more offset than items.
    offsets: &'a [u32],
    data: &'a [u8],
}

impl<'a> BinaryArray<'a> {
    pub const EMPTY: BinaryArray<'static> = BinaryArray {
        offsets: &[],
        data: &[],
    };

    pub fn new(offsets: &'a [u32], data: &'a [u8]) -> Self {
        BinaryArray { offsets, data }
    }

    pub fn count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Item `index`, or an ABI failure if its offsets are out of bounds or decreasing.
    #[inline]
    pub fn get(&self, index: usize) -> Result<&'a [u8], Failure> {
        let item = match (self.offsets.get(index), self.offsets.get(index + 1)) {
            (Some(&start), Some(&end)) => self.data.get(start as usize..end as usize),
            _ => None,
        };
        // Lazily: a `Failure` has a destructor, and this is called once per record.
        item.ok_or_else(|| Failure::abi("an input offset is out of bounds or decreasing"))
    }
}

/// The input of `map`, `filter` and `flat_map`: record `i` is key `i` and value `i`.
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    keys: BinaryArray<'a>,
    values: BinaryArray<'a>,
}

impl<'a> Records<'a> {
    pub fn new(keys: BinaryArray<'a>, values: BinaryArray<'a>) -> Self {
        Records { keys, values }
    }

    /// The keys, as one array.
    pub fn keys(&self) -> BinaryArray<'a> {
        self.keys
    }

    /// The values, as one array.
    pub fn values(&self) -> BinaryArray<'a> {
        self.values
    }

    pub fn count(&self) -> usize {
        self.keys.count()
    }

    #[inline]
    pub fn get(&self, index: usize) -> Result<(&'a [u8], &'a [u8]), Failure> {
        Ok((self.keys.get(index)?, self.values.get(index)?))
    }
}

/// The input of `reduce` and `group_reduce`: group `g` is key `g` with the values at indexes
/// `groups[g]..groups[g + 1]`.
#[derive(Debug, Clone, Copy)]
pub struct Groups<'a> {
    keys: BinaryArray<'a>,
    groups: &'a [u32],
    values: BinaryArray<'a>,
}

impl<'a> Groups<'a> {
    pub fn new(keys: BinaryArray<'a>, groups: &'a [u32], values: BinaryArray<'a>) -> Self {
        Groups {
            keys,
            groups,
            values,
        }
    }

    pub fn count(&self) -> usize {
        self.keys.count()
    }

    pub fn get(&self, index: usize) -> Result<Group<'a>, Failure> {
        let key = self.keys.get(index)?;
        let range = match (self.groups.get(index), self.groups.get(index + 1)) {
            (Some(&first), Some(&end)) if first <= end && end as usize <= self.values.count() => {
                first as usize..end as usize
            }
            _ => {
                return Err(Failure::abi(
                    "a group's value indexes are out of bounds or decreasing",
                ));
            }
        };
        Ok(Group {
            key,
            values: self.values,
            first: range.start,
            len: range.len(),
        })
    }
}

/// One key and its values, handed by the drivers to the code the macros generate.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    key: &'a [u8],
    values: BinaryArray<'a>,
    first: usize,
    len: usize,
}

impl<'a> Group<'a> {
    /// Decodes the group's key.
    pub fn key<K: Decode<'a>>(&self) -> Result<K, Failure> {
        K::decode(self.key).map_err(|e| Failure::key(self.key, e))
    }

    /// The values, decoded lazily; decode errors land in `slot`.
    pub fn values<'s, V>(&self, slot: &'s ValueSlot) -> Values<'s, V>
    where
        'a: 's,
        // Not needed to build `Values`, but it makes a wrong value type fail here, at the
        // parameter, rather than wherever the UDF first iterates.
        V: Decode<'s>,
    {
        Values::in_batch(self.values, self.first, self.len, slot)
    }

    fn value<V: Decode<'a>>(&self, index: usize) -> Result<V, Failure> {
        let bytes = self.values.get(self.first + index)?;
        V::decode(bytes).map_err(|error| Failure::group_value(index, bytes, error))
    }

    /// Folds the values left to right with `combine`. A single value is decoded and returned, so
    /// the output is re-encoded like any other (and a malformed value fails whatever the grouping).
    pub fn fold<V, F>(&self, mut combine: F) -> Result<V, Failure>
    where
        V: Decode<'a> + Encode,
        F: FnMut(V, V) -> Result<V, Failure>,
    {
        if self.len == 0 {
            return Err(Failure::abi("a reduce group has no values"));
        }
        let mut acc = self.value(0)?;
        for index in 1..self.len {
            acc = combine(acc, self.value(index)?)?;
        }
        Ok(acc)
    }
}
