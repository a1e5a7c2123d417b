#!/usr/bin/env bash
# ironsec benchmark against no tunnel, strongSwan and boringtun (not part of the test suite).
#
# One topology (netns-scripts/topology.sh, prefix "bench": lanA 10.1.0.2 - gwA 192.0.2.1 ==wan==
# 192.0.2.2 gwB - lanB 10.2.0.2), one case after the other on it:
#   no tunnel        plain routes on the gateways; the kernel forwards in clear text
#   ironsec          ironsecd on both gateways, IKEv2 with a PSK (conf/ike-gw-a.toml initiates,
#                    conf/ike-gw-b.toml responds), ike_proposals = ["SUITE-prfsha256-x25519"],
#                    esp_proposals = ["SUITE"]; once per --suite
#   strongswan       strongSwan 5.9 charon with kernel-libipsec (ESP in userspace over its TUN
#                    ipsec0, always in UDP/4500) on both gateways, PSK, encap=yes, proposals
#                    SUITE-prfsha256-x25519 / esp SUITE; once per --suite (netns-scripts/strongswan.sh)
#   boringtun        boringtun-cli (userspace WireGuard, ChaCha20-Poly1305) on both gateways,
#                    configured with wg(8) from wireguard-tools; wg0 10.99.0.1/30 <-> 10.99.0.2/30
#                    over the WAN addresses, mtu 1420 (wg-quick's), routes to the remote LAN via wg0
#   null             the floor of any userspace tunnel, not a tunnel: crates/dataplane's example
#                    null_forwarder on both gateways, a plain TUN device (nt0) and a connected UDP
#                    socket (WAN addresses, port 4600), one packet per system call, no
#                    encryption, batching or offload, inner packets in clear text. It has the
#                    same thread wake-ups per round trip as ironsecd, so its RTT over no tunnel is
#                    what this machine charges any userspace tunnel for leaving the kernel
#   ironsec-static   ironsecd with manually keyed SAs (conf/static-gw-*.toml, fresh random keys):
#                    the same fast path as IKE-negotiated SAs, so not run unless --cases names it
#   baseline         with --baseline DIR: the ironsec case again (same configs, same suites) with
#                    the ironsecd/ironsecctl in DIR, e.g. an older commit's release build, right
#                    after the ironsec case of each suite: a regression check in one run
# IPv6 WAN (--wan 6 or --wan both): the topology is dual-stack (topology.sh IRONSEC_IPV6=1:
# WAN 2001:db8:f::1 - 2001:db8:f::2) and every case runs with the gateways talking over IPv6
# instead, named CASE_wan6: no tunnel routes the remote LAN via the peer's IPv6 address (an IPv4
# route with an IPv6 next hop: the same IPv4 packets on the wire, so its pair shows how much two
# identical runs differ on the machine), ironsec's configs get the IPv6 addresses in `tunnels`,
# strongSwan's local_addrs/remote_addrs, boringtun's endpoints and the null forwarder's sockets
# are IPv6. The inner traffic stays IPv4 (10.1.0.2 -> 10.2.0.2) and the TUN MTUs stay the same,
# so a case and its _wan6 twin carry the same packets and differ only in the outer header (20
# bytes more for IPv6). With --wan both each case runs over IPv4 then at once over IPv6, and the
# report adds a table of the IPv6-to-IPv4 ratios of every figure per case.
# Every tunnel case first checks that both gateways route the remote LAN through the tunnel's
# device and that no plain route bypasses it, and after every iperf3 run that gwA's tunnel
# counters (ironsecctl status, swanctl --list-sas, wg show transfer, nt0's device counters) grew by at least 90% of the
# payload bytes iperf3 received in that direction. All TUN devices get txqueuelen >= 1000.
#
# Figures per case (median of --runs runs; the runs of all figures are interleaved, so a burst of
# noise hits one run of each, not every run of one):
#   TCP 1 / 4 streams  iperf3 -P 1 / -P 4, lanA -> lanB (->) and -R (<-), -t TIME, 1 s omitted
#   UDP 64 B           iperf3 -u -l 64 -b 0 from --udp-senders processes: packets/s that the
#                      receiving iperf3 counted, -> and <-. Also "arrived": that plus what the
#                      receiving host's UDP socket dropped because iperf3 did not read in time
#                      (RcvbufErrors in its namespace) -- what the path delivered to the host.
#                      After each run the log says where packets were lost (every namespace's
#                      device queue drops and UDP socket buffer drops).
#   RTT idle           --pings pings lanA -> lanB 50 ms apart, median
#   RTT load           ping lanA -> lanB every 100 ms during the 4-stream -> TCP runs, median
#   CPU                utime+stime (/proc/PID/stat, all threads) of each gateway process (ironsecd,
#                      charon, boringtun-cli, null_forwarder) over the case's measurements, as
#                      seconds and % of one core, and per GB of TCP payload
# Ratios (throughput, packets/s) and RTT differences are to "no tunnel" of the same run.
#
# Usage (as root):
#   netns-scripts/bench.sh [--json] [--quick] [--runs N] [--time SECS] [--suite S[,S]]
#                          [--cases C[,C]] [--udp-senders N] [--pings N] [--figures F]
#                          [--lan-gro] [--baseline DIR] [--wan 4|6|both | --wan6]
#
#   --runs N         runs per figure (default 3); the median is reported
#   --time S         seconds per iperf3 run (default 5; TCP runs also have a 1 s omitted warm-up)
#   --quick          --runs 1 --time 2: a quick check that everything works, not a measurement
#   --suite S        aes128gcm16 | aes256gcm16 | chacha20poly1305 | an AES-CBC + HMAC suite such as
#                    aes256-sha256 or aes128-sha1, or a comma-separated list, or
#                    repeated: the suites of the ironsec and strongswan cases (default
#                    aes128gcm16,chacha20poly1305). boringtun is always ChaCha20-Poly1305.
#   --cases C        comma-separated, in any order: no-tunnel, ironsec, strongswan, boringtun,
#                    null, ironsec-static (default no-tunnel,ironsec,strongswan,boringtun,null).
#                    Ratios need no-tunnel.
#   --udp-senders N  parallel iperf3 UDP senders (default 1: on 2 cores more senders starve the
#                    receiver and lower what arrives, even without a tunnel)
#   --pings N        idle pings per run (default 20)
#   --figures F      comma-separated subset of rtt, tcp, udp (default all three); the report
#                    shows "-" for what was not measured. For quick A/B runs of one figure.
#   --lan-gro        LAN interfaces of both gateways tuned as README's "Host tuning for
#                    small-datagram floods" recommends: GRO on, UDP GRO for forwarded traffic
#                    (ethtool -K lan gro on rx-udp-gro-forwarding on), plus threaded NAPI (a
#                    veth otherwise polls inside the sender's own system call, one packet per
#                    poll, so GRO never merges anything; a NIC's interrupts batch by
#                    themselves). The same for every case. Needs ethtool.
#   --baseline DIR   also run the ironsec case with DIR/ironsecd and DIR/ironsecctl (another
#                    build, e.g. `git worktree add /tmp/old COMMIT && cargo build --release` there)
#                    as case ironsec_baseline_SUITE; needs the ironsec case
#   --wan W          the WAN family the tunnels use: 4 (default), 6, or both (every case over
#                    IPv4 and over IPv6, with the IPv6/IPv4 ratios); --wan6 is --wan 6
#   --json           also print one JSON object with every figure as the very last line of stdout
#
# Progress and diagnostics go to stderr; the tables (and the JSON line) to stdout. The exit status
# is 1 if a case could not be set up, lost its traffic to a bypass, or has a figure without a
# single successful run (the others are still measured and printed).
# A full default run (7 cases) takes about 15 minutes; --quick about 3.
#
# Needs iproute2, iperf3, ping, python3, util-linux (unshare, nsenter); for ironsec cargo (it runs
# cargo build --release -p ironsecd first; for null also the example null_forwarder, found in
# BIN/examples) or IRONSEC_BIN_DIR; for strongswan the packages of
# tests/install-deps.sh (strongswan-charon strongswan-swanctl libcharon-extra-plugins
# libstrongswan-extra-plugins libstrongswan-standard-plugins); for boringtun wireguard-tools (wg)
# and boringtun-cli: taken from BORINGTUN, else PATH, else IRONSEC_BENCH_CACHE/bin (default
# ~/.cache/ironsec-bench); when missing, bench.sh itself runs `cargo install boringtun-cli
# --version 0.7.1 --locked --root IRONSEC_BENCH_CACHE` (about a minute, once).
# Environment: IRONSEC_BENCH_PREFIX (namespace prefix, default "bench"), IRONSEC_BIN_DIR (use
# prebuilt binaries), IRONSEC_LOG (ironsecd log level, default warn), IRONSEC_BENCH_TXQUEUELEN
# (minimum txqueuelen of every tunnel's TUN device, default 1000), IRONSEC_BENCH_BT_THREADS
# (boringtun-cli --threads, default 4 = its own default), BORINGTUN, IRONSEC_BENCH_CACHE,
# IRONSEC_BENCH_BORINGTUN_VERSION (default 0.7.1), CARGO_TARGET_DIR.
# Everything runs in the namespaces this script creates; a trap stops every process it started
# (by PID) and removes the namespaces and its work directory on any exit.
# The machine shares its cores between both gateways, iperf3 and the kernel: compare the ratios
# of one run on a quiet machine, not absolute numbers across machines.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034  # read by lib.sh
PROG=bench.sh MSG_FD=2
PREFIX="${IRONSEC_BENCH_PREFIX:-bench}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"    # sets ROOT TOPO LANA GWA GWB LANB; log die indent usage stop_pid ...
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
. "$HERE/bench-lib.sh"
TXQ="${IRONSEC_BENCH_TXQUEUELEN:-1000}"
BT_VERSION="${IRONSEC_BENCH_BORINGTUN_VERSION:-0.7.1}"
OMIT=1 UDP_LEN=64

