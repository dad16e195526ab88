//! Shuffle throughput across processes (target 5: the uncompressed block fetched and decoded at
//! ≥ 1 GB/s): a map task's shuffle file, as word-count map output without a combiner (`word → 1`,
//! the worst case for a shuffle), is planted in the work directory of a `weft worker` process and
//! fetched by this process with `FetchShuffleBlock` over loopback gRPC and decoded, as a reduce task
//! on another worker does — once per codec. The yardstick is a raw copy of the same (uncompressed)
//! bytes over a plain loopback TCP socket from a child process to this one.
//!
//! Throughput is stated in MB/s of *uncompressed* Arrow IPC delivered and decoded, so codecs compare
//! on what the reduce side receives; the wire bytes are shown beside.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use weft_host::{Engine, Records, SandboxLimits};
use weft_task::{ShuffleCompression, TaskId};
use weft_worker::service::{SHUFFLE_FRAME, connect_peer, fetch_block};
use weft_worker::{BlockDecoder, Executor, FetchError, ModuleSource, Pipeline, ShuffleWriter};

use crate::measure::{median, secs};
use crate::procs::Proc;
use crate::report::Report;
use crate::{Env, input};

pub fn run(env: &Env, report: &mut Report) -> Result<()> {
    let name = format!("shuffle_words_{}.txt", crate::size_name(env.shuffle_size));
    let text = input(env, &name, |path| {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        weft_datagen::zipf_words(env.shuffle_size, 5, &mut file)?;
        Ok(file.flush()?)
    })?;
    let records = word_records(&text)?;
    let expected = Stream::of(&records);

    let home = env.work.join("shuffle-home");
    let _ = std::fs::remove_dir_all(&home);
    let scheduler = Proc::start(env, &home, &["scheduler", "--listen", "127.0.0.1:0"])?;
    let worker = Proc::start(
        env,
        &home,
        &[
            "worker",
            "--scheduler",
            &scheduler.url,
            "--listen",
            "127.0.0.1:0",
        ],
    )?;
    // `weft worker` keeps shuffle files under `<data dir>/work`; the executor knows the layout.
    let layout = Executor::new(
        Engine::new().map_err(|e| anyhow::anyhow!("{e:#}"))?,
        Arc::new(NoModules),
        &home.join("work"),
    );
    let runtime = crate::embedded::runtime()?;

    let mut files = Vec::new();
    for (i, codec) in ShuffleCompression::ALL.into_iter().enumerate() {
        let task = TaskId {
            job: format!("bench-shuffle-{codec}"),
            stage: 0,
            partition: i as u32,
            attempt: 0,
        };
        let path = layout.block_path(&task, 0);
        let dir = path.parent().context("a block path has a directory")?;
        std::fs::create_dir_all(dir)?;
        let mut writer = ShuffleWriter::new(dir, 1, None)?.with_compression(codec);
        let mut pipeline = Pipeline::new(&HashMap::new(), &[], &SandboxLimits::default())?;
        let started = Instant::now();
        for batch in &records {
            writer.write(&mut pipeline, batch)?;
        }
        let blocks = writer.finish(&mut pipeline)?;
        let write = started.elapsed();
        let block = blocks.first().context("no shuffle block written")?;
        files.push((codec, task, block.bytes, write, block.path.clone()));
    }
    let plain = files
        .iter()
        .find(|f| f.0 == ShuffleCompression::None)
        .map(|f| (f.2, f.4.clone()))
        .context("no uncompressed block")?;

    let mut fetches: Vec<Vec<Duration>> = vec![Vec::new(); files.len()];
    let mut raw = Vec::new();
    for round in 1..=env.runs.max(3) {
        eprintln!("[bench] shuffle round {round}");
        for ((_, task, _, _, _), times) in files.iter().zip(fetches.iter_mut()) {
            let started = Instant::now();
            let mut check = Check::new(&expected);
            runtime.block_on(fetch(&worker.url, task, &mut check))?;
            times.push(started.elapsed());
            check.finish()?;
        }
        raw.push(raw_copy(&plain.1, plain.0)?);
    }
    drop(worker);
    drop(scheduler);
    // The receiving side's share: the same block decoded (and checked) from memory, frame by
    // frame, without the network.
    let mut decode = Vec::new();
    let block = std::fs::read(&plain.1)?;
    for _ in 0..env.runs.max(3) {
        let started = Instant::now();
        let mut check = Check::new(&expected);
        let mut decoder = BlockDecoder::default();
        for frame in block.chunks(SHUFFLE_FRAME) {
            for records in decoder.push_slice(frame)? {
                check.batch(&records);
            }
        }
        decoder.finish()?;
        decode.push(started.elapsed());
        check.finish()?;
    }
    drop(block);

    let mb = |bytes: u64| bytes as f64 / 1e6;
    let raw = median(&raw);
    let raw_rate = mb(plain.0) / secs(raw);
    let decode = median(&decode);
    report.row(
        "shuffle",
        "decode alone (the uncompressed block from memory, in frames)",
        format!("{:.0} MB/s", mb(plain.0) / secs(decode)),
        format!(
            "{:.0} ms of each fetch is the receiver decoding",
            secs(decode) * 1e3
        ),
    );
    report.row(
        "shuffle",
        "raw copy over loopback TCP (process → process)",
        format!("{raw_rate:.0} MB/s"),
        format!("{:.0} MB in {:.0} ms", mb(plain.0), secs(raw) * 1e3),
    );
    let mut figures = Vec::new();
    let mut plain_rate = 0.0;
    for ((codec, _, bytes, write, _), times) in files.iter().zip(&fetches) {
        let fetch = median(times);
        let rate = mb(plain.0) / secs(fetch);
        report.row(
            "shuffle",
            format!("FetchShuffleBlock + decode, {codec}"),
            format!("{rate:.0} MB/s"),
            format!(
                "{:.0} MB on the wire ({:.0}% of plain); map side wrote it at {:.0} MB/s",
                mb(*bytes),
                100.0 * *bytes as f64 / plain.0 as f64,
                mb(plain.0) / secs(*write)
            ),
        );
        if *codec == ShuffleCompression::None {
            plain_rate = rate;
        } else {
            figures.push(format!("{codec} {rate:.0}"));
        }
    }
    report.target(
        5,
        "shuffle fetch + decode across processes, uncompressed (MB/s)",
        format!(
            "{plain_rate:.0} MB/s ({:.0}% of the raw copy's {raw_rate:.0}; {})",
            100.0 * plain_rate / raw_rate,
            figures.join(", ")
        ),
        "≥ 1000 MB/s",
        plain_rate >= 1000.0,
    );
    Ok(())
}

