#!/usr/bin/env bash
# Idle control-plane cost of ironsecd: the CPU an idle hub spends with many tunnels that have
# nothing due (not part of the test suite; tests/idle_hub_script.rs runs it at a tiny scale).
#
# Two namespaces, PREFIX-hub and PREFIX-peer, joined by two veth pairs (two "uplinks"):
#   hub 192.0.2.1    ===== uplink 1 ===== 192.0.2.2    peer
#   hub 198.51.100.1 ===== uplink 2 ===== 198.51.100.2 peer
# One ironsecd in each, with --connections N IKEv2 connections (PSK), each of two tunnels (one
# per uplink, active-standby), so the multi-tunnel failover and liveness path runs for every
# connection. Connection i has its own identities and selectors (10.64.0.0/10 hub side,
# 10.128.0.0/10 peer side, a /24 each). The peer initiates (start_action = "start", or with
# --pace, "none" and `ironsecctl initiate` at that many tunnels a second); the hub only answers.
#
# After every tunnel is up on both sides (bring-up time: from the peer's start, or from the
# first `initiate`, to all 2N tunnels up and established on both), the script waits --settle
# seconds and then, with no traffic and no status requests, reads each daemon's utime+stime
# (/proc/PID/stat, all threads) over --seconds: CPU as % of one core; and the same from the
# threads' run times in /proc/PID/task/*/schedstat (nanoseconds, where utime+stime count whole
# 10 ms ticks: a 2-tunnel idle daemon spends only a few ticks in 30 s). DPD is off (dpd_interval =
# 0) and rekeying is a day away (rekey_time = ike_rekey_time = 86400), so nothing is due on any
# tunnel: what is measured is the control plane idling (its timers and any per-tunnel scans),
# plus the fast-path workers' idle wake-ups. The hub's IKE messages received during the window
# are reported too (0 means the window really was idle), and how long one `ironsecctl status
# --json` of the hub takes after the window (with the parsing of its answer).
#
# Usage (as root):
#   netns-scripts/idle-hub.sh [--connections N] [--seconds S] [--timeout T] [--pace P]
#                             [--settle S] [--baseline] [--json]
#
#   --connections N  connections, 2 tunnels each (default 500 = 1,000 tunnels; 1..16000)
#   --seconds S      length of the CPU measurement (default 30)
#   --timeout T      bound on each bring-up, seconds (default 600); on timeout the CPU is still
#                    measured and reported, with "converged": false, and the exit status is 1
#   --pace P         bring tunnels up at most P a second (the peer initiates one connection
#                    every 2/P s with `ironsecctl initiate --timeout 0`); default: all at once
#   --settle S       seconds between bring-up and the measurement (default 3)
#   --baseline       first the same measurement with 1 connection (2 tunnels), in the same
#                    namespaces, and the ratio of the two
#   --json           print one JSON object on stdout instead of the text report
#
# Environment: IRONSECD (the daemon; default target/release/ironsecd, or
# $CARGO_TARGET_DIR/release/ironsecd), IRONSECCTL (default: ironsecctl next to IRONSECD),
# IRONSEC_IDLE_PREFIX (namespace prefix; default ih<pid>), IRONSEC_LOG (daemons' log level,
# default warn). This script builds nothing: `cargo build --release -p ironsecd` first.
# Progress goes to stderr, the report to stdout. Every process it starts is stopped by PID and
# both namespaces are removed on exit; the root namespace's interfaces are never touched.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=idle-hub.sh
PREFIX=${IRONSEC_IDLE_PREFIX:-ih$$}
MSG_FD=2
# shellcheck source=netns-scripts/lib.sh
. "$HERE/lib.sh"

CONNS=500 SECS=30 TIMEOUT=600 PACE=0 SETTLE=3 BASELINE=0 JSON_OUT=0
while [ $# -gt 0 ]; do
    case "$1" in
        --connections) CONNS=${2:?--connections needs a number}; shift 2 ;;
        --seconds) SECS=${2:?--seconds needs a number}; shift 2 ;;
        --timeout) TIMEOUT=${2:?--timeout needs a number}; shift 2 ;;
        --pace) PACE=${2:?--pace needs a number}; shift 2 ;;
        --settle) SETTLE=${2:?--settle needs a number}; shift 2 ;;
        --baseline) BASELINE=1; shift ;;
        --json) JSON_OUT=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
