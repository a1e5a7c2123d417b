#!/usr/bin/env bash
# Site-to-site tunnels at scale (issue 27): one hub with N sites, what bringing them up costs,
# what the idle hub costs, what its status costs, and whether a packet's path slows down with
# N; with an ironsecd hub, or strongSwan's charon as the hub for comparison (not part of the
# test suite; tests/scale_script.rs runs it at a tiny scale).
#
# Namespaces (PREFIX-...), every veth created inside one of them:
#   lh 10.10.0.2 --- 10.10.0.1 hub 192.0.2.1 ==== 192.0.2.2 spk --- S1.1 s1 S1.2
#                                                 + 172.16.0.0/16     --- SN.1 sN SN.2
# The spoke namespace plays every site with one ironsecd (or several, when one would need more
# descriptors than the hard limit allows: see NOFILE below): site i has its own WAN address
# 172.16.(i/256).(i%256) (a /32 on the spoke's WAN veth; the hub routes 172.16.0.0/16 to the
# spoke, so either side has one neighbour), so the hub sees N distinct peers, one connection
# (one tunnel) per site. Site i's prefixes: the hub side's the i-th /24 of 10.64.0.0/10 (routed
# on to lh), the spoke side's the i-th /24 of 10.128.0.0/10. Only the first and the last site
# have a LAN host namespace (s1, sN: the spoke side's .2 of the site /24); lh carries the hub
# side's .1 of both, so an iperf3 TCP stream from lh (bound to hub site i) to si goes through
# tunnel i only. IKEv2 with one PSK, aes128gcm16-prfsha256-x25519 / aes128gcm16, DPD off,
# rekeying a day away; the spoke initiates every site at once (start_action = "start"), the
# hub only answers.
#
# Hubs (--hub): ironsec (ironsecd) or strongswan (strongSwan 5.9's charon with kernel-libipsec
# via netns-scripts/strongswan.sh: its own /run, config and VICI socket; N swanctl
# connections), or both, one after the other in the same namespaces; the spokes are the same
# ironsecd in both cases. For each hub, every N of --sites is run in ascending order (with
# N = 1 first if it is not in the list: the baseline of the per-tunnel memory and the TCP
# ratios), each with fresh daemons.
#
# Reported per hub and N:
#   setup          the spoke's ironsecd launched -> all N sites up on the hub; rate N / setup.
#                  "Up" is counted from the hub's log, never from status polls (a full status
#                  of thousands of tunnels costs the hub seconds and would be the measurement):
#                  a `tail -F` of the log feeds an awk that prints each site's name the first
#                  time its CHILD_SA comes up (ironsecd: the "CHILD_SA up" info line;
#                  charon: "CHILD_SA NAME{n} established") with its time (ironsecd: the log
#                  line's own, to the microsecond; charon logs whole seconds: when the line
#                  was read), and the script counts those lines every 0.1 s. Once all are
#                  counted, one status confirms them (up_after).
#                  Also the time to the first site up, and the rate from there, (N - 1) /
#                  (setup - first): setup includes the spoke's own start (binding a socket per
#                  site address), which this rate leaves out
#   hub start      the hub launched -> it answers (ironsecd: status; charon: VICI and
#                  `swanctl --load-all` of N connections done)
#   memory         the hub's VmRSS and VmHWM after bring-up, and per added tunnel
#                  (RSS(N) - RSS(1)) / (N - 1) from the same hub's N = 1 case
#   idle CPU       utime+stime (and the threads' schedstat run times) of the hub and of the
#                  spoke's ironsecd over --idle s, % of one core, with no traffic and no status
#                  request during the window; ironsecd: the IKE messages the hub received
#                  meanwhile (0: the window was idle)
#   status         after the window, one `ironsecctl status` and one `ironsecctl status
#                  --json` of the hub, timed (charon: `swanctl --list-sas` and `--list-sas
#                  --raw`)
#   drops          the hub's IKE queue drops and half-open drops and cookies sent (ironsecd's
#                  status; charon has no such counters: null), the spoke's retransmissions,
#                  and the UDP receive-buffer drops (RcvbufErrors) in the hub's and the spoke's
#                  namespaces during the case
#   TCP            one iperf3 TCP stream of --tcp-seconds s through the first and one through
#                  the last site (receiver's Mbit/s), and their ratios to the stream of the
#                  same hub's N = 1 case; beside them how busy the machine's CPUs were
#
# Usage (as root):
#   netns-scripts/scale.sh [--sites "1 10 100 1000"] [--hub ironsec|strongswan|both]
#                          [--idle S] [--tcp-seconds T] [--no-tcp] [--timeout T] [--settle S]
#                          [--json FILE]
#
#   --sites LIST     numbers of sites, 1..16000 each (default "1 10 100 1000")
#   --hub H          ironsec (default), strongswan or both
#   --idle S         length of the idle CPU window (default 60)
#   --tcp-seconds T  length of each iperf3 stream (default 5; each is killed after T+20 s)
#   --no-tcp         no LAN hosts, no TCP streams
#   --timeout T      bound on each bring-up and on charon's config load, seconds (default 600);
#                    on timeout the rest is still measured, with "converged": false, and the
#                    exit status is 1
#   --settle S       seconds between bring-up and the measurements (default 3)
#   --json FILE      also write the report as one JSON object to FILE ("-": on stdout, which
#                    then carries nothing else; the text report goes to stderr)
#
# Environment: IRONSECD (the daemon; default target/release/ironsecd, or
# $CARGO_TARGET_DIR/release/ironsecd), IRONSECCTL (default: ironsecctl next to IRONSECD),
# IRONSEC_SCALE_PREFIX (namespace prefix; default sc<pid>), IRONSEC_SCALE_LOGS (a directory to keep
# each case's hub and spoke logs in, HUB-N-hub.log and HUB-N-spoke<p>.log),
# IRONSEC_SCALE_SPOKE_SITES (at most that many sites per spoke process), IRONSEC_LOG (the
# spokes' log level, default warn; the hub's ironsecd always logs at info: its "CHILD_SA up" lines are what is
# counted). This script builds nothing: `cargo build --release -p ironsecd` first. Needs
# python3, iperf3 (unless --no-tcp), and for --hub strongswan the strongSwan packages of
# tests/install-deps.sh. Progress goes to stderr. Every process it starts is stopped by PID,
# its namespaces are removed on exit; the root namespace's interfaces are never touched. The
# spoke's descriptor limit is raised for it alone where it can be (it needs 2 * CPUs + 3
# descriptors per site address).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=scale.sh
PREFIX=${IRONSEC_SCALE_PREFIX:-sc$$}
MSG_FD=2
# shellcheck source=netns-scripts/lib.sh
. "$HERE/lib.sh"

