#!/usr/bin/env bash
# Runs strongSwan 5.9 (Debian's charon) as an IPsec peer inside a network namespace, with all of
# its state in one directory, so that two instances (or one beside ironsecd) never share any.
#
# Usage:
#   strongswan.sh start NS DIR          start charon in namespace NS, load DIR/swanctl.conf;
#                                       prints charon's PID; fails (with the log) if charon
#                                       does not come up or the config does not load
#   strongswan.sh stop DIR              stop that charon (SIGTERM by its PID, SIGKILL after
#                                       5 s) and wait until it is gone
#   strongswan.sh load DIR              (re)load DIR/swanctl.conf into the running charon
#   strongswan.sh swanctl DIR CMD ...   run `swanctl CMD --uri <DIR's socket> ...`, e.g.
#                                       strongswan.sh swanctl DIR --list-sas --raw
#                                       strongswan.sh swanctl DIR --initiate --child site-a
#   strongswan.sh run NS DIR            charon in the foreground (for a supervisor that owns
#                                       the process); then `load DIR` once DIR/charon.vici exists
#
# DIR must exist and hold swanctl.conf (see conf/strongswan/swanctl.conf). The script writes
# in DIR:
#   strongswan.conf  from conf/strongswan/strongswan.conf (env STRONGSWAN_TEMPLATE overrides)
#                    with @DIR@ replaced; charon and swanctl read it via STRONGSWAN_CONF
#   charon.vici      the VICI socket (swanctl --uri unix://DIR/charon.vici)
#   charon.log       charon's log (filelog); charon.out its stdout/stderr
#   run/             bind-mounted over /run in charon's private mount namespace: charon 5.9.8
#                    hard-codes its pid file as /run/charon.pid, so instances must not share /run
#   charon.pid       the PID `start` printed (what `stop` kills)
# and swanctl takes its credentials from DIR's own subdirectories, which the caller fills if the
# config uses certificates (SWANCTL_DIR=DIR; see conf/strongswan/swanctl-certs.conf):
#   x509/ (own certificates), x509ca/ (CA certificates: roots and intermediates), x509crl/
#   (CRLs), private/ (private keys of any type; rsa/ and ecdsa/ work too)
#
# Why it runs that way (ARCHITECTURE.md, "Test machine facts"): the kernel here has no ESP
# transform, so charon uses kernel-libipsec (ESP in userspace over a TUN device `ipsec0`,
# always in UDP/4500), which must be loaded before kernel-netlink; traffic enters the tunnel
# only through the routes charon installs in table 220, so the namespace must not have another
# route to the peer's subnets. Needs root and the packages strongswan-charon strongswan-swanctl
# libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins
# (tests/install-deps.sh installs them).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CHARON=${CHARON:-/usr/lib/ipsec/charon}
TEMPLATE=${STRONGSWAN_TEMPLATE:-$ROOT/conf/strongswan/strongswan.conf}
PROG=strongswan.sh

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }

# True while PID $1 exists and is not a zombie.
alive() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}

# Absolute path of directory $1, which must exist.
absdir() {
    [ -d "$1" ] || die "directory '$1' does not exist"
    (cd "$1" && pwd)
}

run_swanctl() {
    local dir=$1 cmd=$2
    shift 2
    # SWANCTL_DIR: swanctl's credential directories (x509, x509ca, x509crl, private, ...) are
    # DIR's, not /etc/swanctl's (swanctl 5.9.8 takes them from this variable, never from
    # --file's directory).
    SWANCTL_DIR="$dir" STRONGSWAN_CONF="$dir/strongswan.conf" swanctl "$cmd" --uri "unix://$dir/charon.vici" "$@"
}

load() {
    local dir=$1
    [ -f "$dir/swanctl.conf" ] || die "$dir/swanctl.conf missing"
    run_swanctl "$dir" --load-all --noprompt --file "$dir/swanctl.conf"
}

# Writes DIR/strongswan.conf and prepares DIR/run; removes what a previous instance left.
prepare() {
    local dir=$1
    [ "$(id -u)" = 0 ] || die "must run as root (namespaces, mounts, TUN device)"
    [ -x "$CHARON" ] || die "$CHARON not found: install strongswan-charon (tests/install-deps.sh)"
    command -v swanctl >/dev/null || die "swanctl not found: install strongswan-swanctl"
    [ -f "$TEMPLATE" ] || die "template $TEMPLATE missing"
    [ -f "$dir/swanctl.conf" ] || die "$dir/swanctl.conf missing"
    case "$dir" in
        *[[:space:]\|\&]*) die "DIR must not contain spaces or | or & ('$dir')" ;;
    esac
    if [ -f "$dir/charon.pid" ] && alive "$(cat "$dir/charon.pid")"; then
        die "a charon for $dir is already running (pid $(cat "$dir/charon.pid")); stop it first"
    fi
    sed "s|@DIR@|$dir|g" "$TEMPLATE" >"$dir/strongswan.conf"
    mkdir -p "$dir/run"
    rm -f "$dir/charon.vici" "$dir/charon.pid" "$dir/run/charon.pid" "$dir/charon.log"
}

