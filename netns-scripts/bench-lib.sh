# shellcheck shell=bash
# Helpers of netns-scripts/bench.sh: the load generators and probes (iperf3 TCP and UDP, ping),
# the tunnel cases (no tunnel, ironsec IKE or static, strongSwan with kernel-libipsec on both
# gateways, boringtun on both gateways), per-tunnel byte counters and CPU accounting. Not a script
# of its own: bench.sh sources it after lib.sh.
#
# Needs (set by bench.sh): HERE PREFIX LANA GWA GWB LANB WORK TIME OMIT PINGS UDP_LEN UDP_SENDERS
# TXQ RES_TSV and lib.sh's functions. Conventions: a function that can fail because of the system
# under test returns 1 with FAIL set to why (the case is then reported as failed and the next one
# runs); a bug in the script itself dies. Every load is bounded by `timeout`; every process is
# stopped by its PID (BG_PIDS for the loads, GW_PID_A/GW_PID_B for the gateway processes).

# strongSwan's names (swanctl --list-sas --raw) of an AES-CBC + HMAC suite's key size and
# integrity algorithm, for the check that its CHILD_SA runs the suite asked for. Needs SW_SUITE.
sw_cbc_keysize() { local k=${SW_SUITE%%-*}; echo "${k#aes}"; }
sw_integ_name() {
    case "${SW_SUITE#*-}" in
        sha1) echo HMAC_SHA1_96 ;;
        sha256) echo HMAC_SHA2_256_128 ;;
        sha384) echo HMAC_SHA2_384_192 ;;
        sha512) echo HMAC_SHA2_512_256 ;;
    esac
}

# Globals set here are read by bench.sh.
# shellcheck disable=SC2034

LANA_IP=10.1.0.2 LANB_IP=10.2.0.2
LANA_NET=10.1.0.0/24 LANB_NET=10.2.0.0/24
WAN_A=192.0.2.1 WAN_B=192.0.2.2 WAN_FAMILY=4

# The WAN the next case's tunnel uses: 4 (192.0.2.1 - 192.0.2.2) or 6 (2001:db8:f::1 -
# 2001:db8:f::2, topology.sh with IRONSEC_IPV6=1). Sets WAN_FAMILY WAN_A WAN_B.
wan_family() { # 4|6
    WAN_FAMILY=$1
    case "$1" in
        4) WAN_A=192.0.2.1 WAN_B=192.0.2.2 ;;
        6) WAN_A=2001:db8:f::1 WAN_B=2001:db8:f::2 ;;
        *) die "unknown WAN family '$1'" ;;
    esac
}

# "address:port", with brackets around an IPv6 address.
hostport() { # addr port
    case "$1" in
        *:*) echo "[$1]:$2" ;;
        *) echo "$1:$2" ;;
    esac
}
BG_PIDS=()
FAIL=""

# ---------------------------------------------------------------------------------------------
# Background processes

# Start "$@" in the background, remember its PID in BG_PIDS and in BG.
spawn() { "$@" & BG=$!; BG_PIDS+=("$BG"); }

# Stop every process spawn started (by PID) and forget them.
stop_bg() {
    local p
    for p in "${BG_PIDS[@]}"; do stop_pid "$p"; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    BG_PIDS=()
}

# utime+stime of PID $1 in clock ticks (all threads); returns 1 if it is gone.
cpu_ticks() {
    local st f
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    read -ra f <<<"$st"
    echo $((f[11] + f[12]))
}

now() { date +%s.%N; }

# ---------------------------------------------------------------------------------------------
# Loads and probes

# Wait (at most 5 s) until TCP port $2 listens in namespace $1 or PID $3 is gone.
wait_listen() { # ns port pid
    for _ in $(seq 50); do
        ip netns exec "$1" ss -Htln "sport = :$2" 2>/dev/null | grep -q . && return 0
        alive "$3" || return 1
        sleep 0.1
    done
    return 1
}

