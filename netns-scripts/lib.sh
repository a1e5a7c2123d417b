# shellcheck shell=bash
# Shared helpers of netns-scripts/demo.sh, bench.sh, idle-hub.sh, route-scale.sh, p2s-scale.sh and
# scale.sh (and, through bird-lib.sh, of route-based.sh, plink-lab.sh, ha-lab.sh and
# ha-scale.sh): binaries, process handling, cleanup traps, gateway configs with manual keys (conf/static-gw-*.toml) or IKEv2 and a
# PSK (conf/ike-gw-*.toml), starting ironsecd in the namespaces, reading its counters and waiting
# for its IKE SA. Not a script of its own: source it, never run it.
#
# Before sourcing, the script sets
#   HERE    the netns-scripts directory (the script's own directory)
#   PROG    its name for messages ("demo.sh")
#   PREFIX  the namespace prefix topology.sh is run with
#   MSG_FD  where progress messages go: 1 (demo.sh) or 2 (bench.sh, whose stdout is the results)
# Sourcing sets ROOT (the repository), TOPO (topology.sh) and the namespace names LANA GWA GWB
# LANB; everything else is functions. It does not change shell options (the scripts set -euo
# pipefail themselves).

# These are read by the scripts that source this file, not here.
# shellcheck disable=SC2034
{
    ROOT=$(dirname "$HERE")
    TOPO="$HERE/topology.sh"
    LANA="$PREFIX-lanA" GWA="$PREFIX-gwA" GWB="$PREFIX-gwB" LANB="$PREFIX-lanB"
}

# ---------------------------------------------------------------------------------------------
# Messages

say() { printf '%s\n' "$*"; }             # to stdout
log() { printf '%s\n' "$*" >&2; }         # to stderr
msg() { printf '%s\n' "$*" >&"$MSG_FD"; } # progress: to stdout or stderr as the script chose
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
indent() { sed 's/^/    /'; }
# The script's header comment (line 2 up to `set -euo`) as help text.
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[-1]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }

# --suite value -> KEYLEN (bytes of keying material per SPI: AEAD key + 4-byte salt, or CBC key + HMAC key). Needs SUITE; sets KEYLEN.
suite_keylen() {
    # Bytes of keying material per direction (the esp crate's Suite::keymat_len): an AEAD's key
    # and 4-byte salt, or an AES-CBC key followed by its HMAC key (RFC 7296 2.17).
    local enc integ=0
    case "$SUITE" in
        aes128gcm16) KEYLEN=20; return ;;
        aes256gcm16|chacha20poly1305) KEYLEN=36; return ;;
        aes128-*) enc=16 ;;
        aes192-*) enc=24 ;;
        aes256-*) enc=32 ;;
        *) die "unknown suite '$SUITE' (aes128gcm16 | aes256gcm16 | chacha20poly1305 | aes128|aes192|aes256-sha1|sha256|sha384|sha512)" ;;
    esac
    case "${SUITE#*-}" in
        sha1) integ=20 ;;
        sha256) integ=32 ;;
        sha384) integ=48 ;;
        sha512) integ=64 ;;
        *) die "unknown suite '$SUITE': AES-CBC needs one of sha1, sha256, sha384, sha512" ;;
    esac
    KEYLEN=$((enc + integ))
}

# topology.sh with this script's prefix: topo up|down|names. Needs PREFIX, TOPO.
topo() { IRONSEC_NS_PREFIX="$PREFIX" bash "$TOPO" "$@"; }

# ---------------------------------------------------------------------------------------------
# Processes

# True while PID $1 exists and is not a zombie.
alive() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}

# TERM a PID, wait up to 5 s, then KILL. Only for PIDs this script (or its --keep run) started.
# An empty PID is a no-op. Needs PROG.
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do alive "$pid" || return 0; sleep 0.1; done
    log "$PROG: pid $pid ignored SIGTERM for 5 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# Cleanup on every exit: install_cleanup_traps runs the script's own on_exit function (which it
