#!/usr/bin/env python3
"""Tables (and the --json line) of netns-scripts/bench.sh from its results and meta files.

results.tsv: case, metric, run, value, extra...  (one line per successful run)
    metrics: tcp1_fwd tcp4_fwd tcp1_rev tcp4_rev (Mbit/s; bytes, retransmits),
             udp64_fwd udp64_rev (received packets/s; sent packets/s),
             rtt_idle rtt_load (median ms of the run; replies[, sent])
meta.tsv: case, key, value  (kind suite wan status reason mtu qlen version endpoints cpu_a
             cpu_b tcp_cpu_a tcp_cpu_b tcp_bytes wall)
A case with wan 6 (named CASE_wan6) is CASE over the IPv6 WAN: its ratios to no tunnel are to
no_tunnel_wan6 when that ran, and when CASE ran too the report adds their IPv6/IPv4 ratios.
Exit status 3 when a case that ran has a figure without a single successful run.
"""
import argparse
import json
import statistics
import sys

p = argparse.ArgumentParser()
p.add_argument("--results", required=True)
p.add_argument("--meta", required=True)
p.add_argument("--runs", type=int, required=True)
p.add_argument("--time", type=int, required=True)
p.add_argument("--omit", type=int, required=True)
p.add_argument("--pings", type=int, required=True)
p.add_argument("--udp-len", type=int, required=True)
p.add_argument("--udp-senders", type=int, required=True)
p.add_argument("--cpus", type=int, required=True)
p.add_argument("--txqueuelen", type=int, required=True)
p.add_argument("--wan-mtu", type=int, required=True)
p.add_argument("--lan-gro", type=int, choices=(0, 1), default=0)
p.add_argument("--json", action="store_true")
p.add_argument("--figures", default="rtt,tcp,udp")
p.add_argument("--wan", default="4", help="WAN families of the run: 4, 6 or 4,6")
a = p.parse_args()

L = a.udp_len
THRU = [("tcp1_fwd", "TCP 1 ->"), ("tcp4_fwd", "TCP 4 ->"), ("tcp1_rev", "TCP 1 <-"),
        ("tcp4_rev", "TCP 4 <-"), (f"udp{L}_fwd", f"UDP {L} B ->"), (f"udp{L}_rev", f"UDP {L} B <-")]
METRICS = [m for m, _ in THRU] + ["rtt_idle", "rtt_load"]
FIGS = set(a.figures.split(","))
# What a figure selection (bench.sh --figures) left out is not missing: rtt_load comes with tcp.
WANTED = {m for m in METRICS
          if (m.startswith("tcp") or m == "rtt_load") and "tcp" in FIGS
          or m.startswith("udp") and "udp" in FIGS or m == "rtt_idle" and "rtt" in FIGS}

cases, meta, samples, extra = [], {}, {}, {}
for line in open(a.meta):
    c, k, v = line.rstrip("\n").split("\t", 2)
    if c not in meta:
        cases.append(c)
        meta[c] = {}
    meta[c][k] = v
for line in open(a.results):
    f = line.rstrip("\n").split("\t")
    c, m, v = f[0], f[1], float(f[3])
    samples.setdefault(c, {}).setdefault(m, []).append(v)
    extra.setdefault(c, {}).setdefault(m, []).append(f[4:])


def med(c, m):
    s = samples.get(c, {}).get(m)
    return statistics.median(s) if s else None


def num(x, nd=1):
    return None if x is None else round(x, nd)


def label(c):
    k, s = meta[c].get("kind"), meta[c].get("suite")
    return {"notunnel": "no tunnel", "ironsec": f"ironsec {s}", "static": f"ironsec static {s}",
            "baseline": f"ironsec {s} (baseline build)",
            "strongswan": f"strongSwan {s}", "boringtun": "boringtun (chacha20poly1305)",
            "null": "null forwarder (no crypto)"}.get(k, c) + (" [IPv6 WAN]" if wan(c) == 6 else "")


def wan(c):
    return 6 if meta[c].get("wan") == "6" else 4


def twin4(c):
    """The IPv4 WAN case of IPv6 WAN case c, if it ran."""
    t = c[:-len("_wan6")] if c.endswith("_wan6") else None
    return t if t in meta and wan(c) == 6 else None


IMPL = {"notunnel": "none", "ironsec": "ironsec", "static": "ironsec", "baseline": "ironsec-baseline",
        "strongswan": "strongswan", "boringtun": "boringtun", "null": "null-forwarder"}
base4 = "no_tunnel" if "no_tunnel" in meta else None
base6 = "no_tunnel_wan6" if "no_tunnel_wan6" in meta else base4


def base_of(c):
    return base6 if wan(c) == 6 else base4


base = base4 or base6