# Median of the numbers on stdin (one per line); prints nothing for no input.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.4f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# RTTs (ms, one per line) from ping's output file $1.
ping_times() { sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' "$1"; }

# ping lanA -> lanB: $1 pings every $2 s after a delay of $3 s, output to $4, in the background
# (PID in BG), bounded by timeout.
ping_bg() { # count interval delay out
    local limit
    limit=$(awk -v c="$1" -v i="$2" -v d="$3" 'BEGIN { printf "%d", c * i + d + 5 }')
    # shellcheck disable=SC2016  # expanded by the inner sh
    spawn timeout -k 2 "$limit" ip netns exec "$LANA" sh -c 'sleep "$1"; exec ping -n -c "$2" -i "$3" -W 1 "$4"' \
        sh "$3" "$1" "$2" "$LANB_IP" >"$4" 2>&1 </dev/null
}

# Idle RTT: PINGS pings lanA -> lanB, 50 ms apart. Sets RES="median_ms received sent".
ping_idle() { # tag
    local out="$WORK/ping-$1.txt" med n
    RES=""
    ping_bg "$PINGS" 0.05 0 "$out"
    wait "$BG" || true
    stop_bg
    n=$(ping_times "$out" | wc -l)
    med=$(ping_times "$out" | median)
    if [ "$n" -eq 0 ]; then log "    ping: no reply ($(tail -n 2 "$out" | tr '\n' ' '))"; return 1; fi
    RES="$med $n $PINGS"
}

# Start one iperf3 server per port 5201.. ($1 of them) in lanB, one-off (-1), bounded in time;
# waits until all listen.
iperf_servers() { # count tag
    local i
    for i in $(seq "$1"); do
        spawn timeout -k 2 $((TIME + OMIT + 30)) ip netns exec "$LANB" \
            iperf3 -s -1 -B "$LANB_IP" -p $((5200 + i)) >"$WORK/iperf-$2-$i.srv" 2>&1 </dev/null
        wait_listen "$LANB" $((5200 + i)) "$BG" || { log "    iperf3 server on port $((5200 + i)) did not start: $(head -c 300 "$WORK/iperf-$2-$i.srv")"; return 1; }
    done
}

# After the clients: give the one-off servers a moment to exit on their own, then stop them.
iperf_done() {
    local p
    for p in "${BG_PIDS[@]}"; do
        for _ in $(seq 30); do alive "$p" || break; sleep 0.1; done
    done
    stop_bg
}

# One iperf3 TCP run with $1 parallel streams, direction $2 (fwd: lanA -> lanB; rev: -R,
# lanB -> lanA), with ping lanA -> lanB during the run into $4 if $4 is set.
# Sets RES="mbps received_bytes retransmits" or returns 1 (reason on stderr).
iperf_tcp() { # streams dir tag [ping-out]
    local p=$1 dir=$2 tag=$3 pingout=${4:-} out="$WORK/iperf-$3.json" rc=0 res rev=() n
    RES=""
    [ "$dir" = rev ] && rev=(-R)
    iperf_servers 1 "$tag" || { stop_bg; return 1; }
    if [ -n "$pingout" ]; then
        # 10 pings a second inside the measured interval (after the omitted warm-up).
        n=$(awk -v t="$TIME" 'BEGIN { n = int((t - 0.5) * 10); print (n < 1) ? 1 : n }')
        ping_bg "$n" 0.1 "$OMIT.3" "$pingout"
    fi
    timeout -k 2 $((TIME + OMIT + 20)) ip netns exec "$LANA" \
        iperf3 -c "$LANB_IP" -p 5201 -t "$TIME" -O "$OMIT" -P "$p" "${rev[@]}" --json \
        >"$out" 2>"$out.err" </dev/null &
    CLI_PID=$!
    wait "$CLI_PID" || rc=$?
    CLI_PID=""
    iperf_done
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

# One iperf3 UDP run: UDP_SENDERS clients (one process and port each, -l UDP_LEN, -b 0 =
# as fast as they can), direction $1. Sets RES="received_pps received_bytes sent_pps" summed over
# the senders (received = what the receiving iperf3 counted), or returns 1.
iperf_udp() { # dir tag
    local dir=$1 tag=$2 i rc=0 res rev=() pids=() files=()
    RES=""
    [ "$dir" = rev ] && rev=(-R)
    iperf_servers "$UDP_SENDERS" "$tag" || { stop_bg; return 1; }
    for i in $(seq "$UDP_SENDERS"); do
        timeout -k 2 $((TIME + 20)) ip netns exec "$LANA" \
            iperf3 -c "$LANB_IP" -p $((5200 + i)) -u -l "$UDP_LEN" -b 0 -t "$TIME" "${rev[@]}" --json \
            >"$WORK/iperf-$tag-$i.json" 2>"$WORK/iperf-$tag-$i.err" </dev/null &
        pids+=($!) files+=("$WORK/iperf-$tag-$i.json")
    done
    CLI_PIDS=("${pids[@]}")
    for i in "${pids[@]}"; do wait "$i" || rc=$?; done
    CLI_PIDS=()
    iperf_done
    res=$(python3 - "$UDP_LEN" "${files[@]}" <<'EOF'
import json, sys
length, rx, rxb, tx = int(sys.argv[1]), 0.0, 0, 0.0
for f in sys.argv[2:]:
    try:
        d = json.load(open(f))
    except Exception as e:
        print("ERR unparseable iperf3 output %s: %s" % (f, e)); sys.exit()
    if d.get("error"):
        print("ERR", d["error"]); sys.exit()
    r, s = d["end"]["sum_received"], d["end"]["sum_sent"]
    rx += r["bytes"] / length / r["seconds"]
    rxb += int(r["bytes"])
    tx += s["packets"] / s["seconds"]
print("OK %.0f %d %.0f" % (rx, rxb, tx))
EOF
    )
    if [ "${res%% *}" != OK ]; then
        log "    iperf3 -u failed (exit $rc): ${res#ERR } $(head -c 300 "$WORK/iperf-$tag-1.err" 2>/dev/null)"
        return 1
    fi
    RES=${res#OK }
}

# ---------------------------------------------------------------------------------------------
# Tunnel byte counters of gwA: "out_bytes in_bytes" (out = lanA -> lanB). Set by each case:
# TUNNEL_KIND none|ironsec|strongswan|boringtun|null.

tunnel_bytes() {
    local o
    case "$TUNNEL_KIND" in
        none) echo "0 0" ;;
        ironsec)
            # lib.sh's counters, bounded in time: a hung daemon must not hang the benchmark.
            # shellcheck disable=SC2016  # $1 is the inner bash's
            o=$(export -f counters; CTL=$CTL JSON=$JSON timeout 10 bash -c 'counters "$1"' _ "$WORK/gwA.sock") ||
                return 1
            awk '{ print $2, $4 }' <<<"$o" ;;
        strongswan)
            # One CHILD_SA: bytes-out/bytes-in from VICI (summed in case a rekey left two).
            o=$(timeout 10 "$HERE/strongswan.sh" swanctl "$SW_DIR_A" --list-sas --raw 2>/dev/null) || return 1
            awk '{ while (match($0, /bytes-(in|out)=[0-9]+/)) { kv = substr($0, RSTART, RLENGTH);
                       split(kv, f, "="); if (kv ~ /^bytes-in/) i += f[2]; else o += f[2];
                       $0 = substr($0, RSTART + RLENGTH) } }
                 END { printf "%.0f %.0f\n", o, i }' <<<"$o" ;;
        boringtun)
            # wg show <dev> transfer: "<peer> <rx> <tx>"; boringtun counts inner packet bytes.
            o=$(bt_wg A show "$BT_DEV" transfer) || return 1
            awk '{ rx += $2; tx += $3 } END { printf "%.0f %.0f\n", tx, rx }' <<<"$o" ;;
        null)
            # nt0's own counters: what the stack sent into the device went out through the
            # forwarder (tx), what it wrote into the device came in (rx).
            o=$(ip -n "$GWA" -j -s link show dev "$NULL_DEV") || return 1
            python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["stats64"]; print(s["tx"]["bytes"], s["rx"]["bytes"])' <<<"$o" ;;
        *) die "unknown TUNNEL_KIND '$TUNNEL_KIND'" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Case plumbing shared by the tunnels

