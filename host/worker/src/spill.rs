//! Sorted runs on disk: how a reduce task whose groups outgrow its memory budget keeps going.
//!
//! A [`Grouper`](crate::Grouper) over its budget sorts what it holds and writes it here as a run:
//! an Arrow IPC file (`key: Binary, value: Binary`, the shuffle's own schema) whose records are in
//! ascending run order ([`RunOrder`]: by the key's hash, then by its bytes), the values of one key
//! consecutive and in arrival order. At the end the runs are merged k-way in that order, reading
//! one batch per run at a time, so memory is bounded by the fan-in times the runs' batch size,
//! whatever the runs' total size.
//!
//! The order only has to bring equal keys together, so it sorts by hash first: the grouper keeps
//! every key's hash, a sort of millions of keys then compares integers held side by side instead
//! of chasing each key's bytes (which took half of a shuffle-heavy reduce's time), and the merge
//! compares bytes only for equal hashes. The hasher is the grouper's own, seeded per process: a
//! run is never read by another process.
//!
//! Runs live in a directory of the task's own ([`SpillDir`]), created at the first spill and
//! removed with everything in it when the `SpillDir` is dropped: a task that ends, succeeded or
//! failed, leaves no run behind.

use std::cmp::Ordering;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, BinaryArray, RecordBatch};
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use weft_batch::binary_array;

use crate::{DataError, TaskError};

/// The order of a run's records: by the key's hash under one hasher (the grouper's), then by the
/// key's bytes.
#[derive(Debug, Clone)]
pub(crate) struct RunOrder {
    hasher: foldhash::fast::RandomState,
}

impl RunOrder {
    pub(crate) fn new(hasher: foldhash::fast::RandomState) -> RunOrder {
        RunOrder { hasher }
    }

    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Compares two keys given with their hashes.
    pub(crate) fn cmp(a: (u64, &[u8]), b: (u64, &[u8])) -> Ordering {
        a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1))
    }
}

/// Runs merged at once. A merge holds one batch per run, so the fan-in and the runs' batch size
/// together bound its memory; more runs than this are first merged in passes of this many.
pub(crate) const FAN_IN: usize = 16;

/// How many runs, and bytes of runs, a grouper wrote. Intermediate merge passes count too: they
/// are disk traffic the budget caused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Sorted runs written.
    pub runs: u64,
    /// Bytes of those runs on disk (Arrow IPC).
    pub bytes: u64,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
    ]))
}

fn spill_error(path: &Path, source: impl Into<DataError>) -> TaskError {
    TaskError::spill(path, source)
}

/// A task's directory of runs; removed, runs and all, when dropped.
#[derive(Debug)]
pub(crate) struct SpillDir {
    dir: PathBuf,
    created: bool,
    next: u32,
    /// Bytes per batch of a run, decoded (data and offsets): what a merge holds per run.
    batch_bytes: usize,
    pub(crate) stats: SpillStats,
}

impl SpillDir {
    /// Runs will go into `dir` (created when the first one is written), in batches of about
    /// `batch_bytes`.
    pub(crate) fn new(dir: &Path, batch_bytes: usize) -> SpillDir {
        SpillDir {
            dir: dir.to_owned(),
            created: false,
            next: 0,
            batch_bytes: batch_bytes.max(1),
            stats: SpillStats::default(),
        }
    }

    /// Starts a new run.
    pub(crate) fn create_run(&mut self) -> Result<RunWriter, TaskError> {
        if !self.created {
            std::fs::create_dir_all(&self.dir).map_err(|e| spill_error(&self.dir, e))?;
            self.created = true;
        }
        let path = self.dir.join(format!("run-{:05}.arrow", self.next));
        self.next += 1;
        let file = File::create(&path).map_err(|e| spill_error(&path, e))?;
        let writer = FileWriter::try_new(BufWriter::with_capacity(1 << 16, file), &schema())
            .map_err(|e| spill_error(&path, e))?;
        Ok(RunWriter {
            path,
            writer,
            keys: Column::default(),
            values: Column::default(),
            batch_bytes: self.batch_bytes,
        })
    }

    /// Closes a run and counts it.
    pub(crate) fn finish_run(&mut self, run: RunWriter) -> Result<PathBuf, TaskError> {
        let (path, bytes) = run.finish()?;
        self.stats.runs += 1;
        self.stats.bytes += bytes;
        Ok(path)
    }

