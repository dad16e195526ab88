//! The combiner of a `reduce` over a value type that can live in the table itself (a
//! [`Decimal`](crate::Decimal) number): each key's running value held decoded, in its slot.
//!
//! The general combiner ([`super::combine`]) holds running values as bytes, so that a `reduce` may
//! take any type, borrowed ones included: each call groups its records by key in one pass, folds
//! them per key in a second, and decodes and encodes each key's running value once. For a
//! `reduce` of `Decimal` numbers (word count's `sum`) that is most of the work: the macros route
//! such a `reduce` here instead, where a record costs one probe, one decode of its value and one
//! call of the user's function, in a single pass, as the C and Zig SDKs' combiners do. The
//! profile of the 1 GB word count put the general combiner's grouping pass alone at 46 % of the
//! job's CPU.
//!
//! # Layout
//! An open-addressing table with linear probing, at most three quarters full: a [`Slot`] holds the
//! key's length, first and last 8 bytes (so a probe for a key of up to 16 bytes, most words, never
//! leaves the table), where its bytes are in the key arena, and the running value. Keys up to 16
//! bytes are hashed from those two words with one multiply; longer ones with foldhash over all
//! their bytes (fixed seed, as in the general combiner: a crafted key set can only slow its own
//! task). A drain gives the keys in the order they first came (the arena's order).

use std::hash::BuildHasher;

use super::{CallError, Failure, Records, Unit};
use crate::codec::{Decode, Encode};
use crate::emitter::Emitter;

/// A running value the table can hold as it is: small, copied freely, borrowing nothing.
pub trait Resident:
    Copy + Default + Send + std::fmt::Debug + 'static + for<'a> Decode<'a> + Encode
{
}

impl<T> Resident for T where
    T: Copy + Default + Send + std::fmt::Debug + 'static + for<'a> Decode<'a> + Encode
{
}

/// One key held (`tag` 0: an empty slot).
#[derive(Debug, Clone, Copy)]
struct Slot<T> {
    /// The key's first 8 bytes, zero-padded.
    head: u64,
    /// For a key over 8 bytes, its last 8 (overlapping `head` under 16 bytes); else 0.
    tail: u64,
    /// The key's length + 1; 0 for an empty slot.
    tag: u32,
    /// Where the key's bytes start in the arena.
    key_at: u32,
    value: T,
}

/// The running values of one `reduce` UDF over a [`Resident`] type, by key.
#[derive(Debug)]
pub(crate) struct Table<T> {
    hasher: foldhash::fast::FixedState,
    slots: Vec<Slot<T>>,
    used: usize,
    keys: Vec<u8>,
}

impl<T: Resident> Table<T> {
    pub(crate) fn new() -> Self {
        Table {
            hasher: foldhash::fast::FixedState::with_seed(0x5745_4654_434f_4d42),
            slots: Vec::new(),
            used: 0,
            keys: Vec::new(),
        }
    }

    fn hash(&self, key: &[u8], head: u64, tail: u64) -> u64 {
        if key.len() <= 16 {
            // Two words and the length say the whole key: one multiply mixes them.
            let mixed = (head ^ tail.rotate_left(23) ^ (key.len() as u64) << 56)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            mixed ^ mixed >> 29
        } else {
            self.hasher.hash_one(key)
        }
    }

    /// Folds every record of `input` into its key's running value with `f`, in arrival order (a
    /// key's first value is held as decoded). A failure names its record; the table then holds
    /// nothing (the task fails, and a half-folded key must not be drained).
    pub(crate) fn fold<F>(&mut self, input: &Records<'_>, mut f: F) -> Result<(), CallError>
    where
        F: FnMut(T, T) -> Result<T, Failure>,
    {
        let (keys, values) = (input.keys(), input.values());
        for i in 0..input.count() {
            let folded = keys.get(i).and_then(|key| {
                let bytes = values.get(i)?;
                let value = super::decode_value::<T>(bytes)?;
                self.fold_one(key, value, &mut f)
            });
            if let Err(e) = folded {
                self.reset();
                return Err(e.at(Unit::Record(i)));
            }
        }
        Ok(())
    }

    #[inline]
    fn fold_one<F>(&mut self, key: &[u8], value: T, f: &mut F) -> Result<(), Failure>
    where
        F: FnMut(T, T) -> Result<T, Failure>,
    {
        if self.used * 4 >= self.slots.len() * 3 {
            self.grow();
        }
        let (head, tail) = (super::combine::prefix(key), super::combine::suffix(key));
        let tag = u32::try_from(key.len() + 1).map_err(|_| Failure::abi("a key is over 4 GiB"))?;
        let mask = self.slots.len() - 1;
        let mut i = self.hash(key, head, tail) as usize & mask;
        loop {
            let slot = &mut self.slots[i];
            if slot.tag == tag
                && slot.head == head
                && slot.tail == tail
                && (key.len() <= 16 || {
                    let at = slot.key_at as usize + 8;
                    self.keys[at..at + key.len() - 16] == key[8..key.len() - 8]
                })
            {
                slot.value = f(slot.value, value)?;
                return Ok(());
            }
            if slot.tag == 0 {
                let key_at = u32::try_from(self.keys.len())
                    .map_err(|_| Failure::abi("a combiner holds 4 GiB of keys"))?;
                self.keys.extend_from_slice(key);
                // A key's first value is normalised, as a `reduce` group of one is: held decoded,
                // it is encoded again at the drain.
                *slot = Slot {
                    head,
                    tail,
                    tag,
                    key_at,
                    value,
                };
                self.used += 1;
                return Ok(());
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let empty = Slot {
            head: 0,
            tail: 0,
            tag: 0,
            key_at: 0,
            value: T::default(),
        };
        let old = std::mem::replace(&mut self.slots, vec![empty; size]);
        let mask = size - 1;
        for slot in old.into_iter().filter(|s| s.tag != 0) {
            let at = slot.key_at as usize;
            let key = &self.keys[at..at + slot.tag as usize - 1];
            let mut i = self.hash(key, slot.head, slot.tail) as usize & mask;
            while self.slots[i].tag != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }

    /// Bytes held: the table and the key arena as allocated.
    pub(crate) fn held(&self) -> usize {
        self.slots.capacity() * size_of::<Slot<T>>() + self.keys.capacity()
    }

    /// Every key held and its value, in the order the keys first came, into `out`; the table holds
    /// nothing after (its memory freed, for the guest's allocator to reuse).
    pub(crate) fn drain(&mut self, out: &mut Emitter) {
        let mut held: Vec<Slot<T>> = self.slots.iter().filter(|s| s.tag != 0).copied().collect();
        // The arena's order; the empty key takes no bytes, so it shares its place with the key
        // after it, and comes first.
        held.sort_unstable_by_key(|slot| (slot.key_at, slot.tag));
        for slot in held {
            let at = slot.key_at as usize;
            out.emit(&self.keys[at..at + slot.tag as usize - 1], slot.value);
        }
        self.reset();
    }

    fn reset(&mut self) {
        self.slots = Vec::new();
        self.keys = Vec::new();
        self.used = 0;
    }
}

/// A table of some [`Resident`] type, as the (untyped) combiner holds it.
pub(crate) trait AnyTable: std::fmt::Debug + Send {
    fn held(&self) -> usize;
    fn drain(&mut self, out: &mut Emitter);
    fn as_any(&mut self) -> &mut dyn std::any::Any;
}

impl<T: Resident> AnyTable for Table<T> {
    fn held(&self) -> usize {
        Table::held(self)
    }

    fn drain(&mut self, out: &mut Emitter) {
        Table::drain(self, out);
    }

    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