is_count "$CONNS" 1 16000 || die "--connections must be 1..16000, not '$CONNS'"
is_count "$SECS" 1 3600 || die "--seconds must be 1..3600, not '$SECS'"
is_count "$TIMEOUT" 1 86400 || die "--timeout must be 1..86400, not '$TIMEOUT'"
is_count "$PACE" 0 100000 || die "--pace must be a whole number of tunnels a second, not '$PACE'"
is_count "$SETTLE" 0 600 || die "--settle must be 0..600, not '$SETTLE'"
[[ $PREFIX =~ ^[A-Za-z0-9_-]{1,40}$ ]] || die "IRONSEC_IDLE_PREFIX '$PREFIX' is not 1-40 of [A-Za-z0-9_-]"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
command -v python3 >/dev/null || die "needs python3 to read 'ironsecctl status --json'"

if [ -n "${IRONSECD:-}" ]; then
    D=$IRONSECD
else
    bin_dir
    D="$BIN/ironsecd"
fi
CTL=${IRONSECCTL:-$(dirname "$D")/ironsecctl}
[ -x "$D" ] || die "$D not found or not executable: cargo build --release -p ironsecd, or set IRONSECD"
[ -x "$CTL" ] || die "$CTL not found or not executable (set IRONSECCTL)"
CLK_TCK=$(getconf CLK_TCK)
HUB="$PREFIX-hub" PEER="$PREFIX-peer"
HUB_ADDRS=(192.0.2.1 198.51.100.1) PEER_ADDRS=(192.0.2.2 198.51.100.2)
REKEY=86400
PID_HUB="" PID_PEER="" WORK="" NS_MADE=()

on_exit() {
    stop_pid "$PID_HUB"; stop_pid "$PID_PEER"
    local ns
    for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
    if [ -n "$WORK" ]; then rm -rf -- "$WORK"; fi
}
install_cleanup_traps

# ---------------------------------------------------------------------------------------------
# Topology: both veth pairs are created inside the hub namespace with their other end moved
# straight into the peer's, so no interface ever exists in the root namespace.

make_topology() {
    local ns i
    for ns in "$HUB" "$PEER"; do
        if ip netns list | awk -v n="$ns" '$1 == n { f = 1 } END { exit !f }'; then die "namespace $ns already exists (another run? set IRONSEC_IDLE_PREFIX)"; fi
        ip netns add "$ns"
        NS_MADE+=("$ns")
        ip -n "$ns" link set lo up
    done
    for i in 0 1; do
        ip -n "$HUB" link add "up$i" type veth peer name "up$i" netns "$PEER"
        ip -n "$HUB" addr add "${HUB_ADDRS[$i]}/24" dev "up$i"
        ip -n "$PEER" addr add "${PEER_ADDRS[$i]}/24" dev "up$i"
        ip -n "$HUB" link set "up$i" up
        ip -n "$PEER" link set "up$i" up
    done
}

# ---------------------------------------------------------------------------------------------
# Configs

# Config of side $1 (hub|peer) with $2 connections to WORK/$1.toml; the peer's start_action is
# $3 (start|none).
write_config() { # side conns peer-start-action
    local side=$1 n=$2 start=$3 i a b lts rts lid rid l0 r0 l1 r1 act
    {
        printf '[gateway]\ntun = "idle0"\ncontrol_socket = "%s"\n\n' "$WORK/$side.sock"
        for ((i = 0; i < n; i++)); do
            a=$((i / 256)) b=$((i % 256))
            if [ "$side" = hub ]; then
                lts="10.$((64 + a)).$b.0/24" rts="10.$((128 + a)).$b.0/24"
                lid=hub.idle.example rid="c$i.idle.example"
                l0=${HUB_ADDRS[0]} r0=${PEER_ADDRS[0]} l1=${HUB_ADDRS[1]} r1=${PEER_ADDRS[1]}
                act='start_action = "none"'
            else
                lts="10.$((128 + a)).$b.0/24" rts="10.$((64 + a)).$b.0/24"
                lid="c$i.idle.example" rid=hub.idle.example
                l0=${PEER_ADDRS[0]} r0=${HUB_ADDRS[0]} l1=${PEER_ADDRS[1]} r1=${HUB_ADDRS[1]}
                act="start_action = \"$start\""$'\n''close_action = "restart"'
            fi
            cat <<EOF
[[connection]]
name = "c$i"
keying = "ike"
local_id = "$lid"
remote_id = "$rid"
psk_file = "$WORK/idle.psk"
local_ts = ["$lts"]
remote_ts = ["$rts"]
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
mode = "active-standby"
$act
dpd_interval = 0
rekey_time = $REKEY
ike_rekey_time = $REKEY
tunnels = [ { local = "$l0", remote = "$r0" }, { local = "$l1", remote = "$r1" } ]

EOF
        done
    } >"$WORK/$side.toml"
}

