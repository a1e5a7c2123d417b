#!/usr/bin/env bash
# ironsec demo: two gateways and an ESP-in-UDP tunnel between them, in network namespaces.
#
#   lanA 10.1.0.2 -- gwA 10.1.0.1 | 192.0.2.1 ==WAN== 192.0.2.2 | 10.2.0.1 gwB -- 10.2.0.2 lanB
#
# Builds the release binaries if needed, brings the topology up (netns-scripts/topology.sh with
# its own prefix "demo") and starts ironsecd in gwA and gwB. By default the tunnel is negotiated
# with IKEv2 and a fresh random pre-shared key (configs derived from conf/ike-gw-a.toml, the
# initiator, and conf/ike-gw-b.toml, the responder; gwB is started first): the demo waits until
# gwA shows the IKE SA established with a CHILD_SA (at most 10 s) and prints what was negotiated
# and how long it took. With --static the tunnel is keyed manually instead, with fresh random
# keys (configs derived from conf/static-gw-a.toml and conf/static-gw-b.toml). Either way it
# pings lanA -> lanB through the tunnel, checks the tunnel's packet counters (and, with tcpdump,
# that the WAN carried no clear-text ICMP), prints both gateways' status and tears everything
# down.
#
# With --ipv6 the topology is dual-stack (topology.sh with IRONSEC_IPV6=1) and the tunnel runs
# over the IPv6 WAN, carrying both families:
#
#   lanA 10.1.0.2 2001:db8:1::2 -- gwA 2001:db8:f::1 ==IPv6 WAN== 2001:db8:f::2 gwB -- lanB 10.2.0.2 2001:db8:2::2
#
# IKEv2: configs derived from conf/ipv6-gw-a.toml and conf/ipv6-gw-b.toml (one CHILD_SA with the
# selectors 10.i.0.0/24 and 2001:db8:i::/64 of each site). --static: conf/static-gw-*.toml with
# the tunnel's addresses changed to the IPv6 WAN ones and the IPv6 LAN added to the selectors.
# It pings lanA -> lanB over IPv4 and over IPv6 through the one tunnel, and the WAN check counts
# clear-text ICMP and ICMPv6 echoes.
#
# Usage (as root):
#   netns-scripts/demo.sh [--static] [--ipv6] [--keep] [--suite aes128gcm16|aes256gcm16|chacha20poly1305]
#   netns-scripts/demo.sh --down      # tear down what a --keep run left running
#
#   --static  manually keyed tunnel (no IKE) instead of IKEv2 with a pre-shared key
#   --ipv6    the tunnel over an IPv6 WAN, carrying IPv4 and IPv6 (above)
#   --keep    leave the namespaces and both daemons running and print how to use them
#   --suite   AEAD suite of the tunnel. IKEv2: both gateways propose only ike_proposals =
#             ["SUITE-prfsha256-x25519"] and esp_proposals = ["SUITE"] (default: the example
#             configs' proposals, aes256gcm16). --static: the ESP suite (default aes128gcm16, as
#             in the example configs)
#   --down    stop the daemons of a --keep run (PIDs from its state file), remove the
#             namespaces and its temporary directory
#
# Environment: IRONSEC_DEMO_PREFIX (namespace prefix, default "demo"), IRONSEC_BIN_DIR (use the
# ironsecd/ironsecctl found there instead of building), IRONSEC_LOG (daemon log level, default
# info), CARGO_TARGET_DIR (honoured when building).
# Exit status: 0 if the tunnel came up, the pings crossed it and the counters agree, non-zero
# otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034  # read by lib.sh
PROG=demo.sh MSG_FD=1
PREFIX="${IRONSEC_DEMO_PREFIX:-demo}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"    # sets ROOT TOPO LANA GWA GWB LANB; say die indent usage stop_pid ...
LANA_IP=10.1.0.2 LANB_IP=10.2.0.2
LANA_IP6=2001:db8:1::2 LANB_IP6=2001:db8:2::2
PINGS=5
if [ -d /run ] && [ -w /run ]; then STATE_DIR=/run; else STATE_DIR=/tmp; fi
STATE="$STATE_DIR/ironsec-demo-$PREFIX.state"

MODE=ike KEEP=0 SUITE="" ACTION=demo IPV6=0
WORK="" PID_A="" PID_B="" TCPDUMP_PID="" KEEP_RUNNING=0 WROTE_STATE=0 LOG_LINES=40 IKE_PORT=""

