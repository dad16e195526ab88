//! The in-process cluster ([`LocalCluster`]: a scheduler and two workers talking gRPC over
//! loopback) running whole jobs over generated data, each result compared with a reference
//! computed independently of Weft: word count over a 20 MiB corpus for 1, 2 and 7 input splits and
//! 1 and 5 output partitions, stocks' max volume by symbol (comma- and semicolon-delimited), narrow
//! steps fused before a reduce, a group_reduce inverted index, and a reduce over a million records
//! grouped in parts.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use weft_host::UdfKind;
use weft_local::{LocalCluster, LocalClusterConfig};
use weft_scheduler::job::{self, Plan, StageOutput, Submission};
use weft_scheduler::{JobReport, Tenant};
use weft_testkit::output::{assert_same_map, counts_of, part_files, read_output};
use weft_testkit::reference::{is_separator, max_volumes, word_counts};
use weft_testkit::registry::shared_examples_registry;

/// A generated input file, written once per test binary, with what the references need.
struct Corpus {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Corpus {
    fn new(name: &str, bytes: Vec<u8>) -> Corpus {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        Corpus {
            _dir: dir,
            path,
            bytes,
        }
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The records a text reader makes: one per line, and the last line has no newline.
    fn lines(&self) -> u64 {
        let newlines = self.bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        newlines + u64::from(!self.bytes.ends_with(b"\n"))
    }
}

/// The corpus of the word-count matrix: at least 20 MB, so that the splits of the 7-way case are
/// still megabytes and cut through long lines and CRLF endings.
fn big_corpus() -> &'static (Corpus, HashMap<Vec<u8>, u64>) {
    static CORPUS: OnceLock<(Corpus, HashMap<Vec<u8>, u64>)> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let corpus = Corpus::new("big.txt", weft_datagen::wordcount_corpus(20 << 20, 1));
        let counts = word_counts(&corpus.bytes);
        (corpus, counts)
    })
}

/// A smaller corpus for the jobs whose reference is costlier (it still has a 100 KiB line).
fn small_corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| Corpus::new("small.txt", weft_datagen::wordcount_corpus(1 << 20, 2)))
}

/// A cluster of two workers with one slot each, and its work directory.
async fn start() -> (tempfile::TempDir, LocalCluster) {
    let work = tempfile::tempdir().unwrap();
    let config = LocalClusterConfig {
        workers: 2,
        slots_per_worker: 1,
        ..LocalClusterConfig::new(work.path())
    };
    let cluster = LocalCluster::start(shared_examples_registry(), config)
        .await
        .unwrap_or_else(|e| panic!("cannot start the cluster: {e}"));
    (work, cluster)
}

/// A job file of `text` in `dir`, submitted as `weft run` submits it.
fn submission(dir: &Path, text: &str) -> Submission {
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    Submission::from_file(&path, None, None, false).unwrap()
}

/// What the scheduler of a default local cluster (two single-slot workers) plans for `submission`.
fn plan(submission: &Submission) -> Plan {
    let slots = job::AutoSplit::Slots(2);
    job::prepare(
        &shared_examples_registry(),
        &Tenant::default(),
        submission,
        slots,
    )
    .unwrap_or_else(|e| panic!("{}", weft_task::error_chain(&e)))
}

async fn run(cluster: &mut LocalCluster, submission: &Submission) -> JobReport {
    cluster
        .run(&Tenant::default(), submission.clone())
        .await
        .unwrap_or_else(|e| panic!("job failed: {}", weft_task::error_chain(&e)))
}

/// Every record of a committed text output that must have exactly `parts` part files.
fn output_of(dir: &Path, parts: u32) -> HashMap<Vec<u8>, Vec<u8>> {
    let want: Vec<String> = (0..parts).map(|i| format!("part-{i:05}")).collect();
    assert_eq!(part_files(dir), want, "part files of {}", dir.display());
    read_output(dir)
}

/// A job file: `input` as text in splits of `split_size`, then `steps` (TOML), written to `output`
/// in `partitions` parts.
fn job_text(
    name: &str,
    input: &Path,
    split_size: u64,
    steps: &str,
    output: &Path,
    partitions: u32,
) -> String {
    format!(
        "name = {name:?}\n\
         [input]\npath = {:?}\nsplit_size = {split_size}\n\
         {steps}\n\
         [output]\npath = {:?}\npartitions = {partitions}\n",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
    )
}

