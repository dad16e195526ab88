//! The same job with the UDFs compiled natively: a word count through [`LocalCluster`] (scheduler,
//! two workers, gRPC, shuffle) with `GuestModule::native` preloaded under the wasm module's id must
//! give the reference counts, and the workers must never have compiled the wasm module.

use weft_guest::native_udfs;
use weft_host::GuestModule;
use weft_local::{LocalCluster, LocalClusterConfig};
use weft_scheduler::job::Submission;
use weft_scheduler::{ModuleId, Tenant};
use weft_testkit::output::{assert_same_map, counts_of, read_output};
use weft_testkit::reference::word_counts;
use weft_testkit::registry::examples_registry;

#[tokio::test(flavor = "multi_thread")]
async fn wordcount_with_native_udfs_preloaded_gives_the_reference_counts() {
    let tenant = Tenant::default();
    let registry_dir = tempfile::tempdir().unwrap();
    let registry = examples_registry(registry_dir.path());
    let wasm = std::fs::read(weft_examples::WORDCOUNT_RUST).unwrap();

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
        ..LocalClusterConfig::new(work.path())
    };
    let mut cluster = LocalCluster::start(registry, config).await.unwrap();

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
    let job_file = data.path().join("job.toml");
    std::fs::write(&job_file, job).unwrap();
    let submission = Submission::from_file(&job_file, None, None, false).unwrap();
    let report = cluster.run(&tenant, submission).await.unwrap();
    assert_eq!(report.stages[0].tasks, 4);
    assert_same_map(
        &counts_of(read_output(&output)),
        &word_counts(&text),
        "native",
    );

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
