#!/usr/bin/env bash
# Remote access at scale (issue 24, slice S9): one ironsecd gateway with N EAP-MSCHAPv2
# clients connected at once; how fast they come up, what each costs the gateway in memory,
# what the gateway spends idling with them, and how long its status takes (not part of the
# test suite; tests/p2s_scale_script.rs runs it at a small scale).
#
# Two namespaces joined by one veth pair:
#   PREFIX-gw 192.0.2.1 (ironsecd) ===== 192.0.2.2 PREFIX-cl (the load client)
# The gateway has one remote-access connection "rw": remote_auth = "eap-mschapv2" with a
# users file of N users user0..user<N-1> (one password for all, its line made once with
# `ironsecctl nthash`), its certificate from a fresh PKI (conf/pki/make-pki.sh, needs
# strongSwan's `pki`), local_ts 10.1.0.0/24, a pool just large enough for N (10.100.0.0/22
# for 1,000), DPD every --dpd s, and half_open_limit raised to N if that is more than the
# default. The clients are crates/ironsecd/examples/p2s_load.rs: ironsec's own IKE engine
# playing N clients from one address and the ports 500/4500 (as clients behind one NAT), each
# asking for a virtual IP and one CHILD_SA, started at --rate a second (default: all at once).
# Debian's strongSwan has no load-tester plugin, hence a client of our own; it is not an
# independent implementation (the interop tests are where strongSwan clients are checked).
#
# Reported:
#   setup        the load client's start -> every client holding its virtual IP and its
#                CHILD_SA (as the client sees it): seconds, clients/s, each client's own setup
#                time (median, 95th percentile, max), failures and why; what it cost: the CPU
#                time of ironsecd (and per client) and of the load client, the IKE
#                messages the gateway received, dropped (queue, half-open limit) and the
#                cookies it sent, the client's retransmissions, UDP receive-buffer drops
#   gateway      `ironsecctl status --json` after setup: connected clients (with their tunnel
#                up), the pool's size and addresses online, whether every client holds its own
#                address
#   memory       ironsecd's VmRSS before the clients and after --settle s with N connected:
#                per client (after - before) / N; VmHWM beside it
#   idle CPU     ironsecd's utime+stime (/proc/PID/stat) and schedstat run time over --seconds
#                with N clients connected and no traffic: % of one core; DPD runs meanwhile
#                (every --dpd s per client), so the IKE messages it received are reported too;
#                the load client's CPU beside it
#   status       how long one `ironsecctl status --json`, one `ironsecctl status` and one
#                `ironsecctl leases` take with N clients, and the JSON's size
#   teardown     SIGTERM to the load client: it deletes every IKE SA (INFORMATIONAL DELETE);
#                how many were deleted, the gateway's client count after, its IKE queue
#                drops since its start, its VmRSS after
#
# Usage (as root):
#   netns-scripts/p2s-scale.sh [--clients N] [--rate R] [--seconds S] [--dpd D]
#                              [--timeout T] [--settle S] [--json]
#
#   --clients N   remote-access clients (default 1000; 1..10000)
#   --rate R      clients started a second (default 0: all at once; 0..10000)
#   --seconds S   length of the idle CPU measurement (default 30)
#   --dpd D       the gateway's dpd_interval, seconds (default 30; 0: off)
#   --timeout T   bound on setup, seconds (default 300); on timeout the rest is still measured
#                 and reported, with "converged": false, and the exit status is 1
#   --settle S    seconds between setup and the memory and CPU measurements (default 3)
#   --json        print one JSON object on stdout instead of the text report
#
# Environment: IRONSECD, IRONSECCTL, P2S_LOAD (the daemon, its control tool and the load
# client; when none is set, the script builds them: `cargo build --release --locked -p
# ironsecd --bins --example p2s_load`, target dir CARGO_TARGET_DIR), IRONSEC_P2S_SCALE_PREFIX
# (namespace prefix; default ps<pid>), IRONSEC_LOG (ironsecd's log level, default warn).
# Needs python3 and strongSwan's `pki` (Debian: strongswan-pki). Progress goes to stderr, the
# report to stdout. Every process it starts is stopped by PID and both namespaces are removed
# on exit; the root namespace's interfaces are never touched. Exit status: 0 when every client
# came up and the gateway listed every one of them, 1 otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=p2s-scale.sh
PREFIX=${IRONSEC_P2S_SCALE_PREFIX:-ps$$}
MSG_FD=2
# shellcheck source=netns-scripts/lib.sh
. "$HERE/lib.sh"

