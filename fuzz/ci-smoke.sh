#!/usr/bin/env bash
# CI smoke test of the fuzz targets: builds every cargo-fuzz target once, then runs each for
# SECONDS (default 60) with fuzz/run-smoke.sh (committed seeds read, new inputs to a scratch
# corpus, so the tree stays clean). Exits non-zero, with the failing targets named, if
# cargo-fuzz is missing, the build fails, or any target crashes, leaks, times out or runs out
# of memory (the input is saved under fuzz/artifacts/TARGET/). Every target runs even after a
# failure, so one CI run reports them all.
#
# Usage: fuzz/ci-smoke.sh [SECONDS] [TARGET...]      (default: every target, 60 s each)
#
# Needs cargo-fuzz: `cargo install cargo-fuzz --locked` (works on the stable toolchain with
# RUSTC_BOOTSTRAP=1, which this script and run-smoke.sh set: cargo-fuzz passes nightly-only
# sanitizer flags), and a C compiler for libfuzzer-sys (Debian: build-essential).
# Environment: CARGO_TARGET_DIR is honoured (cargo fuzz builds under fuzz/target otherwise).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
export RUSTC_BOOTSTRAP=1

seconds=${1:-60}
[ $# -gt 0 ] && shift
case "$seconds" in
    '' | *[!0-9]*) echo "ci-smoke.sh: SECONDS must be a number (got '$seconds')" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "ci-smoke.sh: FAIL: cargo-fuzz is not installed; install it with" >&2
    echo "    cargo install cargo-fuzz --locked" >&2
    exit 1
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || { echo "ci-smoke.sh: FAIL: cargo fuzz list found no targets" >&2; exit 1; }

t0=$SECONDS
echo "== ci-smoke: $(cargo fuzz --version), building ${targets[*]}"
if ! cargo fuzz build; then
    echo "ci-smoke.sh: FAIL: cargo fuzz build failed" >&2
    exit 1
fi
echo "== ci-smoke: built in $((SECONDS - t0)) s"

failed=()
for t in "${targets[@]}"; do
    echo "== ci-smoke: $t for $seconds s"
    if ! "$here/run-smoke.sh" "$t" "$seconds"; then
        failed+=("$t")
    fi
done

echo "== ci-smoke: ${#targets[@]} targets in $((SECONDS - t0)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "ci-smoke.sh: FAIL: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "ci-smoke.sh: PASS"
