//! Real CSV against Python's `csv` module as the reference: it writes the input (quoted fields,
//! `""` escapes, quoted newlines and CRs, the delimiter inside fields), computes the answer, and
//! reads Weft's CSV output back. The stocks example reads the `symbol` and `volume` columns by
//! name; splits of 64 bytes put boundaries inside quoted newlines. Embedded and on a cluster of
//! processes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::cluster::Cluster;
use crate::path;
use crate::run::weft_with_examples;

const SPLIT_SIZE: u64 = 64;
const ROWS: &str = "400";

fn python(args: &[&str]) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cli/reference/csv_reference.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "csv_reference.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The input's answer by Python: symbol → largest volume, as text.
fn expected(input: &Path, delimiter: &str) -> BTreeMap<String, String> {
    let json: BTreeMap<String, u64> =
        serde_json::from_str(&python(&["expect", path(input), delimiter])).unwrap();
    json.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

/// Weft's CSV output as Python reads it.
fn output(dir: &Path) -> BTreeMap<String, String> {
    serde_json::from_str(&python(&["read-output", path(dir)])).unwrap()
}

/// A stocks job over `input` with `delimiter`, writing CSV to `out`.
fn job_text(input: &Path, delimiter: &str, out: &Path) -> String {
    format!(
        "name = \"quotes\"\n[input]\npath = {:?}\nformat = \"csv\"\nheader = true\n\
         delimiter = {delimiter:?}\nsplit_size = {SPLIT_SIZE}\n[[step]]\nflat_map = \"stocks/parse\"\n\
         [[step]]\nreduce = \"stocks/max\"\npartitions = 3\n[output]\npath = {:?}\nformat = \"csv\"\n\
         partitions = 3\n",
        path(input),
        path(out)
    )
}

/// `(delimiter, line terminator, seed)` of each input.
const DIALECTS: [(&str, &str, &str); 3] =
    [(";", "\r\n", "1"), ("\t", "\n", "2"), (",", "\r\n", "3")];

#[test]
fn csv_is_read_as_python_reads_it_embedded() {
    let weft = weft_with_examples();
    for (delimiter, terminator, seed) in DIALECTS {
        let input = weft.scratch(&format!("quotes-{seed}.csv"));
        python(&["generate", path(&input), delimiter, seed, ROWS, terminator]);
        let want = expected(&input, delimiter);
        assert!(
            want.contains_key("NEW\nLINE") && want.contains_key("AC\"ME"),
            "{want:?}"
        );
        let out = weft.scratch(&format!("out-{seed}"));
        let job = weft.scratch(&format!("quotes-{seed}.toml"));
        std::fs::write(&job, job_text(&input, delimiter, &out)).unwrap();
        let plan = weft.ok(&["--json", "plan", path(&job)]).json();
        let size = std::fs::metadata(&input).unwrap().len();
        let tasks = plan["stages"][0]["tasks"].as_u64().unwrap();
        // Fewer splits than nominal only where a record outgrows a split (the long first note).
        assert!(
            tasks > size / SPLIT_SIZE / 2 && tasks <= size.div_ceil(SPLIT_SIZE),
            "{tasks} splits of {size} bytes"
        );
        weft.ok(&["run", path(&job), "--workers", "2"]);
        assert_eq!(output(&out), want, "delimiter {delimiter:?}");
    }
}

#[test]
fn csv_is_read_as_python_reads_it_on_a_cluster() {
    let cluster = Cluster::start(2);
    cluster.register("stocks", weft_examples::STOCKS_RUST);
    for (delimiter, terminator, seed) in DIALECTS {
        let input = cluster.path(&format!("quotes-{seed}.csv"));
        python(&["generate", path(&input), delimiter, seed, ROWS, terminator]);
        let want = expected(&input, delimiter);
        let out = cluster.path(&format!("out-{seed}"));
        let job = cluster.write(
            &format!("quotes-{seed}.toml"),
            job_text(&input, delimiter, &out),
        );
        // `plan` resolves against the cluster's registry, and leaves no local data directory.
        let plan = cluster.ok(&["plan", path(&job)]).stdout();
        assert!(plan.contains("stocks@1/parse"), "{plan}");
        assert!(!cluster.path("client-home").exists());
        let run = cluster.client(&["--json", "job", "submit", path(&job), "--wait"]);
        assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
        assert_eq!(output(&out), want, "delimiter {delimiter:?}");
    }
}
