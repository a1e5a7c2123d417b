#!/usr/bin/env bash
# Scale-out (ironsec issue 25): three hub gateways behind one LAN router, each owning a share of
# the spoke sites by configuration, and a share moved from one gateway to another by config
# reloads, make before break. Every piece is a network namespace named "PREFIX-<role>", so
# several copies can run side by side (tests/ha_scale_script.rs runs its own, small).
#
#   PREFIX-lh (LAN host; hub site i's 10.64.x.y.1 on lo)
#      | 10.0.0.2/24
#      | 10.0.0.1/24
#   PREFIX-rtr (LAN router: BIRD AS 65001, eBGP to each gateway, ECMP `merge paths`)
#      | gw1 10.255.1.1/30    | gw2 10.255.2.1/30    | gw3 10.255.3.1/30
#      | lan 10.255.1.2/30    | lan 10.255.2.2/30    | lan 10.255.3.2/30
#   PREFIX-gw1               PREFIX-gw2              PREFIX-gw3   (ironsecd + BIRD AS 65515 each)
#      | wan 192.0.2.11/24    | wan 192.0.2.12/24    | wan 192.0.2.13/24
#   PREFIX-wan (WAN router: bridge br0 192.0.2.1/24 with ports gw1, gw2, gw3; spk 198.51.100.1/24)
#      | wan 198.51.100.2/24
#   PREFIX-spk (one ironsecd playing all N spokes; lan 10.1.0.1/24)
#      | 10.1.0.2/24
#   PREFIX-ls (spoke LAN host; spoke site i's 10.128.x.y.1 on lo)
#
# Site i (1..N): hub side 10.64.0.0/10's i-th /24, spoke side 10.128.0.0/10's i-th /24 (as in
# route-scale.sh). The spoke has one route-based connection s<i> per site: `interface =
# "vti<i>"`, `routes = [hub site i]`, three tunnels (one to each gateway), `mode =
# "active-standby"` with equal priorities and `start_action = "none"`: spokes only answer.
# Gateway gwK has a connection s<i> for each spoke i of its share: `interface = "vti<i>"`,
# `routes = [spoke site i]`, one tunnel to the spoke, `start_action = "start"`; its
# `[gateway] protect = ["10.128.0.0/10"]` guards every spoke site, owned or not. The hub
# side's identity is per site (s<i>.hub.example, the same on all three gateways: the spoke, a
# responder, picks the connection by it), the spoke's s<i>.spoke.example, the PSK per site and
# the same on every gateway. All configs come from one generator (gw_config, gw_bird_config,
# spoke_config); a share is a list of spoke numbers kept in the state directory.
#
# BGP: each gateway's BIRD learns ironsecd's static routes from the kernel (`protocol kernel {
# learn; ... import filter from_ironsec }`: routes the kernel reports with protocol 3, "boot",
# through a vti* device, which is how ironsecd installs them) and announces them to the LAN
# router, those of the sites in its OWNED set (its share); the guard blackholes (protocol 147)
# are never announced. The routes exist whether or not a tunnel is up (fail-closed routes), so
# which gateway carries a site is decided by the configs alone. Each gateway has a default
# route to the WAN router, as an Internet uplink would: a packet for a spoke site that left in
# clear would cross the WAN router's ports, where tests count it (tests/common/judge.rs,
# `install_on` PREFIX-wan gw1 gw2 gw3).
#
# Moving a share (move): make before break, for the tunnels and for the routes.
#   1. the receiving gateway's config gets the moved sites and is reloaded: it installs their
#      devices and routes (guarded, not announced yet) and brings up a tunnel to each moved
#      spoke, whose connection now has two tunnels up and keeps sending on the old one; wait
#      until every moved connection is up there;
#   2. its BIRD announces them (`birdc configure` with the sites added to its OWNED set; only
#      the kernel channel's filter changes, the BGP session stays): wait until the LAN router
#      has a nexthop via each of both gateways for every moved site (ECMP: both work, since a
#      spoke accepts inbound on every tunnel). Announcing only once the tunnels are up matters:
#      a route announced at the reload draws traffic into tunnels still negotiating, and with
#      100 sites at once that lost up to 0.2 s of pings per site here;
#   3. the giving gateway's BIRD withdraws them while their tunnels are still up there: wait
#      until the LAN router uses only the receiving gateway for every moved site, then until
#      the spokes' replies have followed (nothing written into the moved sites' devices on the
#      giving gateway for 1 s: a spoke follows its peer to the other tunnel once its own has
#      been silent for a sixth of failover_after, 0.5 s by default);
#   4. the giving gateway's config loses the moved sites and is reloaded: it sends each spoke a
#      DELETE (the spoke fails over to the other tunnel at once) and removes the devices and
#      routes. Whatever still reaches the giving gateway for a moved site hits the guard
#      10.128.0.0/10 and is dropped, never sent in clear. That guard is the gateway's
#      (`[gateway] protect`), not the connections': a gateway that gives away its whole share
#      keeps it.
#
# Usage (as root):
#   netns-scripts/ha-scale.sh up PREFIX [--spokes N] [--timeout T]
#       builds the namespaces, writes the configs (shares: the spokes split in three ranges,
#       gw1 the first), starts the spoke's ironsecd, the gateways' ironsecd and BIRD, the LAN
#       router's BIRD, and waits (up to T s, default 600) until every gateway has its share's
#       connections up and the LAN router has a route for each spoke site. Prints one JSON line:
#       the timings (`setup_secs`: gateways started -> all up and routed).
#   netns-scripts/ha-scale.sh move PREFIX --sites LIST --from gwA --to gwB [--timeout T]
#       moves the sites LIST (e.g. 1-4 or 1,5,9-12) from gwA to gwB as above and prints one JSON
#       line: when each step finished, seconds from the start of the move.
#   netns-scripts/ha-scale.sh report PREFIX
#       one JSON line: the shares, connections up per gateway, routes on the LAN router, the
#       spoke's active tunnel per site owner, memory (VmRSS of each daemon and BIRD), the up
#       and move timings.
#   netns-scripts/ha-scale.sh down PREFIX
#       stops every daemon it started (by PID), removes the namespaces (and with them the
#       tunnel interfaces) and the state directory. Never fails; safe to run twice.
#
# State directory: ${TMPDIR:-/tmp}/ironsec-hascale-PREFIX. Environment: IRONSECD (default:
# target/release/ironsecd, or $CARGO_TARGET_DIR/release/ironsecd; this script builds nothing),
# IRONSECCTL (default: next to IRONSECD), IRONSEC_LOG (daemons' log level, default info).
# PREFIX: 1-24 of [A-Za-z0-9_-]. Needs bird2 and python3.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=ha-scale.sh
# shellcheck source=netns-scripts/bird-lib.sh
. "$HERE/bird-lib.sh"

