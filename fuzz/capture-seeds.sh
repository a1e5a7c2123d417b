#!/usr/bin/env bash
# Captures real IKEv2/ESP conversations in network namespaces and turns them into fuzz seeds
# (fuzz/corpus/{ike_message,ike_responder,esp_open}/capture-*, via fuzz/extract-seeds.py).
#
# Scenarios, each in a fresh netns-scripts/topology.sh topology (prefix "fzcap"; gwA 192.0.2.1
# initiates, gwB 192.0.2.2 responds, as in the ike_responder target), tcpdump -w on gwA's
# `wan` from before the first datagram:
#   ironsec-SUITE   ironsecd -> ironsecd (conf/ike-gw-{a,b}.toml; aes256gcm16, aes128gcm16-esn,
#                   chacha20poly1305): IKE_SA_INIT, IKE_AUTH, pings (ESP), `ironsecctl terminate`
#                   (INFORMATIONAL delete), `ironsecctl initiate` again, pings
#   strongswan-init strongSwan (gwA) -> ironsecd (gwB): swanctl --initiate, pings, CHILD_SA and
#                   IKE SA rekey by strongSwan, pings, swanctl --terminate
#   strongswan-resp ironsecd (gwA) -> strongSwan (gwB, conf/strongswan/swanctl.conf): the same
#                   with strongSwan rekeying as the responder and ironsecctl terminate
#   static-SUITE    manually keyed ironsecd <-> ironsecd (conf/static-gw-{a,b}.toml, ESN; suites
#                   aes128gcm16, aes256gcm16, chacha20poly1305) keyed with the esp_open
#                   target's fixed key, so that the captured ESP packets to gwA decrypt there;
#                   pings of several sizes
#
# Usage (as root): fuzz/capture-seeds.sh [--pcap-dir DIR] [--corpus DIR] [--only SCENARIO]
#   --pcap-dir  also keep the captures there (SCENARIO.pcap)
#   --corpus    where the seeds go (default fuzz/corpus); files are overwritten, never removed
#   --only      run one scenario (e.g. ironsec-aes128gcm16-esn, strongswan-init)
# Environment: IRONSEC_BIN_DIR (use the ironsecd/ironsecctl found there instead of
# `cargo build --release -p ironsecd`), IRONSEC_CAPTURE_PREFIX (namespace prefix, default fzcap).
# Needs: iproute2, tcpdump, python3, ping, strongSwan as for tests/interop_strongswan.rs
# (tests/install-deps.sh). Traffic stays inside the namespaces it creates; everything it
# started (daemons, charon, tcpdump, namespaces, its temporary directory) is removed on exit.
set -euo pipefail

FUZZ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HERE=$(cd "$FUZZ/../netns-scripts" && pwd)
# shellcheck disable=SC2034  # read by lib.sh
PROG=capture-seeds.sh MSG_FD=2
PREFIX="${IRONSEC_CAPTURE_PREFIX:-fzcap}"
# shellcheck source=../netns-scripts/lib.sh
. "$HERE/lib.sh"    # ROOT TOPO LANA GWA GWB LANB; topo find_binaries write_ike_configs ...

