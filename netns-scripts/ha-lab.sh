#!/usr/bin/env bash
# Labs for gateway redundancy across hosts (ironsec issue 25). Every piece is a network
# namespace named "PREFIX-<role>", so several copies can run side by side (the tests run their
# own, with --net-only, and start the daemons themselves).
#
# KIND aa: an active-active gateway pair with BGP/ECMP and BFD (tests/ha_active_active.rs).
#
#   PREFIX-lh 10.1.0.2 -- lan 10.1.0.1 PREFIX-rtr (LAN router: BIRD only, ASN 65001)
#                          gwa 10.1.1.1/30 -- lan 10.1.1.2 PREFIX-gwa (ironsecd + BIRD, ASN 65515) wan 192.0.2.10/28 --.
#                          gwb 10.1.2.1/30 -- lan 10.1.2.2 PREFIX-gwb (ironsecd + BIRD, ASN 65515) wan 192.0.2.20/28 --+-- PREFIX-wan
#   PREFIX-rh 10.2.0.2 -- lan 10.2.0.1 PREFIX-rem (ironsecd + BIRD, ASN 65050)           wan 203.0.113.10/24 --'   (router: 192.0.2.1,
#                                                                                                     192.0.2.17, 203.0.113.1;
#                                                                                                     ports gwa, gwb, rem)
#   tunnels (ironsecd creates the interfaces and their APIPA addresses):
#     gwa vti-rem 169.254.21.1/30 <-> 169.254.21.2/30 vti-gwa rem
#     gwb vti-rem 169.254.21.5/30 <-> 169.254.21.6/30 vti-gwb rem
#
#   The LAN router and the remote each have an ECMP route for the other site's LAN over both
#   gateways (BIRD `merge paths on`). Every namespace has rp_filter 0 (replies may come back
#   through the other gateway), fib_multipath_hash_policy 0 (L3: one flow between two hosts
#   takes one gateway, whatever its protocol) and a fixed fib_multipath_hash_seed, so which
#   gateway carries a flow is the same in every run of the lab. Each gateway has a default route
#   out of its WAN: traffic that escaped the tunnel would leave in clear, so fail-closed
#   (ironsecd's guard routes) is really tested.
#
#   Configs: the shipped examples conf/ha/aa-gw-a.toml, aa-gw-b.toml, aa-remote.toml and
#   conf/bird/ha-aa-{gw-a,gw-b,lan-router,remote}.conf (with ha-aa-gateway.inc and the gateways'
#   -drain files), with only their paths rewritten (control socket, PSK files, BIRD's log).
#
# Usage (as root):
#   netns-scripts/ha-lab.sh up PREFIX aa [--net-only]
#       builds the namespaces, writes fresh PSKs and the configs into the state directory,
#       starts ironsecd (gwa, gwb, rem) and BIRD (rtr, gwa, gwb, rem) and waits (up to 30 s)
#       for every BGP session to be established and its BFD session up; then returns, leaving
#       everything running.
#       --net-only builds the namespaces and links only (tests start their own daemons).
#   netns-scripts/ha-lab.sh status PREFIX aa
#       BGP and BFD sessions of every BIRD, the ECMP routes, the tunnels (ironsecctl status)
#       and the tunnel interfaces' packet counters.
#   netns-scripts/ha-lab.sh kill PREFIX aa gwa|gwb [all|ironsecd|bird]
#       SIGKILL (by PID) the gateway's ironsecd and BIRD ("host dead", the default), or one of
#       them; its links stay up.
#   netns-scripts/ha-lab.sh cut PREFIX aa gwa|gwb
#   netns-scripts/ha-lab.sh heal PREFIX aa gwa|gwb
#       drop (or stop dropping) all WAN traffic of that gateway in the WAN router (nftables).
#   netns-scripts/ha-lab.sh down PREFIX [aa]
#       stops every daemon it started (by PID), removes the namespaces (and with them the
#       tunnel interfaces) and the state directory. Never fails; safe to run twice.
#
# Then, e.g.:  ip netns exec PREFIX-lh ping 10.2.0.2
#              ip -n PREFIX-rtr route show 10.2.0.0/24      (two nexthops: gwa and gwb)
#              birdc -s STATE/rtr.bird.sock show protocols
#
# State directory: ${TMPDIR:-/tmp}/ironsec-ha-PREFIX (configs, PSKs, logs, sockets, PIDs).
# Environment: IRONSECD (the daemon; default: target/release/ironsecd, built with cargo if
# missing, or $IRONSEC_BIN_DIR/ironsecd), IRONSECCTL (default: ironsecctl next to it),
# IRONSEC_LOG (daemons' log level, default info). PREFIX: 1-24 of [A-Za-z0-9_-].
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=ha-lab.sh
# shellcheck source=netns-scripts/bird-lib.sh
. "$HERE/bird-lib.sh"
KIND=${3:-}

