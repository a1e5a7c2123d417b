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
#       be established and its BFD session up; then returns, leaving everything running. --direct adds the spoke B <->
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
# shellcheck source=netns-scripts/bird-lib.sh
. "$HERE/bird-lib.sh"

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

all_ns() {
    local r
    for r in wan "${GWS[@]}" "${LANS[@]}"; do ns_of "$r"; done
}

# ---------------------------------------------------------------------------------------------
# up

make_namespaces() {
    local ns g lan n wan
    add_namespaces wan "${GWS[@]}" "${LANS[@]}"
    wan=$(ns_of wan)
    ip netns exec "$wan" sysctl -qw net.ipv4.ip_forward=1
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g")
        lan=$(ns_of "${LANOF[$g]}")
        n=${LANNO[$g]}
        wan_port "$wan" "$g" "$ns" "${ROUTERIP[$g]}" "${WANIP[$g]}" 24
        lan_host "$ns" "$lan" "10.$n.0"

        forward_without_rp_filter "$ns"
    done
}

# $1 with everything from its "# --- optional" line on removed unless DIRECT=1.
direct_part() {
    if [ "$DIRECT" = 1 ]; then cat "$1"; else sed '/^# --- optional/,$d' "$1"; fi
}

write_configs() {
    local p g
    for p in "${PSKS[@]}"; do new_psk "$STATE/$p.psk"; done
    for g in "${GWS[@]}"; do
        derive_ironsecd_config "$g" "conf/${TOML[$g]}" direct_part
        derive_bird_config "$g" "${BIRDCONF[$g]}" direct_part
    done
}

up() {
    gateways_up "every BGP session" \
        "ip netns exec $(ns_of lanB) ping -c 3 10.3.0.2;  $0 status $PREFIX;  $0 down $PREFIX"
}

# ---------------------------------------------------------------------------------------------
# status, cut, heal

status() {
    local g ns
    [ -d "$STATE" ] || die "no state directory $STATE: is $PREFIX up?"
    [ -n "${IRONSECCTL:-}" ] && CTL=$IRONSECCTL || { bin_dir; CTL="$BIN/ironsecctl"; }
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g")
        say "=== $g ($ns)"
        status_daemons "$g" tunnels
        say "--- routes into the tunnel interfaces, and guards"
        { ip -n "$ns" route show | grep -E 'dev vti-|blackhole' || true; } | indent
        say "--- tunnel interfaces (packets in / out)"
        ip -n "$ns" -s -o link show 2>/dev/null | awk '{ sub(/:$/, "", $2) } $2 ~ /^vti-/ { print $2 }' |
            while read -r dev; do link_counters "$ns" "$dev"; done | indent
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
check_prefix rb
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
