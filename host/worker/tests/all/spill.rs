//! Bounded memory: reduce tasks whose shuffle input is many times their memory budget spill
//! sorted runs, merge them exactly, and leave nothing behind; the map-side combiner hands partial
//! results on instead; shuffle blocks stream in batch by batch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use weft_host::{Records, SandboxLimits, UdfKind};
use weft_io::OutputFormat;
use weft_task::{BlockLocation, ShuffleCompression, TaskId, TaskInput, TaskOutput, TaskSpec};
use weft_worker::{
    BlockDecoder, Executor, Grouper, Pipeline, ShuffleWriter, TaskError, read_block,
    read_block_with,
};

use crate::{Modules, engine, id_of, modules, step};

/// The task memory of these tests: small, so that a few hundred KiB of input is many budgets.
const BUDGET: u64 = 64 << 10;

fn wordcount() -> (Vec<u8>, String) {
    let bytes = std::fs::read(weft_examples::WORDCOUNT_RUST).unwrap();
    let id = id_of(&bytes);
    (bytes, id)
}

fn textkit() -> (Vec<u8>, String) {
    let bytes = std::fs::read(weft_examples::TEXTKIT_RUST).unwrap();
    let id = id_of(&bytes);
    (bytes, id)
}

fn task_id(job: &str, stage: u32, partition: u32) -> TaskId {
    TaskId {
        job: job.to_owned(),
        stage,
        partition,
        attempt: 0,
    }
}

/// Writes `records` as the single-partition shuffle output of map task `partition` of stage 0,
/// where `executor` looks for it, uncombined; returns its location.
fn map_output(
    executor: &Executor,
    job: &str,
    partition: u32,
    records: &[(String, String)],
) -> BlockLocation {
    map_output_with(executor, job, partition, records, ShuffleCompression::None)
}

/// [`map_output`], compressed with `compression`.
fn map_output_with(
    executor: &Executor,
    job: &str,
    partition: u32,
    records: &[(String, String)],
    compression: ShuffleCompression,
) -> BlockLocation {
    let id = task_id(job, 0, partition);
    let dir = executor.shuffle_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut pipeline = Pipeline::new(&Default::default(), &[], &SandboxLimits::default()).unwrap();
    let mut writer = ShuffleWriter::new(&dir, 1, None)
        .unwrap()
        .with_compression(compression);
    for chunk in records.chunks(5000) {
        let batch = Records::from_pairs(chunk.iter().map(|(k, v)| (k, v)));
        writer.write(&mut pipeline, &batch).unwrap();
    }
    let block = writer.finish(&mut pipeline).unwrap().pop().unwrap();
    BlockLocation {
        worker_id: "w0".into(),
        worker_address: String::new(),
        map_task: id,
        partition: 0,
        bytes: block.bytes,
        records: block.records,
    }
}

/// A reduce task of stage 1 over `blocks`, writing `dir/<job>-out/part-00000.attempt-0`.
fn reduce_task(
    dir: &Path,
    job: &str,
    wide: (UdfKind, &str, &str),
    blocks: Vec<BlockLocation>,
) -> TaskSpec {
    let staging_dir = dir.join(format!("{job}-out"));
    std::fs::create_dir_all(&staging_dir).unwrap();
    TaskSpec {
        id: task_id(job, 1, 0),
        tenant: "test".into(),
        job_name: job.into(),
        steps: Vec::new(),
        input: TaskInput::Shuffle {
            wide: step(wide.0, wide.1, wide.2),
            blocks,
        },
        output: TaskOutput::Part {
            staging_dir,
            part: 0,
            format: OutputFormat::Text,
        },
        limits: weft_task::TaskLimits::default(),
        roots: None,
    }
}

fn run(executor: &Executor, spec: &TaskSpec) -> Result<(), TaskError> {
    let no_remote = |_: &BlockLocation,
                     _: &mut dyn FnMut(Records) -> Result<(), TaskError>|
     -> Result<(), TaskError> { panic!("every block of these tests is local") };
    executor
        .run(spec, "w0", &no_remote, &Arc::new(AtomicBool::new(false)))
        .result
        .map(drop)
}