    /// Merges `runs` (oldest first) into one, deleting them, while there are more than
    /// [`FAN_IN`]; the result is at most `FAN_IN` runs, still oldest first.
    pub(crate) fn reduce_fan_in(
        &mut self,
        mut runs: Vec<PathBuf>,
        order: &RunOrder,
    ) -> Result<Vec<PathBuf>, TaskError> {
        while runs.len() > FAN_IN {
            let first: Vec<PathBuf> = runs.drain(..FAN_IN).collect();
            let mut merge = Merge::open(&first, order)?;
            let mut out = self.create_run()?;
            while merge.next(|k, v| out.push(k, v))?.is_some() {}
            drop(merge);
            let merged = self.finish_run(out)?;
            for path in &first {
                std::fs::remove_file(path).map_err(|e| spill_error(path, e))?;
            }
            // The merged run holds the oldest records, so it stays first: a key's values keep
            // their arrival order across passes.
            runs.insert(0, merged);
        }
        Ok(runs)
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot delete spilled runs");
            }
            _ => {}
        }
    }
}

/// A binary column being built: offsets and bytes, turned into an array without copying.
#[derive(Debug)]
pub(crate) struct Column {
    offsets: Vec<i32>,
    data: Vec<u8>,
}

impl Default for Column {
    fn default() -> Column {
        Column {
            offsets: vec![0],
            data: Vec::new(),
        }
    }
}

impl Column {
    /// Appends an item; fails once the column passes Arrow's 2 GiB (`i32` offsets).
    pub(crate) fn push(&mut self, item: &[u8]) -> Result<(), String> {
        self.data.extend_from_slice(item);
        let end = i32::try_from(self.data.len())
            .map_err(|_| "a batch of keys or values over 2 GiB".to_owned())?;
        self.offsets.push(end);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub(crate) fn bytes(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last item pushed.
    pub(crate) fn last(&self) -> Option<&[u8]> {
        let n = self.offsets.len();
        (n > 1).then(|| &self.data[self.offsets[n - 2] as usize..self.offsets[n - 1] as usize])
    }

    /// The column as an array; the builder is left empty.
    pub(crate) fn finish(&mut self) -> BinaryArray {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let data = std::mem::take(&mut self.data);
        binary_array(offsets, data)
    }
}

/// A run being written; records must come in ascending [`RunOrder`].
pub(crate) struct RunWriter {
    path: PathBuf,
    writer: FileWriter<BufWriter<File>>,
    keys: Column,
    values: Column,
    batch_bytes: usize,
}

impl std::fmt::Debug for RunWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RunWriter {
    pub(crate) fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), TaskError> {
        let fail = |e: String| spill_error(&self.path, e);
        self.keys.push(key).map_err(fail)?;
        self.values.push(value).map_err(fail)?;
        self.flush_if_full(false)
    }

    /// What the buffered batch takes once a merge has decoded it: the data and both columns'
    /// `i32` offsets. For short words the offsets weigh as much as the data, and a merge holds one
    /// such batch per run.
    fn decoded_bytes(&self) -> usize {
        self.keys.bytes() + self.values.bytes() + 8 * (self.keys.len() + 1)
    }

    fn flush_if_full(&mut self, force: bool) -> Result<(), TaskError> {
        if self.keys.is_empty() || (!force && self.decoded_bytes() < self.batch_bytes) {
            return Ok(());
        }
        let batch = RecordBatch::try_new(
            schema(),
            vec![Arc::new(self.keys.finish()), Arc::new(self.values.finish())],
        )
        .map_err(|e| spill_error(&self.path, e))?;
        self.writer
            .write(&batch)
            .map_err(|e| spill_error(&self.path, e))
    }

    /// Writes what is buffered and closes the file: its path and size.
    fn finish(mut self) -> Result<(PathBuf, u64), TaskError> {
        self.flush_if_full(true)?;
        let path = self.path.clone();
        self.writer.finish().map_err(|e| spill_error(&path, e))?;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| spill_error(&path, e))?
            .into_inner()
            .map_err(|e| spill_error(&path, e.into_error()))?;
        let bytes = file.metadata().map_err(|e| spill_error(&path, e))?.len();
        Ok((path, bytes))
    }
}

/// One run being read: its current batch and the position in it.
struct Cursor {
    path: PathBuf,
    reader: FileReader<BufReader<File>>,
    keys: BinaryArray,
    values: BinaryArray,
    row: usize,
    /// The current key's hash under the run's order.
    hash: u64,
}

impl Cursor {
    /// Opens a run at its first record; `None` if it has none.
    fn open(path: &Path, order: &RunOrder) -> Result<Option<Cursor>, TaskError> {
        let file = File::open(path).map_err(|e| spill_error(path, e))?;
        let reader = FileReader::try_new(BufReader::with_capacity(1 << 16, file), None)
            .map_err(|e| spill_error(path, e))?;
        let empty = BinaryArray::from_iter_values(std::iter::empty::<&[u8]>());
        let mut cursor = Cursor {
            path: path.to_owned(),
            reader,
            keys: empty.clone(),
            values: empty,
            row: 0,
            hash: 0,
        };
        if !cursor.load_next()? {
            return Ok(None);
        }
        cursor.hash = order.hash(cursor.key());
        Ok(Some(cursor))
    }

