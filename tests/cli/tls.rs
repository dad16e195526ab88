//! TLS on every listener: a scheduler and two workers serving `https://` with certificates this
//! test generates (a CA, and a certificate for 127.0.0.1 it signed), a word count across them with
//! the exact answer (its shuffle crosses workers over TLS), and clients that do not trust the CA,
//! or speak plain HTTP, refused.

use crate::cluster::Cluster;
use crate::{assert_same_counts, counts_of, path, read_output, word_counts};

/// PEM files of a CA and of a server certificate for `localhost` and `127.0.0.1` it signed.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn generate() -> Certs {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf_cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        // A CA nobody used, for a client that trusts the wrong one.
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other = other.self_signed(&KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        path(&self.dir.path().join(name)).to_owned()
    }
}

#[test]
fn a_word_count_runs_over_tls_and_untrusting_clients_are_refused() {
    let certs = Certs::generate();
    let (cert, key, ca) = (
        certs.path("cert.pem"),
        certs.path("key.pem"),
        certs.path("ca.pem"),
    );
    let tls = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    let cluster = Cluster::start_with_env(2, &[("WEFT_TLS_CA", &ca)], &tls, &tls);
    assert!(cluster.url().starts_with("https://"), "{}", cluster.url());
    for worker in cluster.workers() {
        assert!(worker.url.starts_with("https://"), "{worker:?}");
    }

    let with_ca = [("WEFT_TLS_CA", ca.as_str())];
    let run = cluster.client_with_env(
        &with_ca,
        &[
            "module",
            "register",
            weft_examples::WORDCOUNT_RUST,
            "--name",
            "wordcount",
        ],
    );
    assert!(run.0.status.success(), "{}", run.stderr());
    let text: String = (0..2000)
        .map(|i| format!("over tls {} and {}\n", i % 31, i % 7))
        .collect();
    let input = cluster.write("in.txt", &text);
    let out = cluster.path("out");
    let job = cluster.write(
        "wc.toml",
        format!(
            "name = \"wc\"\n[input]\npath = {:?}\nsplit_size = \"8KB\"\n[[step]]\n\
             flat_map = \"wordcount/split_words\"\n[[step]]\nreduce = \"wordcount/sum\"\n\
             [output]\npath = {:?}\npartitions = 3\n",
            path(&input),
            path(&out)
        ),
    );
    let run = cluster.client_with_env(&with_ca, &["--json", "job", "submit", path(&job), "--wait"]);
    assert!(run.0.status.success(), "{}\n{}", run.stdout(), run.stderr());
    assert_same_counts(&counts_of(read_output(&out)), &word_counts(text.as_bytes()));
    let status = run.json();
    let remote: u64 = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["remote_fetches"].as_u64().unwrap())
        .sum();
    assert!(remote > 0, "no shuffle block crossed workers: {status:#}");

    // No CA, the wrong CA, or plain HTTP to a TLS port: refused.
    let no_ca = cluster.client(&["module", "list"]);
    assert!(!no_ca.0.status.success());
    let wrong = cluster.client_with_env(
        &[("WEFT_TLS_CA", certs.path("other-ca.pem").as_str())],
        &["module", "list"],
    );
    assert!(!wrong.0.status.success());
    assert!(
        wrong.stderr().contains("cannot reach the scheduler")
            || wrong.stderr().contains("certificate"),
        "{}",
        wrong.stderr()
    );
    let plain = cluster.url().replace("https://", "http://");
    let run = cluster.client_to(&plain, &with_ca, &["module", "list"]);
    assert!(
        !run.0.status.success(),
        "plain HTTP was answered: {}",
        run.stdout()
    );
}