CLIENTS=1000 RATE=0 SECS=30 DPD=30 TIMEOUT=300 SETTLE=3 JSON_OUT=0
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS=${2:?--clients needs a number}; shift 2 ;;
        --rate) RATE=${2:?--rate needs a number}; shift 2 ;;
        --seconds) SECS=${2:?--seconds needs a number}; shift 2 ;;
        --dpd) DPD=${2:?--dpd needs a number}; shift 2 ;;
        --timeout) TIMEOUT=${2:?--timeout needs a number}; shift 2 ;;
        --settle) SETTLE=${2:?--settle needs a number}; shift 2 ;;
        --json) JSON_OUT=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
is_count "$CLIENTS" 1 10000 || die "--clients must be 1..10000, not '$CLIENTS'"
is_count "$RATE" 0 10000 || die "--rate must be 0..10000, not '$RATE'"
is_count "$SECS" 1 3600 || die "--seconds must be 1..3600, not '$SECS'"
is_count "$DPD" 0 3600 || die "--dpd must be 0..3600, not '$DPD'"
is_count "$TIMEOUT" 1 86400 || die "--timeout must be 1..86400, not '$TIMEOUT'"
is_count "$SETTLE" 0 600 || die "--settle must be 0..600, not '$SETTLE'"
[[ $PREFIX =~ ^[A-Za-z0-9_-]{1,40}$ ]] || die "IRONSEC_P2S_SCALE_PREFIX '$PREFIX' is not 1-40 of [A-Za-z0-9_-]"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
command -v "$PY" >/dev/null || die "needs python3 to read 'ironsecctl status --json'"
command -v pki >/dev/null || die "needs strongSwan's pki for the gateway's certificate (Debian: apt-get install strongswan-pki)"

if [ -z "${IRONSECD:-}${IRONSECCTL:-}${P2S_LOAD:-}" ] && command -v cargo >/dev/null; then
    log "$PROG: cargo build --release --locked -p ironsecd --bins --example p2s_load"
    (cd "$ROOT" && cargo build --release --locked -p ironsecd --bins --example p2s_load --quiet) >&2 ||
        die "cargo build failed"
fi
bin_dir
D=${IRONSECD:-$BIN/ironsecd}
CTL=${IRONSECCTL:-$(dirname "$D")/ironsecctl}
LOAD=${P2S_LOAD:-$(dirname "$D")/examples/p2s_load}
for b in "$D" "$CTL" "$LOAD"; do
    [ -x "$b" ] || die "$b not found or not executable: cargo build --release --locked -p ironsecd --bins --example p2s_load, or set IRONSECD, IRONSECCTL and P2S_LOAD"
done
CLK_TCK=$(getconf CLK_TCK)
GW="$PREFIX-gw" CL="$PREFIX-cl"
GW_WAN=192.0.2.1 CL_WAN=192.0.2.2 GW_ID=gw.p2s.example
# The pool: the smallest prefix of 10.100.0.0 with room for N clients (network and broadcast
# are never handed out).
PLEN=30
while [ $(( (1 << (32 - PLEN)) - 2 )) -lt "$CLIENTS" ]; do PLEN=$((PLEN - 1)); done
POOL="10.100.0.0/$PLEN"
HALF_OPEN=$(( CLIENTS > 1000 ? CLIENTS : 1000 ))
PID_GW="" PID_LOAD="" WORK="" NS_MADE=()

on_exit() {
    stop_pid "$PID_LOAD"; stop_pid "$PID_GW"
    local ns
    for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
    if [ -n "$WORK" ]; then rm -rf -- "$WORK"; fi
}
install_cleanup_traps

make_topology() {
    local ns
    for ns in "$GW" "$CL"; do
        if ip netns list | awk -v n="$ns" '$1 == n { f = 1 } END { exit !f }'; then die "namespace $ns already exists (another run? set IRONSEC_P2S_SCALE_PREFIX)"; fi
        ip netns add "$ns"
        NS_MADE+=("$ns")
        ip -n "$ns" link set lo up
    done
    ip -n "$GW" link add wan type veth peer name wan netns "$CL"
    ip -n "$GW" addr add "$GW_WAN/24" dev wan
    ip -n "$CL" addr add "$CL_WAN/24" dev wan
    ip -n "$GW" link set wan up
    ip -n "$CL" link set wan up
}