GWS=(gw1 gw2 gw3)
SPK_WAN=198.51.100.2
PROTECT=10.128.0.0/10
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

all_ns() {
    local r
    for r in lh rtr "${GWS[@]}" wan spk ls; do ns_of "$r"; done
}
gw_no() { printf '%s\n' "${1#gw}"; }
gw_wan() { printf '192.0.2.1%s\n' "$(gw_no "$1")"; }

# Unlike bird-lib.sh's binaries, builds nothing (a scale run must not start with a build).
binaries() {
    if [ -n "${IRONSECD:-}" ]; then
        D=$IRONSECD
    else
        bin_dir
        D="$BIN/ironsecd"
    fi
    CTL=${IRONSECCTL:-$(dirname "$D")/ironsecctl}
    [ -x "$D" ] || die "$D not found or not executable: cargo build --release -p ironsecd, or set IRONSECD"
    [ -x "$CTL" ] || die "$CTL not found or not executable (set IRONSECCTL)"
    need_bird
    command -v "$PY" >/dev/null || die "needs python3 to read 'ironsecctl status --json'"
}

# Site i's hub-side and spoke-side /24 without the last octet: sets HSITE and SSITE.
site() { # i
    local k=$(($1 - 1))
    HSITE="10.$((64 + k / 256)).$((k % 256))" SSITE="10.$((128 + k / 256)).$((k % 256))"
}

# "1-4,9" -> "1 2 3 4 9", each checked against 1..$2.
expand_list() { # list max
    local part a b i out=()
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
        elif [[ $part =~ ^[0-9]+$ ]]; then
            a=$part b=$part
        else
            die "'$1' is not a list of sites (e.g. 1-4,9)"
        fi
        [ "$a" -ge 1 ] && [ "$b" -le "$2" ] && [ "$a" -le "$b" ] || die "sites '$part' not within 1..$2"
        for ((i = a; i <= b; i++)); do out+=("$i"); done
    done
    printf '%s\n' "${out[*]}"
}