missing = []
out_cases = {}
for c in cases:
    m = meta[c]
    ok = m.get("status") == "ok"
    r = {"impl": IMPL.get(m.get("kind"), m.get("kind")), "label": label(c),
         "suite": None if m.get("suite") in (None, "-") else m.get("suite"),
         "keying": {"static": "static", "ironsec": "ike", "baseline": "ike", "strongswan": "ike", "boringtun": "wireguard"}.get(m.get("kind")),
         "status": m.get("status"), "version": m.get("version") or None, "wan": wan(c),
         "endpoints": m.get("endpoints") or None}
    if not ok:
        r["reason"] = m.get("reason")
    for mt in METRICS:
        v = med(c, mt)
        if v is None and ok and mt in WANTED:
            missing.append(f"{c} {mt}")
        if mt.startswith("udp"):
            r[f"{mt}_pps"] = None if v is None else round(v)
            sent = [float(e[0]) for e in extra.get(c, {}).get(mt, [])]
            r[f"{mt}_sent_pps"] = round(statistics.median(sent)) if sent else None
            # Received plus what the receiving host's full UDP socket dropped: what the path
            # (the tunnel) delivered to that host, whether or not iperf3 got the CPU to read it.
            arr = [float(e[1]) for e in extra.get(c, {}).get(mt, []) if len(e) > 1]
            r[f"{mt}_arrived_pps"] = round(statistics.median(arr)) if arr else None
        elif mt.startswith("tcp"):
            r[f"{mt}_mbps"] = num(v)
        else:
            r[f"{mt}_ms"] = num(v, 3)
    ratio, delta = {}, {}
    bc = base_of(c)
    for mt, _ in THRU:
        v, b = med(c, mt), med(bc, mt) if bc else None
        ratio[mt] = round(v / b, 3) if v is not None and b else None
    for mt in ("rtt_idle", "rtt_load"):
        v, b = med(c, mt), med(bc, mt) if bc else None
        delta[mt] = round(v - b, 3) if v is not None and b is not None else None
    r["ratio_to_no_tunnel"] = ratio
    r["rtt_delta_to_no_tunnel_ms"] = delta
    # IPv6 WAN against the same case over the IPv4 WAN in this run: throughput ratios and RTT
    # differences (null where either side has no measurement).
    t = twin4(c)
    if t:
        r["ratio_wan6_to_wan4"] = {mt: (round(med(c, mt) / med(t, mt), 3)
                                        if med(c, mt) is not None and med(t, mt) else None)
                                   for mt, _ in THRU}
        r["rtt_delta_wan6_to_wan4_ms"] = {mt: (round(med(c, mt) - med(t, mt), 3)
                                               if med(c, mt) is not None and med(t, mt) is not None
                                               else None)
                                          for mt in ("rtt_idle", "rtt_load")}
    if m.get("kind") != "notunnel" and "cpu_a" in m:
        wall = float(m["wall"])
        gb = int(m.get("tcp_bytes", 0)) / 1e9
        r["cpu_s"] = {"gwA": float(m["cpu_a"]), "gwB": float(m["cpu_b"])}
        r["cpu_core_share"] = {g: round(s / wall, 3) if wall else None for g, s in r["cpu_s"].items()}
        r["cpu_s_per_gb_tcp"] = {"gwA": round(float(m["tcp_cpu_a"]) / gb, 2) if gb else None,
                                 "gwB": round(float(m["tcp_cpu_b"]) / gb, 2) if gb else None}
    else:
        r["cpu_s"] = r["cpu_core_share"] = r["cpu_s_per_gb_tcp"] = None
    r["wall_s"] = float(m["wall"]) if "wall" in m else None
    r["tun"] = None if m.get("mtu", "-") == "-" else {"mtu": int(m["mtu"]), "txqueuelen": int(m["qlen"])}
    r["samples"] = {mt: samples.get(c, {}).get(mt, []) for mt in METRICS}
    out_cases[c] = r

# ---------------------------------------------------------------------------------------------
W = max([len(r["label"]) for r in out_cases.values()] + [10]) + 2
print(f"ironsec bench: lanA -> lanB (->) and back (<-); median of {a.runs} run(s) of {a.time} s per figure "
      f"(TCP +{a.omit} s omitted warm-up)")
WANS = {"4": "IPv4 WAN", "6": "IPv6 WAN", "4,6": "IPv4 and IPv6 WAN (cases over IPv6: [IPv6 WAN])"}
print(f"{a.cpus} CPUs shared by both gateways, iperf3 and the kernel; {WANS.get(a.wan, a.wan)}, MTU {a.wan_mtu}; every tunnel's TUN "
      f"txqueuelen >= {a.txqueuelen}; UDP: {a.udp_senders} iperf3 sender(s), -l {L} -b 0")
if a.lan_gro:
    print("--lan-gro: both gateways' LAN interfaces with GRO, rx-udp-gro-forwarding and threaded NAPI")
print()
print(f"{'throughput':<{W}}" + "".join(f"{h:>16}" for _, h in THRU))
print(f"{'(ratio to no tunnel)':<{W}}" + "".join(f"{u:>16}" for u in ["Mbit/s"] * 4 + ["kpkt/s"] * 2))


def cell(v, r, scale=1.0, fmt="{:.0f}"):
    if v is None:
        return "-"
    s = fmt.format(v / scale)
    return s if r is None or base is None else f"{s} ({r:.2f})" if r < 10 else f"{s} ({r:.1f})"


