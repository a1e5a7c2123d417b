#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit and property tests, and the integration
# tests that start real ironsecd processes in network namespaces (needs root).
#
# Tests that need root or a tool of tests/install-deps.sh are `#[ignore = "needs ..."]`, so that
# `cargo test --workspace` passes for any user; this script runs them all (--include-ignored),
# as root, and fails if any of them fails. No test may be ignored for another reason: that
# would make --include-ignored run what someone meant to switch off.
#
# Order (everything is built once first):
#   1. unit, property and known-answer tests of every crate, and the doc tests;
#   2. the namespace integration tests of crates/ironsecd, in IRONSEC_TEST_LANES lanes (default
#      2) at once. Each test binary still runs its tests one at a time (--test-threads=1), and
#      every test names its namespaces after its own process (tests/common: unique_prefix), so
#      lanes never share a namespace, TUN device, socket or pid file. Most of these tests wait
#      on timers (rekeys, DPD, NAT keepalives), which is why two lanes on two cores halve the
#      wall time without making anything CPU-starved;
#   3. the tests that measure rates or load the CPU on purpose (SERIAL below), alone;
#   4. every cargo-fuzz target for 30 s on its committed seeds.
# A lane's output is printed when the lane ends (not interleaved), with a summary of which test
# binaries failed. --no-fail-fast everywhere: one failure must not hide the others.
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

LANES=${IRONSEC_TEST_LANES:-2}
case "$LANES" in '' | *[!0-9]* | 0) echo "tests/run.sh: IRONSEC_TEST_LANES must be 1 or more" >&2; exit 1 ;; esac

# Tests that measure throughput or shaping, or flood the gateways: alone on the machine, so
# that what they measure is the daemon, not another lane. `package` too, after bench_script:
# it builds the release binaries (bench.sh's build, reused) and the .deb, which would otherwise
# take the CPU from a lane's timers.
SERIAL=(bandwidth floods bench_script client_limits package)
# Seconds each integration test binary took in CI (tests/run.sh on two cores), to balance the
# lanes; a test not listed counts as 60 s. Only the balance depends on these numbers.
declare -A WEIGHT=(
    [faults]=212 [interop_strongswan]=290 [interop_ipv6]=35 [ike_tunnel]=164 [nat_traversal]=105 [redundancy]=89
    [static_tunnel]=57 [interop_ha]=43 [volume_rekey]=43 [log_hygiene]=39 [fail_closed]=34
    [daemon_ops]=31 [mtu]=31 [secrets]=17 [idle_hub_script]=12 [route_scale_script]=16 [scale_script]=60 [unit_sandbox]=11
    [core_dumps]=2 [conf_examples]=1 [systemd_unit]=1 [ctl_ops]=17 [observability]=4
    [route_based]=45 [interop_route_based]=40 [route_bgp]=40 [interop_certs]=40
    [interop_remote_access]=69 [p2s_scale_script]=8 [ha_private_link]=75 [ha_active_active]=195
    [ha_active_standby]=156 [ha_drain]=18 [ha_scale_script]=25 [ipv6_wan]=45 [ipv6_inner]=40
    [demo_script]=12
)

status=0
cargo test --workspace --locked --no-run --quiet

# 1. Everything but ironsecd's [[test]] binaries: the other crates' unit/property/KAT tests
#    (crates/ike's tshark judge among them) and ironsecd's own unit tests and doc tests.
cargo test --workspace --locked --no-fail-fast --exclude ironsecd -- --test-threads=1 --include-ignored || status=$?
cargo test -p ironsecd --locked --no-fail-fast --lib --bins -- --test-threads=1 --include-ignored || status=$?
cargo test -p ironsecd --locked --no-fail-fast --doc || status=$?

