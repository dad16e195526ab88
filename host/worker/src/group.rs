//! Grouping by key: the reduce side of a shuffle, and the map-side combiner.
//!
//! A `reduce` keeps one value per key and folds every new batch into it with one guest call (the
//! key's running value followed by the batch's values of that key, in arrival order, form one
//! group). A `group_reduce` must see all values of a key at once, so it collects them and calls
//! the guest at the end, batched.
//!
//! # Layout
//! This is the hottest host code of a word count, so the state is flat: key bytes in one arena,
//! one [`Entry`] per key (its hash, where its key and running value are), an open-addressing table
//! of [`Place`]s (linear probing, at most three quarters full), and running values (or, for
//! `group_reduce`, every value) in a second arena. A record costs one hash and one probe; a slot
//! holds the key's length and first 8 bytes (so short keys, most words, are compared without
//! leaving the table) and the key's group in the current call (so only a record that opens a
//! group reads its entry, a cache miss on a large table).
//!
//! The table is our own rather than hashbrown's so that a `reduce` call can prefetch. On a table
//! larger than the cache (millions of keys: a shuffle-heavy reduce) every probe is a cache miss,
//! and misses issued ahead overlap instead of queueing. So a call hashes each record 32 records
//! ahead and asks for the slot where its probe will start; 16 records ahead, with that slot
//! arrived, for the key's entry; and, once the groups are gathered, for each group's running value
//! 16 groups ahead. Tables, entries and value arenas of 4 MiB or more are advised to huge pages
//! before they are first written, so that random reads do not also miss the TLB. The 1 GB
//! shuffle-heavy word count: 48 s with hashbrown, 35 s with the slot prefetch, 26 s with all of it
//! (BENCHMARKS.md). Prefetches overlap misses; a reduce task over millions of records avoids most
//! of them by grouping its input in cache-sized parts (`radix`), this grouper emptied and reused
//! between parts (about 21 s).
//!
//! Nothing is allocated per key, nothing is rebuilt per batch: the group arrays handed to the guest are
//! built in buffers reused from call to call (wrapped as Arrow buffers without copying, and taken
//! back once the call is over). Hashing is foldhash with a per-process seed: fast on short keys,
//! and crafted keys cannot degrade a task's table predictably.
//!
//! # Memory budget
//! A grouper accounts for what its tables and arenas hold (their capacities: what the allocator
//! really gave) against a budget in bytes, checked before each new key (and, for `group_reduce`,
//! each value) is added:
//! - with a spill directory ([`Grouper::spill_to`], the reduce side), it then sorts what it holds
//!   (by hash, then key: [`crate::spill`]'s run order), writes it as a sorted run and starts
//!   afresh; [`Grouper::finish`] merges the runs;
//! - as a map-side combiner ([`Grouper::absorb_partial`]), it hands its partial results on
//!   instead: the reduce side combines again, so a partial combine is still exact;
//! - with neither ([`Grouper::absorb`] without a spill directory), it holds everything.
//!
//! Outside the budget, a constant: the batch being absorbed, and the group arrays built for one
//! guest call (about twice the batch's bytes plus 12 bytes a record).

use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use arrow_array::BinaryArray;
use arrow_buffer::ScalarBuffer;
use weft_batch::{BatchError, binary_array};
use weft_host::{CallError, Groups, Records, UdfKind};

use crate::spill::{Column, FAN_IN, Merge, RunOrder, SpillDir, SpillStats};
use crate::{BATCH_BYTES, Pipeline, TaskError};
use weft_task::StepRef;

/// The memory budget of a grouper not given one, in bytes.
pub const DEFAULT_GROUP_BUDGET: usize = 256 << 20;

/// One distinct key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    /// The key's bytes: `keys[key_at..key_at + key_len]`.
    key_at: usize,
    /// `reduce`: the running value, `values[val_at..val_at + val_len]`, in a slot of `val_cap`
    /// bytes (0: no value yet), so a value that grows a little is rewritten in place.
    val_at: usize,
    key_len: u32,
    val_len: u32,
    val_cap: u32,
}

/// A key's place in the hash table: enough to settle most probes without leaving the table's
/// memory (the arena and the entries are cold on a large table; a probe that reads them costs
/// a cache miss or two), and the per-call bookkeeping a record needs.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// The key's first 8 bytes (zero-padded): with `len`, the whole key if it is that short.
    prefix: u64,
    len: u32,
    entry: u32,
    /// The guest call this key last joined (`Grouper::epoch`), and its group number in that call.
    stamp: u32,
    group: u32,
}