/// The output part as key → value.
fn output(dir: &Path, job: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join(format!("{job}-out")).join("part-00000.attempt-0"))
        .unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let (k, v) = line.split_once('\t').unwrap();
        assert!(
            out.insert(k.to_owned(), v.to_owned()).is_none(),
            "key {k} twice"
        );
    }
    out
}

/// Words drawn with a skew (a few frequent, many rare), as `(word, "1")` or `(word, count)`.
fn words(seed: u64, n: usize, distinct: u64) -> Vec<String> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = x % distinct;
            // Half the draws from the first 50 words: long runs of equal keys in a batch.
            let w = if x & 1 == 0 { r % 50 } else { r };
            format!("word-{w:05}-é")
        })
        .collect()
}

/// Runs textkit's `distinct_sorted` over three blocks of `n` words (from `seed`) and distinct
/// values, and checks its output against a reference set by set; returns the task.
fn distinct_values_exactly(
    executor: &Executor,
    dir: &Path,
    tk_id: &str,
    job: &str,
    seed: u64,
    n: usize,
) -> TaskSpec {
    let mut reference: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut blocks = Vec::new();
    for map in 0..3u32 {
        let records: Vec<(String, String)> = words(u64::from(map) + seed, n, 8_000)
            .into_iter()
            .enumerate()
            .map(|(i, w)| (w, format!("m{map}l{}", i % 997)))
            .collect();
        for (w, v) in &records {
            reference.entry(w.clone()).or_default().insert(v.clone());
        }
        blocks.push(map_output(executor, job, map, &records));
    }
    let spec = reduce_task(
        dir,
        job,
        (UdfKind::GroupReduce, tk_id, "distinct_sorted"),
        blocks,
    );
    run(executor, &spec).unwrap();

    let got = output(dir, job);
    let reference: BTreeMap<String, String> = reference
        .into_iter()
        .map(|(k, vs)| (k, vs.into_iter().collect::<Vec<_>>().join(",")))
        .collect();
    assert_eq!(got.len(), reference.len());
    assert!(
        got == reference,
        "{job}: the group_reduce differs from the reference"
    );
    spec
}

#[test]
fn a_reduce_over_many_times_its_budget_spills_sorted_runs_and_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (wc, wc_id) = wordcount();
    let executor = Executor::new(
        engine().clone(),
        Modules::of(&[&wc]),
        &dir.path().join("work"),
    )
    .with_task_memory(BUDGET);

    let mut reference: BTreeMap<String, u64> = BTreeMap::new();
    let mut blocks = Vec::new();
    let mut input_bytes = 0;
    for map in 0..3 {
        // Values other than 1 too: as the map-side combiner of another worker would send.
        let records: Vec<(String, String)> = words(map + 1, 40_000, 30_000)
            .into_iter()
            .enumerate()
            .map(|(i, w)| (w, ((i % 5) + 1).to_string()))
            .collect();
        for (w, v) in &records {
            *reference.entry(w.clone()).or_default() += v.parse::<u64>().unwrap();
            input_bytes += w.len() + v.len();
        }
        blocks.push(map_output(&executor, "wc", map as u32, &records));
    }
    assert!(
        input_bytes as u64 > 16 * BUDGET,
        "{input_bytes} bytes of input"
    );

    let spec = reduce_task(dir.path(), "wc", (UdfKind::Reduce, &wc_id, "sum"), blocks);
    run(&executor, &spec).unwrap();

    let got: BTreeMap<String, u64> = output(dir.path(), "wc")
        .into_iter()
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    assert_eq!(got.len(), reference.len());
    assert!(
        got == reference,
        "the spilled reduce differs from the reference"
    );
    let stats = executor.stats();
    assert!(stats.spills >= 4, "{stats:?}");
    assert!(stats.spilled_bytes > 0, "{stats:?}");
    assert_eq!(
        stats.partitioned_reduces, 0,
        "an input over a quarter of the memory is not scattered"
    );
    assert!(
        !executor.spill_dir(&spec.id).exists(),
        "the runs are deleted when the task ends"
    );
}