/// The word-count map output of `text`, without a combiner: `(word, "1")` per word, in batches of
/// about 4 MiB of text, as the map side would hand them to the shuffle writer.
fn word_records(text: &Path) -> Result<Vec<Records>> {
    let bytes = std::fs::read(text)?;
    let mut batches = Vec::new();
    for chunk in bytes
        .chunk_by(|_, b| *b != b'\n')
        .collect::<Vec<_>>()
        .chunks(60_000)
    {
        let words = chunk
            .iter()
            .flat_map(|line| line.split(|b| b.is_ascii_whitespace()))
            .filter(|w| !w.is_empty());
        batches.push(Records::from_pairs(words.map(|w| (w, b"1"))));
    }
    Ok(batches)
}

/// Fetches one block from a worker and decodes it, as a reduce task does: with the worker's own
/// fetch, frame by frame, each batch handed on (here, to `check`) and dropped, not held.
async fn fetch(url: &str, task: &TaskId, check: &mut Check<'_>) -> Result<()> {
    let mut client = connect_peer(url, &weft_task::link::Link::default(), 1).await?;
    fetch_block(&mut client, url, task, 0, &mut |records| {
        check.batch(&records);
        Ok(())
    })
    .await?;
    Ok(())
}

/// What a block must deliver, whatever its batches: the records in order, as their keys' bytes
/// end to end, their values' bytes end to end, and where each record's key and value start in
/// those (`u32`: a block's columns are far below 4 GiB).
struct Stream {
    records: usize,
    keys: Vec<u8>,
    values: Vec<u8>,
    key_starts: Vec<u32>,
    value_starts: Vec<u32>,
}

impl Stream {
    fn of(batches: &[Records]) -> Stream {
        let mut stream = Stream {
            records: 0,
            keys: Vec::new(),
            values: Vec::new(),
            key_starts: vec![0],
            value_starts: vec![0],
        };
        for batch in batches {
            stream.records += batch.len();
            for (key, value) in batch.iter() {
                stream.keys.extend_from_slice(key);
                stream.values.extend_from_slice(value);
                stream.key_starts.push(stream.keys.len() as u32);
                stream.value_starts.push(stream.values.len() as u32);
            }
        }
        stream
    }
}

/// Compares fetched batches with a [`Stream`] as they arrive — each column's bytes with one
/// `memcmp`, its offsets with one branch-free pass — so checking costs little beside decoding.
struct Check<'a> {
    expected: &'a Stream,
    records: usize,
    wrong: Option<String>,
}