# ---------------------------------------------------------------------------------------------
# Daemons

# Start ironsecd for side $1 in its namespace; sets PID_HUB or PID_PEER. `ip netns exec` execs
# the daemon, so $! is the daemon's own PID.
start_daemon() { # side
    local ns=$HUB
    [ "$1" = peer ] && ns=$PEER
    IRONSEC_LOG="${IRONSEC_LOG:-warn}" ip netns exec "$ns" "$D" --config "$WORK/$1.toml" \
        </dev/null >>"$WORK/$1.log" 2>&1 &
    if [ "$1" = hub ]; then PID_HUB=$!; else PID_PEER=$!; fi
}

stop_daemons() {
    stop_pid "$PID_HUB"; stop_pid "$PID_PEER"
    wait "$PID_HUB" "$PID_PEER" 2>/dev/null || true
    PID_HUB="" PID_PEER=""
}

# Status of side $1 as "up ike_received": tunnels up (an established IKE SA with a CHILD_SA and
# SAs in both directions installed) and the IKE messages the daemon has received. Returns 1 if
# ironsecctl fails.
side_status() { # side
    ctl "$1" status --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
up = 0
for c in d.get("connections") or []:
    for t in c.get("tunnels") or []:
        ike = t.get("ike") or {}
        if (t.get("state") == "up" and ike.get("state") == "established"
                and (ike.get("children") or 0) >= 1 and t.get("outbound") and t.get("inbound")):
            up += 1
print(up, (d.get("ike") or {}).get("received", 0))'
}

# ---------------------------------------------------------------------------------------------
# One measurement with $1 connections. Sets R_* (see the report).