while [ $# -gt 0 ]; do
    case "$1" in
        --static) MODE=static ;;
        --ipv6) IPV6=1 ;;
        --keep) KEEP=1 ;;
        --down) ACTION=down ;;
        --suite) [ $# -ge 2 ] || die "--suite needs a value"; SUITE=$2; shift ;;
        --suite=*) SUITE=${1#--suite=} ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
if [ "$MODE" = static ]; then SUITE=${SUITE:-aes128gcm16}; fi
if [ -n "$SUITE" ]; then suite_keylen; fi    # validates --suite (KEYLEN is for --static)

[ "$(id -u)" = 0 ] || die "must run as root (it creates network namespaces, veth pairs and TUN devices); try: sudo $0 $*"
command -v ip >/dev/null || die "iproute2 is not installed (Debian: apt-get install iproute2)"
[ -x "$TOPO" ] || [ -f "$TOPO" ] || die "missing $TOPO"
# topology.sh (run by lib.sh's topo) adds the IPv6 addresses with IRONSEC_IPV6=1.
if [ "$IPV6" = 1 ]; then export IRONSEC_IPV6=1; fi

# --down: undo a --keep run using its state file, then remove the namespaces regardless.
down_from_state() {
    local k v wd="" pids=() p
    if [ -f "$STATE" ]; then
        while IFS='=' read -r k v; do
            case "$k" in
                pid_gwA|pid_gwB) [[ "$v" =~ ^[0-9]+$ ]] && pids+=("$v") ;;
                workdir) wd=$v ;;
            esac
        done <"$STATE"
        for p in "${pids[@]}"; do
            # Guard against PID reuse: only signal it if it is still an ironsecd.
            if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = ironsecd ]; then
                say "stopping ironsecd pid $p"
                stop_pid "$p"
            fi
        done
        if [ -n "$wd" ] && [ -f "$wd/.ironsec-demo" ]; then rm -rf -- "$wd"; fi
        rm -f -- "$STATE"
    fi
    topo down
}

if [ "$ACTION" = down ]; then
    if [ -f "$STATE" ]; then say "tearing down the demo recorded in $STATE"; else
        say "no state file $STATE; removing namespaces with prefix '$PREFIX' anyway"; fi
    down_from_state
    say "done: $(ip netns list | awk -v p="$PREFIX-" 'index($1,p)==1' | wc -l) '$PREFIX-*' namespaces left"
    exit 0
fi

# Run by lib.sh's cleanup trap on every exit.
on_exit() {
    [ -n "$TCPDUMP_PID" ] && { kill -TERM "$TCPDUMP_PID" 2>/dev/null; wait "$TCPDUMP_PID" 2>/dev/null; }
    if [ "$KEEP_RUNNING" != 1 ]; then
        teardown
        [ "$WROTE_STATE" = 1 ] && rm -f -- "$STATE"
    fi
}
install_cleanup_traps

# ---------------------------------------------------------------------------------------------
find_binaries first "building ironsecd (cargo build --release -p ironsecd; the first build takes a few minutes)"
pick_json_tool