SITES="1 10 100 1000" HUBS=ironsec IDLE=60 TCP_SECS=5 TCP=1 TIMEOUT=600 SETTLE=3 JSON_FILE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sites) SITES=${2:?--sites needs a list of numbers}; shift 2 ;;
        --hub) HUBS=${2:?--hub needs ironsec, strongswan or both}; shift 2 ;;
        --idle) IDLE=${2:?--idle needs a number}; shift 2 ;;
        --tcp-seconds) TCP_SECS=${2:?--tcp-seconds needs a number}; shift 2 ;;
        --no-tcp) TCP=0; shift ;;
        --timeout) TIMEOUT=${2:?--timeout needs a number}; shift 2 ;;
        --settle) SETTLE=${2:?--settle needs a number}; shift 2 ;;
        --json) JSON_FILE=${2:?--json needs a file name or -}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
for n in $SITES; do is_count "$n" 1 16000 || die "--sites must be numbers 1..16000, not '$n'"; done
[ -n "${SITES// /}" ] || die "--sites must name at least one number of sites"
case "$HUBS" in
    ironsec|strongswan) ;;
    both) HUBS="ironsec strongswan" ;;
    *) die "--hub must be ironsec, strongswan or both, not '$HUBS'" ;;
esac
is_count "$IDLE" 1 3600 || die "--idle must be 1..3600, not '$IDLE'"
is_count "$TCP_SECS" 1 600 || die "--tcp-seconds must be 1..600, not '$TCP_SECS'"
is_count "$TIMEOUT" 1 86400 || die "--timeout must be 1..86400, not '$TIMEOUT'"
is_count "$SETTLE" 0 600 || die "--settle must be 0..600, not '$SETTLE'"
[[ $PREFIX =~ ^[A-Za-z0-9_-]{1,30}$ ]] || die "IRONSEC_SCALE_PREFIX '$PREFIX' is not 1-30 of [A-Za-z0-9_-]"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
command -v "$PY" >/dev/null || die "needs python3 to read 'ironsecctl status --json' and iperf3's report"
[ "$TCP" = 0 ] || command -v iperf3 >/dev/null || die "needs iperf3 (Debian: apt-get install iperf3), or --no-tcp"
if [[ " $HUBS " == *" strongswan "* ]]; then
    [ -x "${CHARON:-/usr/lib/ipsec/charon}" ] && command -v swanctl >/dev/null ||
        die "--hub strongswan needs strongSwan's charon and swanctl (tests/install-deps.sh installs them)"
fi

if [ -n "${IRONSECD:-}" ]; then
    D=$IRONSECD
else
    bin_dir
    D="$BIN/ironsecd"
fi
CTL=${IRONSECCTL:-$(dirname "$D")/ironsecctl}
# A hub busy with thousands of tunnels answers slowly, but must answer (ctl in lib.sh).
CTL_TIMEOUT=120
[ -x "$D" ] || die "$D not found or not executable: cargo build --release -p ironsecd, or set IRONSECD"
[ -x "$CTL" ] || die "$CTL not found or not executable (set IRONSECCTL)"
CLK_TCK=$(getconf CLK_TCK)
# The sizes, ascending, with the N = 1 baseline first.
# shellcheck disable=SC2086
mapfile -t NS_LIST < <(printf '%s\n' 1 $SITES | sort -n | uniq)
MAX=${NS_LIST[-1]}
LH="$PREFIX-lh" HUB="$PREFIX-hub" SPK="$PREFIX-spk"
HUB_WAN=192.0.2.1 SPK_WAN=192.0.2.2
REKEY=86400
# The spoke's descriptors per site address: two for the IKE socket (its reader's and the
# sender's clone: crates/ironsecd/src/daemon.rs, the sockets of plane.ike_addrs()) and, per
# worker (one per CPU), an ESP socket and its clone for the control plane, plus one more clone
# (crates/dataplane/src/lib.rs: `sockets`, `all_sockets`, `control`): 2 * CPUs + 3; and some.
# Where the hard limit is lower than that and cannot be raised (no CAP_SYS_RESOURCE, e.g. in a
# container), the sites are split over several spoke ironsecd processes in the same namespace,
# each under the limit: SPK_CAP sites each ("spoke_processes" in the report).
PER_ADDR=$(( 2 * $(nproc) + 3 ))
NOFILE=$(( MAX * PER_ADDR + 2048 ))
HARD_NOFILE=$(ulimit -Hn)
if [ "$HARD_NOFILE" = unlimited ] || [ "$HARD_NOFILE" -ge "$NOFILE" ] ||
    (ulimit -n "$NOFILE") 2>/dev/null; then
    SPK_CAP=$MAX
else
    # Room for everything else a daemon opens: 2048 descriptors, or a quarter of a low limit.
    SPK_CAP=$(( (HARD_NOFILE - (HARD_NOFILE / 4 < 2048 ? HARD_NOFILE / 4 : 2048)) / PER_ADDR ))
    NOFILE=$HARD_NOFILE
