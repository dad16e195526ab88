//! Fused narrow steps, map-side combine, shuffle files and reduce-side grouping, end to end over
//! real guests, against answers computed independently.

use std::collections::{BTreeMap, BTreeSet};

use weft_host::{Records, SandboxLimits, UdfKind};
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
    let text = err.to_string();
    assert!(
        text.contains("textkit/fail_on_boom") && text.contains("boom"),
        "{text}"
    );

    let missing = step(UdfKind::Map, "nope", "x");
    assert!(matches!(
        Pipeline::new(&modules, &[&missing], &SandboxLimits::default()),
        Err(TaskError::MissingModule(m)) if m == "nope"
    ));
}