WAN_FAMS="4" BASELINE="" LAN_GRO=0 JSON_OUT=0 RUNS=3 TIME=5 SUITES="" CASES="no-tunnel,ironsec,strongswan,boringtun,null" UDP_SENDERS=1 PINGS=20 FIGURES="rtt,tcp,udp"
WORK="" PID_A="" PID_B="" CLI_PID="" CLI_PIDS=() RES=""
GW_PID_A="" GW_PID_B="" SW_DIR_A="" SW_DIR_B="" BT_PID_A="" BT_PID_B="" TUNNEL_KIND=none

while [ $# -gt 0 ]; do
    case "$1" in
        --json) JSON_OUT=1 ;;
        --baseline) [ $# -ge 2 ] || die "--baseline needs a directory"; BASELINE=$2; shift ;;
        --baseline=*) BASELINE=${1#--baseline=} ;;
        --lan-gro) LAN_GRO=1 ;;
        --wan6) WAN_FAMS=6 ;;
        --wan) [ $# -ge 2 ] || die "--wan needs a value"; WAN_FAMS=$2; shift ;;
        --wan=*) WAN_FAMS=${1#--wan=} ;;
        --quick) RUNS=1 TIME=2 ;;
        --runs) [ $# -ge 2 ] || die "--runs needs a value"; RUNS=$2; shift ;;
        --runs=*) RUNS=${1#--runs=} ;;
        --time) [ $# -ge 2 ] || die "--time needs a value"; TIME=$2; shift ;;
        --time=*) TIME=${1#--time=} ;;
        --suite) [ $# -ge 2 ] || die "--suite needs a value"; SUITES+=",$2"; shift ;;
        --suite=*) SUITES+=",${1#--suite=}" ;;
        --cases) [ $# -ge 2 ] || die "--cases needs a value"; CASES=$2; shift ;;
        --cases=*) CASES=${1#--cases=} ;;
        --udp-senders) [ $# -ge 2 ] || die "--udp-senders needs a value"; UDP_SENDERS=$2; shift ;;
        --udp-senders=*) UDP_SENDERS=${1#--udp-senders=} ;;
        --pings) [ $# -ge 2 ] || die "--pings needs a value"; PINGS=$2; shift ;;
        --pings=*) PINGS=${1#--pings=} ;;
        --figures) [ $# -ge 2 ] || die "--figures needs a value"; FIGURES=$2; shift ;;
        --figures=*) FIGURES=${1#--figures=} ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
num_in() { # option value min max
    if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then die "$1 must be $3..$4"; fi
}
num_in --runs "$RUNS" 1 99
num_in --time "$TIME" 1 600
num_in --udp-senders "$UDP_SENDERS" 1 16
num_in --pings "$PINGS" 1 1000
[[ "$TXQ" =~ ^[0-9]+$ ]] || die "IRONSEC_BENCH_TXQUEUELEN must be a number"
case "$WAN_FAMS" in
    4|ipv4) WAN_FAMS=4 ;;
    6|ipv6) WAN_FAMS=6 ;;
    both|4,6|6,4) WAN_FAMS="4 6" ;;
    *) die "--wan must be 4, 6 or both (got '$WAN_FAMS')" ;;