fi
# IRONSEC_SCALE_SPOKE_SITES: at most that many sites per spoke process (to try the split).
SPK_CAP=${IRONSEC_SCALE_SPOKE_SITES:-$SPK_CAP}
is_count "$SPK_CAP" 1 16000 || die "cannot run a spoke: descriptor hard limit $HARD_NOFILE"
PID_HUB="" PIDS_SPK=() PID_TAIL="" PID_FILTER="" SW_DIR="" WORK="" NS_MADE=() IPERF_PIDS=()

on_exit() {
    local p ns
    stop_pid "$PID_TAIL"; stop_pid "$PID_FILTER"
    for p in "${IPERF_PIDS[@]}"; do stop_pid "$p"; done
    for p in "${PIDS_SPK[@]}"; do stop_pid "$p"; done
    stop_pid "$PID_HUB"
    if [ -n "$SW_DIR" ] && [ -f "$SW_DIR/charon.pid" ]; then "$HERE/strongswan.sh" stop "$SW_DIR" >&2; fi
    for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
    if [ -n "$WORK" ]; then rm -rf -- "$WORK"; fi
}
install_cleanup_traps

# Site i's (1-based) addresses: the spoke's WAN address, the hub side's and the spoke side's
# /24 (without the last octet). Sets SPKA, HSITE, SSITE.
site_addrs() { # i
    local k=$(($1 - 1))
    SPKA="172.16.$(($1 / 256)).$(($1 % 256))"
    HSITE="10.$((64 + k / 256)).$((k % 256))" SSITE="10.$((128 + k / 256)).$((k % 256))"
}

# ---------------------------------------------------------------------------------------------
# Topology

new_ns() { # name
    if ip netns list | awk -v n="$1" '$1 == n { f = 1 } END { exit !f }'; then die "namespace $1 already exists (another run? set IRONSEC_SCALE_PREFIX)"; fi
    ip netns add "$1"
    NS_MADE+=("$1")
    ip -n "$1" link set lo up
}

make_topology() {
    local ns i
    for ns in "$LH" "$HUB" "$SPK"; do new_ns "$ns"; done
    ip -n "$HUB" link add lan type veth peer name lan netns "$LH"
    ip -n "$HUB" link add wan type veth peer name wan netns "$SPK"
    ip -n "$LH" addr add 10.10.0.2/24 dev lan
    ip -n "$HUB" addr add 10.10.0.1/24 dev lan
    ip -n "$HUB" addr add "$HUB_WAN/24" dev wan
    ip -n "$SPK" addr add "$SPK_WAN/24" dev wan
    for ns in "$LH" "$HUB" "$SPK"; do
        ip -n "$ns" link set lan up 2>/dev/null || true
        ip -n "$ns" link set wan up 2>/dev/null || true
    done
    ip netns exec "$HUB" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$SPK" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$LH" route add default via 10.10.0.1
    # The hub's sites behind lh; the spokes' WAN addresses behind the spoke.
    ip -n "$HUB" route add 10.64.0.0/10 via 10.10.0.2
    ip -n "$HUB" route add 172.16.0.0/16 via "$SPK_WAN"
    # Every site's WAN address on the spoke's veth, in one batch (thousands of `ip` runs would
    # take a minute).
    for ((i = 1; i <= MAX; i++)); do
        site_addrs "$i"
        printf 'addr add %s/32 dev wan\n' "$SPKA"
    done | ip -n "$SPK" -batch -
}

# Hub-side addresses for charon (strongSwan hub only): kernel-libipsec installs each
# CHILD_SA's route with a source address inside the local selector and refuses the CHILD_SA
# ("error installing route with policy") when the host has none, so each hub-side /24 of sites
# 1..$2 gets its .254 (a /32 on the hub's LAN veth). $1: add|del.
hub_site_addrs() { # add|del n
    local i
    for ((i = 1; i <= $2; i++)); do
        site_addrs "$i"
        printf 'addr %s %s.254/32 dev lan\n' "$1" "$HSITE"
    done | ip -n "$HUB" -batch - || [ "$1" = del ]
}

# LAN host namespace of site $1 (PREFIX-s$1): a veth l$1 from the spoke, the site /24's .1 on
# the spoke and .2 on the host; lh gets the hub side's .1. Only for the first and last site.
add_site_host() { # i
    local ns="$PREFIX-s$1"
    site_addrs "$1"
    new_ns "$ns"
    ip -n "$SPK" link add "l$1" type veth peer name lan netns "$ns"
    ip -n "$SPK" addr add "$SSITE.1/24" dev "l$1"
    ip -n "$ns" addr add "$SSITE.2/24" dev lan
    ip -n "$SPK" link set "l$1" up
    ip -n "$ns" link set lan up
    ip -n "$ns" route add default via "$SSITE.1"
    ip -n "$LH" addr replace "$HSITE.1/32" dev lo
}

del_site_host() { # i
    local ns="$PREFIX-s$1" keep=() x
    site_addrs "$1"
    ip netns del "$ns" 2>/dev/null || true
    ip -n "$LH" addr del "$HSITE.1/32" dev lo 2>/dev/null || true
    for x in "${NS_MADE[@]}"; do [ "$x" = "$ns" ] || keep+=("$x"); done
    NS_MADE=("${keep[@]}")
}

# ---------------------------------------------------------------------------------------------
# Configs (written by awk: a bash loop over 10,000 heredocs takes half a minute)

