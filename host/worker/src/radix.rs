//! Partitioned grouping: a reduce task over millions of keys groups them a slice at a time.
//!
//! A reduce task's grouper probes a hash table once per record. Over a few hundred thousand keys
//! the table lives in the cache; over millions (the shuffle-heavy word count: 5 M keys, ~400 MB of
//! table and entries per task) nearly every probe is a miss to memory, and the grouper's
//! prefetches only overlap those misses as far as the core keeps them in flight. So when a task's
//! input is large and fits in a fraction of its memory, it is first scattered by a hash of the key
//! into [`Scatter`]'s parts (a sequential copy of every record, written in chunks), and each part
//! is then grouped and emitted on its own, the grouper's table emptied in between and reused: each
//! part's table is a slice of the whole, small enough for the cache. This is DuckDB's
//! radix-partitioned aggregation and what a Spark job gets from many shuffle partitions, without
//! more shuffle files. The 1 GB shuffle-heavy job's reduce stage: BENCHMARKS.md.
//!
//! The part of a key is the top bits of a fixed-seed hash, so the same input gives the same output
//! order on every attempt; the grouper's own table has its per-process seed, so keys crafted to
//! fill one part cost that part a larger table, never a degenerate one.

use std::hash::BuildHasher;

use weft_batch::binary_array;
use weft_host::Records;
use weft_task::StepRef;

use crate::group::extend_short;
use crate::{BATCH_BYTES, TaskError};

/// Input records per part, by default (for picking the number of parts, [`fanout`]): a part of
/// all-distinct keys then has tables of a few megabytes.
pub const RECORDS_PER_PART: u64 = 1 << 18;

/// At most this many parts: the scatter writes into every part's open chunk (two offset arrays,
/// two byte arrays), and more write streams than this start to miss the cache themselves.
pub(crate) const MAX_PARTS: u64 = 256;

/// How many parts a reduce task over `records` input records of `bytes` (as the shuffle blocks
/// say) should scatter its input into, given `budget` bytes of memory, for parts of about
/// `per_part` records: 1 (group directly) unless there are records enough for two parts and the
/// input fits in a quarter of the budget (the scatter holds all of it; the grouper has half).
pub(crate) fn fanout(records: u64, bytes: u64, budget: usize, per_part: u64) -> usize {
    if bytes > (budget / 4) as u64 {
        return 1;
    }
    let parts = (records / per_part.max(1)).min(MAX_PARTS);
    if parts < 2 {
        1
    } else {
        parts.next_power_of_two().min(MAX_PARTS) as usize
    }
}

/// A chunk of a part: records as they came, each a key and a value, each of those its length
/// (one byte under 255, else 255 and four bytes) and its bytes. Half the memory of Arrow's layout
/// for short records (a word and a count: 9 bytes against 15 and more), and this memory is
/// written once and read once: on this kind of machine, fresh memory costs as much as the copy.
#[derive(Debug, Default)]
struct Chunk {
    bytes: Vec<u8>,
    records: usize,
    key_bytes: usize,
    value_bytes: usize,
}

/// A length of 255 or more takes this byte and four more.
const LONG: u8 = u8::MAX;

impl Chunk {
    fn with_capacity(bytes: usize) -> Chunk {
        Chunk {
            bytes: Vec::with_capacity(bytes),
            ..Chunk::default()
        }
    }

    /// Bytes a record of a `key` and a `value` bytes takes, at most.
    #[inline]
    fn size(key: usize, value: usize) -> usize {
        key + value + 10
    }

    #[inline]
    fn push(&mut self, key: &[u8], value: &[u8]) {
        for item in [key, value] {
            match u8::try_from(item.len()) {
                Ok(len) if len < LONG => self.bytes.push(len),
                _ => {
                    self.bytes.push(LONG);
                    // Fits: an item comes from an Arrow array, under 2 GiB.
                    self.bytes
                        .extend_from_slice(&(item.len() as u32).to_le_bytes());
                }
            }
            extend_short(&mut self.bytes, item);
        }
        self.records += 1;
        self.key_bytes += key.len();
        self.value_bytes += value.len();
    }