esac
FIG_RTT=0 FIG_TCP=0 FIG_UDP=0
IFS=, read -ra figs <<<"$FIGURES"
for f in "${figs[@]}"; do
    case "$f" in
        rtt) FIG_RTT=1 ;;
        tcp) FIG_TCP=1 ;;
        udp) FIG_UDP=1 ;;
        *) die "unknown figure '$f' (rtt, tcp, udp)" ;;
    esac
done
[ $((FIG_RTT + FIG_TCP + FIG_UDP)) -gt 0 ] || die "--figures is empty"

# Suites: validated with lib.sh's suite_keylen; default AES-128-GCM and ChaCha20-Poly1305.
SUITES=${SUITES#,}
SUITES=${SUITES:-aes128gcm16,chacha20poly1305}
IFS=, read -ra suites <<<"$SUITES"
SUITE_LIST=()
for SUITE in "${suites[@]}"; do
    suite_keylen
    [[ " ${SUITE_LIST[*]} " == *" $SUITE "* ]] || SUITE_LIST+=("$SUITE")
done

# The case list, in a fixed order: "kind suite name" (suite "-" where it does not apply).
WANT_NT=0 WANT_IKE=0 WANT_STATIC=0 WANT_SW=0 WANT_BT=0 WANT_NULL=0
IFS=, read -ra wanted <<<"$CASES"
[ "${#wanted[@]}" -gt 0 ] || die "--cases is empty"
for c in "${wanted[@]}"; do
    case "$c" in
        no-tunnel|no_tunnel|notunnel|none) WANT_NT=1 ;;
        ironsec|ironsec-ike) WANT_IKE=1 ;;
        ironsec-static|ironsec_static|static) WANT_STATIC=1 ;;
        strongswan|strongSwan) WANT_SW=1 ;;
        boringtun) WANT_BT=1 ;;
        null|null-forwarder|null_forwarder) WANT_NULL=1 ;;
        *) die "unknown case '$c' (no-tunnel, ironsec, strongswan, boringtun, null, ironsec-static)" ;;
    esac
