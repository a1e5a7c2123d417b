# shellcheck shell=bash
# Shared helpers of the labs that run ironsecd and BIRD 2 in many namespaces named
# "PREFIX-<role>" and keep their state in one directory: route-based.sh, plink-lab.sh,
# ha-lab.sh and ha-scale.sh. Namespaces and veths, the state directory, configs derived from
# the shipped examples, starting ironsecd and BIRD per namespace (ROLE.ironsecd.pid,
# ROLE.bird.pid, ROLE.bird.sock, ROLE.sock in the state directory), BGP sessions, status, and
# `down`. One copy, so that the labs cannot drift apart in how they build, check or tear down.
# Not a script of its own: the script sources it (with no arguments) right after setting
#   HERE    the netns-scripts directory
#   PROG    its name for messages
# Sourcing reads the script's command line, `SCRIPT CMD PREFIX ...`: it sets CMD and PREFIX
# ("x" for --help, which needs none), MSG_FD=2 (progress on stderr), then sources lib.sh.
# check_prefix sets STATE (and WORK, where lib.sh's wait_ready looks for the control
# sockets); the other functions need STATE. The script defines all_ns (every namespace of its
# prefix, one a line) for `down`; begin_up installs on_exit below, which removes a half-built
# lab.

# These are read by lib.sh and the scripts, not here.
# shellcheck disable=SC2034
{
    MSG_FD=2
    CMD=${1:-}
    PREFIX=${2:-}
}
case "$CMD" in
    -h | --help) PREFIX=x ;;
esac
# shellcheck source=netns-scripts/lib.sh
. "$HERE/lib.sh"

ns_of() { printf '%s-%s\n' "$PREFIX" "$1"; }
ns_exists() { ip netns list | awk -v n="$1" '$1 == n { f = 1 } END { exit !f }'; }
need_root() { [ "$(id -u)" = 0 ] || die "needs root (network namespaces)"; }

# Checks PREFIX; sets STATE to ${TMPDIR:-/tmp}/ironsec-$1-PREFIX.
check_prefix() { # state-name
    [[ $PREFIX =~ ^[A-Za-z0-9_-]{1,24}$ ]] ||
        die "PREFIX '$PREFIX' must be 1-24 of [A-Za-z0-9_-] (see --help)"
    STATE="${TMPDIR:-/tmp}/ironsec-$1-$PREFIX"
    # These are read by lib.sh (wait_ready) and the scripts, not here.
    # shellcheck disable=SC2034
    WORK=$STATE # lib.sh's wait_ready finds the control sockets there
}

# ---------------------------------------------------------------------------------------------
# Binaries

# The daemon binaries: IRONSECD/IRONSECCTL, else lib.sh's (release build, made if missing).
# Sets D and CTL; dies without BIRD.
binaries() {
    if [ -n "${IRONSECD:-}" ]; then
        D=$IRONSECD
        CTL=${IRONSECCTL:-$(dirname "$D")/ironsecctl}
    else
        find_binaries first "building ironsecd (cargo build --release) ..."
    fi
    [ -x "$D" ] || die "$D not found or not executable (set IRONSECD)"
    [ -x "$CTL" ] || die "$CTL not found or not executable (set IRONSECCTL)"
    need_bird
}

need_bird() {
    command -v bird >/dev/null && command -v birdc >/dev/null ||
        die "bird and birdc not found (Debian: apt-get install bird2, or tests/install-deps.sh)"
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

# Stops every daemon with a PID file in STATE, removes every namespace all_ns names and the
# state directory. Never fails; safe to run twice.
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
        # was lost, a ping or iperf3 left behind): stop it by PID before the namespace goes.
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do stop_pid "$pid" || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ -d "$STATE" ]; then rm -rf -- "$STATE"; fi
    return 0
}