# ICMP echo: iputils ping if installed, else a small raw-socket echo in python3 (same summary line).
do_ping() { # ns dst count
    if command -v ping >/dev/null; then
        timeout 30 ip netns exec "$1" ping -n -c "$3" -i 0.2 -W 1 "$2"
    elif command -v python3 >/dev/null; then
        say "(ping is not installed: using a python3 raw-socket ICMP echo; Debian: apt-get install iputils-ping)"
        timeout 30 ip netns exec "$1" python3 - "$2" "$3" <<'EOF'
import os, select, socket, struct, sys, time
dst, n = sys.argv[1], int(sys.argv[2])
# IPv6: a raw ICMPv6 socket (the kernel fills in the checksum and strips the IP header),
# echo request 128 / reply 129; IPv4: raw ICMP, 8 / 0, IP header in what recvfrom returns.
v6 = ":" in dst
if v6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    req, rep = 128, 129
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    req, rep = 8, 0
ident = os.getpid() & 0xFFFF
def csum(b):
    if len(b) % 2:
        b += b"\0"
    v = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    v = (v >> 16) + (v & 0xFFFF)
    v += v >> 16
    return ~v & 0xFFFF
print(f"PING {dst} 56(84) bytes of data (python3 ICMP echo).")
got = 0
for seq in range(1, n + 1):
    body = b"ironsec-demo-pad" * 3 + b"12345678"
    pkt = struct.pack("!BBHHH", req, 0, 0, ident, seq) + body
    if not v6:
        pkt = struct.pack("!BBHHH", req, 0, csum(pkt), ident, seq) + body
    t0 = time.monotonic()
    s.sendto(pkt, (dst, 0))
    while True:
        left = t0 + 1.0 - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        data, addr = s.recvfrom(4096)
        ihl = 0 if v6 else (data[0] & 15) * 4
        if len(data) < ihl + 8:
            continue
        typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if typ == rep and rid == ident and rseq == seq:
            ms = (time.monotonic() - t0) * 1000
            ttl = "" if v6 else f" ttl={data[8]}"
            print(f"{len(data) - ihl} bytes from {addr[0]}: icmp_seq={seq}{ttl} time={ms:.3f} ms")
            got += 1
            break
    time.sleep(max(0.0, t0 + 0.2 - time.monotonic()))
print(f"\n--- {dst} ping statistics ---")
print(f"{n} packets transmitted, {got} received, {100 * (n - got) // n}% packet loss")
sys.exit(0 if got else 1)
EOF
    else
        die "neither ping nor python3 is installed (Debian: apt-get install iputils-ping)"
    fi
}

# Both daemons' logs on stderr: the last LOG_LINES lines, or all of them with LOG_LINES=all.
show_logs() {
    local g
    [ -n "$WORK" ] || return 0
    for g in gwA gwB; do
        if [ "$LOG_LINES" = all ]; then
            echo "---- ironsecd log of $g ($WORK/$g.log) ----" >&2
            indent <"$WORK/$g.log" >&2 2>/dev/null || true
        else
            echo "---- ironsecd log of $g ($WORK/$g.log, last $LOG_LINES lines) ----" >&2
            tail -n "$LOG_LINES" "$WORK/$g.log" 2>/dev/null | indent >&2 || true
        fi
    done
}

fail() { echo "demo.sh: FAIL: $*" >&2; show_logs; exit 1; }

# ---------------------------------------------------------------------------------------------
if [ -f "$STATE" ]; then
    say "a previous --keep demo is recorded in $STATE: tearing it down first"
    down_from_state
fi

if [ "$MODE" = static ]; then WHAT="manually keyed tunnel, suite $SUITE"
elif [ -n "$SUITE" ]; then WHAT="IKEv2 with a pre-shared key, suite $SUITE"
else WHAT="IKEv2 with a pre-shared key, the example configs' proposals"; fi
[ "$IPV6" = 1 ] && WHAT+=", over an IPv6 WAN carrying IPv4 and IPv6"
say "== ironsec demo: $WHAT, namespaces $PREFIX-* =="
topo up
if [ "$IPV6" = 1 ]; then
    say "topology: $LANA $LANA_IP $LANA_IP6 -- $GWA 2001:db8:f::1 ==IPv6 WAN== 2001:db8:f::2 $GWB -- $LANB $LANB_IP $LANB_IP6"
    SELECTORS="10.1.0.0/24 2001:db8:1::/64 <-> 10.2.0.0/24 2001:db8:2::/64"
else
    say "topology: $LANA $LANA_IP -- $GWA 10.1.0.1 | 192.0.2.1 ==WAN== 192.0.2.2 | 10.2.0.1 $GWB -- $LANB $LANB_IP"
    SELECTORS="10.1.0.0/24 <-> 10.2.0.0/24"
fi

make_workdir demo
touch "$WORK/.ironsec-demo"

# The state file lets --down stop the daemons of a --keep run (or of a run that was killed).
write_state() {
    {
        echo "prefix=$PREFIX"
        echo "mode=$MODE"
        echo "workdir=$WORK"
        echo "pid_gwA=$PID_A"
        echo "pid_gwB=$PID_B"
    } >"$STATE"
    WROTE_STATE=1
}

# Watch the WAN (optional: only if tcpdump is installed) from now until the pings are done.
start_tcpdump() {
    command -v tcpdump >/dev/null || return 0
    timeout 60 ip netns exec "$GWA" tcpdump -l -n -i wan "$TCPDUMP_FILTER" \
        >"$WORK/wan.txt" 2>"$WORK/tcpdump.err" &
    TCPDUMP_PID=$!
    for _ in $(seq 30); do grep -q 'listening on' "$WORK/tcpdump.err" 2>/dev/null && break; sleep 0.1; done
}