# The command that runs charon in namespace $1 with $2 over /run: `ip netns exec` (which execs,
# keeping the PID), then a private mount namespace in which DIR/run is bind-mounted over /run,
# then charon itself (exec again, so the PID is charon's).
charon_cmd() {
    local ns=$1 dir=$2
    # The single-quoted script is expanded by the inner sh, with DIR and CHARON as $1 and $2.
    # shellcheck disable=SC2016
    printf '%s\0' ip netns exec "$ns" unshare --mount --propagation private -- \
        sh -c 'mount --bind "$1/run" /run && STRONGSWAN_CONF="$1/strongswan.conf" exec "$2"' \
        sh "$dir" "$CHARON"
}

start() {
    local ns=$1 dir
    dir=$(absdir "$2")
    ip netns list | awk '{print $1}' | grep -qx "$ns" || die "no network namespace '$ns'"
    prepare "$dir"
    local -a cmd
    mapfile -d '' -t cmd < <(charon_cmd "$ns" "$dir")
    "${cmd[@]}" </dev/null >"$dir/charon.out" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/charon.pid"
    # Up when the VICI socket answers (charon starts in ~0.1 s here); at most 10 s.
    local i
    for i in $(seq 100); do
        if ! alive "$pid"; then
            cat "$dir/charon.out" "$dir/charon.log" >&2 2>/dev/null || true
            die "charon exited during startup (namespace $ns, dir $dir)"
        fi
        if [ -S "$dir/charon.vici" ] && run_swanctl "$dir" --stats >/dev/null 2>&1; then
            break
        fi
        [ "$i" = 100 ] && { stop "$dir" >/dev/null 2>&1 || true; die "charon's VICI socket did not answer within 10 s"; }
        sleep 0.1
    done
    # The pid file charon wrote in its private /run must name the process we started: proof
    # that the PID we kill later is charon's.
    local own
    own=$(cat "$dir/run/charon.pid" 2>/dev/null || true)
    [ "$own" = "$pid" ] || { stop "$dir" >/dev/null 2>&1 || true; die "charon's pid file says '$own', expected $pid"; }
    if ! load "$dir" >"$dir/swanctl-load.out" 2>&1; then
        cat "$dir/swanctl-load.out" >&2
        stop "$dir" >/dev/null 2>&1 || true
        die "swanctl --load-all failed for $dir/swanctl.conf"
    fi
    echo "$pid"
}

run() {
    local ns=$1 dir
    dir=$(absdir "$2")
    ip netns list | awk '{print $1}' | grep -qx "$ns" || die "no network namespace '$ns'"
    prepare "$dir"
    echo "$$" >"$dir/charon.pid"
    local -a cmd
    mapfile -d '' -t cmd < <(charon_cmd "$ns" "$dir")
    exec "${cmd[@]}"
}

stop() {
    local dir pid
    dir=$(absdir "$1")
    [ -f "$dir/charon.pid" ] || { echo "$PROG: no charon.pid in $dir: nothing to stop" >&2; return 0; }
    pid=$(cat "$dir/charon.pid")
    [[ "$pid" =~ ^[0-9]+$ ]] || die "bad pid '$pid' in $dir/charon.pid"
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 50); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            echo "$PROG: charon $pid ignored SIGTERM for 5 s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for i in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        fi
    fi
    alive "$pid" && die "charon $pid still running"
    rm -f "$dir/charon.pid" "$dir/charon.vici"
}

case "${1:-}" in
    start) [ $# = 3 ] || { usage >&2; exit 2; }; start "$2" "$3" ;;
    run) [ $# = 3 ] || { usage >&2; exit 2; }; run "$2" "$3" ;;
    stop) [ $# = 2 ] || { usage >&2; exit 2; }; stop "$2" ;;
    load) [ $# = 2 ] || { usage >&2; exit 2; }; load "$(absdir "$2")" ;;
    swanctl) [ $# -ge 3 ] || { usage >&2; exit 2; }; d=$(absdir "$2"); shift 2; run_swanctl "$d" "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
