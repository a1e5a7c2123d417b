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
ROOT=$(dirname "$HERE")
TOPO="$HERE/topology.sh"
PREFIX="${IRONSEC_BENCH_PREFIX:-bench}"
LANA="$PREFIX-lanA" GWA="$PREFIX-gwA" GWB="$PREFIX-gwB" LANB="$PREFIX-lanB"
LANB_IP=10.2.0.2
TXQ="${IRONSEC_BENCH_TXQUEUELEN:-1000}"
OMIT=1

JSON_OUT=0 RUNS=3 TIME=5 SUITE=aes128gcm16
WORK="" PID_A="" PID_B="" SRV_PID="" CLI_PID="" RES=""

log() { printf '%s\n' "$*" >&2; }
die() { printf 'bench.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }

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
case "$SUITE" in
    aes128gcm16) KEYLEN=20 ;;
    aes256gcm16|chacha20poly1305) KEYLEN=36 ;;
    *) die "unknown suite '$SUITE' (aes128gcm16 | aes256gcm16 | chacha20poly1305)" ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, veth, TUN)"
command -v ip >/dev/null || die "iproute2 is not installed (Debian: apt-get install iproute2)"
command -v iperf3 >/dev/null || die "iperf3 is not installed (Debian: apt-get install iperf3)"
command -v python3 >/dev/null || die "python3 is needed to read iperf3 --json (Debian: apt-get install python3)"
command -v timeout >/dev/null || die "timeout (coreutils) is not installed"
CLK_TCK=$(getconf CLK_TCK)

topo() { IRONSEC_NS_PREFIX="$PREFIX" bash "$TOPO" "$@"; }

alive() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}

stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do alive "$pid" || return 0; sleep 0.1; done
    log "bench.sh: pid $pid ignored SIGTERM for 5 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    stop_pid "$CLI_PID"; stop_pid "$SRV_PID"
    stop_pid "$PID_A"; stop_pid "$PID_B"
    topo down >&2
    [ -n "$WORK" ] && rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------------------------------------
# Binaries
if [ -n "${IRONSEC_BIN_DIR:-}" ]; then
    BIN=$IRONSEC_BIN_DIR
else
    case "${CARGO_TARGET_DIR:-}" in
        "") BIN="$ROOT/target/release" ;;
        /*) BIN="$CARGO_TARGET_DIR/release" ;;
        *) BIN="$ROOT/$CARGO_TARGET_DIR/release" ;;
    esac
    if command -v cargo >/dev/null; then
        log "building: cargo build --release -p ironsecd"
        (cd "$ROOT" && cargo build --release -p ironsecd --quiet) >&2 || die "cargo build --release -p ironsecd failed"
    elif [ -x "$BIN/ironsecd" ]; then
        log "note: cargo is not in PATH; using the existing $BIN/ironsecd (may be stale)"
    else
        die "cargo is not in PATH and $BIN/ironsecd does not exist (build it, or set IRONSEC_BIN_DIR)"
    fi
fi
D="$BIN/ironsecd" CTL="$BIN/ironsecctl"
if ! [ -x "$D" ] || ! [ -x "$CTL" ]; then die "$D or $CTL not found (set IRONSEC_BIN_DIR?)"; fi

# ---------------------------------------------------------------------------------------------
log "topology up (namespaces $PREFIX-*)"
topo up >&2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironsec-bench.XXXXXX")
KEYS="$WORK/site.keys"
: >"$WORK/results.tsv"

make_config() { # example out socket
    sed -e "s|^control_socket = \"[^\"]*\"|control_socket = \"$3\"|" \
        -e "s|^keys_file = \"[^\"]*\"|keys_file = \"$KEYS\"|" \
        -e "s|^esp = \"[^\"]*\"|esp = \"$SUITE\"|" "$1" >"$2"
    if ! grep -q "^control_socket = \"$3\"" "$2" || ! grep -q "^keys_file = \"$KEYS\"" "$2" ||
        ! grep -q "^esp = \"$SUITE\"" "$2"; then
        die "could not derive $2 from $1 (did the example's layout change?)"
    fi
}
make_config "$ROOT/conf/static-gw-a.toml" "$WORK/gwA.toml" "$WORK/gwA.sock"
make_config "$ROOT/conf/static-gw-b.toml" "$WORK/gwB.toml" "$WORK/gwB.sock"
field() { sed -n "s/.*\\b$1 = \"\\([^\"]*\\)\".*/\\1/p" "$2" | head -n1; }
SPI_AB=$(field spi_out "$WORK/gwA.toml") SPI_BA=$(field spi_in "$WORK/gwA.toml")
TUN_A=$(field tun "$WORK/gwA.toml") TUN_B=$(field tun "$WORK/gwB.toml")
if [ -z "$SPI_AB" ] || [ -z "$SPI_BA" ] || [ -z "$TUN_A" ] || [ -z "$TUN_B" ]; then
    die "could not read spi_out/spi_in/tun from the example configs"
fi
(
    umask 077
    for spi in "$SPI_AB" "$SPI_BA"; do
        printf '%s = "%s"\n' "$spi" "$(head -c "$KEYLEN" /dev/urandom | od -An -tx1 | tr -d ' \n')"
    done >"$KEYS"
)
chmod 600 "$KEYS"
for g in gwA gwB; do
    ip netns exec "$PREFIX-$g" "$D" check --config "$WORK/$g.toml" >"$WORK/$g.check" 2>&1 ||
        { sed 's/^/    /' "$WORK/$g.check" >&2; die "ironsecd check --config $WORK/$g.toml failed"; }
done

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

# Outbound packets and bytes of gwA's tunnel(s), summed: "packets bytes".
out_counters() {
    "$CTL" --socket "$WORK/gwA.sock" status --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
p = b = 0
for c in d.get("connections") or []:
    for t in c.get("tunnels") or []:
        o = t.get("outbound") or {}
        p += int(o.get("packets") or 0)
        b += int(o.get("bytes") or 0)
print(p, b)'
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
            read -r c0 b0 < <(out_counters) || die "ironsecctl status --json failed on gwA"
        fi
        if ! iperf_once "$p" "$c-P$p-$i"; then
            log "  $c, $p stream(s), run $i/$RUNS: failed"
            continue
        fi
        read -r mbps bytes retr <<<"$RES"
        if [ -n "$check" ]; then
            read -r c1 b1 < <(out_counters) || die "ironsecctl status --json failed on gwA"
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
start_gw() {
    IRONSEC_LOG="${IRONSEC_LOG:-warn}" ip netns exec "$PREFIX-$1" "$D" --config "$WORK/$1.toml" \
        </dev/null >"$WORK/$1.log" 2>&1 &
}
wait_ready() { # gw pid
    for _ in $(seq 100); do
        "$CTL" --socket "$WORK/$1.sock" status >/dev/null 2>&1 && return 0
        if ! alive "$2"; then
            sed 's/^/    /' "$WORK/$1.log" >&2
            die "ironsecd in $PREFIX-$1 exited during startup (log above)"
        fi
        sleep 0.1
    done
    sed 's/^/    /' "$WORK/$1.log" >&2
    die "ironsecd in $PREFIX-$1 did not become ready within 10 s (log above)"
}
start_gw gwA; PID_A=$!
start_gw gwB; PID_B=$!
wait_ready gwA "$PID_A"
wait_ready gwB "$PID_B"
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