    /// Loads the next non-empty batch; false at the end of the run.
    fn load_next(&mut self) -> Result<bool, TaskError> {
        for batch in self.reader.by_ref() {
            let batch = batch.map_err(|e| spill_error(&self.path, e))?;
            if batch.num_rows() == 0 {
                continue;
            }
            let column = |i: usize| -> Result<BinaryArray, TaskError> {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<BinaryArray>()
                    .cloned()
                    .ok_or_else(|| spill_error(&self.path, format!("column {i} is not binary")))
            };
            self.keys = column(0)?;
            self.values = column(1)?;
            self.row = 0;
            return Ok(true);
        }
        Ok(false)
    }

    fn key(&self) -> &[u8] {
        self.keys.value(self.row)
    }

    fn value(&self) -> &[u8] {
        self.values.value(self.row)
    }

    /// Moves to the next record; false at the end of the run.
    fn advance(&mut self, order: &RunOrder) -> Result<bool, TaskError> {
        self.row += 1;
        if self.row >= self.keys.len() && !self.load_next()? {
            return Ok(false);
        }
        self.hash = order.hash(self.key());
        Ok(true)
    }
}

/// A k-way merge of sorted runs: records in ascending [`RunOrder`]; equal keys in the order of the
/// runs given (oldest first), so each key's values keep their arrival order.
pub(crate) struct Merge {
    cursors: Vec<Cursor>,
    /// A binary min-heap of indexes into `cursors`, by (hash, key, index).
    heap: Vec<usize>,
    order: RunOrder,
}

impl std::fmt::Debug for Merge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merge")
            .field("runs", &self.cursors.len())
            .finish_non_exhaustive()
    }
}

impl Merge {
    pub(crate) fn open(runs: &[PathBuf], order: &RunOrder) -> Result<Merge, TaskError> {
        let mut cursors = Vec::with_capacity(runs.len());
        for path in runs {
            if let Some(cursor) = Cursor::open(path, order)? {
                cursors.push(cursor);
            }
        }
        let mut merge = Merge {
            heap: (0..cursors.len()).collect(),
            cursors,
            order: order.clone(),
        };
        for i in (0..merge.heap.len() / 2).rev() {
            merge.sift_down(i);
        }
        Ok(merge)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (ca, cb) = (self.heap[a], self.heap[b]);
        let (x, y) = (&self.cursors[ca], &self.cursors[cb]);
        match RunOrder::cmp((x.hash, x.key()), (y.hash, y.key())) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => ca < cb,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if l < n && self.less(l, smallest) {
                smallest = l;
            }
            if r < n && self.less(r, smallest) {
                smallest = r;
            }
            if smallest == i {
                return;
            }
            self.heap.swap(i, smallest);
            i = smallest;
        }
    }

    /// Hands the smallest record to `f` and moves past it; `None` when every run is exhausted.
    /// `f`'s error stops the merge.
    pub(crate) fn next<E>(
        &mut self,
        f: impl FnOnce(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<Option<()>, E>
    where
        E: From<TaskError>,
    {
        let Some(&top) = self.heap.first() else {
            return Ok(None);
        };
        let cursor = &self.cursors[top];
        f(cursor.key(), cursor.value())?;
        if self.cursors[top].advance(&self.order)? {
            self.sift_down(0);
        } else {
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
            self.sift_down(0);
        }
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A merge holds one decoded batch per run, so a run's batches must stay within their size
    /// once decoded, offsets included: for short keys the offsets weigh as much as the data.
    #[test]
    fn decoded_run_batches_stay_within_their_size_offsets_included() {
        let dir = tempfile::tempdir().unwrap();
        let batch_bytes = 64 << 10;
        let mut spill = SpillDir::new(&dir.path().join("runs"), batch_bytes);
        let mut run = spill.create_run().unwrap();
        for i in 0..50_000u32 {
            run.push(format!("{i:06}").as_bytes(), b"1").unwrap();
        }
        let path = spill.finish_run(run).unwrap();
        let reader = FileReader::try_new(BufReader::new(File::open(&path).unwrap()), None).unwrap();
        let mut batches = 0;
        for batch in reader {
            let batch = batch.unwrap();
            let decoded: usize = batch
                .columns()
                .iter()
                .map(|c| c.to_data().buffers().iter().map(|b| b.len()).sum::<usize>())
                .sum();
            // One record may push a batch past its size.
            assert!(decoded <= batch_bytes + 64, "a batch of {decoded} bytes");
            batches += 1;
        }
        assert!(batches > 10, "{batches} batches");
    }
}
