//! The in-process cluster ([`LocalCluster`]: a scheduler and two workers talking gRPC over
//! loopback) running whole jobs over generated data, each result compared with a reference
//! computed here, independently of Weft: word count over a 20 MiB corpus for 1, 2 and 7 input
//! splits and 1 and 5 output partitions, stocks' max volume by symbol, narrow steps fused before a
//! reduce, and a group_reduce inverted index.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use weft_host::{Engine, UdfKind, ValidationLimits};
use weft_scheduler::job::{InputFile, JobSpec, Plan, StageOutput};
use weft_scheduler::{JobReport, LocalCluster, LocalClusterConfig};
use weft_scheduler::{Registry, Tenant};

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

/// The corpus of the word-count matrix: at least 20 MB, as the issue asks, so that the splits of
/// the 7-way case are still megabytes and cut through long lines and CRLF endings.
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

/// A registry holding the example modules, shared by every cluster of this file.
fn registry() -> Arc<Registry> {
    static REGISTRY: OnceLock<(tempfile::TempDir, Arc<Registry>)> = OnceLock::new();
    let (_, registry) = REGISTRY.get_or_init(|| {
        let engine = Engine::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        for (name, path) in [
            ("wordcount", weft_examples::WORDCOUNT_RUST),
            ("stocks", weft_examples::STOCKS_RUST),
            ("textkit", weft_examples::TEXTKIT_RUST),
        ] {
            let bytes = std::fs::read(path).unwrap();
            let module = engine
                .validate(&bytes, &ValidationLimits::default())
                .unwrap();
            registry
                .register(&Tenant::default(), name, &module, &[])
                .unwrap();
        }
        (dir, Arc::new(registry))
    });
    Arc::clone(registry)
}

/// A cluster of two workers with one slot each, and its work directory.
async fn start() -> (tempfile::TempDir, LocalCluster) {
    let work = tempfile::tempdir().unwrap();
    let config = LocalClusterConfig {
        workers: 2,
        slots_per_worker: 1,
        ..LocalClusterConfig::default()
    };
    let cluster = LocalCluster::start(registry(), work.path(), config)
        .await
        .unwrap_or_else(|e| panic!("cannot start the cluster: {e}"));
    (work, cluster)
}

/// Parses, resolves and plans a job file's text over its one input file.
fn plan(text: &str, input: &Path) -> Plan {
    let spec = JobSpec::parse(text, Path::new("job.toml")).unwrap_or_else(|e| panic!("{e}"));
    let job = spec
        .resolve(&registry(), &Tenant::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let size = std::fs::metadata(input).unwrap().len();
    job.plan(&[InputFile::from((input.to_owned(), size))])
        .unwrap()
}

async fn run(cluster: &LocalCluster, plan: &Plan) -> JobReport {
    cluster
        .run(&Tenant::default(), plan, false)
        .await
        .unwrap_or_else(|e| panic!("job {} failed: {e}", plan.job_name))
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

/// The word separators of the word-count example (C's `isspace`).
fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// The reference word count.
fn word_counts(text: &[u8]) -> HashMap<Vec<u8>, u64> {
    let mut counts = HashMap::new();
    for word in text.split(|&b| is_separator(b)).filter(|w| !w.is_empty()) {
        *counts.entry(word.to_vec()).or_insert(0) += 1;
    }
    counts
}

/// Every `key<TAB>value` line of a committed text output of `parts` part files; a key in two
/// parts, or twice in one, is a failure.
fn read_output(dir: &Path, parts: u32) -> HashMap<Vec<u8>, Vec<u8>> {
    assert!(
        dir.join("_SUCCESS").is_file(),
        "{} has no _SUCCESS",
        dir.display()
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("part-"))
        .collect();
    names.sort();
    let want: Vec<String> = (0..parts).map(|i| format!("part-{i:05}")).collect();
    assert_eq!(names, want, "part files of {}", dir.display());

    let mut records = HashMap::new();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line.iter().position(|&b| b == b'\t').expect("a TAB");
            let key = line[..tab].to_vec();
            let shown = String::from_utf8_lossy(&key).into_owned();
            assert!(
                records.insert(key, line[tab + 1..].to_vec()).is_none(),
                "{name}: key {shown:?} seen twice"
            );
        }
    }
    records
}

fn counts_of(output: HashMap<Vec<u8>, Vec<u8>>) -> HashMap<Vec<u8>, u64> {
    output
        .into_iter()
        .map(|(k, v)| {
            let count = std::str::from_utf8(&v)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{:?} is not a count", String::from_utf8_lossy(&v)));
            (k, count)
        })
        .collect()
}

