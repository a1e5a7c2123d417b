#!/usr/bin/env bash
# Route-based hub-and-spokes with BGP (ironsec issue 22): three gateways, each running ironsecd
# with one tunnel interface per route-based connection and BIRD 2 speaking eBGP + BFD over those
# interfaces; one LAN host per site; a WAN router in between. Every piece is a network namespace
# named "PREFIX-<role>", so several copies can run side by side (tests/route_bgp.rs runs its own).
#
#   PREFIX-lanHub 10.1.0.2 -- lan 10.1.0.1  PREFIX-hub  (ASN 65515)  wan 192.0.2.10 --.
#   PREFIX-lanB   10.2.0.2 -- lan 10.2.0.1  PREFIX-spokeB (ASN 65010) wan 198.51.100.10 -- PREFIX-wan
#   PREFIX-lanC   10.3.0.2 -- lan 10.3.0.1  PREFIX-spokeC (ASN 65020) wan 203.0.113.10 --'  (router:
#                                                                       192.0.2.1, 198.51.100.1,
#                                                                       203.0.113.1; ports hub,
#                                                                       spokeB, spokeC)
#   tunnels (ironsecd creates the interfaces and their APIPA addresses):
#     hub vti-spoke-b 169.254.21.1/30 <-> 169.254.21.2/30 vti-hub spokeB
#     hub vti-spoke-c 169.254.21.5/30 <-> 169.254.21.6/30 vti-hub spokeC
#     with --direct: spokeB vti-spoke-c 169.254.22.1/30 <-> 169.254.22.2/30 vti-spoke-b spokeC
#
# The configs are the shipped examples, conf/route-hub.toml, conf/route-spoke-b.toml,
# conf/route-spoke-c.toml and conf/bird/{hub,spoke-b,spoke-c}.conf, with only their paths
# rewritten (control socket, PSK files, BIRD's log) and, without --direct, the spokes' optional
# direct-path parts cut off (from their "# --- optional" line on). No LAN prefix is configured in
# ironsec: the spokes' BIRDs announce their LANs, the hub's passes them on.
#
# Usage (as root):
#   netns-scripts/route-based.sh up PREFIX [--direct] [--net-only]
#       builds the namespaces, writes fresh PSKs and the configs into the state directory,
#       starts ironsecd and BIRD in each gateway and waits (up to 30 s) for every BGP session to
#       be established; then returns, leaving everything running. --direct adds the spoke B <->
#       spoke C connection (a second, shorter path the spokes prefer; the hub is the backup).
#       --net-only builds the namespaces and links only (tests start their own daemons).
#   netns-scripts/route-based.sh status PREFIX
#       per gateway: tunnels (ironsecctl status), BGP sessions, BFD sessions, routes via the
#       tunnel interfaces, the interfaces' packet counters.
#   netns-scripts/route-based.sh cut PREFIX hub-b|hub-c|b-c
#   netns-scripts/route-based.sh heal PREFIX hub-b|hub-c|b-c
#       drop (or stop dropping) the WAN traffic between two gateways in the WAN router
#       (nftables), leaving the other paths alone. A whole site's uplink can also be taken down:
#       ip -n PREFIX-wan link set spokeC down.
#   netns-scripts/route-based.sh down PREFIX
#       stops every daemon it started (by PID), removes the namespaces (and with them the
#       tunnel interfaces) and the state directory. Never fails; safe to run twice.
#
# Then, e.g.:  ip netns exec PREFIX-lanB ping 10.3.0.2             (spoke B -> spoke C via the hub)
#              ip -n PREFIX-spokeC addr add 10.33.0.1/24 dev lan  (announced by BGP at once)
#              birdc -s STATE/hub.bird.sock show route
#
# State directory: ${TMPDIR:-/tmp}/ironsec-rb-PREFIX (configs, PSKs, logs, sockets, PIDs).
# Environment: IRONSECD (the daemon; default: target/release/ironsecd, built with cargo if
# missing, or $IRONSEC_BIN_DIR/ironsecd), IRONSECCTL (default: ironsecctl next to it),
# IRONSEC_LOG (daemons' log level, default info). PREFIX: 1-24 of [A-Za-z0-9_-].
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=route-based.sh
MSG_FD=2
CMD=${1:-}
PREFIX=${2:-}
case "$CMD" in
    -h | --help) PREFIX=x ;;
esac
# shellcheck source=netns-scripts/lib.sh
. "$HERE/lib.sh"