# must define) once, with set +e, on exit and on INT/TERM/HUP (exit status 130/143/129), and
# keeps the exit status.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    on_exit
    exit "$rc"
}
install_cleanup_traps() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# The common part of on_exit: stop both daemons, remove the namespaces and the work directory.
# Needs PID_A, PID_B, WORK (each may be empty), MSG_FD.
teardown() {
    stop_pid "$PID_A"; stop_pid "$PID_B"
    topo down >&"$MSG_FD"
    if [ -n "$WORK" ]; then rm -rf -- "$WORK"; fi
}

# ---------------------------------------------------------------------------------------------
# Binaries

# Sets BIN, D (ironsecd) and CTL (ironsecctl). With IRONSEC_BIN_DIR, the binaries found there;
# otherwise `cargo build --release -p ironsecd` in ROOT (target dir: CARGO_TARGET_DIR, default
# ROOT/target; cargo's output to MSG_FD), or the existing binaries if cargo is not in PATH.
# $1 = always|first: print $2 before every build, or only when there is no ironsecd yet.
# Needs ROOT, PROG, MSG_FD; dies if the binaries are missing or the build fails.
# Where the binaries are: IRONSEC_BIN_DIR, else cargo's release directory (CARGO_TARGET_DIR
# honoured). Sets BIN.
bin_dir() {
    if [ -n "${IRONSEC_BIN_DIR:-}" ]; then
        BIN=$IRONSEC_BIN_DIR
        return
    fi
    case "${CARGO_TARGET_DIR:-}" in
        "") BIN="$ROOT/target/release" ;;
        /*) BIN="$CARGO_TARGET_DIR/release" ;;
        *) BIN="$ROOT/$CARGO_TARGET_DIR/release" ;;
    esac
}

find_binaries() {
    local when=$1 announce=$2
    bin_dir
    if [ -z "${IRONSEC_BIN_DIR:-}" ]; then
        if command -v cargo >/dev/null; then
            if [ "$when" = always ] || ! [ -x "$BIN/ironsecd" ]; then msg "$announce"; fi
            (cd "$ROOT" && cargo build --release -p ironsecd --quiet) >&"$MSG_FD" ||
                die "cargo build --release -p ironsecd failed"
        elif [ -x "$BIN/ironsecd" ]; then
            msg "note: cargo is not in root's PATH; using the existing $BIN/ironsecd (may be stale)"
        else
            die "cargo is not in PATH and $BIN/ironsecd does not exist: build it first (cargo build --release -p ironsecd), set IRONSEC_BIN_DIR, or run with sudo env PATH=\"\$PATH\" $0"
        fi
    fi
    D="$BIN/ironsecd" CTL="$BIN/ironsecctl"
    if ! [ -x "$D" ] || ! [ -x "$CTL" ]; then die "$D or $CTL not found (set IRONSEC_BIN_DIR?)"; fi
}

# ---------------------------------------------------------------------------------------------
# Work directory, configs, keys

# Fresh temporary directory ${TMPDIR:-/tmp}/ironsec-$1.XXXXXX. Sets WORK, KEYS (the keys file
# both static configs point at) and PSK (the pre-shared key file both IKE configs point at).
make_workdir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironsec-$1.XXXXXX")
    KEYS="$WORK/site.keys"
    PSK="$WORK/site.psk"
}

# Copy of example config $1 to $2 with only the control socket ($3), keys file and ESP suite
# changed. Needs KEYS, SUITE; dies if the example's layout no longer matches.
make_config() { # example out socket
    sed -e "s|^control_socket = \"[^\"]*\"|control_socket = \"$3\"|" \
        -e "s|^keys_file = \"[^\"]*\"|keys_file = \"$KEYS\"|" \
        -e "s|^esp = \"[^\"]*\"|esp = \"$SUITE\"|" "$1" >"$2"
    if ! grep -q "^control_socket = \"$3\"" "$2" || ! grep -q "^keys_file = \"$KEYS\"" "$2" ||
        ! grep -q "^esp = \"$SUITE\"" "$2"; then
        die "could not derive $2 from $1 (did the example's layout change?)"
    fi
}

# First quoted value of key $1 in file $2.
field() { sed -n "s/.*\\b$1 = \"\\([^\"]*\\)\".*/\\1/p" "$2" | head -n1; }