/// Equality of two large maps, reporting the first few differences rather than both maps.
fn assert_same<V: PartialEq + std::fmt::Debug>(
    got: &HashMap<Vec<u8>, V>,
    want: &HashMap<Vec<u8>, V>,
    what: &str,
) {
    if got == want {
        return;
    }
    let mut diffs: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{:?}: want {}, got {}",
                String::from_utf8_lossy(k),
                shorten(format!("{v:?}")),
                shorten(format!("{:?}", got.get(k)))
            )
        })
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{:?}: unexpected", String::from_utf8_lossy(k))),
        )
        .collect();
    diffs.sort();
    diffs.truncate(10);
    panic!(
        "{what}: {} keys wanted, {} got; first differences:\n{}",
        want.len(),
        got.len(),
        diffs.join("\n")
    );
}

/// At most 120 characters of `text`: an inverted index's values run to megabytes.
fn shorten(text: String) -> String {
    match text.char_indices().nth(120) {
        Some((end, _)) => format!("{}... ({} bytes)", &text[..end], text.len()),
        None => text,
    }
}

const WORDCOUNT_STEPS: &str = "[[step]]\nflat_map = \"wordcount/split_words\"\n\
                               [[step]]\nreduce = \"wordcount/sum\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn wordcount_equals_the_reference_for_1_2_7_splits_and_1_5_partitions() {
    let (corpus, want) = big_corpus();
    assert!(corpus.size() >= 20_000_000);
    let (_work, cluster) = start().await;
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
            let plan = plan(&text, &corpus.path);
            assert_eq!(plan.stages.len(), 2, "{case}");
            assert_eq!(plan.stages[0].tasks, splits, "{case}");
            assert_eq!(plan.stages[1].tasks, partitions, "{case}");

            let report = run(&cluster, &plan).await;
            assert_eq!(report.output, output, "{case}");
            assert_same(&counts_of(read_output(&output, partitions)), want, &case);

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
    let csv = weft_datagen::stocks_csv(60_000, 7);
    let mut want: HashMap<Vec<u8>, u64> = HashMap::new();
    for line in std::str::from_utf8(&csv).unwrap().lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let max = want.entry(fields[0].as_bytes().to_vec()).or_insert(0);
        *max = (*max).max(fields[6].parse().unwrap());
    }
    let input = Corpus::new("quotes.csv", csv);

    let (_work, cluster) = start().await;
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("max-volume");
    // Three splits: only the first holds the header.
    let text = format!(
        "name = \"stocks\"\n\
         [input]\npath = {:?}\nformat = \"csv\"\nheader = true\nsplit_size = {}\n\
         [[step]]\nflat_map = \"stocks/parse\"\n[[step]]\nreduce = \"stocks/max\"\n\
         [output]\npath = {:?}\npartitions = 3\n",
        input.path.to_str().unwrap(),
        input.size().div_ceil(3),
        output.to_str().unwrap(),
    );
    let plan = plan(&text, &input.path);
    assert_eq!(plan.stages[0].tasks, 3);
    run(&cluster, &plan).await;
    assert_same(&counts_of(read_output(&output, 3)), &want, "stocks");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn map_filter_flat_map_fuse_before_a_reduce() {
    let corpus = small_corpus();
    let (_work, cluster) = start().await;
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
    let plan = plan(&text, &corpus.path);
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

    let report = run(&cluster, &plan).await;
    // `upper` upper-cases ASCII letters only; `non_empty` drops lines without words, which
    // changes no count.
    let want = word_counts(&corpus.bytes.to_ascii_uppercase());
    assert_same(&counts_of(read_output(&output, 2)), &want, "fused");
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

    let (_work, cluster) = start().await;
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
    let plan = plan(&text, &corpus.path);
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
    run(&cluster, &plan).await;
    assert_same(&read_output(&output, 4), &want, "inverted index");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shuffle_blocks_cross_workers() {
    let corpus = small_corpus();
    let (_work, cluster) = start().await;
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
    let plan = plan(&text, &corpus.path);
    assert_eq!(plan.stages[0].tasks, 4);
    let report = run(&cluster, &plan).await;
    assert!(
        report.stages[1].remote_fetches > 0,
        "no shuffle block crossed workers: {report:?}"
    );
    assert_eq!(
        report.stages[0].remote_fetches, 0,
        "stage 0 reads no shuffle"
    );
    assert_same(
        &counts_of(read_output(&output, 2)),
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
    let (_work, cluster) = start().await;
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
        let plan = plan(&text, &corpus.path);
        let StageOutput::Shuffle { compression, .. } = &plan.stages[0].output else {
            panic!("{plan}")
        };
        assert_eq!(compression.name(), codec);
        let report = run(&cluster, &plan).await;
        assert_same(&counts_of(read_output(&output, 3)), &want, codec);
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
