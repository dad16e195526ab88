#!/usr/bin/env bash
# What a lost worker costs (BENCHMARKS.md, issue 18): the word count of a generated corpus (1 GB by
# default) on a `weft scheduler` and three `weft worker --slots 1` processes (release builds),
# fault-free and with one worker SIGKILLed when the map stage has read half its input, alternating,
# a fresh cluster for every run. Prints each run's wall time (submit to the end of the job), the
# median of each kind and their ratio, and checks that every output holds the same word counts.
# Idempotent: the corpus is generated once under the work directory.
#
#   scripts/recovery-bench.sh [--size 1GB] [--runs 3] [--dir /tmp/weft-recovery]
set -euo pipefail
cd "$(dirname "$0")/.."

size=1GB
runs=3
dir=/tmp/weft-recovery
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size="${2:?--size needs a size, e.g. 1GB}"; shift 2 ;;
    --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
    --dir) dir="${2:?--dir needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "recovery-bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$runs" in ''|*[!0-9]*) echo "recovery-bench.sh: --runs takes a number" >&2; exit 2 ;; esac

scripts/setup.sh
echo "[recovery] building weft, weft-datagen and the wordcount guest (release)" >&2
cargo build --release --locked -p weft -p weft-datagen
cargo build --profile guest --locked --target wasm32-wasip1 -p weft-example-wordcount
weft=$PWD/target/release/weft
wasm=$PWD/target/wasm32-wasip1/guest/weft_example_wordcount.wasm

mkdir -p "$dir"
corpus="$dir/corpus-$size.txt"
if [ ! -s "$corpus" ]; then
  echo "[recovery] generating a $size corpus in $corpus" >&2
  target/release/weft-datagen wordcount --bytes "$size" --seed 1 "$corpus.tmp"
  mv "$corpus.tmp" "$corpus"
fi
cat > "$dir/wordcount.toml" <<EOF
name = "wordcount"
[input]
path = "$corpus"
[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
[output]
path = "$dir/out"
partitions = 3
EOF

pids=()
stop_cluster() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_cluster EXIT

# Waits for the first line of $1 that starts with $2 and prints the rest of it.
listening() {
  local log=$1 prefix=$2
  for _ in $(seq 600); do
    line=$(grep -m1 "^$prefix" "$log" 2>/dev/null || true)
    if [ -n "$line" ]; then echo "${line#"$prefix"}"; return; fi
    sleep 0.1
  done
  echo "recovery-bench.sh: no '$prefix' line in $log:" >&2; cat "$log" >&2; exit 1
}

# A fresh scheduler and three one-slot workers; sets $url and $workers (their pids).
start_cluster() {
  local run=$1
  rm -rf "$dir/run"; mkdir -p "$dir/run"
  "$weft" scheduler --data-dir "$dir/run/scheduler" --listen 127.0.0.1:0 \
    >"$dir/run/scheduler.log" 2>&1 &
  pids+=($!)
  url=$(listening "$dir/run/scheduler.log" "weft scheduler listening on ")
  workers=()
  for i in 1 2 3; do
    "$weft" worker --data-dir "$dir/run/worker-$i" --scheduler "$url" --listen 127.0.0.1:0 \
      --slots 1 >"$dir/run/worker-$i.log" 2>&1 &
    pids+=($!)
    workers+=($!)
  done
  for i in 1 2 3; do listening "$dir/run/worker-$i.log" "weft worker " >/dev/null; done
  "$weft" --scheduler "$url" module register "$wasm" --name wordcount >/dev/null 2>&1
  echo "[recovery] run $run: cluster at $url" >&2
}

# How far stage 0 has read, in percent of its input, from `job status --json`.
map_progress() {
  "$weft" --scheduler "$url" --json job status "$1" | python3 -c '
import json, sys
s = json.load(sys.stdin)["stages"][0]
total = s["bytes_total"]
print(0 if total == 0 else (s["bytes_in"] + s["bytes_in_running"]) * 100 // total)'
}

# The pid of a worker running a map task now.
map_worker() {
  local id
  id=$("$weft" --scheduler "$url" --json cluster workers | python3 -c '
import json, sys
busy = [w["worker_id"] for w in json.load(sys.stdin) if any(" stage 0 " in r for r in w["running"])]
print(busy[0] if busy else "")')
  [ -n "$id" ] || return 1
  for i in 1 2 3; do
    if grep -q "^weft worker $id " "$dir/run/worker-$i.log"; then echo "${workers[$((i - 1))]}"; return; fi
  done
  return 1
}

# Runs the job once; with "fault", kills a map worker at half the map stage. Prints seconds.
run_job() {
  local kind=$1 started id
  rm -rf "$dir/out"
  started=$(date +%s.%N)
  id=$("$weft" --scheduler "$url" job submit "$dir/wordcount.toml")
  if [ "$kind" = fault ]; then
    until [ "$(map_progress "$id")" -ge 50 ]; do sleep 0.05; done
    pid=$(map_worker) || { echo "recovery-bench.sh: no worker runs a map task" >&2; exit 1; }
    kill -9 "$pid"
    echo "[recovery]   killed worker pid $pid at 50 % of the map stage" >&2
  fi
  "$weft" --scheduler "$url" job watch "$id" >"$dir/run/watch.log" 2>&1 \
    || { echo "recovery-bench.sh: the job failed:" >&2; cat "$dir/run/watch.log" >&2; exit 1; }
  python3 -c "print(f'{$(date +%s.%N) - $started:.2f}')"
  cat "$dir"/out/part-* | LC_ALL=C sort | md5sum | cut -d' ' -f1 >"$dir/run/$kind.md5"
  cp "$dir/run/$kind.md5" "$dir/$kind-last.md5"
}

declare -a clean fault
for r in $(seq "$runs"); do
  for kind in clean fault; do
    start_cluster "$r/$kind"
    t=$(run_job "$kind")
    stop_cluster
    printf '[recovery] run %s %-5s %.2f s\n' "$r" "$kind" "$t" >&2
    if [ "$kind" = clean ]; then clean+=("$t"); else fault+=("$t"); fi
  done
  cmp -s "$dir/clean-last.md5" "$dir/fault-last.md5" \
    || { echo "recovery-bench.sh: the outputs differ" >&2; exit 1; }
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
mc=$(median "${clean[@]}")
mf=$(median "${fault[@]}")
echo "fault-free: ${clean[*]} s (median $mc s)"
echo "one worker killed at 50 % of the map stage: ${fault[*]} s (median $mf s)"
echo "ratio: $(python3 -c "print(f'{$mf / $mc:.2f}')") (target <= 1.5); every output the same"
