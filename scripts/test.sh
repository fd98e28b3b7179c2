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
# The simulation's fixed budget: seeds per scenario, and the first seed (fixed, so CI is
# reproducible; a soak run picks its own, see docs/testing.md).
SIM_SEEDS="${SIM_SEEDS:-100}"
SIM_SEED="${SIM_SEED:-1}"

# What the real-client suites need beyond Rust: Apache ZooKeeper 3.8 (zkCli.sh, the reference
# server for the differential test) from Debian, and kazoo + pytest from PyPI.
install_prerequisites() {
    if [ ! -x /usr/share/zookeeper/bin/zkCli.sh ]; then
        step "installing Apache ZooKeeper (Debian package zookeeper)"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >/dev/null
    fi
    if ! python3 -c 'import kazoo, pytest' 2>/dev/null; then
        step "installing kazoo and pytest (PyPI)"
        python3 -m pip install --quiet --disable-pip-version-check kazoo==2.11.0 pytest
    fi
}

install_prerequisites

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

step "deterministic simulation (madsim): $SIM_SEEDS seeds per scenario from seed $SIM_SEED"
# Its own target directory: the simulation build compiles every crate with --cfg madsim
# (tokio_unstable: the harness seeds tokio's select! generator per run, see sim-tests/src/harness.rs).
# The sim profile is optimized with debug assertions on: seeds run about 20 times faster.
RUSTFLAGS="--cfg madsim --cfg tokio_unstable" CARGO_TARGET_DIR="${CORRAL_SIM_TARGET_DIR:-$HOME/.cache/corral-sim-target}" \
    MADSIM_TEST_SEED="$SIM_SEED" MADSIM_TEST_NUM="$SIM_SEEDS" \
    cargo test -p corral-sim-tests --profile sim --locked -- --test-threads=1

step "real-client conformance (kazoo, zkCli.sh, differential against Apache ZooKeeper)"
export CORRAL_SERVER_BIN="$CARGO_TARGET_DIR/debug/corral-server"
python3 -m pytest -q conformance

step "benchmark smoke (corral-bench compare against Apache ZooKeeper, tiny load)"
# Proves the comparison still starts both ensembles and measures them; the figures mean nothing.
smoke_dir="$(mktemp -d)"
"$CARGO_TARGET_DIR/debug/corral-bench" compare --smoke --out "$smoke_dir/RESULTS.md" --dir "$smoke_dir/data"
grep -q "^| set throughput at saturation" "$smoke_dir/RESULTS.md"
rm -rf "$smoke_dir"

step "done in $(( $(date +%s) - started )) s"