    /// The chunk as a batch (the one copy into Arrow's layout, in memory just freed by the
    /// previous chunk's batch).
    fn into_records(self, step: &StepRef) -> Result<Records, TaskError> {
        let mut columns = [
            (
                Vec::with_capacity(self.records + 1),
                Vec::with_capacity(self.key_bytes),
            ),
            (
                Vec::with_capacity(self.records + 1),
                Vec::with_capacity(self.value_bytes),
            ),
        ];
        for (offsets, _) in &mut columns {
            offsets.push(0i32);
        }
        let mut at = 0;
        let bytes = &self.bytes;
        while at < bytes.len() {
            for (offsets, data) in &mut columns {
                let mut len = usize::from(bytes[at]);
                at += 1;
                if len == usize::from(LONG) {
                    let mut four = [0; 4];
                    four.copy_from_slice(&bytes[at..at + 4]);
                    len = u32::from_le_bytes(four) as usize;
                    at += 4;
                }
                extend_short(data, &bytes[at..at + len]);
                at += len;
                // Fits: a column holds what one chunk's records had, under `i32::MAX`
                // (`Part::room`).
                offsets.push(data.len() as i32);
            }
        }
        let [(key_offsets, keys), (value_offsets, values)] = columns;
        Records::new(
            binary_array(key_offsets, keys),
            binary_array(value_offsets, values),
        )
        .map_err(|e| TaskError::step(step, e.into()))
    }
}

/// A part: its closed chunks, and the chunk being written.
#[derive(Debug, Default)]
struct Part {
    chunks: Vec<Chunk>,
    open: Chunk,
}

impl Part {
    /// Whether the open chunk takes `size` more bytes within its capacity (and each of its
    /// columns, once in Arrow's layout, within `i32` offsets). A part's first chunk has no
    /// capacity yet; a new one is made with room for the record that needs it.
    #[inline]
    fn room(&self, size: usize) -> bool {
        let used = self.open.bytes.len() + size;
        used <= self.open.bytes.capacity() && used < i32::MAX as usize
    }
}

/// Input records scattered into parts by key.
#[derive(Debug)]
pub(crate) struct Scatter {
    /// The wide step the records are for, for errors.
    step: StepRef,
    hasher: foldhash::fast::FixedState,
    /// A key's part is its hash shifted right by this much.
    shift: u32,
    parts: Vec<Part>,
    /// Bytes of a chunk.
    chunk_bytes: usize,
    /// Bytes held in closed chunks.
    closed: usize,
}

