#!/usr/bin/env bash
# ironsec throughput benchmark (not part of the test suite).
#
# On one topology (netns-scripts/topology.sh, prefix "bench") it measures iperf3 TCP from lanA to
# lanB with 1 and 4 parallel streams, each case --runs times for --time seconds, and reports the
# medians for
#   (a) no tunnel: plain routes on the gateways (gwA: 10.2.0.0/24 via 192.0.2.2, gwB: 10.1.0.0/24
#       via 192.0.2.1), the kernel forwarding in clear text;
#   (b) ironsec: plain routes removed, ironsecd running in gwA and gwB with a manually keyed
#       tunnel (configs derived from conf/static-gw-a.toml / static-gw-b.toml, fresh random keys);
#       ironsecd routes the remote subnet through its TUN device.
# For (b) it checks after every run that gwA's tunnel outbound counters account for the bytes
# iperf3 moved (so the traffic did cross the tunnel), and records the CPU seconds each ironsecd
# used (utime+stime from /proc/<pid>/stat) over all (b) runs.
#
# Usage (as root):
#   netns-scripts/bench.sh [--json] [--runs N] [--time SECS] [--suite S]
#
#   --runs N    runs per case (default 3); the median is reported
#   --time S    iperf3 -t per run in seconds (default 5; each run also has a 1 s omitted warm-up)
#   --suite S   aes128gcm16 (default) | aes256gcm16 | chacha20poly1305
#   --json      also print one JSON object with the results as the very last line of stdout
#
# Progress and diagnostics go to stderr; the table (and the JSON line) to stdout.
# Environment: IRONSEC_BENCH_PREFIX (namespace prefix, default "bench"), IRONSEC_BIN_DIR (use
# prebuilt binaries), IRONSEC_LOG (daemon log level, default warn), IRONSEC_BENCH_TXQUEUELEN
# (minimum txqueuelen of the TUN devices, default 1000), CARGO_TARGET_DIR.
# The machine shares its cores between both gateways, iperf3 and the kernel: compare the ratios
# of one run, not absolute numbers across machines.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034  # read by lib.sh
PROG=bench.sh MSG_FD=2
PREFIX="${IRONSEC_BENCH_PREFIX:-bench}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"    # sets ROOT TOPO LANA GWA GWB LANB; log die indent usage stop_pid ...
LANB_IP=10.2.0.2
TXQ="${IRONSEC_BENCH_TXQUEUELEN:-1000}"
OMIT=1

JSON_OUT=0 RUNS=3 TIME=5 SUITE=aes128gcm16
WORK="" PID_A="" PID_B="" SRV_PID="" CLI_PID="" RES=""

while [ $# -gt 0 ]; do
    case "$1" in
        --json) JSON_OUT=1 ;;
        --runs) [ $# -ge 2 ] || die "--runs needs a value"; RUNS=$2; shift ;;
        --runs=*) RUNS=${1#--runs=} ;;
        --time) [ $# -ge 2 ] || die "--time needs a value"; TIME=$2; shift ;;
        --time=*) TIME=${1#--time=} ;;
        --suite) [ $# -ge 2 ] || die "--suite needs a value"; SUITE=$2; shift ;;
        --suite=*) SUITE=${1#--suite=} ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
if ! [[ "$RUNS" =~ ^[0-9]+$ ]] || [ "$RUNS" -lt 1 ] || [ "$RUNS" -gt 99 ]; then die "--runs must be 1..99"; fi
if ! [[ "$TIME" =~ ^[0-9]+$ ]] || [ "$TIME" -lt 1 ] || [ "$TIME" -gt 600 ]; then die "--time must be 1..600 seconds"; fi
[[ "$TXQ" =~ ^[0-9]+$ ]] || die "IRONSEC_BENCH_TXQUEUELEN must be a number"
suite_keylen

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, veth, TUN)"
command -v ip >/dev/null || die "iproute2 is not installed (Debian: apt-get install iproute2)"
command -v iperf3 >/dev/null || die "iperf3 is not installed (Debian: apt-get install iperf3)"
command -v python3 >/dev/null || die "python3 is needed to read iperf3 --json (Debian: apt-get install python3)"
command -v timeout >/dev/null || die "timeout (coreutils) is not installed"
CLK_TCK=$(getconf CLK_TCK)
pick_json_tool    # python3 (checked above)

# Run by lib.sh's cleanup trap on every exit.
on_exit() {
    stop_pid "$CLI_PID"; stop_pid "$SRV_PID"
    teardown
}
install_cleanup_traps

find_binaries always "building: cargo build --release -p ironsecd"

# ---------------------------------------------------------------------------------------------
log "topology up (namespaces $PREFIX-*)"
topo up >&2
make_workdir bench
: >"$WORK/results.tsv"
write_configs
write_keys
check_configs