/// The key's first 8 bytes as a little-endian number, zero-padded, from fixed-size loads
/// (overlapping for keys of 4 to 7 bytes, and for 1 to 3 bytes the first, middle and last byte,
/// which together are all of them): a copy of variable length is a call into `memcpy`, once per
/// record.
#[inline]
fn prefix(key: &[u8]) -> u64 {
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

/// `dst.copy_from_slice(src)`, without the call into `memcpy` that a copy of variable length
/// compiles to, for items of up to 16 bytes (a word, a count): fixed-size loads and stores,
/// overlapping. The reduce side copies several such items per record; as calls, those copies
/// took a fifth of a shuffle-heavy reduce's time.
#[inline]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n > 16 {
        dst.copy_from_slice(src);
    } else if n >= 8 {
        let (head, tail): ([u8; 8], [u8; 8]) = (
            src[..8].try_into().unwrap_or_default(),
            src[n - 8..].try_into().unwrap_or_default(),
        );
        dst[..8].copy_from_slice(&head);
        dst[n - 8..n].copy_from_slice(&tail);
    } else if n >= 4 {
        let (head, tail): ([u8; 4], [u8; 4]) = (
            src[..4].try_into().unwrap_or_default(),
            src[n - 4..].try_into().unwrap_or_default(),
        );
        dst[..4].copy_from_slice(&head);
        dst[n - 4..n].copy_from_slice(&tail);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// `v.extend_from_slice(src)`, by [`copy_short`], growing `v` exactly as `extend_from_slice`
/// would (the budget's accounting predicts that growth).
#[inline]
pub(crate) fn extend_short(v: &mut Vec<u8>, src: &[u8]) {
    let (at, n) = (v.len(), src.len());
    if n > 16 || v.capacity() - at < 16 {
        v.extend_from_slice(src);
        return;
    }
    v.extend_from_slice(&[0; 16]);
    copy_short(&mut v[at..at + n], src);
    v.truncate(at + n);
}

/// Asks the CPU to bring the cache line at `at` in, without waiting for it.
#[inline(always)]
fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Asks the kernel to back `v`'s memory with huge pages, before it is first written, when it is
/// large enough to hold some: the hash table and the entries are read at random, and with 4 KiB
/// pages nearly every read of a large table also misses the TLB, a page walk of its own. (Linux's
/// transparent huge pages are often enabled only where asked for, `madvise`.) Best effort: a
/// kernel that says no leaves ordinary pages.
fn huge_pages<T>(v: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let bytes = v.capacity() * size_of::<T>();
    if bytes < 2 * HUGE {
        return;
    }
    let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
    let end = (v.as_ptr() as usize + bytes) & !(HUGE - 1);
    #[cfg(target_os = "linux")]
    if end > start {
        // SAFETY: the range lies within `v`'s allocation; the advice changes no contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
}

/// Makes room in `v` for `extra` more, as `Vec` would (doubling: see [`grown`]), but in memory
/// given [`huge_pages`] before it is written.
fn reserve_huge<T: Copy>(v: &mut Vec<T>, extra: usize) {
    if v.len() + extra <= v.capacity() {
        return;
    }
    let mut more = Vec::with_capacity(grown(v.len(), v.capacity(), extra));
    huge_pages(&more);
    more.extend_from_slice(v);
    *v = more;
}

/// Keys, their entries, and the hash table over them: open addressing with linear probing, at
/// most three quarters full (`Place::len == EMPTY`: a free slot).
#[derive(Debug, Default)]
struct Keys {
    hasher: foldhash::fast::RandomState,
    table: Vec<Place>,
    used: usize,
    entries: Vec<Entry>,
    bytes: Vec<u8>,
}

const EMPTY: u32 = u32::MAX;

const FREE: Place = Place {
    prefix: 0,
    len: EMPTY,
    entry: 0,
    stamp: 0,
    group: 0,
};

impl Keys {
    fn key(&self, e: usize) -> &[u8] {
        let entry = &self.entries[e];
        &self.bytes[entry.key_at..entry.key_at + entry.key_len as usize]
    }

    fn table_bytes(&self) -> usize {
        self.table.capacity() * size_of::<Place>()
    }

    fn capacity(&self) -> usize {
        self.table.len() / 4 * 3
    }

    fn footprint(&self) -> usize {
        self.table_bytes() + self.entries.capacity() * size_of::<Entry>() + self.bytes.capacity()
    }

    /// The sizes the budget check needs, taken before a probe (which borrows the table).
    fn sizes(&self) -> Sizes {
        Sizes {
            table_len: self.used,
            table_cap: self.capacity(),
            table_bytes: self.table_bytes(),
            entries_len: self.entries.len(),
            entries_cap: self.entries.capacity(),
            bytes_len: self.bytes.len(),
            bytes_cap: self.bytes.capacity(),
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Asks the CPU to load the slot where a probe for `hash` starts, so that the probe a few
    /// records later finds it in the cache: on a table larger than the cache every probe is a
    /// miss, and misses issued ahead overlap.
    #[inline]
    fn prefetch(&self, hash: u64) {
        if self.table.is_empty() {
            return;
        }
        let at = hash as usize & (self.table.len() - 1);
        prefetch(self.table.as_ptr().wrapping_add(at));
    }

    /// The second stage of [`Keys::prefetch`], some records later, when the slot has arrived:
    /// asks for the entry of `key` (of hash `hash`), which the record will read if it opens a
    /// group. The slot is found by its length and first 8 bytes only, a few steps at most: a
    /// wrong guess costs one useless load.
    #[inline]
    fn prefetch_entry(&self, key: &[u8], hash: u64) {
        if self.table.is_empty() {
            return;
        }
        let (head, len) = (prefix(key), key.len() as u32);
        let mask = self.table.len() - 1;
        let mut at = hash as usize & mask;
        for _ in 0..4 {
            let place = &self.table[at];
            if place.len == EMPTY {
                return;
            }
            if place.len == len && place.prefix == head {
                prefetch(self.entries.as_ptr().wrapping_add(place.entry as usize));
                return;
            }
            at = (at + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.table.len() * 2).max(1 << 10);
        let mut table = Vec::with_capacity(size);
        huge_pages(&table);
        table.resize(size, FREE);
        let old = std::mem::replace(&mut self.table, table);
        let mask = size - 1;
        for place in old.into_iter().filter(|p| p.len != EMPTY) {
            let mut at = self.entries[place.entry as usize].hash as usize & mask;
            while self.table[at].len != EMPTY {
                at = (at + 1) & mask;
            }
            self.table[at] = place;
        }
    }

    /// Finds `key` (of hash `hash`), or adds it if `admit` agrees (`admit` is only asked about
    /// new keys): its place, and whether it is new; `None` if it is new and refused.
    #[inline]
    fn probe_hashed(
        &mut self,
        key: &[u8],
        hash: u64,
        admit: impl FnOnce(Sizes) -> bool,
    ) -> Option<(&mut Place, bool)> {
        let head = prefix(key);
        let len = key.len() as u32;
        if !self.table.is_empty() {
            let mask = self.table.len() - 1;
            let mut at = hash as usize & mask;
            loop {
                let p = &self.table[at];
                if p.len == EMPTY {
                    break;
                }
                if p.len == len
                    && p.prefix == head
                    && (key.len() <= 8 || {
                        let k = self.entries[p.entry as usize].key_at;
                        self.bytes[k + 8..k + key.len()] == key[8..]
                    })
                {
                    return Some((&mut self.table[at], false));
                }
                at = (at + 1) & mask;
            }
        }
        if !admit(self.sizes()) {
            return None;
        }
        if self.used >= self.capacity() {
            self.grow();
        }
        let e = self.entries.len() as u32;
        reserve_huge(&mut self.entries, 1);
        self.entries.push(Entry {
            hash,
            key_at: self.bytes.len(),
            val_at: 0,
            key_len: len,
            val_len: 0,
            val_cap: 0,
        });
        extend_short(&mut self.bytes, key);
        let mask = self.table.len() - 1;
        let mut at = hash as usize & mask;
        while self.table[at].len != EMPTY {
            at = (at + 1) & mask;
        }
        self.used += 1;
        self.table[at] = Place {
            prefix: head,
            len,
            entry: e,
            stamp: 0,
            group: 0,
        };
        Some((&mut self.table[at], true))
    }

    #[inline]
    fn probe(
        &mut self,
        key: &[u8],
        admit: impl FnOnce(Sizes) -> bool,
    ) -> Option<(&mut Place, bool)> {
        let hash = self.hash(key);
        self.probe_hashed(key, hash, admit)
    }

    fn clear(&mut self) {
        self.table.fill(FREE);
        self.used = 0;
        self.entries.clear();
        self.bytes.clear();
    }

    /// Entry indexes in ascending [`RunOrder`]: by hash (kept in the entries, so the sort compares
    /// integers side by side), then, for equal hashes only, by the keys' bytes.
    fn sorted(&self) -> Vec<u32> {
        let mut order: Vec<(u64, u32)> = self
            .entries
            .iter()
            .enumerate()
            .map(|(e, entry)| (entry.hash, e as u32))
            .collect();
        order.sort_unstable_by(|&(ha, a), &(hb, b)| {
            RunOrder::cmp((ha, self.key(a as usize)), (hb, self.key(b as usize)))
        });
        order.into_iter().map(|(_, e)| e).collect()
    }

    /// The order of this table's spilled runs: its own hasher's.
    fn run_order(&self) -> RunOrder {
        RunOrder::new(self.hasher.clone())
    }
}

/// What a key table holds, as the budget check needs it.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    table_len: usize,
    table_cap: usize,
    table_bytes: usize,
    entries_len: usize,
    entries_cap: usize,
    bytes_len: usize,
    bytes_cap: usize,
}

impl Sizes {
    /// What the key table's footprint becomes if one more key of `len` bytes is added.
    fn footprint_with(&self, len: usize) -> usize {
        let table = if self.table_len < self.table_cap {
            self.table_bytes
        } else {
            (self.table_bytes * 2).max(1 << 10)
        };
        table
            + grown(self.entries_len, self.entries_cap, 1) * size_of::<Entry>()
            + grown(self.bytes_len, self.bytes_cap, len)
    }
}

/// The capacity a `Vec` of `len`/`cap` has after `extra` more items are pushed (its growth rule:
/// double, or exactly what is needed if that is more).
fn grown(len: usize, cap: usize, extra: usize) -> usize {
    if len + extra <= cap {
        cap
    } else {
        (cap * 2).max(len + extra).max(8)
    }
}

/// The values side of the state.
#[derive(Debug)]
enum Values {
    /// `reduce`: each entry's running value, at the place its entry says. `pending` is room the
    /// keys added since the last guest call will take once their values come back.
    Running { arena: Vec<u8>, pending: usize },
    /// `group_reduce`: every value in arrival order (`ends[i]` is where value `i` ends), and the
    /// entry each belongs to.
    Lists {
        arena: Vec<u8>,
        ends: Vec<usize>,
        owner: Vec<u32>,
    },
}

impl Values {
    fn footprint(&self) -> usize {
        match self {
            Values::Running { arena, pending } => grown(arena.len(), arena.capacity(), *pending),
            Values::Lists { arena, ends, owner } => {
                arena.capacity() + ends.capacity() * 8 + owner.capacity() * 4
            }
        }
    }

    fn clear(&mut self) {
        match self {
            Values::Running { arena, pending } => {
                arena.clear();
                *pending = 0;
            }
            Values::Lists { arena, ends, owner } => {
                arena.clear();
                ends.clear();
                owner.clear();
            }
        }
    }
}

/// Buffers of one `reduce` call, kept from call to call.
#[derive(Debug, Default)]
struct Scratch {
    /// The group of each record of the call.
    record_group: Vec<u32>,
    /// The entry of each group.
    group_entry: Vec<u32>,
    /// Where each group's running value was when the group opened (copied from its entry then,
    /// while the entry is in the cache, so that the rest of the call reads these in order).
    group_value: Vec<ValueAt>,
    /// Per group: values, then (turned into cursors) where its next value goes.
    counts: Vec<u32>,
    /// Per group: bytes of values, then where its next value's bytes go.
    sizes: Vec<usize>,
    key_offsets: Vec<i32>,
    key_data: Vec<u8>,
    value_offsets: Vec<i32>,
    value_data: Vec<u8>,
    group_offsets: Vec<u32>,
}

/// Where an entry's running value lies in the arena (`Entry::val_at`, `val_len`, `val_cap`).
#[derive(Debug, Clone, Copy)]
struct ValueAt {
    at: usize,
    len: u32,
    cap: u32,
}

/// A room for a running value of `len` bytes: a multiple of 8, so a count that gains a digit is
/// still rewritten in place.
fn value_room(len: usize) -> usize {
    (len.max(1) + 7) & !7
}

/// Groups records by key and runs a wide step over them.
#[derive(Debug)]
pub struct Grouper {
    step: StepRef,
    // Boxed: a map task's shuffle writer holds a grouper as its combiner, and is itself held by
    // value; these are touched once per call, never per record.
    keys: Box<Keys>,
    values: Box<Values>,
    scratch: Box<Scratch>,
    /// Numbers the guest calls, so an entry knows whether it has a group in the current one.
    epoch: u32,
    budget: usize,
    /// Where sorted runs go when the budget is passed; `None`: never to disk.
    spill: Option<Box<SpillDir>>,
    /// Runs written so far, oldest first.
    runs: Vec<PathBuf>,
}

impl Grouper {
    /// A grouper for a `reduce` or `group_reduce` step, holding everything in memory (see
    /// [`Grouper::spill_to`] and [`Grouper::absorb_partial`] for the bounded ways).
    pub fn new(step: StepRef) -> Result<Grouper, TaskError> {
        let values = match step.kind {
            UdfKind::Reduce => Values::Running {
                arena: Vec::new(),
                pending: 0,
            },
            UdfKind::GroupReduce => Values::Lists {
                arena: Vec::new(),
                ends: Vec::new(),
                owner: Vec::new(),
            },
            other => return Err(TaskError::NotWide(other)),
        };
        Ok(Grouper {
            step,
            keys: Box::default(),
            values: Box::new(values),
            scratch: Box::default(),
            epoch: 0,
            budget: DEFAULT_GROUP_BUDGET,
            spill: None,
            runs: Vec::new(),
        })
    }

    /// Sets the memory budget, in bytes.
    pub fn with_budget(mut self, bytes: usize) -> Grouper {
        self.budget = bytes;
        self
    }

    /// Spills sorted runs into `dir` whenever the budget is passed. `dir` is created at the first
    /// spill and deleted, with the runs, when the grouper is dropped or finished.
    pub fn spill_to(mut self, dir: &Path) -> Grouper {
        // A merge holds one batch per run, FAN_IN runs at once: together a quarter of the budget.
        let batch = (self.budget / (4 * FAN_IN)).clamp(1 << 10, BATCH_BYTES);
        self.spill = Some(Box::new(SpillDir::new(dir, batch)));
        self
    }

    /// The wide step this grouper runs.
    pub fn step(&self) -> &StepRef {
        &self.step
    }

    /// Number of distinct keys held in memory.
    pub fn keys(&self) -> usize {
        self.keys.entries.len()
    }

    /// Bytes the grouper's tables and arenas hold, as accounted against the budget.
    pub fn footprint(&self) -> usize {
        self.keys.footprint() + self.values.footprint()
    }

    /// Runs spilled so far.
    pub fn spill_stats(&self) -> SpillStats {
        self.spill.as_ref().map(|s| s.stats).unwrap_or_default()
    }

    /// Takes in a batch of records. With a spill directory, spills whenever the budget is passed;
    /// without, holds everything.
    pub fn absorb(&mut self, pipeline: &mut Pipeline, batch: &Records) -> Result<(), TaskError> {
        let bounded = self.spill.is_some();
        self.absorb_with(
            pipeline,
            batch,
            bounded,
            &mut |g: &mut Grouper, _: &mut Pipeline| g.spill_now(),
        )
    }

    /// Takes in a batch of records as a map-side combiner: whenever the budget is passed, hands
    /// the combined records held so far to `emit` and starts afresh. Only for `reduce`, whose
    /// partial results the reduce side combines again.
    pub fn absorb_partial(
        &mut self,
        pipeline: &mut Pipeline,
        batch: &Records,
        mut emit: impl FnMut(Records) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        if matches!(*self.values, Values::Lists { .. }) {
            // A group_reduce must see every value of a key at once: it cannot be combined partially.
            return self.absorb(pipeline, batch);
        }
        self.absorb_with(
            pipeline,
            batch,
            true,
            &mut |g: &mut Grouper, _: &mut Pipeline| {
                g.emit_running(&mut emit)?;
                g.clear();
                Ok(())
            },
        )
    }

    fn absorb_with(
        &mut self,
        pipeline: &mut Pipeline,
        batch: &Records,
        bounded: bool,
        overflow: &mut dyn FnMut(&mut Grouper, &mut Pipeline) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        let mut start = 0;
        while start < batch.len() {
            let end = match *self.values {
                Values::Running { .. } => self.reduce_prefix(pipeline, batch, start, bounded)?,
                Values::Lists { .. } => self.collect_prefix(batch, start, bounded),
            };
            if end < batch.len() {
                overflow(self, pipeline)?;
            }
            start = end;
        }
        Ok(())
    }

    /// `reduce`: folds records `start..` into the running values with one guest call, stopping
    /// before the first new key the budget has no room for. Returns where it stopped.
    fn reduce_prefix(
        &mut self,
        pipeline: &mut Pipeline,
        batch: &Records,
        start: usize,
        bounded: bool,
    ) -> Result<usize, TaskError> {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // After 2^32 calls stamps could collide with the current epoch: reset them.
            for place in self.keys.table.iter_mut() {
                place.stamp = 0;
            }
            self.epoch = 1;
        }
        let epoch = self.epoch;
        let budget = self.budget;
        let keys = batch.keys();
        let values = batch.values();
        let s = &mut self.scratch;
        s.record_group.clear();
        s.group_entry.clear();
        s.group_value.clear();
        s.counts.clear();
        s.sizes.clear();
        s.key_offsets.clear();
        s.key_offsets.push(0);
        s.key_data.clear();
        let Values::Running { arena, pending } = &mut *self.values else {
            return Ok(start);
        };
        let mut end = start;
        // Hashes of the next records, computed ahead so that their slots are prefetched
        // `AHEAD` records before they are probed.
        const AHEAD: usize = 32;
        let mut ahead = [0u64; AHEAD];
        for record in start..batch.len().min(start + AHEAD) {
            let h = self.keys.hash(keys.value(record));
            ahead[record % AHEAD] = h;
            self.keys.prefetch(h);
        }
        while end < batch.len() {
            let key = keys.value(end);
            let value = values.value(end);
            let hash = ahead[end % AHEAD];
            if end + AHEAD < batch.len() {
                let next = self.keys.hash(keys.value(end + AHEAD));
                ahead[end % AHEAD] = next;
                self.keys.prefetch(next);
            }
            // Halfway there, the slot prefetched for that record has most likely arrived: its
            // entry next.
            if end + AHEAD / 2 < batch.len() {
                let at = end + AHEAD / 2;
                self.keys.prefetch_entry(keys.value(at), ahead[at % AHEAD]);
            }
            let probe = self.keys.probe_hashed(key, hash, |k| {
                !bounded
                    || k.entries_len == 0
                    || k.footprint_with(key.len())
                        + grown(
                            arena.len(),
                            arena.capacity(),
                            *pending + value_room(value.len()),
                        )
                        <= budget
            });
            let Some((place, new)) = probe else {
                break;
            };
            if new {
                *pending += value_room(value.len());
            }
            // A record reads its key's entry only when it opens a group (once per key and call),
            // and then from the cache: the entry was prefetched `AHEAD / 2` records before.
            let g = if place.stamp == epoch {
                place.group as usize
            } else {
                place.stamp = epoch;
                place.group = s.group_entry.len() as u32;
                let e = place.entry;
                s.group_entry.push(e);
                let entry = &self.keys.entries[e as usize];
                s.group_value.push(ValueAt {
                    at: entry.val_at,
                    len: entry.val_len,
                    cap: entry.val_cap,
                });
                s.counts.push(0);
                s.sizes.push(0);
                // The group's key, from the batch (in cache) rather than from the arena. Its
                // offset fits: the batch's keys fit Arrow's i32 offsets, and these are some of them.
                extend_short(&mut s.key_data, key);
                s.key_offsets.push(s.key_data.len() as i32);
                s.group_entry.len() - 1
            };
            s.record_group.push(g as u32);
            s.counts[g] += 1;
            s.sizes[g] += value.len();
            end += 1;
        }
        if end > start {
            self.call_reduce(pipeline, batch, start, end)?;
        }
        Ok(end)
    }

    /// Lays out the groups gathered by `reduce_prefix`, calls the guest and stores the results.
    fn call_reduce(
        &mut self,
        pipeline: &mut Pipeline,
        batch: &Records,
        start: usize,
        end: usize,
    ) -> Result<(), TaskError> {
        let too_big = |what: &str| {
            TaskError::step(
                &self.step,
                CallError::Batch(BatchError::TooLarge(format!(
                    "the {what} of one reduce call add up to more than 2 GiB"
                ))),
            )
        };
        let Values::Running { arena, pending } = &mut *self.values else {
            return Ok(());
        };
        let s = &mut self.scratch;
        let groups = s.group_entry.len();

        // Running values lead their groups.
        for (g, v) in s.group_value.iter().enumerate() {
            if v.cap > 0 {
                s.counts[g] += 1;
                s.sizes[g] += v.len as usize;
            }
        }

        // Group offsets, and each group's first value slot and first byte.
        s.group_offsets.clear();
        s.group_offsets.push(0);
        let (mut slots, mut bytes) = (0u32, 0usize);
        for g in 0..groups {
            let (count, size) = (s.counts[g], s.sizes[g]);
            s.counts[g] = slots;
            s.sizes[g] = bytes;
            slots += count;
            bytes += size;
            s.group_offsets.push(slots);
        }
        if i32::try_from(bytes).is_err() {
            return Err(too_big("values"));
        }
        s.value_offsets.clear();
        s.value_offsets.resize(slots as usize + 1, 0);
        s.value_data.clear();
        s.value_data.resize(bytes, 0);

        // Each group: its running value, then the batch's values in arrival order. The arena is
        // cold on a large table: each value is asked for `AHEAD` groups before it is read.
        const AHEAD: usize = 16;
        for v in s.group_value.iter().take(AHEAD) {
            prefetch(arena.as_ptr().wrapping_add(v.at));
        }
        for g in 0..groups {
            if let Some(next) = s.group_value.get(g + AHEAD) {
                prefetch(arena.as_ptr().wrapping_add(next.at));
            }
            let v = s.group_value[g];
            if v.cap > 0 {
                let value = &arena[v.at..v.at + v.len as usize];
                let (slot, at) = (s.counts[g] as usize, s.sizes[g]);
                copy_short(&mut s.value_data[at..at + value.len()], value);
                s.value_offsets[slot + 1] = (at + value.len()) as i32;
                s.counts[g] += 1;
                s.sizes[g] += value.len();
            }
        }
        let values = batch.values();
        for (i, &g) in (start..end).zip(&s.record_group) {
            let g = g as usize;
            let value = values.value(i);
            let (slot, at) = (s.counts[g] as usize, s.sizes[g]);
            copy_short(&mut s.value_data[at..at + value.len()], value);
            s.value_offsets[slot + 1] = (at + value.len()) as i32;
            s.counts[g] += 1;
            s.sizes[g] += value.len();
        }

        // Lend the buffers to Arrow for the call (no copy), and take them back after.
        let keys = binary_array(
            std::mem::take(&mut s.key_offsets),
            std::mem::take(&mut s.key_data),
        );
        let vals = binary_array(
            std::mem::take(&mut s.value_offsets),
            std::mem::take(&mut s.value_data),
        );
        let offsets = ScalarBuffer::from(std::mem::take(&mut s.group_offsets));
        let call = Groups::new(keys.clone(), offsets.clone(), vals.clone())
            .map_err(|e| TaskError::step(&self.step, e.into()))
            .and_then(|groups| pipeline.reduce(&self.step, &groups));
        reclaim(keys, &mut s.key_offsets, &mut s.key_data);
        reclaim(vals, &mut s.value_offsets, &mut s.value_data);
        if let Ok(v) = offsets.into_inner().into_vec::<u32>() {
            s.group_offsets = v;
        }
        let reduced = call?;

        // Store each group's result as its key's running value: in place when it fits (the
        // entry is written only if the value's length changed), else in a new slot.
        for (g, (&e, v)) in s.group_entry.iter().zip(&s.group_value).enumerate() {
            if let Some(next) = s.group_value.get(g + AHEAD) {
                prefetch(arena.as_ptr().wrapping_add(next.at));
            }
            let value = reduced.value(g);
            // A first value needs a slot even when it is empty: a capacity of 0 means "no
            // running value yet", and an empty one kept without a slot would be forgotten.
            if v.cap == 0 || value.len() > v.cap as usize {
                // Outgrown (or first value): a new slot at the end, at least twice the old one so
                // a steadily growing value moves only a logarithmic number of times.
                let entry = &mut self.keys.entries[e as usize];
                let room = value_room(value.len()).max(2 * v.cap as usize);
                entry.val_at = arena.len();
                entry.val_cap = u32::try_from(room).map_err(|_| too_big("values"))?;
                entry.val_len = value.len() as u32;
                reserve_huge(arena, room);
                arena.resize(arena.len() + room, 0);
                copy_short(&mut arena[entry.val_at..entry.val_at + value.len()], value);
            } else {
                copy_short(&mut arena[v.at..v.at + value.len()], value);
                if value.len() != v.len as usize {
                    self.keys.entries[e as usize].val_len = value.len() as u32;
                }
            }
        }
        *pending = 0;
        Ok(())
    }

    /// `group_reduce`: collects records `start..`, stopping before the first one the budget has
    /// no room for. Returns where it stopped.
    fn collect_prefix(&mut self, batch: &Records, start: usize, bounded: bool) -> usize {
        let Values::Lists { arena, ends, owner } = &mut *self.values else {
            return start;
        };
        let keys = batch.keys();
        let values = batch.values();
        let mut end = start;
        while end < batch.len() {
            let key = keys.value(end);
            let value = values.value(end);
            if bounded && !ends.is_empty() {
                // Counted as if the key were new: one key's worth of slack, one check per record.
                let after = self.keys.sizes().footprint_with(key.len())
                    + grown(arena.len(), arena.capacity(), value.len())
                    + grown(ends.len(), ends.capacity(), 1) * 8
                    + grown(owner.len(), owner.capacity(), 1) * 4;
                if after > self.budget {
                    break;
                }
            }
            let Some((place, _)) = self.keys.probe(key, |_| true) else {
                break;
            };
            let e = place.entry;
            arena.extend_from_slice(value);
            ends.push(arena.len());
            owner.push(e);
            end += 1;
        }
        end
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
    }

    /// Empties the grouper and gives its tables' memory back (`clear` keeps it for reuse).
    fn release(&mut self) {
        let hasher = self.keys.hasher.clone();
        *self.keys = Keys {
            hasher,
            ..Keys::default()
        };
        self.values.clear();
        match &mut *self.values {
            Values::Running { arena, .. } => *arena = Vec::new(),
            Values::Lists { arena, ends, owner } => {
                *arena = Vec::new();
                *ends = Vec::new();
                *owner = Vec::new();
            }
        }
        *self.scratch = Scratch::default();
    }

    /// Sorts what is held in run order, writes it as a run and starts afresh.
    fn spill_now(&mut self) -> Result<(), TaskError> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        if self.keys.entries.is_empty() {
            return Ok(());
        }
        let mut run = spill.create_run()?;
        let order = self.keys.sorted();
        match &*self.values {
            Values::Running { arena, .. } => {
                for &e in &order {
                    let entry = &self.keys.entries[e as usize];
                    run.push(
                        self.keys.key(e as usize),
                        &arena[entry.val_at..entry.val_at + entry.val_len as usize],
                    )?;
                }
            }
            Values::Lists { arena, ends, owner } => {
                let (first, by_entry) = values_by_entry(ends, owner, self.keys.entries.len());
                for &e in &order {
                    let e = e as usize;
                    for &i in &by_entry[first[e] as usize..first[e + 1] as usize] {
                        run.push(self.keys.key(e), value_at(arena, ends, i as usize))?;
                    }
                }
            }
        }
        let path = spill.finish_run(run)?;
        self.runs.push(path);
        // Kept for reuse unless what is kept is itself over the budget (running values that
        // outgrew their slots grow the arena past what admitting keys counted): then every next
        // key would be refused, and each run would hold a single key.
        if self.footprint() > self.budget {
            self.release();
        } else {
            self.clear();
        }
        Ok(())
    }

    fn records(&self, keys: &mut Column, values: &mut Column) -> Result<Records, TaskError> {
        Records::new(keys.finish(), values.finish())
            .map_err(|e| TaskError::step(&self.step, e.into()))
    }

    /// `reduce`: hands the running values held to `emit`, as records, first-seen key first.
    fn emit_running(
        &self,
        emit: &mut dyn FnMut(Records) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        let Values::Running { arena, .. } = &*self.values else {
            return Ok(());
        };
        let mut keys = Column::default();
        let mut values = Column::default();
        for (e, entry) in self.keys.entries.iter().enumerate() {
            let value = &arena[entry.val_at..entry.val_at + entry.val_len as usize];
            push_pair(&mut keys, &mut values, self.keys.key(e), value)
                .map_err(|e| TaskError::step(&self.step, e))?;
            if keys.bytes() + values.bytes() >= BATCH_BYTES {
                emit(self.records(&mut keys, &mut values)?)?;
            }
        }
        if !keys.is_empty() {
            emit(self.records(&mut keys, &mut values)?)?;
        }
        Ok(())
    }

    /// Runs what is left and hands the resulting records to `emit`, in batches of about
    /// [`BATCH_BYTES`]. Returns the runs spilled on the way (which are deleted by now).
    pub fn finish(
        mut self,
        pipeline: &mut Pipeline,
        mut emit: impl FnMut(Records) -> Result<(), TaskError>,
    ) -> Result<SpillStats, TaskError> {
        self.finish_with(pipeline, |_, records| emit(records))
    }

    /// [`Grouper::finish`], with the pipeline lent back to `emit` (for running the narrow steps
    /// that follow the wide one as the results come), and the grouper left to its owner, empty,
    /// so that [`Grouper::spill_stats`] can still be read when finishing failed.
    pub fn finish_with(
        &mut self,
        pipeline: &mut Pipeline,
        mut emit: impl FnMut(&mut Pipeline, Records) -> Result<(), TaskError>,
    ) -> Result<SpillStats, TaskError> {
        if !self.runs.is_empty() {
            self.spill_now()?;
            // Everything is in the runs now. `spill_now` kept the tables' capacity for the next
            // run; the merge needs none of it, and holding it beside the merge's batches would
            // take the task past its budget.
            self.release();
            return self.merge_runs(pipeline, &mut emit);
        }
        let finished = self.emit_all(pipeline, &mut emit);
        self.clear();
        finished?;
        Ok(self.spill_stats())
    }

    /// Without runs: hands on every key's result, first-seen key first.
    fn emit_all(
        &self,
        pipeline: &mut Pipeline,
        emit: &mut dyn FnMut(&mut Pipeline, Records) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        match &*self.values {
            Values::Running { .. } => {
                // Running values are final results: no guest call, so `emit` has the pipeline.
                self.emit_running(&mut |records| emit(pipeline, records))?;
            }
            Values::Lists { arena, ends, owner } => {
                let (first, by_entry) = values_by_entry(ends, owner, self.keys.entries.len());
                let mut batch = GroupBatch::default();
                for e in 0..self.keys.entries.len() {
                    batch
                        .start_group(self.keys.key(e))
                        .map_err(|e| TaskError::step(&self.step, e))?;
                    for &i in &by_entry[first[e] as usize..first[e + 1] as usize] {
                        batch
                            .push_value(value_at(arena, ends, i as usize))
                            .map_err(|e| TaskError::step(&self.step, e))?;
                    }
                    if batch.bytes() >= BATCH_BYTES {
                        batch.call(&self.step, pipeline, emit)?;
                    }
                }
                batch.call(&self.step, pipeline, emit)?;
            }
        }
        Ok(())
    }

    /// Merges the runs (all of the grouper's data is in them by now) and runs the step over each
    /// key's values from every run.
    ///
    /// Memory: one batch per run (a quarter of the budget), plus the groups of one guest call,
    /// flushed at key boundaries once they pass a quarter of the budget — so a single key whose
    /// values exceed that is held whole: the ABI hands a group to the guest in one call, so the
    /// bound is the budget plus the largest group.
    fn merge_runs(
        &mut self,
        pipeline: &mut Pipeline,
        emit: &mut dyn FnMut(&mut Pipeline, Records) -> Result<(), TaskError>,
    ) -> Result<SpillStats, TaskError> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(SpillStats::default());
        };
        let order = self.keys.run_order();
        let runs = spill.reduce_fan_in(std::mem::take(&mut self.runs), &order)?;
        let flush_at = (self.budget / 4).clamp(1 << 10, BATCH_BYTES);
        let mut merge = Merge::open(&runs, &order)?;
        let mut batch = GroupBatch::default();
        let step = self.step.clone();
        loop {
            let more = merge.next(|key, value| -> Result<(), TaskError> {
                if batch.last_key() != Some(key) {
                    if batch.bytes() >= flush_at {
                        batch.call(&step, pipeline, emit)?;
                    }
                    batch
                        .start_group(key)
                        .map_err(|e| TaskError::step(&step, e))?;
                }
                batch
                    .push_value(value)
                    .map_err(|e| TaskError::step(&step, e))
            })?;
            if more.is_none() {
                break;
            }
        }
        batch.call(&step, pipeline, emit)?;
        drop(merge);
        Ok(self.spill_stats())
    }
}

