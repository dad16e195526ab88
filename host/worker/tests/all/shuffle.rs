//! Fused narrow steps, map-side combine, shuffle files and reduce-side grouping, end to end over
//! real guests, against answers computed independently.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use weft_host::{GuestModule, Records, SandboxLimits, UdfKind};
use weft_task::ShuffleCompression;
use weft_task::StepRef;
use weft_worker::{Grouper, Pipeline, ShuffleWriter, TaskError, partition_of, read_block};

use crate::{modules, step};

fn lines(n: usize) -> Vec<String> {
    let words = [
        "alpha", "beta", "gamma", "delta", "naïve", "日本", "boom-ish", "Alpha",
    ];
    (0..n)
        .map(|i| {
            (0..(i % 9))
                .map(|j| words[(i * 7 + j * 3) % words.len()])
                .collect::<Vec<_>>()
                .join(if i % 2 == 0 { " " } else { "\t " })
        })
        .collect()
}

/// Word count through a two-stage shuffle: split + combine on 3 "map tasks", 4 reduce partitions.
#[test]
fn word_count_through_the_shuffle_is_exact() {
    let modules = modules();
    let split = step(UdfKind::FlatMap, "wordcount", "split_words");
    // The C module's sum combines on the map side, the Rust one reduces: same ABI, same answer.
    let combine = step(UdfKind::Reduce, "wordcount-c", "sum");
    let sum = step(UdfKind::Reduce, "wordcount", "sum");
    let text = lines(3000);

    let mut reference: BTreeMap<String, u64> = BTreeMap::new();
    for l in &text {
        for w in l.split([' ', '\t']).filter(|w| !w.is_empty()) {
            *reference.entry(w.to_owned()).or_default() += 1;
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let partitions = 4;
    let mut blocks = Vec::new();
    for (task, chunk) in text.chunks(1000).enumerate() {
        let task_dir = dir.path().join(format!("map-{task}"));
        std::fs::create_dir(&task_dir).unwrap();
        let mut p =
            Pipeline::new(&modules, &[&split, &combine], &SandboxLimits::default()).unwrap();
        let mut writer = ShuffleWriter::new(&task_dir, partitions, Some(combine.clone())).unwrap();
        for batch in chunk.chunks(300) {
            let input = Records::from_pairs(batch.iter().map(|l| ("", l.as_str())));
            let out = p.run(std::slice::from_ref(&split), input).unwrap();
            writer.write(&mut p, &out).unwrap();
        }
        blocks.extend(writer.finish(&mut p).unwrap());
    }

    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for r in 0..partitions {
        let mut p = Pipeline::new(&modules, &[&sum], &SandboxLimits::default()).unwrap();
        let mut grouper = Grouper::new(sum.clone()).unwrap();
        let mut seen = 0;
        for block in blocks.iter().filter(|b| b.partition == r) {
            for batch in read_block(&block.path).unwrap() {
                seen += batch.len() as u64;
                for (k, _) in batch.iter() {
                    assert_eq!(
                        partition_of(k, partitions),
                        r,
                        "a key in the wrong partition"
                    );
                }
                grouper.absorb(&mut p, &batch).unwrap();
            }
        }
        assert_eq!(
            seen,
            blocks
                .iter()
                .filter(|b| b.partition == r)
                .map(|b| b.records)
                .sum::<u64>()
        );
        grouper
            .finish(&mut p, |out| {
                for (k, v) in out.iter() {
                    let k = String::from_utf8(k.to_vec()).unwrap();
                    let v: u64 = std::str::from_utf8(v).unwrap().parse().unwrap();
                    assert!(got.insert(k, v).is_none(), "a key in two partitions");
                }
                Ok(())
            })
            .unwrap();
    }
    assert_eq!(got, reference);
    // Map-side combine: each map task writes each distinct word once.
    let shuffled: u64 = blocks.iter().map(|b| b.records).sum();
    assert!(
        shuffled <= 3 * reference.len() as u64,
        "{shuffled} records shuffled"
    );
}

/// The records of every block, as (key, count) pairs.
fn block_counts(blocks: &[weft_worker::ShuffleBlock]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for block in blocks {
        for batch in read_block(&block.path).unwrap() {
            for (k, v) in batch.iter() {
                let k = String::from_utf8(k.to_vec()).unwrap();
                out.push((k, std::str::from_utf8(v).unwrap().parse().unwrap()));
            }
        }
    }
    out
}

/// The map side of word count with the combiner in the guest (`run_and_write`): the fused
/// split_words → sum of one module folds in place, a step of another module in front of the
/// combiner hands it a copy, and a budget too small for one batch drains after every batch. The
/// shuffle files then hold each key once per drain, with exact partial counts.
#[test]
fn a_combiner_in_the_guest_sends_each_key_once_per_drain_and_stays_exact() {
    let modules = modules();
    let split = step(UdfKind::FlatMap, "wordcount", "split_words");
    let echo = step(UdfKind::Map, "textkit", "echo");
    let sum = step(UdfKind::Reduce, "wordcount", "sum");
    let text = lines(3000);
    let words = |l: &String| -> Vec<String> {
        l.split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut reference: BTreeMap<String, u64> = BTreeMap::new();
    for w in text.iter().flat_map(words) {
        *reference.entry(w).or_default() += 1;
    }
    // Distinct words per batch of 300 lines: what one drain per batch sends.
    let per_batch: usize = text
        .chunks(300)
        .map(|c| c.iter().flat_map(words).collect::<BTreeSet<_>>().len())
        .sum();

    for (steps, budget, expected_records) in [
        (vec![split.clone()], None, reference.len()),
        (vec![split.clone(), echo.clone()], None, reference.len()),
        (vec![split.clone()], Some(1), per_batch),
        (vec![split.clone(), echo.clone()], Some(1), per_batch),
    ] {
        let shuffled = map_side(&modules, &steps, &sum, &text, budget, usize::MAX);
        let context = format!("{steps:?}, budget {budget:?}");
        assert_eq!(shuffled.len(), expected_records, "{context}");
        assert_eq!(totals(shuffled), reference, "{context}");
    }

    // A guest with too little memory for a combiner: the host combines, and with a 1-byte budget
    // hands on partial counts far more often than once per batch and key.
    let small = weft_worker::GUEST_COMBINE_MIN_MEMORY / 2;
    let shuffled = map_side(&modules, &[split], &sum, &text, Some(1), small);
    assert!(shuffled.len() > per_batch, "{} records", shuffled.len());
    assert_eq!(totals(shuffled), reference);
}

fn totals(records: Vec<(String, u64)>) -> BTreeMap<String, u64> {
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for (k, n) in records {
        *got.entry(k).or_default() += n;
    }
    got
}

/// One map task of word count over `text`, in batches of 300 lines through `run_and_write`: the
/// records it shuffled.
fn map_side(
    modules: &HashMap<String, GuestModule>,
    steps: &[StepRef],
    sum: &StepRef,
    text: &[String],
    budget: Option<usize>,
    sandbox_memory: usize,
) -> Vec<(String, u64)> {
    map_task(modules, steps, sum, text, budget, sandbox_memory).0
}

/// [`map_side`], and whether the map-side combine was still on at the end.
fn map_task(
    modules: &HashMap<String, GuestModule>,
    steps: &[StepRef],
    sum: &StepRef,
    text: &[String],
    budget: Option<usize>,
    sandbox_memory: usize,
) -> (Vec<(String, u64)>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let refs: Vec<&_> = steps.iter().chain([sum]).collect();
    let mut p = Pipeline::new(modules, &refs, &SandboxLimits::default()).unwrap();
    assert!(p.has_combiner(sum));
    let mut writer = ShuffleWriter::new(dir.path(), 4, Some(sum.clone()))
        .unwrap()
        .with_sandbox_memory(sandbox_memory);
    if let Some(budget) = budget {
        writer = writer.with_combine_budget(budget);
    }
    for batch in text.chunks(300) {
        let input = Records::from_pairs(batch.iter().map(|l| ("", l.as_str())));
        writer.run_and_write(&mut p, steps, input).unwrap();
    }
    let combining = writer.combining();
    let blocks = writer.finish(&mut p).unwrap();
    (block_counts(&blocks), combining)
}

/// A map-side combine that does not reduce the records (nearly every word distinct) is switched
/// off once it has folded `COMBINE_PROBE_RECORDS` records, in the guest and in the host alike: the
/// rest of the task's records are shuffled as they come, and the counts stay exact. One over few
/// keys stays on and sends each key once.
#[test]
fn a_map_side_combine_that_does_not_pay_is_switched_off_and_stays_exact() {
    let modules = modules();
    let split = step(UdfKind::FlatMap, "wordcount", "split_words");
    let sum = step(UdfKind::Reduce, "wordcount", "sum");
    let probe = weft_worker::COMBINE_PROBE_RECORDS as usize;
    // 3 × the probe's records, ten words a line, all distinct but every 50th, which repeats word 0.
    let words = 3 * probe;
    let distinct: Vec<String> = (0..words)
        .map(|i| {
            if i % 50 == 0 {
                "w0".to_owned()
            } else {
                format!("w{i}")
            }
        })
        .collect();
    let text: Vec<String> = distinct.chunks(10).map(|c| c.join(" ")).collect();
    let mut reference: BTreeMap<String, u64> = BTreeMap::new();
    for w in &distinct {
        *reference.entry(w.clone()).or_default() += 1;
    }
    let small = weft_worker::GUEST_COMBINE_MIN_MEMORY / 2;
    for (sandbox_memory, where_) in [(usize::MAX, "guest"), (small, "host")] {
        let (shuffled, combining) = map_task(
            &modules,
            std::slice::from_ref(&split),
            &sum,
            &text,
            None,
            sandbox_memory,
        );
        assert!(!combining, "{where_}: the combine is switched off");
        // Only what was folded before the probe was combined: "w0" once for those records.
        assert!(
            shuffled.len() > words - words / 50,
            "{where_}: {} of {words} records shuffled",
            shuffled.len()
        );
        assert_eq!(totals(shuffled), reference, "{where_}");
    }

    // Eight distinct words over more records than the probe: combined to one record a key.
    let text = lines(3 * probe / 4);
    let mut reference: BTreeMap<String, u64> = BTreeMap::new();
    for l in &text {
        for w in l.split([' ', '\t']).filter(|w| !w.is_empty()) {
            *reference.entry(w.to_owned()).or_default() += 1;
        }
    }
    assert!(reference.values().sum::<u64>() > 2 * probe as u64);
    for (sandbox_memory, where_) in [(usize::MAX, "guest"), (small, "host")] {
        let (shuffled, combining) = map_task(
            &modules,
            std::slice::from_ref(&split),
            &sum,
            &text,
            None,
            sandbox_memory,
        );
        assert!(combining, "{where_}: the combine stays on");
        // One drain at the probe, one at the end.
        assert!(
            shuffled.len() <= 2 * reference.len(),
            "{where_}: {} records",
            shuffled.len()
        );
        assert_eq!(totals(shuffled), reference, "{where_}");
    }
}

/// map → filter → flat_map fused in one pass, then group_reduce builds an inverted index.
#[test]
fn fused_narrow_steps_then_group_reduce() {
    let modules = modules();
    let upper = step(UdfKind::Map, "textkit", "upper");
    let non_empty = step(UdfKind::Filter, "textkit", "non_empty");
    let postings = step(UdfKind::FlatMap, "textkit", "words_with_line");
    let index = step(UdfKind::GroupReduce, "textkit", "distinct_sorted");
    let narrow = [upper.clone(), non_empty.clone(), postings.clone()];
    let mut p = Pipeline::new(
        &modules,
        &[&upper, &non_empty, &postings, &index],
        &SandboxLimits::default(),
    )
    .unwrap();

    let input: Vec<(String, String)> = (0..500)
        .map(|i| {
            (
                format!("l{i}"),
                if i % 5 == 0 {
                    "  ".into()
                } else {
                    format!("w{} w{} x", i % 7, i % 3)
                },
            )
        })
        .collect();
    let mut reference: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, line) in &input {
        for w in line.to_ascii_uppercase().split_whitespace() {
            reference
                .entry(w.to_owned())
                .or_default()
                .insert(id.clone());
        }
    }

    let mut grouper = Grouper::new(index.clone()).unwrap();
    for chunk in input.chunks(128) {
        let out = p
            .run(
                &narrow,
                Records::from_pairs(chunk.iter().map(|(k, v)| (k, v))),
            )
            .unwrap();
        grouper.absorb(&mut p, &out).unwrap();
    }
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    grouper
        .finish(&mut p, |out| {
            for (k, v) in out.iter() {
                let ids = std::str::from_utf8(v)
                    .unwrap()
                    .split(',')
                    .map(str::to_owned)
                    .collect();
                got.insert(String::from_utf8(k.to_vec()).unwrap(), ids);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(got, reference);
}

#[test]
fn a_failing_step_names_its_module_and_function() {
    let modules = modules();
    let boom = step(UdfKind::Map, "textkit", "fail_on_boom");
    let mut p = Pipeline::new(&modules, &[&boom], &SandboxLimits::default()).unwrap();
    let err = p
        .run(&[boom], Records::from_pairs([("1", "boom")]))
        .unwrap_err();
    assert!(matches!(err, TaskError::Step { .. }), "{err}");
    assert!(err.is_guest_fault());
    assert_eq!(err.to_string(), "map textkit/fail_on_boom");
    let text = weft_task::error_chain(&err);
    assert!(
        text.starts_with("map textkit/fail_on_boom: failed: ") && text.contains("boom"),
        "{text}"
    );

    let missing = step(UdfKind::Map, "nope", "x");
    assert!(matches!(
        Pipeline::new(&modules, &[&missing], &SandboxLimits::default()),
        Err(TaskError::MissingModule(m)) if m == "nope"
    ));
}

/// The codec each record batch of an Arrow IPC file declares, read from the file's own metadata
/// (the footer's block index, then each batch's message header), not through the reader under test.
fn batch_codecs(path: &std::path::Path) -> Vec<Option<arrow_ipc::CompressionType>> {
    let (bytes, blocks) = batch_blocks(path);
    blocks
        .iter()
        .map(|block| {
            let start = usize::try_from(block.offset()).unwrap();
            let end = start + usize::try_from(block.metaDataLength()).unwrap();
            // Each message starts with the continuation marker and the metadata's length.
            let message = arrow_ipc::root_as_message(&bytes[start + 8..end]).unwrap();
            let header = message.header_as_record_batch().unwrap();
            header.compression().map(|c| c.codec())
        })
        .collect()
}

/// An Arrow IPC file's bytes and its footer's index of record batches.
fn batch_blocks(path: &std::path::Path) -> (Vec<u8>, Vec<arrow_ipc::Block>) {
    let bytes = std::fs::read(path).unwrap();
    // A file ends with the footer, its length (i32) and the magic `ARROW1`.
    let trailer = bytes.len() - 10;
    let footer_len =
        arrow_ipc::reader::read_footer_length(bytes[trailer..].try_into().unwrap()).unwrap();
    let footer = arrow_ipc::root_as_footer(&bytes[trailer - footer_len..trailer]).unwrap();
    let blocks = footer.recordBatches().unwrap().iter().copied().collect();
    (bytes, blocks)
}

/// Every codec: the files say they are compressed with it (and `none` that they are not), the
/// compressed ones are smaller on a compressible input, and every record reads back exactly, in
/// order, in its partition. The input mixes the word-count guest's output (compressible), records
/// with empty keys or values, all byte values, and a large incompressible value (which arrow
/// stores raw inside a compressed file).
#[test]
fn each_codec_writes_compressed_files_that_read_back_exactly() {
    let modules = modules();
    let split = step(UdfKind::FlatMap, "wordcount", "split_words");
    let text = lines(6000);
    let partitions = 3;

    // Deterministic pseudo-random bytes (xorshift), so nothing compresses them.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let odd: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (Vec::new(), b"empty key".to_vec()),
        (b"empty value".to_vec(), Vec::new()),
        (Vec::new(), Vec::new()),
        ((0..=255u8).collect(), (0..=255u8).rev().collect()),
        (b"noise".to_vec(), noise(200_000)),
        (noise(64), noise(3)),
    ];

    let mut sizes = Vec::new();
    for codec in ShuffleCompression::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pipeline::new(&modules, &[&split], &SandboxLimits::default()).unwrap();
        let mut writer = ShuffleWriter::new(dir.path(), partitions, None)
            .unwrap()
            .with_compression(codec);
        // What went in, per partition, in order: the reference.
        let mut want: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(); partitions as usize];
        let mut feed = |p: &mut Pipeline, records: &Records| {
            for (k, v) in records.iter() {
                want[partition_of(k, partitions) as usize].push((k.to_vec(), v.to_vec()));
            }
            writer.write(p, records).unwrap();
        };
        for chunk in text.chunks(500) {
            let input = Records::from_pairs(chunk.iter().map(|l| ("", l.as_str())));
            let words = p.run(std::slice::from_ref(&split), input).unwrap();
            feed(&mut p, &words);
        }
        feed(&mut p, &Records::from_pairs(odd.iter().cloned()));
        let blocks = writer.finish(&mut p).unwrap();
        assert_eq!(blocks.len(), partitions as usize, "{codec}");

        let expected_codec = match codec {
            ShuffleCompression::None => None,
            ShuffleCompression::Lz4 => Some(arrow_ipc::CompressionType::LZ4_FRAME),
            ShuffleCompression::Zstd => Some(arrow_ipc::CompressionType::ZSTD),
        };
        let mut total = 0;
        for block in &blocks {
            let codecs = batch_codecs(&block.path);
            assert!(!codecs.is_empty(), "{codec}: {block:?}");
            assert!(
                codecs.iter().all(|c| *c == expected_codec),
                "{codec}: {codecs:?}"
            );

            let got: Vec<(Vec<u8>, Vec<u8>)> = read_block(&block.path)
                .unwrap()
                .iter()
                .flat_map(|batch| {
                    batch
                        .iter()
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .collect::<Vec<_>>()
                })
                .collect();
            let want = &want[block.partition as usize];
            assert_eq!(
                got.len(),
                want.len(),
                "{codec}: partition {}",
                block.partition
            );
            assert!(
                got == *want,
                "{codec}: partition {} differs",
                block.partition
            );
            assert_eq!(block.records, want.len() as u64);
            assert_eq!(block.bytes, std::fs::metadata(&block.path).unwrap().len());
            total += block.bytes;
        }
        sizes.push((codec, total));
    }
    let [(_, none), (_, lz4), (_, zstd)] = sizes[..] else {
        panic!("{sizes:?}")
    };
    // The words compress; the 200 kB of noise (stored raw) bounds the gain.
    assert!(lz4 < none * 9 / 10, "{sizes:?}");
    assert!(zstd < none * 9 / 10, "{sizes:?}");
}

/// The codec crosses the scheduler→worker protocol; `UNSPECIFIED` (a scheduler from before the
/// field) means plain files, and a value this worker does not know is refused, not guessed.
#[test]
fn the_codec_crosses_the_protocol_and_an_unknown_one_is_refused() {
    use weft_proto::v1 as pb;
    use weft_task::{TaskOutput, TaskSpec};

    let dir = tempfile::tempdir().unwrap();
    let mut spec = crate::text_task(dir.path(), "codec", b"a b\n", &[]);
    for codec in ShuffleCompression::ALL {
        spec.output = TaskOutput::Shuffle {
            partitions: 3,
            combiner: Some(step(UdfKind::Reduce, "wordcount", "sum")),
            compression: codec,
        };
        let back = TaskSpec::try_from(pb::TaskDefinition::from(&spec)).unwrap();
        assert_eq!(back.output, spec.output);
    }

    let with_code = |code: i32| {
        let mut definition = pb::TaskDefinition::from(&spec);
        let Some(pb::task_output::Sink::Shuffle(shuffle)) =
            definition.output.as_mut().and_then(|o| o.sink.as_mut())
        else {
            panic!("not a shuffle output")
        };
        shuffle.compression = code;
        TaskSpec::try_from(definition)
    };
    let unspecified = with_code(pb::ShuffleCompression::Unspecified as i32).unwrap();
    assert!(matches!(
        unspecified.output,
        TaskOutput::Shuffle {
            compression: ShuffleCompression::None,
            ..
        }
    ));
    let err = with_code(99).unwrap_err().to_string();
    assert!(err.contains("unknown shuffle compression 99"), "{err}");
}

/// Running values whose length changes from call to call: `shortest` shrinks them (rewritten in
/// place, the entry's length updated) down to empty ones (which must still count as a value),
/// `longest` outgrows the room a value was first given (moved to a new slot, the arena growing
/// past what admitting keys counted). Many calls per key, in memory and spilling; each answer
/// against a fold of the same rule written here, and a spill's runs holding many keys each.
#[test]
fn running_values_that_shrink_and_outgrow_their_room_stay_exact() {
    let modules = modules();
    // Deterministic values of 0 to 40 bytes, so each key's running value changes length often.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let records: Vec<(String, String)> = (0..40_000)
        .map(|_| {
            let key = format!("key-{}", next() % 2000);
            let len = (next() % 41) as usize;
            let value = (0..len)
                .map(|_| char::from(b'a' + (next() % 26) as u8))
                .collect();
            (key, value)
        })
        .collect();
    for (function, keep) in [
        ("shortest", (|a, b| std::cmp::min(a, b)) as fn(_, _) -> _),
        ("longest", |a, b| std::cmp::max(a, b)),
    ] {
        let mut reference: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
        for (k, v) in &records {
            let v = (v.len(), v.as_str());
            reference
                .entry(k)
                .and_modify(|r| *r = keep(*r, v))
                .or_insert(v);
        }
        let reference: BTreeMap<String, String> = reference
            .into_iter()
            .map(|(k, (_, v))| (k.to_owned(), v.to_owned()))
            .collect();
        let reduce = step(UdfKind::Reduce, "textkit", function);
        for budget in [None, Some(128 << 10)] {
            let dir = tempfile::tempdir().unwrap();
            let mut p = Pipeline::new(&modules, &[&reduce], &SandboxLimits::default()).unwrap();
            let mut grouper = Grouper::new(reduce.clone()).unwrap();
            if let Some(budget) = budget {
                grouper = grouper.with_budget(budget).spill_to(dir.path());
            }
            for batch in records.chunks(97) {
                let batch = Records::from_pairs(batch.iter().map(|(k, v)| (k, v)));
                grouper.absorb(&mut p, &batch).unwrap();
            }
            let spilled = grouper.spill_stats().runs;
            let mut got = BTreeMap::new();
            grouper
                .finish(&mut p, |out| {
                    for (k, v) in out.iter() {
                        let k = String::from_utf8(k.to_vec()).unwrap();
                        let v = String::from_utf8(v.to_vec()).unwrap();
                        assert!(got.insert(k, v).is_none(), "a key twice");
                    }
                    Ok(())
                })
                .unwrap();
            let wrong: Vec<_> = reference
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(*v))
                .map(|(k, v)| (k, v, got.get(k)))
                .take(3)
                .collect();
            assert!(
                got == reference,
                "{function}, budget {budget:?}: {} keys of {}, wrong: {wrong:?}",
                got.len(),
                reference.len()
            );
            assert_eq!(spilled > 0, budget.is_some(), "{function}: {spilled} runs");
            // About 1.2 MB of records over a 128 KiB budget: tens of runs. (Before the arena's
            // growth was given back after a spill, `longest` wrote one run per record: 38 810.)
            assert!(spilled < 100, "{function}: {spilled} runs");
        }
    }
}

/// The size of each batch message of an Arrow IPC file (its metadata and body), from its footer.
fn message_sizes(path: &std::path::Path) -> Vec<usize> {
    batch_blocks(path)
        .1
        .iter()
        .map(|block| block.metaDataLength() as usize + block.bodyLength() as usize)
        .collect()
}

/// Records with empty keys and values still cost their two offsets: they fill batches (a block's
/// messages stay near `BATCH_BYTES` whatever its records hold) and count against the task's
/// output limit. Counted by their bytes alone, a UDF emitting them by the million grew one
/// partition's buffer without bound and never met the limit.
#[test]
fn empty_records_fill_batches_and_meet_the_output_limit() {
    let n = 1_000_000;
    let empty = Records::from_pairs((0..n).map(|_| (b"", b"")));
    let mut p = Pipeline::new(&HashMap::new(), &[], &SandboxLimits::default()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut writer = ShuffleWriter::new(dir.path(), 1, None).unwrap();
    writer.write(&mut p, &empty).unwrap();
    let blocks = writer.finish(&mut p).unwrap();
    let sizes = message_sizes(&blocks[0].path);
    assert!(sizes.len() >= 2, "one batch of {n} records: {sizes:?}");
    assert!(
        sizes.iter().all(|&s| s <= weft_worker::BATCH_BYTES + 4096),
        "{sizes:?}"
    );
    let read: usize = read_block(&blocks[0].path)
        .unwrap()
        .iter()
        .map(|batch| {
            assert!(batch.iter().all(|(k, v)| k.is_empty() && v.is_empty()));
            batch.len()
        })
        .sum();
    assert_eq!(read, n);

    let limit = 8 * n as u64 - 1;
    let dir = tempfile::tempdir().unwrap();
    let mut writer = ShuffleWriter::new(dir.path(), 1, None)
        .unwrap()
        .with_output_limit(limit);
    let error = writer.write(&mut p, &empty).unwrap_err();
    assert!(
        matches!(error, TaskError::TaskOutput { limit: l } if l == limit),
        "{error}"
    );
}
