#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit and property tests, and the integration
# tests that start real ironsecd processes in network namespaces (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "tests/run.sh: the integration tests need root (network namespaces)" >&2; exit 1; }
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Integration tests share the machine's 2 cores and each builds a topology: one at a time.
# --no-fail-fast: one failing test file must not hide the results of the others.
cargo test --workspace --locked --no-fail-fast -- --test-threads=1
