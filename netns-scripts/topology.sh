#!/usr/bin/env bash
# Test topology: sites of one LAN host and one gateway each, every piece in its own network
# namespace.
#
# Two sites (IRONSEC_SITES=2, the default): lanA -- gwA ==WAN== gwB -- lanB, the WAN one veth pair.
#
#   lanA  10.1.0.2/24 ----- 10.1.0.1/24  gwA  192.0.2.1/24 ===== 192.0.2.2/24  gwB  10.2.0.1/24 ----- 10.2.0.2/24  lanB
#
# Three or four sites (IRONSEC_SITES=3|4, multi-site): the WAN is a Linux bridge br0 in its own
# namespace "$IRONSEC_NS_PREFIX-wan"; each gateway's `wan` veth ends there as port gwA, gwB, ...
#
#   site X = A B C D, i = 1 2 3 4:
#   lanX 10.i.0.2/24 on x-lan --- 10.i.0.1/24 on lan  gwX  192.0.2.i/24 on wan --- port gwX of br0 (wan)
#
# LAN hosts route by default via their gateway; gateways forward, with rp_filter off.
#
# IPv6 (IRONSEC_IPV6=1): beside every IPv4 address above, the IPv6 one of the same role
# (docs/plan-issue-26-ipv6.md section 4), so every link is dual-stack:
#   WAN          2001:db8:f::i/64 on gwX's wan (2 sites: gwA ::1, gwB ::2)
#   second WAN   2001:db8:e::1/64 gwA, 2001:db8:e::2/64 gwB (IRONSEC_WAN_LINKS=2)
#   site i LAN   2001:db8:i::1/64 on gwX's lan, 2001:db8:i::2/64 on lanX, whose default IPv6
#                route is via 2001:db8:i::1
# Gateways forward IPv6 too. Every namespace has accept_dad=0 and every address is `nodad`:
# duplicate address detection would keep a fresh address unusable ("tentative") for 1-2 s.
# Without IRONSEC_IPV6 (or with 0) nothing IPv6 is configured, exactly as before.
# Namespaces are named "$IRONSEC_NS_PREFIX-<role>" (prefix default "isec"; roles lanA gwA ...
# wan) so tests can run their own copy beside the demo. `up` is idempotent-ish (it tears down a
# leftover copy first, and anything it built if it fails); `down` removes every namespace of the
# prefix, for any number of sites, and never fails.
#
# Usage: topology.sh up|down|names
#   env IRONSEC_NS_PREFIX (default isec), IRONSEC_SITES (2..4, default 2),
#       IRONSEC_WAN_LINKS (1 or 2, two sites only: 2 adds veth `wan2` gwA 198.51.100.1/24 ===
#       198.51.100.2/24 gwB, a second uplink for redundant tunnels),
#       IRONSEC_WAN_MTU (default 1500, set on the gateways' wan and the bridge ports),
#       IRONSEC_IPV6 (0 or 1, default 0: 1 adds the IPv6 addresses and routes above)
#   names prints the namespaces of the current IRONSEC_SITES:
#     2 sites: "$P-lanA $P-gwA $P-gwB $P-lanB"
#     3|4:     "$P-wan $P-lanA $P-gwA $P-lanB $P-gwB $P-lanC $P-gwC [$P-lanD $P-gwD]"
set -euo pipefail
# The ERR trap of `up` must also fire for failures inside the functions it calls.
set -o errtrace

P="${IRONSEC_NS_PREFIX:-isec}"
LANA="$P-lanA" GWA="$P-gwA" GWB="$P-gwB" LANB="$P-lanB"
WAN="$P-wan"
WAN_MTU="${IRONSEC_WAN_MTU:-1500}"
SITES="${IRONSEC_SITES:-2}"
WAN_LINKS="${IRONSEC_WAN_LINKS:-1}"
IPV6="${IRONSEC_IPV6:-0}"
LETTERS=(A B C D)
# Every namespace any site count creates: what `down` removes.
ALL_NS=("$P-lanA" "$P-gwA" "$P-gwB" "$P-lanB" "$P-gwC" "$P-lanC" "$P-gwD" "$P-lanD" "$WAN")

