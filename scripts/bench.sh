#!/usr/bin/env bash
# Runs Weft's benchmarks (BENCHMARKS.md): sets up the machine, builds weft, weft-bench and the
# example guests in release mode, builds the native peer when ../shared/peers/native-wordcount is
# there and passes both its programs (`native-wordcount` on one core; `tuned` on every core, the
# machine's limit that the word count's ratio is stated against), and runs `weft-bench` with any
# arguments given (default: every scenario on a 1 GB corpus, 3 runs each). The Spark peer runs
# beside Weft when it is set up (../shared/peers/spark/setup.sh): in the wordcount, heavy and
# stocks scenarios. Idempotent: inputs are generated once under the work directory (default
# /tmp/weft-bench).
#
#   scripts/bench.sh --size 1GB --runs 3          # everything: what BENCHMARKS.md reports
#   scripts/bench.sh --size 100MB --only wordcount,fixed
#   scripts/bench.sh --size 20MB --runs 1 --only heavy,stocks
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "[bench] building weft, weft-bench and the example guests (release)" >&2
cargo build --release --locked -p weft -p weft-bench
cargo build --profile guest --locked --target wasm32-wasip1 \
  -p weft-example-wordcount -p weft-example-stocks -p weft-example-textkit
# The word count in every other language with an SDK, for the `languages` scenario (one that
# does not build is reported there as not run).
for language in c zig assemblyscript; do
  rm -f "target/wasm32-wasip1/guest/wordcount_$language.wasm"
  target/release/weft udf build "examples/wordcount/$language" \
    -o "target/wasm32-wasip1/guest/wordcount_$language.wasm" >/dev/null \
    || echo "[bench] the $language word count did not build: its row will say not run" >&2
done

args=()
peer=../shared/peers/native-wordcount
if [ -f "$peer/Cargo.toml" ]; then
  echo "[bench] building the native peer $peer" >&2
  cargo build --release --quiet --manifest-path "$peer/Cargo.toml" --target-dir target/native-peer
  args+=(--native-peer target/native-peer/release/native-wordcount)
  args+=(--tuned-peer target/native-peer/release/tuned)
fi
exec target/release/weft-bench --wasm-dir target/wasm32-wasip1/guest "${args[@]}" "$@"
