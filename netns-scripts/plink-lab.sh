#!/usr/bin/env bash
# The VPN as the backup of a private link (ironsec issue 25): two sites joined by a private link
# (an MPLS circuit, a leased line, ExpressRoute) and by a route-based IPsec tunnel over the WAN,
# each gateway running ironsecd and BIRD 2 with eBGP + BFD over both paths. The private link is
# preferred (local_pref 200 against 100); when it fails the tunnel carries the traffic, and when
# it comes back it takes the traffic back. Every piece is a network namespace named
# "PREFIX-<role>", so several copies can run side by side (tests/ha_private_link.rs runs its own).
#
#   PREFIX-lha 10.1.0.2 -- lan 10.1.0.1  PREFIX-gwa (ASN 65010)  wan 192.0.2.10 ----.
#                                          pl 10.255.0.1/30                         |
#                                             |                                 PREFIX-wan (router:
#                                   PREFIX-plink (bridge br0:                    192.0.2.1 on port
#                                     the private link)                          gwa, 198.51.100.1
#                                             |                                  on port gwb)
#                                          pl 10.255.0.2/30                         |
#   PREFIX-lhb 10.2.0.2 -- lan 10.2.0.1  PREFIX-gwb (ASN 65020)  wan 198.51.100.10 -'
#   tunnel (ironsecd creates the interfaces and their APIPA addresses, the ESP goes over the WAN):
#     gwa vti-b 169.254.30.1/30 <-> 169.254.30.2/30 vti-a gwb
#
# Both gateways have a default route via the WAN router, as a site's Internet uplink would: any
# packet of 10/8 that left a gateway in clear would cross the WAN router's ports, where the
# tests count it (tests/common/judge.rs). The WAN router routes only the public /24s.
#
# The private link is a Linux bridge in PREFIX-plink: both gateways see each other on one /30
# (BGP and single-hop BFD with `direct`, as on a real circuit). `cut` drops everything the
# bridge would forward (nftables, bridge family), like a carrier failure: both `pl`
# interfaces stay up and nothing tells the gateways but BFD.
#
# The configs are the shipped examples, conf/ha/plink-site-{a,b}.toml and
# conf/bird/plink-site-{a,b}.conf, with only their paths rewritten (control socket, PSK file,
# BIRD's log).
#
# Usage (as root):
#   netns-scripts/plink-lab.sh up PREFIX [--net-only]
#       builds the namespaces, writes a fresh PSK and the configs into the state directory,
#       starts ironsecd and BIRD in both gateways and waits (up to 30 s) for all four BGP
#       sessions to be established and their BFD sessions up; then returns, leaving everything running. --net-only builds
#       the namespaces and links only (tests start their own daemons).
#   netns-scripts/plink-lab.sh status PREFIX
#       per gateway: the tunnel (ironsecctl status), BGP and BFD sessions, the route to the other
#       site's LAN and the guards, the path interfaces' packet counters.
#   netns-scripts/plink-lab.sh cut PREFIX [link|bfd]
#   netns-scripts/plink-lab.sh heal PREFIX
#       cut: drop everything on the private link (link, the default), or only BFD (bfd: UDP
#       ports 3784 and 3785, a partly healed link that passes BGP and data but not BFD); heal:
#       stop dropping. The WAN and the tunnel are left alone.
#   netns-scripts/plink-lab.sh down PREFIX
#       stops every daemon it started (by PID), removes the namespaces (and with them the tunnel
#       interfaces) and the state directory. Never fails; safe to run twice.
#
# Then, e.g.:  ip netns exec PREFIX-lha ping 10.2.0.2        (over the private link)
#              netns-scripts/plink-lab.sh cut PREFIX          (now over the tunnel)
#              birdc -s STATE/gwa.bird.sock show route 10.2.0.0/24 all
#
# State directory: ${TMPDIR:-/tmp}/ironsec-plink-PREFIX (configs, PSK, logs, sockets, PIDs).
# Environment: IRONSECD (the daemon; default: target/release/ironsecd, built with cargo if
# missing, or $IRONSEC_BIN_DIR/ironsecd), IRONSECCTL (default: ironsecctl next to it),
# IRONSEC_LOG (daemons' log level, default info). PREFIX: 1-24 of [A-Za-z0-9_-].
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=plink-lab.sh
# shellcheck source=netns-scripts/bird-lib.sh
. "$HERE/bird-lib.sh"

GWS=(gwa gwb)
# Per gateway: example configs, WAN address, WAN router address, LAN number, private link
# address, LAN host namespace.
declare -A TOML=([gwa]=ha/plink-site-a.toml [gwb]=ha/plink-site-b.toml)
declare -A BIRDCONF=([gwa]=plink-site-a.conf [gwb]=plink-site-b.conf)
declare -A WANIP=([gwa]=192.0.2.10 [gwb]=198.51.100.10)
declare -A ROUTERIP=([gwa]=192.0.2.1 [gwb]=198.51.100.1)
declare -A LANNO=([gwa]=1 [gwb]=2)
declare -A PLIP=([gwa]=10.255.0.1 [gwb]=10.255.0.2)
declare -A LANOF=([gwa]=lha [gwb]=lhb)
PSK_NAME=plink.psk

all_ns() {
    local r
    for r in wan plink "${GWS[@]}" lha lhb; do ns_of "$r"; done
}