done
CASE_LIST=()
[ "$WANT_NT" = 1 ] && CASE_LIST+=("notunnel - no_tunnel")
if [ "$WANT_IKE" = 1 ]; then
    for s in "${SUITE_LIST[@]}"; do
        CASE_LIST+=("ironsec $s ironsec_$s")
        [ -n "$BASELINE" ] && CASE_LIST+=("baseline $s ironsec_baseline_$s")
    done
fi
if [ -n "$BASELINE" ]; then
    [ "$WANT_IKE" = 1 ] || die "--baseline needs the ironsec case"
    [ -x "$BASELINE/ironsecd" ] && [ -x "$BASELINE/ironsecctl" ] ||
        die "--baseline: $BASELINE/ironsecd or $BASELINE/ironsecctl not found"
fi
if [ "$WANT_STATIC" = 1 ]; then for s in "${SUITE_LIST[@]}"; do CASE_LIST+=("static $s ironsec_static_$s"); done; fi
if [ "$WANT_SW" = 1 ]; then for s in "${SUITE_LIST[@]}"; do CASE_LIST+=("strongswan $s strongswan_$s"); done; fi
[ "$WANT_BT" = 1 ] && CASE_LIST+=("boringtun chacha20poly1305 boringtun")
[ "$WANT_NULL" = 1 ] && CASE_LIST+=("null - null_forwarder")
# Each case once per WAN family, the IPv6 one (CASE_wan6) right after the IPv4 one, so that a
# burst of noise on the machine hits both alike: entries "kind suite name family".
FAM_LIST=()
for entry in "${CASE_LIST[@]}"; do
    for fam in $WAN_FAMS; do
        if [ "$fam" = 6 ]; then FAM_LIST+=("${entry}_wan6 6"); else FAM_LIST+=("$entry 4"); fi
    done
done
CASE_LIST=("${FAM_LIST[@]}")

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, veth, TUN)"
needs=(ip iperf3 ping python3 timeout ss)
[ "$LAN_GRO" = 1 ] && needs+=(ethtool)
for t in "${needs[@]}"; do
    command -v "$t" >/dev/null || die "$t is not installed (Debian: tests/install-deps.sh)"
