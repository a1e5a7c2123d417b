#!/usr/bin/env bash
# Route-based connections at scale (issue 22): one hub with N route-based connections (a TUN
# device each), what bringing them up costs, what the idle hub costs, and whether a packet's
# cost grows with the number of interfaces (not part of the test suite;
# tests/route_scale_script.rs runs it at a tiny scale).
#
# Four namespaces in a row, PREFIX-lh, PREFIX-hub, PREFIX-spk and PREFIX-ls:
#   lh 10.10.0.2 --- 10.10.0.1 hub 192.0.2.1 ==== 192.0.2.2 spk 10.20.0.1 --- 10.20.0.2 ls
# hub and spk each run one ironsecd with --connections N route-based IKEv2 connections (PSK)
# over the one uplink; the spoke plays all N spokes. Connection i (1..N) has
# `interface = "vti<i>"` on both sides, a /30 of 169.254.0.0/16 as interface_address (hub .1,
# spoke .2 of the i-th /30), and one static route on each side: the hub routes spoke site i,
# 10.128.0.0/10's i-th /24, into it, the spoke routes hub site i, 10.64.0.0/10's i-th /24.
# The LAN hosts lh and ls carry the first and the last site's .1 addresses, so an iperf3 TCP
# stream from lh (bound to hub site i) to ls (spoke site i) goes through connection i only,
# both ways; the hub's vti<i> byte counter is reported beside it to show it did. Selectors are
# the route-based default (0.0.0.0/0 and ::/0) and the spoke initiates every connection at once
# (start_action = "start"); the hub only answers.
#
# Reported for N (and with --baseline for N = 1 first, in the same namespaces):
#   hub start      ironsecd launched -> it answers on its control socket (N devices created,
#                  addressed and routed)
#   setup          the spoke's ironsecd launched -> all N connections up on the hub (an
#                  established IKE SA with a CHILD_SA and both ESP SAs, from `ironsecctl status
#                  --json` polled every 0.5 s); negotiate: from the spoke answering instead;
#                  rate: N / setup; what it cost: the IKE messages the hub received and
#                  dropped (its queue, half-open limit, cookies), the spoke's retransmissions and
#                  each namespace's UDP receive-buffer drops (/proc/net/snmp RcvbufErrors)
#   hub memory     VmRSS and VmHWM of the hub's ironsecd after --settle s; per connection: RSS/N,
#                  and with --baseline (RSS(N) - RSS(1)) / (N - 1). The kernel's side (the
#                  devices, their queues, addresses and routes) as the change of the machine's
#                  unreclaimable slab and per-CPU memory (/proc/meminfo SUnreclaim + Percpu)
#                  across the hub's start: approximate, since anything else running on the
#                  machine moves it too
#   idle CPU       utime+stime of each daemon over --seconds with no traffic and no status
#                  requests, % of one core, and the same from the threads' schedstat run times
#                  (as idle-hub.sh); DPD off and rekeying a day away, so nothing is due; the
#                  hub's IKE messages received meanwhile (0: the window was idle)
#   status         how long one `ironsecctl status --json` of the hub takes
#   TCP            iperf3 TCP streams of --tcp-seconds s, one at a time, through the first and
#                  through the last connection (receiver's Mbit/s, median of --tcp-runs), and
#                  with --baseline their ratios to the same through the single connection of
#                  N = 1; beside them how busy the machine's CPUs were meanwhile and how much
#                  time the hypervisor stole (/proc/stat), since a shared host moves these figures
#   hub stop       SIGTERM -> the hub's ironsecd gone (its N devices removed)
#
# Usage (as root):
#   netns-scripts/route-scale.sh [--connections N] [--seconds S] [--tcp-seconds T]
#                                [--tcp-runs R] [--timeout T] [--settle S] [--baseline]
#                                [--json]
#
#   --connections N  route-based connections (default 1000; 1..10000)
#   --seconds S      length of the idle CPU measurement (default 30)
#   --tcp-seconds T  length of each iperf3 stream (default 10; each is also killed after T+30 s)
#   --tcp-runs R     streams through each measured connection, first and last taking turns;
#                    the median is the figure (default 3; all of them are in the JSON report)
#   --timeout T      bound on each bring-up, seconds (default 600); on timeout the rest is
#                    still measured and reported, with "converged": false, and the exit status
#                    is 1
#   --settle S       seconds between bring-up and the measurements (default 3)
#   --baseline       first the same measurement with 1 connection, in the same namespaces, and
#                    the ratios of the TCP figures to it
#   --json           print one JSON object on stdout instead of the text report
#
# Environment: IRONSECD (the daemon; default target/release/ironsecd, or
# $CARGO_TARGET_DIR/release/ironsecd), IRONSECCTL (default: ironsecctl next to IRONSECD),
# IRONSEC_ROUTE_SCALE_PREFIX (namespace prefix; default rs<pid>), IRONSEC_LOG (daemons' log
# level, default warn). This script builds nothing: `cargo build --release -p ironsecd` first.
# Needs iperf3 and python3. Progress goes to stderr, the report to stdout. Every process it
# starts is stopped by PID and its namespaces (with the daemons' TUN devices) are removed on
# exit; the root namespace's interfaces are never touched. The daemons' descriptor limit is
# raised for them alone when N devices of one queue per CPU need more than the hard limit.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=route-scale.sh
PREFIX=${IRONSEC_ROUTE_SCALE_PREFIX:-rs$$}
MSG_FD=2
# shellcheck source=netns-scripts/lib.sh
. "$HERE/lib.sh"