# ---------------------------------------------------------------------------------------------
# Topology (bird-lib.sh's veths: nothing ever appears in the root namespace).

make_namespaces() {
    local r ns g k lh rtr wan spk ls i
    add_namespaces lh rtr "${GWS[@]}" wan spk ls
    lh=$(ns_of lh) rtr=$(ns_of rtr) wan=$(ns_of wan) spk=$(ns_of spk) ls=$(ns_of ls)
    lan_host "$rtr" "$lh" 10.0.0
    ip -n "$rtr" route add 10.64.0.0/10 via 10.0.0.2
    ip netns exec "$rtr" sysctl -qw net.ipv4.ip_forward=1
    # Spread flows over the gateways by addresses and ports (the default hashes addresses only).
    ip netns exec "$rtr" sysctl -qw net.ipv4.fib_multipath_hash_policy=1
    ip netns exec "$wan" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$wan" link add br0 type bridge
    ip -n "$wan" addr add 192.0.2.1/24 dev br0
    ip -n "$wan" link set br0 up
    for g in "${GWS[@]}"; do
        ns=$(ns_of "$g") k=$(gw_no "$g")
        ip -n "$rtr" link add "$g" type veth peer name lan netns "$ns"
        ip -n "$rtr" addr add "10.255.$k.1/30" dev "$g"
        ip -n "$rtr" link set "$g" up
        ip -n "$ns" addr add "10.255.$k.2/30" dev lan
        ip -n "$ns" link set lan up
        ip -n "$ns" route add 10.64.0.0/10 via "10.255.$k.1"
        ip -n "$wan" link add "$g" type veth peer name wan netns "$ns"
        ip -n "$wan" link set "$g" master br0
        ip -n "$wan" link set "$g" up
        ip -n "$ns" addr add "$(gw_wan "$g")/24" dev wan
        ip -n "$ns" link set wan up
        ip -n "$ns" route add default via 192.0.2.1
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
    done
    # While a site moves, a request may go out through one gateway and its reply come back
    # through another: no reverse-path filter on the router and the gateways.
    for r in rtr "${GWS[@]}"; do
        ip netns exec "$(ns_of "$r")" sysctl -qw net.ipv4.conf.all.rp_filter=0
        ip netns exec "$(ns_of "$r")" sysctl -qw net.ipv4.conf.default.rp_filter=0
    done
    wan_port "$wan" spk "$spk" 198.51.100.1 "$SPK_WAN" 24
    lan_host "$spk" "$ls" 10.1.0
    ip -n "$spk" route add 10.128.0.0/10 via 10.1.0.2
    ip netns exec "$spk" sysctl -qw net.ipv4.ip_forward=1
    # Every site's .1 on the LAN hosts, for pings and TCP from and to any site.
    {
        for ((i = 1; i <= SPOKES; i++)); do
            site "$i"
            printf 'addr add %s.1/32 dev lo\n' "$HSITE"
        done
    } | ip -n "$lh" -batch -
    {
        for ((i = 1; i <= SPOKES; i++)); do
            site "$i"
            printf 'addr add %s.1/32 dev lo\n' "$SSITE"
        done
    } | ip -n "$ls" -batch -
}

# ---------------------------------------------------------------------------------------------
# Configs: one generator for all of them.

# The IKE and lifetime settings every connection shares.
common_keys() { # i
    cat <<EOF
keying = "ike"
psk_file = "$STATE/psk/s$1.psk"
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
rekey_time = 86400
ike_rekey_time = 86400
EOF
}

# Gateway $1's config for the spokes listed in STATE/$1.share to STATE/$1.toml.
gw_config() { # gw
    local g=$1 i
    {
        # The guard over every spoke site stays when the gateway gives its last site away.
        printf '[gateway]\ntun = "hs0"\ncontrol_socket = "%s"\nprotect = ["%s"]\n\n' "$STATE/$g.sock" "$PROTECT"
        for i in $(cat "$STATE/$g.share"); do
            site "$i"
            cat <<EOF
[[connection]]
name = "s$i"
interface = "vti$i"
routes = ["$SSITE.0/24"]
local_id = "s$i.hub.example"
remote_id = "s$i.spoke.example"
$(common_keys "$i")
start_action = "start"
close_action = "restart"
tunnels = [ { local = "$(gw_wan "$g")", remote = "$SPK_WAN" } ]

EOF
        done
    } >"$STATE/$g.toml.new"
    mv "$STATE/$g.toml.new" "$STATE/$g.toml"
}

