#!/usr/bin/env python3
"""Fuzz seeds from a packet capture of a real IKEv2/ESP conversation.

    fuzz/extract-seeds.py [options] NAME CAPTURE.pcap

Reads a classic pcap file (what `tcpdump -w` writes; Ethernet, Linux cooked v1/v2 or raw IPv4
link types) of UDP traffic between an IKE initiator and a responder (default 192.0.2.1 and
192.0.2.2, the addresses of netns-scripts/topology.sh and of the `ike_responder` target, see
src/lib.rs) and writes, under the corpus directory (default: fuzz/corpus next to this script):

- ike_message/capture-NAME-NN-EXCHANGE-{i,r}{req,resp}: IKE messages as `Message::parse` takes
  them (the non-ESP marker of UDP/4500 stripped): the first message of each kind (exchange,
  original initiator or responder, request or response); later ones differ only in SPIs,
  nonces, keys and ciphertext. For the cleartext ones (IKE_SA_INIT) also
  ...-chain: `[first payload type] ++ payloads`, the `parse_chain` half of the target.
- ike_responder/capture-NAME: the initiator's IKE datagrams to the responder, in order, in the
  target's framing `[ctl][len u16][datagram]` (ctl: the port bit, and the clock step closest to
  the captured gap; the datagram is the whole UDP payload, marker included on 4500).
- esp_open/capture-NAME (if the capture has ESP): flags byte (--suite, --esn), then for up to
  --esp packets each way a raw record with the SPI replaced by the target's (reaches the
  window and decryption: it fails authentication, the keys differ), one raw record as
  captured, and `classify` records of the other kinds of UDP/4500 datagrams seen (IKE behind
  the marker, NAT keepalive).

Only the Python standard library; IPv4 fragments are skipped (with a note on stderr).
"""

import argparse
import hashlib
import os
import struct
import sys

EXCHANGES = {34: "ike_sa_init", 35: "ike_auth", 36: "create_child_sa", 37: "informational",
             43: "ike_intermediate"}
NAT_T_PORT = 4500
IKE_PORT = 500
IKE_HEADER_LEN = 28
MAX_FRAMES = 96  # src/lib.rs MAX_FRAMES