# A new namespace of ours: recorded in the state directory first (so `down` finds it whatever
# the kind), then created with lo up and the lab's sysctls, set before any interface exists so
# that every interface inherits them (an interface's own rp_filter counts beside "all").
new_ns() { # role
    local ns
    ns=$(ns_of "$1")
    echo "$ns" >>"$STATE/namespaces"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# A veth from $1:$2 to $3:$4, created inside namespace $1 with its peer moved straight into $3:
# nothing ever appears in the root namespace.
veth() { # ns1 if1 ns2 if2
    ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}

# ---------------------------------------------------------------------------------------------
# down (bird-lib.sh's): everything of PREFIX, whatever state it is in.

# Every namespace this prefix may have: the ones recorded, and every kind's roles (in case the
# state directory is gone).
all_ns() {
    local r
    if [ -f "$STATE/namespaces" ]; then cat "$STATE/namespaces"; fi
    for r in "${AA_ROLES[@]}"; do ns_of "$r"; done
}

# ---------------------------------------------------------------------------------------------
# KIND aa: the active-active pair

AA_ROLES=(wan rtr gwa gwb rem lh rh)
AA_GWS=(gwa gwb)                      # the pair
AA_IRONSEC=(gwa gwb rem)              # namespaces running ironsecd
AA_BIRDS=(rtr gwa gwb rem)            # namespaces running BIRD
declare -A AA_TOML=([gwa]=aa-gw-a.toml [gwb]=aa-gw-b.toml [rem]=aa-remote.toml)
declare -A AA_BIRDCONF=([rtr]=ha-aa-lan-router.conf [gwa]=ha-aa-gw-a.conf [gwb]=ha-aa-gw-b.conf
    [rem]=ha-aa-remote.conf)
declare -A AA_WANIP=([gwa]=192.0.2.10 [gwb]=192.0.2.20 [rem]=203.0.113.10)
declare -A AA_WANLEN=([gwa]=28 [gwb]=28 [rem]=24)
declare -A AA_ROUTERIP=([gwa]=192.0.2.1 [gwb]=192.0.2.17 [rem]=203.0.113.1)
declare -A AA_LINKNO=([gwa]=1 [gwb]=2)
AA_PSKS=(aa-gw-a aa-gw-b)
# BGP sessions per BIRD (protocol names in the configs).
declare -A AA_SESSIONS=([rtr]="gw_a gw_b" [gwa]="lan_router remote_site" [gwb]="lan_router remote_site"
    [rem]="gw_a gw_b")
# Files ha-aa-gw-*.conf include, copied beside them.
AA_BIRD_INCLUDES=(ha-aa-gateway.inc)

aa_make_namespaces() {
    local r ns wan rtr g
    for r in "${AA_ROLES[@]}"; do new_ns "$r"; done
    for r in wan rtr gwa gwb rem; do
        ip netns exec "$(ns_of "$r")" sysctl -qw net.ipv4.ip_forward=1
        # L3 hash (the default, spelt out) with a fixed seed: a flow between two hosts takes
        # the same gateway in every run.
        ip netns exec "$(ns_of "$r")" sysctl -qw net.ipv4.fib_multipath_hash_policy=0 \
            net.ipv4.fib_multipath_hash_seed=2025
    done
    wan=$(ns_of wan) rtr=$(ns_of rtr)
    # WAN: the router with one port per site.
    for g in gwa gwb rem; do
        wan_port "$wan" "$g" "$(ns_of "$g")" "${AA_ROUTERIP[$g]}" "${AA_WANIP[$g]}" "${AA_WANLEN[$g]}"
    done
    # The pair's site: LAN host, LAN router, a /30 from the router to each gateway.
    lan_host "$rtr" "$(ns_of lh)" 10.1.0
    for g in "${AA_GWS[@]}"; do
        ns=$(ns_of "$g")
        veth "$rtr" "$g" "$ns" lan
        ip -n "$rtr" addr add "10.1.${AA_LINKNO[$g]}.1/30" dev "$g"
        ip -n "$ns" addr add "10.1.${AA_LINKNO[$g]}.2/30" dev lan
    done
    # The remote site: gateway and LAN host.
    lan_host "$(ns_of rem)" "$(ns_of rh)" 10.2.0
}

aa_write_configs() {
    local p g inc out
    for p in "${AA_PSKS[@]}"; do new_psk "$STATE/$p.psk"; done
    for g in "${AA_IRONSEC[@]}"; do
        # The gateways' [drain] table: this lab's BIRD socket and files, a state file here.
        # Nothing may point outside $STATE: the namespaces share the host's file system.
        derive_ironsecd_config "$g" "conf/ha/${AA_TOML[$g]}" sed \
            -e "s|\"/run/bird/bird.ctl\"|\"$STATE/$g.bird.sock\"|g" \
            -e "s|/etc/bird/ha-aa-gw-[ab]-drain.conf|$STATE/$g-drain.bird.conf|g" \
            -e "s|/etc/bird/ha-aa-gw-[ab].conf|$STATE/$g.bird.conf|g" \
            -e "s|^state_file = \"/run/ironsec/drain\"|state_file = \"$STATE/$g.drain\"|"
        ! grep -q '"/run/\|/etc/bird' "$STATE/$g.toml" ||
            die "could not derive $STATE/$g.toml from conf/ha/${AA_TOML[$g]}: a path outside the lab is left"
    done
    for inc in "${AA_BIRD_INCLUDES[@]}"; do cp "$ROOT/conf/bird/$inc" "$STATE/$inc"; done
    for g in "${AA_BIRDS[@]}"; do
        derive_bird_config "$g" "${AA_BIRDCONF[$g]}"
        case $g in
        gwa | gwb)
            # Its -drain variant, for the [drain] withdraw command (logging to the same file).
            out="$STATE/$g-drain.bird.conf"
            sed "s|^log syslog all;|log \"$STATE/$g.bird.log\" all;|" \
                "$ROOT/conf/bird/${AA_BIRDCONF[$g]%.conf}-drain.conf" >"$out"
            check_bird_config "$out"
            ;;
        esac
    done
}