# ironsecd config of side $1 (hub, or spk<p>: spoke process p) with sites $3..$2 (default 1)
# to WORK/$1.toml.
write_ironsec_config() { # side last [first]
    awk -v side="$1" -v n="$2" -v lo="${3:-1}" -v sock="$WORK/$1.sock" -v psk="$WORK/scale.psk" -v rekey="$REKEY" \
        -v hubwan="$HUB_WAN" 'BEGIN {
        printf "[gateway]\ntun = \"sc%s\"\ncontrol_socket = \"%s\"\n", side, sock
        # Spoke processes share a namespace: only the hub listens for metrics (127.0.0.1:14500).
        printf "%s\n", (side == "hub" ? "" : "metrics = \"off\"\n")
        for (i = lo; i <= n; i++) {
            k = i - 1
            spka = sprintf("172.16.%d.%d", int(i / 256), i % 256)
            hs = sprintf("10.%d.%d.0/24", 64 + int(k / 256), k % 256)
            ss = sprintf("10.%d.%d.0/24", 128 + int(k / 256), k % 256)
            if (side == "hub") {
                lid = "hub.scale.example"; rid = "s" i ".scale.example"; lts = hs; rts = ss
                loc = hubwan; rem = spka; act = "start_action = \"none\""
            } else {
                lid = "s" i ".scale.example"; rid = "hub.scale.example"; lts = ss; rts = hs
                loc = spka; rem = hubwan; act = "start_action = \"start\"\nclose_action = \"restart\""
            }
            printf "[[connection]]\nname = \"s%d\"\nkeying = \"ike\"\nlocal_id = \"%s\"\nremote_id = \"%s\"\n", i, lid, rid
            printf "psk_file = \"%s\"\nlocal_ts = [\"%s\"]\nremote_ts = [\"%s\"]\n", psk, lts, rts
            printf "ike_proposals = [\"aes128gcm16-prfsha256-x25519\"]\nesp_proposals = [\"aes128gcm16\"]\n"
            printf "%s\ndpd_interval = 0\nrekey_time = %d\nike_rekey_time = %d\n", act, rekey, rekey
            printf "tunnels = [ { local = \"%s\", remote = \"%s\" } ]\n\n", loc, rem
        }
    }' >"$WORK/$1.toml"
}

# swanctl.conf of the strongSwan hub with $1 sites to SW_DIR/swanctl.conf (the same sites,
# identities, selectors and proposals as the ironsecd hub's; one PSK for every identity).
write_swanctl_conf() { # n
    (
        umask 077
        awk -v n="$1" -v hubwan="$HUB_WAN" -v secret="$(cat "$WORK/scale.psk")" 'BEGIN {
            print "# Written by netns-scripts/scale.sh (the strongSwan hub)."
            print "connections {"
            for (i = 1; i <= n; i++) {
                k = i - 1
                printf "    s%d {\n        version = 2\n        local_addrs = %s\n", i, hubwan
                printf "        remote_addrs = 172.16.%d.%d\n", int(i / 256), i % 256
                print "        proposals = aes128gcm16-prfsha256-x25519"
                print "        encap = yes"
                print "        rekey_time = 24h"
                print "        dpd_delay = 0"
                print "        local {\n            auth = psk\n            id = hub.scale.example\n        }"
                printf "        remote {\n            auth = psk\n            id = s%d.scale.example\n        }\n", i
                printf "        children {\n            s%d {\n", i
                printf "                local_ts = 10.%d.%d.0/24\n", 64 + int(k / 256), k % 256
                printf "                remote_ts = 10.%d.%d.0/24\n", 128 + int(k / 256), k % 256
                print "                esp_proposals = aes128gcm16"
                print "                rekey_time = 24h"
                print "                start_action = none\n                close_action = none"
                print "            }\n        }\n    }"
            }
            print "}"
            printf "secrets {\n    ike-scale {\n        secret = %s\n    }\n}\n", secret
        }' >"$SW_DIR/swanctl.conf"
    )
}

# ---------------------------------------------------------------------------------------------
# Daemons and the hub's views

# ironsecd for side $1 (hub, or spk<p>) in its namespace; sets PID_HUB or adds to PIDS_SPK.
# The subshell raises the descriptor limit where needed and execs `ip netns exec`, which execs
# the daemon, so $! is the daemon's own PID.
start_ironsecd() { # side
    local ns=$HUB level=info
    [ "$1" != hub ] && ns=$SPK level=${IRONSEC_LOG:-warn}
    (
        if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NOFILE" ]; then ulimit -n "$NOFILE"; fi
        IRONSEC_LOG="$level" exec ip netns exec "$ns" "$D" --config "$WORK/$1.toml" \
            </dev/null >"$WORK/$1.log" 2>&1
    ) &
    if [ "$1" = hub ]; then PID_HUB=$!; else PIDS_SPK+=("$!"); fi
}

# Run time (ns) of every spoke process, summed; "-" without schedstat.
spoke_run_ns() {
    local p t sum=0
    for p in "${PIDS_SPK[@]}"; do
        t=$(run_ns "$p")
        [ "$t" = - ] && { echo -; return; }
        sum=$((sum + t))
    done
    echo "$sum"
}

# swanctl against the hub's charon, bounded to 120 s.
sw() { timeout -k 5 120 "$HERE/strongswan.sh" swanctl "$SW_DIR" "$@"; }

# Counting sites up from a hub log ($1) with a `tail -F` into a filter that prints each site's
# name the first time its CHILD_SA is logged up ($2: ironsec|strongswan) to WORK/up.names:
# `wc -l` of that file is the count, read without asking the hub anything.
start_up_watch() { # log kind
    rm -f "$WORK/up.fifo" "$WORK/up.names"
    mkfifo "$WORK/up.fifo"
    : >"$WORK/up.names"
    # python3, not awk: mawk waits for a full input buffer before it reads a line from a pipe.
    "$PY" -c '
import datetime, re, sys, time
pat = re.compile(r"CHILD_SA up .*\bconnection=(\S+)" if sys.argv[1] == "ironsec"
                 else r"CHILD_SA ([^ {]+)\{[0-9]+\} established")
seen = set()
while True:
    line = sys.stdin.readline()
    if not line:
        break
    m = pat.search(line)
    if m and m.group(1) not in seen:
        seen.add(m.group(1))
        # When: the log line'"'"'s own time where it has one to the microsecond (ironsecd:
        # 2026-12-08T01:09:28.123456Z), else when it was read (charon logs whole seconds).
        ns = time.time_ns()
        t = line.split(" ", 1)[0]
        if t.endswith("Z") and "T" in t:
            try:
                d = datetime.datetime.strptime(t[:-1], "%Y-%m-%dT%H:%M:%S.%f")
                ns = int(d.replace(tzinfo=datetime.timezone.utc).timestamp()) * 10**9 + d.microsecond * 1000
            except ValueError:
                pass
        print(m.group(1), ns, flush=True)' "$2" <"$WORK/up.fifo" >"$WORK/up.names" &
    PID_FILTER=$!
    tail -n +1 -F "$1" >"$WORK/up.fifo" 2>/dev/null &
    PID_TAIL=$!
}
stop_up_watch() {
    stop_pid "$PID_TAIL"
    wait "$PID_TAIL" 2>/dev/null || true
    stop_pid "$PID_FILTER"
    wait "$PID_FILTER" 2>/dev/null || true
    PID_TAIL="" PID_FILTER=""
}
up_count() { wc -l <"$WORK/up.names"; }
# The time (ns since the epoch) site number $1 (1 = the first) came up, from WORK/up.names.
up_time() { awk -v k="$1" 'NR == k { print $2; exit }' "$WORK/up.names"; }