# One iperf3 run: fresh one-off server in lanB, client in lanA, both bounded by timeout.
# Sets RES="mbps received_bytes retransmits" or returns 1 (reason on stderr). The client runs in
# the background so that a signal interrupts `wait` at once (the trap then cleans up).
iperf_once() { # streams tag
    local p=$1 out="$WORK/iperf-$2.json" srv="$WORK/iperf-$2.srv" rc=0 res
    RES=""
    timeout -k 2 $((TIME + OMIT + 30)) ip netns exec "$LANB" iperf3 -s -1 -B "$LANB_IP" >"$srv" 2>&1 &
    SRV_PID=$!
    for _ in $(seq 50); do
        ip netns exec "$LANB" ss -Htln 'sport = :5201' 2>/dev/null | grep -q . && break
        alive "$SRV_PID" || break
        sleep 0.1
    done
    timeout -k 2 $((TIME + OMIT + 20)) ip netns exec "$LANA" \
        iperf3 -c "$LANB_IP" -t "$TIME" -O "$OMIT" -P "$p" --json >"$out" 2>"$out.err" </dev/null &
    CLI_PID=$!
    wait "$CLI_PID" || rc=$?
    CLI_PID=""
    for _ in $(seq 50); do alive "$SRV_PID" || break; sleep 0.1; done
    stop_pid "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
    res=$(python3 - "$out" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("ERR unparseable iperf3 output:", e); sys.exit()
if d.get("error"):
    print("ERR", d["error"]); sys.exit()
r, s = d["end"]["sum_received"], d["end"]["sum_sent"]
print("OK %.1f %d %d" % (r["bits_per_second"] / 1e6, int(r["bytes"]), int(s.get("retransmits", 0))))
EOF
    )
    if [ "${res%% *}" != OK ]; then
        log "    iperf3 failed (exit $rc): ${res#ERR } $(head -c 300 "$out.err" 2>/dev/null)"
        return 1
    fi
    RES=${res#OK }
}

cpu_ticks() { # pid -> utime+stime in clock ticks (whole thread group)
    local st f
    st=$(cat "/proc/$1/stat") || die "ironsecd pid $1 is gone"
    st=${st##*) }
    read -ra f <<<"$st"
    echo $((f[11] + f[12]))
}

# run_case <case> <streams> [check]: RUNS runs, appended to results.tsv
run_case() {
    local c=$1 p=$2 check=${3:-} i mbps bytes retr c0 b0 c1 b1 ok=0
    for i in $(seq "$RUNS"); do
        if [ -n "$check" ]; then
            read -r c0 b0 _ < <(counters "$WORK/gwA.sock") || die "ironsecctl status --json failed on gwA"
        fi
        if ! iperf_once "$p" "$c-P$p-$i"; then
            log "  $c, $p stream(s), run $i/$RUNS: failed"
            continue
        fi
        read -r mbps bytes retr <<<"$RES"
        if [ -n "$check" ]; then
            read -r c1 b1 _ < <(counters "$WORK/gwA.sock") || die "ironsecctl status --json failed on gwA"
            # The tunnel must account for every payload byte iperf3 saw arrive (bytes counted by
            # ironsec include headers, and the warm-up second is not in iperf3's sum).
            if [ $((c1 - c0)) -le 0 ] || [ $((b1 - b0)) -lt $((bytes * 9 / 10)) ]; then
                die "gwA tunnel outbound grew by $((c1 - c0)) packets / $((b1 - b0)) bytes while iperf3 received $bytes bytes: traffic did not go through the tunnel"
            fi
            TUN_PKTS=$((TUN_PKTS + c1 - c0)) TUN_BYTES=$((TUN_BYTES + b1 - b0)) IPERF_BYTES=$((IPERF_BYTES + bytes))
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$p" "$i" "$mbps" "$bytes" "$retr" >>"$WORK/results.tsv"
        log "  $c, $p stream(s), run $i/$RUNS: $mbps Mbit/s, $retr retransmits"
        ok=$((ok + 1))
    done
    [ "$ok" -gt 0 ] || die "every run of case '$c' with $p stream(s) failed"
}

# ---------------------------------------------------------------------------------------------
# (a) no tunnel
log "(a) no tunnel: plain routes on the gateways"
ip -n "$GWA" route add 10.2.0.0/24 via 192.0.2.2 dev wan
ip -n "$GWB" route add 10.1.0.0/24 via 192.0.2.1 dev wan
run_case no_tunnel 1
run_case no_tunnel 4

# (b) ironsec
log "(b) ironsec ($SUITE): plain routes removed, ironsecd in both gateways"
ip -n "$GWA" route del 10.2.0.0/24 via 192.0.2.2 dev wan
ip -n "$GWB" route del 10.1.0.0/24 via 192.0.2.1 dev wan
not_ready() { # gw: its log, then die
    indent <"$WORK/$1.log" >&2
    die "ironsecd in $PREFIX-$1 $NOT_READY (log above)"
}
start_gateways warn
wait_ready gwA "$PID_A" || not_ready gwA
wait_ready gwB "$PID_B" || not_ready gwB
log "  ironsecd pids: gwA $PID_A, gwB $PID_B"
for pair in "$GWA:$TUN_A" "$GWB:$TUN_B"; do
    ns=${pair%%:*} dev=${pair#*:}
    q=$(ip -n "$ns" -o link show dev "$dev" | sed -n 's/.* qlen \([0-9]*\).*/\1/p')
    if [ -z "$q" ] || [ "$q" -lt "$TXQ" ]; then
        ip -n "$ns" link set dev "$dev" txqueuelen "$TXQ"
        log "  $ns $dev: txqueuelen ${q:-?} -> $TXQ"
    else
        log "  $ns $dev: txqueuelen $q"
    fi
done
TUN_MTU=$(ip -n "$GWA" -o link show dev "$TUN_A" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
TUN_QLEN=$(ip -n "$GWA" -o link show dev "$TUN_A" | sed -n 's/.* qlen \([0-9]*\).*/\1/p')
route=$(ip -n "$GWA" route get "$LANB_IP")
case "$route" in
    *" dev $TUN_A "*) log "  $GWA: $(head -n1 <<<"$route")" ;;
    *) die "in $GWA, $LANB_IP is not routed through $TUN_A: $route" ;;
esac

TUN_PKTS=0 TUN_BYTES=0 IPERF_BYTES=0
CPU_A0=$(cpu_ticks "$PID_A") CPU_B0=$(cpu_ticks "$PID_B") W0=$(date +%s.%N)
run_case ironsec 1 check
run_case ironsec 4 check
CPU_A1=$(cpu_ticks "$PID_A") CPU_B1=$(cpu_ticks "$PID_B") W1=$(date +%s.%N)
if ! alive "$PID_A" || ! alive "$PID_B"; then die "an ironsecd exited during the runs"; fi
log "  tunnel check: gwA outbound +$TUN_PKTS packets, +$TUN_BYTES bytes; iperf3 received $IPERF_BYTES bytes"

# ---------------------------------------------------------------------------------------------
python3 - "$WORK/results.tsv" <<EOF
import json, statistics, sys
suite, runs, time_s, tck = "$SUITE", $RUNS, $TIME, $CLK_TCK
cpu = {"gwA": ($CPU_A1 - $CPU_A0) / tck, "gwB": ($CPU_B1 - $CPU_B0) / tck}
wall = $W1 - $W0
rows = {}
for line in open(sys.argv[1]):
    c, p, _, mbps, nbytes, retr = line.split("\t")
    r = rows.setdefault((c, int(p)), {"mbps": [], "retr": []})
    r["mbps"].append(float(mbps)); r["retr"].append(int(retr))
med = {k: statistics.median(v["mbps"]) for k, v in rows.items()}
print(f"ironsec bench: iperf3 TCP lanA -> lanB, suite {suite}, {runs} run(s) x {time_s} s per case "
      f"(+$OMIT s omitted warm-up), median")
print(f"WAN MTU ${IRONSEC_WAN_MTU:-1500}; ironsec TUN $TUN_A mtu $TUN_MTU txqueuelen $TUN_QLEN; $(nproc) CPUs shared by both "
      f"gateways, iperf3 and the kernel")
print(f"{'case':<10} {'streams':>7} {'median Mbit/s':>14} {'vs no tunnel':>13} {'median retr':>12}   runs (Mbit/s)")
for c in ("no_tunnel", "ironsec"):
    for p in (1, 4):
        r = rows[(c, p)]
        ratio = med[(c, p)] / med[("no_tunnel", p)] if med[("no_tunnel", p)] else float("nan")
        print(f"{c.replace('_', ' '):<10} {p:>7} {med[(c, p)]:>14.1f} {ratio:>13.2f} "
              f"{statistics.median(r['retr']):>12.0f}   " + " ".join(f"{x:.1f}" for x in r["mbps"]))
print(f"CPU seconds used during the ironsec runs ({wall:.1f} s wall): "
      + ", ".join(f"{g} {s:.2f} s ({100 * s / wall:.0f}% of one core)" for g, s in cpu.items()))
print("tunnel check: gwA outbound counters grew by $TUN_PKTS packets / $TUN_BYTES bytes "
      "while iperf3 received $IPERF_BYTES payload bytes")
if $JSON_OUT:
    r1 = lambda x: round(x, 1)
    out = {
        "suite": suite, "runs": runs, "time_s": time_s,
        "no_tunnel": {"tcp1_mbps": r1(med[("no_tunnel", 1)]), "tcp4_mbps": r1(med[("no_tunnel", 4)])},
        "ironsec": {"tcp1_mbps": r1(med[("ironsec", 1)]), "tcp4_mbps": r1(med[("ironsec", 4)]),
                    "cpu_s": {g: round(s, 2) for g, s in cpu.items()}, "wall_s": round(wall, 1)},
        "ratio": {f"tcp{p}": round(med[("ironsec", p)] / med[("no_tunnel", p)], 3) if med[("no_tunnel", p)] else None
                  for p in (1, 4)},
        "samples_mbps": {f"{c}_tcp{p}": rows[(c, p)]["mbps"] for (c, p) in sorted(rows)},
    }
    print(json.dumps(out, separators=(",", ":")))
EOF