# ---------------------------------------------------------------------------------------------
# up

make_namespaces() {
    local ns g lan n wan plink
    add_namespaces wan plink "${GWS[@]}" lha lhb
    wan=$(ns_of wan)
    plink=$(ns_of plink)
    ip netns exec "$wan" sysctl -qw net.ipv4.ip_forward=1
    # The private link: a bridge with one port per gateway. Nothing is routed here.
    ip -n "$plink" link add br0 type bridge
    ip -n "$plink" link set br0 up
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g")
        lan=$(ns_of "${LANOF[$g]}")
        n=${LANNO[$g]}
        wan_port "$wan" "$g" "$ns" "${ROUTERIP[$g]}" "${WANIP[$g]}" 24

        ip -n "$plink" link add "$g" type veth peer name pl netns "$ns"
        ip -n "$plink" link set "$g" master br0
        ip -n "$plink" link set "$g" up
        ip -n "$ns" addr add "${PLIP[$g]}/30" dev pl
        ip -n "$ns" link set pl up

        lan_host "$ns" "$lan" "10.$n.0"

        # While the two sites switch paths one after the other, a request may come in over one
        # path and its reply leave over the other: no reverse-path filter.
        forward_without_rp_filter "$ns"
    done
}

write_configs() {
    local g
    new_psk "$STATE/$PSK_NAME"
    for g in "${GWS[@]}"; do
        derive_ironsecd_config "$g" "conf/${TOML[$g]}"
        derive_bird_config "$g" "${BIRDCONF[$g]}"
    done
}

up() {
    gateways_up "all four BGP sessions" \
        "ip netns exec $(ns_of lha) ping -c 3 10.2.0.2;  $0 cut $PREFIX;  $0 status $PREFIX;  $0 down $PREFIX" \
        nft "nftables (nft) not installed (cut/heal need it)"
}

# ---------------------------------------------------------------------------------------------
# status, cut, heal

status() {
    local g ns other dev
    [ -d "$STATE" ] || die "no state directory $STATE: is $PREFIX up?"
    [ -n "${IRONSECCTL:-}" ] && CTL=$IRONSECCTL || { bin_dir; CTL="$BIN/ironsecctl"; }
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g")
        if [ "$g" = gwa ]; then other=10.2.0.2; else other=10.1.0.2; fi
        say "=== $g ($ns)"
        status_daemons "$g" tunnel
        say "--- path to $other, routes from BIRD, and guards"
        { ip -n "$ns" route get "$other" 2>&1 | head -n 1 || true; } | indent
        { ip -n "$ns" route show | grep -E 'proto bird|blackhole' || true; } | indent
        say "--- path interfaces (packets in / out)"
        for dev in $(ip -n "$ns" -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep -E '^(pl|vti-.*)$'); do
            link_counters "$ns" "$dev"
        done | indent
    done
    ns=$(ns_of plink)
    if ns_exists "$ns"; then
        say "=== private link ($ns)"
        if ip netns exec "$ns" nft list table bridge plink_cut >/dev/null 2>&1; then
            ip netns exec "$ns" nft list chain bridge plink_cut forward | grep -E 'drop' | indent
        else
            say "    not cut"
        fi
    fi
}

cut() {
    local plink what=$1 match
    plink=$(ns_of plink)
    ns_exists "$plink" || die "namespace $plink does not exist: is $PREFIX up?"
    case "$what" in
        link) match="" ;;
        # BFD single-hop control (3784) and echo (3785), both directions.
        bfd) match="udp dport { 3784, 3785 }" ;;
        *) die "unknown cut '$what': link or bfd" ;;
    esac
    # One table, replaced as a whole: a second cut changes what is dropped, heal removes it.
    ip netns exec "$plink" nft delete table bridge plink_cut 2>/dev/null || true
    ip netns exec "$plink" nft -f - <<EOF
table bridge plink_cut {
    chain forward {
        type filter hook forward priority 0; policy accept;
        $match counter drop comment "$what"
    }
}
EOF
    msg "$PROG: cut the private link ($what) in $plink"
}

heal() {
    local plink
    plink=$(ns_of plink)
    ns_exists "$plink" || die "namespace $plink does not exist: is $PREFIX up?"
    ip netns exec "$plink" nft delete table bridge plink_cut 2>/dev/null || true
    msg "$PROG: healed the private link in $plink"
}

# ---------------------------------------------------------------------------------------------

NET_ONLY=0
case "$CMD" in
    -h | --help) usage; exit 0 ;;
    up | down | status | cut | heal) ;;
    *) usage >&2; exit 2 ;;
esac
[ $# -ge 2 ] || die "usage: $PROG $CMD PREFIX ... (see --help)"
shift 2
check_prefix plink
case "$CMD" in
    up)
        while [ $# -gt 0 ]; do
            case "$1" in
                --net-only) NET_ONLY=1 ;;
                *) die "unknown option '$1' (see --help)" ;;
            esac
            shift
        done
        up
        ;;
    down) need_root; [ $# = 0 ] || die "down takes no options"; down ;;
    status) need_root; [ $# = 0 ] || die "status takes no options"; status ;;
    cut) need_root; [ $# -le 1 ] || die "cut takes one of: link, bfd"; cut "${1:-link}" ;;
    heal) need_root; [ $# = 0 ] || die "heal takes no options"; heal ;;
esac
