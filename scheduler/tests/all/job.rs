//! Job files: parsing and its located errors, resolution against a registry holding the example
//! modules (built from source), and planning into stages and splits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use weft_host::UdfKind;
use weft_io::{InputFile, InputSplit};
use weft_scheduler::job::{
    AutoSplit, InputFormat, JobFileError, JobFileErrorKind, JobSpec, Limit, Location,
    MAX_SPLIT_SIZE, OutputFormat, Plan, PlanError, SPLIT_OPEN_COST, ShuffleCompression,
    SplitSource, SplitWarning, StageInput, StageOutput, automatic_split_size, compute_splits,
};
use weft_scheduler::{ModuleId, Registry, Tenant};

/// The example modules' registry, with the ids of `wordcount` (flat_map split_words, reduce sum)
/// and `textkit` (one UDF of every kind).
struct Fixture {
    registry: Arc<Registry>,
    wordcount: ModuleId,
    textkit: ModuleId,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let registry = weft_testkit::registry::shared_examples_registry();
        let id = |name| {
            registry
                .resolve(&Tenant::default(), name)
                .unwrap()
                .version
                .id
        };
        Fixture {
            wordcount: id("wordcount"),
            textkit: id("textkit"),
            registry,
        }
    })
}

fn parse(text: &str) -> JobSpec {
    JobSpec::parse(text, Path::new("job.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_error(text: &str) -> String {
    match JobSpec::parse(text, Path::new("job.toml")) {
        Ok(spec) => panic!("parsed, but should not have: {spec:?}"),
        Err(e) => e.to_string(),
    }
}

fn resolve_error(text: &str) -> JobFileError {
    let f = fixture();
    match parse(text).resolve(&f.registry, &Tenant::default()) {
        Ok(job) => panic!("resolved, but should not have: {job:?}"),
        Err(e) => e,
    }
}

/// `text` planned over `files` for two task slots.
fn plan(text: &str, files: &[(&str, u64)]) -> Plan {
    plan_for(text, files, AutoSplit::Slots(2))
}

fn plan_for(text: &str, files: &[(&str, u64)], auto: AutoSplit) -> Plan {
    let f = fixture();
    let job = parse(text)
        .resolve(&f.registry, &Tenant::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let files: Vec<InputFile> = files
        .iter()
        .map(|(p, s)| InputFile::from((PathBuf::from(p), *s)))
        .collect();
    job.plan(&files, auto).unwrap()
}

const MIB: u64 = 1024 * 1024;

const WORDCOUNT: &str = r#"name = "wordcount"

[input]
path = "data/*.txt"
format = "text"
split_size = "64MiB"

[[step]]
flat_map = "wordcount/split_words"

[[step]]
reduce = "wordcount/sum"

[output]
path = "out/wordcount"
format = "text"
partitions = 4
"#;

#[test]
fn the_wordcount_job_plans_to_two_stages_with_a_combiner() {
    let spec = parse(WORDCOUNT);
    assert_eq!(spec.name, "wordcount");
    assert_eq!(spec.input.path, Path::new("data/*.txt"));
    assert_eq!(spec.input.format, InputFormat::Text);
    assert_eq!(spec.input.split_size, Some(64 * MIB));
    assert_eq!(spec.output.path, Path::new("out/wordcount"));
    assert_eq!(
        (spec.output.format, spec.output.partitions),
        (OutputFormat::Text, 4)
    );
    let steps: Vec<_> = spec
        .steps
        .iter()
        .map(|s| (s.number, s.kind, s.reference()))
        .collect();
    assert_eq!(
        steps,
        [
            (1, UdfKind::FlatMap, "wordcount/split_words".to_owned()),
            (2, UdfKind::Reduce, "wordcount/sum".to_owned())
        ]
    );
    assert_eq!(
        spec.steps[1].at,
        Location {
            line: 11,
            column: 1
        }
    );

    // 100 MiB → 2 splits, 10 MiB → 1, an empty file → none.
    let plan = plan(
        WORDCOUNT,
        &[
            ("data/a.txt", 100 * MIB),
            ("data/b.txt", 10 * MIB),
            ("data/c.txt", 0),
        ],
    );
    assert_eq!(
        plan.to_string(),
        "job wordcount: 2 stages\n\
         stage 0: 3 tasks  input: 3 splits of data/*.txt (text, 64 MiB)\n\
         \x20 flat_map wordcount@1/split_words\n\
         \x20 → shuffle: 4 partitions, compression none, combine with reduce wordcount@1/sum\n\
         stage 1: 4 tasks  input: shuffle of stage 0\n\
         \x20 reduce wordcount@1/sum\n\
         \x20 → output: out/wordcount (text, 4 parts)\n\
         split size: 64 MiB, the job file's input.split_size"
    );

    let [s0, s1] = &plan.stages[..] else {
        panic!("{plan:?}")
    };
    assert_eq!((s0.id, s0.tasks, s0.parents.as_slice()), (0, 3, &[][..]));
    let StageInput::Splits { format, splits, .. } = &s0.input else {
        panic!("{s0:?}")
    };
    assert_eq!(*format, InputFormat::Text);
    assert_eq!(
        splits
            .iter()
            .map(|s| (s.path.to_str().unwrap(), s.start, s.length))
            .collect::<Vec<_>>(),
        [
            ("data/a.txt", 0, 64 * MIB),
            ("data/a.txt", 64 * MIB, 36 * MIB),
            ("data/b.txt", 0, 10 * MIB)
        ]
    );
    assert_eq!(s0.steps.len(), 1);
    assert_eq!(s0.steps[0].module, fixture().wordcount);
    let StageOutput::Shuffle {
        partitions: 4,
        combiner: Some(combiner),
        compression: ShuffleCompression::None,
    } = &s0.output
    else {
        panic!("{s0:?}")
    };
    assert_eq!(
        (combiner.kind, combiner.function.as_str()),
        (UdfKind::Reduce, "sum")
    );

    assert_eq!((s1.id, s1.tasks, s1.parents.as_slice()), (1, 4, &[0][..]));
    let StageInput::Shuffle {
        parent: 0,
        partitions: 4,
        wide_step,
    } = &s1.input
    else {
        panic!("{s1:?}")
    };
    assert_eq!(wide_step, combiner);
    assert!(s1.steps.is_empty());
    assert_eq!(
        s1.output,
        StageOutput::Output {
            path: "out/wordcount".into(),
            format: OutputFormat::Text,
            partitions: 4
        }
    );
}

#[test]
fn two_shuffles_make_three_stages_with_their_own_partitions() {
    let text = r#"
name = "two-shuffles"
input = { path = "in.txt", format = "csv", header = false, delimiter = ";", split_size = 1000 }

[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
partitions = 8
[[step]]
map = "textkit/upper"
[[step]]
filter = "textkit/non_empty"
[[step]]
group_reduce = "textkit/distinct_sorted"

[output]
path = "out"
format = "jsonl"
partitions = 3
"#;
    // CSV is planned by reading the file (splits start where records do): a real one.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "x;y\n".repeat(625)).unwrap();
    let plan = plan(text, &[(input.to_str().unwrap(), 2500)]);
    assert_eq!(
        plan.to_string(),
        "job two-shuffles: 3 stages\n\
         stage 0: 3 tasks  input: 3 splits of in.txt (csv without header delimited by ';', 1000 B)\n\
         \x20 flat_map wordcount@1/split_words\n\
         \x20 → shuffle: 8 partitions, compression none, combine with reduce wordcount@1/sum\n\
         stage 1: 8 tasks  input: shuffle of stage 0\n\
         \x20 reduce wordcount@1/sum\n\
         \x20 map textkit@1/upper\n\
         \x20 filter textkit@1/non_empty\n\
         \x20 → shuffle: 3 partitions, compression none\n\
         stage 2: 3 tasks  input: shuffle of stage 1\n\
         \x20 group_reduce textkit@1/distinct_sorted\n\
         \x20 → output: out (jsonl, 3 parts)\n\
         split size: 1000 B, the job file's input.split_size"
    );
    let [s0, s1, s2] = &plan.stages[..] else {
        panic!("{plan:?}")
    };
    assert_eq!(
        s0.input,
        StageInput::Splits {
            format: InputFormat::Csv {
                header: false,
                delimiter: b';'
            },
            on_error: weft_scheduler::job::OnError::Fail,
            splits: vec![
                InputSplit {
                    path: input.clone(),
                    start: 0,
                    length: 1000
                },
                InputSplit {
                    path: input.clone(),
                    start: 1000,
                    length: 1000
                },
                InputSplit {
                    path: input.clone(),
                    start: 2000,
                    length: 500
                },
            ]
        }
    );
    assert_eq!(s1.parents, [0]);
    assert_eq!(s2.parents, [1]);
    assert_eq!((s0.tasks, s1.tasks, s2.tasks), (3, 8, 3));
    let kinds = |steps: &[weft_scheduler::job::ResolvedStep]| {
        steps.iter().map(|s| s.kind).collect::<Vec<_>>()
    };
    assert_eq!(kinds(&s0.steps), [UdfKind::FlatMap]);
    assert_eq!(kinds(&s1.steps), [UdfKind::Map, UdfKind::Filter]);
    assert!(s2.steps.is_empty());
    assert!(s1.steps.iter().all(|s| s.module == fixture().textkit));
    // A group_reduce sees every value of a key at once: no combiner before it.
    assert_eq!(
        s1.output,
        StageOutput::Shuffle {
            partitions: 3,
            combiner: None,
            compression: ShuffleCompression::None,
        }
    );
    let StageInput::Shuffle {
        parent: 1,
        partitions: 3,
        wide_step,
    } = &s2.input
    else {
        panic!("{s2:?}")
    };
    assert_eq!(
        (wide_step.number, wide_step.kind),
        (5, UdfKind::GroupReduce)
    );
    assert!(matches!(
        s2.output,
        StageOutput::Output { partitions: 3, .. }
    ));
}

const GB: u64 = 1_000_000_000;

/// A word count whose job file sets no split size.
const AUTO_SPLITS: &str = r#"
name = "auto"
input.path = "in"
[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
[output]
path = "out"
"#;

/// A job file of `AUTO_SPLITS` with `split_size` set.
fn sized(split_size: &str) -> String {
    AUTO_SPLITS.replace(
        "input.path = \"in\"",
        &format!("input.path = \"in\"\ninput.split_size = {split_size:?}"),
    )
}

fn files(sizes: &[u64]) -> Vec<InputFile> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| InputFile::from((PathBuf::from(format!("in/{i:05}")), size)))
        .collect()
}

#[test]
fn automatic_split_sizes_share_the_input_among_the_slots_as_spark_does() {
    // (bytes + files × 4 MiB) / slots, within 4 MiB and 128 MiB; past 128 MiB, equal waves.
    assert_eq!(
        automatic_split_size(&files(&[GB]), 2),
        (GB + SPLIT_OPEN_COST) / 8
    );
    assert_eq!(automatic_split_size(&files(&[20_000_000]), 2), 12_097_152);
    assert_eq!(automatic_split_size(&files(&[GB]), 64), 15_690_536);
    // Small inputs are not cut below what a task costs to open.
    assert_eq!(
        automatic_split_size(&files(&[3_000_000]), 2),
        SPLIT_OPEN_COST
    );
    assert_eq!(
        automatic_split_size(&files(&[20_000_000]), 16),
        SPLIT_OPEN_COST
    );
    // Many small files: each counts 4 MiB more, and none is cut.
    assert_eq!(
        automatic_split_size(&files(&[10_000; 100]), 2),
        MAX_SPLIT_SIZE
    );
    assert_eq!(
        automatic_split_size(&files(&[10_000; 100]), 20),
        (1_000_000 + 100 * SPLIT_OPEN_COST) / 20
    );
    // No slot known counts as one.
    assert_eq!(
        automatic_split_size(&files(&[20_000_000]), 0),
        automatic_split_size(&files(&[20_000_000]), 1)
    );
}

/// A file larger than its slots' share of 128 MiB splits is cut into whole waves of equal splits:
/// as many tasks as slots times a whole number, each at most 128 MiB and the last short of the
/// others by no more than the open cost, so no slot idles through a last wave that others work in. Sizes around every wave's edge,
/// on 1 to 16 slots, checked against the arithmetic of cutting the file.
#[test]
fn inputs_over_a_wave_of_128_mib_splits_are_cut_into_whole_waves_of_equal_splits() {
    for slots in 1..=16u32 {
        let wave = u64::from(slots) * MAX_SPLIT_SIZE;
        for waves in 1..=5u64 {
            for size in [
                waves * wave - SPLIT_OPEN_COST - 1,
                waves * wave - SPLIT_OPEN_COST,
                waves * wave,
                waves * wave + 1,
                waves * wave + wave / 3,
                waves * wave + wave - SPLIT_OPEN_COST - 1,
            ] {
                let split = automatic_split_size(&files(&[size]), slots);
                let tasks = size.div_ceil(split);
                assert!(split <= MAX_SPLIT_SIZE, "{size} on {slots}: {split}");
                assert_eq!(
                    tasks % u64::from(slots),
                    0,
                    "{size} on {slots} slots: {tasks} tasks of {split}"
                );
                // The last split (what is left) is short of the others by the open cost the
                // shares were counted with, at most.
                let last = size - (tasks - 1) * split;
                assert!(
                    last + SPLIT_OPEN_COST + tasks > split,
                    "{size} on {slots}: {last} / {split}"
                );
                // No more waves than 128 MiB splits need.
                assert!(
                    tasks
                        <= size
                            .div_ceil(MAX_SPLIT_SIZE)
                            .next_multiple_of(u64::from(slots)),
                    "{size} on {slots}: {tasks} tasks"
                );
            }
        }
    }
}

#[test]
fn a_job_file_without_a_split_size_gets_one_task_per_slot_or_waves_of_equal_splits() {
    // 1 GB on 2 slots: 8 tasks in 4 waves, of 125.5 MB (within 128 MiB); on 8 slots also 8
    // tasks, one wave.
    let plan = plan_for(AUTO_SPLITS, &[("in", GB)], AutoSplit::Slots(2));
    assert_eq!(
        (plan.split_size, plan.split_source, plan.stages[0].tasks),
        (125_524_288, SplitSource::Slots(2), 8)
    );
    // 890 MB (the stocks benchmark's CSV), which 128 MiB splits cut into 7 tasks: 8 of 111.9 MB.
    let plan = plan_for(AUTO_SPLITS, &[("in", 890_875_347)], AutoSplit::Slots(2));
    assert_eq!((plan.split_size, plan.stages[0].tasks), (111_883_707, 8));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let plan = plan_for(AUTO_SPLITS, &[("in", GB)], AutoSplit::Slots(8));
    assert_eq!((plan.split_size, plan.stages[0].tasks), (125_524_288, 8));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    // The demo's 20 MB corpus on two cores: two tasks, one per worker.
    let plan = plan_for(AUTO_SPLITS, &[("in", 20_000_000)], AutoSplit::Slots(2));
    assert_eq!((plan.split_size, plan.stages[0].tasks), (12_097_152, 2));
    assert!(
        plan.to_string().ends_with(
            "split size: 12.1 MB, automatic for 2 task slots (the job file sets no \
             input.split_size)"
        ),
        "{plan}"
    );
    // A job file's size is the user's choice, whatever the slots.
    let plan = plan_for(&sized("8MiB"), &[("in", GB)], AutoSplit::Slots(2));
    assert_eq!(
        (plan.split_size, plan.split_source, plan.stages[0].tasks),
        (8 * MIB, SplitSource::JobFile, 120)
    );
    // A size kept from the job's submission, whatever the slots now.
    let plan = plan_for(AUTO_SPLITS, &[("in", GB)], AutoSplit::Kept(100 * MIB));
    assert_eq!(
        (plan.split_size, plan.split_source, plan.stages[0].tasks),
        (100 * MIB, SplitSource::Kept, 10)
    );
    assert!(
        plan.to_string()
            .ends_with("split size: 100 MiB, automatic, chosen when the job was submitted")
    );
}

#[test]
fn splits_that_leave_slots_idle_or_make_tiny_tasks_are_warned_of() {
    let warnings = |text: &str, sizes: &[u64], slots: u32| -> Vec<SplitWarning> {
        let f = fixture();
        let job = parse(text)
            .resolve(&f.registry, &Tenant::default())
            .unwrap();
        job.plan(&files(sizes), AutoSplit::Slots(slots))
            .unwrap()
            .warnings
    };
    // One 1 GiB split of a 1 GB file on 4 slots: three sit idle.
    let idle = warnings(&sized("1GiB"), &[GB], 4);
    assert_eq!(
        idle,
        [SplitWarning::IdleSlots {
            tasks: 1,
            slots: 4,
            bytes: GB,
            at_most: GB / 4,
            source: SplitSource::JobFile
        }]
    );
    assert_eq!(
        idle[0].to_string(),
        "1 map task for 4 task slots: 3 slots will sit idle while the input (1.0 GB) is read; \
         set input.split_size to at most 250.0 MB (or remove it, and Weft sizes the splits for \
         the slots)"
    );
    // An input too small to be worth splitting leaves slots idle without a warning.
    assert_eq!(warnings(&sized("1GiB"), &[15 * MIB], 4), []);

    // 64 KiB splits of 100 MB: 1526 tasks of 64 KiB.
    let tiny = warnings(&sized("64KiB"), &[100_000_000], 2);
    assert_eq!(
        tiny,
        [SplitWarning::TinyTasks {
            tasks: 1526,
            bytes: 100_000_000,
            files: 1,
            whole_files: false,
            split_size: 64 * 1024,
            source: SplitSource::JobFile,
            automatic: 52_097_152
        }]
    );
    assert_eq!(
        tiny[0].to_string(),
        "1526 map tasks averaging 65.5 kB: a task costs about as much to start as reading 4 MiB, \
         so starting tasks would take much of the time; remove input.split_size (now 64 KiB), \
         and Weft chooses 52.1 MB for these slots"
    );
    // 500 files of 10 kB: automatic splits do not cut them, but each is a task.
    let small_files = warnings(AUTO_SPLITS, &[10_000; 500], 2);
    assert!(
        matches!(
            small_files[..],
            [SplitWarning::TinyTasks {
                tasks: 500,
                files: 500,
                whole_files: true,
                ..
            }]
        ),
        "{small_files:?}"
    );
    assert!(
        small_files[0]
            .to_string()
            .ends_with("merge them into fewer, larger files"),
        "{}",
        small_files[0]
    );
    // Over 10 000 tasks is too many, however large: 4 MiB splits of 50 GB.
    let many = warnings(&sized("4MiB"), &[50 * GB], 2);
    assert!(
        matches!(many[..], [SplitWarning::TinyTasks { tasks: 11_921, .. }]),
        "{many:?}"
    );
    // Automatic splits of a large input, or a few tiny tasks on enough slots: nothing to say.
    assert_eq!(warnings(AUTO_SPLITS, &[50 * GB], 2), []);
    assert_eq!(warnings(AUTO_SPLITS, &[20_000_000], 16), []);
    assert_eq!(warnings(&sized("1KiB"), &[4096], 4), []);
}

#[test]
fn narrow_steps_before_a_reduce_fuse_into_one_stage() {
    let text = r#"
name = "fused"
[input]
path = "in"
[[step]]
map = "textkit/upper"
[[step]]
filter = "textkit/non_empty"
[[step]]
flat_map = "textkit/words_with_line"
[[step]]
reduce = "wordcount/sum"
[output]
path = "out"
"#;
    let plan = plan(text, &[("in/a", 5), ("in/b", MAX_SPLIT_SIZE + 1)]);
    let [s0, s1] = &plan.stages[..] else {
        panic!("{plan:?}")
    };
    let steps: Vec<String> = s0.steps.iter().map(ToString::to_string).collect();
    assert_eq!(
        steps,
        [
            "map textkit@1/upper",
            "filter textkit@1/non_empty",
            "flat_map textkit@1/words_with_line"
        ]
    );
    assert_eq!(s0.tasks, 3);
    // output.partitions defaults to 1: one reduce task, one output file.
    assert!(
        matches!(&s0.output, StageOutput::Shuffle { partitions: 1, combiner: Some(c), .. } if c.function == "sum")
    );
    assert_eq!((s1.tasks, s1.steps.len()), (1, 0));
    assert!(matches!(
        s1.output,
        StageOutput::Output {
            partitions: 1,
            format: OutputFormat::Text,
            ..
        }
    ));
}

#[test]
fn a_job_starting_with_a_reduce_shuffles_its_input_unchanged() {
    let text = r#"
name = "just-sum"
input.path = "in"
[[step]]
reduce = "wordcount/sum"
[output]
path = "out"
partitions = 2
"#;
    assert_eq!(
        plan(text, &[("in", 10)]).to_string(),
        "job just-sum: 2 stages\n\
         stage 0: 1 task  input: 1 split of in (text, 4 MiB)\n\
         \x20 → shuffle: 2 partitions, compression none, combine with reduce wordcount@1/sum\n\
         stage 1: 2 tasks  input: shuffle of stage 0\n\
         \x20 reduce wordcount@1/sum\n\
         \x20 → output: out (text, 2 parts)\n\
         split size: 4 MiB, automatic for 2 task slots (the job file sets no input.split_size)"
    );
}

#[test]
fn a_map_only_job_has_one_stage_and_one_output_part_per_split() {
    let text = r#"
name = "shout"
[input]
path = "in"
format = "jsonl"
split_size = "1 KiB"
[[step]]
map = "textkit@1/upper"
[output]
path = "out"
"#;
    let plan = plan(text, &[("in/a", 2048), ("in/b", 1)]);
    assert_eq!(
        plan.to_string(),
        "job shout: 1 stage\n\
         stage 0: 3 tasks  input: 3 splits of in (jsonl, 1 KiB)\n\
         \x20 map textkit@1/upper\n\
         \x20 → output: out (text, 3 parts)\n\
         split size: 1 KiB, the job file's input.split_size"
    );
    assert!(plan.stages[0].parents.is_empty());
    assert!(matches!(
        plan.stages[0].output,
        StageOutput::Output { partitions: 3, .. }
    ));

    // No input at all: no task, and no part.
    let empty = self::plan(text, &[("in/empty", 0)]);
    assert_eq!((empty.stages[0].tasks, empty.stages.len()), (0, 1));
}

#[test]
fn splits_are_exact_byte_ranges() {
    let files: Vec<InputFile> = [
        ("zero", 0),
        ("one", 1),
        ("exact", 10),
        ("over", 11),
        ("three", 30),
    ]
    .into_iter()
    .map(|(p, s)| InputFile {
        path: p.into(),
        size: s,
    })
    .collect();
    let splits: Vec<(String, u64, u64)> = compute_splits(&files, 10, InputFormat::Text)
        .unwrap()
        .into_iter()
        .map(|s| (s.path.display().to_string(), s.start, s.length))
        .collect();
    let expected: Vec<(String, u64, u64)> = [
        ("one", 0, 1),
        ("exact", 0, 10),
        ("over", 0, 10),
        ("over", 10, 1),
        ("three", 0, 10),
        ("three", 10, 10),
        ("three", 20, 10),
    ]
    .into_iter()
    .map(|(p, a, b)| (p.to_owned(), a, b))
    .collect();
    assert_eq!(splits, expected);
    assert!(
        compute_splits(&[], 10, InputFormat::Text)
            .unwrap()
            .is_empty()
    );
    // A split size of 0 cannot come from a job file; called directly, it means 1.
    assert_eq!(
        compute_splits(&files[1..2], 0, InputFormat::Text)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn too_many_splits_are_refused_before_allocating_them() {
    let files = [InputFile {
        path: "huge".into(),
        size: u64::MAX,
    }];
    let err = compute_splits(&files, 1, InputFormat::Text).unwrap_err();
    assert!(
        matches!(err, PlanError::TooManySplits { limit: 100_000, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("raise input.split_size"), "{err}");
}

#[test]
fn paths_are_relative_to_the_job_file_and_overrides_replace_them() {
    let text = "name = \"j\"\n[input]\npath = \"data\"\n[[step]]\nmap = \"m/f\"\n[output]\npath = \"/abs/out\"\n";
    let spec = JobSpec::parse(text, Path::new("jobs/nightly/job.toml")).unwrap();
    assert_eq!(spec.input.path, Path::new("jobs/nightly/data"));
    assert_eq!(spec.output.path, Path::new("/abs/out"));
    let spec = spec.with_input("cli/in").with_output("cli/out");
    assert_eq!(
        (spec.input.path.as_path(), spec.output.path.as_path()),
        (Path::new("cli/in"), Path::new("cli/out"))
    );
}

#[test]
fn job_files_are_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wc.toml");
    std::fs::write(&path, WORDCOUNT).unwrap();
    let spec = JobSpec::from_file(&path).unwrap();
    assert_eq!(spec.input.path, dir.path().join("data/*.txt"));
    assert_eq!(spec.origin, path);

    let missing = dir.path().join("missing.toml");
    let err = JobSpec::from_file(&missing).unwrap_err();
    assert!(
        matches!(err.kind(), JobFileErrorKind::Read { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing.toml"), "{err}");
}

#[test]
fn every_reference_form_resolves_to_the_module_id() {
    let f = fixture();
    let id = f.wordcount.to_string();
    for reference in ["wordcount", "wordcount@1", &id] {
        let text = format!(
            "name = \"j\"\ninput.path = \"in\"\noutput.path = \"out\"\n[[step]]\nflat_map = \"{reference}/split_words\"\n"
        );
        let job = parse(&text)
            .resolve(&f.registry, &Tenant::default())
            .unwrap();
        assert_eq!(job.steps[0].module, f.wordcount, "{reference}");
        assert_eq!(
            (
                job.steps[0].module_name.as_str(),
                job.steps[0].module_version
            ),
            ("wordcount", 1)
        );
    }
}

// --- Errors: each names the file, the line and column, and the field. ---

/// A valid job with `body` in place of its single step's body.
fn with_step(body: &str) -> String {
    format!(
        "name = \"j\"\n[input]\npath = \"in\"\n\n[[step]]\n{body}\n\n[output]\npath = \"out\"\n"
    )
}

#[test]
fn malformed_toml_is_reported_at_its_line_with_a_snippet() {
    let err = parse_error("name = \"j\"\n[input]\npath = \"in\n");
    assert!(err.starts_with("job.toml:3:"), "{err}");
    assert!(err.contains("3 | path = \"in"), "{err}");
    assert!(err.contains('^'), "{err}");
}

#[test]
fn unknown_fields_are_refused() {
    let err = parse_error(&with_step("map = \"m/f\"\nparallelism = 3"));
    assert!(
        err.starts_with("job.toml:7:1: unknown field `parallelism`"),
        "{err}"
    );
    assert!(err.contains("7 | parallelism = 3"), "{err}");

    let err = parse_error("name = \"j\"\ncolour = 1\n");
    assert!(
        err.starts_with("job.toml:2:1: unknown field `colour`"),
        "{err}"
    );
}

#[test]
fn wrong_types_and_missing_sections_are_refused() {
    let err = parse_error(&with_step("map = 3"));
    assert!(
        err.starts_with("job.toml:6:7: invalid type: integer `3`, expected a string"),
        "{err}"
    );
    let err = parse_error("name = \"j\"\n[[step]]\nmap = \"m/f\"\n[output]\npath = \"o\"\n");
    assert!(err.contains("missing field `input`"), "{err}");
}

#[test]
fn a_step_needs_exactly_one_kind() {
    let two = format!(
        "{}\n[[step]]\nmap = \"m/f\"\nreduce = \"m/g\"\n",
        with_step("map = \"m/f\"")
    );
    let err = parse_error(&two);
    assert_eq!(
        err,
        "job.toml:11:1: step 2: a step needs exactly one of map, filter, flat_map, reduce, group_reduce \
         (found: map, reduce)"
    );
    let err = parse_error(&with_step(""));
    assert_eq!(
        err,
        "job.toml:5:1: step 1: a step needs exactly one of map, filter, flat_map, reduce, group_reduce (found none)"
    );
}

#[test]
fn a_job_needs_steps() {
    let err = parse_error("name = \"j\"\ninput.path = \"in\"\noutput.path = \"out\"\n");
    assert_eq!(err, "job.toml: step: a job needs at least one [[step]]");
    let err = parse_error("name = \"j\"\ninput.path = \"in\"\noutput.path = \"out\"\nstep = []\n");
    assert_eq!(err, "job.toml:4:8: step: a job needs at least one [[step]]");
}

#[test]
fn partitions_must_be_positive_and_only_on_wide_steps() {
    let err = parse_error(&with_step("reduce = \"m/f\"\npartitions = 0"));
    assert_eq!(
        err,
        "job.toml:7:14: step 1.partitions: must be from 1 to 100000 (got 0)"
    );
    let err = parse_error(&with_step("group_reduce = \"m/f\"\npartitions = -2"));
    assert!(
        err.starts_with("job.toml:7:14: step 1.partitions: must be from 1"),
        "{err}"
    );
    let err = parse_error(&with_step("map = \"m/f\"\npartitions = 2"));
    assert_eq!(
        err,
        "job.toml:7:14: step 1.partitions: only a reduce or group_reduce step has partitions (this is a map step)"
    );
    let err = parse_error(&format!(
        "{}partitions = 0\n",
        with_step("reduce = \"m/f\"")
    ));
    assert_eq!(
        err,
        "job.toml:10:14: output.partitions: must be from 1 to 100000 (got 0)"
    );
    let err = parse_error(&format!("{}partitions = 2\n", with_step("map = \"m/f\"")));
    assert!(
        err.starts_with(
            "job.toml:10:14: output.partitions: has no effect in a job without a reduce"
        ),
        "{err}"
    );
}

#[test]
fn bad_references_are_refused_when_parsing() {
    let err = parse_error(&with_step("map = \"upper\""));
    assert!(
        err.starts_with("job.toml:6:7: step 1.map: \"upper\" is not MODULE/FUNCTION"),
        "{err}"
    );
    let err = parse_error(&with_step("map = \"text kit/upper\""));
    assert!(
        err.starts_with("job.toml:6:7: step 1.map: invalid module reference \"text kit\""),
        "{err}"
    );
    let err = parse_error(&with_step("map = \"textkit/up-per\""));
    assert!(
        err.starts_with(
            "job.toml:6:7: step 1.map: \"up-per\" in \"textkit/up-per\" is not a function name"
        ),
        "{err}"
    );
    let err = parse_error(&with_step("map = \"textkit@/upper\""));
    assert!(
        err.starts_with("job.toml:6:7: step 1.map: invalid module reference"),
        "{err}"
    );
}

#[test]
fn formats_and_split_sizes_are_checked() {
    let job = |input: &str| {
        format!(
            "name = \"j\"\n[input]\npath = \"in\"\n{input}\n[[step]]\nmap = \"m/f\"\n[output]\npath = \"o\"\n"
        )
    };
    let err = parse_error(&job("format = \"xml\""));
    assert_eq!(
        err,
        "job.toml:4:10: input.format: unknown input format \"xml\" (expected text, csv or jsonl)"
    );
    // Decimal and binary units alike, as every size Weft takes.
    assert_eq!(
        parse(&job("split_size = \"64MB\"")).input.split_size,
        Some(64_000_000)
    );
    assert_eq!(
        parse(&job("split_size = \"64MiB\"")).input.split_size,
        Some(64 * MIB)
    );
    let err = parse_error(&job("split_size = \"64 parsecs\""));
    assert!(
        err.starts_with("job.toml:4:14: input.split_size: \"64 parsecs\" is not a size"),
        "{err}"
    );
    let err = parse_error(&job("split_size = 0"));
    assert!(
        err.starts_with("job.toml:4:14: input.split_size: 0 is not a size"),
        "{err}"
    );
    let err = parse_error(&job("split_size = 1.5"));
    assert!(
        err.starts_with("job.toml:4:14: input.split_size: a float is not a size"),
        "{err}"
    );
    let err = parse_error(&job("header = false"));
    assert!(
        err.starts_with("job.toml:4:10: input.header: applies only to format = \"csv\""),
        "{err}"
    );
    let err = parse_error(&job("format = \"csv\"\ndelimiter = \"::\""));
    assert!(
        err.starts_with("job.toml:5:13: input.delimiter: \"::\" is not one ASCII character"),
        "{err}"
    );
    let err = parse_error(&job("split_size = 1\nsplit_size = 2"));
    assert!(err.starts_with("job.toml:5:1: duplicate key"), "{err}");

    let err = parse_error(
        "name = \"j\"\ninput.path = \"in\"\n[[step]]\nmap = \"m/f\"\n[output]\npath = \"o\"\nformat = \"xls\"\n",
    );
    assert_eq!(
        err,
        "job.toml:7:10: output.format: unknown output format \"xls\" (expected text, jsonl or csv)"
    );
    let err = parse_error(
        "name = \"my job\"\ninput.path = \"in\"\noutput.path = \"o\"\n[[step]]\nmap = \"m/f\"\n",
    );
    assert!(
        err.starts_with("job.toml:1:8: name: \"my job\" is not a valid job name"),
        "{err}"
    );
    let err = parse_error(
        "name = \"j\"\ninput.path = \"\"\noutput.path = \"o\"\n[[step]]\nmap = \"m/f\"\n",
    );
    assert_eq!(err, "job.toml:2:14: input.path: must not be empty");
}

#[test]
fn unknown_modules_are_reported_at_the_step() {
    let err = resolve_error(&with_step("map = \"nope/upper\""));
    assert!(
        matches!(err.kind(), JobFileErrorKind::UnknownModule { step: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "job.toml:6:7: step 1: map \"nope/upper\": no module nope in the registry"
    );
    let err = resolve_error(&with_step("map = \"textkit@7/upper\""));
    assert!(
        err.to_string()
            .contains("no module textkit@7 in the registry"),
        "{err}"
    );
}

#[test]
fn unknown_functions_list_the_module_s_functions() {
    let err = resolve_error(&with_step("flat_map = \"wordcount/split\""));
    assert_eq!(
        err.to_string(),
        "job.toml:6:12: step 1: flat_map \"wordcount/split\": module wordcount@1 has no function \"split\" \
         (its functions: filter long_words, flat_map split_words, reduce sum)"
    );
}

#[test]
fn a_function_of_another_kind_is_refused() {
    let text = format!(
        "{}\n[[step]]\nreduce = \"wordcount/split_words\"\n",
        with_step("map = \"textkit/upper\"")
    );
    let err = resolve_error(&text);
    assert!(
        matches!(err.kind(), JobFileErrorKind::KindMismatch { step: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "job.toml:12:10: step 2: reduce \"wordcount/split_words\" names a flat_map function"
    );
}

/// A job with a reduce and then `shuffle`, the text after a `[shuffle]` header.
fn with_shuffle(shuffle: &str) -> String {
    format!(
        "name = \"j\"\ninput.path = \"in\"\n[[step]]\nreduce = \"m/f\"\n[output]\npath = \"o\"\n\
         [shuffle]\n{shuffle}\n"
    )
}

#[test]
fn shuffle_compression_parses_each_codec_and_defaults() {
    for (name, codec) in [
        ("none", ShuffleCompression::None),
        ("lz4", ShuffleCompression::Lz4),
        ("zstd", ShuffleCompression::Zstd),
    ] {
        let spec = parse(&with_shuffle(&format!("compression = \"{name}\"")));
        assert_eq!(spec.shuffle.compression, codec);
        assert_eq!(codec.to_string(), name);
        assert_eq!(name.parse::<ShuffleCompression>(), Ok(codec));
    }
    // Without the key, or without the table, the default applies.
    let default = ShuffleCompression::default();
    assert_eq!(parse(&with_shuffle("")).shuffle.compression, default);
    assert_eq!(
        parse(&with_step("reduce = \"m/f\"")).shuffle.compression,
        default
    );
}

#[test]
fn shuffle_compression_is_checked() {
    let err = parse_error(&with_shuffle("compression = \"gzip\""));
    assert_eq!(
        err,
        "job.toml:8:15: shuffle.compression: unknown shuffle compression \"gzip\" (expected none, \
         lz4 or zstd)"
    );
    // Names are exact: job files spell them one way.
    let err = parse_error(&with_shuffle("compression = \"LZ4\""));
    assert!(
        err.starts_with("job.toml:8:15: shuffle.compression: unknown shuffle compression \"LZ4\""),
        "{err}"
    );
    let err = parse_error(&with_shuffle("compression = true"));
    assert!(
        err.starts_with("job.toml:8:15: invalid type: boolean `true`, expected a string"),
        "{err}"
    );
    let err = parse_error(&with_shuffle("compression = \"lz4\"\nlevel = 3"));
    assert!(
        err.starts_with("job.toml:9:1: unknown field `level`"),
        "{err}"
    );
    // A job without a reduce or group_reduce has no shuffle to compress.
    let err = parse_error(&format!(
        "{}[shuffle]\ncompression = \"zstd\"\n",
        with_step("map = \"m/f\"")
    ));
    assert!(
        err.starts_with(
            "job.toml:11:15: shuffle.compression: has no effect in a job without a reduce"
        ),
        "{err}"
    );
}

#[test]
fn shuffle_compression_is_recorded_on_every_shuffle_of_the_plan() {
    let text = r#"
name = "squeezed"
input.path = "in"
[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
[[step]]
group_reduce = "textkit/distinct_sorted"
[output]
path = "out"
partitions = 2
[shuffle]
compression = "zstd"
"#;
    let plan = plan(text, &[("in", 10)]);
    assert_eq!(
        plan.to_string(),
        "job squeezed: 3 stages\n\
         stage 0: 1 task  input: 1 split of in (text, 4 MiB)\n\
         \x20 flat_map wordcount@1/split_words\n\
         \x20 → shuffle: 2 partitions, compression zstd, combine with reduce wordcount@1/sum\n\
         stage 1: 2 tasks  input: shuffle of stage 0\n\
         \x20 reduce wordcount@1/sum\n\
         \x20 → shuffle: 2 partitions, compression zstd\n\
         stage 2: 2 tasks  input: shuffle of stage 1\n\
         \x20 group_reduce textkit@1/distinct_sorted\n\
         \x20 → output: out (text, 2 parts)\n\
         split size: 4 MiB, automatic for 2 task slots (the job file sets no input.split_size)"
    );
    let codecs: Vec<ShuffleCompression> = plan
        .stages
        .iter()
        .filter_map(|s| match s.output {
            StageOutput::Shuffle { compression, .. } => Some(compression),
            StageOutput::Output { .. } => None,
        })
        .collect();
    assert_eq!(codecs, [ShuffleCompression::Zstd; 2]);
}

/// A map-only job with `limits`, the text after a `[limits]` header.
fn with_limits(limits: &str) -> String {
    format!("{}[limits]\n{limits}\n", with_step("map = \"m/f\""))
}

#[test]
fn limits_parse_sizes_and_durations() {
    let spec = parse(&with_limits(
        "memory = \"64MiB\"\ncall_time = \"2s\"\ntask_output = 4096\nlog = \"1KiB\"",
    ));
    let got: Vec<(Limit, u64)> = spec.limits.iter().map(|l| (l.limit, l.value)).collect();
    assert_eq!(
        got,
        [
            (Limit::Memory, 64 << 20),
            (Limit::CallTime, 2000),
            (Limit::TaskOutput, 4096),
            (Limit::Log, 1024),
        ]
    );
    assert_eq!(
        spec.limits[1].at,
        Location {
            line: 12,
            column: 13
        }
    );
    assert!(parse(&with_step("map = \"m/f\"")).limits.is_empty());
}

#[test]
fn retry_sets_max_attempts_between_1_and_10_and_speculation() {
    let retry = |text: &str| format!("{}[retry]\n{text}\n", with_step("map = \"m/f\""));
    assert_eq!(parse(&with_step("map = \"m/f\"")).max_attempts, None);
    assert_eq!(parse(&retry("max_attempts = 3")).max_attempts, Some(3));
    let err = parse_error(&retry("max_attempts = 0"));
    assert_eq!(
        err,
        "job.toml:11:16: retry.max_attempts: 0 is not between 1 and 10 (1: no retry)"
    );
    assert!(parse_error(&retry("max_attempts = 11")).contains("11 is not between 1 and 10"));
    assert!(parse_error(&retry("attempts = 2")).contains("unknown field `attempts`"));
    assert_eq!(parse(&retry("speculation = true")).speculation, Some(true));
    assert_eq!(parse(&with_step("map = \"m/f\"")).speculation, None);
}

#[test]
fn limits_are_checked() {
    let err = parse_error(&with_limits("cpu = \"1s\""));
    assert_eq!(
        err,
        "job.toml:11:7: limits.cpu: unknown limit `cpu` (expected one of memory, call_time, \
         task_time, batch_output, task_output, log, stack)"
    );
    let err = parse_error(&with_limits("stack = \"300KiB\""));
    assert_eq!(
        err,
        "job.toml:11:9: limits.stack: 300 KiB is not a power of two (64 KiB to 8 MiB, e.g. 1MiB)"
    );
    let err = parse_error(&with_limits("call_time = 10"));
    assert!(
        err.starts_with("job.toml:11:13: limits.call_time: 10 has no unit"),
        "{err}"
    );
    let err = parse_error(&with_limits("memory = \"lots\""));
    assert!(
        err.starts_with("job.toml:11:10: limits.memory: \"lots\" is not a size"),
        "{err}"
    );
    let err = parse_error(&with_limits("task_time = true"));
    assert!(
        err.starts_with(
            "job.toml:11:13: limits.task_time: expected a duration as a string, not a boolean"
        ),
        "{err}"
    );
    let err = parse_error(&with_limits("memory = -1"));
    assert!(err.contains("limits.memory: -1 is not a size"), "{err}");
}