CONNS=1000 SECS=30 TCP_SECS=10 TCP_RUNS=3 TIMEOUT=600 SETTLE=3 BASELINE=0 JSON_OUT=0
while [ $# -gt 0 ]; do
    case "$1" in
        --connections) CONNS=${2:?--connections needs a number}; shift 2 ;;
        --seconds) SECS=${2:?--seconds needs a number}; shift 2 ;;
        --tcp-seconds) TCP_SECS=${2:?--tcp-seconds needs a number}; shift 2 ;;
        --tcp-runs) TCP_RUNS=${2:?--tcp-runs needs a number}; shift 2 ;;
        --timeout) TIMEOUT=${2:?--timeout needs a number}; shift 2 ;;
        --settle) SETTLE=${2:?--settle needs a number}; shift 2 ;;
        --baseline) BASELINE=1; shift ;;
        --json) JSON_OUT=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
is_count "$CONNS" 1 10000 || die "--connections must be 1..10000, not '$CONNS'"
is_count "$SECS" 1 3600 || die "--seconds must be 1..3600, not '$SECS'"
is_count "$TCP_SECS" 1 600 || die "--tcp-seconds must be 1..600, not '$TCP_SECS'"
is_count "$TCP_RUNS" 1 20 || die "--tcp-runs must be 1..20, not '$TCP_RUNS'"
is_count "$TIMEOUT" 1 86400 || die "--timeout must be 1..86400, not '$TIMEOUT'"
is_count "$SETTLE" 0 600 || die "--settle must be 0..600, not '$SETTLE'"
[[ $PREFIX =~ ^[A-Za-z0-9_-]{1,40}$ ]] || die "IRONSEC_ROUTE_SCALE_PREFIX '$PREFIX' is not 1-40 of [A-Za-z0-9_-]"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
# python3 reads the JSON reports; the system's own where there is one (a version manager's shim
# can take a third of a second to start).
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
command -v "$PY" >/dev/null || die "needs python3 to read 'ironsecctl status --json' and iperf3's report"
command -v iperf3 >/dev/null || die "needs iperf3 (Debian: apt-get install iperf3)"

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
LH="$PREFIX-lh" HUB="$PREFIX-hub" SPK="$PREFIX-spk" LS="$PREFIX-ls"
HUB_WAN=192.0.2.1 SPK_WAN=192.0.2.2
REKEY=86400
# Descriptors a daemon needs: one per device queue (one queue per CPU) and some.
NOFILE=$(( CONNS * $(nproc) + 4096 ))
PID_HUB="" PID_SPK="" PID_IPERF="" WORK="" NS_MADE=()

on_exit() {
    stop_pid "$PID_HUB"; stop_pid "$PID_SPK"; stop_pid "$PID_IPERF"
    local ns
    for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
    if [ -n "$WORK" ]; then rm -rf -- "$WORK"; fi
}
install_cleanup_traps

# Connection i's (1-based) addresses: the hub's and the spoke's site /24 prefix (without the
# last octet) and the /30's two addresses. Sets HSITE, SSITE, HLINK, SLINK.
conn_addrs() { # i
    local k=$(($1 - 1)) base
    HSITE="10.$((64 + k / 256)).$((k % 256))" SSITE="10.$((128 + k / 256)).$((k % 256))"
    base=$((k * 4))
    HLINK="169.254.$((base / 256)).$((base % 256 + 1))" SLINK="169.254.$((base / 256)).$((base % 256 + 2))"
}