/// Groups being gathered for one guest call.
#[derive(Debug, Default)]
struct GroupBatch {
    keys: Column,
    values: Column,
    /// Group `g` owns values `offsets[g]..offsets[g + 1]`; the open group's end is the values'
    /// count.
    offsets: Vec<u32>,
}

impl GroupBatch {
    fn last_key(&self) -> Option<&[u8]> {
        self.keys.last()
    }

    fn bytes(&self) -> usize {
        self.keys.bytes() + self.values.bytes()
    }

    fn start_group(&mut self, key: &[u8]) -> Result<(), CallError> {
        self.keys
            .push(key)
            .map_err(|e| CallError::Batch(BatchError::TooLarge(e)))?;
        self.offsets.push(self.values.len() as u32);
        Ok(())
    }

    fn push_value(&mut self, value: &[u8]) -> Result<(), CallError> {
        self.values
            .push(value)
            .map_err(|e| CallError::Batch(BatchError::TooLarge(e)))
    }

    /// Calls the step over the gathered groups, hands what comes out to `emit`, and empties.
    fn call(
        &mut self,
        step: &StepRef,
        pipeline: &mut Pipeline,
        emit: &mut dyn FnMut(&mut Pipeline, Records) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let mut offsets = std::mem::take(&mut self.offsets);
        offsets.push(self.values.len() as u32);
        let keys = self.keys.finish();
        let groups = Groups::new(keys.clone(), offsets.into(), self.values.finish())
            .map_err(|e| TaskError::step(step, e.into()))?;
        let out = match step.kind {
            UdfKind::Reduce => {
                let reduced: BinaryArray = pipeline.reduce(step, &groups)?;
                Records::new(keys, reduced).map_err(|e| TaskError::step(step, e.into()))?
            }
            _ => pipeline.group_reduce(step, &groups)?,
        };
        drop(groups);
        emit(pipeline, out)
    }
}