#[test]
fn a_group_reduce_over_many_times_its_budget_spills_and_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (tk, tk_id) = textkit();
    let executor = Executor::new(
        engine().clone(),
        Modules::of(&[&tk]),
        &dir.path().join("work"),
    )
    .with_task_memory(BUDGET);

    let spec = distinct_values_exactly(&executor, dir.path(), &tk_id, "inv", 7, 30_000);
    assert!(executor.stats().spills >= 4, "{:?}", executor.stats());
    assert!(!executor.spill_dir(&spec.id).exists());
}

#[test]
fn a_guest_failing_during_the_merge_fails_the_task_and_deletes_the_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (wc, wc_id) = wordcount();
    let executor = Executor::new(
        engine().clone(),
        Modules::of(&[&wc]),
        &dir.path().join("work"),
    )
    .with_task_memory(BUDGET);
    // `x` is u64::MAX in the first block and 1 in the second, each time followed by far more
    // keys than the budget holds: the two values meet only when the runs are merged, and their
    // sum overflows, which the guest reports as an error.
    let block = |map: u32, value: &str| {
        let mut records = vec![("x".to_owned(), value.to_owned())];
        records.extend(
            words(u64::from(map) + 20, 20_000, 20_000)
                .into_iter()
                .map(|w| (w, "1".to_owned())),
        );
        map_output(&executor, "boom", map, &records)
    };
    let blocks = vec![block(0, &u64::MAX.to_string()), block(1, "1")];
    let spec = reduce_task(dir.path(), "boom", (UdfKind::Reduce, &wc_id, "sum"), blocks);

    let err = run(&executor, &spec).unwrap_err();
    assert!(matches!(err, TaskError::Step { .. }), "{err}");
    assert!(err.is_guest_fault(), "{err}");
    assert!(weft_task::error_chain(&err).contains("overflows"), "{err}");
    assert!(executor.stats().spills > 0, "{:?}", executor.stats());
    assert!(
        !executor.spill_dir(&spec.id).exists(),
        "the runs are deleted when the task fails"
    );
}

#[test]
fn the_map_side_combiner_over_its_budget_hands_partial_sums_on_exactly() {
    let modules = modules();
    let sum = step(UdfKind::Reduce, "wordcount", "sum");
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = Pipeline::new(&modules, &[&sum], &SandboxLimits::default()).unwrap();
    let mut writer = ShuffleWriter::new(dir.path(), 2, Some(sum.clone()))
        .unwrap()
        .with_combine_budget(16 << 10);
    let all = words(3, 60_000, 5_000);
    let mut reference: BTreeMap<String, u64> = BTreeMap::new();
    for chunk in all.chunks(4000) {
        for w in chunk {
            *reference.entry(w.clone()).or_default() += 1;
        }
        let batch = Records::from_pairs(chunk.iter().map(|w| (w.as_str(), "1")));
        writer.write(&mut pipeline, &batch).unwrap();
    }
    let blocks = writer.finish(&mut pipeline).unwrap();

    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    let mut shuffled = 0;
    for block in &blocks {
        read_block_with(&block.path, |batch| {
            shuffled += batch.len();
            for (k, v) in batch.iter() {
                let v: u64 = std::str::from_utf8(v).unwrap().parse().unwrap();
                *got.entry(String::from_utf8(k.to_vec()).unwrap())
                    .or_default() += v;
            }
            Ok(())
        })
        .unwrap();
    }
    assert!(
        got == reference,
        "partial combining lost or doubled a count"
    );
    // Partial: some keys crossed more than once, but far fewer records than the input's.
    assert!(
        shuffled > reference.len(),
        "{shuffled} records for {} keys",
        reference.len()
    );
    assert!(shuffled < all.len(), "{shuffled} records shuffled");
}