# What is still pending of BIRD $1 (for bird-lib.sh's wait_birds): each of its BGP sessions
# must be Established and its BFD session Up. BFD comes up after BGP (it starts slow), and a
# BFD session that never was up declares nothing when its peer dies: a fault injected before
# then is noticed only by BGP's hold timer (30 s).
aa_pending() { # role
    local s
    for s in ${AA_SESSIONS[$1]}; do
        bgp_sessions "$1" | grep -q "^$s up Established" || printf ' %s:%s' "$1" "$s"
    done
    # One BFD session per BGP session.
    [ "$(bfd_up "$1" | wc -l)" = "$(wc -w <<<"${AA_SESSIONS[$1]}")" ] || printf ' %s:bfd' "$1"
}

aa_up() {
    local t0=$SECONDS g
    aa_make_namespaces
    if [ "$NET_ONLY" = 1 ]; then return; fi
    aa_write_configs
    start_daemons "${AA_IRONSEC[*]}" "${AA_BIRDS[*]}"
    if ! wait_birds 30 "BGP/BFD sessions not up" aa_pending "${AA_BIRDS[@]}"; then
        for g in "${AA_BIRDS[@]}"; do show_bird_protocols "$g"; done
        for g in "${AA_IRONSEC[@]}"; do show_ironsecd_log "$g"; done
        die "BGP did not come up"
    fi
    msg "$PROG: up in $((SECONDS - t0)) s, every BGP session established and its BFD session up; state in $STATE"
    msg "$PROG: try: ip netns exec $(ns_of lh) ping -c 3 10.2.0.2;  $0 status $PREFIX aa;  $0 down $PREFIX"
}

aa_status() {
    local g ns
    if [ -n "${IRONSECCTL:-}" ]; then CTL=$IRONSECCTL
    elif [ -n "${IRONSECD:-}" ]; then CTL="$(dirname "$IRONSECD")/ironsecctl"
    else bin_dir; CTL="$BIN/ironsecctl"; fi
    for g in rtr gwa gwb rem; do
        ns=$(ns_of "$g")
        say "=== $g ($ns)"
        status_daemons "$g" tunnels
        say "--- the other site's LAN, and guards"
        { ip -n "$ns" route show | grep -E '^10\.[12]\.0\.0/24|nexthop|blackhole' || true; } | indent
        say "--- tunnel interfaces (packets in / out)"
        ip -n "$ns" -o link show 2>/dev/null | awk '{ sub(/:$/, "", $2); sub(/@.*/, "", $2) } $2 ~ /^vti-/ { print $2 }' |
            while read -r dev; do link_counters "$ns" "$dev"; done | indent
    done
}