fn push_pair(
    keys: &mut Column,
    values: &mut Column,
    key: &[u8],
    value: &[u8],
) -> Result<(), CallError> {
    keys.push(key)
        .map_err(|e| CallError::Batch(BatchError::TooLarge(e)))?;
    values
        .push(value)
        .map_err(|e| CallError::Batch(BatchError::TooLarge(e)))
}

/// `group_reduce`: the values' indexes ordered by entry, arrival order kept (a counting sort), and
/// where each entry's run of them starts (`first[e]..first[e + 1]`).
fn values_by_entry(ends: &[usize], owner: &[u32], entries: usize) -> (Vec<u32>, Vec<u32>) {
    let mut first = vec![0u32; entries + 1];
    for &e in owner {
        first[e as usize + 1] += 1;
    }
    for e in 0..entries {
        first[e + 1] += first[e];
    }
    let mut cursor = first[..entries].to_vec();
    let mut by_entry = vec![0u32; ends.len()];
    for (i, &e) in owner.iter().enumerate() {
        by_entry[cursor[e as usize] as usize] = i as u32;
        cursor[e as usize] += 1;
    }
    (first, by_entry)
}

fn value_at<'a>(arena: &'a [u8], ends: &[usize], i: usize) -> &'a [u8] {
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &arena[start..ends[i]]
}