spoke_config() {
    local i
    {
        printf '[gateway]\ntun = "hs0"\ncontrol_socket = "%s"\nprotect = ["10.64.0.0/10"]\n\n' "$STATE/spk.sock"
        for ((i = 1; i <= SPOKES; i++)); do
            site "$i"
            cat <<EOF
[[connection]]
name = "s$i"
interface = "vti$i"
routes = ["$HSITE.0/24"]
local_id = "s$i.spoke.example"
remote_id = "s$i.hub.example"
$(common_keys "$i")
start_action = "none"
mode = "active-standby"
tunnels = [ { local = "$SPK_WAN", remote = "192.0.2.11" },
            { local = "$SPK_WAN", remote = "192.0.2.12" },
            { local = "$SPK_WAN", remote = "192.0.2.13" } ]

EOF
        done
    } >"$STATE/spk.toml"
}

# BIRD of gateway $1: learn ironsecd's routes through vti* from the kernel and announce those
# of the sites in STATE/$1.announce (its share, except while a move is under way: a site is
# announced once its tunnel is up, and withdrawn before its tunnel goes).
gw_bird_config() { # gw
    local k i owned=""
    k=$(gw_no "$1")
    for i in $(cat "$STATE/$1.announce"); do
        site "$i"
        owned+="${owned:+, }$SSITE.0/24"
    done
    # A set cannot be empty: a host route no site ever has stands for "none".
    [ -n "$owned" ] || owned="255.255.255.255/32"
    cat >"$STATE/$1.bird.conf.new" <<EOF
log "$STATE/$1.bird.log" all;
timeformat log "%F %T.%3f";
router id 10.255.$k.2;

# The sites this gateway announces (ha-scale.sh writes them from its share).
define OWNED = [ $owned ];

# ironsecd installs a route-based connection's static routes with protocol 3 ("boot") through
# the connection's interface, and its guards as blackholes with protocol 147: announce the
# former (those of OWNED), never the latter.
filter from_ironsec
{
    if krt_source = 3 && dest = RTD_UNICAST && ifname ~ "vti*" && net ~ OWNED then accept;
    reject;
}

protocol device {
    scan time 10;
}

protocol kernel {
    learn;              # routes other programs put in the kernel (ironsecd's)
    scan time 10;       # besides the netlink notifications, which BIRD follows as they come
    ipv4 {
        import filter from_ironsec;
        export none;
    };
}

protocol bgp rtr {
    local 10.255.$k.2 as 65515;
    neighbor 10.255.$k.1 as 65001;
    ipv4 {
        import none;
        export all;
    };
}
EOF
    mv "$STATE/$1.bird.conf.new" "$STATE/$1.bird.conf"
}

# Rewrites gateway $1's BIRD config from STATE/$1.announce and has BIRD apply it. Only the
# kernel channel's import filter changes: BIRD re-filters the routes it learned (the log says
# "Reloading channel kernel1.ipv4"), announcing or withdrawing the difference; the BGP session
# stays up.
bird_configure() { # gw
    local out
    gw_bird_config "$1"
    out=$(birdc -s "$STATE/$1.bird.sock" configure 2>&1) || true
    [[ $out == *Reconfigured* ]] || { printf '%s\n' "$out" | indent >&2; die "birdc configure of $1 failed"; }
}

rtr_bird_config() {
    local g k
    {
        cat <<EOF
log "$STATE/rtr.bird.log" all;
timeformat log "%F %T.%3f";
router id 10.0.0.1;

protocol device {
    scan time 10;
}

protocol kernel {
    ipv4 {
        import none;
        export all;
    };
    merge paths on;     # the same site from several gateways -> one ECMP route
}
EOF
        for g in "${GWS[@]}"; do
            k=$(gw_no "$g")
            cat <<EOF

protocol bgp $g {
    local 10.255.$k.1 as 65001;
    neighbor 10.255.$k.2 as 65515;
    ipv4 {
        import all;
        export none;
    };
}
EOF
        done
    } >"$STATE/rtr.bird.conf"
}