# The start of every `up`: root, the tools (iproute2, and each COMMAND given with the MESSAGE to
# die with without it), the binaries unless NET_ONLY=1, no leftovers of an earlier run
# (`down`), the cleanup traps (UP_OK=0 until the script sets it to 1), a fresh STATE.
begin_up() { # [command message]...
    need_root
    command -v ip >/dev/null || die "iproute2 (ip) not installed"
    while [ $# -ge 2 ]; do
        command -v "$1" >/dev/null || die "$2"
        shift 2
    done
    [ "${NET_ONLY:-0}" = 1 ] || binaries
    down
    UP_OK=0
    install_cleanup_traps
    mkdir -m 700 -p "$STATE"
}

# The whole `up` of a lab whose gateways GWS each run ironsecd and BIRD (route-based.sh,
# plink-lab.sh): begin_up (with the COMMAND MESSAGE pairs given after $2), the namespaces
# (make_namespaces; with NET_ONLY=1 nothing more), the configs (write_configs), the daemons,
# every BGP session established and its BFD session up. $1 says which sessions those are in the closing message, $2
# what to try next. Needs the script's make_namespaces and write_configs.
gateways_up() { # sessions try [command message]...
    local t0=$SECONDS sessions=$1 try=$2
    shift 2
    begin_up "$@"
    msg "$PROG: namespaces $(all_ns | tr '\n' ' ')"
    make_namespaces
    if [ "$NET_ONLY" = 1 ]; then
        UP_OK=1
        msg "$PROG: network only (no daemons); remove it with: $0 down $PREFIX"
        return
    fi
    write_configs
    start_daemons "${GWS[*]}" "${GWS[*]}"
    wait_bgp_or_die "${GWS[@]}"
    UP_OK=1
    msg "$PROG: up in $((SECONDS - t0)) s, $sessions established, BFD up; state in $STATE"
    msg "$PROG: try: $try"
}

# A failed `up` removes everything it built; a successful one leaves it running. Run by
# lib.sh's cleanup trap; `up` sets UP_OK=0 before it builds anything and 1 once it is done.
on_exit() {
    if [ "${UP_OK:-1}" = 0 ]; then
        log "$PROG: up failed; removing what it built"
        down
    fi
}

# ---------------------------------------------------------------------------------------------
# Namespaces and links. Every veth is created inside a namespace of ours with its peer moved
# straight into the other: nothing ever appears in the root namespace.

# Namespaces PREFIX-<role> for every role given, each with lo up.
add_namespaces() { # role...
    local r ns
    for r in "$@"; do
        ns=$(ns_of "$r")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
}

# Namespace $1 forwards, with no reverse-path filter ("all" and "default").
forward_without_rp_filter() { # ns
    ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$1" sysctl -qw net.ipv4.conf.all.rp_filter=0
    ip netns exec "$1" sysctl -qw net.ipv4.conf.default.rp_filter=0
}

# A port $2 of the WAN router (namespace $1) to namespace $3, whose end is `wan`: router
# address $4, the namespace's $5 (both /$6), and the namespace's default route via the router.
wan_port() { # wan-ns port ns router-ip ip len
    ip -n "$1" link add "$2" type veth peer name wan netns "$3"
    ip -n "$1" addr add "$4/$6" dev "$2"
    ip -n "$1" link set "$2" up
    ip -n "$3" addr add "$5/$6" dev wan
    ip -n "$3" link set wan up
    ip -n "$3" route add default via "$4"
}

# A LAN $3.0/24 between router namespace $1 (`lan`, $3.1) and host namespace $2 (`eth0`,
# $3.2, default route via $3.1).
lan_host() { # router-ns host-ns net (e.g. 10.1.0)
    ip -n "$1" link add lan type veth peer name eth0 netns "$2"
    ip -n "$1" addr add "$3.1/24" dev lan
    ip -n "$1" link set lan up
    ip -n "$2" addr add "$3.2/24" dev eth0
    ip -n "$2" link set eth0 up
    ip -n "$2" route add default via "$3.1"
}

# ---------------------------------------------------------------------------------------------
# Configs

# A fresh random pre-shared key, "0x" and 64 hex digits (32 bytes), to file $1 (mode 600).
new_psk() { # file
    (umask 077; printf '0x%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$1")
}

# STATE/ROLE.toml from the shipped example ROOT/$2 (passed through the command $3..., `cat` if
# none) with the control socket STATE/ROLE.sock and every psk_file "psk/NAME" as STATE/NAME;
# checked with `ironsecd check` in the role's namespace. Needs D.
derive_ironsecd_config() { # role example [filter...]
    local role=$1 src=$2 out="$STATE/$1.toml"
    shift 2
    [ $# -gt 0 ] || set -- cat
    "$@" "$ROOT/$src" |
        sed -e "s|^control_socket = \"[^\"]*\"|control_socket = \"$STATE/$role.sock\"|" \
            -e "s|^psk_file = \"psk/\\([^\"]*\\)\"|psk_file = \"$STATE/\\1\"|" >"$out"
    grep -q "^control_socket = \"$STATE/$role.sock\"" "$out" && ! grep -q '^psk_file = "psk/' "$out" ||
        die "could not derive $out from $src (did the example's layout change?)"
    ip netns exec "$(ns_of "$role")" "$D" check --config "$out" >"$STATE/$role.check" 2>&1 ||
        { indent <"$STATE/$role.check" >&2; die "ironsecd check --config $out failed"; }
}

# STATE/ROLE.bird.conf from the shipped example ROOT/conf/bird/$2 (passed through the command
# $3..., `cat` if none) logging to STATE/ROLE.bird.log instead of syslog; checked with bird -p.
derive_bird_config() { # role example [filter...]
    local role=$1 src=$2 out="$STATE/$1.bird.conf"
    shift 2
    [ $# -gt 0 ] || set -- cat
    "$@" "$ROOT/conf/bird/$src" |
        sed "s|^log syslog all;|log \"$STATE/$role.bird.log\" all;|" >"$out"
    grep -q "^log \"$STATE/$role.bird.log\" all;" "$out" ||
        die "could not derive $out from conf/bird/$src (no 'log syslog all;' line?)"
    check_bird_config "$out"
}

check_bird_config() { # file
    bird -p -c "$1" || die "bird -p -c $1: the config does not parse"
}

# ---------------------------------------------------------------------------------------------
# Daemons

# ironsecd in the background in the role's namespace with STATE/ROLE.toml, its log
# STATE/ROLE.ironsecd.log and its PID in STATE/ROLE.ironsecd.pid (IRONSEC_LOG, default info).
# With NOFILE set, the descriptor limit is raised to it first (one descriptor per device queue
# for a gateway with many connections). Does not wait: see wait_ironsecd.
start_ironsecd() { # role
    local ns
    ns=$(ns_of "$1")
    (
        if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "${NOFILE:-0}" ]; then ulimit -n "$NOFILE"; fi
        # ip netns exec execs ironsecd in place: $! is the daemon's PID.
        IRONSEC_LOG="${IRONSEC_LOG:-info}" exec ip netns exec "$ns" "$D" --config "$STATE/$1.toml" \
            </dev/null >>"$STATE/$1.ironsecd.log" 2>&1
    ) &
    echo "$!" >"$STATE/$1.ironsecd.pid"
}

# Waits (lib.sh's wait_ready) for the role's ironsecd to answer; dies with its log otherwise,
# naming it $2 (default "ironsecd in PREFIX-ROLE").
wait_ironsecd() { # role [name]
    wait_ready "$1" "$(cat "$STATE/$1.ironsecd.pid")" ||
        { indent <"$STATE/$1.ironsecd.log" >&2; die "${2:-ironsecd in $(ns_of "$1")}: $NOT_READY"; }
}

# BIRD in the role's namespace with STATE/ROLE.bird.conf, its socket STATE/ROLE.bird.sock and
# PID file STATE/ROLE.bird.pid.
start_bird() { # role
    local ns
    ns=$(ns_of "$1")
    # BIRD forks into the background and writes its PID file; TZ=UTC: log times in UTC.
    ip netns exec "$ns" env TZ=UTC bird -c "$STATE/$1.bird.conf" -s "$STATE/$1.bird.sock" \
        -P "$STATE/$1.bird.pid" </dev/null >"$STATE/$1.bird.out" 2>&1 ||
        { indent <"$STATE/$1.bird.out" >&2; die "bird did not start in $ns"; }
}

# ironsecd in every role of $1, waits until each answers, then BIRD in every role of $2
# (space-separated lists).
start_daemons() { # "ironsecd roles" "bird roles"
    local r
    for r in $1; do start_ironsecd "$r"; done
    for r in $1; do wait_ironsecd "$r"; done
    for r in $2; do start_bird "$r"; done
}

# ---------------------------------------------------------------------------------------------
# BGP and BFD

# BGP sessions of the role's BIRD as "name state info" lines.
bgp_sessions() { # role
    # Columns: name proto table state since info; since is "DATE TIME" in the configs' format.
    birdc -s "$STATE/$1.bird.sock" show protocols 2>/dev/null |
        awk '$2 == "BGP" { i = ($5 ~ /^[0-9][0-9][0-9][0-9]-/) ? 7 : 6; print $1, $4, $i }'
}

# BFD sessions of the role's BIRD that are Up, one address a line.
bfd_up() { # role
    birdc -s "$STATE/$1.bird.sock" show bfd sessions 2>/dev/null | awk '$3 == "Up" { print $1 }'
}

# Wait up to $1 seconds until the function $3 prints nothing for every role $4...: it prints
# what is still pending of the role's BIRD, " ROLE:WHAT" each. Otherwise says "$2 after N s"
# and what is pending, and returns 1.
wait_birds() { # secs what pending-function role...
    local secs=$1 what=$2 check=$3 deadline=$((SECONDS + $1)) g pending
    shift 3
    while :; do
        pending=""
        for g in "$@"; do pending+=$("$check" "$g"); done
        [ -z "$pending" ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$PROG: $what after $secs s:$pending"
            return 1
        fi
        sleep 0.2
    done
}

# The role's BGP sessions not Established (or that its BIRD gave no answer), and its BFD
# sessions not Up, for wait_birds. BFD comes up after BGP (it starts slow), and a BFD session
# that never was up declares nothing when its peer dies: a fault injected before then would be
# noticed only by BGP's hold timer (30 s).
bgp_pending() { # role
    local name info
    if ! bgp_sessions "$1" | grep -q .; then printf ' %s:(no answer)' "$1"; return; fi
    while read -r name _ info; do
        [ "$info" = Established ] || printf ' %s:%s' "$1" "$name"
    done < <(bgp_sessions "$1")
    birdc -s "$STATE/$1.bird.sock" show bfd sessions 2>/dev/null |
        awk -v r="$1" '$3 ~ /^(Down|Init|AdminDown)$/ { printf " %s:bfd-%s", r, $1 }'
}

# Wait up to 30 s for every BGP session of the BIRDs of the roles given to be Established and
# its BFD session Up; otherwise show each role's ironsecd log and BIRD protocols and die.
wait_bgp_or_die() { # role...
    local g
    wait_birds 30 "BGP/BFD sessions not up" bgp_pending "$@" && return 0
    for g in "$@"; do show_ironsecd_log "$g"; show_bird_protocols "$g"; done
    die "BGP did not come up"
}

# On stderr, for a failed bring-up: the tail of the role's ironsecd log and its BIRD's protocols.
show_ironsecd_log() { # role
    log "--- $1: ironsecd log"; tail -n 20 "$STATE/$1.ironsecd.log" | indent >&2
}
show_bird_protocols() { # role
    log "--- $1: BIRD"; birdc -s "$STATE/$1.bird.sock" show protocols 2>&1 | indent >&2
}

# ---------------------------------------------------------------------------------------------
# status

# The role's tunnels (ironsecctl status, headed "--- $2 (ironsecctl status)"), BGP and BFD
# sessions, each if its daemon runs. Needs CTL.
status_daemons() { # role tunnels-heading
    local sock="$STATE/$1.sock"
    if [ -S "$sock" ] && [ -x "$CTL" ]; then
        say "--- $2 (ironsecctl status)"
        "$CTL" --socket "$sock" status 2>&1 | indent || true
    fi
    if [ -S "$STATE/$1.bird.sock" ]; then
        say "--- BGP sessions"
        bgp_sessions "$1" | indent
        say "--- BFD sessions"
        birdc -s "$STATE/$1.bird.sock" show bfd sessions 2>&1 | sed 1d | indent
    fi
}

# "DEV rx N tx N": the packets interface $2 of namespace $1 received and sent.
link_counters() { # ns dev
    ip -n "$1" -s link show "$2" |
        awk -v d="$2" '/RX:/ { getline; rx = $2 } /TX:/ { getline; tx = $2 } END { printf "%s rx %s tx %s\n", d, rx, tx }'
}
