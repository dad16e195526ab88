//! The combiner of a `reduce` UDF, inside the guest (ABI.md §3a): running values by key, held in
//! the module's memory from one call to the next.
//!
//! A map task whose output feeds a `reduce` combines values of equal keys before the shuffle. With
//! the combiner in the guest, the host never sees the map output record by record: `flat_map`
//! leaves its output in guest memory, the combiner folds it in place (one hash and one probe per
//! record, the user's function called on decoded values), and only the combined records cross into
//! the host, when it drains them. Word count's map side then costs about what the same loop costs
//! natively, instead of a copy out, a host-side hash table and a copy back in per batch.
//!
//! # Layout
//! As the host's grouper: key bytes in one arena, one [`Entry`] per key, a hashbrown [`HashTable`]
//! of [`Slot`]s (the key's length, first and last 8 bytes, so most probes settle in the table),
//! and the running values in a second arena, each in a room a little larger than itself so a count
//! that gains a digit is rewritten in place. The hash is foldhash with a fixed seed: a guest has no
//! entropy source without WASI's random call, and a crafted key set can only slow its own task.
//!
//! # The fold
//! A fold call first finds every record's key (one hash and one probe each, independent of one
//! another so the cache misses of a large table overlap) and numbers the keys of the call; then the
//! generated code folds the records in arrival order into one accumulator per key, decoded, and
//! encodes each key's result once. A running value is therefore decoded and encoded once per key
//! and call, not per record, and a key's first value ever is decoded and encoded again
//! (normalised, as a `reduce` group of one is). The generated code does the decoding and encoding,
//! so this code only handles bytes, and the user's types may borrow from their input.

use std::cell::Cell;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Place;

use super::resident::{AnyTable, Resident, Table};
use super::{BinaryArray, CallError, Failure, Records, Unit};
use crate::codec::Encode;
use crate::emitter::Emitter;

/// What the macros generate for a `reduce`: folds the records of a [`Pending`] batch into one
/// accumulator per key (the key's running value, or for a key not seen before its first value),
/// in arrival order, and encodes each key's result, in key order, with [`Results::push`].
pub trait Fold: for<'v> FnMut(&Pending<'v>, &mut Results) -> Result<(), Failure> {}

impl<F> Fold for F where F: for<'v> FnMut(&Pending<'v>, &mut Results) -> Result<(), Failure> {}

/// How the macros' code folds a call's records into a [`Combiner`]: a [`Fold`] over bytes (any
/// `reduce`), or a [`ResidentFold`] over values held decoded (a `reduce` of `Decimal` numbers).
pub trait Folder {
    fn fold_into(self, combiner: &mut Combiner, input: &Records<'_>) -> Result<(), CallError>;
}

impl<F: Fold> Folder for F {
    fn fold_into(self, combiner: &mut Combiner, input: &Records<'_>) -> Result<(), CallError> {
        combiner.fold(input, self)
    }
}

/// A `reduce`'s function over values of a [`Resident`] type, which the combiner holds decoded in
/// its table ([`super::resident`]): what the macros generate for a `reduce` of `Decimal` numbers.
pub struct ResidentFold<T, F>(F, std::marker::PhantomData<fn(T) -> T>);

impl<T, F> std::fmt::Debug for ResidentFold<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResidentFold")
    }
}

impl<T, F> ResidentFold<T, F>
where
    T: Resident,
    F: FnMut(T, T) -> Result<T, Failure>,
{
    pub fn new(f: F) -> Self {
        ResidentFold(f, std::marker::PhantomData)
    }
}

impl<T, F> Folder for ResidentFold<T, F>
where
    T: Resident,
    F: FnMut(T, T) -> Result<T, Failure>,
{
    fn fold_into(self, combiner: &mut Combiner, input: &Records<'_>) -> Result<(), CallError> {
        let table = combiner
            .resident
            .get_or_insert_with(|| Box::new(Table::<T>::new()));
        match table.as_any().downcast_mut::<Table<T>>() {
            Some(table) => table.fold(input, self.0),
            None => Err(Failure::abi("a combiner folded with two value types").into()),
        }
    }
}

/// One fold call's input, as the generated code sees it: the keys of the call (numbered in the
/// order they first came), their running values, and the records, each with its key's number.
#[derive(Debug)]
pub struct Pending<'v> {
    groups: &'v [u32],
    entries: &'v [Entry],
    keys: &'v [u8],
    values: &'v [u8],
    record_group: &'v [u32],
    input: BinaryArray<'v>,
    /// The record read last: where a failure happened.
    current: Cell<usize>,
}