# Raise the txqueuelen of TUN device $2 in namespace $1 to at least TXQ (every tunnel gets the
# same queue, whatever its software's default: strongSwan's ipsec0 and boringtun's wg0 start at
# 500). Sets QLEN and MTU to the device's values afterwards.
tun_queue() { # ns dev
    local q
    q=$(ip -n "$1" -o link show dev "$2" | sed -n 's/.* qlen \([0-9]*\).*/\1/p')
    if [ -z "$q" ] || [ "$q" -lt "$TXQ" ]; then ip -n "$1" link set dev "$2" txqueuelen "$TXQ"; fi
    QLEN=$(ip -n "$1" -o link show dev "$2" | sed -n 's/.* qlen \([0-9]*\).*/\1/p')
    MTU=$(ip -n "$1" -o link show dev "$2" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
}

# Where packets were lost, per namespace: "NS txdrop rcvbuf" lines, where txdrop sums every link's
# tx_dropped (a full device queue: for a tunnel's device, the gateway did not read in time) and
# rcvbuf is UDP RcvbufErrors (a socket's queue was full: the reader did not keep up).
drop_snapshot() {
    local ns
    for ns in "$LANA" "$GWA" "$GWB" "$LANB"; do
        printf '%s %s %s\n' "$ns" \
            "$(ip -n "$ns" -j -s link show | python3 -c 'import json,sys; print(sum(l.get("stats64",{}).get("tx",{}).get("dropped",0) for l in json.load(sys.stdin)))')" \
            "$(ip netns exec "$ns" awk '/^Udp:/ { if (h) { for (i = 1; i <= NF; i++) if (n[i] == "RcvbufErrors") print $i } else { h = 1; for (i = 1; i <= NF; i++) n[i] = $i } }' /proc/net/snmp)"
    done
}

# Packets/s that arrived at the receiving host NS: received (pps) + its UDP RcvbufErrors between two
# drop_snapshot outputs, over TIME seconds. iperf3 is the only UDP reader there.
rcvbuf_rate() { # before after ns pps
    paste -d' ' <(printf '%s\n' "$1") <(printf '%s\n' "$2") |
        awk -v ns="$3" -v pps="$4" -v t="$TIME" '$1 == ns { printf "%.0f\n", pps + ($6 - $3) / t }'
}

# Logs the difference of two drop_snapshot outputs: "lost: NS txq N, NS rcvbuf N, ..." (nonzero only).
log_drops() { # before after tag
    local line
    line=$(paste -d' ' <(printf '%s\n' "$1") <(printf '%s\n' "$2") |
        awk '{ t = $5 - $2; r = $6 - $3; ns = $1; sub(/^[^-]*-/, "", ns)
               if (t) printf "%s txq %d, ", ns, t; if (r) printf "%s rcvbuf %d, ", ns, r }')
    log "    $3 lost: ${line:-nothing counted}"
}

# Both gateways must route the remote LAN through their tunnel device ($1 in gwA, $2 in gwB), and
# their main table must not hold a plain route to it (which would bypass the tunnel).
check_routes() { # devA devB
    local r ns dev dst net x
    for x in "$GWA $1 $LANB_IP $LANB_NET" "$GWB $2 $LANA_IP $LANA_NET"; do
        read -r ns dev dst net <<<"$x"
        r=$(ip -n "$ns" route get "$dst" 2>&1) || true
        case "$r" in
            *" dev $dev "*) log "  $ns: $(head -n1 <<<"$r")" ;;
            *) FAIL="in $ns, $dst is not routed through $dev: $r"; return 1 ;;
        esac
        if ip -n "$ns" route show table main | grep -q "^$net .*dev wan"; then
            FAIL="$ns's main table has a plain route to $net that bypasses the tunnel"
            return 1
        fi
    done
}