GWS=(hub spokeB spokeC)
LANS=(lanHub lanB lanC)
# Per gateway: example configs, WAN address, WAN router address, router port, LAN number.
declare -A TOML=([hub]=route-hub.toml [spokeB]=route-spoke-b.toml [spokeC]=route-spoke-c.toml)
declare -A BIRDCONF=([hub]=hub.conf [spokeB]=spoke-b.conf [spokeC]=spoke-c.conf)
declare -A WANIP=([hub]=192.0.2.10 [spokeB]=198.51.100.10 [spokeC]=203.0.113.10)
declare -A ROUTERIP=([hub]=192.0.2.1 [spokeB]=198.51.100.1 [spokeC]=203.0.113.1)
declare -A LANNO=([hub]=1 [spokeB]=2 [spokeC]=3)
declare -A LANOF=([hub]=lanHub [spokeB]=lanB [spokeC]=lanC)
PSKS=(hub-spoke-b hub-spoke-c spoke-b-spoke-c)

ns_of() { printf '%s-%s\n' "$PREFIX" "$1"; }
all_ns() {
    local r
    for r in wan "${GWS[@]}" "${LANS[@]}"; do ns_of "$r"; done
}
ns_exists() { ip netns list | awk -v n="$1" '$1 == n { f = 1 } END { exit !f }'; }

check_prefix() {
    [[ $PREFIX =~ ^[A-Za-z0-9_-]{1,24}$ ]] ||
        die "PREFIX '$PREFIX' must be 1-24 of [A-Za-z0-9_-] (see --help)"
    STATE="${TMPDIR:-/tmp}/ironsec-rb-$PREFIX"
    WORK=$STATE # lib.sh's wait_ready finds the control sockets there
}

need_root() { [ "$(id -u)" = 0 ] || die "needs root (network namespaces)"; }

# ---------------------------------------------------------------------------------------------
# down: everything of PREFIX, whatever state it is in.

# Stop PID $1 if it is still the program $2 (basename of its executable) running in namespace
# $3: a PID file may outlive its process and the number be reused.
stop_ours() { # pid program namespace
    local pid=$1 exe
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 0
    [ "$(basename "$exe")" = "$2" ] || return 0
    [ "$(ip netns identify "$pid" 2>/dev/null)" = "$3" ] || return 0
    stop_pid "$pid"
}

down() {
    local ns g pids
    if [ -d "$STATE" ]; then
        for g in "${GWS[@]}"; do
            ns=$(ns_of "$g")
            [ -f "$STATE/$g.bird.pid" ] && stop_ours "$(cat "$STATE/$g.bird.pid")" bird "$ns"
            [ -f "$STATE/$g.ironsecd.pid" ] && stop_ours "$(cat "$STATE/$g.ironsecd.pid")" ironsecd "$ns"
        done
    fi
    for ns in $(all_ns); do
        ns_exists "$ns" || continue
        # Anything still running inside one of our namespaces is ours (a daemon whose PID file
        # was lost, a ping left behind): stop it by PID before the namespace goes.
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        for g in $pids; do stop_pid "$g"; done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ -d "$STATE" ]; then rm -rf -- "$STATE"; fi
}

# ---------------------------------------------------------------------------------------------
# up

make_namespaces() {
    local r ns g lan n
    for r in wan "${GWS[@]}" "${LANS[@]}"; do
        ns=$(ns_of "$r")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    local wan
    wan=$(ns_of wan)
    ip netns exec "$wan" sysctl -qw net.ipv4.ip_forward=1
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g")
        lan=$(ns_of "${LANOF[$g]}")
        n=${LANNO[$g]}
        # Each veth is created inside a namespace of ours with its peer moved straight into the
        # other: nothing ever appears in the root namespace.
        ip -n "$wan" link add "$g" type veth peer name wan netns "$ns"
        ip -n "$wan" addr add "${ROUTERIP[$g]}/24" dev "$g"
        ip -n "$wan" link set "$g" up
        ip -n "$ns" addr add "${WANIP[$g]}/24" dev wan
        ip -n "$ns" link set wan up
        ip -n "$ns" route add default via "${ROUTERIP[$g]}"

        ip -n "$ns" link add lan type veth peer name eth0 netns "$lan"
        ip -n "$ns" addr add "10.$n.0.1/24" dev lan
        ip -n "$ns" link set lan up
        ip -n "$lan" addr add "10.$n.0.2/24" dev eth0
        ip -n "$lan" link set eth0 up
        ip -n "$lan" route add default via "10.$n.0.1"

        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.default.rp_filter=0
    done
}

# The daemon binaries: IRONSECD/IRONSECCTL, else lib.sh's (release build, made if missing).
binaries() {
    if [ -n "${IRONSECD:-}" ]; then
        D=$IRONSECD
        CTL=${IRONSECCTL:-$(dirname "$D")/ironsecctl}
    else
        find_binaries first "building ironsecd (cargo build --release) ..."
    fi
    [ -x "$D" ] || die "$D not found or not executable (set IRONSECD)"
    [ -x "$CTL" ] || die "$CTL not found or not executable (set IRONSECCTL)"
    command -v bird >/dev/null && command -v birdc >/dev/null ||
        die "bird and birdc not found (Debian: apt-get install bird2, or tests/install-deps.sh)"
}

