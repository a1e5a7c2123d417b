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
#       sessions to be established; then returns, leaving everything running. --net-only builds
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
MSG_FD=2
CMD=${1:-}
PREFIX=${2:-}
case "$CMD" in
    -h | --help) PREFIX=x ;;
esac
# shellcheck source=netns-scripts/lib.sh
. "$HERE/lib.sh"

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

ns_of() { printf '%s-%s\n' "$PREFIX" "$1"; }
all_ns() {
    local r
    for r in wan plink "${GWS[@]}" lha lhb; do ns_of "$r"; done
}
ns_exists() { ip netns list | awk -v n="$1" '$1 == n { f = 1 } END { exit !f }'; }

check_prefix() {
    [[ $PREFIX =~ ^[A-Za-z0-9_-]{1,24}$ ]] ||
        die "PREFIX '$PREFIX' must be 1-24 of [A-Za-z0-9_-] (see --help)"
    STATE="${TMPDIR:-/tmp}/ironsec-plink-$PREFIX"
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
    return 0
}

# ---------------------------------------------------------------------------------------------
# up

make_namespaces() {
    local r ns g lan n wan plink
    for r in wan plink "${GWS[@]}" lha lhb; do
        ns=$(ns_of "$r")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
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
        # Each veth is created inside a namespace of ours with its peer moved straight into the
        # other: nothing ever appears in the root namespace.
        ip -n "$wan" link add "$g" type veth peer name wan netns "$ns"
        ip -n "$wan" addr add "${ROUTERIP[$g]}/24" dev "$g"
        ip -n "$wan" link set "$g" up
        ip -n "$ns" addr add "${WANIP[$g]}/24" dev wan
        ip -n "$ns" link set wan up
        ip -n "$ns" route add default via "${ROUTERIP[$g]}"

        ip -n "$plink" link add "$g" type veth peer name pl netns "$ns"
        ip -n "$plink" link set "$g" master br0
        ip -n "$plink" link set "$g" up
        ip -n "$ns" addr add "${PLIP[$g]}/30" dev pl
        ip -n "$ns" link set pl up

        ip -n "$ns" link add lan type veth peer name eth0 netns "$lan"
        ip -n "$ns" addr add "10.$n.0.1/24" dev lan
        ip -n "$ns" link set lan up
        ip -n "$lan" addr add "10.$n.0.2/24" dev eth0
        ip -n "$lan" link set eth0 up
        ip -n "$lan" route add default via "10.$n.0.1"

        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
        # While the two sites switch paths one after the other, a request may come in over one
        # path and its reply leave over the other: no reverse-path filter.
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

write_configs() {
    local g out
    (umask 077; printf '0x%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/$PSK_NAME")
    for g in "${GWS[@]}"; do
        out="$STATE/$g.toml"
        sed -e "s|^control_socket = \"[^\"]*\"|control_socket = \"$STATE/$g.sock\"|" \
            -e "s|^psk_file = \"psk/$PSK_NAME\"|psk_file = \"$STATE/$PSK_NAME\"|" \
            "$ROOT/conf/${TOML[$g]}" >"$out"
        grep -q "^control_socket = \"$STATE/$g.sock\"" "$out" && ! grep -q '^psk_file = "psk/' "$out" ||
            die "could not derive $out from conf/${TOML[$g]} (did the example's layout change?)"
        ip netns exec "$(ns_of "$g")" "$D" check --config "$out" >"$STATE/$g.check" 2>&1 ||
            { indent <"$STATE/$g.check" >&2; die "ironsecd check --config $out failed"; }

        out="$STATE/$g.bird.conf"
        sed "s|^log syslog all;|log \"$STATE/$g.bird.log\" all;|" \
            "$ROOT/conf/bird/${BIRDCONF[$g]}" >"$out"
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

# Wait up to $1 seconds for every BGP session of both gateways to be Established.
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
    local t0=$SECONDS g
    need_root
    command -v ip >/dev/null || die "iproute2 (ip) not installed"
    command -v nft >/dev/null || die "nftables (nft) not installed (cut/heal need it)"
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
    msg "$PROG: up in $((SECONDS - t0)) s, all four BGP sessions established; state in $STATE"
    msg "$PROG: try: ip netns exec $(ns_of lha) ping -c 3 10.2.0.2;  $0 cut $PREFIX;  $0 status $PREFIX;  $0 down $PREFIX"
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
    local g ns sock other dev
    [ -d "$STATE" ] || die "no state directory $STATE: is $PREFIX up?"
    [ -n "${IRONSECCTL:-}" ] && CTL=$IRONSECCTL || { bin_dir; CTL="$BIN/ironsecctl"; }
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g")
        if [ "$g" = gwa ]; then other=10.2.0.2; else other=10.1.0.2; fi
        say "=== $g ($ns)"
        sock="$STATE/$g.sock"
        if [ -S "$sock" ] && [ -x "$CTL" ]; then
            say "--- tunnel (ironsecctl status)"
            "$CTL" --socket "$sock" status 2>&1 | indent || true
        fi
        if [ -S "$STATE/$g.bird.sock" ]; then
            say "--- BGP sessions"
            bgp_sessions "$g" | indent
            say "--- BFD sessions"
            birdc -s "$STATE/$g.bird.sock" show bfd sessions 2>&1 | sed 1d | indent
        fi
        say "--- path to $other, routes from BIRD, and guards"
        { ip -n "$ns" route get "$other" 2>&1 | head -n 1 || true; } | indent
        { ip -n "$ns" route show | grep -E 'proto bird|blackhole' || true; } | indent
        say "--- path interfaces (packets in / out)"
        for dev in $(ip -n "$ns" -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep -E '^(pl|vti-.*)$'); do
            ip -n "$ns" -s link show "$dev" |
                awk -v d="$dev" '/RX:/ { getline; rx = $2 } /TX:/ { getline; tx = $2 } END { printf "%s rx %s tx %s\n", d, rx, tx }'
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
check_prefix
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
