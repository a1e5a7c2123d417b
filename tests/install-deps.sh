#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need on a Debian machine (as root).
# Rust itself (cargo, rustc, rustfmt, clippy) is expected to be installed already (rustup).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" = 0 ] || { echo "install-deps.sh: run as root" >&2; exit 1; }
apt-get update -qq
# iproute2/iputils-ping/nftables/procps: namespaces, pings, sysctl, packet loss rules;
# iperf3: throughput; tcpdump + tshark: WAN captures and the outside judge of the wire format;
# jq/python3: scripts parse JSON.
apt-get install -y -qq --no-install-recommends \
    iproute2 iputils-ping nftables procps iperf3 tcpdump tshark jq python3 ca-certificates gcc \
    >/dev/null