#[test]
fn a_block_decodes_the_same_in_frames_of_any_size_and_a_truncated_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let executor = Executor::new(engine().clone(), Modules::of(&[]), dir.path());
    let records: Vec<(String, String)> = words(9, 30_000, 3_000)
        .into_iter()
        .map(|w| (w, "v".repeat(3)))
        .collect();
    let block = map_output(&executor, "frames", 0, &records);
    let path = executor.block_path(&block.map_task, 0);
    let whole: Vec<(Vec<u8>, Vec<u8>)> = read_block(&path)
        .unwrap()
        .iter()
        .flat_map(Records::to_pairs)
        .collect();
    assert_eq!(whole.len(), records.len());
    let bytes = std::fs::read(&path).unwrap();
    // Owned frames (`push`), borrowed ones as the network delivers them (`push_slice`), and the
    // two mixed: a batch gathered across many frames into room made for it at once is exact.
    for (frame, how) in [1, 7, 4096, 100_000, 1 << 20]
        .into_iter()
        .flat_map(|f| [(f, 0), (f, 1), (f, 2)])
    {
        let mut decoder = BlockDecoder::default();
        let mut got = Vec::new();
        for (i, chunk) in bytes.chunks(frame).enumerate() {
            let batches = match how {
                0 => decoder.push(chunk.to_vec()),
                1 => decoder.push_slice(chunk),
                _ if i % 2 == 0 => decoder.push(chunk.to_vec()),
                _ => decoder.push_slice(chunk),
            };
            for batch in batches.unwrap() {
                got.extend(batch.to_pairs());
            }
        }
        decoder.finish().unwrap();
        assert!(
            got == whole,
            "frames of {frame} bytes ({how}): {} records of {}",
            got.len(),
            whole.len()
        );
    }
    // Cut inside the last batch: an error, not a short block.
    let mut decoder = BlockDecoder::default();
    let cut = decoder
        .push(bytes[..bytes.len() / 2].to_vec())
        .and_then(|_| decoder.finish());
    assert!(cut.is_err());
    assert!(
        BlockDecoder::default()
            .push(b"not arrow at all".to_vec())
            .is_err()
    );
}

/// Issue 19: the decoder makes room for a whole message once its header has arrived; a header
/// claiming an enormous body (a hostile or corrupt peer) must not make it reserve that much.
#[test]
fn issue_19_a_header_claiming_a_huge_body_reserves_nothing_and_the_block_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let executor = Executor::new(engine().clone(), Modules::of(&[]), dir.path());
    let records: Vec<(String, String)> = words(3, 2_000, 500)
        .into_iter()
        .map(|w| (w, "1".to_owned()))
        .collect();
    let block = map_output(&executor, "hostile", 0, &records);
    let mut bytes = std::fs::read(executor.block_path(&block.map_task, 0)).unwrap();
    // Walk the stream part to the first batch's header: magic, padding, then messages of
    // `FF FF FF FF`, header length, header, body.
    let mut at = 6 + bytes[6..].iter().position(|&b| b != 0).unwrap();
    let message = |bytes: &[u8], at: usize| {
        let meta = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let header = arrow_ipc::root_as_message(&bytes[at + 8..at + 8 + meta]).unwrap();
        (meta, header.bodyLength(), header.header_type())
    };
    let (meta, body, _) = message(&bytes, at);
    at += 8 + meta + body as usize;
    let (meta, body, kind) = message(&bytes, at);
    assert_eq!(kind, arrow_ipc::MessageHeader::RecordBatch);
    // Claim 2^60 bytes of body in place of the real length.
    let header = &mut bytes[at + 8..at + 8 + meta];
    let field = header
        .windows(8)
        .position(|w| w == body.to_le_bytes())
        .expect("the body length is in the header");
    header[field..field + 8].copy_from_slice(&(1i64 << 60).to_le_bytes());
    assert_eq!(message(&bytes, at).1, 1 << 60);
    let mut decoder = BlockDecoder::default();
    for chunk in bytes[..at + 8 + meta + 64].chunks(16) {
        assert!(decoder.push_slice(chunk).unwrap().is_empty());
    }
    // The body never comes: a truncated block, refused by name.
    let error = decoder.finish().unwrap_err().to_string();
    assert!(error.contains("truncated"), "{error}");
}

