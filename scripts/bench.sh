#!/usr/bin/env bash
# Runs Weft's benchmarks (BENCHMARKS.md): sets up the machine, builds weft, weft-bench and the
# example guests in release mode, builds the native peer when ../shared/peers/native-wordcount is
# there, and runs `weft-bench` with any arguments given (default: every scenario on a 1 GB corpus,
# 3 runs each). The Spark peer runs beside Weft when it is set up (../shared/peers/spark/setup.sh).
# Idempotent: inputs are generated once under the work directory (default /tmp/weft-bench).
#
#   scripts/bench.sh                              # everything, 1 GB
#   scripts/bench.sh --size 100MB --only wordcount,fixed
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "[bench] building weft, weft-bench and the example guests (release)" >&2
cargo build --release --locked -p weft -p weft-bench
cargo build --profile guest --locked --target wasm32-wasip1 \
  -p weft-example-wordcount -p weft-example-stocks -p weft-example-textkit

args=()
peer=../shared/peers/native-wordcount
if [ -f "$peer/Cargo.toml" ]; then
  echo "[bench] building the native peer $peer" >&2
  cargo build --release --quiet --manifest-path "$peer/Cargo.toml" --target-dir target/native-peer
  args+=(--native-peer target/native-peer/release/native-wordcount)
fi
exec target/release/weft-bench --wasm-dir target/wasm32-wasip1/guest "${args[@]}" "$@"