write_configs() {
    local i n g a b
    mkdir -m 700 -p "$STATE/psk"
    (
        umask 077
        for ((i = 1; i <= SPOKES; i++)); do
            new_psk "$STATE/psk/s$i.psk"
        done
    )
    # Three contiguous shares, the first gateways taking the remainder.
    a=1
    for g in "${GWS[@]}"; do
        n=$(( (SPOKES - a + 1 + (3 - $(gw_no "$g"))) / (4 - $(gw_no "$g")) ))
        b=$((a + n - 1))
        if [ "$n" -gt 0 ]; then seq "$a" "$b" | tr '\n' ' ' >"$STATE/$g.share"; else : >"$STATE/$g.share"; fi
        cp "$STATE/$g.share" "$STATE/$g.announce"
        a=$((b + 1))
        gw_config "$g"
        gw_bird_config "$g"
        check_bird_config "$STATE/$g.bird.conf"
    done
    spoke_config
    rtr_bird_config
    check_bird_config "$STATE/rtr.bird.conf"
    printf '%s\n' "$SPOKES" >"$STATE/spokes"
    for r in "${GWS[@]}" spk; do
        ip netns exec "$(ns_of "$r")" "$D" check --config "$STATE/$r.toml" >"$STATE/$r.check" 2>&1 ||
            { indent <"$STATE/$r.check" >&2; die "ironsecd check --config $STATE/$r.toml failed"; }
    done
}

# ---------------------------------------------------------------------------------------------
# Daemons

# Raised for ironsecd (bird-lib.sh's start_ironsecd) in `up`.
NOFILE=0

ctl() { # role args...
    local r=$1
    shift
    timeout -k 5 120 "$CTL" --socket "$STATE/$r.sock" "$@"
}

# Names of the connections of $1 with a tunnel up (an established IKE SA with a CHILD_SA and
# SAs in both directions), one per line; for the spoke, "name remote" of the tunnel carrying
# the traffic. Returns 1 if ironsecctl fails.
up_connections() { # role
    ctl "$1" status --json 2>/dev/null | "$PY" -c '
import json, sys
spoke = sys.argv[1] == "spk"
d = json.load(sys.stdin)
for c in d.get("connections") or []:
    ups = []
    for t in c.get("tunnels") or []:
        ike = t.get("ike") or {}
        if (t.get("state") == "up" and ike.get("state") == "established"
                and (ike.get("children") or 0) >= 1 and t.get("outbound") and t.get("inbound")):
            ups.append(t)
    if not ups:
        continue
    if spoke:
        print(c["name"], (c.get("active") or ["-"])[0].split(":")[0])
    else:
        print(c["name"])' "$1"
}

# The LAN router's routes from BIRD as "prefix nexthop,nexthop..." lines.
rtr_routes() {
    ip -n "$(ns_of rtr)" route show proto bird | awk '
        /^[0-9]/ { if (p != "") print p, v; p = $1; v = ""; if ($2 == "via") v = $3; next }
        $1 == "nexthop" && $2 == "via" { v = (v == "" ? $3 : v "," $3) }
        END { if (p != "") print p, v }'
}

# ---------------------------------------------------------------------------------------------
# up

