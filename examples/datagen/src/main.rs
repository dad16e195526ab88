//! `weft-datagen`: writes the deterministic inputs of Weft's example jobs.
//!
//! ```sh
//! cargo run --release -p weft-datagen -- wordcount --bytes 20MB --seed 1 examples/wordcount/data/corpus.txt
//! cargo run --release -p weft-datagen -- stocks --rows 100000 --seed 1 examples/stocks/data/quotes.csv
//! ```
//!
//! `OUT` may be `-` for stdout. Parent directories are created; an existing file is replaced.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Writes the deterministic example data of Weft's jobs: the same arguments always give the same
/// bytes.
#[derive(Debug, Parser)]
#[command(name = "weft-datagen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Text for examples/wordcount: Zipf-distributed words (some multi-byte UTF-8), every ASCII
    /// whitespace byte, empty and blank lines, CRLF endings, very long lines, no final newline.
    Wordcount {
        /// Exact size of the corpus: a number with an optional unit (B, KB, MB, GB, KiB, MiB, GiB).
        #[arg(long, default_value = "20MB", value_parser = weft_datagen::parse_size)]
        bytes: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write it (`-` for stdout).
        #[arg(value_name = "OUT")]
        out: PathBuf,
    },
    /// CSV quotes for examples/stocks: a header, then symbol,date,open,high,low,close,volume rows
    /// for 500 symbols.
    Stocks {
        /// Rows after the header.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write it (`-` for stdout).
        #[arg(value_name = "OUT")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (data, out) = match cli.command {
        Command::Wordcount { bytes, seed, out } => {
            let Ok(bytes) = usize::try_from(bytes) else {
                eprintln!("error: {bytes} bytes do not fit in memory here");
                return ExitCode::FAILURE;
            };
            (weft_datagen::wordcount_corpus(bytes, seed), out)
        }
        Command::Stocks { rows, seed, out } => (weft_datagen::stocks_csv(rows, seed), out),
    };
    match write(&out, &data) {
        Ok(()) => {
            if out != Path::new("-") {
                eprintln!("wrote {} bytes to {}", data.len(), out.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot write {}: {error}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn write(out: &Path, data: &[u8]) -> std::io::Result<()> {
    if out == Path::new("-") {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(data)?;
        return stdout.flush();
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, data)
}