#[test]
fn a_grouper_that_spilled_gives_its_tables_back_before_merging() {
    let modules = modules();
    let sum = step(UdfKind::Reduce, "wordcount", "sum");
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = Pipeline::new(&modules, &[&sum], &SandboxLimits::default()).unwrap();
    let mut grouper = Grouper::new(sum)
        .unwrap()
        .with_budget(BUDGET as usize)
        .spill_to(&dir.path().join("runs"));
    let all = words(5, 60_000, 20_000);
    let mut reference: BTreeMap<String, u64> = BTreeMap::new();
    for chunk in all.chunks(4000) {
        for w in chunk {
            *reference.entry(w.clone()).or_default() += 1;
        }
        let batch = Records::from_pairs(chunk.iter().map(|w| (w.as_str(), "1")));
        grouper.absorb(&mut pipeline, &batch).unwrap();
    }
    assert!(grouper.footprint() > 0);

    // The merge holds one batch per run beside the guest call's groups; the tables the grouper
    // filled before its last spill must not be held beside them, and are not held after.
    let mut calls = 0;
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    let stats = grouper
        .finish_with(&mut pipeline, |_, records| {
            calls += 1;
            for (k, v) in records.iter() {
                let v: u64 = std::str::from_utf8(v).unwrap().parse().unwrap();
                *got.entry(String::from_utf8(k.to_vec()).unwrap())
                    .or_default() += v;
            }
            Ok(())
        })
        .unwrap();
    assert!(stats.runs >= 4, "{stats:?}");
    assert!(
        got == reference,
        "the merged counts differ from the reference"
    );
    assert!(calls > 1, "the merge's results come in batches");
    assert_eq!(grouper.footprint(), 0, "the grouper kept its tables");
}