up() {
    local t0 t_gw deadline g want have routes line up_total last=""
    begin_up
    NOFILE=$(( SPOKES * $(nproc) + 4096 ))
    msg "$PROG: namespaces $(all_ns | tr '\n' ' ')"
    t0=$(now_ns)
    make_namespaces
    write_configs
    K0=$(kernel_kib)
    start_bird rtr
    start_ironsecd spk
    wait_ironsecd spk "the spoke's ironsecd"
    t_gw=$(now_ns)
    for g in "${GWS[@]}"; do start_ironsecd "$g"; done
    for g in "${GWS[@]}"; do
        wait_ironsecd "$g"
        start_bird "$g"
    done
    deadline=$(( t_gw + TIMEOUT * 1000000000 ))
    while :; do
        up_total=0 have=""
        for g in "${GWS[@]}"; do
            want=$(wc -w <"$STATE/$g.share")
            n=$(up_connections "$g" | wc -l) || n=0
            up_total=$((up_total + n))
            have+=" $g $n/$want"
        done
        routes=$(rtr_routes | wc -l)
        if [ "$up_total" -ge "$SPOKES" ] && [ "$routes" -ge "$SPOKES" ]; then break; fi
        for g in "${GWS[@]}"; do
            alive "$(cat "$STATE/$g.ironsecd.pid")" || { tail -n 20 "$STATE/$g.ironsecd.log" | indent >&2; die "the $g's ironsecd exited during bring-up"; }
        done
        if [ "$(now_ns)" -ge "$deadline" ]; then
            log "$PROG: not converged after $TIMEOUT s:$have; LAN router routes $routes/$SPOKES"
            die "bring-up did not converge"
        fi
        line="$have; routes $routes/$SPOKES"
        [ "$line" != "$last" ] && log "    $(secs_between "$t_gw" "$(now_ns)") s:$line"
        last=$line
        sleep 0.5
    done
    T_SETUP=$(secs_between "$t_gw" "$(now_ns)")
    T_TOTAL=$(secs_between "$t0" "$(now_ns)")
    KERNEL=$(( $(kernel_kib) - K0 ))
    printf '{"spokes":%s,"setup_secs":%s,"up_total_secs":%s,"kernel_kib":%s}\n' \
        "$SPOKES" "$T_SETUP" "$T_TOTAL" "$KERNEL" >"$STATE/up.json"
    UP_OK=1
    msg "$PROG: up: $SPOKES spokes, gateways up and routed in $T_SETUP s ($T_TOTAL s with the namespaces); state in $STATE"
    cat "$STATE/up.json"
}

# ---------------------------------------------------------------------------------------------
# move

# Seconds since the move began.
since() { secs_between "$M0" "$(now_ns)"; }

# Wait up to TIMEOUT s for `check` (a function) to succeed; dies naming $1 otherwise.
wait_for() { # what check
    local deadline=$(( $(now_ns) + TIMEOUT * 1000000000 ))
    until "$2"; do
        [ "$(now_ns)" -lt "$deadline" ] || die "move: $1 not reached after $TIMEOUT s"
        sleep 0.05
    done
}

# Every moved connection up on the receiving gateway.
moved_up_on_to() {
    local have n=0 i
    have=" $(up_connections "$TO" | tr '\n' ' ') " || return 1
    for i in $MOVED; do [[ $have == *" s$i "* ]] && n=$((n + 1)); done
    [ "$n" -eq "$MOVED_N" ]
}

# Every moved prefix on the LAN router via both gateways (with $1 = both) or only via the
# receiving one ($1 = to).
moved_routed() { # both|to
    local want_from=$1 table n=0 i nh
    table=$(rtr_routes)
    for i in $MOVED; do
        site "$i"
        nh=$(awk -v p="$SSITE.0/24" '$1 == p { print $2 }' <<<"$table")
        case "$want_from" in
            both) [[ ,$nh, == *",$FROM_NH,"* && ,$nh, == *",$TO_NH,"* ]] && n=$((n + 1)) ;;
            to) [ "$nh" = "$TO_NH" ] && n=$((n + 1)) ;;
        esac
    done
    [ "$n" -eq "$MOVED_N" ]
}
moved_ecmp() { moved_routed both; }
moved_only_to() { moved_routed to; }

# Every moved spoke connection sends on its tunnel to the receiving gateway.
spoke_on_to() {
    local have n=0 i to_wan
    to_wan=$(gw_wan "$TO")
    have=$(up_connections spk) || return 1
    for i in $MOVED; do
        grep -qx "s$i $to_wan" <<<"$have" && n=$((n + 1))
    done
    [ "$n" -eq "$MOVED_N" ]
}

# Packets the giving gateway's ironsecd has written into the moved sites' devices (what the
# spoke sent through it), summed.
from_moved_rx() {
    local i files=()
    for i in $MOVED; do files+=("/sys/class/net/vti$i/statistics/rx_packets"); done
    ip netns exec "$(ns_of "$FROM")" cat "${files[@]}" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}

# Wait (up to TIMEOUT s) until from_moved_rx has not changed for QUIET s.
wait_quiet() {
    local deadline=$(( $(now_ns) + TIMEOUT * 1000000000 )) last now since_ns
    last=$(from_moved_rx) since_ns=$(now_ns)
    while [ $(( $(now_ns) - since_ns )) -lt $(( QUIET * 1000000000 )) ]; do
        [ "$(now_ns)" -lt "$deadline" ] || die "move: the spokes still send through $FROM after $TIMEOUT s"
        sleep 0.1
        now=$(from_moved_rx)
        if [ "$now" != "$last" ]; then last=$now since_ns=$(now_ns); fi
    done
}