# IPv4 ICMP always; with --ipv6 also ICMPv6 (neighbour discovery too: the clear-text check below
# counts only echoes).
if [ "$IPV6" = 1 ]; then TCPDUMP_FILTER='icmp or icmp6 or udp'; else TCPDUMP_FILTER='icmp or udp'; fi

# --static --ipv6: the tunnel's addresses of WORK/gw{A,B}.toml changed to the IPv6 WAN ones and
# each site's IPv6 LAN added to the selectors. Dies if the example's layout no longer matches.
static_to_ipv6() {
    local g n m f
    for g in A B; do
        f="$WORK/gw$g.toml"
        if [ "$g" = A ]; then n=1 m=2; else n=2 m=1; fi
        sed -i -e "s|{ local = \"192\.0\.2\.$n\", remote = \"192\.0\.2\.$m\"|{ local = \"2001:db8:f::$n\", remote = \"2001:db8:f::$m\"|" \
            -e "s|^local_ts = \[\"10\.$n\.0\.0/24\"\]|local_ts = [\"10.$n.0.0/24\", \"2001:db8:$n::/64\"]|" \
            -e "s|^remote_ts = \[\"10\.$m\.0\.0/24\"\]|remote_ts = [\"10.$m.0.0/24\", \"2001:db8:$m::/64\"]|" "$f"
        if ! grep -qF "{ local = \"2001:db8:f::$n\", remote = \"2001:db8:f::$m\"" "$f" ||
            ! grep -qF "local_ts = [\"10.$n.0.0/24\", \"2001:db8:$n::/64\"]" "$f" ||
            ! grep -qF "remote_ts = [\"10.$m.0.0/24\", \"2001:db8:$m::/64\"]" "$f"; then
            die "could not turn $f into its IPv6 WAN form (did conf/static-gw-*.toml's layout change?)"
        fi
    done
}

secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }

if [ "$MODE" = static ]; then
    # Configs: the example configs with only the keys file, control socket and suite changed.
    write_configs
    if [ "$IPV6" = 1 ]; then static_to_ipv6; fi
    A_WAN=$(field local "$WORK/gwA.toml") B_WAN=$(field remote "$WORK/gwA.toml")
    PORT=$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$WORK/gwA.toml")

    write_keys
    say "keys:     fresh random $SUITE keys ($KEYLEN bytes of keying material per SPI) in $KEYS (mode 600)"
    say "tunnel:   $GWA $A_WAN:$PORT <==ESP-in-UDP==> $GWB $B_WAN:$PORT, suite $SUITE"
    say "          SPI $SPI_AB carries A->B, SPI $SPI_BA carries B->A; selectors $SELECTORS"

    check_configs

    T0=$(date +%s.%N)
    start_gateways info
    write_state
    wait_ready gwA "$PID_A" || { log "demo.sh: ironsecd in $GWA $NOT_READY"; fail "gateway A did not start"; }
    wait_ready gwB "$PID_B" || { log "demo.sh: ironsecd in $GWB $NOT_READY"; fail "gateway B did not start"; }
    say "started:  ironsecd pid $PID_A in $GWA, pid $PID_B in $GWB (both ready after $(secs_since "$T0") s)"