impl<'v> Pending<'v> {
    /// Number of distinct keys in the call.
    pub fn keys(&self) -> usize {
        self.groups.len()
    }

    /// Key `group`'s bytes.
    #[inline]
    pub fn key(&self, group: usize) -> &'v [u8] {
        let e = &self.entries[self.groups[group] as usize];
        &self.keys[e.key_at..e.key_at + e.key_len]
    }

    /// Key `group`'s running value, if it has one from an earlier call.
    #[inline]
    pub fn running(&self, group: usize) -> Option<&'v [u8]> {
        let e = &self.entries[self.groups[group] as usize];
        (e.val_cap > 0).then(|| &self.values[e.val_at..e.val_at + e.val_len])
    }

    /// The records in arrival order: each one's key number and value.
    pub fn records(&self) -> impl Iterator<Item = (usize, Result<&'v [u8], Failure>)> + '_ {
        self.record_group
            .iter()
            .enumerate()
            .map(|(record, &group)| {
                self.current.set(record);
                (group as usize, self.input.get(record))
            })
    }
}

/// The encoded results of a fold call, one per key, in key order.
#[derive(Debug, Default)]
pub struct Results {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Results {
    /// Encodes the next key's result.
    pub fn push(&mut self, value: impl Encode) {
        value.encode(&mut self.data);
        self.ends.push(self.data.len());
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }
}

/// One distinct key held: where its key and running value are.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    key_at: usize,
    key_len: usize,
    val_at: usize,
    val_len: usize,
    /// The room the value may grow into without moving; 0 while the key has no value yet.
    val_cap: usize,
}

/// A key's place in the hash table: enough to settle a probe without reading its entry for a key
/// of up to 16 bytes, and the key's group in the current fold call (so a record never reads its
/// entry either).
///
/// 32 bytes, aligned to 32 so that a slot never straddles two cache lines: on a table larger than
/// the cache, a probe that hits costs one miss for the control bytes and one for the slot, where a
/// slot holding only 8 bytes of the key cost two more for a longer key (its entry, then its bytes);
/// profiling the word count put those two at a third of the probe's time.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
struct Slot {
    /// The key's first 8 bytes, zero-padded.
    head: u64,
    /// For a key over 8 bytes, its last 8 (overlapping `head` under 16 bytes); else 0. With `head`
    /// and `len`, the whole key if it is at most 16 bytes long.
    tail: u64,
    len: u32,
    entry: u32,
    /// The fold call this key last took part in (`Combiner::epoch`), and its group there.
    stamp: u32,
    group: u32,
}

/// The key's first 8 bytes as a little-endian number, zero-padded. Built from fixed-size loads
/// (overlapping for keys of 4 to 7 bytes) rather than a copy of variable length, which on wasm32 is
/// a call into the runtime (see `codec::append`).
#[inline]
pub(super) fn prefix(key: &[u8]) -> u64 {
    let len = key.len();
    let word = |at: usize| {
        u64::from(u32::from_le_bytes([
            key[at],
            key[at + 1],
            key[at + 2],
            key[at + 3],
        ]))
    };
    if len >= 8 {
        word(0) | word(4) << 32
    } else if len >= 4 {
        word(0) | word(len - 4) << (8 * (len - 4))
    } else if len > 0 {
        let byte = |at: usize| u64::from(key[at]) << (8 * at);
        byte(0) | byte(len / 2) | byte(len - 1)
    } else {
        0
    }
}

/// The last 8 bytes of a key over 8 bytes long, as a little-endian number; 0 for a shorter key
/// (whose bytes [`prefix`] holds).
#[inline]
pub(super) fn suffix(key: &[u8]) -> u64 {
    match key.len().checked_sub(8) {
        Some(at) if at > 0 => u64::from_le_bytes(key[at..].try_into().unwrap_or_default()),
        _ => 0,
    }
}

/// The room for a value of `len` bytes: a multiple of 8 (a count gaining a digit stays in place).
fn room(len: usize) -> usize {
    (len.max(1) + 7) & !7
}