# ironsecd side $1's status --json, summed: "up received retransmits_sent queue_dropped
# half_open_dropped cookies_sent" (up: tunnels with an established IKE SA with a CHILD_SA and
# both ESP SAs installed). Returns 1 if ironsecctl fails.
ironsec_view() { # side
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
i = d.get("ike") or {}
print(up, *[int(i.get(k) or 0) for k in ("received", "retransmits_sent", "queue_dropped", "half_open_dropped", "cookies_sent")])'
}

# INSTALLED CHILD_SAs in `swanctl --list-sas --raw` on stdin.
installed() { awk '{ n += gsub(/state=INSTALLED/, "") } END { print n + 0 }'; }

# ---------------------------------------------------------------------------------------------
# TCP

# iperf3 -s in site $1's host namespace; its PID is added to IPERF_PIDS.
start_iperf_server() { # i
    local ns="$PREFIX-s$1" pid
    ip netns exec "$ns" iperf3 -s </dev/null >"$WORK/iperf3-s$1.log" 2>&1 &
    pid=$!
    IPERF_PIDS+=("$pid")
    for _ in $(seq 50); do
        if ip netns exec "$ns" ss -Hltn 'sport = :5201' | grep -q .; then return 0; fi
        alive "$pid" || break
        sleep 0.1
    done
    cat "$WORK/iperf3-s$1.log" >&2
    die "iperf3 -s does not listen in $ns"
}
stop_iperf_servers() {
    local p
    for p in "${IPERF_PIDS[@]}"; do stop_pid "$p"; wait "$p" 2>/dev/null || true; done
    IPERF_PIDS=()
}