impl Scatter {
    /// A scatter into `parts` parts (a power of two, at least 2) of about `input_bytes` in all.
    pub(crate) fn new(step: &StepRef, parts: usize, input_bytes: u64) -> Scatter {
        debug_assert!(parts.is_power_of_two() && parts >= 2);
        // A few chunks per part: each is one guest call when its part is grouped.
        let per_part = usize::try_from(input_bytes).unwrap_or(usize::MAX) / parts;
        let chunk_bytes = (per_part / 4).clamp(16 << 10, BATCH_BYTES / 4);
        Scatter {
            step: step.clone(),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_0f5e_ed0f),
            shift: 64 - parts.trailing_zeros(),
            parts: (0..parts).map(|_| Part::default()).collect(),
            chunk_bytes,
            closed: 0,
        }
    }

    /// Bytes held, open chunks included (their capacity: what the allocator gave).
    pub(crate) fn held(&self) -> usize {
        self.closed
            + self
                .parts
                .iter()
                .map(|p| p.open.bytes.capacity())
                .sum::<usize>()
    }

    /// Copies every record of `batch` into its key's part.
    pub(crate) fn push(&mut self, batch: &Records) -> Result<(), TaskError> {
        let (keys, values) = (batch.keys(), batch.values());
        for i in 0..batch.len() {
            let (key, value) = (keys.value(i), values.value(i));
            let p = (self.hasher.hash_one(key) >> self.shift) as usize;
            let part = &mut self.parts[p];
            let size = Chunk::size(key.len(), value.len());
            if !part.room(size) {
                let full = std::mem::replace(
                    &mut part.open,
                    // Room for the record whatever its size, and for `extend_short`'s 16 bytes.
                    Chunk::with_capacity(self.chunk_bytes.max(size) + 16),
                );
                if full.records > 0 {
                    self.closed += full.bytes.capacity();
                    part.chunks.push(full);
                }
            }
            part.open.push(key, value);
        }
        Ok(())
    }

    /// Every record held, part after part, batch after batch: the records of a key all lie in
    /// one part, in the order they came, and no other part has any of them.
    pub(crate) fn into_parts(
        self,
    ) -> impl Iterator<Item = impl Iterator<Item = Result<Records, TaskError>>> {
        let step = self.step;
        self.parts.into_iter().map(move |part| {
            let step = step.clone();
            let open = (part.open.records > 0).then_some(part.open);
            part.chunks
                .into_iter()
                .chain(open)
                .map(move |chunk| chunk.into_records(&step))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use weft_host::UdfKind;

    use super::*;

    #[test]
    fn a_task_groups_in_parts_only_with_records_for_two_and_input_within_a_quarter_of_its_memory() {
        let per = RECORDS_PER_PART;
        let gib = 1 << 30;
        assert_eq!(fanout(0, 0, gib, per), 1);
        assert_eq!(fanout(2 * per - 1, 1 << 20, gib, per), 1);
        assert_eq!(fanout(2 * per, 1 << 20, gib, per), 2);
        assert_eq!(fanout(3 * per, 1 << 20, gib, per), 4, "a power of two");
        assert_eq!(fanout(200 * per, 1 << 20, gib, per), 256);
        assert_eq!(fanout(u64::MAX, 1 << 20, gib, per), MAX_PARTS as usize);
        // The input must fit in a quarter of the memory.
        assert_eq!(fanout(200 * per, (gib / 4) as u64, gib, per), 256);
        assert_eq!(fanout(200 * per, (gib / 4) as u64 + 1, gib, per), 1);
        assert_eq!(fanout(200, 10, gib, 100), 2);
        assert_eq!(
            fanout(200, 10, gib, 0),
            MAX_PARTS as usize,
            "no division by zero"
        );
    }

    fn step() -> StepRef {
        StepRef {
            kind: UdfKind::Reduce,
            module: "blake3:00".into(),
            function: "sum".into(),
            label: "test".into(),
        }
    }

    /// Keys of every length from empty to past a chunk, some repeated far apart; values that number
    /// each record, so that order within a key can be checked.
    fn records(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let key = match i % 7 {
                    0 => Vec::new(),
                    1 => vec![b'x'; i % 40],
                    2 => vec![b'y'; 100_000],
                    _ => format!("k{}", i % 997).into_bytes(),
                };
                (key, i.to_string().into_bytes())
            })
            .collect()
    }

    #[test]
    fn every_record_lands_in_its_keys_one_part_in_arrival_order() {
        let input = records(30_000);
        let bytes: usize = input.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut scatter = Scatter::new(&step(), 16, bytes as u64);
        for chunk in input.chunks(4_000) {
            scatter
                .push(&Records::from_pairs(chunk.iter().map(|(k, v)| (k, v))))
                .unwrap();
        }
        scatter.push(&Records::empty()).unwrap();
        assert!(scatter.held() >= bytes, "{} < {bytes}", scatter.held());

        let mut part_of: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        let mut got: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut parts_used = BTreeSet::new();
        for (p, part) in scatter.into_parts().enumerate() {
            for chunk in part {
                let chunk = chunk.unwrap();
                assert!(!chunk.is_empty(), "no empty chunk");
                for i in 0..chunk.len() {
                    let (k, v) = chunk.get(i);
                    assert_eq!(*part_of.entry(k.to_vec()).or_insert(p), p, "one part a key");
                    parts_used.insert(p);
                    got.push((k.to_vec(), v.to_vec()));
                }
            }
        }
        assert!(
            parts_used.len() > 8,
            "keys spread over the parts: {parts_used:?}"
        );
        // The same records, and each key's values in arrival order.
        let by_key = |records: &[(Vec<u8>, Vec<u8>)]| {
            let mut map: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
            for (k, v) in records {
                map.entry(k.clone()).or_default().push(v.clone());
            }
            map
        };
        assert_eq!(got.len(), input.len());
        assert!(
            by_key(&got) == by_key(&input),
            "records differ from the input"
        );
    }

    #[test]
    fn the_same_input_scatters_the_same_way_every_time() {
        let input = records(5_000);
        let scatter_once = || {
            let mut scatter = Scatter::new(&step(), 8, 1 << 20);
            scatter
                .push(&Records::from_pairs(input.iter().map(|(k, v)| (k, v))))
                .unwrap();
            scatter
                .into_parts()
                .map(|part| {
                    part.map(Result::unwrap)
                        .flat_map(|c| {
                            (0..c.len())
                                .map(|i| c.get(i).0.to_vec())
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(scatter_once(), scatter_once());
    }
}