/// The running values of one `reduce` UDF, by key.
#[derive(Debug)]
pub struct Combiner {
    hasher: foldhash::fast::FixedState,
    table: HashTable<Slot>,
    entries: Vec<Entry>,
    keys: Vec<u8>,
    values: Vec<u8>,
    /// Numbers the fold calls, so a slot knows whether it has a group in the current one.
    epoch: u32,
    /// Tests only: every key hashes to 0.
    #[cfg(test)]
    colliding: bool,
    /// The entry of each key of the current call, in the order they first came in it.
    groups: Vec<u32>,
    /// Per record of the current call: its key's number in `groups`.
    record_group: Vec<u32>,
    /// The encoded results of the current call.
    results: Results,
    /// The records of the last drain, read by the host until its next call.
    out: Emitter,
    /// The running values of a `reduce` over a [`Resident`] type, held decoded instead of in the
    /// tables above (made by its first [`ResidentFold`]).
    resident: Option<Box<dyn AnyTable>>,
}

impl Default for Combiner {
    fn default() -> Self {
        Combiner::new()
    }
}

impl Combiner {
    /// A combiner holding nothing.
    pub fn new() -> Self {
        Combiner {
            // Any fixed seed does; this one is the SDK's, so runs are reproducible.
            hasher: foldhash::fast::FixedState::with_seed(0x5745_4654_434f_4d42),
            table: HashTable::new(),
            entries: Vec::new(),
            keys: Vec::new(),
            values: Vec::new(),
            epoch: 0,
            #[cfg(test)]
            colliding: false,
            groups: Vec::new(),
            record_group: Vec::new(),
            results: Results::default(),
            out: Emitter::new(),
            resident: None,
        }
    }

    /// Number of distinct keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held for the keys and values: their tables and arenas as allocated (what the guest's
    /// memory really holds), which the host weighs against its budget.
    pub fn held(&self) -> usize {
        self.resident.as_ref().map_or(0, |t| t.held())
            + self.table.allocation_size()
            + self.entries.capacity() * size_of::<Entry>()
            + self.keys.capacity()
            + self.values.capacity()
    }

    /// Folds every record of `input` into the running values: the values of each key in arrival
    /// order, with one call of `f` (so a value is decoded once, and a running value decoded and
    /// encoded once per call, not per record). A failure names its record; the combiner then
    /// holds nothing (the task fails, and a half-folded key must not be drained).
    pub fn fold(&mut self, input: &Records<'_>, f: impl Fold) -> Result<(), CallError> {
        let folded = self.group(input).and_then(|()| self.fold_groups(input, f));
        if folded.is_err() {
            self.clear();
        }
        folded
    }

