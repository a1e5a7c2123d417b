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
MSG_FD=2
CMD=${1:-}
PREFIX=${2:-}
KIND=${3:-}
case "$CMD" in
    -h | --help) PREFIX=x ;;
esac
# shellcheck source=netns-scripts/lib.sh
. "$HERE/lib.sh"

ns_of() { printf '%s-%s\n' "$PREFIX" "$1"; }
ns_exists() { ip netns list | awk -v n="$1" '$1 == n { f = 1 } END { exit !f }'; }
need_root() { [ "$(id -u)" = 0 ] || die "needs root (network namespaces)"; }

check_prefix() {
    [[ $PREFIX =~ ^[A-Za-z0-9_-]{1,24}$ ]] ||
        die "PREFIX '$PREFIX' must be 1-24 of [A-Za-z0-9_-] (see --help)"
    STATE="${TMPDIR:-/tmp}/ironsec-ha-$PREFIX"
    WORK=$STATE # lib.sh's wait_ready finds the control sockets there
}

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

# Every namespace this prefix may have: the ones recorded, and every kind's roles (in case the
# state directory is gone).
all_ns() {
    local r
    if [ -f "$STATE/namespaces" ]; then cat "$STATE/namespaces"; fi
    for r in "${AA_ROLES[@]}"; do ns_of "$r"; done
}

