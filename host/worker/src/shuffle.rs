//! The map side of a shuffle, and reading its files back.
//!
//! Records are routed to a reduce partition by `xxh3_64(key) % partitions` — a hash fixed by its
//! specification, so every worker, process and version agrees on where a key goes. Each non-empty
//! partition becomes one Arrow IPC file (schema `key: Binary, value: Binary`), written in batches
//! as its buffer fills.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::BinaryBuilder;
use arrow_array::{Array, BinaryArray, RecordBatch};
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use weft_host::Records;

use crate::{BATCH_BYTES, Grouper, Pipeline, StepRef, TaskError};

/// The reduce partition of a key.
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(key) % u64::from(partitions)) as u32
}

/// One written shuffle file: all of this map task's records for one reduce partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffleBlock {
    pub partition: u32,
    pub path: PathBuf,
    pub records: u64,
    pub bytes: u64,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
    ]))
}

/// Buffered records of one partition, and its file once the first batch is written.
struct Partition {
    keys: BinaryBuilder,
    values: BinaryBuilder,
    buffered: usize,
    writer: Option<FileWriter<BufWriter<File>>>,
    records: u64,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

/// Writes a map task's output, partitioned by key, optionally combined.
#[derive(Debug)]
pub struct ShuffleWriter {
    dir: PathBuf,
    schema: SchemaRef,
    parts: Vec<Partition>,
    /// Map-side combine: values of equal keys are reduced before anything is written, so a word
    /// seen a million times crosses the shuffle once per map task.
    combiner: Option<Grouper>,
}

impl ShuffleWriter {
    /// Writes `partitions` files (at most) into `dir`, which must exist. `combiner` is the reduce
    /// step of the consuming stage, if it is a `reduce`.
    pub fn new(
        dir: &Path,
        partitions: u32,
        combiner: Option<StepRef>,
    ) -> Result<ShuffleWriter, TaskError> {
        let parts = (0..partitions.max(1))
            .map(|_| Partition {
                keys: BinaryBuilder::new(),
                values: BinaryBuilder::new(),
                buffered: 0,
                writer: None,
                records: 0,
            })
            .collect();
        Ok(ShuffleWriter {
            dir: dir.to_owned(),
            schema: schema(),
            parts,
            combiner: combiner.map(Grouper::new).transpose()?,
        })
    }

    /// Takes in one batch of the task's output.
    pub fn write(&mut self, pipeline: &mut Pipeline, batch: &Records) -> Result<(), TaskError> {
        match &mut self.combiner {
            Some(grouper) => grouper.absorb(pipeline, batch),
            None => self.route(batch),
        }
    }

    fn route(&mut self, batch: &Records) -> Result<(), TaskError> {
        let n = self.parts.len() as u32;
        for (k, v) in batch.iter() {
            let p = partition_of(k, n) as usize;
            let part = &mut self.parts[p];
            part.keys.append_value(k);
            part.values.append_value(v);
            part.buffered += k.len() + v.len();
            if part.buffered >= BATCH_BYTES {
                self.flush(p)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, p: usize) -> Result<(), TaskError> {
        let path = self.dir.join(format!("part-{p:05}.arrow"));
        let fail = |detail: String| TaskError::Shuffle {
            path: path.clone(),
            detail,
        };
        let part = &mut self.parts[p];
        let keys: BinaryArray = part.keys.finish();
        let values: BinaryArray = part.values.finish();
        part.buffered = 0;
        if keys.is_empty() {
            return Ok(());
        }
        part.records += keys.len() as u64;
        let batch =
            RecordBatch::try_new(self.schema.clone(), vec![Arc::new(keys), Arc::new(values)])
                .map_err(|e| fail(e.to_string()))?;
        if part.writer.is_none() {
            let file = File::create(&path).map_err(|e| fail(e.to_string()))?;
            let writer = FileWriter::try_new(BufWriter::with_capacity(1 << 20, file), &self.schema)
                .map_err(|e| fail(e.to_string()))?;
            part.writer = Some(writer);
        }
        if let Some(w) = part.writer.as_mut() {
            w.write(&batch).map_err(|e| fail(e.to_string()))?;
        }
        Ok(())
    }

    /// Combines what is left, writes every buffer and closes the files.
    pub fn finish(mut self, pipeline: &mut Pipeline) -> Result<Vec<ShuffleBlock>, TaskError> {
        if let Some(grouper) = self.combiner.take() {
            grouper.finish(pipeline, |records| self.route(&records))?;
        }
        let mut blocks = Vec::new();
        for p in 0..self.parts.len() {
            self.flush(p)?;
            let path = self.dir.join(format!("part-{p:05}.arrow"));
            let part = &mut self.parts[p];
            if let Some(mut writer) = part.writer.take() {
                let fail = |detail: String| TaskError::Shuffle {
                    path: path.clone(),
                    detail,
                };
                writer.finish().map_err(|e| fail(e.to_string()))?;
                let file = writer.into_inner().map_err(|e| fail(e.to_string()))?;
                let file = file.into_inner().map_err(|e| fail(e.to_string()))?;
                file.sync_all().map_err(|e| fail(e.to_string()))?;
                let bytes = file.metadata().map_err(|e| fail(e.to_string()))?.len();
                blocks.push(ShuffleBlock {
                    partition: p as u32,
                    path,
                    records: part.records,
                    bytes,
                });
            }
        }
        Ok(blocks)
    }
}

/// Reads a shuffle file back as batches of records.
pub fn read_block(path: &Path) -> Result<Vec<Records>, TaskError> {
    let fail = |detail: String| TaskError::Shuffle {
        path: path.to_owned(),
        detail,
    };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let reader =
        FileReader::try_new(BufReader::new(file), None).map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        let column = |i: usize| -> Result<BinaryArray, TaskError> {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .cloned()
                .ok_or_else(|| fail(format!("column {i} is not binary")))
        };
        let records = Records::new(column(0)?, column(1)?).map_err(|e| fail(e.to_string()))?;
        out.push(records);
    }
    Ok(out)
}

/// Reads a shuffle file received over the network.
pub fn read_block_bytes(bytes: Vec<u8>) -> Result<Vec<Records>, String> {
    let reader =
        FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let column = |i: usize| -> Result<BinaryArray, String> {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .cloned()
                .ok_or_else(|| format!("column {i} is not binary"))
        };
        out.push(Records::new(column(0)?, column(1)?).map_err(|e| e.to_string())?);
    }
    Ok(out)
}