const WORDCOUNT_STEPS: &str = "[[step]]\nflat_map = \"wordcount/split_words\"\n\
                               [[step]]\nreduce = \"wordcount/sum\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn wordcount_equals_the_reference_for_1_2_7_splits_and_1_5_partitions() {
    let (corpus, want) = big_corpus();
    assert!(corpus.size() >= 20_000_000);
    let (_work, mut cluster) = start().await;
    let out = tempfile::tempdir().unwrap();
    for splits in [1u32, 2, 7] {
        let split_size = corpus.size().div_ceil(u64::from(splits));
        for partitions in [1u32, 5] {
            let case = format!("{splits} splits, {partitions} partitions");
            let output = out.path().join(format!("s{splits}-p{partitions}"));
            let text = job_text(
                "wordcount",
                &corpus.path,
                split_size,
                WORDCOUNT_STEPS,
                &output,
                partitions,
            );
            let job = submission(out.path(), &text);
            let plan = plan(&job);
            assert_eq!(plan.stages.len(), 2, "{case}");
            assert_eq!(plan.stages[0].tasks, splits, "{case}");
            assert_eq!(plan.stages[1].tasks, partitions, "{case}");

            let report = run(&mut cluster, &job).await;
            assert_eq!(report.output, output, "{case}");
            assert_same_map(&counts_of(output_of(&output, partitions)), want, &case);

            let [map, reduce] = &report.stages[..] else {
                panic!("{case}: {} stage reports", report.stages.len());
            };
            assert_eq!((map.stage, map.tasks), (0, splits), "{case}");
            assert_eq!((reduce.stage, reduce.tasks), (1, partitions), "{case}");
            assert_eq!(map.records_in, corpus.lines(), "{case}: lines read");
            assert_eq!(reduce.records_out, want.len() as u64, "{case}: words");
            // Two workers, one slot each, several map tasks: some reduce task fetched a block
            // written by the other worker.
            if splits >= 2 {
                assert!(
                    reduce.remote_fetches > 0,
                    "{case}: no shuffle block crossed workers: {report:?}"
                );
            }
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stocks_max_volume_by_symbol_equals_the_reference() {
    let comma = weft_datagen::stocks_csv(60_000, 7);
    let (_work, mut cluster) = start().await;
    let out = tempfile::tempdir().unwrap();
    // The same quotes comma-separated, and semicolon-separated as a `delimiter = ";"` job reads
    // them: the reader hands the UDF every row comma-separated, so one UDF gives both the exact
    // answer. (Before the delimiter reached the reader, the second job failed: its rows reached
    // the UDF whole, as one field.)
    let semicolon: Vec<u8> = comma
        .iter()
        .map(|&b| if b == b',' { b';' } else { b })
        .collect();
    for (name, csv, delimiter) in [("comma", comma, ','), ("semicolon", semicolon, ';')] {
        let want = max_volumes(&csv, delimiter as u8);
        let input = Corpus::new("quotes.csv", csv);
        let output = out.path().join(name);
        // Three splits: only the first holds the header.
        let text = format!(
            "name = \"stocks\"\n\
             [input]\npath = {:?}\nformat = \"csv\"\nheader = true\ndelimiter = \"{delimiter}\"\n\
             split_size = {}\n\
             [[step]]\nflat_map = \"stocks/parse\"\n[[step]]\nreduce = \"stocks/max\"\n\
             [output]\npath = {:?}\npartitions = 3\n",
            input.path.to_str().unwrap(),
            input.size().div_ceil(3),
            output.to_str().unwrap(),
        );
        let job = submission(out.path(), &text);
        assert_eq!(plan(&job).stages[0].tasks, 3);
        run(&mut cluster, &job).await;
        assert_same_map(&counts_of(output_of(&output, 3)), &want, name);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn map_filter_flat_map_fuse_before_a_reduce() {
    let corpus = small_corpus();
    let (_work, mut cluster) = start().await;
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("upper-counts");
    let steps = "[[step]]\nmap = \"textkit/upper\"\n\
                 [[step]]\nfilter = \"textkit/non_empty\"\n\
                 [[step]]\nflat_map = \"wordcount/split_words\"\n\
                 [[step]]\nreduce = \"wordcount/sum\"\n";
    let text = job_text(
        "fused",
        &corpus.path,
        corpus.size().div_ceil(3),
        steps,
        &output,
        2,
    );
    let job = submission(out.path(), &text);
    let plan = plan(&job);
    assert_eq!(plan.stages.len(), 2, "{plan}");
    let kinds: Vec<UdfKind> = plan.stages[0].steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [UdfKind::Map, UdfKind::Filter, UdfKind::FlatMap],
        "{plan}"
    );
    assert!(
        matches!(&plan.stages[0].output, StageOutput::Shuffle { combiner: Some(c), .. } if c.function == "sum"),
        "{plan}"
    );

    let report = run(&mut cluster, &job).await;
    // `upper` upper-cases ASCII letters only; `non_empty` drops lines without words, which
    // changes no count.
    let want = word_counts(&corpus.bytes.to_ascii_uppercase());
    assert_same_map(&counts_of(output_of(&output, 2)), &want, "fused");
    assert_eq!(report.stages[0].records_in, corpus.lines());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn group_reduce_builds_an_inverted_index() {
    let corpus = small_corpus();
    // The reference: each word with the sorted distinct ids of the lines it occurs on, a line's id
    // being the text reader's key, "PATH:BYTE_OFFSET".
    let prefix = format!("{}:", corpus.path.to_str().unwrap());
    let mut index: HashMap<Vec<u8>, BTreeSet<Vec<u8>>> = HashMap::new();
    let mut offset = 0;
    for line in corpus.bytes.split(|&b| b == b'\n') {
        let id = format!("{prefix}{offset}").into_bytes();
        for word in line.split(|&b| is_separator(b)).filter(|w| !w.is_empty()) {
            index.entry(word.to_vec()).or_default().insert(id.clone());
        }
        offset += line.len() + 1;
    }
    let want: HashMap<Vec<u8>, Vec<u8>> = index
        .into_iter()
        .map(|(word, ids)| (word, ids.into_iter().collect::<Vec<_>>().join(&b","[..])))
        .collect();

    let (_work, mut cluster) = start().await;
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("index");
    let steps = "[[step]]\nflat_map = \"textkit/words_with_line\"\n\
                 [[step]]\ngroup_reduce = \"textkit/distinct_sorted\"\n";
    let text = job_text(
        "inverted-index",
        &corpus.path,
        corpus.size().div_ceil(3),
        steps,
        &output,
        4,
    );
    let job = submission(out.path(), &text);
    let plan = plan(&job);
    // A group_reduce sees all values of a key at once: no combiner.
    assert!(
        matches!(
            &plan.stages[0].output,
            StageOutput::Shuffle {
                combiner: None,
                partitions: 4,
                ..
            }
        ),
        "{plan}"
    );
    run(&mut cluster, &job).await;
    assert_same_map(&output_of(&output, 4), &want, "inverted index");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shuffle_blocks_cross_workers() {
    let corpus = small_corpus();
    let (_work, mut cluster) = start().await;
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("counts");
    // Four map tasks on two single-slot workers: both workers write shuffle blocks, so each reduce
    // task finds some of its blocks on the other worker, and fetches them over gRPC.
    let text = job_text(
        "cross",
        &corpus.path,
        corpus.size().div_ceil(4),
        WORDCOUNT_STEPS,
        &output,
        2,
    );
    let job = submission(out.path(), &text);
    assert_eq!(plan(&job).stages[0].tasks, 4);
    let report = run(&mut cluster, &job).await;
    assert!(
        report.stages[1].remote_fetches > 0,
        "no shuffle block crossed workers: {report:?}"
    );
    assert_eq!(
        report.stages[0].remote_fetches, 0,
        "stage 0 reads no shuffle"
    );
    assert_same_map(
        &counts_of(output_of(&output, 2)),
        &word_counts(&corpus.bytes),
        "cross",
    );
    cluster.shutdown().await;
}

/// Word count with each shuffle codec: the exact counts every time, so the codec travelled from the
/// job file through the plan and the protocol to the writing workers, and blocks fetched from the
/// other worker decode too; and the compressed shuffles are smaller, so the files were compressed.
#[tokio::test(flavor = "multi_thread")]
async fn wordcount_is_exact_with_each_shuffle_compression() {
    let corpus = small_corpus();
    let want = word_counts(&corpus.bytes);
    let (_work, mut cluster) = start().await;
    let out = tempfile::tempdir().unwrap();
    let mut shuffled = Vec::new();
    for codec in ["none", "lz4", "zstd"] {
        let output = out.path().join(codec);
        let text = format!(
            "{}[shuffle]\ncompression = \"{codec}\"\n",
            job_text(
                "wordcount",
                &corpus.path,
                corpus.size().div_ceil(3),
                WORDCOUNT_STEPS,
                &output,
                3,
            )
        );
        let job = submission(out.path(), &text);
        let plan = plan(&job);
        let StageOutput::Shuffle { compression, .. } = &plan.stages[0].output else {
            panic!("{plan}")
        };
        assert_eq!(compression.name(), codec);
        let report = run(&mut cluster, &job).await;
        assert_same_map(&counts_of(output_of(&output, 3)), &want, codec);
        let [map, reduce] = &report.stages[..] else {
            panic!("{codec}: {report:?}");
        };
        assert!(reduce.remote_fetches > 0, "{codec}: {report:?}");
        // What the reducers read is what the mappers wrote.
        assert_eq!(map.bytes_out, reduce.bytes_in, "{codec}");
        shuffled.push(map.bytes_out);
    }
    let [none, lz4, zstd] = shuffled[..] else {
        unreachable!()
    };
    assert!(lz4 < none && zstd < none, "shuffle bytes: {shuffled:?}");
    cluster.shutdown().await;
}

/// A reduce task over more records than a cache-sized part holds scatters them into parts by key
/// and groups part after part (`weft_worker::radix`): the 1 GB shuffle-heavy job's reduce path,
/// taken here at the default part size through real workers, a real shuffle and gRPC fetches.
/// The corpus has 600 000 distinct six-letter words, word `i` occurring `i % 3 + 1` times, in an
/// order that scatters each word's occurrences over both splits: the one reduce task gets each
/// word once or twice, about a million records, and every count is known without Weft.
#[tokio::test(flavor = "multi_thread")]
async fn a_reduce_over_a_million_records_groups_in_parts_and_stays_exact() {
    const DISTINCT: u64 = 600_000;
    let word = |i: u64| -> Vec<u8> {
        // Six base-26 letters of `i` times an odd constant: distinct for distinct `i < 26^6`.
        let mut n = i.wrapping_mul(0x9E37_79B9) % 26u64.pow(6);
        (0..6)
            .map(|_| {
                let letter = b'a' + (n % 26) as u8;
                n /= 26;
                letter
            })
            .collect()
    };
    let mut want = HashMap::new();
    let mut occurrences = Vec::new();
    for i in 0..DISTINCT {
        let count = i % 3 + 1;
        want.insert(word(i), count);
        occurrences.extend(std::iter::repeat_n(i, count as usize));
    }
    assert_eq!(want.len() as u64, DISTINCT, "the generator repeats a word");
    // A fixed permutation of the occurrences (stride coprime to their number) spreads each word's
    // occurrences far apart, so most land in both splits.
    let n = occurrences.len();
    let stride = (1..).map(|k| n / 2 + k).find(|s| gcd(*s, n) == 1).unwrap();
    let mut text = Vec::with_capacity(n * 7);
    for (j, k) in (0..n).map(|j| (j, j * stride % n)) {
        text.extend_from_slice(&word(occurrences[k]));
        text.push(if j % 10 == 9 { b'\n' } else { b' ' });
    }
    let corpus = Corpus::new("distinct.txt", text);

    let (_work, mut cluster) = start().await;
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("counts");
    let job = submission(
        out.path(),
        &job_text(
            "parts",
            &corpus.path,
            corpus.size().div_ceil(2),
            WORDCOUNT_STEPS,
            &output,
            1,
        ),
    );
    let report = run(&mut cluster, &job).await;
    assert_same_map(&counts_of(output_of(&output, 1)), &want, "parts");
    let reduce = &report.stages[1];
    assert!(
        reduce.records_in >= 2 * weft_worker::RECORDS_PER_PART,
        "too few records for parts: {report:?}"
    );
    let (partitioned, parts) = cluster.workers().iter().fold((0, 0), |(p, n), worker| {
        let stats = worker.executor_stats();
        (p + stats.partitioned_reduces, n + stats.reduce_parts)
    });
    assert_eq!(partitioned, 1, "the reduce task did not group in parts");
    assert!(parts >= 2, "{parts} parts");
    cluster.shutdown().await;
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