def packets(path):
    """Yields (time, src, dst, sport, dport, payload) of the UDP/IPv4 datagrams in a pcap."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        sys.exit(f"{path}: not a pcap file")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        sys.exit(f"{path}: not a classic pcap file (pcapng? use tcpdump -w)")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        t = sec + frac / (1e9 if nanos else 1e6)
        ip = link_payload(linktype, frame)
        if ip is None or len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        frag = struct.unpack("!H", ip[6:8])[0]
        if ip[9] != 17:
            continue
        if frag & 0x3FFF:
            print(f"{path}: skipping an IPv4 fragment", file=sys.stderr)
            continue
        ip = ip[:total]
        udp = ip[ihl:]
        if len(udp) < 8:
            continue
        sport, dport, ulen = struct.unpack("!HHH", udp[:6])
        payload = udp[8:ulen]
        src = ".".join(str(b) for b in ip[12:16])
        dst = ".".join(str(b) for b in ip[16:20])
        yield t, src, dst, sport, dport, payload


def link_payload(linktype, frame):
    """The network-layer packet of a frame, if it is IPv4."""
    if linktype == 1:  # Ethernet
        off, etype = 14, frame[12:14]
        while etype in (b"\x81\x00", b"\x88\xa8") and len(frame) >= off + 4:  # VLAN tags
            etype = frame[off + 2:off + 4]
            off += 4
        return frame[off:] if etype == b"\x08\x00" else None
    if linktype == 113:  # Linux cooked v1
        return frame[16:] if frame[14:16] == b"\x08\x00" else None
    if linktype == 276:  # Linux cooked v2
        return frame[20:] if frame[0:2] == b"\x08\x00" else None
    if linktype in (12, 101, 228):  # raw IP
        return frame
    sys.exit(f"unsupported pcap link type {linktype}")


def ike_of(dport, sport, payload):
    """The bare IKE message of a datagram, or None (ESP, keepalive, junk)."""
    if NAT_T_PORT in (sport, dport):
        if len(payload) >= 4 + IKE_HEADER_LEN and payload[:4] == b"\0\0\0\0":
            return payload[4:]
        return None
    if IKE_PORT in (sport, dport) and len(payload) >= IKE_HEADER_LEN:
        return payload
    return None


def is_esp(sport, dport, payload):
    return (NAT_T_PORT in (sport, dport) and len(payload) >= 8 and payload[:4] != b"\0\0\0\0"
            and payload != b"\xff")


def advance_ms(t):
    """src/lib.rs `advance`: the clock step of control byte t << 2, in ms."""
    return t ** 4 * 10


def step_for(gap):
    """The clock step (0..63) whose advance is closest to `gap` seconds."""
    ms = gap * 1000
    return min(range(64), key=lambda t: abs(advance_ms(t) - ms))


def write(path, data, written):
    with open(path, "wb") as f:
        f.write(data)
    written.append((path, len(data)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help="scenario name, part of every file name")
    ap.add_argument("pcap")
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "corpus"))
    ap.add_argument("--initiator", default="192.0.2.1")
    ap.add_argument("--responder", default="192.0.2.2")
    ap.add_argument("--suite", default="aes256gcm16",
                    choices=["aes128gcm16", "aes256gcm16", "chacha20poly1305"],
                    help="ESP suite of the capture (esp_open flags)")
    ap.add_argument("--esn", action="store_true", help="the CHILD_SA uses ESN")
    ap.add_argument("--esp", type=int, default=4, help="ESP packets per direction (esp_open)")
    a = ap.parse_args()

    pkts = [p for p in packets(a.pcap)
            if {p[1], p[2]} == {a.initiator, a.responder}]
    if not pkts:
        sys.exit(f"{a.pcap}: no UDP between {a.initiator} and {a.responder}")
    written = []

    # ike_message
    out = os.path.join(a.corpus, "ike_message")
    os.makedirs(out, exist_ok=True)
    seen_kinds, seen_msgs, n = set(), set(), 0
    for t, src, dst, sport, dport, payload in pkts:
        msg = ike_of(dport, sport, payload)
        if msg is None:
            continue
        exch, flags = msg[18], msg[19]
        role = "i" if flags & 0x08 else "r"
        kind = (exch, role, "resp" if flags & 0x20 else "req")
        digest = hashlib.sha1(msg).digest()
        if digest in seen_msgs or kind in seen_kinds:
            continue
        seen_kinds.add(kind)
        seen_msgs.add(digest)
        n += 1
        base = f"capture-{a.name}-{n:02d}-{EXCHANGES.get(exch, f'x{exch}')}-{role}{kind[2]}"
        write(os.path.join(out, base), msg, written)
        if msg[16] != 46:  # not SK: the payload chain is in clear
            write(os.path.join(out, base + "-chain"), msg[16:17] + msg[IKE_HEADER_LEN:], written)

    # ike_responder
    out = os.path.join(a.corpus, "ike_responder")
    os.makedirs(out, exist_ok=True)
    seed, last = b"", None
    frames = 0
    for t, src, dst, sport, dport, payload in pkts:
        if src != a.initiator or ike_of(dport, sport, payload) is None or frames == MAX_FRAMES:
            continue
        step = 0 if last is None else step_for(t - last)
        last = t
        ctl = (step << 2) | (1 if dport == NAT_T_PORT else 0)
        seed += bytes([ctl]) + struct.pack("!H", len(payload)) + payload
        frames += 1
    if seed:
        write(os.path.join(out, f"capture-{a.name}"), seed, written)

    # esp_open
    suites = {"aes128gcm16": 0, "aes256gcm16": 1, "chacha20poly1305": 2}  # Suite::ALL order
    rec = b""
    per_dir = {}
    raw_done = False
    other = {}
    for t, src, dst, sport, dport, payload in pkts:
        if is_esp(sport, dport, payload):
            k = per_dir.get(src, 0)
            if k < a.esp:
                per_dir[src] = k + 1
                rec += b"\x04" + struct.pack("!H", len(payload)) + payload
                if not raw_done:
                    rec += b"\x00" + struct.pack("!H", len(payload)) + payload
                    raw_done = True
        elif NAT_T_PORT in (sport, dport):
            kind = "keepalive" if payload == b"\xff" else "ike" if payload[:4] == b"\0\0\0\0" else "x"
            other.setdefault(kind, payload)
    for payload in other.values():
        rec += b"\x03" + struct.pack("!H", len(payload)) + payload
    if per_dir:
        out = os.path.join(a.corpus, "esp_open")
        os.makedirs(out, exist_ok=True)
        flags = (suites[a.suite] << 1) | (1 if a.esn else 0)
        write(os.path.join(out, f"capture-{a.name}"), bytes([flags]) + rec, written)

    for path, size in written:
        print(f"{os.path.relpath(path)} ({size} bytes)")


if __name__ == "__main__":
    main()