# One TCP stream of TCP_SECS s from lh (hub site $1's .1) to site $1's host: prints the
# receiver's Mbit/s, or null.
tcp_through() { # i
    local out mbps
    site_addrs "$1"
    out=$(timeout -k 5 $((TCP_SECS + 20)) ip netns exec "$LH" iperf3 -c "$SSITE.2" -B "$HSITE.1" \
        -t "$TCP_SECS" --connect-timeout 5000 -J 2>/dev/null) || true
    mbps=$("$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print("%.1f" % (d["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception:
    print("null")' <<<"$out")
    [ "$mbps" != null ] || log "$PROG: iperf3 through site s$1 failed: $(printf '%s' "$out" | "$PY" -c 'import json,sys
try: print(json.load(sys.stdin).get("error", "no report"))
except Exception: print("no report")')"
    echo "$mbps"
}

# ---------------------------------------------------------------------------------------------
# One case: hub $1 (ironsec|strongswan) with $2 sites. Sets R_* (see case_json).

# Stop the case's daemons (spoke first, then the hub), keeping their logs in
# IRONSEC_SCALE_LOGS if set.
stop_case_daemons() {
    stop_up_watch
    if [ -n "${IRONSEC_SCALE_LOGS:-}" ]; then
        mkdir -p "$IRONSEC_SCALE_LOGS"
        for ((p = 0; p < R_SPK_PROCS; p++)); do
            cp "$WORK/spk$p.log" "$IRONSEC_SCALE_LOGS/$R_HUB-$R_SITES-spoke$p.log" 2>/dev/null || true
        done
        cp "$HLOG" "$IRONSEC_SCALE_LOGS/$R_HUB-$R_SITES-hub.log" 2>/dev/null || true
    fi
    for p in "${PIDS_SPK[@]}"; do stop_pid "$p"; wait "$p" 2>/dev/null || true; done
    PIDS_SPK=()
    if [ "$R_HUB" = ironsec ]; then
        stop_pid "$PID_HUB"; wait "$PID_HUB" 2>/dev/null || true
    else
        if [ -n "$SW_DIR" ] && [ -f "$SW_DIR/charon.pid" ]; then
            "$HERE/strongswan.sh" stop "$SW_DIR" >&2 || log "$PROG: strongswan.sh stop $SW_DIR failed"
        fi
        hub_site_addrs del "$R_SITES"
    fi
    PID_HUB=""
}

run_case() { # hub n
    local n=$2 t0 t_ready="" deadline next_log up=0 last=-1 line hu0 su0 s0 w0 w1 h0 h1 hn0 hn1 pn0 pn1 c0 c1
    local rx0=null rx1=null u x
    R_HUB=$1 R_SITES=$n R_CONVERGED=false R_SETUP=null R_RATE=null R_SPK_READY=null R_UP=0
    R_FIRST_UP=null R_RATE_AFTER=null
    R_TIME=$(date -u +%H:%M:%S)
    read -r R_LOAD _ </proc/loadavg
    log "$PROG: $R_HUB hub, $n site(s) ($R_TIME UTC, load $R_LOAD): starting the hub"
    # The spoke processes (one unless the descriptor limit says otherwise), sites split evenly.
    R_SPK_PROCS=$(( (n + SPK_CAP - 1) / SPK_CAP ))
    local per=$(( (n + R_SPK_PROCS - 1) / R_SPK_PROCS )) p
    for ((p = 0; p < R_SPK_PROCS; p++)); do
        write_ironsec_config "spk$p" "$(( (p + 1) * per < n ? (p + 1) * per : n ))" $(( p * per + 1 ))
    done
    t0=$(now_ns)
    if [ "$R_HUB" = ironsec ]; then
        write_ironsec_config hub "$n"
        start_ironsecd hub
        wait_daemon hub "$PID_HUB" 300
        HLOG="$WORK/hub.log"
    else
        SW_DIR="$WORK/swan-$n"
        mkdir -p "$SW_DIR"
        hub_site_addrs add "$n"
        write_swanctl_conf "$n"
        PID_HUB=$(timeout -k 10 "$TIMEOUT" "$HERE/strongswan.sh" start "$HUB" "$SW_DIR" 2>"$SW_DIR/start.err") ||
            { indent <"$SW_DIR/start.err" >&2; die "charon did not start or load $n connections within $TIMEOUT s in $HUB"; }
        HLOG="$SW_DIR/charon.log"
    fi
    R_HUB_START=$(secs_between "$t0" "$(now_ns)")
    R_RSS0=$(vm_kib "$PID_HUB" VmRSS)
    log "    the hub answers after $R_HUB_START s (VmRSS $R_RSS0 KiB); starting the spoke's ironsecd ($n sites)"
    hu0=$(udp_rcvbuf_errors "$HUB") su0=$(udp_rcvbuf_errors "$SPK")
    start_up_watch "$HLOG" "$R_HUB"
    t0=$(now_ns)
    for ((p = 0; p < R_SPK_PROCS; p++)); do start_ironsecd "spk$p"; done
    deadline=$(( t0 + TIMEOUT * 1000000000 )) next_log=0
    while :; do
        alive "$PID_HUB" || { tail -n 20 "$HLOG" | indent >&2; die "the hub exited during bring-up"; }
        for ((p = 0; p < R_SPK_PROCS; p++)); do
            alive "${PIDS_SPK[$p]}" || { tail -n 20 "$WORK/spk$p.log" | indent >&2; die "the spoke's ironsecd $p exited during bring-up"; }
        done
        if [ -z "$t_ready" ] && [ -S "$WORK/spk$((R_SPK_PROCS - 1)).sock" ] && [ -S "$WORK/spk0.sock" ]; then
            t_ready=$(now_ns)
            R_SPK_READY=$(secs_between "$t0" "$t_ready")
        fi
        up=$(up_count)
        if [ "$up" -ge "$n" ]; then
            R_CONVERGED=true
            R_FIRST_UP=$(secs_between "$t0" "$(up_time 1)")
            R_SETUP=$(secs_between "$t0" "$(up_time "$n")")
            R_RATE=$(awk -v n="$n" -v s="$R_SETUP" 'BEGIN { printf "%.1f", n / s }')
            if [ "$n" -gt 1 ]; then
                R_RATE_AFTER=$(awk -v n="$n" -v s="$R_SETUP" -v f="$R_FIRST_UP" 'BEGIN { if (s > f) printf "%.1f", (n - 1) / (s - f); else print "null" }')
            fi
            break
        fi
        if [ "$(now_ns)" -ge "$deadline" ]; then
            log "$PROG: bring-up did not converge in $TIMEOUT s: $up/$n sites up on the hub"
            break
        fi
        # Progress at most every 2 s, when the count moved.
        if [ "$up" != "$last" ] && [ "$(now_ns)" -ge "$next_log" ]; then
            log "    $(secs_between "$t0" "$(now_ns)") s: $up/$n sites up on the hub"
            last=$up next_log=$(( $(now_ns) + 2000000000 ))
        fi
        sleep 0.1
    done
    R_UP=$up
    stop_up_watch
    [ "$R_CONVERGED" = true ] && log "    all $n sites up on the hub $R_SETUP s after the spoke's start ($R_RATE/s; the first after $R_FIRST_UP s, $R_RATE_AFTER/s from there; the spoke's control socket appeared after $R_SPK_READY s)"
    sleep "$SETTLE"
    R_RSS=$(vm_kib "$PID_HUB" VmRSS) R_HWM=$(vm_kib "$PID_HUB" VmHWM)
    R_RSS_PER=$(awk -v r="$R_RSS" -v n="$n" 'BEGIN { printf "%.1f", r / n }')
    # The IKE messages received so far (ironsecd): the window's start.
    if [ "$R_HUB" = ironsec ]; then
        line=$(ironsec_view hub) || die "the hub's ironsecd does not answer status"
        read -r _ rx0 _ <<<"$line"
        sleep 1
    fi
    log "    hub VmRSS $R_RSS KiB (peak $R_HWM KiB); measuring idle CPU for $IDLE s (no traffic, no status requests)"
    h0=$(cpu_ticks "$PID_HUB") hn0=$(run_ns "$PID_HUB") pn0=$(spoke_run_ns) w0=$(now_ns)
    sleep "$IDLE"
    h1=$(cpu_ticks "$PID_HUB") hn1=$(run_ns "$PID_HUB") pn1=$(spoke_run_ns) w1=$(now_ns)
    R_WINDOW=$(secs_between "$w0" "$w1")
    R_HUB_CPU=$(awk -v t=$((h1 - h0)) -v hz="$CLK_TCK" -v w="$R_WINDOW" 'BEGIN { printf "%.2f", t / hz / w * 100 }')
    R_HUB_NS=$(ns_pct "$hn0" "$hn1" "$w0" "$w1") R_SPK_NS=$(ns_pct "$pn0" "$pn1" "$w0" "$w1")
    # Status after the window, text and JSON, timed.
    if [ "$R_HUB" = ironsec ]; then
        s0=$(now_ns)
        ctl hub status >"$WORK/status.txt" || die "the hub's ironsecd does not answer status"
        R_STATUS=$(secs_between "$s0" "$(now_ns)")
        s0=$(now_ns)
        ctl hub status --json >"$WORK/status.json" || die "the hub's ironsecd does not answer status --json"
        R_STATUS_JSON=$(secs_between "$s0" "$(now_ns)")
        line=$(ironsec_view hub) || die "the hub's ironsecd does not answer status"
        read -r R_UP_AFTER rx1 _ R_QDROP R_HALFOPEN R_COOKIES <<<"$line"
        R_IKE_RX=$((rx1 - rx0)) R_HUB_IKE_IN=$rx1
    else
        s0=$(now_ns)
        sw --list-sas >"$WORK/status.txt" || die "swanctl --list-sas failed"
        R_STATUS=$(secs_between "$s0" "$(now_ns)")
        s0=$(now_ns)
        sw --list-sas --raw >"$WORK/status.json" || die "swanctl --list-sas --raw failed"
        R_STATUS_JSON=$(secs_between "$s0" "$(now_ns)")
        R_UP_AFTER=$(installed <"$WORK/status.json")
        R_QDROP=null R_HALFOPEN=null R_COOKIES=null R_IKE_RX=null R_HUB_IKE_IN=null
    fi
    R_STATUS_BYTES=$(wc -c <"$WORK/status.json")
    R_SPK_UP=0 R_SPK_RETX=0
    for ((p = 0; p < R_SPK_PROCS; p++)); do
        line=$(ironsec_view "spk$p") || die "the spoke's ironsecd $p does not answer status"
        read -r u _ x _ <<<"$line"
        R_SPK_UP=$((R_SPK_UP + u)) R_SPK_RETX=$((R_SPK_RETX + x))
    done
    R_HUB_UDP=$(( $(udp_rcvbuf_errors "$HUB") - hu0 )) R_SPK_UDP=$(( $(udp_rcvbuf_errors "$SPK") - su0 ))
    log "    hub $R_HUB_CPU % CPU ($R_HUB_NS by schedstat), spoke ($R_SPK_NS by schedstat) over $R_WINDOW s; hub IKE messages meanwhile: $R_IKE_RX"
    log "    after: $R_UP_AFTER up on the hub, $R_SPK_UP on the spoke; status $R_STATUS s, status --json $R_STATUS_JSON s ($R_STATUS_BYTES bytes); hub IKE queue drops $R_QDROP, half-open drops $R_HALFOPEN, cookies $R_COOKIES; spoke retransmits $R_SPK_RETX; RcvbufErrors hub $R_HUB_UDP, spoke $R_SPK_UDP"
    R_TCP_FIRST=null R_TCP_LAST=null R_TCP_BUSY=null R_TCP_STEAL=null
    if [ "$TCP" = 1 ]; then
        add_site_host 1
        start_iperf_server 1
        [ "$n" -gt 1 ] && { add_site_host "$n"; start_iperf_server "$n"; }
        c0=$(cpu_ticks_all)
        R_TCP_FIRST=$(tcp_through 1)
        if [ "$n" -gt 1 ]; then R_TCP_LAST=$(tcp_through "$n"); else R_TCP_LAST=$R_TCP_FIRST; fi
        c1=$(cpu_ticks_all)
        read -r R_TCP_BUSY R_TCP_STEAL < <(cpu_busy_steal "$c0" "$c1")
        stop_iperf_servers
        del_site_host 1
        [ "$n" -gt 1 ] && del_site_host "$n"
        log "    TCP: first site $R_TCP_FIRST Mbit/s, last site (s$n) $R_TCP_LAST Mbit/s (CPUs busy $R_TCP_BUSY %, stolen $R_TCP_STEAL %)"
    fi
    stop_case_daemons
}

# The R_* of the last run_case as a JSON object (with the ratios to BASE_* of its hub).
case_json() {
    local per=null first_r last_r
    if [ "$R_SITES" -gt 1 ] && [ -n "$BASE_RSS" ]; then
        per=$(awk -v a="$R_RSS" -v b="$BASE_RSS" -v n="$R_SITES" 'BEGIN { printf "%.2f", (a - b) / (n - 1) }')
    fi
    first_r=$(ratio "$R_TCP_FIRST" "${BASE_TCP:-null}") last_r=$(ratio "$R_TCP_LAST" "${BASE_TCP:-null}")
    printf '{"hub":"%s","sites":%s,"time_utc":"%s","loadavg_1min_before":%s,"converged":%s,"hub_start_secs":%s,"hub_rss_before_kib":%s,"spoke_processes":%s,"spoke_ready_secs":%s,"setup_secs":%s,"setup_per_sec":%s,"first_up_secs":%s,"setup_per_sec_after_first":%s,"sites_up_hub":%s,"sites_up_hub_after":%s,"sites_up_spoke_after":%s,"hub_rss_kib":%s,"hub_hwm_kib":%s,"hub_rss_per_site_kib":%s,"hub_rss_marginal_per_site_kib":%s,"window_secs":%s,"hub_cpu_pct":%s,"hub_cpu_pct_schedstat":%s,"spoke_cpu_pct_schedstat":%s,"hub_ike_received_during":%s,"hub_status_secs":%s,"hub_status_json_secs":%s,"hub_status_json_bytes":%s,"hub_ike_received":%s,"hub_ike_queue_dropped":%s,"hub_ike_half_open_dropped":%s,"hub_ike_cookies_sent":%s,"spoke_ike_retransmits_sent":%s,"hub_udp_rcvbuf_errors":%s,"spoke_udp_rcvbuf_errors":%s,"tcp_first_mbps":%s,"tcp_last_mbps":%s,"tcp_first_vs_1":%s,"tcp_last_vs_1":%s,"tcp_cpu_busy_pct":%s,"tcp_cpu_steal_pct":%s}' \
        "$R_HUB" "$R_SITES" "$R_TIME" "$R_LOAD" "$R_CONVERGED" "$R_HUB_START" "$R_RSS0" "$R_SPK_PROCS" "$R_SPK_READY" "$R_SETUP" "$R_RATE" "$R_FIRST_UP" "$R_RATE_AFTER" \
        "$R_UP" "$R_UP_AFTER" "$R_SPK_UP" "$R_RSS" "$R_HWM" "$R_RSS_PER" "$per" "$R_WINDOW" "$R_HUB_CPU" "$R_HUB_NS" "$R_SPK_NS" \
        "$R_IKE_RX" "$R_STATUS" "$R_STATUS_JSON" "$R_STATUS_BYTES" "$R_HUB_IKE_IN" "$R_QDROP" "$R_HALFOPEN" "$R_COOKIES" \
        "$R_SPK_RETX" "$R_HUB_UDP" "$R_SPK_UDP" "$R_TCP_FIRST" "$R_TCP_LAST" "$first_r" "$last_r" "$R_TCP_BUSY" "$R_TCP_STEAL"
}

# ---------------------------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironsec-scale.XXXXXX")
(
    umask 077
    printf '0x%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$WORK/scale.psk"
)
log "$PROG: namespaces $PREFIX-*, $MAX site addresses on the spoke"
make_topology

CASES=() ALL_OK=true
TABLE=$(printf '%-10s %6s %9s %9s %8s %9s %10s %9s %8s %8s %8s %8s %7s %7s %6s %8s %8s %6s %6s\n' hub sites setup_s per_s first_s per_s_1st rss_MiB KiB/site cpu_% status_s json_s qdrop hopen retx rcvbuf tcp1 tcpN r1 rN)
for hub in $HUBS; do
    BASE_RSS="" BASE_TCP=null
    for n in "${NS_LIST[@]}"; do
        run_case "$hub" "$n"
        if [ "$n" = 1 ]; then BASE_RSS=$R_RSS BASE_TCP=$R_TCP_FIRST; fi
        C=$(case_json)
        CASES+=("$C")
        [ "$R_CONVERGED" = true ] || ALL_OK=false
        TABLE+=$'\n'$("$PY" -c '
import json, sys
c = json.loads(sys.argv[1])
f = lambda k, fmt="%s": "-" if c.get(k) is None else fmt % c[k]
print("%-10s %6s %9s %9s %8s %9s %10s %9s %8s %8s %8s %8s %7s %7s %6s %8s %8s %6s %6s" % (
    c["hub"], c["sites"], f("setup_secs"), f("setup_per_sec"), f("first_up_secs"),
    f("setup_per_sec_after_first"), "%.1f" % (c["hub_rss_kib"] / 1024),
    f("hub_rss_marginal_per_site_kib"), f("hub_cpu_pct_schedstat"), f("hub_status_secs"),
    f("hub_status_json_secs"), f("hub_ike_queue_dropped"), f("hub_ike_half_open_dropped"),
    f("spoke_ike_retransmits_sent"), f("hub_udp_rcvbuf_errors"), f("tcp_first_mbps"),
    f("tcp_last_mbps"), f("tcp_first_vs_1"), f("tcp_last_vs_1")))' "$C")
    done
done

SW_VERSION=null
[[ " $HUBS " == *" strongswan "* ]] && SW_VERSION="\"strongSwan $(dpkg-query -W -f '${Version}' strongswan-charon 2>/dev/null || echo '?') kernel-libipsec\""
CONDITIONS="one ironsecd plays every spoke from its own /32 WAN address (the hub sees N peers), one connection and one tunnel per site, policy-based, IKEv2 PSK aes128gcm16-prfsha256-x25519 / aes128gcm16; the spoke initiates every site at once, the hub answers; dpd off, rekeying a day away; no traffic and no status request during the CPU window"
UPCOUNT="a site is up once the hub logs its first CHILD_SA (ironsecd: the 'CHILD_SA up' info line, timed by the line's own timestamp; charon: 'CHILD_SA NAME{n} established', timed when read), read by tail -F and counted every 0.1 s without asking the hub; sites_up_hub_after is a status after the window (ironsecd: tunnels up with both ESP SAs; charon: INSTALLED CHILD_SAs)"
JOINED=$(IFS=,; printf '%s' "${CASES[*]}")
REPORT=$(printf '{"script":"scale","ironsecd":"%s","strongswan":%s,"conditions":"%s","up_counting":"%s","cpu":"%% of one core: utime+stime from /proc/PID/stat (whole clock ticks), and *_schedstat from the thread run times in /proc/PID/task/*/schedstat (ns)","cpus":%s,"clk_tck":%s,"idle_secs":%s,"settle_secs":%s,"tcp_seconds":%s,"tcp":%s,"cases":[%s]}' \
    "$D" "$SW_VERSION" "$CONDITIONS" "$UPCOUNT" "$(nproc)" "$CLK_TCK" "$IDLE" "$SETTLE" "$TCP_SECS" \
    "$([ "$TCP" = 1 ] && echo true || echo false)" "$JOINED")

OUT=1
[ "$JSON_FILE" = - ] && OUT=2
{
    say "ironsec scale: N sites on one hub ($D, $(nproc) CPUs; idle window $IDLE s; TCP $TCP_SECS s per stream)"
    say "conditions: $CONDITIONS"
    say "columns: setup_s/per_s spoke start -> all up on the hub; first_s spoke start -> the first up; per_s_1st (N-1) / (setup_s - first_s), the rate without the spoke's own start; rss_MiB hub VmRSS; KiB/site (RSS(N)-RSS(1))/(N-1); cpu_% hub idle CPU (schedstat); status_s/json_s one status / status --json; qdrop/hopen hub IKE queue / half-open drops; retx spoke retransmits; rcvbuf hub UDP RcvbufErrors; tcp1/tcpN Mbit/s first/last site; r1/rN vs N = 1"
    say "$TABLE"
} >&"$OUT"
if [ "$JSON_FILE" = - ]; then
    printf '%s\n' "$REPORT"
elif [ -n "$JSON_FILE" ]; then
    printf '%s\n' "$REPORT" >"$JSON_FILE"
fi
[ "$ALL_OK" = true ] || exit 1