# $1 with everything from its "# --- optional" line on removed unless DIRECT=1.
direct_part() {
    if [ "$DIRECT" = 1 ]; then cat "$1"; else sed '/^# --- optional/,$d' "$1"; fi
}

write_configs() {
    local p g out
    for p in "${PSKS[@]}"; do
        (umask 077; printf '0x%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/$p.psk")
    done
    for g in "${GWS[@]}"; do
        out="$STATE/$g.toml"
        direct_part "$ROOT/conf/${TOML[$g]}" |
            sed -e "s|^control_socket = \"[^\"]*\"|control_socket = \"$STATE/$g.sock\"|" \
                -e "s|^psk_file = \"psk/\\([^\"]*\\)\"|psk_file = \"$STATE/\\1\"|" >"$out"
        grep -q "^control_socket = \"$STATE/$g.sock\"" "$out" && ! grep -q '^psk_file = "psk/' "$out" ||
            die "could not derive $out from conf/${TOML[$g]} (did the example's layout change?)"
        ip netns exec "$(ns_of "$g")" "$D" check --config "$out" >"$STATE/$g.check" 2>&1 ||
            { indent <"$STATE/$g.check" >&2; die "ironsecd check --config $out failed"; }

        out="$STATE/$g.bird.conf"
        direct_part "$ROOT/conf/bird/${BIRDCONF[$g]}" |
            sed "s|^log syslog all;|log \"$STATE/$g.bird.log\" all;|" >"$out"
        grep -q "^log \"$STATE/$g.bird.log\" all;" "$out" ||
            die "could not derive $out from conf/bird/${BIRDCONF[$g]} (no 'log syslog all;' line?)"
        bird -p -c "$out" || die "bird -p -c $out: the config does not parse"
    done
}

start_daemons() {
    local g ns
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g")
        # ip netns exec execs ironsecd in place: $! is the daemon's PID.
        IRONSEC_LOG="${IRONSEC_LOG:-info}" ip netns exec "$ns" "$D" --config "$STATE/$g.toml" \
            </dev/null >"$STATE/$g.ironsecd.log" 2>&1 &
        echo "$!" >"$STATE/$g.ironsecd.pid"
    done
    for g in "${GWS[@]}"; do
        wait_ready "$g" "$(cat "$STATE/$g.ironsecd.pid")" ||
            { indent <"$STATE/$g.ironsecd.log" >&2; die "ironsecd in $(ns_of "$g"): $NOT_READY"; }
    done
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g")
        # BIRD forks into the background and writes its PID file; TZ=UTC: log times in UTC.
        ip netns exec "$ns" env TZ=UTC bird -c "$STATE/$g.bird.conf" -s "$STATE/$g.bird.sock" \
            -P "$STATE/$g.bird.pid" </dev/null >"$STATE/$g.bird.out" 2>&1 ||
            { indent <"$STATE/$g.bird.out" >&2; die "bird did not start in $ns"; }
    done
}

# BGP sessions of gateway $1 as "name state info" lines.
bgp_sessions() {
    # Columns: name proto table state since info; since is "DATE TIME" in the configs' format.
    birdc -s "$STATE/$1.bird.sock" show protocols 2>/dev/null |
        awk '$2 == "BGP" { i = ($5 ~ /^[0-9][0-9][0-9][0-9]-/) ? 7 : 6; print $1, $4, $i }'
}

# Wait up to $1 seconds for every BGP session of every gateway to be Established.
wait_bgp() {
    local deadline=$((SECONDS + $1)) g pending
    while :; do
        pending=""
        for g in "${GWS[@]}"; do
            if ! bgp_sessions "$g" | grep -q .; then pending+=" $g:(no answer)"; continue; fi
            while read -r name _ info; do
                [ "$info" = Established ] || pending+=" $g:$name"
            done < <(bgp_sessions "$g")
        done
        [ -z "$pending" ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$PROG: BGP sessions not established after $1 s:$pending"
            return 1
        fi
        sleep 0.2
    done
}

up() {
    local t0=$SECONDS
    need_root
    command -v ip >/dev/null || die "iproute2 (ip) not installed"
    [ "$NET_ONLY" = 1 ] || binaries
    down
    UP_OK=0
    install_cleanup_traps
    mkdir -m 700 -p "$STATE"
    msg "$PROG: namespaces $(all_ns | tr '\n' ' ')"
    make_namespaces
    if [ "$NET_ONLY" = 1 ]; then
        UP_OK=1
        msg "$PROG: network only (no daemons); remove it with: $0 down $PREFIX"
        return
    fi
    write_configs
    start_daemons
    if ! wait_bgp 30; then
        for g in "${GWS[@]}"; do
            log "--- $g: ironsecd log"; tail -n 20 "$STATE/$g.ironsecd.log" | indent >&2
            log "--- $g: BIRD"; birdc -s "$STATE/$g.bird.sock" show protocols 2>&1 | indent >&2
        done
        die "BGP did not come up"
    fi
    UP_OK=1
    msg "$PROG: up in $((SECONDS - t0)) s, every BGP session established; state in $STATE"
    msg "$PROG: try: ip netns exec $(ns_of lanB) ping -c 3 10.3.0.2;  $0 status $PREFIX;  $0 down $PREFIX"
}

# A failed `up` removes everything it built; a successful one leaves it running.
on_exit() {
    if [ "${UP_OK:-1}" = 0 ]; then
        log "$PROG: up failed; removing what it built"
        down
    fi
}

# ---------------------------------------------------------------------------------------------
# status, cut, heal

status() {
    local g ns sock
    [ -d "$STATE" ] || die "no state directory $STATE: is $PREFIX up?"
    [ -n "${IRONSECCTL:-}" ] && CTL=$IRONSECCTL || { bin_dir; CTL="$BIN/ironsecctl"; }
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g")
        say "=== $g ($ns)"
        sock="$STATE/$g.sock"
        if [ -S "$sock" ] && [ -x "$CTL" ]; then
            say "--- tunnels (ironsecctl status)"
            "$CTL" --socket "$sock" status 2>&1 | indent || true
        fi
        if [ -S "$STATE/$g.bird.sock" ]; then
            say "--- BGP sessions"
            bgp_sessions "$g" | indent
            say "--- BFD sessions"
            birdc -s "$STATE/$g.bird.sock" show bfd sessions 2>&1 | sed 1d | indent
        fi
        say "--- routes into the tunnel interfaces, and guards"
        { ip -n "$ns" route show | grep -E 'dev vti-|blackhole' || true; } | indent
        say "--- tunnel interfaces (packets in / out)"
        ip -n "$ns" -s -o link show 2>/dev/null | awk '{ sub(/:$/, "", $2) } $2 ~ /^vti-/ { print $2 }' |
            while read -r dev; do
                ip -n "$ns" -s link show "$dev" |
                    awk -v d="$dev" '/RX:/ { getline; rx = $2 } /TX:/ { getline; tx = $2 } END { printf "%s rx %s tx %s\n", d, rx, tx }'
            done | indent
    done
}

# WAN addresses of the two ends of link $1.
link_ends() {
    case "$1" in
        hub-b) A=${WANIP[hub]} B=${WANIP[spokeB]} ;;
        hub-c) A=${WANIP[hub]} B=${WANIP[spokeC]} ;;
        b-c) A=${WANIP[spokeB]} B=${WANIP[spokeC]} ;;
        *) die "unknown link '$1': hub-b, hub-c or b-c" ;;
    esac
}