aa_check_gw() {
    case "$1" in
        gwa | gwb) ;;
        *) die "unknown gateway '$1': gwa or gwb" ;;
    esac
}

# SIGKILL (by PID, no clean shutdown) gateway $1's ironsecd and/or BIRD.
aa_kill() { # gw all|ironsecd|bird
    local g=$1 what=${2:-all} p pid
    aa_check_gw "$g"
    case "$what" in
        all) set -- ironsecd bird ;;
        ironsecd | bird) set -- "$what" ;;
        *) die "kill what? all, ironsecd or bird (not '$what')" ;;
    esac
    for p in "$@"; do
        [ -f "$STATE/$g.$p.pid" ] || die "no $STATE/$g.$p.pid: did 'up' start the daemons?"
        pid=$(cat "$STATE/$g.$p.pid")
        alive "$pid" && [ "$(ip netns identify "$pid" 2>/dev/null)" = "$(ns_of "$g")" ] ||
            die "$p of $g (pid $pid) is not running"
        kill -KILL "$pid"
        msg "$PROG: killed $p of $g (pid $pid)"
    done
}

aa_cut() {
    local g=$1 wan a
    aa_check_gw "$g"
    wan=$(ns_of wan)
    ns_exists "$wan" || die "namespace $wan does not exist: is $PREFIX up?"
    a=${AA_WANIP[$g]}
    ip netns exec "$wan" nft -f - <<EOF
table inet ha_cut {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip saddr $a drop comment "$g"
        ip daddr $a drop comment "$g"
    }
}
EOF
    msg "$PROG: cut $g's WAN ($a) in $wan"
}

aa_heal() {
    local g=$1 wan h
    aa_check_gw "$g"
    wan=$(ns_of wan)
    ns_exists "$wan" || die "namespace $wan does not exist: is $PREFIX up?"
    for h in $(ip netns exec "$wan" nft -a list chain inet ha_cut forward 2>/dev/null |
        awk -v c="\"$g\"" '$0 ~ "comment " c { print $NF }'); do
        ip netns exec "$wan" nft delete rule inet ha_cut forward handle "$h"
    done
    msg "$PROG: healed $g's WAN (${AA_WANIP[$g]})"
}

# ---------------------------------------------------------------------------------------------
# Dispatch


up() {
    begin_up
    "${KIND}_up"
    UP_OK=1
    if [ "$NET_ONLY" = 1 ]; then
        msg "$PROG: namespaces $(tr '\n' ' ' <"$STATE/namespaces")(network only, no daemons); remove them with: $0 down $PREFIX"
    fi
}

need_kind() {
    case "$KIND" in
        aa) ;;
        "") die "$CMD needs a KIND: aa (see --help)" ;;
        *) die "unknown KIND '$KIND': aa (see --help)" ;;
    esac
}

NET_ONLY=0
case "$CMD" in
    -h | --help) usage; exit 0 ;;
    up | down | status | kill | cut | heal) ;;
    *) usage >&2; exit 2 ;;
esac
[ $# -ge 2 ] || die "usage: $PROG $CMD PREFIX KIND ... (see --help)"
check_prefix ha
case "$CMD" in
    down)
        # Never fails: whatever KIND (or none) is given, everything of PREFIX goes.
        need_root
        down || true
        exit 0
        ;;
esac
need_kind
shift 3
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
    status)
        need_root
        [ $# = 0 ] || die "status takes no options"
        [ -d "$STATE" ] || die "no state directory $STATE: is $PREFIX up?"
        "${KIND}_status"
        ;;
    kill)
        need_root
        [ $# -ge 1 ] && [ $# -le 2 ] || die "kill needs a gateway (gwa|gwb) and optionally all|ironsecd|bird"
        "${KIND}_kill" "$@"
        ;;
    cut | heal)
        need_root
        [ $# = 1 ] || die "$CMD needs a gateway: gwa or gwb"
        "${KIND}_$CMD" "$1"
        ;;
esac
