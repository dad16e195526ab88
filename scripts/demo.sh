#!/usr/bin/env bash
# Sets up a fresh machine, builds Weft and the example guests from source, registers the examples
# in the data directory (WEFT_HOME, or the per-user default) and shows them, then generates a 20 MB
# corpus and runs the word count job over it (examples/wordcount/job.toml).
# Idempotent: registering the same bytes again changes nothing, the corpus is regenerated
# identically, and the job replaces its previous output (--overwrite).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "[demo] building weft and the example modules (release)" >&2
cargo build --release --locked -p weft -p weft-datagen
cargo build --profile guest --locked --target wasm32-wasip1 \
  -p weft-example-wordcount -p weft-example-stocks -p weft-example-textkit
weft=target/release/weft
wasm=target/wasm32-wasip1/guest

for example in wordcount stocks textkit; do
  printf '[demo] %-10s ' "$example" >&2
  "$weft" module register "$wasm/weft_example_$example.wasm" --name "$example"
done
echo >&2
"$weft" module list
echo >&2
"$weft" module show wordcount
echo >&2

corpus=examples/wordcount/data/corpus.txt
out=examples/wordcount/out
echo "[demo] generating a 20 MB word-count corpus: $corpus" >&2
target/release/weft-datagen wordcount --bytes 20MB --seed 1 "$corpus"
echo "[demo] weft run examples/wordcount/job.toml --overwrite" >&2
"$weft" run examples/wordcount/job.toml --overwrite
echo >&2
echo "[demo] the output is in $PWD/$out (word<TAB>count per line); the first lines of part-00000:" >&2
head -n 5 "$out/part-00000"
echo "[demo] the ten most frequent words:" >&2
# awk, not head: head would close the pipe early and fail the pipeline under pipefail.
sort -t "$(printf '\t')" -k2,2nr "$out"/part-* | awk 'NR <= 10'
echo >&2
echo "[demo] done: try \`$weft run examples/wordcount/job.toml --input ANY.txt --output DIR\`," >&2
echo "[demo] \`$weft plan examples/wordcount/job.toml\`, \`$weft module show stocks\` or \`$weft --json module list\`." >&2