move() {
    local share_from share_to i t_reload_to t_up t_announce t_ecmp t_withdraw t_done t_quiet t_reload_from t_spoke out
    need_root
    binaries
    [ -d "$STATE" ] || die "no state directory $STATE: is $PREFIX up?"
    SPOKES=$(cat "$STATE/spokes")
    [ -n "$SITES" ] && [ -n "$FROM" ] && [ -n "$TO" ] || die "move needs --sites LIST --from gwA --to gwB"
    for g in "$FROM" "$TO"; do [[ $g =~ ^gw[123]$ ]] || die "'$g' is not gw1, gw2 or gw3"; done
    [ "$FROM" != "$TO" ] || die "--from and --to are the same gateway"
    MOVED=$(expand_list "$SITES" "$SPOKES")
    MOVED_N=$(wc -w <<<"$MOVED")
    share_from=" $(cat "$STATE/$FROM.share") " share_to=" $(cat "$STATE/$TO.share") "
    for i in $MOVED; do
        [[ $share_from == *" $i "* ]] || die "site $i is not in $FROM's share"
    done
    FROM_NH="10.255.$(gw_no "$FROM").2" TO_NH="10.255.$(gw_no "$TO").2"
    M0=$(now_ns)
    # 1. The receiving gateway gets the sites: devices, routes (not announced yet) and tunnels.
    printf '%s %s\n' "$share_to" "$MOVED" | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ' >"$STATE/$TO.share"
    gw_config "$TO"
    ctl "$TO" reload >"$STATE/move.reload-to.out" 2>&1 ||
        { indent <"$STATE/move.reload-to.out" >&2; die "reload of $TO failed"; }
    t_reload_to=$(since)
    log "    $t_reload_to s: $TO reloaded with $MOVED_N more sites"
    wait_for "moved connections up on $TO" moved_up_on_to
    t_up=$(since)
    log "    $t_up s: all $MOVED_N moved connections up on $TO"
    # 2. Its BIRD announces them: the LAN router has both gateways for each.
    cp "$STATE/$TO.share" "$STATE/$TO.announce"
    bird_configure "$TO"
    t_announce=$(since)
    wait_for "two nexthops on the LAN router for every moved site" moved_ecmp
    t_ecmp=$(since)
    log "    $t_ecmp s: the LAN router has $FROM and $TO for every moved site ($TO's BIRD reconfigured at $t_announce s)"
    # 3. The giving gateway's BIRD withdraws them while their tunnels are still up there.
    out=""
    for i in $(cat "$STATE/$FROM.share"); do [[ " $MOVED " == *" $i "* ]] || out+="$i "; done
    printf '%s' "$out" >"$STATE/$FROM.announce"
    bird_configure "$FROM"
    t_withdraw=$(since)
    wait_for "the LAN router using only $TO for the moved sites" moved_only_to
    t_done=$(since)
    log "    $t_done s: the LAN router routes the moved sites only via $TO ($FROM's BIRD reconfigured at $t_withdraw s)"
    # Then until the spokes' traffic has followed: a spoke sends on the tunnel it is on until it
    # has heard nothing there for a sixth of failover_after (0.5 s by default) while the peer
    # sends on another; what it sends to the giving gateway meanwhile still arrives.
    wait_quiet
    t_quiet=$(since)
    log "    $t_quiet s: nothing from the spoke through $FROM for the moved sites for $QUIET s"
    # 4. The giving gateway loses them: DELETE to each spoke, which fails over at once.
    printf '%s' "$out" >"$STATE/$FROM.share"
    gw_config "$FROM"
    ctl "$FROM" reload >"$STATE/move.reload-from.out" 2>&1 ||
        { indent <"$STATE/move.reload-from.out" >&2; die "reload of $FROM failed"; }
    t_reload_from=$(since)
    log "    $t_reload_from s: $FROM reloaded without them"
    wait_for "the spoke sending on its tunnels to $TO" spoke_on_to
    t_spoke=$(since)
    log "    $t_spoke s: the spoke sends every moved site's traffic to $TO"
    printf '{"sites":%s,"from":"%s","to":"%s","reload_to_secs":%s,"up_on_to_secs":%s,"announce_secs":%s,"ecmp_secs":%s,"withdraw_secs":%s,"withdrawn_secs":%s,"quiet_secs":%s,"reload_from_secs":%s,"spoke_switched_secs":%s}\n' \
        "$MOVED_N" "$FROM" "$TO" "$t_reload_to" "$t_up" "$t_announce" "$t_ecmp" "$t_withdraw" "$t_done" "$t_quiet" "$t_reload_from" "$t_spoke" |
        tee -a "$STATE/moves.json"
}

