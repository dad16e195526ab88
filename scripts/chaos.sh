#!/usr/bin/env bash
# The chaos soak: runs the chaos test (tests/cli/chaos.rs) for many trials. Each trial runs a job of
# two shuffles on a scheduler and three worker processes, SIGKILLs a random worker at a random
# moment, starts a replacement, and checks the output exactly. Prints every trial, then the count
# of trials and failures and the median and worst recovery time (kill to job end).
#
#   scripts/chaos.sh [--trials N] [--seed S]     (defaults: 200 trials, seed 0x5eed)
set -euo pipefail
cd "$(dirname "$0")/.."

trials=200
seed=$((0x5eed))
while [ $# -gt 0 ]; do
  case "$1" in
    --trials) trials="${2:?--trials needs a number}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "chaos.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$trials$seed" in *[!0-9]*) echo "chaos.sh: --trials and --seed take decimal numbers" >&2; exit 2 ;; esac

scripts/setup.sh
WEFT_CHAOS_TRIALS="$trials" WEFT_CHAOS_SEED="$seed" \
  cargo test --locked --test cli -- chaos:: --nocapture --test-threads 1 2>&1 \
  | grep --line-buffered -E '^chaos|^test |panicked|FAILED|^failures'
