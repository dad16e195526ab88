//! [`Values`]: the values of one key, as a `group_reduce` UDF receives them.

use std::fmt;
use std::marker::PhantomData;

use crate::codec::Decode;
use crate::glue::{BinaryArray, Failure, ValueSlot};

/// Iterates the values of one group, decoded as `V`.
///
/// In a module, the glue builds it over the input batch: values are decoded lazily, one per
/// [`next`](Iterator::next), borrowing from the batch when `V` does (`&str`, `&[u8]`). If a value
/// fails to decode, iteration ends there and the glue reports the decode error as the UDF's error
/// once the function returns (whatever the function returned), so a UDF need not check for it.
///
/// In a native unit test, build it from a list with [`Values::from_slices`] or
/// [`Values::from_strs`]:
///
/// ```
/// use weft_guest::{Decimal, Values};
///
/// let values: Values<'_, Decimal<u32>> = Values::from_strs(&["3", "4"]);
/// assert_eq!(values.len(), 2);
/// assert_eq!(values.map(|d| d.0).sum::<u32>(), 7);
///
/// let bytes = [b"\xff".as_slice(), b""];
/// let raw: Values<'_, &[u8]> = Values::from_slices(&bytes);
/// assert_eq!(raw.collect::<Vec<_>>(), bytes);
/// ```
pub struct Values<'a, V> {
    source: Source<'a>,
    /// Index (within the group) of the next value to decode.
    next: usize,
    /// Number of values in the group; `next == end` once iteration is over.
    end: usize,
    /// Where a decode error goes for the glue to report; `None` for values built natively, which
    /// panic instead (a failing test is the right outcome there).
    failure: Option<&'a ValueSlot>,
    // `fn() -> V`: Values yields `V`s but owns none, so it is Send/Sync whatever `V` is.
    _decodes: PhantomData<fn() -> V>,
}

#[derive(Clone, Copy)]
enum Source<'a> {
    /// Values `first..first + len` of the batch's values array.
    Batch {
        values: BinaryArray<'a>,
        first: usize,
    },
    Slices(&'a [&'a [u8]]),
    Strs(&'a [&'a str]),
}

impl<'a, V> Values<'a, V> {
    /// Values given as byte slices, for native tests. A value that does not decode as `V` panics.
    pub fn from_slices(values: &'a [&'a [u8]]) -> Self {
        Values::new(Source::Slices(values), values.len(), None)
    }

    /// Values given as strings, for native tests. A value that does not decode as `V` panics.
    pub fn from_strs(values: &'a [&'a str]) -> Self {
        Values::new(Source::Strs(values), values.len(), None)
    }

    /// The glue's constructor: `len` values of `values` starting at `first`.
    pub(crate) fn in_batch(
        values: BinaryArray<'a>,
        first: usize,
        len: usize,
        failure: &'a ValueSlot,
    ) -> Self {
        Values::new(Source::Batch { values, first }, len, Some(failure))
    }

    fn new(source: Source<'a>, end: usize, failure: Option<&'a ValueSlot>) -> Self {
        Values {
            source,
            next: 0,
            end,
            failure,
            _decodes: PhantomData,
        }
    }

    /// Number of values not yet returned (all of them before iterating).
    pub fn len(&self) -> usize {
        self.end - self.next
    }

    /// Whether no value is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fail(&mut self, failure: Failure) {
        self.next = self.end;
        match self.failure {
            // Keep the first failure: later ones cannot happen (iteration stopped), but a UDF could
            // in principle make several `Values` share a slot.
            Some(slot) => slot.record(failure),
            None => panic!("Values: {}", failure.describe_value()),
        }
    }
}

impl<'a, V: Decode<'a>> Iterator for Values<'a, V> {
    type Item = V;

    fn next(&mut self) -> Option<V> {
        if self.next >= self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let bytes = match self.source {
            Source::Batch { values, first } => values.get(first + index),
            Source::Slices(slices) => Ok(slices[index]),
            Source::Strs(strs) => Ok(strs[index].as_bytes()),
        };
        let decoded = bytes.and_then(|bytes| {
            V::decode(bytes).map_err(|error| Failure::group_value(index, bytes, error))
        });
        match decoded {
            Ok(value) => Some(value),
            Err(failure) => {
                self.fail(failure);
                None
            }
        }
    }

    /// Exact unless a value fails to decode, which ends iteration early (and fails the call).
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<V> fmt::Debug for Values<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Values")
            .field("remaining", &self.len())
            .field("type", &std::any::type_name::<V>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decimal;

    #[test]
    fn native_values_decode_lazily() {
        let mut values: Values<'_, &str> = Values::from_strs(&["a", "b", "c"]);
        assert_eq!(values.len(), 3);
        assert_eq!(values.next(), Some("a"));
        assert_eq!(values.len(), 2);
        assert_eq!(values.collect::<Vec<_>>(), ["b", "c"]);
        let mut empty: Values<'_, ()> = Values::from_slices(&[]);
        assert!(empty.is_empty());
        assert_eq!(empty.next(), None);
    }

    #[test]
    #[should_panic(expected = "Values: value 1 (\"x\") is not a decimal integer")]
    fn native_values_panic_on_bad_input() {
        let values: Values<'_, Decimal<u8>> = Values::from_strs(&["1", "x"]);
        values.for_each(drop);
    }

    #[test]
    fn batch_values_record_the_first_failure_and_stop() {
        let offsets = [0, 1, 2, 3, 4];
        let data = b"12x4";
        let array = BinaryArray::new(&offsets, data);
        let slot = ValueSlot::new();
        let values: Values<'_, Decimal<u8>> = Values::in_batch(array, 1, 3, &slot);
        assert_eq!(values.map(|d| d.0).collect::<Vec<_>>(), [2]);
        let failure = slot.check().unwrap_err();
        assert_eq!(
            failure.describe_value(),
            "value 1 (\"x\") is not a decimal integer"
        );
    }
}