# ---------------------------------------------------------------------------------------------
# report

# VmRSS of the process in PID file $1, KiB (0 when it is gone).
rss_of() { # pidfile
    local pid
    pid=$(cat "$1" 2>/dev/null) || { echo 0; return; }
    awk '$1 == "VmRSS:" { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$pid/status" 2>/dev/null || echo 0
}

report() {
    local g shares="" ups="" rss="" birds="" routes ecmp spk_on="" n moves
    need_root
    binaries
    [ -d "$STATE" ] || die "no state directory $STATE: is $PREFIX up?"
    SPOKES=$(cat "$STATE/spokes")
    for g in "${GWS[@]}"; do
        shares+="\"$g\":[$(sed 's/ *$//; s/ /,/g' "$STATE/$g.share")],"
        n=$(up_connections "$g" | wc -l) || n=null
        ups+="\"$g\":$n,"
        rss+="\"$g\":$(rss_of "$STATE/$g.ironsecd.pid"),"
        birds+="\"$g\":$(rss_of "$STATE/$g.bird.pid"),"
        n=$(up_connections spk | awk -v w="$(gw_wan "$g")" '$2 == w' | wc -l) || n=null
        spk_on+="\"$g\":$n,"
    done
    routes=$(rtr_routes | wc -l)
    ecmp=$(rtr_routes | awk '$2 ~ /,/' | wc -l)
    moves=$(paste -sd, "$STATE/moves.json" 2>/dev/null || true)
    printf '{"script":"ha-scale","ironsecd":"%s","spokes":%s,"shares":{%s},"connections_up":{%s},"spoke_active_to":{%s},"rtr_routes":%s,"rtr_ecmp_routes":%s,"rss_kib":{%s,"spk":%s},"bird_rss_kib":{%s,"rtr":%s},"up":%s,"moves":[%s]}\n' \
        "$D" "$SPOKES" "${shares%,}" "${ups%,}" "${spk_on%,}" "$routes" "$ecmp" \
        "${rss%,}" "$(rss_of "$STATE/spk.ironsecd.pid")" "${birds%,}" "$(rss_of "$STATE/rtr.bird.pid")" \
        "$(cat "$STATE/up.json" 2>/dev/null || echo null)" "$moves"
}

# SUnreclaim + Percpu of /proc/meminfo, KiB: the kernel memory devices and routes take.
kernel_kib() {
    awk '$1 == "SUnreclaim:" || $1 == "Percpu:" { s += $2 } END { print s }' /proc/meminfo
}

# ---------------------------------------------------------------------------------------------

case "$CMD" in
    -h | --help) usage; exit 0 ;;
    up | move | report | down) ;;
    *) usage >&2; exit 2 ;;
esac
[ $# -ge 2 ] || die "usage: $PROG $CMD PREFIX ... (see --help)"
shift 2
check_prefix hascale
SPOKES=12 TIMEOUT=600 SITES="" FROM="" TO=""
# Seconds without a packet from the spokes through the giving gateway before it drops the moved
# sites (twice the default follow time, 0.5 s).
QUIET=1
while [ $# -gt 0 ]; do
    case "$CMD:$1" in
        up:--spokes) SPOKES=${2:?--spokes needs a number}; shift 2 ;;
        up:--timeout | move:--timeout) TIMEOUT=${2:?--timeout needs a number}; shift 2 ;;
        move:--sites) SITES=${2:?--sites needs a list}; shift 2 ;;
        move:--from) FROM=${2:?--from needs a gateway}; shift 2 ;;
        move:--to) TO=${2:?--to needs a gateway}; shift 2 ;;
        *) die "unknown option '$1' for $CMD (see --help)" ;;
    esac
done
is_count "$SPOKES" 3 3000 || die "--spokes must be 3..3000, not '$SPOKES'"
is_count "$TIMEOUT" 1 86400 || die "--timeout must be 1..86400, not '$TIMEOUT'"
case "$CMD" in
    up) up ;;
    move) move ;;
    report) report ;;
    down) need_root; down ;;
esac