die() { echo "topology.sh: $*" >&2; exit 1; }

# `down` ignores IRONSEC_SITES (it removes every site count's namespaces); the rest checks it.
check_sites() {
    case "$SITES" in
        2|3|4) ;;
        *) die "IRONSEC_SITES must be 2, 3 or 4 (got '$SITES')" ;;
    esac
    case "$WAN_LINKS" in
        1) ;;
        2) [ "$SITES" = 2 ] || die "IRONSEC_WAN_LINKS=2 needs IRONSEC_SITES=2" ;;
        *) die "IRONSEC_WAN_LINKS must be 1 or 2 (got '$WAN_LINKS')" ;;
    esac
    case "$IPV6" in
        0|1) ;;
        *) die "IRONSEC_IPV6 must be 0 or 1 (got '$IPV6')" ;;
    esac
}

# The namespaces of the current site count, in `names` order.
names() {
    check_sites
    if [ "$SITES" = 2 ]; then
        echo "$LANA $GWA $GWB $LANB"
    else
        local out="$WAN" i
        for ((i = 0; i < SITES; i++)); do
            out+=" $P-lan${LETTERS[i]} $P-gw${LETTERS[i]}"
        done
        echo "$out"
    fi
}

down() {
    local ns
    for ns in "${ALL_NS[@]}"; do
        if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
            # Kill anything still running inside (only processes in our namespaces).
            local pids
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            # Word splitting wanted: one argument per PID.
            # shellcheck disable=SC2086
            [ -n "$pids" ] && kill $pids 2>/dev/null || true
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

gateway_sysctls() {
    local ns=$1
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.default.rp_filter=0
    if [ "$IPV6" = 1 ]; then
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.forwarding=1
    fi
}

# A fresh namespace with lo up; with IPv6, DAD off before any interface appears in it (interfaces
# copy `default` when they are created, `all` covers the ones that already exist).
new_ns() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    if [ "$IPV6" = 1 ]; then
        ip netns exec "$1" sysctl -qw net.ipv6.conf.default.accept_dad=0
        ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0
    fi
}

# IPv6 address $3 on device $2 in namespace $1, only with IRONSEC_IPV6=1; never tentative.
addr6() {
    [ "$IPV6" = 1 ] || return 0
    ip -n "$1" -6 addr add "$3" dev "$2" nodad
}

# Default IPv6 route of LAN host namespace $1 via its gateway $2, only with IRONSEC_IPV6=1.
route6() {
    [ "$IPV6" = 1 ] || return 0
    ip -n "$1" -6 route add default via "$2"
}