impl<'a> Check<'a> {
    fn new(expected: &'a Stream) -> Check<'a> {
        Check {
            expected,
            records: 0,
            wrong: None,
        }
    }

    fn batch(&mut self, batch: &Records) {
        if self.wrong.is_some() {
            return;
        }
        let (from, to) = (self.records, self.records + batch.len());
        let expected = self.expected;
        let same = to <= expected.records
            && same_column(
                batch.keys().value_offsets(),
                batch.keys().value_data(),
                &expected.key_starts[from..=to],
                &expected.keys,
            )
            && same_column(
                batch.values().value_offsets(),
                batch.values().value_data(),
                &expected.value_starts[from..=to],
                &expected.values,
            );
        if !same {
            self.wrong = Some(format!(
                "its batch of records {from}..{to} is not what was written"
            ));
        }
        self.records = to;
    }

    fn finish(self) -> Result<()> {
        if let Some(wrong) = self.wrong {
            bail!("the fetched block differs from the one written: {wrong}");
        }
        if self.records != self.expected.records {
            bail!(
                "the fetched block has {} records, not {}",
                self.records,
                self.expected.records
            );
        }
        Ok(())
    }
}

/// Whether a column (its `offsets` into its `data`) holds the records whose starts in `all` are
/// `starts`: the same lengths, and the same bytes.
fn same_column(offsets: &[i32], data: &[u8], starts: &[u32], all: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
        return false;
    };
    if offsets.len() != starts.len() || first < 0 || last < first {
        return false;
    }
    // Every offset, rebased to the column's first, against every start rebased to the first
    // record's: an OR of differences, which the compiler vectorises.
    let (o0, s0) = (first as u32, starts[0]);
    let differ = offsets.iter().zip(starts).fold(0u32, |acc, (&o, &s)| {
        acc | ((o as u32).wrapping_sub(o0) ^ s.wrapping_sub(s0))
    });
    let (s0, s1) = (s0 as usize, starts[starts.len() - 1] as usize);
    differ == 0 && data.get(first as usize..last as usize) == all.get(s0..s1)
}

/// Copies `file` from a child process over loopback TCP into this one; returns the time from
/// connecting to the last byte.
fn raw_copy(file: &Path, bytes: u64) -> Result<Duration> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve-raw")
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let address = line.trim().to_owned();
    let started = Instant::now();
    let mut stream = TcpStream::connect(&address)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let elapsed = started.elapsed();
    child.wait()?;
    if got != bytes {
        bail!("the raw copy delivered {got} bytes, not {bytes}");
    }
    Ok(elapsed)
}

/// `weft-bench --serve-raw FILE`: prints its address, sends the file to the first connection, exits.
pub fn serve_raw(file: &PathBuf) -> Result<()> {
    let data = std::fs::read(file)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let (mut stream, _) = listener.accept()?;
    stream.write_all(&data)?;
    Ok(())
}

/// The executor above only computes paths; it never runs a task.
#[derive(Debug)]
struct NoModules;

impl ModuleSource for NoModules {
    fn fetch(&self, _tenant: &str, id: &str) -> Result<Vec<u8>, FetchError> {
        Err(FetchError::Other(
            format!("the shuffle benchmark runs no module ({id})").into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pairs: &[(&str, &str)]) -> Records {
        Records::from_pairs(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
    }

    fn check(expected: &Stream, got: &[Records]) -> Result<()> {
        let mut check = Check::new(expected);
        for records in got {
            check.batch(records);
        }
        check.finish()
    }

    #[test]
    fn a_block_must_deliver_the_records_written_whatever_its_batches() {
        let written = [
            batch(&[("apple", "1"), ("be", "1")]),
            batch(&[("cherry", "22")]),
        ];
        let expected = Stream::of(&written);
        // Batched otherwise (and one batch a slice of a larger one): still the same records.
        let whole = batch(&[("x", "0"), ("apple", "1"), ("be", "1"), ("cherry", "22")]);
        check(&expected, &[whole.slice(1, 3)]).unwrap();
        check(&expected, &[batch(&[("apple", "1")]), whole.slice(2, 2)]).unwrap();

        // A changed byte, a record boundary moved (the same bytes end to end), a value moved to
        // another record, a record missing, a record too many.
        for wrong in [
            vec![batch(&[("apple", "1"), ("be", "1"), ("cherrz", "22")])],
            vec![batch(&[("appl", "1"), ("ebe", "1"), ("cherry", "22")])],
            vec![batch(&[("apple", "11"), ("be", ""), ("cherry", "22")])],
            vec![batch(&[("apple", "1"), ("be", "1")])],
            vec![written[0].clone(), written[1].clone(), batch(&[("d", "1")])],
        ] {
            assert!(check(&expected, &wrong).is_err(), "{wrong:?}");
        }
    }
}