# ---------------------------------------------------------------------------------------------
# Topology: every veth pair is created inside one of the script's namespaces with its other
# end moved straight into the next one, so no interface ever exists in the root namespace.

make_topology() {
    local ns
    for ns in "$LH" "$HUB" "$SPK" "$LS"; do
        if ip netns list | awk -v n="$ns" '$1 == n { f = 1 } END { exit !f }'; then die "namespace $ns already exists (another run? set IRONSEC_ROUTE_SCALE_PREFIX)"; fi
        ip netns add "$ns"
        NS_MADE+=("$ns")
        ip -n "$ns" link set lo up
    done
    ip -n "$HUB" link add lan type veth peer name lan netns "$LH"
    ip -n "$HUB" link add wan type veth peer name wan netns "$SPK"
    ip -n "$SPK" link add lan type veth peer name lan netns "$LS"
    ip -n "$LH" addr add 10.10.0.2/24 dev lan
    ip -n "$HUB" addr add 10.10.0.1/24 dev lan
    ip -n "$HUB" addr add "$HUB_WAN/24" dev wan
    ip -n "$SPK" addr add "$SPK_WAN/24" dev wan
    ip -n "$SPK" addr add 10.20.0.1/24 dev lan
    ip -n "$LS" addr add 10.20.0.2/24 dev lan
    for ns in "$LH" "$HUB" "$SPK" "$LS"; do
        ip -n "$ns" link set lan up 2>/dev/null || true
        ip -n "$ns" link set wan up 2>/dev/null || true
    done
    ip netns exec "$HUB" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$SPK" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$LH" route add default via 10.10.0.1
    ip -n "$LS" route add default via 10.20.0.1
    # The sites behind each gateway's LAN host (the tunnels' routes are the daemons' own).
    ip -n "$HUB" route add 10.64.0.0/10 via 10.10.0.2
    ip -n "$SPK" route add 10.128.0.0/10 via 10.20.0.2
}

# The first and the last site's .1 addresses on the LAN hosts (loopback, /32), for the TCP
# streams of a run with $1 connections.
add_site_hosts() { # conns
    local i
    for i in 1 "$1"; do
        conn_addrs "$i"
        ip -n "$LH" addr replace "$HSITE.1/32" dev lo
        ip -n "$LS" addr replace "$SSITE.1/32" dev lo
    done
}

# ---------------------------------------------------------------------------------------------
# Configs

# Config of side $1 (hub|spk) with $2 connections to WORK/$1.toml.
write_config() { # side conns
    local side=$1 n=$2 i lid rid local remote addr route act
    {
        printf '[gateway]\ntun = "rs0"\ncontrol_socket = "%s"\n\n' "$WORK/$side.sock"
        for ((i = 1; i <= n; i++)); do
            conn_addrs "$i"
            if [ "$side" = hub ]; then
                lid=hub.rs.example rid="c$i.rs.example" local=$HUB_WAN remote=$SPK_WAN
                addr="$HLINK/30" route="$SSITE.0/24" act='start_action = "none"'
            else
                lid="c$i.rs.example" rid=hub.rs.example local=$SPK_WAN remote=$HUB_WAN
                addr="$SLINK/30" route="$HSITE.0/24"
                act='start_action = "start"'$'\n''close_action = "restart"'
            fi
            cat <<EOF
[[connection]]
name = "c$i"
keying = "ike"
interface = "vti$i"
interface_address = "$addr"
routes = ["$route"]
local_id = "$lid"
remote_id = "$rid"
psk_file = "$WORK/rs.psk"
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
$act
dpd_interval = 0
rekey_time = $REKEY
ike_rekey_time = $REKEY
tunnels = [ { local = "$local", remote = "$remote" } ]

EOF
        done
    } >"$WORK/$side.toml"
}

# ---------------------------------------------------------------------------------------------
# Daemons

# Start ironsecd for side $1 (hub|spk) in its namespace; sets PID_HUB or PID_SPK. The
# subshell raises the descriptor limit where needed and execs `ip netns exec`, which execs the
# daemon, so $! is the daemon's own PID.
start_daemon() { # side
    local ns=$HUB
    [ "$1" = spk ] && ns=$SPK
    (
        if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$NOFILE" ]; then ulimit -n "$NOFILE"; fi
        IRONSEC_LOG="${IRONSEC_LOG:-warn}" exec ip netns exec "$ns" "$D" --config "$WORK/$1.toml" \
            </dev/null >>"$WORK/$1.log" 2>&1
    ) &
    if [ "$1" = hub ]; then PID_HUB=$!; else PID_SPK=$!; fi
}