done
if [ "$WANT_SW" = 1 ]; then
    { [ -x /usr/lib/ipsec/charon ] && command -v swanctl >/dev/null; } ||
        die "strongSwan is not installed (Debian: tests/install-deps.sh installs charon, swanctl and the plugins)"
fi
if [ "$WANT_BT" = 1 ]; then
    for t in wg unshare nsenter; do
        command -v "$t" >/dev/null || die "$t is not installed (Debian: apt-get install wireguard-tools util-linux)"
    done
    find_boringtun
fi
CLK_TCK=$(getconf CLK_TCK)
pick_json_tool    # python3 (checked above)

# Run by lib.sh's cleanup trap on every exit.
on_exit() {
    stop_pid "$CLI_PID"
    for p in "${CLI_PIDS[@]}"; do stop_pid "$p"; done
    stop_bg
    strongswan_down
    boringtun_down
    null_down
    teardown    # ironsecd (PID_A, PID_B), the namespaces, WORK
}
install_cleanup_traps

if [ "$WANT_IKE" = 1 ] || [ "$WANT_STATIC" = 1 ]; then
    find_binaries always "building: cargo build --release -p ironsecd"
fi
[ "$WANT_NULL" = 1 ] && find_null_forwarder

# ---------------------------------------------------------------------------------------------
if [ "$WAN_FAMS" = 4 ]; then
    log "topology up (namespaces $PREFIX-*)"
    topo up >&2
else
    log "topology up (namespaces $PREFIX-*, dual-stack: IRONSEC_IPV6=1)"
    IRONSEC_IPV6=1 topo up >&2
fi
if [ "$LAN_GRO" = 1 ]; then
    for g in gwA gwB; do
        # `ip netns exec` mounts the namespace's own /sys, where `lan` is this gateway's.
        ip netns exec "$PREFIX-$g" sh -c 'ethtool -K lan gro on rx-udp-gro-forwarding on &&
            echo 1 >/sys/class/net/lan/threaded' >&2 ||
            die "--lan-gro: could not turn on GRO and threaded NAPI on $PREFIX-$g's lan"
    done
    log "LAN interfaces of both gateways: GRO, rx-udp-gro-forwarding and threaded NAPI on"
fi
make_workdir bench
RES_TSV="$WORK/results.tsv" META_TSV="$WORK/meta.tsv"
: >"$RES_TSV"
: >"$META_TSV"

CASE=""
rec() { local IFS=$'\t'; printf '%s\t%s\n' "$CASE" "$*" >>"$RES_TSV"; }     # metric run value [extra...]
meta() { printf '%s\t%s\t%s\n' "$CASE" "$1" "$2" >>"$META_TSV"; }            # key value

# Both gateway processes' CPU ticks into TA TB; returns 1 (FAIL set) if one is gone.
ticks() {
    TA=0 TB=0
    if [ -n "$GW_PID_A" ]; then TA=$(cpu_ticks "$GW_PID_A") || { FAIL="gwA's process $GW_PID_A exited"; return 1; }; fi
    if [ -n "$GW_PID_B" ]; then TB=$(cpu_ticks "$GW_PID_B") || { FAIL="gwB's process $GW_PID_B exited"; return 1; }; fi
}
# gwA's tunnel counters into CO CI; returns 1 (FAIL set) if they cannot be read.
tbytes() {
    local o
    o=$(tunnel_bytes) || { FAIL="could not read gwA's tunnel counters ($TUNNEL_KIND)"; return 1; }
    read -r CO CI <<<"$o"
}
# The tunnel must have carried at least 90% of the payload bytes iperf3 received (its counters
# include headers; the omitted warm-up second is not in iperf3's sum).
check_tunnel() { # dir received-bytes what
    local d rcv
    [ "$TUNNEL_KIND" = none ] && return 0
    # iperf3's JSON may print large byte counts as floats (2.8e+09): integers for bash.
    rcv=$(printf '%.0f' "$2")
    if [ "$1" = fwd ]; then d=$((CO - CO0)); else d=$((CI - CI0)); fi
    if [ "$d" -lt $((rcv * 9 / 10)) ]; then
        FAIL="$3: gwA's tunnel counters grew by $d bytes ($1) while iperf3 received $rcv bytes: traffic did not go through the tunnel"
        return 1
    fi
    CHECKED_BYTES=$((CHECKED_BYTES + d)) IPERF_BYTES=$((IPERF_BYTES + rcv))
}

