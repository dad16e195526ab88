//! The same job with the UDFs compiled natively: a word count through [`LocalCluster`] (scheduler,
//! two workers, gRPC, shuffle) with `GuestModule::native` preloaded under the wasm module's id must
//! give the reference counts, and the workers must never have compiled the wasm module.

use std::collections::HashMap;
use std::path::Path;

use weft_guest::native_udfs;
use weft_host::{Engine, GuestModule, ValidationLimits};
use weft_scheduler::job::{InputFile, JobSpec};
use weft_scheduler::{LocalCluster, LocalClusterConfig, ModuleId, Registry, Tenant};

/// The reference word count: maximal runs of bytes other than C's `isspace` set.
fn word_counts(text: &[u8]) -> HashMap<Vec<u8>, u64> {
    let mut counts = HashMap::new();
    for word in text
        .split(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r'))
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_vec()).or_insert(0) += 1;
    }
    counts
}

/// Every `word<TAB>count` line of the committed output's part files.
fn read_counts(dir: &Path) -> HashMap<Vec<u8>, u64> {
    assert!(
        dir.join("_SUCCESS").is_file(),
        "no _SUCCESS in {}",
        dir.display()
    );
    let mut counts = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("part-")
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line.iter().position(|&b| b == b'\t').expect("a TAB");
            let count = std::str::from_utf8(&line[tab + 1..])
                .unwrap()
                .parse()
                .unwrap();
            let word = line[..tab].to_vec();
            assert!(
                counts.insert(word, count).is_none(),
                "a word twice in the output"
            );
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn wordcount_with_native_udfs_preloaded_gives_the_reference_counts() {
    let tenant = Tenant::default();
    let registry_dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(registry_dir.path()).unwrap();
    let wasm = std::fs::read(weft_examples::WORDCOUNT_RUST).unwrap();
    let validated = Engine::new()
        .unwrap()
        .validate(&wasm, &ValidationLimits::default())
        .unwrap();
    registry
        .register(&tenant, "wordcount", &validated, &[])
        .unwrap();
    let registry = std::sync::Arc::new(registry);

    let native = GuestModule::native(&native_udfs![
        weft_example_wordcount::split_words,
        weft_example_wordcount::sum
    ])
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = LocalClusterConfig {
        workers: 2,
        slots_per_worker: 1,
        preloaded: vec![(ModuleId::of(&wasm).to_string(), native)],
        ..LocalClusterConfig::default()
    };
    let cluster = LocalCluster::start(registry.clone(), work.path(), config)
        .await
        .unwrap();

    // Several splits and partitions, so both workers map, shuffle and reduce.
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("corpus.txt");
    let text = weft_datagen::wordcount_corpus(3 << 20, 5);
    std::fs::write(&input, &text).unwrap();
    let output = data.path().join("out");
    let job = format!(
        "name = \"wordcount\"\n\
         [input]\npath = {:?}\nsplit_size = {}\n\
         [[step]]\nflat_map = \"wordcount/split_words\"\n\
         [[step]]\nreduce = \"wordcount/sum\"\n\
         [output]\npath = {:?}\npartitions = 3\n",
        input.to_str().unwrap(),
        text.len().div_ceil(4),
        output.to_str().unwrap(),
    );
    let plan = JobSpec::parse(&job, Path::new("job.toml"))
        .unwrap()
        .resolve(&registry, &tenant)
        .unwrap()
        .plan(&[InputFile::from((input.clone(), text.len() as u64))])
        .unwrap();
    let report = cluster.run(&tenant, &plan, false).await.unwrap();
    assert_eq!(report.stages[0].tasks, 4);

    let want = word_counts(&text);
    let got = read_counts(&output);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the counts differ from the reference");

    // The native module ran: no worker compiled (or loaded) the wasm module it stands in for.
    for worker in cluster.workers() {
        let stats = worker.executor_stats();
        assert_eq!((stats.compiles, stats.disk_hits), (0, 0), "{stats:?}");
    }
    assert!(
        cluster
            .workers()
            .iter()
            .any(|w| w.executor_stats().memory_hits > 0)
    );
    cluster.shutdown().await;
}