else
    # Configs: the IKE example configs with only the PSK file, control socket and (with
    # --suite) the proposals changed.
    if [ "$IPV6" = 1 ]; then write_ike_configs ipv6; else write_ike_configs; fi
    A_WAN=$(field local "$WORK/gwA.toml") B_WAN=$(field remote "$WORK/gwA.toml")
    PORT=$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$WORK/gwA.toml")
    IKE_PORT=$(sed -n 's/^ike_port = \([0-9]*\).*/\1/p' "$WORK/gwA.toml")
    IKE_PROPS=$(sed -n 's/^ike_proposals = \(\[[^]]*\]\).*/\1/p' "$WORK/gwA.toml")
    ESP_PROPS=$(sed -n 's/^esp_proposals = \(\[[^]]*\]\).*/\1/p' "$WORK/gwA.toml")

    write_psk
    say "psk:      fresh random pre-shared key (0x + 64 hex digits) in $PSK (mode 600), used by both gateways"
    say "tunnel:   $GWA $A_WAN ($(field local_id "$WORK/gwA.toml"), initiator) <==IKEv2==> $GWB $B_WAN ($(field local_id "$WORK/gwB.toml"), responder)"
    say "          IKE_SA_INIT on UDP/$IKE_PORT, then IKE_AUTH and ESP-in-UDP on UDP/$PORT; selectors $SELECTORS"
    say "          both propose ike_proposals = $IKE_PROPS, esp_proposals = $ESP_PROPS"

    check_configs
    start_tcpdump    # before the gateways: it sees the IKE exchange too

    # The responder first, so that it is listening when the initiator's IKE_SA_INIT arrives.
    T0=$(date +%s.%N)
    start_gateway gwB info
    write_state
    wait_ready gwB "$PID_B" || { log "demo.sh: ironsecd in $GWB $NOT_READY"; fail "gateway B did not start"; }
    say "started:  ironsecd pid $PID_B in $GWB (responder), ready after $(secs_since "$T0") s"
    T1=$(date +%s.%N)
    start_gateway gwA info
    write_state
    wait_ready gwA "$PID_A" || { log "demo.sh: ironsecd in $GWA $NOT_READY"; fail "gateway A did not start"; }
    say "          ironsecd pid $PID_A in $GWA (initiator), ready after $(secs_since "$T1") s"

    if ! wait_established gwA "$PID_A" 10; then
        LOG_LINES=all
        fail "the IKEv2 tunnel did not come up on $GWA: $NOT_UP"
    fi
    UP_SECS=$(secs_since "$T1")
    read -r _ A_CHILDREN A_ALG A_SPI_I A_SPI_R A_INIT SPI_AB A_SUITE SPI_BA _ <<<"$IKE_LINE"
    if ! wait_established gwB "$PID_B" 2; then
        LOG_LINES=all
        fail "$GWA has its IKE SA but $GWB does not: $NOT_UP"
    fi
    read -r _ _ B_ALG B_SPI_I B_SPI_R B_INIT B_OUT _ B_IN _ <<<"$IKE_LINE"
    # Both ends must describe the same IKE SA and mirror-image CHILD_SA.
    [ "$A_INIT/$B_INIT" = true/false ] || fail "expected $GWA initiator and $GWB responder, got initiator=$A_INIT/$B_INIT"
    [ "$A_SPI_I/$A_SPI_R/$A_ALG" = "$B_SPI_I/$B_SPI_R/$B_ALG" ] ||
        fail "the gateways disagree on the IKE SA: $GWA $A_SPI_I/$A_SPI_R $A_ALG, $GWB $B_SPI_I/$B_SPI_R $B_ALG"
    [ "$SPI_AB/$SPI_BA" = "$B_IN/$B_OUT" ] ||
        fail "the gateways disagree on the CHILD_SA: $GWA out $SPI_AB in $SPI_BA, $GWB out $B_OUT in $B_IN"
    NEG_MS=$(log_interval "$WORK/gwA.log" "initiating IKE SA" "CHILD_SA up" | awk '{printf "%.1f", $1 * 1000}')

    say ""
    say "negotiated (IKEv2, PSK):"
    say "    IKE SA    $A_ALG, SPIs $A_SPI_I (initiator $GWA) / $A_SPI_R (responder $GWB)"
    say "    CHILD_SA  $A_SUITE: SPI $SPI_AB carries A->B, SPI $SPI_BA carries B->A ($A_CHILDREN CHILD_SA on $GWA)"
    if [ -n "$NEG_MS" ]; then
        say "    took      $NEG_MS ms (IKE_SA_INIT + IKE_AUTH: $GWA's log from 'initiating IKE SA' to 'CHILD_SA up');"
        say "              the tunnel was up $UP_SECS s after $GWA's ironsecd was started"
    else
        say "    took      the tunnel was up $UP_SECS s after $GWA's ironsecd was started (IRONSEC_LOG hides the"
        say "              log lines that time the exchange itself)"
    fi
fi
say "routes:   $GWA: $(ip -n "$GWA" route get 10.2.0.2 | head -n1 | sed 's/ *$//')"
say "          $GWB: $(ip -n "$GWB" route get 10.1.0.2 | head -n1 | sed 's/ *$//')"
if [ "$IPV6" = 1 ]; then
    say "          $GWA: $(ip -n "$GWA" -6 route get "$LANB_IP6" | head -n1 | sed 's/ *$//')"
    say "          $GWB: $(ip -n "$GWB" -6 route get "$LANA_IP6" | head -n1 | sed 's/ *$//')"