# One TCP run: streams dir run. Returns 1 only when the case must stop (FAIL set).
tcp_run() {
    local p=$1 dir=$2 run=$3 pingout="" mbps bytes retr med n arrow
    [ "$dir" = fwd ] && arrow="->" || arrow="<-"
    [ "$p" = 4 ] && [ "$dir" = fwd ] && pingout="$WORK/ping-$CASE-load-$run.txt"
    ticks || return 1
    local ta=$TA tb=$TB
    tbytes || return 1
    CO0=$CO CI0=$CI
    if iperf_tcp "$p" "$dir" "$CASE-tcp$p-$dir-$run" "$pingout"; then
        read -r mbps bytes retr <<<"$RES"
        ticks || return 1
        tbytes || return 1
        check_tunnel "$dir" "$bytes" "TCP $p $arrow run $run" || return 1
        TCP_TA=$((TCP_TA + TA - ta)) TCP_TB=$((TCP_TB + TB - tb)) TCP_BYTES=$((TCP_BYTES + bytes))
        rec "tcp${p}_$dir" "$run" "$mbps" "$bytes" "$retr"
        log "  TCP $p $arrow run $run/$RUNS: $mbps Mbit/s, $retr retransmits"
        if [ -n "$pingout" ]; then
            n=$(ping_times "$pingout" | wc -l)
            med=$(ping_times "$pingout" | median)
            if [ "$n" -gt 0 ]; then
                rec rtt_load "$run" "$med" "$n"
                log "  RTT under load run $run/$RUNS: median $med ms ($n replies)"
            else
                log "  RTT under load run $run/$RUNS: no reply ($(tail -n 2 "$pingout" | tr '\n' ' '))"
            fi
        fi
    else
        log "  TCP $p $arrow run $run/$RUNS: failed"
    fi
    ticks
}

# One UDP run: dir run. Returns 1 only when the case must stop (FAIL set).
udp_run() {
    local dir=$1 run=$2 pps bytes sent arrow d0 d1 arrived
    [ "$dir" = fwd ] && arrow="->" || arrow="<-"
    tbytes || return 1
    CO0=$CO CI0=$CI
    d0=$(drop_snapshot)
    # A flood of small datagrams can starve iperf3's own control connection through the same
    # tunnel, and the client then hangs at the end of the test until its timeout: one more try,
    # with fresh snapshots, before the run counts as failed.
    if iperf_udp "$dir" "$CASE-udp-$dir-$run" || {
        log "  UDP $UDP_LEN B $arrow run $run/$RUNS: iperf3 failed ($(tail -n 1 "$WORK/iperf-$CASE-udp-$dir-$run-1.err" 2>/dev/null)); once more"
        tbytes || return 1
        CO0=$CO CI0=$CI
        d0=$(drop_snapshot)
        iperf_udp "$dir" "$CASE-udp-$dir-$run-again"
    }; then
        read -r pps bytes sent <<<"$RES"
        d1=$(drop_snapshot)
        log_drops "$d0" "$d1" "UDP $UDP_LEN B $arrow run $run/$RUNS"
        arrived=$(rcvbuf_rate "$d0" "$d1" "$([ "$dir" = fwd ] && echo "$LANB" || echo "$LANA")" "$pps")
        tbytes || return 1
        check_tunnel "$dir" "$bytes" "UDP $arrow run $run" || return 1
        rec "udp${UDP_LEN}_$dir" "$run" "$pps" "$sent" "$arrived"
        log "  UDP $UDP_LEN B $arrow run $run/$RUNS: $pps packets/s received ($sent/s sent, $arrived/s arrived)"
    else
        log "  UDP $UDP_LEN B $arrow run $run/$RUNS: failed"
    fi
    ticks
}

