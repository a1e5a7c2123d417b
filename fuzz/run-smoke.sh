#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while: fuzz/run-smoke.sh TARGET SECONDS [libFuzzer args...]
#
# Targets: ike_message, ike_responder, esp_open, config, offload, gro, inner. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets the stable toolchain take the
# sanitizer flags cargo-fuzz passes. The committed seeds in fuzz/corpus/TARGET are read but
# not written: new inputs go to a scratch corpus, so a CI run leaves the tree clean.
# Exits non-zero if the target crashes (the input is saved under fuzz/artifacts/TARGET/).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer args...]" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
export RUSTC_BOOTSTRAP=1

seeds="fuzz/corpus/$target"
if [ ! -d "$seeds" ]; then
    echo "no seed corpus $seeds (unknown target?)" >&2
    exit 2
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ironsec-fuzz-$target.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build "$target"
set +e
cargo fuzz run "$target" "$scratch" "$seeds" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
status=$?
set -e
if [ "$status" -ne 0 ]; then
    echo "fuzz target $target failed (exit $status); crash input under fuzz/artifacts/$target/" >&2
fi
exit "$status"