# WORK/gwA.toml and WORK/gwB.toml (control sockets WORK/gwA.sock, WORK/gwB.sock) from
# conf/static-gw-a.toml and conf/static-gw-b.toml. Needs ROOT, WORK, KEYS, SUITE. Sets SPI_AB
# (gwA's spi_out), SPI_BA (gwA's spi_in), TUN_A and TUN_B (the TUN device names).
write_configs() {
    make_config "$ROOT/conf/static-gw-a.toml" "$WORK/gwA.toml" "$WORK/gwA.sock"
    make_config "$ROOT/conf/static-gw-b.toml" "$WORK/gwB.toml" "$WORK/gwB.sock"
    SPI_AB=$(field spi_out "$WORK/gwA.toml") SPI_BA=$(field spi_in "$WORK/gwA.toml")
    TUN_A=$(field tun "$WORK/gwA.toml") TUN_B=$(field tun "$WORK/gwB.toml")
    if [ -z "$SPI_AB" ] || [ -z "$SPI_BA" ] || [ -z "$TUN_A" ] || [ -z "$TUN_B" ]; then
        die "could not read spi_out/spi_in/tun from the example configs"
    fi
}

# Fresh random keys (KEYLEN bytes: key || 4-byte salt), one per SPI, shared by both gateways,
# written to KEYS with mode 600. Needs KEYS, KEYLEN, SPI_AB, SPI_BA.
write_keys() {
    (
        umask 077
        for spi in "$SPI_AB" "$SPI_BA"; do
            printf '%s = "%s"\n' "$spi" "$(head -c "$KEYLEN" /dev/urandom | od -An -tx1 | tr -d ' \n')"
        done >"$KEYS"
    )
    chmod 600 "$KEYS"
}

# Copy of IKE example config $1 to $2 with only the control socket ($3) and psk_file changed,
# and, if SUITE is not empty, the proposals: ike_proposals = ["SUITE-prfsha256-x25519"],
# esp_proposals = ["SUITE"]. Needs PSK, SUITE (may be empty); dies if the example's layout no
# longer matches.
make_ike_config() { # example out socket
    local ike="" esp="" args=()
    if [ -n "$SUITE" ]; then
        ike="[\"$SUITE-prfsha256-x25519\"]" esp="[\"$SUITE\"]"
        args=(-e "s|^ike_proposals = \\[[^]]*\\]|ike_proposals = $ike|"
              -e "s|^esp_proposals = \\[[^]]*\\]|esp_proposals = $esp|")
    fi
    sed -e "s|^control_socket = \"[^\"]*\"|control_socket = \"$3\"|" \
        -e "s|^psk_file = \"[^\"]*\"|psk_file = \"$PSK\"|" "${args[@]}" "$1" >"$2"
    if ! grep -q "^control_socket = \"$3\"" "$2" || ! grep -q "^psk_file = \"$PSK\"" "$2" ||
        ! grep -q '^keying = "ike"' "$2" ||
        { [ -n "$ike" ] && ! grep -qF "ike_proposals = $ike" "$2"; } ||
        { [ -n "$esp" ] && ! grep -qF "esp_proposals = $esp" "$2"; }; then
        die "could not derive $2 from $1 (did the example's layout change?)"
    fi
}