fi

read -r A_OUT0 _ A_IN0 _ < <(counters "$WORK/gwA.sock") || fail "ironsecctl status --json failed on gwA"
read -r B_OUT0 _ B_IN0 _ < <(counters "$WORK/gwB.sock") || fail "ironsecctl status --json failed on gwB"

# Watch the WAN while pinging (IKEv2: already watching since before the negotiation).
if [ "$MODE" = static ]; then start_tcpdump; fi

# ping $1 -> $2 (addresses $3 -> $4) PINGS times into WORK/$5.txt; sets PING_RC and RECEIVED.
ping_through() { # from to src dst tag
    say ""
    say "ping $1 $3 -> $2 $4 ($PINGS echo requests through the tunnel):"
    set +e
    do_ping "$1" "$4" "$PINGS" >"$WORK/$5.txt" 2>&1
    PING_RC=$?
    set -e
    indent <"$WORK/$5.txt"
    RECEIVED=$(sed -n 's/.* \([0-9]\+\) received.*/\1/p' "$WORK/$5.txt" | tail -n1)
    RECEIVED=${RECEIVED:-0}
}
ping_through "$LANA" "$LANB" "$LANA_IP" "$LANB_IP" ping
PING_RC4=$PING_RC RECEIVED4=$RECEIVED
# Every ping of this run: the counters below must have grown by at least this many.
REQUESTS=$PINGS
if [ "$IPV6" = 1 ]; then
    ping_through "$LANA" "$LANB" "$LANA_IP6" "$LANB_IP6" ping6
    PING_RC6=$PING_RC RECEIVED6=$RECEIVED
    REQUESTS=$((2 * PINGS))
fi

if [ -n "$TCPDUMP_PID" ]; then
    sleep 0.2
    kill -TERM "$TCPDUMP_PID" 2>/dev/null || true
    wait "$TCPDUMP_PID" 2>/dev/null || true
    TCPDUMP_PID=""
    # tcpdump: "IP a > b: ICMP echo request" and "IP6 a > b: ICMP6, echo request".
    CLEAR_ICMP=$(grep -c ' ICMP echo\| ICMP6, echo' "$WORK/wan.txt" || true)
    say ""
    if [ "$MODE" = static ]; then
        ESP_LINES=$(grep -c "\.$PORT > .*\.$PORT: " "$WORK/wan.txt" || true)
        say "WAN of $GWA (tcpdump -i wan '$TCPDUMP_FILTER'): $ESP_LINES UDP/$PORT datagrams, $CLEAR_ICMP clear-text ICMP echoes; first ones:"
        head -n 4 "$WORK/wan.txt" | indent
    else
        # tcpdump decodes IKE (UDP/500, and UDP/4500 behind the non-ESP marker) as "isakmp".
        IKE_LINES=$(grep -c 'isakmp' "$WORK/wan.txt" || true)
        ESP_LINES=$(grep "\.$PORT > .*\.$PORT: " "$WORK/wan.txt" | grep -vc 'isakmp' || true)
        say "WAN of $GWA (tcpdump -i wan '$TCPDUMP_FILTER', from before $GWA started): $IKE_LINES IKE datagrams,"
        say "$ESP_LINES ESP-in-UDP/$PORT datagrams, $CLEAR_ICMP clear-text ICMP echoes; first ones:"
        head -n 6 "$WORK/wan.txt" | indent
    fi
fi

read -r A_OUT1 A_OUTB1 A_IN1 _ < <(counters "$WORK/gwA.sock") || fail "ironsecctl status --json failed on gwA"
read -r B_OUT1 _ B_IN1 _ < <(counters "$WORK/gwB.sock") || fail "ironsecctl status --json failed on gwB"
D_A_OUT=$((A_OUT1 - A_OUT0)) D_A_IN=$((A_IN1 - A_IN0)) D_B_OUT=$((B_OUT1 - B_OUT0)) D_B_IN=$((B_IN1 - B_IN0))
say ""
say "tunnel packet counters during the ping:"
say "    $GWA outbound (SPI $SPI_AB): +$D_A_OUT   ($A_OUTB1 bytes in total)    $GWB inbound: +$D_B_IN"
say "    $GWB outbound (SPI $SPI_BA): +$D_B_OUT                           $GWA inbound: +$D_A_IN"