cut() {
    local wan
    wan=$(ns_of wan)
    ns_exists "$wan" || die "namespace $wan does not exist: is $PREFIX up?"
    link_ends "$1"
    ip netns exec "$wan" nft -f - <<EOF
table inet rb_cut {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip saddr $A ip daddr $B drop comment "$1"
        ip saddr $B ip daddr $A drop comment "$1"
    }
}
EOF
    msg "$PROG: cut $1 ($A <-> $B) in $wan"
}

heal() {
    local wan h
    wan=$(ns_of wan)
    ns_exists "$wan" || die "namespace $wan does not exist: is $PREFIX up?"
    link_ends "$1"
    for h in $(ip netns exec "$wan" nft -a list chain inet rb_cut forward 2>/dev/null |
        awk -v c="\"$1\"" '$0 ~ "comment " c { print $NF }'); do
        ip netns exec "$wan" nft delete rule inet rb_cut forward handle "$h"
    done
    msg "$PROG: healed $1 ($A <-> $B)"
}

# ---------------------------------------------------------------------------------------------

DIRECT=0 NET_ONLY=0
case "$CMD" in
    -h | --help) usage; exit 0 ;;
    up | down | status | cut | heal) ;;
    *) usage >&2; exit 2 ;;
esac
[ $# -ge 2 ] || die "usage: $PROG $CMD PREFIX ... (see --help)"
shift 2
check_prefix
case "$CMD" in
    up)
        while [ $# -gt 0 ]; do
            case "$1" in
                --direct) DIRECT=1 ;;
                --net-only) NET_ONLY=1 ;;
                *) die "unknown option '$1' (see --help)" ;;
            esac
            shift
        done
        up
        ;;
    down) need_root; [ $# = 0 ] || die "down takes no options"; down ;;
    status) need_root; [ $# = 0 ] || die "status takes no options"; status ;;
    cut | heal) need_root; [ $# = 1 ] || die "$CMD needs a link: hub-b, hub-c or b-c"; "$CMD" "$1" ;;
esac