# SIGTERM to PID $1, and up to 120 s for it to go (removing thousands of devices takes the
# kernel a while), then SIGKILL; prints the seconds it took.
stop_timed() { # pid
    local pid=$1 t0 deadline
    t0=$(now_ns)
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$(( t0 + 120 * 1000000000 ))
        while alive "$pid" && [ "$(now_ns)" -lt "$deadline" ]; do sleep 0.05; done
        if alive "$pid"; then
            log "$PROG: pid $pid ignored SIGTERM for 120 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    secs_between "$t0" "$(now_ns)"
}

# Status of side $1 as "up ike_received": connections with a tunnel up (an established IKE SA
# with a CHILD_SA and SAs in both directions installed) and the IKE messages the daemon has
# received. Returns 1 if ironsecctl fails.
side_status() { # side
    ctl "$1" status --json 2>/dev/null | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
up = 0
for c in d.get("connections") or []:
    for t in c.get("tunnels") or []:
        ike = t.get("ike") or {}
        if (t.get("state") == "up" and ike.get("state") == "established"
                and (ike.get("children") or 0) >= 1 and t.get("outbound") and t.get("inbound")):
            up += 1
            break
print(up, (d.get("ike") or {}).get("received", 0))'
}

# IKE counters of side $1 after bring-up: "received retransmits_sent queue_dropped
# half_open_dropped cookies_sent" (the kernel's UDP receive-buffer drops: lib.sh's
# udp_rcvbuf_errors).
ike_counters() { # side
    ctl "$1" status --json 2>/dev/null | "$PY" -c '
import json, sys
i = json.load(sys.stdin).get("ike") or {}
print(*[int(i.get(k) or 0) for k in ("received", "retransmits_sent", "queue_dropped", "half_open_dropped", "cookies_sent")])'
}

# SUnreclaim + Percpu of /proc/meminfo, KiB: the kernel memory devices and routes take.
kernel_kib() {
    awk '$1 == "SUnreclaim:" || $1 == "Percpu:" { s += $2 } END { print s }' /proc/meminfo
}

# The hub's TUN devices named vti*.
hub_vtis() {
    ip netns exec "$HUB" sh -c 'n=0; for d in /sys/class/net/vti*; do [ -e "$d" ] && n=$((n + 1)); done; echo $n'
}

# Bytes the hub's kernel has sent into device $1 (what ironsecd read from it).
hub_tx_bytes() { # dev
    ip netns exec "$HUB" cat "/sys/class/net/$1/statistics/tx_bytes" 2>/dev/null || echo 0
}

# ---------------------------------------------------------------------------------------------
# TCP

start_iperf_server() {
    ip netns exec "$LS" iperf3 -s </dev/null >"$WORK/iperf3-server.log" 2>&1 &
    PID_IPERF=$!
    local i
    for i in $(seq 50); do
        if ip netns exec "$LS" ss -Hltn 'sport = :5201' | grep -q .; then return 0; fi
        alive "$PID_IPERF" || break
        sleep 0.1
    done
    cat "$WORK/iperf3-server.log" >&2
    die "iperf3 -s does not listen in $LS"
}