down() {
    local f role prog ns pid
    if [ -d "$STATE" ]; then
        # PID files are ROLE.PROGRAM.pid (gwa.bird.pid, rem.ironsecd.pid).
        for f in "$STATE"/*.pid; do
            [ -f "$f" ] || continue
            role=$(basename "$f" .pid)
            prog=${role#*.}
            role=${role%%.*}
            stop_ours "$(cat "$f" 2>/dev/null)" "$prog" "$(ns_of "$role")" || true
        done
    fi
    for ns in $(all_ns | sort -u); do
        ns_exists "$ns" || continue
        # Anything still running inside one of our namespaces is ours (a daemon whose PID file
        # was lost, a ping left behind): stop it by PID before the namespace goes.
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do stop_pid "$pid" || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ -d "$STATE" ]; then rm -rf -- "$STATE"; fi
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
        ns=$(ns_of "$g")
        veth "$wan" "$g" "$ns" wan
        ip -n "$wan" addr add "${AA_ROUTERIP[$g]}/${AA_WANLEN[$g]}" dev "$g"
        ip -n "$ns" addr add "${AA_WANIP[$g]}/${AA_WANLEN[$g]}" dev wan
        ip -n "$ns" route add default via "${AA_ROUTERIP[$g]}"
    done
    # The pair's site: LAN host, LAN router, a /30 from the router to each gateway.
    veth "$rtr" lan "$(ns_of lh)" eth0
    ip -n "$rtr" addr add 10.1.0.1/24 dev lan
    ip -n "$(ns_of lh)" addr add 10.1.0.2/24 dev eth0
    ip -n "$(ns_of lh)" route add default via 10.1.0.1
    for g in "${AA_GWS[@]}"; do
        ns=$(ns_of "$g")
        veth "$rtr" "$g" "$ns" lan
        ip -n "$rtr" addr add "10.1.${AA_LINKNO[$g]}.1/30" dev "$g"
        ip -n "$ns" addr add "10.1.${AA_LINKNO[$g]}.2/30" dev lan
    done
    # The remote site: gateway and LAN host.
    veth "$(ns_of rem)" lan "$(ns_of rh)" eth0
    ip -n "$(ns_of rem)" addr add 10.2.0.1/24 dev lan
    ip -n "$(ns_of rh)" addr add 10.2.0.2/24 dev eth0
    ip -n "$(ns_of rh)" route add default via 10.2.0.1
}

aa_write_configs() {
    local p g out inc
    for p in "${AA_PSKS[@]}"; do
        (umask 077; printf '0x%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/$p.psk")
    done
    for g in "${AA_IRONSEC[@]}"; do
        out="$STATE/$g.toml"
        # The gateways' [drain] table: this lab's BIRD socket and files, a state file here.
        # Nothing may point outside $STATE: the namespaces share the host's file system.
        sed -e "s|^control_socket = \"[^\"]*\"|control_socket = \"$STATE/$g.sock\"|" \
            -e "s|^psk_file = \"psk/\\([^\"]*\\)\"|psk_file = \"$STATE/\\1\"|" \
            -e "s|\"/run/bird/bird.ctl\"|\"$STATE/$g.bird.sock\"|g" \
            -e "s|/etc/bird/ha-aa-gw-[ab]-drain.conf|$STATE/$g-drain.bird.conf|g" \
            -e "s|/etc/bird/ha-aa-gw-[ab].conf|$STATE/$g.bird.conf|g" \
            -e "s|^state_file = \"/run/ironsec/drain\"|state_file = \"$STATE/$g.drain\"|" \
            "$ROOT/conf/ha/${AA_TOML[$g]}" >"$out"
        grep -q "^control_socket = \"$STATE/$g.sock\"" "$out" && ! grep -q '^psk_file = "psk/' "$out" &&
            ! grep -q '"/run/\|/etc/bird' "$out" ||
            die "could not derive $out from conf/ha/${AA_TOML[$g]} (did the example's layout change?)"
        ip netns exec "$(ns_of "$g")" "$D" check --config "$out" >"$STATE/$g.check" 2>&1 ||
            { indent <"$STATE/$g.check" >&2; die "ironsecd check --config $out failed"; }
    done
    for inc in "${AA_BIRD_INCLUDES[@]}"; do cp "$ROOT/conf/bird/$inc" "$STATE/$inc"; done
    for g in "${AA_BIRDS[@]}"; do
        out="$STATE/$g.bird.conf"
        sed "s|^log syslog all;|log \"$STATE/$g.bird.log\" all;|" \
            "$ROOT/conf/bird/${AA_BIRDCONF[$g]}" >"$out"
        grep -q "^log \"$STATE/$g.bird.log\" all;" "$out" ||
            die "could not derive $out from conf/bird/${AA_BIRDCONF[$g]} (no 'log syslog all;' line?)"
        bird -p -c "$out" || die "bird -p -c $out: the config does not parse"
        case $g in
        gwa | gwb)
            # Its -drain variant, for the [drain] withdraw command.
            out="$STATE/$g-drain.bird.conf"
            sed "s|^log syslog all;|log \"$STATE/$g.bird.log\" all;|" \
                "$ROOT/conf/bird/${AA_BIRDCONF[$g]%.conf}-drain.conf" >"$out"
            bird -p -c "$out" || die "bird -p -c $out: the config does not parse"
            ;;
        esac
    done
}

aa_start_daemons() {
    local g ns
    for g in "${AA_IRONSEC[@]}"; do
        ns=$(ns_of "$g")
        # ip netns exec execs ironsecd in place: $! is the daemon's PID.
        IRONSEC_LOG="${IRONSEC_LOG:-info}" ip netns exec "$ns" "$D" --config "$STATE/$g.toml" \
            </dev/null >"$STATE/$g.ironsecd.log" 2>&1 &
        echo "$!" >"$STATE/$g.ironsecd.pid"
    done
    for g in "${AA_IRONSEC[@]}"; do
        wait_ready "$g" "$(cat "$STATE/$g.ironsecd.pid")" ||
            { indent <"$STATE/$g.ironsecd.log" >&2; die "ironsecd in $(ns_of "$g"): $NOT_READY"; }
    done
    for g in "${AA_BIRDS[@]}"; do
        ns=$(ns_of "$g")
        # BIRD forks into the background and writes its PID file; TZ=UTC: log times in UTC.
        ip netns exec "$ns" env TZ=UTC bird -c "$STATE/$g.bird.conf" -s "$STATE/$g.bird.sock" \
            -P "$STATE/$g.bird.pid" </dev/null >"$STATE/$g.bird.out" 2>&1 ||
            { indent <"$STATE/$g.bird.out" >&2; die "bird did not start in $ns"; }
    done
}

# BGP sessions of BIRD $1 as "name state info" lines.
bgp_sessions() {
    # Columns: name proto table state since info; since is "DATE TIME" in the configs' format.
    birdc -s "$STATE/$1.bird.sock" show protocols 2>/dev/null |
        awk '$2 == "BGP" { i = ($5 ~ /^[0-9][0-9][0-9][0-9]-/) ? 7 : 6; print $1, $4, $i }'
}

# BFD sessions of BIRD $1 that are Up, one address a line.
bfd_up() {
    birdc -s "$STATE/$1.bird.sock" show bfd sessions 2>/dev/null | awk '$3 == "Up" { print $1 }'
}

# Wait up to $1 seconds for every BGP session of every BIRD to be Established and its BFD
# session Up. BFD comes up after BGP (it starts slow), and a BFD session that never was up
# declares nothing when its peer dies: a fault injected before then is noticed only by BGP's
# hold timer (30 s).
aa_wait_bgp() {
    local deadline=$((SECONDS + $1)) g s pending
    while :; do
        pending=""
        for g in "${AA_BIRDS[@]}"; do
            for s in ${AA_SESSIONS[$g]}; do
                bgp_sessions "$g" | grep -q "^$s up Established" || pending+=" $g:$s"
            done
            # One BFD session per BGP session.
            [ "$(bfd_up "$g" | wc -l)" = "$(wc -w <<<"${AA_SESSIONS[$g]}")" ] || pending+=" $g:bfd"
        done
        [ -z "$pending" ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$PROG: BGP/BFD sessions not up after $1 s:$pending"
            return 1
        fi
        sleep 0.2
    done
}

aa_up() {
    local t0=$SECONDS g
    aa_make_namespaces
    if [ "$NET_ONLY" = 1 ]; then return; fi
    aa_write_configs
    aa_start_daemons
    if ! aa_wait_bgp 30; then
        for g in "${AA_BIRDS[@]}"; do
            log "--- $g: BIRD"; birdc -s "$STATE/$g.bird.sock" show protocols 2>&1 | indent >&2
        done
        for g in "${AA_IRONSEC[@]}"; do
            log "--- $g: ironsecd log"; tail -n 20 "$STATE/$g.ironsecd.log" | indent >&2
        done
        die "BGP did not come up"
    fi
    msg "$PROG: up in $((SECONDS - t0)) s, every BGP session established and its BFD session up; state in $STATE"
    msg "$PROG: try: ip netns exec $(ns_of lh) ping -c 3 10.2.0.2;  $0 status $PREFIX aa;  $0 down $PREFIX"
}

aa_status() {
    local g ns sock
    if [ -n "${IRONSECCTL:-}" ]; then CTL=$IRONSECCTL
    elif [ -n "${IRONSECD:-}" ]; then CTL="$(dirname "$IRONSECD")/ironsecctl"
    else bin_dir; CTL="$BIN/ironsecctl"; fi
    for g in rtr gwa gwb rem; do
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
        say "--- the other site's LAN, and guards"
        { ip -n "$ns" route show | grep -E '^10\.[12]\.0\.0/24|nexthop|blackhole' || true; } | indent
        say "--- tunnel interfaces (packets in / out)"
        ip -n "$ns" -o link show 2>/dev/null | awk '{ sub(/:$/, "", $2); sub(/@.*/, "", $2) } $2 ~ /^vti-/ { print $2 }' |
            while read -r dev; do
                ip -n "$ns" -s link show "$dev" |
                    awk -v d="$dev" '/RX:/ { getline; rx = $2 } /TX:/ { getline; tx = $2 } END { printf "%s rx %s tx %s\n", d, rx, tx }'
            done | indent
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

up() {
    need_root
    command -v ip >/dev/null || die "iproute2 (ip) not installed"
    [ "$NET_ONLY" = 1 ] || binaries
    down
    UP_OK=0
    install_cleanup_traps
    mkdir -m 700 -p "$STATE"
    "${KIND}_up"
    UP_OK=1
    if [ "$NET_ONLY" = 1 ]; then
        msg "$PROG: namespaces $(tr '\n' ' ' <"$STATE/namespaces")(network only, no daemons); remove them with: $0 down $PREFIX"
    fi
}

# A failed `up` removes everything it built; a successful one leaves it running.
on_exit() {
    if [ "${UP_OK:-1}" = 0 ]; then
        log "$PROG: up failed; removing what it built"
        down
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
check_prefix
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