# After a case: no TUN device left in the gateways and no route to the remote LAN (waits up to
# 5 s for exiting daemons to take theirs away). Dies otherwise: the next case would be wrong.
check_clean() {
    local ns left
    for _ in $(seq 50); do
        left=""
        for ns in "$GWA" "$GWB"; do
            if ip -n "$ns" -o link show type tun | grep -q .; then left+=" $ns:tun"; fi
        done
        ip -n "$GWA" route get "$LANB_IP" >/dev/null 2>&1 && left+=" $GWA:route"
        ip -n "$GWB" route get "$LANA_IP" >/dev/null 2>&1 && left+=" $GWB:route"
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    die "state left over after a case:$left"
}

# ---------------------------------------------------------------------------------------------
# (a) no tunnel

# Over the IPv6 WAN the IPv4 route has an IPv6 next hop (RFC 5549 style, `via inet6`).
nexthop() { case "$1" in *:*) echo "inet6 $1" ;; *) echo "$1" ;; esac; }

notunnel_up() {
    # shellcheck disable=SC2046  # nexthop's words: "inet6 ADDR" or "ADDR"
    ip -n "$GWA" route add "$LANB_NET" via $(nexthop "$WAN_B") dev wan
    # shellcheck disable=SC2046
    ip -n "$GWB" route add "$LANA_NET" via $(nexthop "$WAN_A") dev wan
    TUNNEL_KIND=none GW_PID_A="" GW_PID_B="" MTU=- QLEN=- CASE_VERSION="Linux $(uname -r) forwarding"
}
notunnel_down() {
    ip -n "$GWA" route del "$LANB_NET" dev wan 2>/dev/null || true
    ip -n "$GWB" route del "$LANA_NET" dev wan 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# (b) ironsec: IKEv2 with a PSK (conf/ike-gw-*.toml), or static keys (conf/static-gw-*.toml)

ironsec_fail() { # gw reason
    FAIL="$2"
    log "  last lines of $1's log:"
    tail -n 20 "$WORK/$1.log" 2>/dev/null | indent >&2
    return 1
}

ironsec_up() { # ike|static suite
    SUITE=$2
    rm -f "$WORK/gwA.sock" "$WORK/gwB.sock"
    if [ "$1" = ike ]; then
        write_ike_configs    # ike_proposals ["SUITE-prfsha256-x25519"], esp_proposals ["SUITE"]
        write_psk
    else
        suite_keylen
        write_configs
        write_keys
    fi
    if [ "$WAN_FAMILY" = 6 ]; then configs_to_wan6 || return 1; fi
    check_configs
    # The responder first, so that it listens when the initiator's IKE_SA_INIT arrives.
    start_gateway gwB warn
    start_gateway gwA warn
    GW_PID_A=$PID_A GW_PID_B=$PID_B TUNNEL_KIND=ironsec
    wait_ready gwB "$PID_B" || { ironsec_fail gwB "ironsecd in $GWB $NOT_READY"; return 1; }
    wait_ready gwA "$PID_A" || { ironsec_fail gwA "ironsecd in $GWA $NOT_READY"; return 1; }
    if [ "$1" = ike ]; then
        wait_established gwA "$PID_A" 10 || { ironsec_fail gwA "IKE on $GWA: $NOT_UP"; return 1; }
        log "  $GWA: $IKE_LINE"
        wait_established gwB "$PID_B" 3 || { ironsec_fail gwB "IKE on $GWB: $NOT_UP"; return 1; }
        case "$IKE_LINE" in
            *" $SUITE "*) ;;
            *) FAIL="negotiated ESP suite is not $SUITE: $IKE_LINE"; return 1 ;;
        esac
    fi
    tun_queue "$GWB" "$TUN_B"
    tun_queue "$GWA" "$TUN_A"
    log "  ironsecd pids gwA $PID_A, gwB $PID_B; $TUN_A mtu $MTU txqueuelen $QLEN"
    # Which addresses the tunnel really runs between (ironsecctl status), for the report.
    ENDPOINTS=$(tunnel_endpoints "$WORK/gwA.sock") || { FAIL="could not read gwA's tunnel endpoints"; return 1; }
    log "  gwA's tunnel: $ENDPOINTS"
    case "$ENDPOINTS" in
        "$WAN_A -> $WAN_B") ;;
        *) FAIL="gwA's tunnel runs $ENDPOINTS, not $WAN_A -> $WAN_B"; return 1 ;;
    esac
    check_routes "$TUN_A" "$TUN_B" || return 1
    CASE_VERSION=$("$D" --version 2>/dev/null | head -n1)
}