/// A block whose batch header points a buffer outside the batch's body, or whose compressed
/// buffer claims an enormous decompressed size (a corrupt file, a broken or hostile peer), is
/// refused with an error naming what was wrong: never a panic, nor an allocation of what the
/// bytes claim.
#[test]
fn a_batch_with_a_buffer_outside_its_body_or_an_enormous_decompressed_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<(String, String)> = words(5, 2_000, 500)
        .into_iter()
        .map(|w| (w, "1".to_owned()))
        .collect();
    let block = |codec: ShuffleCompression| {
        let out = dir.path().join(codec.to_string());
        std::fs::create_dir_all(&out).unwrap();
        let mut pipeline =
            Pipeline::new(&Default::default(), &[], &SandboxLimits::default()).unwrap();
        let mut writer = ShuffleWriter::new(&out, 1, None)
            .unwrap()
            .with_compression(codec);
        writer
            .write(
                &mut pipeline,
                &Records::from_pairs(records.iter().map(|(k, v)| (k, v))),
            )
            .unwrap();
        let written = writer.finish(&mut pipeline).unwrap().pop().unwrap();
        std::fs::read(written.path).unwrap()
    };
    // The first batch: its header's place and its buffers' (offset, length), from the header.
    let first_batch = |bytes: &[u8]| {
        let mut at = 6 + bytes[6..].iter().position(|&b| b != 0).unwrap();
        loop {
            let meta = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            let header = arrow_ipc::root_as_message(&bytes[at + 8..at + 8 + meta]).unwrap();
            if let Some(batch) = header.header_as_record_batch() {
                let buffers: Vec<(i64, i64)> = batch
                    .buffers()
                    .unwrap()
                    .iter()
                    .map(|b| (b.offset(), b.length()))
                    .collect();
                return (at, meta, header.bodyLength(), buffers);
            }
            at += 8 + meta + header.bodyLength() as usize;
        }
    };
    // Fetched (the decoder) or read from this worker's disk (`read_block`): the same error.
    let refused = |bytes: &[u8]| {
        let mut decoder = BlockDecoder::default();
        let fetched = decoder
            .push_slice(bytes)
            .and_then(|_| decoder.finish())
            .unwrap_err()
            .to_string();
        let path = dir.path().join("corrupt.arrow");
        std::fs::write(&path, bytes).unwrap();
        let error = read_block(&path).unwrap_err();
        let mut read = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(e) = source {
            read = format!("{read}: {e}");
            source = e.source();
        }
        assert!(read.contains(&fetched), "{read} / {fetched}");
        fetched
    };

    for codec in [ShuffleCompression::None, ShuffleCompression::Lz4] {
        let good = block(codec);
        let (at, meta, body, buffers) = first_batch(&good);
        // The last buffer (the values' bytes) made to run past the body.
        let (offset, length) = *buffers.last().unwrap();
        let mut bytes = good.clone();
        let header = &mut bytes[at + 8..at + 8 + meta];
        let pair = [offset.to_le_bytes(), length.to_le_bytes()].concat();
        let field = header
            .windows(16)
            .rposition(|w| w == pair)
            .expect("the buffer is in the header");
        header[field + 8..field + 16].copy_from_slice(&(body - offset + 1).to_le_bytes());
        let error = refused(&bytes);
        assert!(error.contains("outside"), "{codec}: {error}");
    }

    // A compressed buffer's first 8 bytes give its decompressed length: claim 2^60.
    let good = block(ShuffleCompression::Lz4);
    let (at, meta, _, buffers) = first_batch(&good);
    let (offset, length) = *buffers.iter().rev().find(|(_, l)| *l > 8).unwrap();
    assert!(length > 8);
    let mut bytes = good.clone();
    let start = at + 8 + meta + offset as usize;
    bytes[start..start + 8].copy_from_slice(&(1i64 << 60).to_le_bytes());
    let error = refused(&bytes);
    assert!(error.contains("decompress"), "{error}");
}

/// `n` records of about `distinct` keys per block, three blocks, with values 1 to 5; the blocks
/// and the reference sums.
fn sum_blocks(
    executor: &Executor,
    job: &str,
    n: usize,
    distinct: u64,
    compression: ShuffleCompression,
    key: impl Fn(String) -> String,
) -> (Vec<BlockLocation>, BTreeMap<String, u64>) {
    let mut reference: BTreeMap<String, u64> = BTreeMap::new();
    let mut blocks = Vec::new();
    for map in 0..3 {
        let records: Vec<(String, String)> = words(map + 40, n, distinct)
            .into_iter()
            .enumerate()
            .map(|(i, w)| (key(w), ((i % 5) + 1).to_string()))
            .collect();
        for (w, v) in &records {
            *reference.entry(w.clone()).or_default() += v.parse::<u64>().unwrap();
        }
        blocks.push(map_output_with(
            executor,
            job,
            map as u32,
            &records,
            compression,
        ));
    }
    (blocks, reference)
}

/// An executor over `module` with `memory` per task, grouping in parts of about `records`
/// records.
fn in_parts(module: &[u8], dir: &Path, memory: u64, records: u64) -> Executor {
    Executor::new(engine().clone(), Modules::of(&[module]), &dir.join("work"))
        .with_task_memory(memory)
        .with_part_records(records)
}

fn sums(dir: &Path, job: &str) -> BTreeMap<String, u64> {
    output(dir, job)
        .into_iter()
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect()
}