# All figures of the current case. Returns 1 (FAIL set) when the case had to stop.
measure() {
    local run t0 t1 a0 b0 med n sent
    TCP_TA=0 TCP_TB=0 TCP_BYTES=0 CHECKED_BYTES=0 IPERF_BYTES=0
    ticks || return 1
    a0=$TA b0=$TB t0=$(now)
    for run in $(seq "$RUNS"); do
        if [ "$FIG_RTT" = 1 ]; then
            if ping_idle "$CASE-idle-$run"; then
                read -r med n sent <<<"$RES"
                rec rtt_idle "$run" "$med" "$n" "$sent"
                log "  RTT idle run $run/$RUNS: median $med ms ($n/$sent replies)"
            else
                log "  RTT idle run $run/$RUNS: failed"
            fi
        fi
        if [ "$FIG_TCP" = 1 ]; then
            tcp_run 1 fwd "$run" || return 1
            tcp_run 4 fwd "$run" || return 1
            tcp_run 1 rev "$run" || return 1
            tcp_run 4 rev "$run" || return 1
        fi
        if [ "$FIG_UDP" = 1 ]; then
            udp_run fwd "$run" || return 1
            udp_run rev "$run" || return 1
        fi
    done
    ticks || return 1
    t1=$(now)
    meta cpu_a "$(awk -v t=$((TA - a0)) -v k="$CLK_TCK" 'BEGIN { printf "%.2f", t / k }')"
    meta cpu_b "$(awk -v t=$((TB - b0)) -v k="$CLK_TCK" 'BEGIN { printf "%.2f", t / k }')"
    meta tcp_cpu_a "$(awk -v t="$TCP_TA" -v k="$CLK_TCK" 'BEGIN { printf "%.2f", t / k }')"
    meta tcp_cpu_b "$(awk -v t="$TCP_TB" -v k="$CLK_TCK" 'BEGIN { printf "%.2f", t / k }')"
    meta tcp_bytes "$TCP_BYTES"
    meta wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
    if [ "$TUNNEL_KIND" != none ]; then
        log "  tunnel check: gwA's counters grew by $CHECKED_BYTES bytes while iperf3 received $IPERF_BYTES bytes"
    fi
}

case_up() { # kind suite
    case "$1" in
        notunnel) notunnel_up ;;
        ironsec) ironsec_up ike "$2" ;;
        baseline) ironsec_up ike "$2" ;;
        static) ironsec_up static "$2" ;;
        strongswan) strongswan_up "$2" ;;
        boringtun) boringtun_up ;;
        null) null_up ;;
    esac
}
case_down() { # kind
    case "$1" in
        notunnel) notunnel_down ;;
        ironsec|static|baseline) ironsec_down ;;
        strongswan) strongswan_down ;;
        boringtun) boringtun_down ;;
        null) null_down ;;
    esac
    TUNNEL_KIND=none
}

FAILED=0
for entry in "${CASE_LIST[@]}"; do
    read -r kind suite CASE fam <<<"$entry"
    wan_family "$fam"
    log "== $CASE (IPv$fam WAN: $WAN_A <-> $WAN_B)"
    meta kind "$kind"
    meta suite "$suite"
    meta wan "$fam"
    FAIL="" MTU=- QLEN=- CASE_VERSION="" ENDPOINTS=""
    # The baseline case runs, measures and stops with the --baseline binaries.
    OWN_D=${D:-} OWN_CTL=${CTL:-}
    [ "$kind" = baseline ] && D="$BASELINE/ironsecd" CTL="$BASELINE/ironsecctl"
    if case_up "$kind" "$suite" && measure; then
        meta status ok
    else
        log "  $CASE FAILED: $FAIL"
        meta status failed
        meta reason "$FAIL"
        FAILED=1
    fi
    meta mtu "$MTU"
    meta qlen "$QLEN"
    meta version "$CASE_VERSION"
    meta endpoints "$ENDPOINTS"
    stop_bg
    case_down "$kind"
    D=$OWN_D CTL=$OWN_CTL
    check_clean
done

# ---------------------------------------------------------------------------------------------
rc=0 jsonopt=()
[ "$JSON_OUT" = 1 ] && jsonopt=(--json)
python3 "$HERE/bench-report.py" --results "$RES_TSV" --meta "$META_TSV" --runs "$RUNS" --time "$TIME" \
    --omit "$OMIT" --pings "$PINGS" --udp-len "$UDP_LEN" --udp-senders "$UDP_SENDERS" --cpus "$(nproc)" \
    --txqueuelen "$TXQ" --wan "${WAN_FAMS// /,}" --wan-mtu "${IRONSEC_WAN_MTU:-1500}" --figures "$FIGURES" --lan-gro "$LAN_GRO" "${jsonopt[@]}" || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || die "bench-report.py failed (exit $rc)"
if [ "$FAILED" = 1 ] || [ "$rc" = 3 ]; then exit 1; fi
