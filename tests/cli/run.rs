//! `weft plan` and `weft run`: the example jobs end to end against references computed here, a
//! trapping UDF that fails the job without leaving output, and every refusal before anything runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{
    NO_ROOM_FOR_THE_POOL_KIB, Run, Weft, assert_same_counts, counts_of, max_volumes, path,
    read_output, word_counts,
};
use weft_testkit::registry::EXAMPLES;

/// A data directory with the example modules `wordcount`, `stocks` and `textkit` registered.
///
/// Registering validates (and so compiles) each module, the slow part, so it happens once, into a
/// template that each test copies: a test gets its own data directory, because the registry admits
/// one process at a time.
pub(crate) fn weft_with_examples() -> Weft {
    static TEMPLATE: OnceLock<Weft> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let weft = Weft::new();
        for (name, wasm) in EXAMPLES {
            weft.ok(&["module", "register", wasm, "--name", name]);
        }
        weft
    });
    let weft = Weft::new();
    copy_dir(&template.data_dir(), &weft.data_dir());
    weft
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// An example's job file in this repository.
pub(crate) fn example_job(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("job.toml")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Writes a job file into the test's scratch space and returns its path.
fn job_file(weft: &Weft, name: &str, text: &str) -> PathBuf {
    let file = weft.scratch(name);
    std::fs::write(&file, text).unwrap();
    file
}

fn assert_failed(run: &Run, needles: &[&str]) {
    assert_eq!(
        run.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    let stderr = run.stderr();
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
}

#[test]
fn plan_of_a_job_with_two_shuffles_shows_three_stages_and_runs() {
    let weft = weft_with_examples();
    let input = weft.scratch("input.txt");
    std::fs::write(
        &input,
        "to be or not to be\nthat is the question\n\nto be\n",
    )
    .unwrap();
    // Word count, then a map and a group_reduce over the counts: two wide steps, three stages.
    let job = job_file(
        &weft,
        "job.toml",
        &format!(
            r#"name = "two-shuffles"
[input]
path = {input:?}
split_size = 16
[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
partitions = 3
[[step]]
map = "textkit/upper"
[[step]]
group_reduce = "textkit/distinct_sorted"
[output]
path = "out"
partitions = 2
[shuffle]
compression = "zstd"
"#,
            input = path(&input)
        ),
    );
    let plan = weft.ok(&["plan", path(&job)]).stdout();
    let stages: Vec<&str> = plan.lines().filter(|l| l.starts_with("stage ")).collect();
    assert_eq!(stages.len(), 3, "{plan}");
    assert!(plan.starts_with("job two-shuffles: 3 stages"), "{plan}");
    // 47 bytes in splits of 16: three map tasks; then the step's 3 partitions, then the output's 2.
    assert!(stages[0].starts_with("stage 0: 3 tasks"), "{plan}");
    assert!(stages[1].starts_with("stage 1: 3 tasks"), "{plan}");
    assert!(stages[2].starts_with("stage 2: 2 tasks"), "{plan}");
    for step in [
        "flat_map wordcount@1/split_words",
        "reduce wordcount@1/sum",
        "map textkit@1/upper",
        "group_reduce textkit@1/distinct_sorted",
        "combine with reduce wordcount@1/sum",
        "→ shuffle: 2 partitions, compression zstd",
    ] {
        assert!(plan.contains(step), "{step:?} not in:\n{plan}");
    }

    let json = weft.ok(&["--json", "plan", path(&job)]).json();
    let stages = json["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3, "{json:#}");
    assert_eq!(json["job"], "two-shuffles");
    assert_eq!(stages[0]["parents"], serde_json::json!([]));
    assert_eq!(stages[0]["input"]["type"], "splits");
    assert_eq!(stages[0]["input"]["splits"].as_array().unwrap().len(), 3);
    assert_eq!(stages[0]["steps"][0]["function"], "split_words");
    assert_eq!(stages[0]["output"]["type"], "shuffle");
    assert_eq!(stages[0]["output"]["combiner"]["function"], "sum");
    assert_eq!(stages[0]["output"]["compression"], "zstd");
    assert_eq!(stages[1]["parents"], serde_json::json!([0]));
    assert_eq!(stages[1]["input"]["type"], "shuffle");
    assert_eq!(stages[1]["input"]["wide_step"]["kind"], "reduce");
    assert_eq!(stages[1]["steps"][0]["kind"], "map");
    assert_eq!(stages[1]["output"]["combiner"], serde_json::Value::Null);
    assert_eq!(stages[2]["parents"], serde_json::json!([1]));
    assert_eq!(stages[2]["tasks"], 2);
    assert_eq!(
        stages[2]["input"]["wide_step"]["function"],
        "distinct_sorted"
    );
    assert_eq!(stages[2]["output"]["type"], "output");
    assert_eq!(stages[2]["output"]["partitions"], 2);
    assert!(
        stages[2]["input"]["wide_step"]["id"]
            .as_str()
            .unwrap()
            .starts_with("blake3:")
    );

    // Upper-casing decimal counts changes nothing, and each word has one count: the result is
    // the word count.
    let out = weft.scratch("out");
    weft.ok(&["run", path(&job), "--output", path(&out), "--workers", "2"]);
    let want = word_counts(&std::fs::read(&input).unwrap());
    assert_same_counts(&counts_of(read_output(&out)), &want);
}

/// Issue 19: `weft plan` says which split size it chose and why, and warns of splits that leave
/// slots idle or make tiny tasks, with the numbers and what to set.
#[test]
fn issue_19_plan_chooses_split_sizes_for_the_slots_and_warns_of_wasteful_ones() {
    let weft = weft_with_examples();
    // 40 MB (sparse: text is split by size alone, and nothing runs).
    let input = weft.scratch("big.txt");
    std::fs::File::create(&input)
        .unwrap()
        .set_len(40_000_000)
        .unwrap();
    let job = |name: &str, split_size: &str| {
        job_file(
            &weft,
            name,
            &format!(
                "name = \"wc\"\n[input]\npath = {:?}\n{split_size}\n[[step]]\n\
                 flat_map = \"wordcount/split_words\"\n[[step]]\nreduce = \"wordcount/sum\"\n\
                 [output]\npath = \"out\"\n",
                path(&input)
            ),
        )
    };
    let plan = |job: &Path, slots: &str| weft.ok(&["plan", path(job), "--slots", slots]);

    // No split size: (40 MB + 4 MiB) / 4 slots, about 11 MB, four tasks; nothing to warn of.
    let auto = job("auto.toml", "");
    let run = plan(&auto, "4");
    assert!(
        run.stdout()
            .starts_with("job wc: 2 stages\nstage 0: 4 tasks"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().ends_with(
            "split size: 11.0 MB, automatic for 4 task slots (the job file sets no \
             input.split_size)\n"
        ),
        "{}",
        run.stdout()
    );
    assert_eq!(run.stderr(), "");
    let json = weft
        .ok(&["--json", "plan", path(&auto), "--slots", "4"])
        .json();
    assert_eq!(json["input"]["split_size"], 11_048_576);
    assert_eq!(json["input"]["split_size_from"], "automatic");
    assert_eq!(json["input"]["slots"], 4);
    assert_eq!(json["warnings"], serde_json::json!([]));

    // The job file's 1 GiB: one task for 4 slots.
    let whole = job("whole.toml", "split_size = \"1GiB\"");
    let run = plan(&whole, "4");
    assert!(
        run.stdout()
            .ends_with("split size: 1 GiB, the job file's input.split_size\n"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        run.stderr(),
        "warning: 1 map task for 4 task slots: 3 slots will sit idle while the input (40.0 MB) \
         is read; set input.split_size to at most 10.0 MB (or remove it, and Weft sizes the \
         splits for the slots)\n"
    );

    // The job file's 16 KiB: 2442 tasks of 16 KiB.
    let tiny = job("tiny.toml", "split_size = \"16KiB\"");
    let run = plan(&tiny, "2");
    assert_eq!(
        run.stderr(),
        "warning: 2442 map tasks averaging 16.4 kB: a task costs about as much to start as \
         reading 4 MiB, so starting tasks would take much of the time; remove input.split_size \
         (now 16 KiB), and Weft chooses 22.1 MB for these slots\n"
    );
    let json = weft
        .ok(&["--json", "plan", path(&tiny), "--slots", "2"])
        .json();
    assert_eq!(json["input"]["split_size_from"], "job_file");
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1, "{json:#}");
}

#[test]
fn wordcount_example_equals_the_reference() {
    let weft = weft_with_examples();
    let corpus = weft_datagen::wordcount_corpus(3 << 20, 11);
    let input = weft.scratch("corpus.txt");
    std::fs::write(&input, &corpus).unwrap();
    let out = weft.scratch("result");
    let run = weft.ok(&[
        "--json",
        "run",
        &example_job("wordcount"),
        "--input",
        path(&input),
        "--output",
        path(&out),
        "--workers",
        "2",
    ]);
    let report = run.json();
    assert_eq!(report["job"], "wordcount");
    assert_eq!(report["output"], path(&out));
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{report:#}");
    let want = word_counts(&corpus);
    assert_eq!(stages[1]["records_out"], want.len() as u64, "{report:#}");

    assert_same_counts(&counts_of(read_output(&out)), &want);
    // The example's output.partitions.
    let parts = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("part-")
        })
        .count();
    assert_eq!(parts, 4);
}

/// `weft run --memory` bounds what the job's tasks hold: with 1 MiB for two workers, the reduce
/// side of 80 000 distinct words spills sorted runs and merges them, and the counts stay exact (the
/// map side's combine, finding nearly every word distinct, switches itself off). A size that does
/// not parse is refused naming the option.
#[test]
fn run_with_little_memory_spills_and_stays_exact() {
    let weft = weft_with_examples();
    let n = 80_000u64;
    // Each word three times, in an order that scatters its occurrences.
    let words: Vec<String> = (0..3 * n)
        .map(|i| format!("k{:05}", i * 7919 % n))
        .collect();
    let corpus = words
        .chunks(10)
        .map(|line| line.join(" ") + "\n")
        .collect::<String>()
        .into_bytes();
    let input = weft.scratch("distinct.txt");
    std::fs::write(&input, &corpus).unwrap();
    let out = weft.scratch("result");
    weft.ok(&[
        "run",
        &example_job("wordcount"),
        "--input",
        path(&input),
        "--output",
        path(&out),
        "--workers",
        "2",
        "--memory",
        "1MiB",
    ]);
    let want = word_counts(&corpus);
    assert_eq!(want.len() as u64, n);
    assert_same_counts(&counts_of(read_output(&out)), &want);

    let run = weft.run(&["run", &example_job("wordcount"), "--memory", "lots"]);
    assert_eq!(run.code(), Some(2), "a usage error");
    assert!(
        run.stderr().contains("'lots' for '--memory <SIZE>'"),
        "{}",
        run.stderr()
    );
}

/// Issue 19: the map side builds no keys for a first UDF that states it never reads them
/// (`split_words`, `non_empty`), and exact `PATH:OFFSET` keys for one that reads them, even
/// behind a filter that does not (a filter passes its input keys on).
#[test]
fn issue_19_keys_are_built_only_for_a_udf_that_reads_them() {
    let weft = weft_with_examples();
    let show = weft.ok(&["module", "show", "textkit"]).stdout();
    let line = |name: &str| {
        show.lines()
            .find(|l| l.ends_with(name) || l.contains(&format!("{name} (")))
    };
    assert!(line("non_empty").unwrap().contains("key unused"), "{show}");
    assert!(
        !line("words_with_line").unwrap().contains("key unused"),
        "{show}"
    );

    let input = weft.scratch("lines.txt");
    std::fs::write(&input, "a b\n\nb c\n").unwrap();
    let job = job_file(
        &weft,
        "postings.toml",
        &format!(
            r#"name = "postings"
[input]
path = {input:?}
[[step]]
filter = "textkit/non_empty"
[[step]]
flat_map = "textkit/words_with_line"
[[step]]
group_reduce = "textkit/distinct_sorted"
[output]
path = "postings"
"#,
            input = path(&input)
        ),
    );
    let out = weft.scratch("postings");
    weft.ok(&["run", path(&job), "--output", path(&out)]);
    let key = |offset: u32| format!("{}:{offset}", path(&input));
    let want: HashMap<Vec<u8>, Vec<u8>> = [
        ("a", key(0)),
        ("b", format!("{},{}", key(0), key(5))),
        ("c", key(5)),
    ]
    .into_iter()
    .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
    .collect();
    assert_eq!(read_output(&out), want);
}

#[test]
fn stocks_example_equals_the_reference() {
    let weft = weft_with_examples();
    let csv = weft_datagen::stocks_csv(20_000, 3);
    let input = weft.scratch("quotes.csv");
    std::fs::write(&input, &csv).unwrap();

    let want = max_volumes(&csv, b',');
    assert_eq!(want.len(), weft_datagen::SYMBOLS);

    let out = weft.scratch("max-volume");
    let run = weft.ok(&[
        "run",
        &example_job("stocks"),
        "--input",
        path(&input),
        "--output",
        path(&out),
        "--workers",
        "2",
    ]);
    // The summary names the output directory.
    assert!(run.stdout().contains(path(&out)), "{}", run.stdout());
    assert_same_counts(&counts_of(read_output(&out)), &want);
}

/// The stocks job on semicolon-delimited quotes (`delimiter = ";"`): the reader hands the UDF every
/// row comma-separated, so the example's own UDF gives the exact answer. Before the delimiter
/// reached the reader, the rows went to the UDF whole, and every one failed it.
#[test]
fn csv_with_another_delimiter_gives_the_exact_answer() {
    let weft = weft_with_examples();
    let csv: Vec<u8> = weft_datagen::stocks_csv(20_000, 4)
        .into_iter()
        .map(|b| if b == b',' { b';' } else { b })
        .collect();
    let input = weft.scratch("quotes.csv");
    std::fs::write(&input, &csv).unwrap();
    let out = weft.scratch("max-volume");
    let job = job_file(
        &weft,
        "stocks.toml",
        &format!(
            "name = \"stocks\"\n[input]\npath = {:?}\nformat = \"csv\"\ndelimiter = \";\"\n\
             split_size = {}\n\
             [[step]]\nflat_map = \"stocks/parse\"\n[[step]]\nreduce = \"stocks/max\"\n\
             [output]\npath = {:?}\npartitions = 2\n",
            path(&input),
            csv.len().div_ceil(3),
            path(&out),
        ),
    );
    weft.ok(&["run", path(&job), "--workers", "2"]);
    let want = max_volumes(&csv, b';');
    assert_eq!(want.len(), weft_datagen::SYMBOLS);
    assert_same_counts(&counts_of(read_output(&out)), &want);
}

#[test]
fn under_an_address_space_limit_a_job_runs_without_the_pool_and_says_so() {
    let weft = weft_with_examples();
    let corpus = weft_datagen::wordcount_corpus(1 << 20, 5);
    let input = weft.scratch("corpus.txt");
    std::fs::write(&input, &corpus).unwrap();
    let out = weft.scratch("result");
    let run = Run(weft
        .command_under_address_space(NO_ROOM_FOR_THE_POOL_KIB)
        .args(["run", &example_job("wordcount"), "--workers", "2"])
        .args(["--input", path(&input), "--output", path(&out)])
        .output()
        .unwrap());
    assert_eq!(run.code(), Some(0), "stderr: {}", run.stderr());
    assert!(
        run.stderr()
            .contains("warning: guests run without the instance pool"),
        "{}",
        run.stderr()
    );
    assert_same_counts(&counts_of(read_output(&out)), &word_counts(&corpus));
}

#[test]
fn a_failing_udf_fails_the_job_with_its_message_and_leaves_no_output() {
    let weft = weft_with_examples();
    let input = weft.scratch("input.txt");
    std::fs::write(&input, "fine\nalso fine\nboom\nnever reached\n").unwrap();
    // A trap (panic_on_boom: the guest panics) and a guest error (fail_on_boom: it returns Err).
    for (function, message) in [
        ("panic_on_boom", "boom panic"),
        ("fail_on_boom", "boom: found a bad record with key"),
    ] {
        let job = job_file(
            &weft,
            "job.toml",
            &format!(
                r#"name = "boom"
[input]
path = {input:?}
[[step]]
map = "textkit/{function}"
[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
[output]
path = "results/out"
"#,
                input = path(&input)
            ),
        );
        let run = weft.run(&["run", path(&job), "--workers", "2"]);
        assert_failed(
            &run,
            &[
                "job boom",
                "stage 0",
                "partition 0",
                "textkit",
                function,
                message,
            ],
        );
        // A UDF's own error names the input record's file and line (a trap cannot be re-run).
        let at = format!("{function} on the record at {}:3", path(&input));
        assert_eq!(
            run.stderr().contains(&at),
            function == "fail_on_boom",
            "{at:?} in {}",
            run.stderr()
        );
        // No output, and no staging directory beside where it would have been.
        let results = weft.scratch("results");
        let left: Vec<_> = std::fs::read_dir(&results)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{function}: left behind {left:?}");
    }
}

/// A job file that is fine but for `step`, the text of its only step (at line 5).
fn job_with_step(weft: &Weft, step: &str) -> PathBuf {
    let input = weft.scratch("input.txt");
    std::fs::write(&input, "a b c\n").unwrap();
    job_file(
        weft,
        "job.toml",
        &format!(
            "name = \"bad\"\n[input]\npath = {:?}\n[[step]]\n{step}\n[output]\npath = \"out\"\n",
            path(&input)
        ),
    )
}

/// Runs a job that must be refused before anything runs, with `weft plan`, `weft run` and
/// `weft job submit` (on the data directory): each fails with status 1 and a message containing
/// every needle, `run` and `submit` with the same message (one preparation path: the
/// scheduler's), and neither the work directory nor an output is created.
fn refused(weft: &Weft, args: &[&str], needles: &[&str]) {
    let commands: [&[&str]; 3] = [&["plan"], &["run"], &["job", "submit"]];
    let mut messages = Vec::new();
    for command in commands {
        let mut full = command.to_vec();
        full.extend_from_slice(args);
        let run = weft.run(&full);
        assert_failed(&run, needles);
        messages.push((command.join(" "), run.stderr()));
    }
    // `weft run` prints `error: MESSAGE`; the job service relays the scheduler's `MESSAGE`.
    let [.., (_, run), (_, submit)] = &messages[..] else {
        unreachable!()
    };
    let message = run.trim().trim_start_matches("error: ");
    assert!(
        submit.contains(message),
        "job submit and run differ:\nrun: {run}\nsubmit: {submit}"
    );
    assert!(!weft.data_dir().join("work").exists(), "something ran");
    assert!(!weft.scratch("out").exists(), "an output was written");
}

#[test]
fn bad_jobs_are_refused_before_anything_runs() {
    let weft = weft_with_examples();
    let job = |step: &str| job_with_step(&weft, step);

    // Malformed TOML: the unterminated string on line 5.
    let file = job("flat_map = \"wordcount/split_words");
    refused(&weft, &[path(&file)], &["job.toml:5:"]);

    // A key no step has.
    let file = job("flatmap = \"wordcount/split_words\"");
    refused(&weft, &[path(&file)], &["job.toml:5:", "flatmap"]);

    let file = job("flat_map = \"nosuch/split_words\"");
    refused(&weft, &[path(&file)], &["job.toml:5:", "step 1", "nosuch"]);

    let file = job("flat_map = \"wordcount/nosuch\"");
    refused(
        &weft,
        &[path(&file)],
        &[
            "job.toml:5:",
            "step 1",
            "no function \"nosuch\"",
            "split_words",
        ],
    );

    // A reduce step naming a flat_map function.
    let file = job("reduce = \"wordcount/split_words\"");
    refused(
        &weft,
        &[path(&file)],
        &["job.toml:5:", "step 1", "names a flat_map function"],
    );

    // The job file's input is missing: the message names the field; --input's: the option.
    let file = job_file(
        &weft,
        "job.toml",
        "name = \"bad\"\n[input]\npath = \"missing/*.txt\"\n[[step]]\nmap = \"textkit/upper\"\n\
         [output]\npath = \"out\"\n",
    );
    refused(&weft, &[path(&file)], &["input.path", "missing/*.txt"]);
    let missing = weft.scratch("nowhere.txt");
    refused(
        &weft,
        &[path(&file), "--input", path(&missing)],
        &["--input", "nowhere.txt", "does not exist"],
    );

    let missing = weft.scratch("no-such-job.toml");
    for command in [&["plan"][..], &["run"], &["job", "submit"]] {
        let mut args = command.to_vec();
        args.push(path(&missing));
        assert_failed(&weft.run(&args), &["cannot read", "no-such-job.toml"]);
    }

    // Bad arguments are usage errors.
    assert_eq!(weft.run(&["run"]).code(), Some(2));
    assert_eq!(
        weft.run(&["run", path(&file), "--workers", "0"]).code(),
        Some(2)
    );
}

#[test]
fn an_existing_output_is_replaced_only_with_overwrite() {
    let weft = weft_with_examples();
    let first = weft.scratch("first.txt");
    let second = weft.scratch("second.txt");
    std::fs::write(&first, "one two two\n").unwrap();
    std::fs::write(&second, "three\n").unwrap();
    let out = weft.scratch("out");
    let wordcount = example_job("wordcount");
    let run = |input: &Path, overwrite: bool| {
        let mut args = vec![
            "run",
            &wordcount,
            "--input",
            path(input),
            "--output",
            path(&out),
            "--workers",
            "1",
        ];
        if overwrite {
            args.push("--overwrite");
        }
        weft.run(&args)
    };
    let counts = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|(w, n)| (w.as_bytes().to_vec(), *n))
            .collect::<HashMap<_, _>>()
    };

    assert_eq!(run(&first, false).code(), Some(0));
    assert_eq!(
        counts_of(read_output(&out)),
        counts(&[("one", 1), ("two", 2)])
    );

    let refused = run(&second, false);
    assert_failed(&refused, &["--output", "already exists", "--overwrite"]);
    assert_eq!(
        counts_of(read_output(&out)),
        counts(&[("one", 1), ("two", 2)])
    );
    // `job submit` refuses it the same way; so do both where the output is a file.
    let submit = weft.run(&[
        "job",
        "submit",
        &wordcount,
        "--input",
        path(&second),
        "--output",
        path(&out),
    ]);
    assert_failed(&submit, &["--output", "already exists", "--overwrite"]);
    let file = weft.scratch("a-file");
    std::fs::write(&file, "x").unwrap();
    for command in [&["run"][..], &["job", "submit"]] {
        let mut args = command.to_vec();
        args.extend([&wordcount[..], "--input", path(&second)]);
        args.extend(["--output", path(&file), "--overwrite"]);
        assert_failed(
            &weft.run(&args),
            &["--output", "is not a directory", "a-file"],
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");

    let replaced = run(&second, true);
    assert_eq!(replaced.code(), Some(0), "{}", replaced.stderr());
    assert_eq!(counts_of(read_output(&out)), counts(&[("three", 1)]));
    // Nothing left beside it: no staging directory, no renamed-aside old output.
    let siblings: Vec<String> = std::fs::read_dir(weft.scratch(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(siblings.is_empty(), "{siblings:?}");
}

#[test]
fn without_a_scheduler_job_commands_use_the_data_directory() {
    let weft = weft_with_examples();
    let input = weft.scratch("in.txt");
    std::fs::write(&input, "b a b\nc b\n").unwrap();
    let out = weft.scratch("out");
    let job = PathBuf::from(example_job("wordcount"));
    // `job submit` with no scheduler runs the job here and waits.
    let run = weft.ok(&[
        "--json",
        "job",
        "submit",
        path(&job),
        "--input",
        path(&input),
        "--output",
        path(&out),
    ]);
    let status = run.json();
    assert_eq!(status["state"], "succeeded", "{status}");
    let id = status["job_id"].as_str().unwrap().to_owned();
    let counts = counts_of(read_output(&out));
    assert_same_counts(&counts, &word_counts(b"b a b\nc b\n"));
    // `weft run` records its job in the same place.
    let out2 = weft.scratch("out2");
    weft.ok(&[
        "run",
        path(&job),
        "--input",
        path(&input),
        "--output",
        path(&out2),
    ]);
    let list = weft.ok(&["--json", "job", "list"]).json();
    let states: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap(), j["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, vec![("wordcount", "succeeded"); 2]);
    // `job status` is the status `submit --wait` printed, and every task attempt besides.
    let mut again = weft.ok(&["--json", "job", "status", &id]).json();
    let tasks = again.as_object_mut().unwrap().remove("tasks").unwrap();
    assert_eq!(again, status);
    assert_eq!(
        tasks.as_array().map(|t| t.len() as u64),
        status["usage"]["attempts"].as_u64()
    );
    // Word count writes nothing to stdout or stderr.
    let logs = weft.ok(&["--json", "job", "logs", &id]).json();
    assert_eq!(logs, serde_json::json!([]));
    // Unknown jobs and commands that need a cluster say so.
    let err = weft.run(&["job", "status", "nope-1"]);
    assert_eq!(err.code(), Some(1));
    assert!(err.stderr().contains("no job nope-1"), "{}", err.stderr());
    let err = weft.run(&["cluster", "workers"]);
    assert!(err.stderr().contains("--scheduler"), "{}", err.stderr());
    let err = weft.run(&["worker", "--slots", "1"]);
    assert!(err.stderr().contains("--scheduler URL"), "{}", err.stderr());
    let err = weft.run(&["job", "logs", &id, "--task", "zero"]);
    assert!(err.stderr().contains("STAGE.PARTITION"), "{}", err.stderr());
}

/// A snapshot of every file under `dir` with its bytes, to show an input survived byte for byte.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push((entry.path(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn an_output_overlapping_the_input_is_refused_and_the_input_survives() {
    let weft = weft_with_examples();
    let data = weft.scratch("inputs");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let input = data.join("access.txt");
    std::fs::write(&input, "one two two\n").unwrap();
    std::fs::write(data.join("sub/notes.txt"), "keep me\n").unwrap();
    std::os::unix::fs::symlink(&data, weft.scratch("alias")).unwrap();
    let before = tree(&data);
    let wordcount = example_job("wordcount");
    let data_s = path(&data).to_owned();
    let input_s = path(&input).to_owned();
    let cases: Vec<(String, String, &str)> = vec![
        // (input, output, relation)
        (data_s.clone(), data_s.clone(), "is"),
        (input_s.clone(), data_s.clone(), "contains"),
        (input_s.clone(), input_s.clone(), "is"),
        (data_s.clone(), format!("{data_s}/sub/.."), "is"),
        (input_s.clone(), format!("{data_s}/sub/../.."), "contains"),
        (data_s.clone(), format!("{data_s}/out"), "lies inside"),
        (
            data_s.clone(),
            path(&weft.scratch("alias")).to_owned(),
            "is",
        ),
        (
            data_s.clone(),
            path(&weft.scratch("alias/new")).to_owned(),
            "lies inside",
        ),
        (
            format!("{data_s}/*.txt"),
            path(&weft.scratch("")).to_owned(),
            "contains",
        ),
    ];
    for (input, output, relation) in &cases {
        for command in [&["run"][..], &["job", "submit"], &["plan"]] {
            let mut args = command.to_vec();
            args.extend([&wordcount[..], "--input", input, "--output", output]);
            if command[0] != "plan" {
                args.push("--overwrite");
            }
            let needle = format!(" {relation} input ");
            assert_failed(&weft.run(&args), &["--output", &needle, "apart"]);
        }
    }
    assert!(tree(&data) == before, "the input changed");
    let outputs: Vec<_> = std::fs::read_dir(weft.scratch(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !["inputs", "alias", "data"].contains(&name.as_str()))
        .collect();
    assert!(outputs.is_empty(), "{outputs:?}");

    // `--overwrite` on a directory Weft did not write is refused, naming what is in it.
    let userdir = weft.scratch("userdir");
    std::fs::create_dir(&userdir).unwrap();
    std::fs::write(userdir.join("important.txt"), "precious").unwrap();
    let run = weft.run(&[
        "run",
        &wordcount,
        "--input",
        &input_s,
        "--output",
        path(&userdir),
        "--overwrite",
    ]);
    assert_failed(&run, &["important.txt", "not an output Weft committed"]);
    assert_eq!(
        std::fs::read(userdir.join("important.txt")).unwrap(),
        b"precious"
    );
}

#[test]
fn a_failed_rerun_with_overwrite_keeps_the_previous_output() {
    let weft = weft_with_examples();
    let input = weft.scratch("in.txt");
    std::fs::write(&input, "a b b\n").unwrap();
    let out = weft.scratch("out");
    let wordcount = example_job("wordcount");
    weft.ok(&[
        "run",
        &wordcount,
        "--input",
        path(&input),
        "--output",
        path(&out),
    ]);
    let before = tree(&out);
    // The rerun fails: its UDF returns an error on this input.
    let failing = job_with_step(&weft, r#"map = "textkit/fail_on_boom""#);
    std::fs::write(&input, "boom\n").unwrap();
    let run = weft.run(&[
        "run",
        path(&failing),
        "--input",
        path(&input),
        "--output",
        path(&out),
        "--overwrite",
    ]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(tree(&out) == before, "the previous output changed");
    let siblings: Vec<String> = std::fs::read_dir(weft.scratch(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(siblings.is_empty(), "{siblings:?}");
}

#[test]
fn malformed_records_fail_skip_or_quarantine_with_exact_counts_and_lines() {
    let weft = weft_with_examples();
    let bad_lines = [17u64, 250, 251, 999];
    let mut text = String::new();
    for line in 1..=1000u64 {
        if bad_lines.contains(&line) {
            text.push_str(&format!("{{\"broken\": {line}\n"));
        } else {
            text.push_str(&format!("{{\"n\":{line}}}\n"));
        }
    }
    let input = weft.scratch("events.jsonl");
    std::fs::write(&input, &text).unwrap();
    let job = |mode: &str| {
        job_file(
            &weft,
            &format!("{mode}.toml"),
            &format!(
                "name = \"events\"\n[input]\npath = {:?}\nformat = \"jsonl\"\nsplit_size = 2000\n\
                 on_error = \"{mode}\"\n[[step]]\nmap = \"textkit/echo\"\n[output]\npath = \"out-{mode}\"\n",
                path(&input)
            ),
        )
    };

    // fail: the job fails naming the file, the line and its start.
    let run = weft.run(&["run", path(&job("fail")), "--workers", "1"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        bad_lines
            .iter()
            .any(|l| stderr.contains(&format!("{}:{l}: not valid JSON", path(&input))))
            && stderr.contains("\"{\\\"broken\\\": "),
        "{stderr}"
    );

    for mode in ["skip", "quarantine"] {
        let report = weft
            .ok(&["--json", "run", path(&job(mode)), "--workers", "2"])
            .json();
        let stage = &report["stages"][0];
        assert_eq!(stage["records_skipped"], 4, "{report:#}");
        assert_eq!(stage["records_in"], 996, "{report:#}");
        let out = weft.scratch(&format!("out-{mode}"));
        assert_eq!(read_output(&out).len(), 996);
        let status = weft
            .ok(&[
                "--json",
                "job",
                "status",
                report["job_id"].as_str().unwrap(),
            ])
            .json();
        assert_eq!(status["stages"][0]["records_skipped"], 4, "{status:#}");
        let quarantine = out.join("_bad_records");
        if mode == "skip" {
            assert!(!quarantine.exists());
            continue;
        }
        let mut kept: Vec<(u64, String)> = Vec::new();
        for entry in std::fs::read_dir(&quarantine).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                let bad: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(bad["file"], path(&input), "{bad}");
                assert!(
                    bad["reason"]
                        .as_str()
                        .unwrap()
                        .starts_with("not valid JSON")
                );
                kept.push((
                    bad["line"].as_u64().unwrap(),
                    bad["record"].as_str().unwrap().to_owned(),
                ));
            }
        }
        kept.sort();
        let want: Vec<(u64, String)> = bad_lines
            .iter()
            .map(|&l| (l, format!("{{\"broken\": {l}")))
            .collect();
        assert_eq!(kept, want);
        // The text report says so, and a quarantined output may be replaced.
        let text = weft
            .ok(&["run", path(&job(mode)), "--workers", "2", "--overwrite"])
            .stdout();
        assert!(
            text.contains("skipped 4 malformed input records, kept in"),
            "{text}"
        );
    }
}
