#!/usr/bin/env bash
# Runs every Corral test suite. Installs what the suites need when it is missing,
# so it works on a fresh machine with only the Rust toolchain. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

# A target directory outside the clone keeps rebuilds fast across fresh clones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/corral-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

step() { printf '\n==== %s ====\n' "$*"; }
started=$(date +%s)

step "toolchain"
cargo --version
rustc --version

step "build (all targets)"
cargo build --workspace --all-targets --locked

step "lint (clippy, warnings are errors)"
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --workspace --all-targets --locked -- -D warnings
else
    echo "clippy is not installed with this toolchain; skipped"
fi

step "unit, property and integration tests"
# Integration tests start whole ensembles on loopback; two at a time suits a 2-core machine.
cargo test --workspace --locked -- --test-threads=2

step "done in $(( $(date +%s) - started )) s"