/// Takes back the buffers of an array lent to Arrow, if nothing else holds them any more.
fn reclaim(array: BinaryArray, offsets: &mut Vec<i32>, data: &mut Vec<u8>) {
    let (o, d, _) = array.into_parts();
    if let Ok(v) = o.into_inner().into_inner().into_vec::<i32>() {
        *offsets = v;
    }
    if let Ok(v) = d.into_vec::<u8>() {
        *data = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Growing into huge-page memory keeps what was there and grows as `Vec` would, which the
    /// budget's [`grown`] predicts: from small vectors to ones past the size where pages are
    /// asked for.
    #[test]
    fn reserving_huge_memory_keeps_the_contents_and_grows_as_the_budget_counts() {
        let mut v: Vec<u64> = Vec::new();
        let mut expected = Vec::new();
        for i in 0..3_000_000u64 {
            let (len, cap) = (v.len(), v.capacity());
            reserve_huge(&mut v, 1);
            assert_eq!(v.capacity(), grown(len, cap, 1), "at {i}");
            v.push(i * 7);
            expected.push(i * 7);
        }
        assert_eq!(v, expected);
        // A reservation larger than doubling takes what it needs; one that fits changes nothing.
        let mut bytes = vec![1u8; 10];
        reserve_huge(&mut bytes, 9 << 20);
        assert_eq!(bytes.capacity(), 10 + (9 << 20));
        assert_eq!(bytes, [1u8; 10]);
        let at = bytes.as_ptr();
        reserve_huge(&mut bytes, 100);
        assert_eq!(bytes.as_ptr(), at);
    }
}
