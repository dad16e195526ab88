#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test Weft, and nothing else.
# Idempotent: every step checks first. Used by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# C guests: clang 14, its wasm linker, the WASI C library and compiler-rt builtins for wasm32.
# Tests: python3 (its csv module is the CSV tests' reference) and bsdutils (`script`, a terminal
# for the progress-bar test).
# Zig guests: Zig from PyPI (below), so python3's pip. AssemblyScript guests: Node.js and npm.
packages=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 python3 python3-pip bsdutils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A python3 or node from elsewhere (pyenv, nvm, NodeSource) will do as well as Debian's.
if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip}")
fi
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
read -r -a missing <<< "${missing[*]}"
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

# Zig guests: Zig from PyPI's `ziglang` package, pinned (Zig's language changes between versions;
# guest-sdk/zig is written for this one). `weft udf build` and the example build run it as
# `python3 -m ziglang` unless `zig` is on PATH or WEFT_ZIG names one.
zig_version=0.14.1
if [ "$(python3 -m ziglang version 2>/dev/null)" != "$zig_version" ]; then
  say "installing Zig $zig_version (PyPI: ziglang)"
  python3 -m pip install --quiet --disable-pip-version-check "ziglang==$zig_version" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "ziglang==$zig_version"
fi

# AssemblyScript guests: the compiler pinned by guest-sdk/assemblyscript/package-lock.json, in
# guest-sdk/assemblyscript/node_modules (where `weft udf build` and the example build find it).
as_dir=guest-sdk/assemblyscript
if [ ! -x "$as_dir/node_modules/.bin/asc" ] || [ "$as_dir/package-lock.json" -nt "$as_dir/node_modules/.package-lock.json" ]; then
  say "installing the AssemblyScript compiler (npm ci in $as_dir)"
  npm ci --prefix "$as_dir" --no-audit --no-fund --loglevel=error >/dev/null
fi
