#!/usr/bin/env python3
"""Packet floods for ironsec's integration tests (tests/floods.rs). No scapy: raw IPv4 sockets
(IPPROTO_RAW, which implies IP_HDRINCL) so every packet can carry its own, spoofed, source
address, and AF_PACKET to capture real ESP-in-UDP packets for replay.

Run it only inside a network namespace the test created (`ip netns exec NS python3 flood.py`):
it sends to the one destination it is given and nowhere else. Every flood is bounded twice, in
packets (--count) and in seconds (--seconds), whichever comes first. One process, one thread.

Modes (each prints one JSON object on stdout when done):

  ike-init   IKE_SA_INIT requests (valid header, SA aes128gcm16-prfsha256-x25519, KE, Nonce)
             to --dst:--dport, each from the next address of --src-net (so a /16 gives up to
             65534 distinct sources) with a fresh initiator SPI.
  esp-random ESP-in-UDP datagrams with random SPIs (never 0..255, so never IKE's non-ESP
             marker or a reserved SPI) and random bytes, from the addresses of --src-net.
  capture-esp
             Captures ESP-in-UDP datagrams (not IKE, not keepalives) --src -> --dst:4500 on
             --iface and writes them, whole IPv4 packets, to --out (u16 length + bytes each).
             Keeps only packets of the most common length, so a UDP GSO super-packet (several
             ESP packets in one skb, as a capture on a veth sees them) is never kept.
  esp-replay Sends the packets of --in again and again, unchanged but for the UDP checksum
             (zeroed: a capture on a veth can hold a partial, offloaded one).
"""

import argparse
import collections
import ipaddress
import json
import os
import random
import socket
import struct
import sys
import time

IPPROTO_UDP = 17
ETH_P_IP = 0x0800


def ipv4_udp(src, dst, sport, dport, payload):
    """An IPv4+UDP packet; the kernel fills in the IP checksum and ID (IP_HDRINCL); the UDP
    checksum is 0 (none, allowed over IPv4)."""
    tot = 20 + 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tot, 0, 0, 64, IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return bytearray(ip + udp + payload)


def ike_sa_init_payload():
    """IKE_SA_INIT request: header, SA (one IKE proposal: ENCR_AES_GCM_16 128, PRF_HMAC_SHA2_256,
    DH 31 curve25519), KE (group 31), Nonce (32 bytes). The initiator SPI (bytes 0..8) is
    patched per packet."""
    def transform(last, ttype, tid, attrs=b""):
        return struct.pack("!BBHBBH", 0 if last else 3, 0, 8 + len(attrs), ttype, 0, tid) + attrs

    keylen = struct.pack("!HH", 0x800E, 128)  # TV attribute Key Length = 128
    transforms = (transform(False, 1, 20, keylen)  # ENCR_AES_GCM_16
                  + transform(False, 2, 5)         # PRF_HMAC_SHA2_256
                  + transform(True, 4, 31))        # DH curve25519
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transforms), 1, 1, 0, 3) + transforms
    sa = struct.pack("!BBH", 34, 0, 4 + len(proposal)) + proposal          # next: KE
    ke_data = os.urandom(32)
    ke = struct.pack("!BBHHH", 40, 0, 8 + len(ke_data), 31, 0) + ke_data  # next: Nonce
    nonce = os.urandom(32)
    ni = struct.pack("!BBH", 0, 0, 4 + len(nonce)) + nonce                # next: none
    body = sa + ke + ni
    hdr = struct.pack("!QQBBBBII", 0, 0, 33, 0x20, 34, 0x08, 0, 28 + len(body))
    return hdr + body


def raw_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return s


class Bounds:
    """--count packets or --seconds, whichever first; optional --pps pacing."""

    def __init__(self, args):
        self.count = args.count
        self.seconds = args.seconds
        self.pps = args.pps
        self.t0 = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.t0

    def done(self, sent):
        if sent >= self.count:
            return True
        el = self.elapsed()
        if el >= self.seconds:
            return True
        if self.pps > 0:
            ahead = sent / self.pps - el
            if ahead > 0.001:
                time.sleep(min(ahead, self.seconds - el))
        return False


def send_loop(args, packets_for, mode, extra):
    """packets_for(i) returns (bytearray packet, destination address) for packet i."""
    s = raw_socket()
    b = Bounds(args)
    sent = errors = 0
    first_error = None
    check_every = 64
    while not b.done(sent):
        for _ in range(check_every):
            pkt, dst = packets_for(sent + errors)
            try:
                s.sendto(pkt, (dst, 0))
                sent += 1
            except OSError as e:  # ENOBUFS and the like: counted, the flood goes on
                errors += 1
                if first_error is None:
                    first_error = str(e)
                if errors > 1000 and sent == 0:
                    sys.exit(f"flood.py: every send fails: {first_error}")
            if sent >= b.count:
                break
    secs = b.elapsed()
    out = {"mode": mode, "sent": sent, "send_errors": errors, "first_error": first_error,
           "seconds": round(secs, 3), "pps": round(sent / secs) if secs > 0 else 0}
    out.update(extra())
    print(json.dumps(out), flush=True)


def sources(net):
    n = ipaddress.ip_network(net)
    first = int(n.network_address) + 1
    size = max(n.num_addresses - 2, 1)
    return first, size