# WORK/gwA.toml and WORK/gwB.toml (control sockets WORK/gwA.sock, WORK/gwB.sock) from
# conf/ike-gw-a.toml (initiator) and conf/ike-gw-b.toml (responder), or from the examples
# conf/$1-gw-a.toml and conf/$1-gw-b.toml (e.g. "ipv6": the IPv6 WAN pair). Needs ROOT, WORK,
# PSK, SUITE (may be empty: the examples' proposals). Sets TUN_A and TUN_B.
write_ike_configs() { # [example-prefix, default ike]
    local ex=${1:-ike}
    make_ike_config "$ROOT/conf/$ex-gw-a.toml" "$WORK/gwA.toml" "$WORK/gwA.sock"
    make_ike_config "$ROOT/conf/$ex-gw-b.toml" "$WORK/gwB.toml" "$WORK/gwB.sock"
    TUN_A=$(field tun "$WORK/gwA.toml") TUN_B=$(field tun "$WORK/gwB.toml")
    if [ -z "$TUN_A" ] || [ -z "$TUN_B" ]; then die "could not read tun from the example configs"; fi
}

# WORK/gwA.toml and WORK/gwB.toml (derived from conf/static-gw-*.toml or conf/ike-gw-*.toml)
# with their tunnel over the IPv6 WAN of topology.sh IRONSEC_IPV6=1: `{ local = "192.0.2.N",
# remote = "192.0.2.M"` becomes `{ local = "2001:db8:f::N", remote = "2001:db8:f::M"`; the
# selectors stay as they are. Returns 1 with FAIL set if a file has no such tunnel line.
configs_to_wan6() {
    local f
    for f in "$WORK/gwA.toml" "$WORK/gwB.toml"; do
        sed -i -E 's/\{ local = "192\.0\.2\.([0-9]+)", remote = "192\.0\.2\.([0-9]+)"/{ local = "2001:db8:f::\1", remote = "2001:db8:f::\2"/' "$f"
        grep -qE '\{ local = "2001:db8:f::[0-9]+", remote = "2001:db8:f::[0-9]+"' "$f" ||
            { FAIL="could not move the tunnel of $f to the IPv6 WAN (did the example's layout change?)"; return 1; }
    done
}

# A fresh random pre-shared key, "0x" and 64 hex digits (32 bytes), shared by both gateways,
# written to PSK with mode 600. Needs PSK.
write_psk() {
    (
        umask 077
        printf '0x%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$PSK"
    )
    chmod 600 "$PSK"
}

# `ironsecd check` of both configs inside their namespaces; dies (output on stderr) if one
# fails. Needs D, PREFIX, WORK.
check_configs() {
    local g
    for g in gwA gwB; do
        ip netns exec "$PREFIX-$g" "$D" check --config "$WORK/$g.toml" >"$WORK/$g.check" 2>&1 ||
            { indent <"$WORK/$g.check" >&2; die "ironsecd check --config $WORK/$g.toml failed"; }
    done
}

# ---------------------------------------------------------------------------------------------
# Daemons

# Start ironsecd in gateway $1 (gwA|gwB) in the background with config WORK/$1.toml (log
# WORK/$1.log; IRONSEC_LOG, default $2). Needs D, PREFIX, WORK; sets PID_A or PID_B. Does not
# wait: see wait_ready.
start_gateway() { # gw default-log-level
    IRONSEC_LOG="${IRONSEC_LOG:-$2}" ip netns exec "$PREFIX-$1" "$D" --config "$WORK/$1.toml" \
        </dev/null >"$WORK/$1.log" 2>&1 &
    case "$1" in
        gwA) PID_A=$! ;;
        gwB) PID_B=$! ;;
    esac
}

# Start ironsecd in gwA and gwB (in that order; see start_gateway). Sets PID_A and PID_B.
start_gateways() { # default-log-level
    start_gateway gwA "$1"
    start_gateway gwB "$1"
}