for c, r in out_cases.items():
    row = f"{r['label']:<{W}}"
    for mt, _ in THRU:
        v = med(c, mt)
        rr = None if c in (base4, base6) else r["ratio_to_no_tunnel"][mt]
        row += f"{cell(v, rr, 1000.0 if mt.startswith('udp') else 1.0, '{:.1f}' if mt.startswith('udp') else '{:.0f}'):>16}"
    if r["status"] != "ok":
        row += f"   FAILED: {r.get('reason')}"
    print(row)

print()
hdr = ["RTT idle ms", "RTT load ms", "CPU gwA s", "CPU gwB s", "CPU s/GB TCP", "TUN mtu/qlen"]
print(f"{'latency, CPU':<{W}}" + "".join(f"{h:>18}" for h in hdr))
print(f"{'(vs no tunnel; % of a core)':<{W}}")
for c, r in out_cases.items():
    row = f"{r['label']:<{W}}"
    for mt in ("rtt_idle", "rtt_load"):
        v, d = med(c, mt), r["rtt_delta_to_no_tunnel_ms"][mt]
        s = "-" if v is None else f"{v:.3f}" if c in (base4, base6) or d is None else f"{v:.3f} ({d:+.3f})"
        row += f"{s:>18}"
    if r["cpu_s"]:
        for g in ("gwA", "gwB"):
            row += f"{r['cpu_s'][g]:.1f} ({100 * r['cpu_core_share'][g]:.0f}%)".rjust(18)
        pg = r["cpu_s_per_gb_tcp"]
        row += (f"{pg['gwA']:.2f} + {pg['gwB']:.2f}" if pg["gwA"] is not None else "-").rjust(18)
    else:
        row += "-".rjust(18) * 3
    row += ("-" if not r["tun"] else f"{r['tun']['mtu']}/{r['tun']['txqueuelen']}").rjust(18)
    print(row)
print()
pairs = [(c, r) for c, r in out_cases.items() if "ratio_wan6_to_wan4" in r]
if pairs:
    print(f"{'IPv6 WAN / IPv4 WAN':<{W}}" + "".join(f"{h:>16}" for _, h in THRU)
          + "".join(f"{h:>18}" for h in ("RTT idle ms", "RTT load ms")))
    print(f"{'(same case, this run)':<{W}}" + "".join(f"{'ratio':>16}" for _ in THRU)
          + "".join(f"{'IPv6 - IPv4':>18}" for _ in range(2)))
    for c, r in pairs:
        row = f"{label(twin4(c)):<{W}}"
        for mt, _ in THRU:
            v = r["ratio_wan6_to_wan4"][mt]
            row += ("-" if v is None else f"{v:.3f}").rjust(16)
        for mt in ("rtt_idle", "rtt_load"):
            v = r["rtt_delta_wan6_to_wan4_ms"][mt]
            row += ("-" if v is None else f"{v:+.3f}").rjust(18)
        print(row)
    print()
walls = [f"{r['label']} {r['wall_s']:.0f} s" for r in out_cases.values() if r.get("wall_s")]
if walls:
    print("measured for: " + ", ".join(walls))
sent = [f"{r['label']} {r[f'udp{L}_fwd_sent_pps'] / 1000:.0f}/{r[f'udp{L}_rev_sent_pps'] / 1000:.0f}"
        for r in out_cases.values() if r.get(f"udp{L}_fwd_sent_pps") and r.get(f"udp{L}_rev_sent_pps")]
if sent:
    print("UDP offered by iperf3, kpkt/s -> / <-: " + ", ".join(sent))
arrived = [f"{r['label']} {r[f'udp{L}_fwd_arrived_pps'] / 1000:.1f}/{r[f'udp{L}_rev_arrived_pps'] / 1000:.1f}"
           for r in out_cases.values()
           if r.get(f"udp{L}_fwd_arrived_pps") is not None and r.get(f"udp{L}_rev_arrived_pps") is not None]
if arrived:
    print("UDP arrived at the receiving host (received + dropped by its full socket), kpkt/s -> / <-: "
          + ", ".join(arrived))
vers = sorted({r["version"] for r in out_cases.values() if r.get("version")})
if vers:
    print("software: " + "; ".join(vers))
for c, r in out_cases.items():
    if r["status"] != "ok":
        print(f"FAILED {r['label']}: {r.get('reason')}")
if missing:
    print("no successful run for: " + ", ".join(missing))

if a.json:
    print(json.dumps({
        "bench": "ironsec", "schema": 2, "runs": a.runs, "time_s": a.time, "omit_s": a.omit,
        "pings": a.pings, "udp_len": L, "udp_senders": a.udp_senders, "cpus": a.cpus,
        "wan_mtu": a.wan_mtu, "txqueuelen_min": a.txqueuelen, "lan_gro": bool(a.lan_gro),
        "wan": [int(f) for f in a.wan.split(",")],
        "cases": out_cases,
    }, separators=(",", ":")))
sys.exit(3 if missing else 0)