# One TCP stream of TCP_SECS s from hub site $1 to spoke site $1 (so through connection $1).
# Sets T_MBPS (receiver's Mbit/s, or null) and T_BYTES (bytes the hub's vti$1 carried meanwhile).
tcp_through() { # i
    local i=$1 b0 b1 out
    conn_addrs "$i"
    b0=$(hub_tx_bytes "vti$i")
    out=$(timeout -k 5 $((TCP_SECS + 30)) ip netns exec "$LH" iperf3 -c "$SSITE.1" -B "$HSITE.1" \
        -t "$TCP_SECS" --connect-timeout 5000 -J 2>/dev/null) || true
    b1=$(hub_tx_bytes "vti$i")
    T_BYTES=$((b1 - b0))
    T_MBPS=$("$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print("%.1f" % (d["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception:
    print("null")' <<<"$out")
    if [ "$T_MBPS" = null ]; then
        log "$PROG: iperf3 through connection c$i failed: $(printf '%s' "$out" | "$PY" -c 'import json,sys
try: print(json.load(sys.stdin).get("error", "no report"))
except Exception: print("no report")')"
    fi
    log "    TCP through c$i (vti$i): $T_MBPS Mbit/s, hub vti$i carried $T_BYTES bytes"
}

# --tcp-runs streams through each connection of $@, taking turns. Sets TCP_MEDIAN[i],
# TCP_ALL[i] (a JSON list) and TCP_BYTES[i] (the hub's vti<i> bytes in the median run).
tcp_rounds() { # i...
    local r i
    declare -gA TCP_MEDIAN=() TCP_ALL=() TCP_BYTES=() TCP_LIST=()
    for ((r = 0; r < TCP_RUNS; r++)); do
        for i in "$@"; do
            tcp_through "$i"
            TCP_LIST[$i]+="$T_MBPS:$T_BYTES "
        done
    done
    for i in "$@"; do
        # The median of the figures (a failed run, null, counts as the lowest), its bytes.
        read -r TCP_MEDIAN[$i] TCP_BYTES[$i] TCP_ALL[$i] < <(printf '%s\n' ${TCP_LIST[$i]} | awk -F: '
            { v[NR] = ($1 == "null" ? -1 : $1); b[NR] = $2; raw[NR] = $1 }
            END {
                for (i = 1; i <= NR; i++) o[i] = i
                for (i = 1; i <= NR; i++) for (j = i + 1; j <= NR; j++) if (v[o[j]] < v[o[i]]) { t = o[i]; o[i] = o[j]; o[j] = t }
                m = o[int((NR + 1) / 2)]
                all = "["; for (i = 1; i <= NR; i++) all = all (i > 1 ? "," : "") raw[i]; all = all "]"
                print raw[m], b[m], all
            }')
    done
}

# ---------------------------------------------------------------------------------------------
# One measurement with $1 connections. Sets R_* (see the report).

run_case() { # conns
    local n=$1 t0 t_spk deadline hub_up=0 spk_up=0 last=-1 line k0
    local h0 p0 h1 p1 hn0 pn0 hn1 pn1 w0 w1 rx0 rx1 s0
    R_CONNS=$n R_CONVERGED=false R_SETUP=null R_NEGOTIATE=null R_RATE=null
    write_config hub "$n"
    write_config spk "$n"
    add_site_hosts "$n"
    log "$PROG: $n route-based connection(s): starting the hub"
    k0=$(kernel_kib)
    t0=$(now_ns)
    start_daemon hub
    wait_daemon hub "$PID_HUB" 300
    R_HUB_START=$(secs_between "$t0" "$(now_ns)")
    R_KERNEL=$(( $(kernel_kib) - k0 ))
    R_KERNEL_PER=$(awk -v k="$R_KERNEL" -v n="$n" 'BEGIN { printf "%.1f", k / n }')
    R_HUB_IFACES=$(hub_vtis)
    log "    the hub answers after $R_HUB_START s with $R_HUB_IFACES vti devices (kernel memory +$R_KERNEL KiB); starting the spoke"
    t0=$(now_ns)
    start_daemon spk
    wait_daemon spk "$PID_SPK" 300
    t_spk=$(now_ns)
    R_SPK_START=$(secs_between "$t0" "$t_spk")
    deadline=$(( t0 + TIMEOUT * 1000000000 ))
    while :; do
        alive "$PID_HUB" || { tail -n 20 "$WORK/hub.log" | indent >&2; die "the hub's ironsecd exited during bring-up"; }
        alive "$PID_SPK" || { tail -n 20 "$WORK/spk.log" | indent >&2; die "the spoke's ironsecd exited during bring-up"; }
        if line=$(side_status hub); then hub_up=${line%% *}; fi
        if [ "$hub_up" -ge "$n" ]; then
            R_CONVERGED=true
            s0=$(now_ns)
            R_SETUP=$(secs_between "$t0" "$s0") R_NEGOTIATE=$(secs_between "$t_spk" "$s0")
            R_RATE=$(awk -v n="$n" -v s="$R_SETUP" 'BEGIN { printf "%.1f", n / s }')
            break
        fi
        if [ "$(now_ns)" -ge "$deadline" ]; then
            log "$PROG: bring-up did not converge in $TIMEOUT s: $hub_up/$n connections up on the hub"
            break
        fi
        if [ "$hub_up" != "$last" ]; then
            log "    $(secs_between "$t0" "$(now_ns)") s: $hub_up/$n connections up on the hub"
            last=$hub_up
        fi
        sleep 0.5
    done
    R_HUB_UP=$hub_up
    if line=$(side_status spk); then spk_up=${line%% *}; fi
    R_SPK_UP=$spk_up
    # What bring-up cost in retransmissions and where messages were lost.
    read -r R_HUB_IKE_IN _ R_HUB_IKE_QDROP R_HUB_HALFOPEN R_HUB_COOKIES < <(ike_counters hub) || true
    read -r _ R_SPK_RETX _ _ _ < <(ike_counters spk) || true
    R_HUB_UDP_DROPS=$(udp_rcvbuf_errors "$HUB") R_SPK_UDP_DROPS=$(udp_rcvbuf_errors "$SPK")
    log "    bring-up: hub received $R_HUB_IKE_IN IKE messages (queue dropped $R_HUB_IKE_QDROP, half-open dropped $R_HUB_HALFOPEN, cookies sent $R_HUB_COOKIES, UDP receive-buffer drops $R_HUB_UDP_DROPS); spoke retransmitted $R_SPK_RETX (UDP receive-buffer drops $R_SPK_UDP_DROPS)"
    [ "$R_CONVERGED" = true ] && log "    all $n connections up on the hub $R_SETUP s after the spoke's start ($R_RATE/s; spoke start $R_SPK_START s, negotiation $R_NEGOTIATE s); spoke: $R_SPK_UP up"
    sleep "$SETTLE"
    R_RSS=$(vm_kib "$PID_HUB" VmRSS) R_HWM=$(vm_kib "$PID_HUB" VmHWM)
    R_RSS_PER=$(awk -v r="$R_RSS" -v n="$n" 'BEGIN { printf "%.1f", r / n }')
    line=$(side_status hub) || die "the hub's ironsecd does not answer status"
    rx0=${line#* }
    log "    hub VmRSS $R_RSS KiB (peak $R_HWM KiB); measuring idle CPU for $SECS s (no traffic, no status requests)"
    read -r R_LOAD _ </proc/loadavg
    h0=$(cpu_ticks "$PID_HUB") p0=$(cpu_ticks "$PID_SPK") hn0=$(run_ns "$PID_HUB") pn0=$(run_ns "$PID_SPK") w0=$(now_ns)
    sleep "$SECS"
    h1=$(cpu_ticks "$PID_HUB") p1=$(cpu_ticks "$PID_SPK") hn1=$(run_ns "$PID_HUB") pn1=$(run_ns "$PID_SPK") w1=$(now_ns)
    R_WINDOW=$(secs_between "$w0" "$w1")
    R_HUB_CPU=$(awk -v t=$((h1 - h0)) -v hz="$CLK_TCK" -v w="$R_WINDOW" 'BEGIN { printf "%.2f", t / hz / w * 100 }')
    R_SPK_CPU=$(awk -v t=$((p1 - p0)) -v hz="$CLK_TCK" -v w="$R_WINDOW" 'BEGIN { printf "%.2f", t / hz / w * 100 }')
    R_HUB_NS=$(ns_pct "$hn0" "$hn1" "$w0" "$w1") R_SPK_NS=$(ns_pct "$pn0" "$pn1" "$w0" "$w1")
    s0=$(now_ns)
    ctl hub status --json >"$WORK/status.json" || die "the hub's ironsecd does not answer status"
    R_STATUS=$(secs_between "$s0" "$(now_ns)")
    R_STATUS_BYTES=$(wc -c <"$WORK/status.json")
    line=$(side_status hub) || die "the hub's ironsecd does not answer status"
    R_HUB_UP_AFTER=${line%% *} rx1=${line#* }
    R_HUB_IKE_RX=$((rx1 - rx0))
    log "    hub $R_HUB_CPU % CPU ($R_HUB_NS by schedstat), spoke $R_SPK_CPU % ($R_SPK_NS) over $R_WINDOW s; hub IKE messages meanwhile: $R_HUB_IKE_RX; one 'ironsecctl status --json' of the hub took $R_STATUS s ($R_STATUS_BYTES bytes)"
    local c0 c1
    c0=$(cpu_ticks_all)
    if [ "$n" -gt 1 ]; then tcp_rounds 1 "$n"; else tcp_rounds 1; fi
    c1=$(cpu_ticks_all)
    # Of the machine's CPU time while the streams ran: busy (all of ours and anyone else's in
    # this machine) and stolen by the hypervisor, %.
    read -r R_TCP_BUSY R_TCP_STEAL < <(cpu_busy_steal "$c0" "$c1")
    R_TCP_FIRST=${TCP_MEDIAN[1]} R_TCP_FIRST_BYTES=${TCP_BYTES[1]} R_TCP_FIRST_ALL=${TCP_ALL[1]}
    R_TCP_LAST=${TCP_MEDIAN[$n]} R_TCP_LAST_BYTES=${TCP_BYTES[$n]} R_TCP_LAST_ALL=${TCP_ALL[$n]}
    log "    TCP (median of $TCP_RUNS): c1 $R_TCP_FIRST Mbit/s $R_TCP_FIRST_ALL, c$n $R_TCP_LAST Mbit/s $R_TCP_LAST_ALL (CPUs busy $R_TCP_BUSY %, stolen $R_TCP_STEAL %)"
    R_SPK_STOP=$(stop_timed "$PID_SPK")
    R_HUB_STOP=$(stop_timed "$PID_HUB")
    PID_HUB="" PID_SPK=""
    log "    stopped: the spoke in $R_SPK_STOP s, the hub in $R_HUB_STOP s"
}

# The R_* of the last run_case as a JSON object.
case_json() {
    printf '{"connections":%s,"converged":%s,"hub_start_secs":%s,"hub_interfaces":%s,"kernel_kib":%s,"kernel_per_connection_kib":%s,"spoke_start_secs":%s,"setup_secs":%s,"negotiate_secs":%s,"setup_per_sec":%s,"connections_up_hub":%s,"connections_up_spoke":%s,"hub_ike_received":%s,"hub_ike_queue_dropped":%s,"hub_ike_half_open_dropped":%s,"hub_ike_cookies_sent":%s,"hub_udp_rcvbuf_errors":%s,"spoke_ike_retransmits_sent":%s,"spoke_udp_rcvbuf_errors":%s,"hub_rss_kib":%s,"hub_hwm_kib":%s,"hub_rss_per_connection_kib":%s,"window_secs":%s,"hub_cpu_pct":%s,"spoke_cpu_pct":%s,"hub_cpu_pct_schedstat":%s,"spoke_cpu_pct_schedstat":%s,"hub_ike_received_during":%s,"connections_up_hub_after":%s,"hub_status_secs":%s,"hub_status_bytes":%s,"tcp_first_mbps":%s,"tcp_first_runs_mbps":%s,"tcp_first_interface":"vti1","tcp_first_interface_bytes":%s,"tcp_last_mbps":%s,"tcp_last_runs_mbps":%s,"tcp_last_interface":"vti%s","tcp_last_interface_bytes":%s,"tcp_cpu_busy_pct":%s,"tcp_cpu_steal_pct":%s,"spoke_stop_secs":%s,"hub_stop_secs":%s,"loadavg_1min_before":%s}' \
        "$R_CONNS" "$R_CONVERGED" "$R_HUB_START" "$R_HUB_IFACES" "$R_KERNEL" "$R_KERNEL_PER" "$R_SPK_START" "$R_SETUP" "$R_NEGOTIATE" "$R_RATE" \
        "$R_HUB_UP" "$R_SPK_UP" "${R_HUB_IKE_IN:-null}" "${R_HUB_IKE_QDROP:-null}" "${R_HUB_HALFOPEN:-null}" "${R_HUB_COOKIES:-null}" \
        "${R_HUB_UDP_DROPS:-null}" "${R_SPK_RETX:-null}" "${R_SPK_UDP_DROPS:-null}" "$R_RSS" "$R_HWM" "$R_RSS_PER" "$R_WINDOW" "$R_HUB_CPU" "$R_SPK_CPU" \
        "$R_HUB_NS" "$R_SPK_NS" "$R_HUB_IKE_RX" "$R_HUB_UP_AFTER" "$R_STATUS" "$R_STATUS_BYTES" "$R_TCP_FIRST" \
        "$R_TCP_FIRST_ALL" "$R_TCP_FIRST_BYTES" "$R_TCP_LAST" "$R_TCP_LAST_ALL" "$R_CONNS" "$R_TCP_LAST_BYTES" "$R_TCP_BUSY" "$R_TCP_STEAL" "$R_SPK_STOP" "$R_HUB_STOP" "$R_LOAD"
}

case_text() {
    local bring="did NOT converge in $TIMEOUT s ($R_HUB_UP/$R_CONNS up on the hub)"
    [ "$R_CONVERGED" = true ] && bring="setup $R_SETUP s ($R_SETUP_RATE_TEXT), spoke start $R_SPK_START s, negotiation $R_NEGOTIATE s"
    printf '%5s connections: hub start %s s (%s vti devices); %s\n' "$R_CONNS" "$R_HUB_START" "$R_HUB_IFACES" "$bring"
    printf '      hub memory: VmRSS %s KiB (%s KiB per connection), peak %s KiB; kernel (slab + per-CPU, approximate) %s KiB (%s KiB per connection)\n' "$R_RSS" "$R_RSS_PER" "$R_HWM" "$R_KERNEL" "$R_KERNEL_PER"
    printf '      idle CPU over %s s: hub %s %% (%s by schedstat), spoke %s %% (%s); hub IKE messages meanwhile %s; hub status --json %s s (%s bytes)\n' \
        "$R_WINDOW" "$R_HUB_CPU" "$R_HUB_NS" "$R_SPK_CPU" "$R_SPK_NS" "$R_HUB_IKE_RX" "$R_STATUS" "$R_STATUS_BYTES"
    printf '      TCP (median of %s): first connection (vti1) %s Mbit/s %s, last connection (vti%s) %s Mbit/s %s; stop: spoke %s s, hub %s s\n' \
        "$TCP_RUNS" "$R_TCP_FIRST" "$R_TCP_FIRST_ALL" "$R_CONNS" "$R_TCP_LAST" "$R_TCP_LAST_ALL" "$R_SPK_STOP" "$R_HUB_STOP"
}

# ---------------------------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironsec-route-scale.XXXXXX")
(
    umask 077
    printf '0x%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$WORK/rs.psk"
)
make_topology
start_iperf_server

BASE_JSON=null BASE_TEXT="" BASE_TCP=null BASE_RSS=0 BASE_OK=true
if [ "$BASELINE" = 1 ]; then
    run_case 1
    R_SETUP_RATE_TEXT="$R_RATE/s"
    BASE_JSON=$(case_json) BASE_TEXT=$(case_text)
    BASE_TCP=$R_TCP_FIRST BASE_RSS=$R_RSS BASE_OK=$R_CONVERGED
fi
run_case "$CONNS"
R_SETUP_RATE_TEXT="$R_RATE/s"
MAIN_JSON=$(case_json)
FIRST_RATIO=null LAST_RATIO=null MARGINAL=null
if [ "$BASELINE" = 1 ]; then
    FIRST_RATIO=$(ratio "$R_TCP_FIRST" "$BASE_TCP") LAST_RATIO=$(ratio "$R_TCP_LAST" "$BASE_TCP")
    if [ "$CONNS" -gt 1 ]; then
        MARGINAL=$(awk -v a="$R_RSS" -v b="$BASE_RSS" -v n="$CONNS" 'BEGIN { printf "%.1f", (a - b) / (n - 1) }')
    fi
fi
CONDITIONS="route-based connections, one tunnel each, 0.0.0.0/0 and ::/0 selectors (the default); spoke initiates all at once, hub answers; no traffic during the CPU window; dpd_interval = 0 (DPD off); rekey_time = ike_rekey_time = $REKEY s; TCP: iperf3 streams of $TCP_SECS s, one at a time, lh -> ls, median of $TCP_RUNS per connection"

if [ "$JSON_OUT" = 1 ]; then
    printf '{"script":"route-scale","ironsecd":"%s","conditions":"%s","cpu":"%% of one core: utime+stime from /proc/PID/stat (whole clock ticks), and *_schedstat from the thread run times in /proc/PID/task/*/schedstat (ns)","clk_tck":%s,"cpus":%s,"seconds":%s,"tcp_seconds":%s,"tcp_runs":%s,"settle_secs":%s,%s,"baseline":%s,"tcp_first_vs_baseline":%s,"tcp_last_vs_baseline":%s,"hub_rss_marginal_per_connection_kib":%s}\n' \
        "$D" "$CONDITIONS" "$CLK_TCK" "$(nproc)" "$SECS" "$TCP_SECS" "$TCP_RUNS" "$SETTLE" "${MAIN_JSON:1:${#MAIN_JSON}-2}" \
        "$BASE_JSON" "$FIRST_RATIO" "$LAST_RATIO" "$MARGINAL"
else
    say "ironsecd with route-based connections at scale ($D, $(nproc) CPUs)"
    say "conditions: $CONDITIONS"
    say "CPU: utime+stime of each daemon (/proc/PID/stat, all threads) over $SECS s, % of one core; in brackets the same from the threads' schedstat run times"
    [ -n "$BASE_TEXT" ] && say "$BASE_TEXT"
    case_text
    if [ "$BASELINE" = 1 ]; then
        say "TCP vs 1 connection: first $FIRST_RATIO, last $LAST_RATIO; hub RSS per added connection $MARGINAL KiB"
    fi
fi
[ "$R_CONVERGED" = true ] && [ "$BASE_OK" = true ] || exit 1
