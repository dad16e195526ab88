#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh) and runs every check and test: formatting, clippy with
# warnings as errors, and the whole workspace's tests (the guest modules are built from source on
# the way). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "[test] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[test] cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "[test] cargo test --workspace" >&2
cargo test --workspace --locked