# The integration test binaries of crates/ironsecd, as its Cargo.toml lists them.
mapfile -t ALL < <(awk '/^\[\[test\]\]/ { t = 1; next } t && /^name *=/ { gsub(/[" ]/, "", $0); sub(/^name=/, "", $0); print; t = 0 }' crates/ironsecd/Cargo.toml)
[ "${#ALL[@]}" -gt 0 ] || { echo "tests/run.sh: no [[test]] in crates/ironsecd/Cargo.toml" >&2; exit 1; }
PARALLEL=()
for t in "${ALL[@]}"; do
    [[ " ${SERIAL[*]} " == *" $t "* ]] || PARALLEL+=("$t")
done

# Longest first, each to the lane with the least work so far.
declare -a LANE_LOAD LANE_TESTS
for ((i = 0; i < LANES; i++)); do LANE_LOAD[i]=0 LANE_TESTS[i]=""; done
mapfile -t SORTED < <(for t in "${PARALLEL[@]}"; do echo "${WEIGHT[$t]:-60} $t"; done | sort -rn | awk '{ print $2 }')
for t in "${SORTED[@]}"; do
    best=0
    for ((i = 1; i < LANES; i++)); do
        [ "${LANE_LOAD[i]}" -lt "${LANE_LOAD[best]}" ] && best=$i
    done
    LANE_LOAD[best]=$((LANE_LOAD[best] + ${WEIGHT[$t]:-60}))
    LANE_TESTS[best]+=" $t"
done

# One lane: its test binaries one after the other; the names of the failed ones in $2.failed.
run_lane() { # log-file test...
    local log=$1 t
    shift
    : >"$log.failed"
    for t in "$@"; do
        echo "== tests/run.sh: $t (started $(date -u +%T))"
        local t0=$SECONDS
        if ! cargo test -p ironsecd --locked --test "$t" -- --test-threads=1 --include-ignored; then
            echo "$t" >>"$log.failed"
        fi
        echo "== tests/run.sh: $t took $((SECONDS - t0)) s"
    done >"$log" 2>&1
}

WORK=$(mktemp -d /tmp/ironsec-run.XXXXXX)
LANE_PIDS=()
cleanup() {
    local p
    # A lane that is still running (interrupted run): its cargo, then the lane itself.
    for p in "${LANE_PIDS[@]}"; do
        pkill -TERM -P "$p" 2>/dev/null || true
        kill -- "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 2. The namespace tests, in lanes.
t0=$SECONDS
for ((i = 0; i < LANES; i++)); do
    # shellcheck disable=SC2086  # the lane's list is space-separated test names
    echo "== tests/run.sh: lane $i (~${LANE_LOAD[i]} s):${LANE_TESTS[i]}"
    # shellcheck disable=SC2086
    run_lane "$WORK/lane$i.log" ${LANE_TESTS[i]} &
    LANE_PIDS+=("$!")
done
for ((i = 0; i < LANES; i++)); do
    wait "${LANE_PIDS[i]}" || true
done
LANE_PIDS=()
failed=()
for ((i = 0; i < LANES; i++)); do
    echo "== tests/run.sh: output of lane $i"
    cat "$WORK/lane$i.log"
    while read -r t; do failed+=("$t"); done <"$WORK/lane$i.log.failed"
done
echo "== tests/run.sh: ${#PARALLEL[@]} namespace test binaries in $LANES lanes took $((SECONDS - t0)) s"

# 3. The measuring tests, alone.
for t in "${SERIAL[@]}"; do
    echo "== tests/run.sh: $t (alone)"
    cargo test -p ironsecd --locked --test "$t" -- --test-threads=1 --include-ignored || failed+=("$t")
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "tests/run.sh: FAILED test binaries: ${failed[*]}" >&2
    status=1
fi

# 4. Every cargo-fuzz target for 30 s on its committed seeds (fails on any crash, leak or timeout).
#    Every committed seed is replayed first (0.1-1.4 s per target); a 15 s run reached within 1 %
#    of a 60 s run's coverage on each target, so 30 s keeps the smoke's value and gives the
#    namespace tests the 4.5 minutes the CI budget lacks.
fuzz/ci-smoke.sh 30 || status=$?
exit "$status"