    /// Finds (or adds) the key of every record and numbers the keys of the call.
    fn group(&mut self, input: &Records<'_>) -> Result<(), CallError> {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // After 2^32 calls a stamp could equal the current epoch: reset them all.
            for slot in self.table.iter_mut() {
                slot.stamp = 0;
            }
            self.epoch = 1;
        }
        let epoch = self.epoch;
        let count = input.count();
        let input_keys = input.keys();
        self.groups.clear();
        self.record_group.clear();
        self.record_group.reserve(count);
        // A test can make every key collide, so that only the comparison tells keys apart.
        #[cfg(test)]
        let colliding = self.colliding;
        #[cfg(not(test))]
        let colliding = false;
        let Combiner {
            hasher,
            table,
            entries,
            keys,
            groups,
            record_group,
            ..
        } = self;
        for i in 0..count {
            let key = input_keys.get(i).map_err(|f| f.at(Unit::Record(i)))?;
            let hash = if colliding { 0 } else { hasher.hash_one(key) };
            let (head, tail) = (prefix(key), suffix(key));
            let place = {
                let (entries, keys) = (&*entries, &*keys);
                table.entry(
                    hash,
                    |s| {
                        s.len as usize == key.len()
                            && s.head == head
                            && s.tail == tail
                            && (key.len() <= 16 || {
                                // Bytes 8 to len - 8; the slot holds the rest.
                                let at = entries[s.entry as usize].key_at;
                                keys[at + 8..at + key.len() - 8] == key[8..key.len() - 8]
                            })
                    },
                    |s| entries[s.entry as usize].hash,
                )
            };
            let slot = match place {
                Place::Occupied(slot) => slot.into_mut(),
                Place::Vacant(slot) => {
                    let len = u32::try_from(key.len())
                        .map_err(|_| Failure::abi("a key is over 4 GiB").at(Unit::Record(i)))?;
                    let entry = u32::try_from(entries.len()).map_err(|_| {
                        Failure::abi("a combiner holds 2^32 keys").at(Unit::Record(i))
                    })?;
                    entries.push(Entry {
                        hash,
                        key_at: keys.len(),
                        key_len: key.len(),
                        val_at: 0,
                        val_len: 0,
                        val_cap: 0,
                    });
                    keys.extend_from_slice(key);
                    slot.insert(Slot {
                        head,
                        tail,
                        len,
                        entry,
                        stamp: 0,
                        group: 0,
                    })
                    .into_mut()
                }
            };
            if slot.stamp != epoch {
                slot.stamp = epoch;
                // At most as many keys as records, and a batch's count is a u32.
                slot.group = groups.len() as u32;
                groups.push(slot.entry);
            }
            record_group.push(slot.group);
        }
        Ok(())
    }

    /// Folds the records of the current call into their keys' running values.
    fn fold_groups(&mut self, input: &Records<'_>, mut f: impl Fold) -> Result<(), CallError> {
        self.results.clear();
        let pending = Pending {
            groups: &self.groups,
            entries: &self.entries,
            keys: &self.keys,
            values: &self.values,
            record_group: &self.record_group,
            input: input.values(),
            current: Cell::new(0),
        };
        f(&pending, &mut self.results).map_err(|e| e.at(Unit::Record(pending.current.get())))?;
        if self.results.ends.len() != self.groups.len() {
            return Err(Failure::abi("a fold gave a result count other than its key count").into());
        }
        let Combiner {
            entries,
            values,
            groups,
            results,
            ..
        } = self;
        let mut start = 0;
        for (&e, &end) in groups.iter().zip(&results.ends) {
            let result = &results.data[start..end];
            start = end;
            let entry = &mut entries[e as usize];
            // A first result needs a room even when it is empty: a room of 0 means "no running
            // value yet", and an empty one kept without a room would be forgotten.
            if entry.val_cap > 0 && result.len() <= entry.val_cap {
                values[entry.val_at..entry.val_at + result.len()].copy_from_slice(result);
            } else {
                // New, or outgrown: a room at the end, twice as large as an outgrown one, so a
                // value that keeps growing moves a logarithmic number of times. An old room stays
                // behind, counted as held until the next drain.
                entry.val_cap = room(result.len().max(2 * entry.val_cap));
                entry.val_at = values.len();
                values.extend_from_slice(result);
                values.resize(entry.val_at + entry.val_cap, 0);
            }
            entry.val_len = result.len();
        }
        Ok(())
    }

    /// The records of the last [`drain`](Combiner::drain).
    pub fn drained(&self) -> &Emitter {
        &self.out
    }

    /// Every key held and its value, in the order the keys first came, as output records (valid
    /// until the next drain); the combiner holds nothing after.
    pub fn drain(&mut self) -> &Emitter {
        self.out.clear();
        if let Some(table) = &mut self.resident {
            table.drain(&mut self.out);
        }
        for entry in &self.entries {
            self.out
                .keys
                .push(&self.keys[entry.key_at..entry.key_at + entry.key_len]);
            self.out
                .values
                .push(&self.values[entry.val_at..entry.val_at + entry.val_len]);
        }
        // Freed rather than cleared: a drain comes when the host finds the combiner too large (or at
        // the end), and the guest's allocator can reuse the memory for the tables to come.
        self.table = HashTable::new();
        self.entries = Vec::new();
        self.keys = Vec::new();
        self.values = Vec::new();
        &self.out
    }

    /// Forgets every key, keeping the capacity for the next ones.
    fn clear(&mut self) {
        self.table.clear();
        self.entries.clear();
        self.keys.clear();
        self.values.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::BinaryArray;
    use super::*;

    fn count(b: &[u8]) -> Result<u64, Failure> {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::user("not a count"))
    }

    /// Decimal sums, as word count's `sum` (a first value normalised like any result).
    fn sum(p: &Pending<'_>, out: &mut Results) -> Result<(), Failure> {
        let mut totals = (0..p.keys())
            .map(|g| p.running(g).map(count).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        for (g, value) in p.records() {
            let value = count(value?)?;
            totals[g] = Some(totals[g].map_or(value, |total| total + value));
        }
        for total in totals {
            out.push(total.unwrap_or_default().to_string());
        }
        Ok(())
    }

    /// Input views over owned buffers.
    struct Batch {
        keys: (Vec<u32>, Vec<u8>),
        values: (Vec<u32>, Vec<u8>),
    }

    fn batch(records: &[(&[u8], &[u8])]) -> Batch {
        let column = |items: &mut dyn Iterator<Item = &[u8]>| {
            let mut offsets = vec![0u32];
            let mut data = Vec::new();
            for item in items {
                data.extend_from_slice(item);
                offsets.push(data.len() as u32);
            }
            (offsets, data)
        };
        Batch {
            keys: column(&mut records.iter().map(|r| r.0)),
            values: column(&mut records.iter().map(|r| r.1)),
        }
    }

    impl Batch {
        fn records(&self) -> Records<'_> {
            Records::new(
                BinaryArray::new(&self.keys.0, &self.keys.1),
                BinaryArray::new(&self.values.0, &self.values.1),
            )
        }
    }

    fn drained(c: &mut Combiner) -> Vec<(Vec<u8>, Vec<u8>)> {
        c.drain().to_records()
    }

    #[test]
    fn a_prefix_is_the_zero_padded_first_eight_bytes() {
        let bytes: Vec<u8> = (1..=20).collect();
        for len in 0..=bytes.len() {
            let mut padded = [0u8; 8];
            let n = len.min(8);
            padded[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(
                prefix(&bytes[..len]),
                u64::from_le_bytes(padded),
                "length {len}"
            );
        }
    }

    #[test]
    fn a_suffix_is_the_last_eight_bytes_of_a_key_over_eight() {
        let bytes: Vec<u8> = (1..=24).collect();
        for len in 0..=bytes.len() {
            let want = if len > 8 {
                u64::from_le_bytes(bytes[len - 8..len].try_into().unwrap())
            } else {
                0
            };
            assert_eq!(suffix(&bytes[..len]), want, "length {len}");
        }
    }

    #[test]
    fn equal_keys_fold_across_calls_and_drain_in_first_seen_order() {
        let mut c = Combiner::new();
        let long = b"a key longer than eight bytes".as_slice();
        c.fold(
            &batch(&[(b"b", b"1"), (long, b"2"), (b"b", b"3")]).records(),
            sum,
        )
        .unwrap();
        c.fold(&batch(&[(b"a", b"4"), (long, b"5")]).records(), sum)
            .unwrap();
        assert_eq!(c.len(), 3);
        assert!(c.held() > 0);
        assert_eq!(
            drained(&mut c),
            [
                (b"b".to_vec(), b"4".to_vec()),
                (long.to_vec(), b"7".to_vec()),
                (b"a".to_vec(), b"4".to_vec()),
            ]
        );
        assert!(c.is_empty());
        assert_eq!(c.held(), 0);
        assert_eq!(drained(&mut c), []);
    }

    #[test]
    fn keys_sharing_a_prefix_or_a_length_stay_apart() {
        for colliding in [false, true] {
            keys_stay_apart(colliding);
        }
    }

    fn keys_stay_apart(colliding: bool) {
        let mut c = Combiner::new();
        c.colliding = colliding;
        let records: [(&[u8], &[u8]); 14] = [
            (b"abcdefgh1", b"1"),
            (b"abcdefgh2", b"1"),
            (b"abcdefgh", b"1"),
            (b"abcdefgh\0", b"1"),
            (b"", b"1"),
            (b"abcdefgh1", b"1"),
            // 16 bytes, differing after the first 8 (in the slot's tail).
            (b"abcdefghiXklmnop", b"1"),
            (b"abcdefghiYklmnop", b"1"),
            // 17 and 20 bytes, equal in their first and last 8 bytes, differing in between (which
            // only the key's entry holds).
            (b"abcdefghXjklmnopq", b"1"),
            (b"abcdefghYjklmnopq", b"1"),
            (b"abcdefghijXlmnopqrst", b"1"),
            (b"abcdefghijYlmnopqrst", b"1"),
            (b"abcdefghijYlmnopqrst", b"1"),
            (b"abcdefghXjklmnopq", b"1"),
        ];
        c.fold(&batch(&records).records(), sum).unwrap();
        let mut got = drained(&mut c);
        got.sort();
        let want: Vec<(Vec<u8>, Vec<u8>)> = [
            (&b""[..], &b"1"[..]),
            (b"abcdefgh", b"1"),
            (b"abcdefgh\0", b"1"),
            (b"abcdefgh1", b"2"),
            (b"abcdefgh2", b"1"),
            (b"abcdefghXjklmnopq", b"2"),
            (b"abcdefghYjklmnopq", b"1"),
            (b"abcdefghiXklmnop", b"1"),
            (b"abcdefghiYklmnop", b"1"),
            (b"abcdefghijXlmnopqrst", b"1"),
            (b"abcdefghijYlmnopqrst", b"2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn values_that_outgrow_their_room_move_and_stay_exact() {
        // Concatenation: each fold makes the value longer than its room.
        let concat = |p: &Pending<'_>, out: &mut Results| {
            let mut joined: Vec<Vec<u8>> = (0..p.keys())
                .map(|g| p.running(g).unwrap_or_default().to_vec())
                .collect();
            for (g, value) in p.records() {
                joined[g].extend_from_slice(value?);
            }
            for value in joined {
                out.push(value);
            }
            Ok(())
        };
        let mut c = Combiner::new();
        let mut want = Vec::new();
        for i in 0..200u32 {
            let piece = format!("{i},");
            want.extend_from_slice(piece.as_bytes());
            let other = i.to_string();
            c.fold(
                &batch(&[(b"k", piece.as_bytes()), (other.as_bytes(), b"x")]).records(),
                concat,
            )
            .unwrap();
        }
        let out = drained(&mut c);
        assert_eq!(out.len(), 201);
        assert_eq!(out[0], (b"k".to_vec(), want));
    }

    #[test]
    fn a_fold_sees_its_keys_in_first_seen_order_with_their_running_values() {
        type Seen = (Vec<(Vec<u8>, Option<Vec<u8>>)>, Vec<(usize, Vec<u8>)>);
        let mut calls: Vec<Seen> = Vec::new();
        let mut c = Combiner::new();
        let records: [(&[u8], &[u8]); 5] = [
            (b"a", b"1"),
            (b"b", b"2"),
            (b"a", b"3"),
            (b"a", b"4"),
            (b"b", b"5"),
        ];
        let mut log = |p: &Pending<'_>, out: &mut Results| {
            let keys = (0..p.keys())
                .map(|g| (p.key(g).to_vec(), p.running(g).map(<[u8]>::to_vec)))
                .collect();
            let mut joined: Vec<Vec<u8>> = (0..p.keys())
                .map(|g| p.running(g).unwrap_or_default().to_vec())
                .collect();
            let mut seen = Vec::new();
            for (g, value) in p.records() {
                let value = value?;
                joined[g].extend_from_slice(value);
                seen.push((g, value.to_vec()));
            }
            calls.push((keys, seen));
            for value in joined {
                out.push(value);
            }
            Ok(())
        };
        c.fold(&batch(&records).records(), &mut log).unwrap();
        c.fold(&batch(&records[1..3]).records(), &mut log).unwrap();
        let v = |s: &[u8]| s.to_vec();
        assert_eq!(
            calls,
            [
                (
                    vec![(v(b"a"), None), (v(b"b"), None)],
                    vec![
                        (0, v(b"1")),
                        (1, v(b"2")),
                        (0, v(b"3")),
                        (0, v(b"4")),
                        (1, v(b"5"))
                    ]
                ),
                (
                    vec![(v(b"b"), Some(v(b"25"))), (v(b"a"), Some(v(b"134")))],
                    vec![(0, v(b"2")), (1, v(b"3"))]
                ),
            ]
        );
        assert_eq!(
            drained(&mut c),
            [(v(b"a"), v(b"1343")), (v(b"b"), v(b"252"))]
        );
    }

    #[test]
    fn a_failing_fold_names_its_record_and_leaves_nothing_held() {
        let mut c = Combiner::new();
        let err = c
            .fold(
                &batch(&[(b"a", b"1"), (b"b", b"2"), (b"a", b"x"), (b"a", b"5")]).records(),
                sum,
            )
            .unwrap_err();
        assert_eq!(err.display("sum").to_string(), "sum: record 2: not a count");
        assert!(c.is_empty());
        assert_eq!(drained(&mut c), []);
        // And it goes on afresh.
        c.fold(&batch(&[(b"a", b"1"), (b"a", b"1")]).records(), sum)
            .unwrap();
        assert_eq!(drained(&mut c), [(b"a".to_vec(), b"2".to_vec())]);
    }

    type Count = crate::Decimal<u64>;

    /// Word count's `sum` as the macros hand it to a [`ResidentFold`].
    fn checked_sum(a: Count, b: Count) -> Result<Count, Failure> {
        a.0.checked_add(b.0)
            .map(crate::Decimal)
            .ok_or_else(|| Failure::user("the sum overflows"))
    }

    fn fold_resident(c: &mut Combiner, records: &[(&[u8], &[u8])]) -> Result<(), CallError> {
        ResidentFold::new(checked_sum).fold_into(c, &batch(records).records())
    }

    /// Keys of every length from 0 to 40 bytes, long ones alike in their first and last 8 bytes
    /// and told apart only by their middle, over several calls and several growths of the table:
    /// each drained once, in the order first seen, with its exact sum (a first value normalised).
    #[test]
    fn a_resident_combiner_sums_exactly_and_drains_in_first_seen_order() {
        let mut keys: Vec<Vec<u8>> = (0..=40).map(|n| vec![b'k'; n]).collect();
        for i in 0..3000u32 {
            keys.push(format!("prefix!!{i:07}!!suffix").into_bytes());
            keys.push(format!("w{i}").into_bytes());
        }
        let mut c = Combiner::new();
        let mut reference: Vec<(Vec<u8>, u64)> = Vec::new();
        for round in 1..=3u64 {
            let values: Vec<Vec<u8>> = keys
                .iter()
                .enumerate()
                .map(|(i, _)| format!("{:03}", (i as u64 + round) % 7).into_bytes())
                .collect();
            let records: Vec<(&[u8], &[u8])> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            fold_resident(&mut c, &records).unwrap();
            for (i, k) in keys.iter().enumerate() {
                let v = (i as u64 + round) % 7;
                match reference.iter_mut().find(|(key, _)| key == k) {
                    Some((_, total)) => *total += v,
                    None => reference.push((k.clone(), v)),
                }
            }
        }
        assert!(c.held() > keys.len() * 32, "{} bytes held", c.held());
        let want: Vec<(Vec<u8>, Vec<u8>)> = reference
            .into_iter()
            .map(|(k, v)| (k, v.to_string().into_bytes()))
            .collect();
        assert_eq!(drained(&mut c), want);
        assert!(drained(&mut c).is_empty(), "a drain empties the combiner");
        assert_eq!(c.held(), 0);
    }

    /// An empty result is a running value like any other: the next call gets it, and so does the
    /// drain (a fold keeping the shortest value, which reaches empty and stays there).
    #[test]
    fn an_empty_running_value_is_kept() {
        let mut c = Combiner::new();
        let shortest = |p: &Pending<'_>, out: &mut Results| {
            let mut best: Vec<Option<Vec<u8>>> = (0..p.keys())
                .map(|g| p.running(g).map(<[u8]>::to_vec))
                .collect();
            for (g, value) in p.records() {
                let value = value?;
                if best[g].as_ref().is_none_or(|b| value.len() < b.len()) {
                    best[g] = Some(value.to_vec());
                }
            }
            for value in best {
                out.push(value.unwrap_or_default());
            }
            Ok(())
        };
        c.fold(&batch(&[(b"a", b""), (b"b", b"xy")]).records(), shortest)
            .unwrap();
        c.fold(&batch(&[(b"a", b"long"), (b"b", b"z")]).records(), shortest)
            .unwrap();
        let v = |s: &[u8]| s.to_vec();
        assert_eq!(drained(&mut c), [(v(b"a"), v(b"")), (v(b"b"), v(b"z"))]);
    }

    /// A bad value or a failing sum names its record, and the combiner then holds nothing.
    #[test]
    fn a_resident_combiner_names_the_failing_record_and_holds_nothing_after() {
        let mut c = Combiner::new();
        fold_resident(&mut c, &[(b"a", b"1"), (b"b", b"2")]).unwrap();
        let bad = fold_resident(&mut c, &[(b"a", b"1"), (b"c", b"x")]).unwrap_err();
        let message = bad.display("sum").to_string();
        assert!(message.contains("record 1"), "{message}");
        assert!(drained(&mut c).is_empty());

        let max = u64::MAX.to_string();
        let overflow = fold_resident(&mut c, &[(b"a", max.as_bytes()), (b"a", b"1")]).unwrap_err();
        let message = overflow.display("sum").to_string();
        assert!(
            message.contains("record 1") && message.contains("overflows"),
            "{message}"
        );
        assert!(drained(&mut c).is_empty());
    }
}