#[test]
fn issue_19_a_reduce_over_many_records_groups_them_in_parts_and_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (wc, wc_id) = wordcount();
    // Parts of about 1000 records: 120 000 records make 128 parts (a power of two).
    let executor = in_parts(&wc, dir.path(), 64 << 20, 1000);
    let (blocks, reference) = sum_blocks(
        &executor,
        "parts",
        40_000,
        30_000,
        ShuffleCompression::None,
        |w| w,
    );

    let spec = reduce_task(
        dir.path(),
        "parts",
        (UdfKind::Reduce, &wc_id, "sum"),
        blocks,
    );
    run(&executor, &spec).unwrap();

    let got = sums(dir.path(), "parts");
    assert_eq!(got.len(), reference.len());
    assert!(
        got == reference,
        "the reduce in parts differs from the reference"
    );
    let stats = executor.stats();
    assert_eq!(stats.partitioned_reduces, 1, "{stats:?}");
    assert_eq!(stats.reduce_parts, 128, "{stats:?}");
    assert_eq!((stats.scatter_overflows, stats.spills), (0, 0), "{stats:?}");
}

#[test]
fn issue_19_a_group_reduce_in_parts_sees_each_key_once_with_all_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let (tk, tk_id) = textkit();
    let executor = in_parts(&tk, dir.path(), 64 << 20, 2000);
    // `output` refuses a key written twice: a key split over two parts would be.
    distinct_values_exactly(&executor, dir.path(), &tk_id, "ginv", 70, 20_000);
    let stats = executor.stats();
    assert_eq!(
        (stats.partitioned_reduces, stats.reduce_parts),
        (1, 32),
        "{stats:?}"
    );
}

#[test]
fn issue_19_blocks_that_decode_to_more_than_they_said_are_grouped_directly_and_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (wc, wc_id) = wordcount();
    // Long, alike keys: zstd writes a fraction of what the scatter then holds.
    let pad = |w: String| format!("{w:_>60}");
    let probe = in_parts(&wc, dir.path(), 64 << 20, 1000);
    let (blocks, reference) = sum_blocks(
        &probe,
        "over",
        40_000,
        30_000,
        ShuffleCompression::Zstd,
        pad,
    );
    let claimed: u64 = blocks.iter().map(|b| b.bytes).sum();
    // 120 000 records of a 60-byte key and a 1-byte value, without their offsets.
    let decoded: u64 = 3 * 40_000 * 61;
    assert!(
        decoded > 2 * claimed,
        "{decoded} bytes of records, {claimed} compressed"
    );
    // The blocks say a quarter of the memory at most, so the task starts to scatter; what it
    // holds passes half the memory before the input ends.
    let executor = in_parts(&wc, dir.path(), 4 * claimed, 1000);

    let spec = reduce_task(dir.path(), "over", (UdfKind::Reduce, &wc_id, "sum"), blocks);
    run(&executor, &spec).unwrap();

    let got = sums(dir.path(), "over");
    assert_eq!(got.len(), reference.len());
    assert!(got == reference, "the reduce differs from the reference");
    let stats = executor.stats();
    assert_eq!(
        (stats.scatter_overflows, stats.partitioned_reduces),
        (1, 0),
        "{stats:?}"
    );
    assert!(!executor.spill_dir(&spec.id).exists());
}

#[test]
fn issue_19_blocks_claiming_absurd_sizes_are_read_for_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (wc, wc_id) = wordcount();
    let executor = in_parts(&wc, dir.path(), 64 << 20, 1000);
    let (mut blocks, reference) = sum_blocks(
        &executor,
        "absurd",
        20_000,
        10_000,
        ShuffleCompression::None,
        |w| w,
    );
    // What map tasks reported is summed without overflowing, and decides nothing it cannot:
    // the task groups directly and reads each block to its end.
    for block in &mut blocks {
        block.records = u64::MAX;
        block.bytes = u64::MAX;
    }
    let spec = reduce_task(
        dir.path(),
        "absurd",
        (UdfKind::Reduce, &wc_id, "sum"),
        blocks,
    );
    run(&executor, &spec).unwrap();

    assert!(
        sums(dir.path(), "absurd") == reference,
        "the reduce differs from the reference"
    );
    assert_eq!(executor.stats().partitioned_reduces, 0);
}