ironsec_down() {
    stop_pid "$PID_A"; stop_pid "$PID_B"
    wait "$PID_A" 2>/dev/null || true
    wait "$PID_B" 2>/dev/null || true
    PID_A="" PID_B="" GW_PID_A="" GW_PID_B=""
}

# ---------------------------------------------------------------------------------------------
# (c) strongSwan 5.9 with kernel-libipsec on both gateways (netns-scripts/strongswan.sh: one
# charon per namespace, own strongswan.conf, /run, VICI socket and log). IKEv2 with a PSK,
# encap=yes (libipsec only speaks ESP in UDP/4500 anyway), the same proposals as ironsec; gwA
# initiates. charon routes the remote LAN into its ipsec0 through table 220.

# swanctl.conf of one side: local-addr remote-addr local-id remote-id local-ts remote-ts child
sw_conf() {
    cat <<EOF
# Written by netns-scripts/bench.sh (strongSwan on both gateways).
connections {
    bench {
        version = 2
        local_addrs = $1
        remote_addrs = $2
        proposals = $SW_SUITE-prfsha256-x25519
        encap = yes
        fragmentation = yes
        rekey_time = 4h
        local {
            auth = psk
            id = $3
        }
        remote {
            auth = psk
            id = $4
        }
        children {
            $7 {
                local_ts = $5
                remote_ts = $6
                esp_proposals = $SW_SUITE
                rekey_time = 1h
                start_action = none
                close_action = none
            }
        }
    }
}
secrets {
    ike-bench {
        id-a = $3
        id-b = $4
        secret = $SW_PSK
    }
}
EOF
}

sw_fail() { # dir reason
    FAIL="$2"
    log "  last lines of $1/charon.log:"
    tail -n 20 "$1/charon.log" 2>/dev/null | indent >&2
    return 1
}

# Sets SW_INSTALLED to the number of INSTALLED CHILD_SAs of the charon in dir $1.
sw_installed() {
    SW_INSTALLED=$(timeout 10 "$HERE/strongswan.sh" swanctl "$1" --list-sas --raw 2>/dev/null | grep -o 'state=INSTALLED' | wc -l)
}