write_config() {
    cat >"$WORK/gw.toml" <<EOF
[gateway]
tun = "p2s0"
control_socket = "$WORK/gw.sock"
ca_dir = "$WORK/pki/cacerts"
crl_dir = "$WORK/pki/crls"
metrics = "off"
half_open_limit = $HALF_OPEN

[[connection]]
name = "rw"
keying = "ike"
local_cert = "$WORK/pki/certs/$GW_ID.pem"
local_key = "$WORK/pki/private/$GW_ID.key"
local_id = "$GW_ID"
remote_id = "%any"
remote_auth = "eap-mschapv2"
eap_users_file = "$WORK/users.txt"
local_ts = ["10.1.0.0/24"]
pool = "$POOL"
pool_dns = ["10.1.0.53"]
lease_grace = 600
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
dpd_interval = $DPD
tunnels = [ { local = "$GW_WAN", remote = "%any" } ]
EOF
}

ctl() { timeout -k 5 120 "$CTL" --socket "$WORK/gw.sock" "$@"; }

# The gateway's status as "clients clients_up distinct_addresses pool_size pool_online
# ike_received queue_dropped half_open_dropped cookies_sent" (file $1: a status --json).
gw_summary() { # status.json
    "$PY" - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
clients = up = 0
addrs = set()
size = online = 0
for c in d.get("connections") or []:
    for cl in c.get("clients") or []:
        clients += 1
        addrs.add(cl.get("address"))
        if (cl.get("tunnel") or {}).get("state") == "up":
            up += 1
    for p in c.get("pools") or []:
        size += p.get("size") or 0
        online += p.get("online") or 0
i = d.get("ike") or {}
print(clients, up, len(addrs), size, online,
      *[int(i.get(k) or 0) for k in ("received", "queue_dropped", "half_open_dropped", "cookies_sent")])
EOF
}

# Field $2 of the load client's JSON line of phase $1 (null if absent).
load_field() { # phase key
    "$PY" - "$WORK/load.out" "$1" "$2" <<'EOF'
import json, sys
v = None
for line in open(sys.argv[1]):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("phase") == sys.argv[2]:
        v = d.get(sys.argv[3])
print(json.dumps(v))
EOF
}

# Seconds (3 decimals) one run of "$@" takes; its output to $WORK/timed.out.
timed() {
    local t0
    t0=$(now_ns)
    "$@" >"$WORK/timed.out" 2>&1 || die "$* failed: $(head -c 500 "$WORK/timed.out")"
    secs_between "$t0" "$(now_ns)"
}