# Wait up to 10 s for the ironsecd of gateway $1 (gwA|gwB, PID $2) to answer
# `ironsecctl --socket WORK/$1.sock status`. Returns 0 once it does; otherwise 1, with
# NOT_READY set to why ("exited during startup" or "not ready after ..."). Needs CTL, WORK.
wait_ready() { # gw pid
    local t0=$SECONDS sock="$WORK/$1.sock"
    NOT_READY=""
    for _ in $(seq 100); do
        if "$CTL" --socket "$sock" status >/dev/null 2>&1; then return 0; fi
        if ! alive "$2"; then
            NOT_READY="exited during startup"
            return 1
        fi
        sleep 0.1
    done
    NOT_READY="not ready after $((SECONDS - t0)) s ('ironsecctl --socket $sock status' keeps failing)"
    return 1
}

# ironsecctl for side $1 (its socket $WORK/$1.sock) with the rest of the arguments, bounded to
# CTL_TIMEOUT s (default 60: a daemon busy bringing up thousands of tunnels answers slowly, but
# must answer). Needs CTL, WORK. The scale scripts' sides are hub, spk and peer.
ctl() { # side args...
    local side=$1
    shift
    timeout -k 5 "${CTL_TIMEOUT:-60}" "$CTL" --socket "$WORK/$side.sock" "$@"
}

# Wait up to $3 s (default 60) for side $1's daemon (PID $2, log $WORK/$1.log) to answer
# status; dies with the log's tail otherwise.
wait_daemon() { # side pid [secs]
    local secs=${3:-60} deadline
    deadline=$(( $(now_ns) + secs * 1000000000 ))
    while [ "$(now_ns)" -lt "$deadline" ]; do
        if ctl "$1" status >/dev/null 2>&1; then return 0; fi
        alive "$2" || { tail -n 20 "$WORK/$1.log" | indent >&2; die "the $1's ironsecd exited during startup"; }
        sleep 0.05
    done
    tail -n 20 "$WORK/$1.log" | indent >&2
    die "the $1's ironsecd does not answer on $WORK/$1.sock after $secs s"
}

# Sets JSON to the tool counters uses: python3, else jq; dies if neither is installed.
pick_json_tool() {
    if command -v python3 >/dev/null; then JSON=python3
    elif command -v jq >/dev/null; then JSON=jq
    else die "need python3 or jq to read 'ironsecctl status --json' (Debian: apt-get install python3)"; fi
}