# Two sites: the gateways joined by one veth pair, both ends named `wan`.
up_pair() {
    local ns
    for ns in "$LANA" "$GWA" "$GWB" "$LANB"; do
        new_ns "$ns"
    done
    # Interface names are per-namespace, so short fixed names are safe.
    ip link add a-lan netns "$LANA" type veth peer name lan netns "$GWA"
    ip link add wan netns "$GWA" type veth peer name wan netns "$GWB"
    ip link add lan netns "$GWB" type veth peer name b-lan netns "$LANB"

    ip -n "$LANA" addr add 10.1.0.2/24 dev a-lan
    ip -n "$LANA" link set a-lan up
    ip -n "$LANA" route add default via 10.1.0.1
    addr6 "$LANA" a-lan 2001:db8:1::2/64
    route6 "$LANA" 2001:db8:1::1

    ip -n "$GWA" addr add 10.1.0.1/24 dev lan
    ip -n "$GWA" addr add 192.0.2.1/24 dev wan
    ip -n "$GWA" link set lan up
    ip -n "$GWA" link set wan mtu "$WAN_MTU" up
    addr6 "$GWA" lan 2001:db8:1::1/64
    addr6 "$GWA" wan 2001:db8:f::1/64

    ip -n "$GWB" addr add 10.2.0.1/24 dev lan
    ip -n "$GWB" addr add 192.0.2.2/24 dev wan
    ip -n "$GWB" link set lan up
    ip -n "$GWB" link set wan mtu "$WAN_MTU" up
    addr6 "$GWB" lan 2001:db8:2::1/64
    addr6 "$GWB" wan 2001:db8:f::2/64

    ip -n "$LANB" addr add 10.2.0.2/24 dev b-lan
    ip -n "$LANB" link set b-lan up
    ip -n "$LANB" route add default via 10.2.0.1
    addr6 "$LANB" b-lan 2001:db8:2::2/64
    route6 "$LANB" 2001:db8:2::1

    # A second WAN link (IRONSEC_WAN_LINKS=2): redundant tunnels over two uplinks.
    if [ "$WAN_LINKS" = 2 ]; then
        ip link add wan2 netns "$GWA" type veth peer name wan2 netns "$GWB"
        ip -n "$GWA" addr add 198.51.100.1/24 dev wan2
        ip -n "$GWB" addr add 198.51.100.2/24 dev wan2
        ip -n "$GWA" link set wan2 mtu "$WAN_MTU" up
        ip -n "$GWB" link set wan2 mtu "$WAN_MTU" up
        addr6 "$GWA" wan2 2001:db8:e::1/64
        addr6 "$GWB" wan2 2001:db8:e::2/64
    fi

    for ns in "$GWA" "$GWB"; do
        gateway_sysctls "$ns"
    done
}

# Three or four sites: every gateway's `wan` is a port of bridge br0 in namespace $WAN.
up_bridge() {
    new_ns "$WAN"
    ip -n "$WAN" link add br0 type bridge stp_state 0
    ip -n "$WAN" link set br0 up

    local i n X x gw lan
    for ((i = 0; i < SITES; i++)); do
        n=$((i + 1)) X=${LETTERS[i]}
        x=${X,,}
        gw="$P-gw$X" lan="$P-lan$X"
        new_ns "$gw"
        new_ns "$lan"

        ip link add "$x-lan" netns "$lan" type veth peer name lan netns "$gw"
        ip link add wan netns "$gw" type veth peer name "gw$X" netns "$WAN"
        ip -n "$WAN" link set "gw$X" mtu "$WAN_MTU" master br0 up

        ip -n "$lan" addr add "10.$n.0.2/24" dev "$x-lan"
        ip -n "$lan" link set "$x-lan" up
        ip -n "$lan" route add default via "10.$n.0.1"
        addr6 "$lan" "$x-lan" "2001:db8:$n::2/64"
        route6 "$lan" "2001:db8:$n::1"

        ip -n "$gw" addr add "10.$n.0.1/24" dev lan
        ip -n "$gw" addr add "192.0.2.$n/24" dev wan
        ip -n "$gw" link set lan up
        ip -n "$gw" link set wan mtu "$WAN_MTU" up
        addr6 "$gw" lan "2001:db8:$n::1/64"
        addr6 "$gw" wan "2001:db8:f::$n/64"

        gateway_sysctls "$gw"
    done
}

up() {
    [ "$(id -u)" = 0 ] || die "must run as root (network namespaces)"
    command -v ip >/dev/null || die "iproute2 (ip) not installed"
    check_sites
    down
    trap 'down' ERR
    if [ "$SITES" = 2 ]; then
        up_pair
    else
        up_bridge
    fi
    trap - ERR
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    names) names ;;
    *) echo "usage: $0 up|down|names  (env IRONSEC_NS_PREFIX=$P IRONSEC_SITES=$SITES, 2..4; IRONSEC_IPV6=0|1)" >&2; exit 2 ;;
esac