strongswan_up() { # suite
    local out
    SW_SUITE=$1 SW_DIR_A="$WORK/swan-gwA" SW_DIR_B="$WORK/swan-gwB"
    SW_PSK="0x$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    TUNNEL_KIND=strongswan
    rm -rf "$SW_DIR_A" "$SW_DIR_B"
    mkdir -p "$SW_DIR_A" "$SW_DIR_B"
    (
        umask 077
        sw_conf "$WAN_A" "$WAN_B" gw-a.example gw-b.example "$LANA_NET" "$LANB_NET" site-b >"$SW_DIR_A/swanctl.conf"
        sw_conf "$WAN_B" "$WAN_A" gw-b.example gw-a.example "$LANB_NET" "$LANA_NET" site-a >"$SW_DIR_B/swanctl.conf"
    )
    GW_PID_B=$("$HERE/strongswan.sh" start "$GWB" "$SW_DIR_B" 2>"$SW_DIR_B/start.err") ||
        { indent <"$SW_DIR_B/start.err" >&2; FAIL="charon did not start in $GWB"; return 1; }
    GW_PID_A=$("$HERE/strongswan.sh" start "$GWA" "$SW_DIR_A" 2>"$SW_DIR_A/start.err") ||
        { indent <"$SW_DIR_A/start.err" >&2; FAIL="charon did not start in $GWA"; return 1; }
    out=$(timeout -k 2 20 "$HERE/strongswan.sh" swanctl "$SW_DIR_A" --initiate --child site-b --timeout 10 2>&1) ||
        { indent <<<"$out" >&2; sw_fail "$SW_DIR_A" "swanctl --initiate --child site-b failed in $GWA"; return 1; }
    sw_installed "$SW_DIR_A"
    [ "$SW_INSTALLED" -ge 1 ] || { sw_fail "$SW_DIR_A" "no INSTALLED CHILD_SA in $GWA's charon"; return 1; }
    sw_installed "$SW_DIR_B"
    [ "$SW_INSTALLED" -ge 1 ] || { sw_fail "$SW_DIR_B" "no INSTALLED CHILD_SA in $GWB's charon"; return 1; }
    out=$(timeout 10 "$HERE/strongswan.sh" swanctl "$SW_DIR_A" --list-sas --raw 2>/dev/null)
    log "  charon pids gwA $GW_PID_A, gwB $GW_PID_B; gwA's CHILD_SA: $(grep -o 'state=[A-Z]* \|encr-[a-z]*=[^ ]*\|spi-[a-z]*=[^ ]*' <<<"${out##*child-sas}" | tr '\n' ' ')"
    case "$SW_SUITE:$out" in
        aes128gcm16:*"encr-alg=AES_GCM_16 encr-keysize=128 bytes-in"*) ;;
        aes256gcm16:*"encr-alg=AES_GCM_16 encr-keysize=256 bytes-in"*) ;;
        chacha20poly1305:*"encr-alg=CHACHA20_POLY1305"*"bytes-in"*) ;;
        aes*-sha*:*"encr-alg=AES_CBC encr-keysize=$(sw_cbc_keysize) integ-alg=$(sw_integ_name) bytes-in"*) ;;
        *) FAIL="gwA's CHILD_SA does not use $SW_SUITE: $(tr '\n' ' ' <<<"$out")"; return 1 ;;
    esac
    tun_queue "$GWB" ipsec0
    tun_queue "$GWA" ipsec0
    log "  ipsec0 mtu $MTU txqueuelen $QLEN"
    check_routes ipsec0 ipsec0 || return 1
    CASE_VERSION="strongSwan $(dpkg-query -W -f '${Version}' strongswan-charon 2>/dev/null || echo '?') kernel-libipsec"
}

strongswan_down() {
    local d
    for d in "${SW_DIR_A:-}" "${SW_DIR_B:-}"; do
        if [ -n "$d" ] && [ -f "$d/charon.pid" ]; then
            "$HERE/strongswan.sh" stop "$d" >&2 || log "  strongswan.sh stop $d failed"
        fi
    done
    GW_PID_A="" GW_PID_B=""
}

# ---------------------------------------------------------------------------------------------
# (d) boringtun (userspace WireGuard) on both gateways, configured with wg(8). Each instance runs
# in a private mount namespace with its own directory bind-mounted over /run: boringtun puts its
# UAPI socket at /var/run/wireguard/<dev>.sock and wg looks exactly there, so two instances (and
# any WireGuard of the host) stay apart; wg is run inside that mount namespace (nsenter).

BT_DEV=wg0 BT_PORT=51820 BT_MTU=1420    # wg-quick's MTU for a 1500-byte WAN
BT_THREADS=${IRONSEC_BENCH_BT_THREADS:-4}   # boringtun-cli's default

