#!/usr/bin/env bash
# Sets up a fresh machine, builds Weft and the example guests from source, and registers the
# examples in the data directory (WEFT_HOME, or the per-user default), then shows them.
# Idempotent: registering the same bytes again changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "[demo] building weft and the example modules (release)" >&2
cargo build --release --locked -p weft
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
echo "[demo] done: try \`$weft module show stocks\`, or \`$weft --json module list\`." >&2