# Packets and bytes over all tunnels' outbound and inbound SAs of the daemon at control socket
# $1, summed: prints "out_pkts out_bytes in_pkts in_bytes"; returns 1 if ironsecctl fails.
# Needs CTL, JSON (pick_json_tool).
counters() {
    local out
    out=$("$CTL" --socket "$1" status --json) || return 1
    if [ "$JSON" = python3 ]; then
        python3 -c '
import json, sys
d = json.load(sys.stdin)
s = [0, 0, 0, 0]
for c in d.get("connections") or []:
    for t in c.get("tunnels") or []:
        for i, k in ((0, "outbound"), (2, "inbound")):
            sa = t.get(k) or {}
            s[i] += int(sa.get("packets") or 0)
            s[i + 1] += int(sa.get("bytes") or 0)
print(*s)' <<<"$out"
    else
        jq -r '[.connections[]?.tunnels[]?] as $t
               | [([$t[].outbound.packets // 0] | add // 0), ([$t[].outbound.bytes // 0] | add // 0),
                  ([$t[].inbound.packets // 0] | add // 0), ([$t[].inbound.bytes // 0] | add // 0)]
               | map(tostring) | join(" ")' <<<"$out"
    fi
}

# The first tunnel of the daemon at control socket $1 as "LOCAL -> REMOTE" (addresses without
# ports, from ironsecctl status --json); returns 1 if ironsecctl fails or there is no tunnel.
# Needs CTL, JSON.
tunnel_endpoints() {
    local out line
    out=$("$CTL" --socket "$1" status --json) || return 1
    if [ "$JSON" = python3 ]; then
        line=$(python3 -c '
import json, sys
def host(a):
    a = str(a or "")
    if a.startswith("["):
        return a[1:a.index("]")]
    return a.rsplit(":", 1)[0] if a.count(":") == 1 else a
d = json.load(sys.stdin)
for c in d.get("connections") or []:
    for t in c.get("tunnels") or []:
        print(host(t.get("local")), "->", host(t.get("remote")))
        sys.exit()' <<<"$out")
    else
        line=$(jq -r 'def host: tostring | if startswith("[") then ltrimstr("[") | split("]")[0]
                      elif (split(":") | length) == 2 then split(":")[0] else . end;
               first(.connections[]?.tunnels[]?) | "\(.local | host) -> \(.remote | host)"' <<<"$out")
    fi
    [ -n "$line" ] || return 1
    printf '%s\n' "$line"
}

# The first IKE tunnel of the daemon at control socket $1, one line of 10 words ("-" where a
# value is missing): state children algorithms spi_i spi_r initiator out_spi out_suite in_spi
# in_suite. Returns 1 if ironsecctl fails or the daemon has no IKE tunnel. Needs CTL, JSON.
ike_tunnel() {
    local out line
    out=$("$CTL" --socket "$1" status --json) || return 1
    if [ "$JSON" = python3 ]; then
        line=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
for c in d.get("connections") or []:
    for t in c.get("tunnels") or []:
        i = t.get("ike")
        if not i:
            continue
        o, n = t.get("outbound") or {}, t.get("inbound") or {}
        v = [i.get("state"), i.get("children"), i.get("algorithms"), i.get("spi_i"),
             i.get("spi_r"), i.get("initiator"), o.get("spi"), o.get("suite"), n.get("spi"),
             n.get("suite")]
        print(*["-" if x is None or x == "" else str(x).lower() for x in v])
        sys.exit()' <<<"$out")
    else
        line=$(jq -r 'first(.connections[]?.tunnels[]? | select(.ike != null)) as $t
               | [$t.ike.state, $t.ike.children, $t.ike.algorithms, $t.ike.spi_i, $t.ike.spi_r,
                  $t.ike.initiator, $t.outbound.spi, $t.outbound.suite, $t.inbound.spi,
                  $t.inbound.suite]
               | map(if . == null or . == "" then "-" else tostring end) | join(" ")' <<<"$out")
    fi
    [ -n "$line" ] || return 1
    printf '%s\n' "$line"
}

# Wait up to $3 seconds (default 10, wall clock) for the ironsecd of gateway $1 (gwA|gwB, PID
# $2) to show its IKE SA established with at least one CHILD_SA and both ESP SAs installed,
# polling `ironsecctl status --json`. Returns 0 with IKE_LINE set to its ike_tunnel line;
# otherwise 1, with NOT_UP set to why (the daemon exited, or the last state seen). Needs CTL,
# JSON, WORK.
wait_established() { # gw pid [timeout-secs]
    local sock="$WORK/$1.sock" deadline st ch out_spi in_spi
    deadline=$(( $(date +%s%N) + ${3:-10} * 1000000000 ))
    IKE_LINE="" NOT_UP=""
    while [ "$(date +%s%N)" -lt "$deadline" ]; do
        if IKE_LINE=$(ike_tunnel "$sock" 2>/dev/null); then
            read -r st ch _ _ _ _ out_spi _ in_spi _ <<<"$IKE_LINE"
            if [ "$st" = established ] && [ "$ch" != - ] && [ "$ch" -ge 1 ] &&
                [ "$out_spi" != - ] && [ "$in_spi" != - ]; then
                return 0
            fi
        fi
        if ! alive "$2"; then
            NOT_UP="ironsecd exited"
            return 1
        fi
        sleep 0.02
    done
    NOT_UP="no established IKE SA with a CHILD_SA after ${3:-10} s (last seen: ${IKE_LINE:-no IKE SA})"
    IKE_LINE=""
    return 1
}

# Seconds (3 decimals) between the first log line of file $1 containing $2 and the first one
# after it containing $3, from the log lines' RFC 3339 UTC timestamps; prints nothing if either
# line is missing (e.g. IRONSEC_LOG=warn).
log_interval() { # log from to
    awk -v a="$2" -v b="$3" '
        function secs(ts,  t) {   # 2026-01-02T13:27:27.681582Z -> seconds of the day
            t = substr(ts, 12); sub(/Z$/, "", t); split(t, f, ":")
            return f[1] * 3600 + f[2] * 60 + f[3]
        }
        t0 == "" && index($0, a) { t0 = secs($1); next }
        t0 != "" && index($0, b) { d = secs($1) - t0; if (d < 0) d += 86400; printf "%.3f\n", d; exit }
    ' "$1"
}

# ---------------------------------------------------------------------------------------------
# Measuring helpers of idle-hub.sh and route-scale.sh (CPU time of a process, wall clock).

# Whether $1 is a whole number in $2..=$3 (option checks).
is_count() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

now_ns() { date +%s%N; }

# Seconds (3 decimals) from nanosecond timestamps $1 to $2.
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# Run time of PID $1 in nanoseconds, summed over its threads (/proc/PID/task/*/schedstat, first
# field: exact, where utime+stime are counted in whole clock ticks); "-" without schedstat.
run_ns() {
    local sum=0 f t
    for f in /proc/"$1"/task/*/schedstat; do
        { read -r t _ <"$f"; } 2>/dev/null || continue   # a thread that just exited
        sum=$((sum + t))
    done
    if [ -e "/proc/$1/task" ] && [ "$sum" -gt 0 ]; then echo "$sum"; else echo -; fi
}

# utime+stime of PID $1 in clock ticks (all threads); dies if the process is gone.
cpu_ticks() {
    local st f
    st=$(cat "/proc/$1/stat" 2>/dev/null) || die "process $1 is gone"
    st=${st##*) }
    read -ra f <<<"$st"
    echo $((f[11] + f[12]))
}

# CPU % of one core from run times $1 -> $2 (ns, or "-") over wall clock $3 -> $4 (ns), 3
# decimals; null without schedstat.
ns_pct() {
    if [ "$1" = - ] || [ "$2" = - ]; then echo null; return; fi
    awk -v a="$1" -v b="$2" -v s="$3" -v e="$4" 'BEGIN { printf "%.3f", (b - a) / (e - s) * 100 }'
}

# ---------------------------------------------------------------------------------------------
# Measuring helpers of route-scale.sh, p2s-scale.sh and scale.sh (memory, drops, machine CPU).

# Field $2 (VmRSS, VmHWM) of /proc/PID/status in KiB.
vm_kib() { # pid field
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# The kernel's UDP receive-buffer drops (/proc/net/snmp Udp RcvbufErrors) in namespace $1.
udp_rcvbuf_errors() { # namespace
    ip netns exec "$1" awk '$1 == "Udp:" && !h { for (i = 1; i <= NF; i++) c[$i] = i; h = 1; next }
        $1 == "Udp:" { print $c["RcvbufErrors"] }' /proc/net/snmp
}

# "busy steal total" clock ticks of all CPUs from /proc/stat (steal: time the hypervisor gave
# this machine's CPUs to someone else, which a TCP figure on a shared host depends on).
cpu_ticks_all() {
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6 - $9, $9, t; exit }' /proc/stat
}

# "busy steal" % of the machine's CPU time between two cpu_ticks_all lines $1 and $2.
cpu_busy_steal() { # before after
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[3] - x[3]; if (t <= 0) t = 1; printf "%.1f %.1f\n", (y[1] - x[1]) / t * 100, (y[2] - x[2]) / t * 100 }'
}

# Ratio $1 / $2 with 3 decimals, or null when either is null or $2 is 0.
ratio() {
    if [ "$1" = null ] || [ "$2" = null ]; then echo null; return; fi
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "null"; else printf "%.3f", a / b }'
}