# wg(8) against gateway $1's (A|B) boringtun: bt_wg A show wg0 ...
bt_wg() {
    local pid
    if [ "$1" = A ]; then pid=$BT_PID_A; else pid=$BT_PID_B; fi
    shift
    timeout 10 nsenter --target "$pid" --mount wg "$@"
}

# Start boringtun-cli in gateway namespace $1 with dir $2; sets BG to its PID (ip netns exec,
# unshare and sh all exec, so the PID is boringtun's own).
bt_start() { # ns dir
    mkdir -p "$2/run"
    # shellcheck disable=SC2016  # expanded by the inner sh
    ip netns exec "$1" unshare --mount --propagation private -- \
        sh -c 'mount --bind "$1/run" /run && exec "$2" --foreground --disable-drop-privileges --verbosity error --threads "$4" "$3"' \
        sh "$2" "$BORINGTUN" "$BT_DEV" "$BT_THREADS" </dev/null >"$2/boringtun.out" 2>&1 &
    BG=$!
    for _ in $(seq 100); do
        [ -S "$2/run/wireguard/$BT_DEV.sock" ] && return 0
        alive "$BG" || break
        sleep 0.05
    done
    indent <"$2/boringtun.out" >&2
    FAIL="boringtun did not start in $1 (no UAPI socket $2/run/wireguard/$BT_DEV.sock)"
    return 1
}

# Configure one side: X (A|B) ns dir tunnel-addr peer-dir peer-wan allowed remote-lan
bt_conf() {
    local x=$1 ns=$2 dir=$3 addr=$4 pdir=$5 pwan=$6 allowed=$7 rlan=$8
    bt_wg "$x" set "$BT_DEV" listen-port "$BT_PORT" private-key "$dir/private.key" \
        peer "$(cat "$pdir/public.key")" endpoint "$(hostport "$pwan" "$BT_PORT")" allowed-ips "$allowed" ||
        { FAIL="wg set $BT_DEV failed in $ns"; return 1; }
    ip -n "$ns" addr add "$addr" dev "$BT_DEV"
    ip -n "$ns" link set dev "$BT_DEV" mtu "$BT_MTU" up
    ip -n "$ns" route add "$rlan" dev "$BT_DEV"
}

boringtun_up() {
    local da="$WORK/bt-gwA" db="$WORK/bt-gwB" d n
    TUNNEL_KIND=boringtun BT_PID_A="" BT_PID_B=""
    rm -rf "$da" "$db"
    mkdir -p "$da" "$db"
    for d in "$da" "$db"; do
        (umask 077; wg genkey >"$d/private.key")
        wg pubkey <"$d/private.key" >"$d/public.key"
    done
    bt_start "$GWB" "$db" || return 1
    BT_PID_B=$BG GW_PID_B=$BG
    bt_start "$GWA" "$da" || return 1
    BT_PID_A=$BG GW_PID_A=$BG
    bt_conf A "$GWA" "$da" 10.99.0.1/30 "$db" "$WAN_B" "$LANB_NET,10.99.0.2/32" "$LANB_NET" || return 1
    bt_conf B "$GWB" "$db" 10.99.0.2/30 "$da" "$WAN_A" "$LANA_NET,10.99.0.1/32" "$LANA_NET" || return 1
    tun_queue "$GWB" "$BT_DEV"
    tun_queue "$GWA" "$BT_DEV"
    log "  boringtun pids gwA $BT_PID_A, gwB $BT_PID_B ($BT_THREADS threads each); $BT_DEV mtu $MTU txqueuelen $QLEN"
    check_routes "$BT_DEV" "$BT_DEV" || return 1
    # The handshake happens on the first packet: ping until a reply (at most 5 s).
    n=0
    for _ in $(seq 10); do
        if timeout 3 ip netns exec "$LANA" ping -n -c 1 -W 0.5 "$LANB_IP" >/dev/null 2>&1; then n=1; break; fi
    done
    [ "$n" = 1 ] || { FAIL="no ping reply through boringtun after 10 tries"; return 1; }
    CASE_VERSION=$("$BORINGTUN" --version 2>/dev/null | head -n1)
}

boringtun_down() {
    stop_pid "${BT_PID_A:-}"; stop_pid "${BT_PID_B:-}"
    wait "${BT_PID_A:-}" 2>/dev/null || true
    wait "${BT_PID_B:-}" 2>/dev/null || true
    BT_PID_A="" BT_PID_B="" GW_PID_A="" GW_PID_B=""
}