PCAP_DIR="" CORPUS="$FUZZ/corpus" ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --pcap-dir) [ $# -ge 2 ] || die "--pcap-dir needs a value"; PCAP_DIR=$2; shift ;;
        --corpus) [ $# -ge 2 ] || die "--corpus needs a value"; CORPUS=$2; shift ;;
        --only) [ $# -ge 2 ] || die "--only needs a value"; ONLY=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, TUN devices)"
for c in ip tcpdump python3 ping swanctl; do
    command -v "$c" >/dev/null || die "$c is not installed (see tests/install-deps.sh)"
done

WORK="" PID_A="" PID_B="" TCPDUMP_PID="" SW_DIR="" SUITE=""
SW="$HERE/strongswan.sh"

stop_capture() {
    [ -n "$TCPDUMP_PID" ] || return 0
    sleep 0.3   # the last datagrams
    kill -INT "$TCPDUMP_PID" 2>/dev/null || true
    wait "$TCPDUMP_PID" 2>/dev/null || true
    TCPDUMP_PID=""
}
stop_charon() {
    [ -n "$SW_DIR" ] || return 0
    bash "$SW" stop "$SW_DIR" >&2 || true
    SW_DIR=""
}
# Run by lib.sh's cleanup trap on every exit.
on_exit() {
    stop_capture
    stop_charon
    teardown    # daemons PID_A/PID_B, namespaces, WORK
}
install_cleanup_traps

find_binaries first "building ironsecd (cargo build --release -p ironsecd)"
pick_json_tool
make_workdir fuzzcap

# tcpdump on gwA's WAN into WORK/$1.pcap, started before anything talks.
start_capture() {
    timeout 120 ip netns exec "$GWA" tcpdump -n -U --immediate-mode -s 0 -i wan -w "$WORK/$1.pcap" udp \
        2>"$WORK/$1.tcpdump" &
    TCPDUMP_PID=$!
    for _ in $(seq 50); do grep -q 'listening on' "$WORK/$1.tcpdump" 2>/dev/null && return 0; sleep 0.1; done
    die "tcpdump did not start: $(cat "$WORK/$1.tcpdump")"
}

pings() { # count
    ip netns exec "$LANA" ping -n -q -c "$1" -i 0.2 -W 1 10.2.0.2 >/dev/null ||
        log "$PROG: warning: not every ping crossed the tunnel"
}

ctl() { # gw args...
    local gw=$1
    shift
    "$CTL" --socket "$WORK/$gw.sock" "$@" >/dev/null
}

swan() { # args... (swanctl of the running charon)
    timeout 30 bash "$SW" swanctl "$SW_DIR" "$@" >>"$WORK/swanctl.out" 2>&1 ||
        log "$PROG: warning: swanctl $* failed: $(tail -n 3 "$WORK/swanctl.out")"
}

start_charon() { # ns swanctl.conf-text
    SW_DIR="$WORK/sw"
    rm -rf "$SW_DIR"
    mkdir -m 700 "$SW_DIR"
    (umask 077; printf '%s\n' "$2" >"$SW_DIR/swanctl.conf")
    bash "$SW" start "$1" "$SW_DIR" >/dev/null || die "charon did not start in $1"
}

stop_daemons() {
    stop_pid "$PID_A"; stop_pid "$PID_B"
    PID_A="" PID_B=""
}

up_or_die() { # gw pid
    wait_ready "$1" "$2" || { cat "$WORK/$1.log" >&2; die "ironsecd in $1: $NOT_READY"; }
}

# Seeds from WORK/$1.pcap; $2.. are extract-seeds.py options.
extract() {
    local name=$1
    shift
    stop_capture
    [ -z "$PCAP_DIR" ] || { mkdir -p "$PCAP_DIR"; cp "$WORK/$name.pcap" "$PCAP_DIR/"; }
    python3 "$FUZZ/extract-seeds.py" --corpus "$CORPUS" "$@" "$name" "$WORK/$name.pcap"
}

# ironsecd -> ironsecd with the example configs' layout and suite $1; $2 = esn: extended
# sequence numbers on the CHILD_SA.
scenario_ironsec() {
    local name="ironsec-$1${2:+-$2}" esn=()
    SUITE=$1
    msg "== $name"
    topo up >&2
    write_ike_configs
    if [ "${2:-}" = esn ]; then
        sed -i "s|^esp_proposals = .*|esp_proposals = [\"$1-esn\"]|" "$WORK/gwA.toml" "$WORK/gwB.toml"
        esn=(--esn)
    fi
    write_psk
    check_configs
    start_capture "$name"
    start_gateway gwB debug
    up_or_die gwB "$PID_B"
    start_gateway gwA debug
    up_or_die gwA "$PID_A"
    wait_established gwA "$PID_A" 10 || die "$name: $NOT_UP"
    pings 4
    ctl gwA terminate site-b
    sleep 0.5
    ctl gwA initiate site-b --timeout 10
    pings 2
    stop_daemons
    extract "$name" --suite "$1" "${esn[@]}"
    topo down >&2
}

# Manually keyed ironsecd <-> ironsecd (conf/static-gw-{a,b}.toml, ESN: static keying requires
# it) with suite $1 and the esp_open target's key for every SPI: gwB's packets to gwA carry the
# target's SPI (gwA's spi_in, 0xc0000201), so they authenticate and decrypt in the harness as
# they are. Pings of several sizes (every pad length); no offloads, one ESP packet per datagram.
scenario_static() {
    local name="static-$1" size
    SUITE=$1
    msg "== $name"
    topo up >&2
    suite_keylen
    write_configs
    [ "$SPI_BA" = 0xc0000201 ] || die "conf/static-gw-a.toml: spi_in is $SPI_BA, the esp_open target's SPI is 0xc0000201"
    sed -i -e 's|^udp_offload = .*|udp_offload = false|' -e 's|^tun_offload = .*|tun_offload = false|' \
        "$WORK/gwA.toml" "$WORK/gwB.toml"
    grep -q '^esn = true' "$WORK/gwA.toml" || die "conf/static-gw-a.toml no longer has esn = true"
    # fuzz_targets/esp_open.rs keymat(): byte i = 7 i + 3.
    (
        umask 077
        for spi in "$SPI_AB" "$SPI_BA"; do
            printf '%s = "%s"\n' "$spi" "$(python3 -c \
                "import sys; print(bytes((7 * i + 3) & 255 for i in range(int(sys.argv[1]))).hex())" "$KEYLEN")"
        done >"$KEYS"
    )
    check_configs
    start_capture "$name"
    start_gateways debug
    up_or_die gwA "$PID_A"
    up_or_die gwB "$PID_B"
    for size in 0 1 2 3 56 1372; do
        ip netns exec "$LANA" ping -n -q -c 1 -W 1 -s "$size" 10.2.0.2 >/dev/null ||
            log "$PROG: warning: ping -s $size did not cross the tunnel"
    done
    stop_daemons
    extract "$name" --suite "$1" --esn --esp 8
    topo down >&2
}

# strongSwan in gwA initiates to ironsecd in gwB. (Not with ESN: libipsec cannot install such
# SAs, "failed to create SAD entry".)
scenario_strongswan_init() {
    local name=strongswan-init
    SUITE=aes128gcm16
    msg "== $name"
    topo up >&2
    write_ike_configs
    write_psk
    check_configs
    start_capture "$name"
    start_gateway gwB debug
    up_or_die gwB "$PID_B"
    start_charon "$GWA" "$(cat <<EOF
connections {
    gw-b {
        version = 2
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2
        proposals = aes128gcm16-prfsha256-x25519
        encap = yes
        fragmentation = yes
        dpd_delay = 5s
        local {
            auth = psk
            id = gw-a.example
        }
        remote {
            auth = psk
            id = gw-b.example
        }
        children {
            site-b {
                local_ts = 10.1.0.0/24
                remote_ts = 10.2.0.0/24
                esp_proposals = aes128gcm16
                start_action = none
                dpd_action = clear
                close_action = none
            }
        }
    }
}
secrets {
    ike-gw-b {
        id-a = gw-a.example
        id-b = gw-b.example
        secret = $(cat "$PSK")
    }
}
EOF
)"
    swan --initiate --child site-b --timeout 10
    pings 4
    swan --rekey --child site-b
    sleep 1
    swan --rekey --ike gw-b
    sleep 1
    pings 2
    swan --terminate --ike gw-b --timeout 5
    stop_charon
    stop_daemons
    extract "$name" --suite aes128gcm16
    topo down >&2
}