def cmd_ike_init(args):
    first, size = sources(args.src_net)
    marker = b"\0\0\0\0" if args.dport == 4500 else b""  # NAT-T port: non-ESP marker first
    template = ipv4_udp("0.0.0.0", args.dst, args.dport, args.dport,
                        marker + ike_sa_init_payload())
    spi_off = 28 + len(marker)
    spi_base = random.getrandbits(64) | 1
    state = {"n": 0}

    def packet(i):
        state["n"] = i + 1
        struct.pack_into("!I", template, 12, first + i % size)
        spi = (spi_base + i * 0x9E3779B97F4A7C15) % (1 << 64) or 1
        struct.pack_into("!Q", template, spi_off, spi)
        return template, args.dst

    send_loop(args, packet, "ike-init", lambda: {"distinct_sources": min(state["n"], size)})


def cmd_esp_random(args):
    first, size = sources(args.src_net)
    body_len = max(args.size - 28, 32)
    pool = [bytes(os.urandom(body_len)) for _ in range(64)]
    templates = [ipv4_udp("0.0.0.0", args.dst, 4500, args.dport, p) for p in pool]
    rng = random.Random(os.urandom(16))
    state = {"n": 0}

    def packet(i):
        t = templates[i & 63]
        state["n"] = i + 1
        struct.pack_into("!I", t, 12, first + i % size)
        struct.pack_into("!H", t, 20, 1024 + (i * 7919) % 60000)  # UDP source port
        # SPI (never 0..255) and sequence number
        struct.pack_into("!II", t, 28, 256 + rng.getrandbits(32) % (0xFFFFFFFF - 256), i + 1)
        return t, args.dst

    send_loop(args, packet, "esp-random", lambda: {"distinct_sources": min(state["n"], size),
                                                   "datagram_bytes": 8 + body_len})


def cmd_capture_esp(args):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    s.bind((args.iface, ETH_P_IP))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    src = socket.inet_aton(args.src)
    dst = socket.inet_aton(args.dst)
    got = []
    skipped = 0
    t0 = time.monotonic()
    s.settimeout(0.2)
    # Print "listening" so the caller knows when to start the traffic.
    print(json.dumps({"listening": args.iface}), flush=True)
    while len(got) < args.count * 2 and time.monotonic() - t0 < args.seconds:
        try:
            p, _addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if len(p) < 28 + 16 or p[0] >> 4 != 4 or p[9] != IPPROTO_UDP:
            continue
        ihl = (p[0] & 15) * 4
        if p[12:16] != src or p[16:20] != dst:
            continue
        sport, dport, ulen = struct.unpack_from("!HHH", p, ihl)
        tot = struct.unpack_from("!H", p, 2)[0]
        payload = p[ihl + 8:]
        if dport != 4500 or tot != len(p) or ulen != tot - ihl or len(payload) <= 8:
            skipped += 1
            continue
        if payload[:4] == b"\0\0\0\0":  # IKE on 4500
            continue
        got.append(bytes(p))
    lens = collections.Counter(len(p) for p in got)
    keep_len = lens.most_common(1)[0][0] if lens else 0
    kept = [p for p in got if len(p) == keep_len][: args.count]
    with open(args.out, "wb") as f:
        for p in kept:
            f.write(struct.pack("!H", len(p)) + p)
    spis = sorted({struct.unpack_from("!I", p, (p[0] & 15) * 4 + 8)[0] for p in kept})
    seqs = [struct.unpack_from("!I", p, (p[0] & 15) * 4 + 12)[0] for p in kept]
    print(json.dumps({"mode": "capture-esp", "captured": len(kept), "seen": len(got),
                      "skipped": skipped, "lengths": dict(lens.most_common(5)),
                      "spis": [f"0x{x:08x}" for x in spis],
                      "seq_min": min(seqs) if seqs else None,
                      "seq_max": max(seqs) if seqs else None}), flush=True)


def cmd_esp_replay(args):
    pkts = []
    with open(args.inp, "rb") as f:
        data = f.read()
    off = 0
    while off + 2 <= len(data):
        n = struct.unpack_from("!H", data, off)[0]
        p = bytearray(data[off + 2: off + 2 + n])
        off += 2 + n
        ihl = (p[0] & 15) * 4
        struct.pack_into("!H", p, ihl + 6, 0)  # UDP checksum: none
        pkts.append((p, socket.inet_ntoa(bytes(p[16:20]))))
    if not pkts:
        sys.exit("flood.py: no packets to replay in " + args.inp)
    n = len(pkts)
    send_loop(args, lambda i: pkts[i % n], "esp-replay", lambda: {"distinct_packets": n})


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    def bounds(p):
        p.add_argument("--count", type=int, required=True, help="at most this many packets")
        p.add_argument("--seconds", type=float, required=True, help="for at most this long")
        p.add_argument("--pps", type=int, default=0, help="pace to this rate (0: flat out)")

    p = sub.add_parser("ike-init")
    p.add_argument("--dst", required=True)
    p.add_argument("--dport", type=int, default=500)
    p.add_argument("--src-net", required=True)
    bounds(p)
    p.set_defaults(f=cmd_ike_init)

    p = sub.add_parser("esp-random")
    p.add_argument("--dst", required=True)
    p.add_argument("--dport", type=int, default=4500)
    p.add_argument("--src-net", required=True)
    p.add_argument("--size", type=int, default=128, help="IPv4 packet size")
    bounds(p)
    p.set_defaults(f=cmd_esp_random)

    p = sub.add_parser("capture-esp")
    p.add_argument("--iface", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(f=cmd_capture_esp)

    p = sub.add_parser("esp-replay")
    p.add_argument("--in", dest="inp", required=True)
    bounds(p)
    p.set_defaults(f=cmd_esp_replay)

    args = ap.parse_args()
    args.f(args)


if __name__ == "__main__":
    main()
