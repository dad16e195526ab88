#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test Weft, and nothing else.
# Idempotent: every step checks first. Used by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# C guests: clang 14, its wasm linker, the WASI C library and compiler-rt builtins for wasm32.
# Tests: python3 (its csv module is the CSV tests' reference) and bsdutils (`script`, a terminal
# for the progress-bar test).
packages=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 python3 bsdutils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v rustup >/dev/null 2>&1; then
  say "rustup is required (https://rustup.rs); it installs the toolchain pinned in rust-toolchain.toml"
  exit 1
fi
# rust-toolchain.toml pins the toolchain and lists the wasm target; make sure both are present.
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
rustup toolchain list | grep -q "^$toolchain" || { say "installing Rust $toolchain"; rustup toolchain install "$toolchain" --profile minimal -c rustfmt -c clippy; }
rustup target list --installed --toolchain "$toolchain" | grep -qx wasm32-wasip1 \
  || { say "adding the wasm32-wasip1 target"; rustup target add wasm32-wasip1 --toolchain "$toolchain"; }
rustup component list --installed --toolchain "$toolchain" | grep -q '^clippy' \
  || rustup component add clippy rustfmt --toolchain "$toolchain"