# ironsecd in gwA initiates to strongSwan in gwB (conf/strongswan/, as the interop tests).
scenario_strongswan_resp() {
    local name=strongswan-resp
    SUITE=""
    msg "== $name"
    topo up >&2
    write_psk
    make_ike_config "$ROOT/conf/strongswan/ironsec-gw-a.toml" "$WORK/gwA.toml" "$WORK/gwA.sock"
    ip netns exec "$GWA" "$D" check --config "$WORK/gwA.toml" >&2 || die "gwA config refused"
    start_charon "$GWB" "$(sed "s|^\( *secret = \).*|\1$(cat "$PSK")|" "$ROOT/conf/strongswan/swanctl.conf")"
    start_capture "$name"
    start_gateway gwA debug
    up_or_die gwA "$PID_A"
    wait_established gwA "$PID_A" 10 || die "$name: $NOT_UP"
    pings 4
    swan --rekey --child site-a
    sleep 1
    swan --rekey --ike gw-a
    sleep 1
    pings 2
    ctl gwA terminate site-b
    sleep 0.5
    stop_daemons
    stop_charon
    extract "$name" --suite aes128gcm16
    topo down >&2
}

for s in ironsec-aes256gcm16 ironsec-aes128gcm16-esn ironsec-chacha20poly1305 strongswan-init \
    strongswan-resp static-aes128gcm16 static-aes256gcm16 static-chacha20poly1305; do
    [ -z "$ONLY" ] || [ "$ONLY" = "$s" ] || continue
    case "$s" in
        static-*) scenario_static "${s#static-}" ;;
        ironsec-aes128gcm16-esn) scenario_ironsec aes128gcm16 esn ;;
        ironsec-*) scenario_ironsec "${s#ironsec-}" ;;
        strongswan-init) scenario_strongswan_init ;;
        strongswan-resp) scenario_strongswan_resp ;;
    esac
done
msg "done: seeds in $CORPUS"
