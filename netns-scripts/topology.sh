#!/usr/bin/env bash
# Test topology: lanA -- gwA ==WAN== gwB -- lanB, each in its own network namespace.
#
#   lanA  10.1.0.2/24 ----- 10.1.0.1/24  gwA  192.0.2.1/24 ===== 192.0.2.2/24  gwB  10.2.0.1/24 ----- 10.2.0.2/24  lanB
#
# Namespaces are named "$IRONSEC_NS_PREFIX-<role>" (prefix default "isec") so tests can run
# their own copy beside the demo. `up` is idempotent-ish (it tears down a leftover copy first);
# `down` removes everything the prefix owns and never fails.
#
# Usage: topology.sh up|down|names   (env IRONSEC_NS_PREFIX, IRONSEC_WAN_MTU)
set -euo pipefail

P="${IRONSEC_NS_PREFIX:-isec}"
LANA="$P-lanA" GWA="$P-gwA" GWB="$P-gwB" LANB="$P-lanB"
WAN_MTU="${IRONSEC_WAN_MTU:-1500}"

die() { echo "topology.sh: $*" >&2; exit 1; }

down() {
    local ns
    for ns in "$LANA" "$GWA" "$GWB" "$LANB"; do
        if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
            # Kill anything still running inside (only processes in our namespaces).
            local pids
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            [ -n "$pids" ] && kill $pids 2>/dev/null || true
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

up() {
    [ "$(id -u)" = 0 ] || die "must run as root (network namespaces)"
    command -v ip >/dev/null || die "iproute2 (ip) not installed"
    down
    trap 'down' ERR
    local ns
    for ns in "$LANA" "$GWA" "$GWB" "$LANB"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    # Interface names are per-namespace, so short fixed names are safe.
    ip link add a-lan netns "$LANA" type veth peer name lan netns "$GWA"
    ip link add wan netns "$GWA" type veth peer name wan netns "$GWB"
    ip link add lan netns "$GWB" type veth peer name b-lan netns "$LANB"

    ip -n "$LANA" addr add 10.1.0.2/24 dev a-lan
    ip -n "$LANA" link set a-lan up
    ip -n "$LANA" route add default via 10.1.0.1

    ip -n "$GWA" addr add 10.1.0.1/24 dev lan
    ip -n "$GWA" addr add 192.0.2.1/24 dev wan
    ip -n "$GWA" link set lan up
    ip -n "$GWA" link set wan mtu "$WAN_MTU" up

    ip -n "$GWB" addr add 10.2.0.1/24 dev lan
    ip -n "$GWB" addr add 192.0.2.2/24 dev wan
    ip -n "$GWB" link set lan up
    ip -n "$GWB" link set wan mtu "$WAN_MTU" up

    ip -n "$LANB" addr add 10.2.0.2/24 dev b-lan
    ip -n "$LANB" link set b-lan up
    ip -n "$LANB" route add default via 10.2.0.1

    for ns in "$GWA" "$GWB"; do
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.default.rp_filter=0
    done
    trap - ERR
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    names) echo "$LANA $GWA $GWB $LANB" ;;
    *) echo "usage: $0 up|down|names  (env IRONSEC_NS_PREFIX=$P)" >&2; exit 2 ;;
esac
