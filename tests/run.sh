#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit and property tests, and the integration
# tests that start real ironsecd processes in network namespaces (needs root).
#
# Tests that need root or a tool of tests/install-deps.sh are `#[ignore = "needs ..."]`, so that
# `cargo test --workspace` passes for any user; this script runs them all (--include-ignored),
# as root, and fails if any of them fails. No test may be ignored for another reason: that
# would make --include-ignored run what someone meant to switch off.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "tests/run.sh: the integration tests need root (network namespaces)" >&2; exit 1; }
if other=$(grep -rn --include='*.rs' --exclude-dir=target -E '#\[ignore' crates tests fuzz | grep -vE '#\[ignore = "needs [^"]+"\]'); then
    echo "tests/run.sh: only #[ignore = \"needs ...\"] is allowed (run.sh runs every ignored test):" >&2
    echo "$other" >&2
    exit 1
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Integration tests share the machine's 2 cores and each builds a topology: one at a time.
# --no-fail-fast: one failing test file must not hide the results of the others.
status=0
cargo test --workspace --locked --no-fail-fast -- --test-threads=1 --include-ignored || status=$?
# Every cargo-fuzz target for 60 s on its committed seeds (fails on any crash, leak or timeout).
fuzz/ci-smoke.sh 60 || status=$?
exit "$status"
