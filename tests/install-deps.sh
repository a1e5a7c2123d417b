#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need on a Debian machine (as root).
# Rust itself (cargo, rustc, rustfmt, clippy) is expected to be installed already (rustup).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" = 0 ] || { echo "install-deps.sh: run as root" >&2; exit 1; }
apt-get update -qq
# iproute2/iputils-ping/nftables/procps: namespaces, pings, sysctl, packet loss rules;
# iperf3: throughput; tcpdump + tshark: WAN captures and the outside judge of the wire format;
# jq/python3: scripts parse JSON; systemd: systemd-analyze, with which tests/systemd_unit.rs
# verifies systemd/ironsecd.service (no running systemd needed: it works in containers too).
# strongswan-*: the interop peer (netns-scripts/strongswan.sh, tests/interop_strongswan.rs):
# charon and swanctl, kernel-libipsec (ESP in userspace, libcharon-extra-plugins; the kernel here
# has no ESP transform), curve25519 (libstrongswan-extra-plugins), AES-GCM (-standard-plugins).
# strongswan.sh runs its own charon per namespace (own /run, VICI socket, config): a system
# charon the packages may start on a systemd host stays in the root namespace, apart.
# libcharon-extauth-plugins: strongSwan's eap-mschapv2 plugin (and xauth-generic), which Debian 12
# ships apart from libcharon-extra-plugins (that one has eap-identity, eap-tls, eap-radius and
# kernel-libipsec): the remote-access clients and the strongSwan gateway of
# tests/interop_remote_access.rs authenticate users with EAP-MSCHAPv2
# (conf/strongswan/strongswan-rw.conf loads it).
# strongswan-pki: strongSwan's `pki` tool (no service), with which tests/common/pki.rs makes the
# test PKI (RSA and ECDSA CAs, gateway certificates, CRLs) of tests/interop_certs.rs.
# ethtool: netns-scripts/bench.sh --lan-gro and tests/static_tunnel.rs turn on GRO for forwarded UDP
# on a gateway's LAN veth, so that the TUN device hands over UDP super-packets.
# wireguard-tools: wg(8), with which netns-scripts/bench.sh configures its boringtun peer
# (boringtun-cli itself is installed by bench.sh with cargo when missing, not here: CI does not
# run benchmarks).
# g++: libfuzzer-sys builds libFuzzer (C++) for the fuzz smoke runs.
# libfaketime: tests/faults.rs jumps the system clock a daemon sees (and only that daemon's).
# python3-seccomp: libseccomp's binding, with which tests/tools/unit_sandbox.py applies the
# systemd unit's syscall filter to ironsecd (tests/unit_sandbox.rs; systemd is not PID 1 here).
# gdb (gcore) + libcap2-bin (capsh): tests/core_dumps.rs tries to dump the daemon as an operator
# without CAP_SYS_PTRACE would.
# man-db, zsh, fish: tests/package.rs renders the installed man pages with man(1) and runs the
# installed completions in each shell (dpkg, util-linux's unshare/nsenter/setpriv and
# systemd-analyze, which it also uses, are here already).
apt-get install -y -qq --no-install-recommends \
    iproute2 iputils-ping nftables procps iperf3 tcpdump tshark jq python3 ca-certificates gcc \
    systemd \
    strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins \
    libstrongswan-standard-plugins libcharon-extauth-plugins strongswan-pki \
    wireguard-tools ethtool \
    libfaketime g++ python3-seccomp gdb libcap2-bin man-db zsh fish \
    >/dev/null
# Packages whose maintainer scripts would start a system daemon (their init script where systemd
# is not PID 1, the unit where it is) that the tests never want running: the tests start their
# own instances, each in a namespace with its own config, socket and pid file, and a system one
# would sit in the root namespace, holding ports and pid files and, for routing and VRRP
# daemons, possibly talking on the host's real interfaces. So while they install, a policy-rc.d
# refuses every start (exit 101), an existing one is put back afterwards, and whatever started
# anyway is stopped and disabled. Usage: install_quietly PACKAGE SERVICE...
install_quietly() {
    local pkg=$1 svc rc=0 had_policy=0
    shift
    if [ -e /usr/sbin/policy-rc.d ]; then had_policy=1; mv /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.ironsec; fi
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null || rc=$?
    rm -f /usr/sbin/policy-rc.d
    if [ "$had_policy" = 1 ]; then mv /usr/sbin/policy-rc.d.ironsec /usr/sbin/policy-rc.d; fi
    [ "$rc" = 0 ] || exit "$rc"
    for svc in "$@"; do
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
            if command -v update-rc.d >/dev/null 2>&1; then update-rc.d "$svc" disable >/dev/null 2>&1 || true; fi
        fi
    done
}
# prometheus: ships promtool, with which tests/observability.rs checks and unit-tests
# contrib/prometheus/ironsec-alerts.yml. Only promtool is wanted, not a Prometheus server.
if ! command -v promtool >/dev/null 2>&1; then install_quietly prometheus prometheus; fi
# bird2: BIRD 2 (bird, birdc), the routing daemon of route-based connections (BGP and BFD over
# the tunnel interfaces): tests/route_bgp.rs and netns-scripts/route-based.sh run one per
# gateway namespace, and tests/route_bgp.rs parses conf/bird/*.conf with `bird -p`. The
# package's own bird (service bird) is not wanted.
if ! command -v bird >/dev/null 2>&1 || ! command -v birdc >/dev/null 2>&1; then install_quietly bird2 bird; fi
# freeradius + freeradius-utils (radtest, radclient): the RADIUS server of
# tests/interop_remote_access.rs's `eap-radius` test (tests/common/radius.rs runs its own
# instance in a namespace, with its own config directory); the package's service is not wanted.
if ! command -v freeradius >/dev/null 2>&1; then install_quietly freeradius freeradius; fi
if ! command -v radtest >/dev/null 2>&1; then apt-get install -y -qq --no-install-recommends freeradius-utils >/dev/null; fi
# keepalived: VRRP for tests/ha_active_standby.rs (tests/common/keepalived.rs runs one per
# gateway namespace with its own config and pid files, moving the shared address between two
# ironsecd gateways). The package's own service is not wanted.
if ! command -v keepalived >/dev/null 2>&1; then install_quietly keepalived keepalived; fi
# cargo-fuzz for fuzz/ci-smoke.sh (tests/run.sh runs every fuzz target for 60 s).
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi
# cargo-deb for packaging/build-deb.sh and tests/package.rs (the Debian package). Built from
# source, crates already downloaded: 3m01s of CPU, 3m07s wall on the 2 cores with other builds
# running (7m39s under heavier load); only on a machine without it.
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked --quiet
fi