run_case() { # conns
    local n=$1 want=$(($1 * 2)) t0 deadline hub_up=0 peer_up=0 last=-1 i next step start
    local h0 p0 h1 p1 hn0 pn0 hn1 pn1 w0 w1 rx0 rx1 s0 line
    R_CONNS=$n R_TUNNELS=$want R_CONVERGED=false R_BRINGUP=null
    start=start
    [ "$PACE" -gt 0 ] && start=none
    write_config hub "$n" "$start"
    write_config peer "$n" "$start"
    log "$PROG: $n connection(s), $want tunnels: starting the hub and the peer"
    start_daemon hub
    wait_daemon hub "$PID_HUB"
    t0=$(now_ns)
    start_daemon peer
    wait_daemon peer "$PID_PEER"
    deadline=$(( t0 + TIMEOUT * 1000000000 ))
    if [ "$PACE" -gt 0 ]; then
        # One connection (two tunnels) every 2/PACE s, on a fixed schedule from t0.
        t0=$(now_ns)
        step=$(( 2000000000 / PACE ))
        for ((i = 0; i < n; i++)); do
            next=$(( t0 + i * step ))
            while [ "$(now_ns)" -lt "$next" ]; do
                sleep "$(awk -v d=$((next - $(now_ns))) 'BEGIN { printf "%.3f", (d > 0 ? d : 0) / 1e9 }')"
            done
            ctl peer initiate --timeout 0 "c$i" >/dev/null ||
                log "$PROG: ironsecctl initiate c$i failed"
            [ "$(now_ns)" -lt "$deadline" ] || break
        done
    fi
    # Poll both sides until every tunnel is up, at most every 0.5 s (status answers cost the
    # daemons CPU too, but this is before the measurement).
    while :; do
        alive "$PID_HUB" || { tail -n 20 "$WORK/hub.log" | indent >&2; die "the hub's ironsecd exited during bring-up"; }
        alive "$PID_PEER" || { tail -n 20 "$WORK/peer.log" | indent >&2; die "the peer's ironsecd exited during bring-up"; }
        if line=$(side_status hub); then hub_up=${line%% *}; fi
        if line=$(side_status peer); then peer_up=${line%% *}; fi
        if [ "$hub_up" -ge "$want" ] && [ "$peer_up" -ge "$want" ]; then
            R_CONVERGED=true
            R_BRINGUP=$(secs_between "$t0" "$(now_ns)")
            break
        fi
        if [ "$(now_ns)" -ge "$deadline" ]; then
            log "$PROG: bring-up did not converge in $TIMEOUT s: hub $hub_up/$want, peer $peer_up/$want up"
            break
        fi
        if [ "$((hub_up + peer_up))" != "$last" ]; then
            log "    $(secs_between "$t0" "$(now_ns)") s: hub $hub_up/$want, peer $peer_up/$want tunnels up"
            last=$((hub_up + peer_up))
        fi
        sleep 0.5
    done
    R_HUB_UP=$hub_up R_PEER_UP=$peer_up
    [ "$R_CONVERGED" = true ] && log "    all $want tunnels up on both sides after $R_BRINGUP s"
    sleep "$SETTLE"
    line=$(side_status hub) || die "the hub's ironsecd does not answer status"
    rx0=${line#* }
    log "    measuring idle CPU for $SECS s (no traffic, no status requests)"
    read -r R_LOAD _ </proc/loadavg
    h0=$(cpu_ticks "$PID_HUB") p0=$(cpu_ticks "$PID_PEER") hn0=$(run_ns "$PID_HUB") pn0=$(run_ns "$PID_PEER") w0=$(now_ns)
    sleep "$SECS"
    h1=$(cpu_ticks "$PID_HUB") p1=$(cpu_ticks "$PID_PEER") hn1=$(run_ns "$PID_HUB") pn1=$(run_ns "$PID_PEER") w1=$(now_ns)
    R_WINDOW=$(secs_between "$w0" "$w1")
    R_HUB_CPU=$(awk -v t=$((h1 - h0)) -v hz="$CLK_TCK" -v w="$R_WINDOW" 'BEGIN { printf "%.2f", t / hz / w * 100 }')
    R_PEER_CPU=$(awk -v t=$((p1 - p0)) -v hz="$CLK_TCK" -v w="$R_WINDOW" 'BEGIN { printf "%.2f", t / hz / w * 100 }')
    R_HUB_NS=$(ns_pct "$hn0" "$hn1" "$w0" "$w1") R_PEER_NS=$(ns_pct "$pn0" "$pn1" "$w0" "$w1")
    s0=$(now_ns)
    line=$(side_status hub) || die "the hub's ironsecd does not answer status"
    R_STATUS=$(secs_between "$s0" "$(now_ns)")
    R_HUB_UP_AFTER=${line%% *} rx1=${line#* }
    R_HUB_IKE_RX=$((rx1 - rx0))
    line=$(side_status peer) || die "the peer's ironsecd does not answer status"
    R_PEER_UP_AFTER=${line%% *}
    log "    hub $R_HUB_CPU % CPU ($R_HUB_NS by schedstat), peer $R_PEER_CPU % CPU ($R_PEER_NS) over $R_WINDOW s; tunnels up after: hub $R_HUB_UP_AFTER, peer $R_PEER_UP_AFTER; IKE messages the hub received meanwhile: $R_HUB_IKE_RX; one 'ironsecctl status --json' of the hub afterwards took $R_STATUS s"
    stop_daemons
}

# The R_* of the last run_case as a JSON object.
case_json() {
    printf '{"connections":%s,"tunnels":%s,"converged":%s,"bringup_secs":%s,"tunnels_up_hub":%s,"tunnels_up_peer":%s,"window_secs":%s,"hub_cpu_pct":%s,"peer_cpu_pct":%s,"hub_cpu_pct_schedstat":%s,"peer_cpu_pct_schedstat":%s,"tunnels_up_hub_after":%s,"tunnels_up_peer_after":%s,"hub_ike_received_during":%s,"hub_status_secs":%s,"loadavg_1min_before":%s}' \
        "$R_CONNS" "$R_TUNNELS" "$R_CONVERGED" "$R_BRINGUP" "$R_HUB_UP" "$R_PEER_UP" "$R_WINDOW" \
        "$R_HUB_CPU" "$R_PEER_CPU" "$R_HUB_NS" "$R_PEER_NS" "$R_HUB_UP_AFTER" "$R_PEER_UP_AFTER" "$R_HUB_IKE_RX" \
        "$R_STATUS" "$R_LOAD"
}

case_text() {
    local bring="did NOT converge in $TIMEOUT s"
    [ "$R_CONVERGED" = true ] && bring="bring-up $R_BRINGUP s"
    printf '%5s tunnels (%s connections): hub %6s %% CPU (%s by schedstat), peer %6s %% CPU (%s); up %s/%s hub, %s/%s peer (%s; after the window %s hub, %s peer); hub IKE messages in the window: %s\n' \
        "$R_TUNNELS" "$R_CONNS" "$R_HUB_CPU" "$R_HUB_NS" "$R_PEER_CPU" "$R_PEER_NS" "$R_HUB_UP" "$R_TUNNELS" "$R_PEER_UP" \
        "$R_TUNNELS" "$bring" "$R_HUB_UP_AFTER" "$R_PEER_UP_AFTER" "$R_HUB_IKE_RX"
}

# Ratio $1 / $2 with 1 decimal, or null when $2 is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "null"; else printf "%.1f", a / b }'; }

# ---------------------------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironsec-idle.XXXXXX")
(
    umask 077
    printf '0x%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$WORK/idle.psk"
)
make_topology

BASE_JSON=null BASE_TEXT="" BASE_HUB=0 BASE_PEER=0 BASE_HUB_NS=null BASE_PEER_NS=null BASE_OK=true
if [ "$BASELINE" = 1 ]; then
    run_case 1
    BASE_JSON=$(case_json) BASE_TEXT=$(case_text)
    BASE_HUB=$R_HUB_CPU BASE_PEER=$R_PEER_CPU BASE_HUB_NS=$R_HUB_NS BASE_PEER_NS=$R_PEER_NS
    BASE_OK=$R_CONVERGED
fi
run_case "$CONNS"
MAIN_JSON=$(case_json)
HUB_RATIO=null PEER_RATIO=null
if [ "$BASELINE" = 1 ]; then
    # The exact run times where there are (a tick is 10 ms: the baseline's few ticks would make
    # a coarse denominator), else the clock ticks.
    if [ "$R_HUB_NS" != null ] && [ "$BASE_HUB_NS" != null ]; then
        HUB_RATIO=$(ratio "$R_HUB_NS" "$BASE_HUB_NS") PEER_RATIO=$(ratio "$R_PEER_NS" "$BASE_PEER_NS")
    else
        HUB_RATIO=$(ratio "$R_HUB_CPU" "$BASE_HUB") PEER_RATIO=$(ratio "$R_PEER_CPU" "$BASE_PEER")
    fi
fi
PACE_JSON=null
[ "$PACE" -gt 0 ] && PACE_JSON=$PACE
CONDITIONS="no traffic; dpd_interval = 0 (DPD off); rekey_time = ike_rekey_time = $REKEY s; active-standby, 2 tunnels per connection; peer initiates, hub answers"

if [ "$JSON_OUT" = 1 ]; then
    printf '{"script":"idle-hub","ironsecd":"%s","conditions":"%s","cpu":"%% of one core: utime+stime from /proc/PID/stat (whole clock ticks), and *_schedstat from the thread run times in /proc/PID/task/*/schedstat (ns)","clk_tck":%s,"seconds":%s,"settle_secs":%s,"pace_tunnels_per_sec":%s,%s,"baseline":%s,"hub_cpu_ratio":%s,"peer_cpu_ratio":%s}\n' \
        "$D" "$CONDITIONS" "$CLK_TCK" "$SECS" "$SETTLE" "$PACE_JSON" "${MAIN_JSON:1:${#MAIN_JSON}-2}" \
        "$BASE_JSON" "$HUB_RATIO" "$PEER_RATIO"
else
    say "ironsecd idle control-plane cost ($D)"
    say "conditions: $CONDITIONS"
    say "CPU: utime+stime of each daemon (/proc/PID/stat, all threads) over $SECS s, % of one core (1 tick = $((1000 / CLK_TCK)) ms, so $(awk -v hz="$CLK_TCK" -v s="$SECS" 'BEGIN { printf "%.2f", 100 / hz / s }') % resolution); in brackets the same from the threads' schedstat run times (ns)"
    if [ "$PACE" -gt 0 ]; then say "bring-up paced at $PACE tunnels/s"; else say "bring-up: all tunnels at once"; fi
    [ -n "$BASE_TEXT" ] && say "$BASE_TEXT"
    case_text
    [ "$BASELINE" = 1 ] && say "CPU ratio $R_TUNNELS tunnels / 2 tunnels (schedstat figures where there are): hub $HUB_RATIO, peer $PEER_RATIO"
fi
[ "$R_CONVERGED" = true ] && [ "$BASE_OK" = true ] || exit 1