# boringtun-cli: BORINGTUN env, else PATH, else the cache (installed there with cargo install if
# missing). Sets BORINGTUN.
find_boringtun() {
    local cache=${IRONSEC_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironsec-bench}
    if [ -n "${BORINGTUN:-}" ]; then
        [ -x "$BORINGTUN" ] || die "BORINGTUN=$BORINGTUN is not executable"
    elif command -v boringtun-cli >/dev/null; then
        BORINGTUN=$(command -v boringtun-cli)
    elif [ -x "$cache/bin/boringtun-cli" ]; then
        BORINGTUN="$cache/bin/boringtun-cli"
    else
        command -v cargo >/dev/null ||
            die "boringtun-cli not found and cargo is not in PATH to install it (cargo install boringtun-cli --locked --root $cache)"
        log "installing boringtun-cli $BT_VERSION into $cache (cargo install --locked; once, about a minute)"
        timeout 1200 cargo install boringtun-cli --version "$BT_VERSION" --locked --root "$cache" >&2 ||
            die "cargo install boringtun-cli --version $BT_VERSION --locked --root $cache failed"
        BORINGTUN="$cache/bin/boringtun-cli"
    fi
}

# ---------------------------------------------------------------------------------------------
# (e) null: the floor of any userspace tunnel (crates/dataplane/examples/null_forwarder.rs): a
# plain TUN device and a connected UDP socket per gateway, one packet per system call, nothing
# else. Clear text; only ever between this script's own namespaces.

NULL_DEV=nt0 NULL_PORT=4600

# The null_forwarder example next to the ironsec binaries: BIN/examples (IRONSEC_BIN_DIR, else
# the release directory, built here with cargo). Sets NULL_FWD.
find_null_forwarder() {
    local BIN
    bin_dir
    if [ -z "${IRONSEC_BIN_DIR:-}" ]; then
        command -v cargo >/dev/null ||
            die "cargo is not in PATH to build the null_forwarder example (or set IRONSEC_BIN_DIR)"
        (cd "$ROOT" && cargo build --release -p ironsec-dataplane --example null_forwarder --quiet) >&2 ||
            die "cargo build --release -p ironsec-dataplane --example null_forwarder failed"
    fi
    NULL_FWD="$BIN/examples/null_forwarder"
    [ -x "$NULL_FWD" ] || die "$NULL_FWD not found (cargo build -p ironsec-dataplane --example null_forwarder)"
}

# Start the forwarder in gateway namespace $1 (local WAN address $2, peer's $3); sets BG (not
# spawn: stop_bg, which ends the loads between figures, must leave the gateways running).
null_start() { # ns local peer
    ip netns exec "$1" "$NULL_FWD" "$NULL_DEV" "$(hostport "$2" "$NULL_PORT")" "$(hostport "$3" "$NULL_PORT")" 1400 "$TXQ" \
        </dev/null >"$WORK/null-$1.out" 2>&1 &
    BG=$!
    local _
    for _ in $(seq 50); do
        grep -q '^ready ' "$WORK/null-$1.out" 2>/dev/null && return 0
        kill -0 "$BG" 2>/dev/null || break
        sleep 0.1
    done
    indent <"$WORK/null-$1.out" >&2
    FAIL="null_forwarder did not start in $1"
    return 1
}

null_up() {
    TUNNEL_KIND=null NULL_PID_A="" NULL_PID_B=""
    null_start "$GWA" "$WAN_A" "$WAN_B" || return 1
    NULL_PID_A=$BG
    null_start "$GWB" "$WAN_B" "$WAN_A" || return 1
    NULL_PID_B=$BG
    # ip netns exec execs the forwarder: the PIDs are its own.
    GW_PID_A=$NULL_PID_A GW_PID_B=$NULL_PID_B
    ip -n "$GWA" route add "$LANB_NET" dev "$NULL_DEV"
    ip -n "$GWB" route add "$LANA_NET" dev "$NULL_DEV"
    tun_queue "$GWB" "$NULL_DEV"
    tun_queue "$GWA" "$NULL_DEV"
    log "  null_forwarder pids gwA $NULL_PID_A, gwB $NULL_PID_B; $NULL_DEV mtu $MTU txqueuelen $QLEN"
    check_routes "$NULL_DEV" "$NULL_DEV" || return 1
    CASE_VERSION="null_forwarder (ironsec-dataplane example; no crypto, one packet per syscall)"
}

null_down() {
    stop_pid "${NULL_PID_A:-}"; stop_pid "${NULL_PID_B:-}"
    wait "${NULL_PID_A:-}" 2>/dev/null || true
    wait "${NULL_PID_B:-}" 2>/dev/null || true
    NULL_PID_A="" NULL_PID_B="" GW_PID_A="" GW_PID_B=""
}