# ---------------------------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironsec-p2s-scale.XXXXXX")
chmod 700 "$WORK"
log "$PROG: $CLIENTS clients, pool $POOL; making the PKI and the users file"
bash "$ROOT/conf/pki/make-pki.sh" "$WORK/pki" "$GW_ID" >/dev/null 2>&1 || die "conf/pki/make-pki.sh failed"
(
    umask 077
    head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/password"
    # One password for every user, so one NT hash: the users file is user<i>:<that hash>.
    line=$("$CTL" nthash user0 <"$WORK/password") || exit 1
    hash=${line#user0:}
    awk -v n="$CLIENTS" -v h="$hash" 'BEGIN { for (i = 0; i < n; i++) printf "user%d:%s\n", i, h }' >"$WORK/users.txt"
) || die "ironsecctl nthash failed"
write_config
"$D" check --config "$WORK/gw.toml" >"$WORK/check.out" 2>&1 || { cat "$WORK/check.out" >&2; die "ironsecd check refused the gateway's config"; }
make_topology

IRONSEC_LOG="${IRONSEC_LOG:-warn}" ip netns exec "$GW" "$D" --config "$WORK/gw.toml" </dev/null >>"$WORK/gw.log" 2>&1 &
PID_GW=$!
deadline=$(( $(now_ns) + 60 * 1000000000 ))
until ctl status >/dev/null 2>&1; do
    alive "$PID_GW" || { tail -n 20 "$WORK/gw.log" | indent >&2; die "ironsecd exited during startup"; }
    [ "$(now_ns)" -lt "$deadline" ] || die "ironsecd does not answer on $WORK/gw.sock after 60 s"
    sleep 0.05
done
sleep 1
R_RSS0=$(vm_kib "$PID_GW" VmRSS)
log "    ironsecd up (VmRSS $R_RSS0 KiB); starting $CLIENTS clients"

HOLD=$((TIMEOUT + SETTLE + SECS + 600))
s0=$(cpu_ticks "$PID_GW") sn0=$(run_ns "$PID_GW")
ip netns exec "$CL" "$LOAD" --gateway "$GW_WAN" --local "$CL_WAN" --ca "$WORK/pki/cacerts/root.pem" \
    --gateway-id "$GW_ID" --password-file "$WORK/password" --clients "$CLIENTS" --rate "$RATE" \
    --timeout "$TIMEOUT" --hold "$HOLD" --remote-ts 10.1.0.0/24 </dev/null >"$WORK/load.out" 2>"$WORK/load.err" &
PID_LOAD=$!
deadline=$(( $(now_ns) + (TIMEOUT + 60) * 1000000000 ))
last=""
until grep -q '"phase":"setup"' "$WORK/load.out" 2>/dev/null; do
    alive "$PID_LOAD" || { tail -n 20 "$WORK/load.err" | indent >&2; die "the load client exited during setup"; }
    alive "$PID_GW" || { tail -n 20 "$WORK/gw.log" | indent >&2; die "ironsecd exited during setup"; }
    [ "$(now_ns)" -lt "$deadline" ] || die "the load client reported no setup in $((TIMEOUT + 60)) s"
    line=$(tail -n 1 "$WORK/load.err" 2>/dev/null || true)
    if [ -n "$line" ] && [ "$line" != "$last" ]; then log "    $line"; last=$line; fi
    sleep 0.2
done
s1=$(cpu_ticks "$PID_GW") sn1=$(run_ns "$PID_GW") lt=$(cpu_ticks "$PID_LOAD")
# What setup cost ironsecd and the load client in CPU time (the gateway's from its threads' run
# times; both include the last poll interval of up to 0.2 s).
R_SETUP_CPU=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
R_SETUP_CPU_NS=null R_SETUP_CPU_PER=null
if [ "$sn0" != - ] && [ "$sn1" != - ]; then
    R_SETUP_CPU_NS=$(awk -v a="$sn0" -v b="$sn1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    R_SETUP_CPU_PER=$(awk -v a="$sn0" -v b="$sn1" -v n="$CLIENTS" 'BEGIN { printf "%.3f", (b - a) / 1e6 / n }')
fi
R_LOAD_SETUP_CPU=$(awk -v t="$lt" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
for k in up failed setup_secs setup_per_sec client_setup_median_secs client_setup_p95_secs client_setup_max_secs retransmits_sent reasons first_vip last_vip; do
    printf -v "L_$k" '%s' "$(load_field setup "$k")"
done
R_CONVERGED=false
[ "$L_up" = "$CLIENTS" ] && R_CONVERGED=true
log "    setup: $L_up/$CLIENTS up in $L_setup_secs s ($L_setup_per_sec/s; each client median $L_client_setup_median_secs s, p95 $L_client_setup_p95_secs s), $L_failed failed, $L_retransmits_sent retransmissions"
log "    CPU during setup: ironsecd $R_SETUP_CPU_NS s ($R_SETUP_CPU_PER ms per client), load client $R_LOAD_SETUP_CPU s"
[ "$L_failed" = 0 ] || log "    failures: $L_reasons"

ctl status --json >"$WORK/status.json" || die "ironsecd does not answer status"
read -r G_CLIENTS G_UP G_ADDRS G_POOL_SIZE G_POOL_ONLINE G_IKE_RX G_QDROP G_HALFOPEN G_COOKIES < <(gw_summary "$WORK/status.json")
R_UDP_GW=$(udp_rcvbuf_errors "$GW") R_UDP_CL=$(udp_rcvbuf_errors "$CL")
log "    gateway: $G_CLIENTS clients ($G_UP with their tunnel up, $G_ADDRS distinct addresses), pool $G_POOL_ONLINE/$G_POOL_SIZE online; IKE received $G_IKE_RX (queue dropped $G_QDROP, half-open dropped $G_HALFOPEN, cookies sent $G_COOKIES); UDP receive-buffer drops gw $R_UDP_GW, clients $R_UDP_CL"

sleep "$SETTLE"
R_RSS1=$(vm_kib "$PID_GW" VmRSS) R_HWM=$(vm_kib "$PID_GW" VmHWM)
R_PER=$(awk -v a="$R_RSS0" -v b="$R_RSS1" -v n="$CLIENTS" 'BEGIN { printf "%.1f", (b - a) / n }')
log "    ironsecd VmRSS $R_RSS1 KiB (peak $R_HWM KiB): $R_PER KiB per client; idle CPU over $SECS s (DPD every $DPD s)"
h0=$(cpu_ticks "$PID_GW") l0=$(cpu_ticks "$PID_LOAD") hn0=$(run_ns "$PID_GW") w0=$(now_ns)
sleep "$SECS"
h1=$(cpu_ticks "$PID_GW") l1=$(cpu_ticks "$PID_LOAD") hn1=$(run_ns "$PID_GW") w1=$(now_ns)
R_WINDOW=$(secs_between "$w0" "$w1")
R_CPU=$(awk -v t=$((h1 - h0)) -v hz="$CLK_TCK" -v w="$R_WINDOW" 'BEGIN { printf "%.2f", t / hz / w * 100 }')
R_LOAD_CPU=$(awk -v t=$((l1 - l0)) -v hz="$CLK_TCK" -v w="$R_WINDOW" 'BEGIN { printf "%.2f", t / hz / w * 100 }')
R_CPU_NS=$(ns_pct "$hn0" "$hn1" "$w0" "$w1")
R_STATUS=$(timed ctl status --json)
cp "$WORK/timed.out" "$WORK/status2.json"
R_STATUS_BYTES=$(wc -c <"$WORK/status2.json")
R_STATUS_TEXT=$(timed ctl status)
R_LEASES=$(timed ctl leases)
read -r G_CLIENTS2 G_UP2 _ _ G_POOL_ONLINE2 G_IKE_RX2 _ _ _ < <(gw_summary "$WORK/status2.json")
R_IKE_DURING=$((G_IKE_RX2 - G_IKE_RX))
log "    ironsecd $R_CPU % of one core ($R_CPU_NS by schedstat), load client $R_LOAD_CPU %, over $R_WINDOW s; IKE messages meanwhile $R_IKE_DURING; clients after: $G_CLIENTS2 ($G_UP2 up)"
log "    status --json $R_STATUS s ($R_STATUS_BYTES bytes), status $R_STATUS_TEXT s, leases $R_LEASES s"

# Teardown: the load client deletes every IKE SA.
kill -TERM "$PID_LOAD" 2>/dev/null || true
deadline=$(( $(now_ns) + 60 * 1000000000 ))
while alive "$PID_LOAD" && [ "$(now_ns)" -lt "$deadline" ]; do sleep 0.1; done
wait "$PID_LOAD" 2>/dev/null || true
PID_LOAD=""
for k in deleted delete_secs lost received_during_hold; do
    printf -v "L_$k" '%s' "$(load_field done "$k")"
done
G_AFTER=null G_QDROP_END=null
for _ in $(seq 50); do
    ctl status --json >"$WORK/status3.json" 2>/dev/null || break
    read -r G_AFTER _ _ _ _ _ G_QDROP_END _ < <(gw_summary "$WORK/status3.json")
    [ "$G_AFTER" = 0 ] && break
    sleep 0.1
done
R_RSS2=$(vm_kib "$PID_GW" VmRSS)
log "    deleted $L_deleted IKE SAs in $L_delete_secs s; the gateway lists $G_AFTER clients after (IKE queue drops since its start: $G_QDROP_END); VmRSS $R_RSS2 KiB"
stop_pid "$PID_GW"
PID_GW=""

OK=false
if [ "$R_CONVERGED" = true ] && [ "$G_CLIENTS" = "$CLIENTS" ] && [ "$G_UP" = "$CLIENTS" ] && [ "$G_ADDRS" = "$CLIENTS" ]; then OK=true; fi
CONDITIONS="one remote-access connection (EAP-MSCHAPv2, gateway certificate ECDSA P-256, aes128gcm16-prfsha256-x25519, ESP aes128gcm16), pool $POOL; clients: ironsec's own IKE engine (examples/p2s_load.rs), N clients from one address and ports 500/4500, $( [ "$RATE" = 0 ] && echo "all started at once" || echo "$RATE started a second"); DPD every $DPD s; no traffic"
if [ "$JSON_OUT" = 1 ]; then
    printf '{"script":"p2s-scale","ironsecd":"%s","load_client":"%s","conditions":"%s","cpus":%s,"clk_tck":%s,"clients":%s,"rate":%s,"dpd_secs":%s,"pool":"%s","converged":%s,"ok":%s,"up":%s,"failed":%s,"failure_reasons":%s,"setup_secs":%s,"setup_per_sec":%s,"client_setup_median_secs":%s,"client_setup_p95_secs":%s,"client_setup_max_secs":%s,"client_retransmits":%s,"gw_setup_cpu_secs":%s,"gw_setup_cpu_secs_schedstat":%s,"gw_setup_cpu_ms_per_client":%s,"load_client_setup_cpu_secs":%s,"first_vip":%s,"last_vip":%s,"gw_clients":%s,"gw_clients_up":%s,"gw_distinct_addresses":%s,"pool_size":%s,"pool_online":%s,"gw_ike_received":%s,"gw_ike_queue_dropped":%s,"gw_ike_half_open_dropped":%s,"gw_ike_cookies_sent":%s,"gw_udp_rcvbuf_errors":%s,"client_udp_rcvbuf_errors":%s,"rss_before_kib":%s,"rss_after_kib":%s,"hwm_kib":%s,"rss_per_client_kib":%s,"window_secs":%s,"gw_cpu_pct":%s,"gw_cpu_pct_schedstat":%s,"load_client_cpu_pct":%s,"gw_ike_received_during":%s,"gw_clients_after_window":%s,"status_json_secs":%s,"status_json_bytes":%s,"status_text_secs":%s,"leases_secs":%s,"deleted":%s,"delete_secs":%s,"lost":%s,"gw_clients_after_delete":%s,"gw_ike_queue_dropped_end":%s,"rss_after_delete_kib":%s}\n' \
        "$D" "$LOAD" "$CONDITIONS" "$(nproc)" "$CLK_TCK" "$CLIENTS" "$RATE" "$DPD" "$POOL" "$R_CONVERGED" "$OK" "$L_up" "$L_failed" "$L_reasons" \
        "$L_setup_secs" "$L_setup_per_sec" "$L_client_setup_median_secs" "$L_client_setup_p95_secs" "$L_client_setup_max_secs" "$L_retransmits_sent" \
        "$R_SETUP_CPU" "$R_SETUP_CPU_NS" "$R_SETUP_CPU_PER" "$R_LOAD_SETUP_CPU" "$L_first_vip" "$L_last_vip" "$G_CLIENTS" "$G_UP" "$G_ADDRS" "$G_POOL_SIZE" "$G_POOL_ONLINE" "$G_IKE_RX" "$G_QDROP" "$G_HALFOPEN" "$G_COOKIES" \
        "$R_UDP_GW" "$R_UDP_CL" "$R_RSS0" "$R_RSS1" "$R_HWM" "$R_PER" "$R_WINDOW" "$R_CPU" "$R_CPU_NS" "$R_LOAD_CPU" "$R_IKE_DURING" "$G_CLIENTS2" \
        "$R_STATUS" "$R_STATUS_BYTES" "$R_STATUS_TEXT" "$R_LEASES" "$L_deleted" "$L_delete_secs" "$L_lost" "$G_AFTER" "$G_QDROP_END" "$R_RSS2"
else
    say "ironsecd with $CLIENTS remote-access clients ($D, $(nproc) CPUs)"
    say "conditions: $CONDITIONS"
    say "setup: $L_up/$CLIENTS up in $L_setup_secs s ($L_setup_per_sec clients/s; each client: median $L_client_setup_median_secs s, p95 $L_client_setup_p95_secs s, max $L_client_setup_max_secs s); failed $L_failed; client retransmissions $L_retransmits_sent"
    say "CPU during setup: ironsecd $R_SETUP_CPU_NS s ($R_SETUP_CPU_PER ms per client), load client $R_LOAD_SETUP_CPU s"
    say "gateway: $G_CLIENTS clients listed ($G_UP up, $G_ADDRS distinct addresses), pool $G_POOL_ONLINE/$G_POOL_SIZE online; IKE received $G_IKE_RX, queue dropped $G_QDROP, half-open dropped $G_HALFOPEN, cookies sent $G_COOKIES"
    say "memory: VmRSS $R_RSS0 KiB before, $R_RSS1 KiB with $CLIENTS clients (peak $R_HWM KiB): $R_PER KiB per client; $R_RSS2 KiB after they left"
    say "idle CPU over $R_WINDOW s: ironsecd $R_CPU % of one core ($R_CPU_NS by schedstat), load client $R_LOAD_CPU %; gateway IKE messages meanwhile $R_IKE_DURING (DPD every $DPD s)"
    say "status --json $R_STATUS s ($R_STATUS_BYTES bytes), status $R_STATUS_TEXT s, leases $R_LEASES s"
    say "teardown: $L_deleted deleted in $L_delete_secs s, $L_lost lost before; the gateway lists $G_AFTER clients after"
fi
[ "$OK" = true ] || exit 1