for g in gwA gwB; do
    say ""
    say "== $PREFIX-$g: ironsecctl --socket $WORK/$g.sock status =="
    "$CTL" --socket "$WORK/$g.sock" status 2>&1 | indent || true
done
say ""

if [ "$PING_RC4" != 0 ] || [ "$RECEIVED4" -eq 0 ]; then
    fail "no IPv4 ping reply crossed the tunnel ($RECEIVED4/$PINGS replies, ping exit $PING_RC4)"
fi
if [ "$IPV6" = 1 ] && { [ "$PING_RC6" != 0 ] || [ "$RECEIVED6" -eq 0 ]; }; then
    fail "no IPv6 ping reply crossed the tunnel ($RECEIVED6/$PINGS replies, ping exit $PING_RC6)"
fi
[ "$D_A_OUT" -ge "$REQUESTS" ] ||
    fail "gwA's tunnel outbound counter grew by $D_A_OUT, less than the $REQUESTS echo requests: the traffic did not go through the tunnel"
if [ -n "${CLEAR_ICMP:-}" ] && [ "$CLEAR_ICMP" -gt 0 ]; then
    fail "$CLEAR_ICMP ICMP echo packets crossed the WAN in clear text"
fi
[ "$RECEIVED4" = "$PINGS" ] || echo "demo.sh: warning: only $RECEIVED4 of $PINGS IPv4 pings were answered" >&2
if [ "$IPV6" = 1 ]; then
    [ "$RECEIVED6" = "$PINGS" ] || echo "demo.sh: warning: only $RECEIVED6 of $PINGS IPv6 pings were answered" >&2
    CROSSED="$RECEIVED4/$PINGS IPv4 and $RECEIVED6/$PINGS IPv6 pings crossed"
else
    CROSSED="$RECEIVED4/$PINGS pings crossed"
fi
if [ "$MODE" = static ]; then
    say "PASS: $CROSSED the tunnel; $GWA sent $D_A_OUT ESP packets on SPI $SPI_AB."
else
    say "PASS: IKEv2 brought the tunnel up ($A_ALG, CHILD_SA $A_SUITE); $CROSSED it;"
    say "      $GWA sent $D_A_OUT ESP packets on SPI $SPI_AB."
fi

if [ "$KEEP" = 1 ]; then
    KEEP_RUNNING=1
    if [ "$MODE" = static ]; then KEEP_SECRET="keys: $KEYS"; else KEEP_SECRET="pre-shared key: $PSK"; fi
    PING6_HINT=""
    if [ "$IPV6" = 1 ]; then PING6_HINT=$'\n'"    ip netns exec $LANA ping $LANB_IP6"; fi
    cat <<EOF

The demo keeps running (--keep). Try:
    ip netns exec $LANA ping $LANB_IP$PING6_HINT
    ip netns exec $LANA bash                  # a shell on site A's LAN
    $CTL --socket $WORK/gwA.sock status
    $CTL --socket $WORK/gwB.sock status
    ip netns exec $GWA tcpdump -ni wan udp port $PORT${IKE_PORT:+ or udp port $IKE_PORT}
    ip -n $GWA -s link show $TUN_A
Daemon logs: $WORK/gwA.log $WORK/gwB.log   PIDs: gwA $PID_A, gwB $PID_B (recorded in $STATE)
Configs: $WORK/gwA.toml $WORK/gwB.toml   ${KEEP_SECRET}
Tear it down with:
    $HERE/demo.sh --down
or by hand:
    kill $PID_A $PID_B; IRONSEC_NS_PREFIX=$PREFIX $TOPO down; rm -rf $WORK $STATE
EOF
    exit 0
fi

# Normal path: stop the daemons with SIGTERM and report how they exited (the trap tears down).
stop_and_report() { # gw pid
    local st=0
    stop_pid "$2"
    wait "$2" 2>/dev/null || st=$?
    if [ "$st" = 0 ]; then say "stopped:  ironsecd in $PREFIX-$1 exited cleanly on SIGTERM"
    else echo "demo.sh: warning: ironsecd in $PREFIX-$1 exited with status $st on SIGTERM" >&2; fi
}
stop_and_report gwA "$PID_A"
stop_and_report gwB "$PID_B"
PID_A="" PID_B=""
say "tearing down namespaces $PREFIX-* (use --keep to leave the demo running)"
