//! Writes the seed corpora of the `offload`, `gro` and `inner` targets under `fuzz/corpus/`:
//! `cargo run --example gen_fastpath_seeds` from `fuzz/` (a plain build, no sanitizer).
//!
//! `offload` seeds are TSO and USO super-packets as an offloading TUN device hands them over
//! (virtio-net header, partial checksum): TCP over IPv4 (with and without IP and TCP options)
//! and IPv6 (with and without a destination options header), UDP over both, runs longer than
//! the coalescers' 64 segments, and a plain packet with a partial checksum. `gro` seeds are
//! the segments of those super-packets as the decrypted packets of one batch, alone and
//! interleaved, in the target's record format, plus records built by the target's
//! "next segment" and "stretch" kinds. `inner` seeds are inner packets the fast path reads
//! beyond the addresses: SYNs with an MSS option (IPv4, IPv6 with a destination options
//! header, the option at an odd offset), UDP, ICMP echo and a long non-DF IPv4 packet, each
//! behind `[mss][mtu][limit]`. The IPv6 rows of issue 26 add hop-by-hop, routing and
//! fragment headers, ICMPv6 too big for the tunnel, chains too long or past the packet and a
//! jumbogram (`*6-*` seeds of `inner` and `offload`, and their segments in `gro`).

use std::path::Path;

use ironsec_dataplane::offload::{VnetHdr, VNET_HDR_LEN};
use ironsec_fuzz::tun_offload::build::{super_packet, Shape};
use ironsec_fuzz::tun_offload::split;

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;
const CWR: u8 = 0x80;

fn shape(v6: bool, udp: bool, gso_size: u16, payload: usize) -> Shape {
    Shape {
        v6,
        udp,
        ip_extra: 0,
        tcp_options: if udp { 0 } else { 12 },
        tcp_flags: ACK,
        gso_size,
        payload,
    }
}

fn offload_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![
        ("tcp4", super_packet(&shape(false, false, 1400, 3000))),
        ("tcp6", super_packet(&shape(true, false, 1220, 5000))),
        ("udp4", super_packet(&shape(false, true, 64, 4 * 64 + 17))),
        ("udp6", super_packet(&shape(true, true, 1200, 3 * 1200))),
        ("tcp4-large", super_packet(&shape(false, false, 1448, 9000))),
        // More segments than one run holds (64).
        ("tcp4-100", super_packet(&shape(false, false, 8, 800))),
        ("udp4-100", super_packet(&shape(false, true, 4, 400))),
        (
            "tcp4-psh-fin-cwr",
            super_packet(&Shape {
                tcp_flags: ACK | PSH | FIN | CWR,
                ..shape(false, false, 500, 1700)
            }),
        ),
        (
            "tcp4-psh",
            super_packet(&Shape {
                tcp_flags: ACK | PSH,
                ..shape(false, false, 500, 1500)
            }),
        ),
        (
            "tcp4-ipopts-notcpopts",
            super_packet(&Shape {
                ip_extra: 8,
                tcp_options: 0,
                ..shape(false, false, 600, 1300)
            }),
        ),
        (
            "tcp6-destopts",
            super_packet(&Shape {
                ip_extra: 16,
                ..shape(true, false, 1000, 2500)
            }),
        ),
        (
            "udp6-destopts",
            super_packet(&Shape {
                ip_extra: 8,
                ..shape(true, true, 100, 250)
            }),
        ),
    ];
    // IPv6 (issue 26): hop-by-hop instead of destination options (split), a routing header
    // (refused), a payload length of 0 as a BIG TCP super-packet carries (split by the
    // read's length).
    let mut hbh = super_packet(&Shape {
        ip_extra: 16,
        ..shape(true, false, 1000, 2500)
    });
    hbh[VNET_HDR_LEN + 6] = 0;
    v.push(("tcp6-hbh", hbh.clone()));
    let mut rh = hbh;
    rh[VNET_HDR_LEN + 6] = 43;
    rh[VNET_HDR_LEN + 42..VNET_HDR_LEN + 44].fill(0);
    v.push(("tcp6-routing", rh));
    let mut zero = super_packet(&shape(true, true, 1200, 3 * 1200));
    zero[VNET_HDR_LEN + 4..VNET_HDR_LEN + 6].fill(0);
    v.push(("udp6-payload-length-0", zero));
    // A plain packet whose checksum the kernel left partial.
    let mut plain = super_packet(&shape(false, false, 0, 300));
    plain[1] = 0;
    v.push(("tcp4-plain-partial", plain));
    v
}

/// `[kind][len u16][bytes]` records of the `gro` target.
fn record(out: &mut Vec<u8>, kind: u8, bytes: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn segments(seed: &[u8]) -> Vec<Vec<u8>> {
    let hdr = VnetHdr::parse(seed).unwrap();
    split(&hdr, &seed[VNET_HDR_LEN..]).expect("seeds split")
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

/// `[mss u16][mtu u16][limit u16][packet]` of the `inner` target.
fn inner(mss: u16, mtu: u16, limit: u16, pkt: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [mss, mtu, limit] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(pkt);
    v
}

/// A SYN with an MSS option of 1460 (after `pad` NOPs) and a valid checksum.
fn syn(v6: bool, dest_opts: bool, pad: usize) -> Vec<u8> {
    let s = Shape {
        ip_extra: if dest_opts { 8 } else { 0 },
        tcp_options: 8 + (pad + 3) / 4 * 4,
        tcp_flags: 0x02,
        ..shape(v6, false, 0, 0)
    };
    let mut p = super_packet(&s)[VNET_HDR_LEN..].to_vec();
    let th = if v6 { 40 } else { 20 } + s.ip_extra;
    let opts = &mut p[th + 20..th + 20 + s.tcp_options];
    opts.fill(1);
    opts[pad..pad + 4].copy_from_slice(&[2, 4, 0x05, 0xb4]);
    finish_tcp(&mut p, th);
    p
}

/// A full TCP checksum at `th`.
fn finish_tcp(p: &mut [u8], th: usize) {
    p[th + 16..th + 18].fill(0);
    let pseudo = if p[0] >> 4 == 4 {
        &p[12..20]
    } else {
        &p[8..40]
    };
    let sum = ironsec_dataplane::checksum::sum(pseudo, 0) + 6 + (p.len() - th) as u64;
    let c = ironsec_dataplane::checksum::fold(ironsec_dataplane::checksum::sum(&p[th..], sum));
    p[th + 16..th + 18].copy_from_slice(&c.to_be_bytes());
}

fn inner_seeds(dir: &Path) {
    write(dir, "syn4", &inner(1360, 1400, 1400, &syn(false, false, 0)));
    write(
        dir,
        "syn4-odd",
        &inner(1200, 1400, 1400, &syn(false, false, 1)),
    );
    write(
        dir,
        "syn6-destopts",
        &inner(1220, 1280, 1280, &syn(true, true, 2)),
    );
    let udp = super_packet(&shape(false, true, 0, 200));
    write(dir, "udp4", &inner(0, 1400, 1400, &udp[VNET_HDR_LEN..]));
    let udp6 = super_packet(&shape(true, true, 0, 200));
    write(dir, "udp6", &inner(0, 1280, 1280, &udp6[VNET_HDR_LEN..]));
    // ICMP echo request, IPv4.
    let mut icmp = super_packet(&shape(false, true, 0, 56))[VNET_HDR_LEN..].to_vec();
    icmp[9] = 1;
    icmp[20..28].copy_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
    write(dir, "icmp4", &inner(0, 1400, 1400, &icmp));
    // A 3000-byte non-DF IPv4 packet, cut at 1400.
    let mut big = super_packet(&shape(false, false, 0, 2948))[VNET_HDR_LEN..].to_vec();
    big[6] = 0;
    write(dir, "tcp4-nodf-3000", &inner(0, 1400, 1400, &big));
    inner_v6_seeds(dir);
}

/// Rewrites the destination options header that [`Shape`]'s `ip_extra` puts after the IPv6
/// header into header `kind` (0 hop-by-hop, 43 routing, 44 fragment with `frag` as its
/// offset-and-flags word), keeping the chain's lengths.
fn v6_ext_as(p: &mut [u8], kind: u8, frag: u16) {
    p[6] = kind;
    match kind {
        43 => p[42..44].fill(0), // routing type 0, segments left 0
        44 => {
            p[41] = 0;
            p[42..44].copy_from_slice(&frag.to_be_bytes());
            p[44..48].copy_from_slice(&[0, 0, 0, 7]);
        }
        _ => {}
    }
}

/// IPv6 rows for the `inner` target (issue 26): SYNs behind hop-by-hop, routing and fragment
/// headers (clamped only behind options), ICMPv6 packets too big for the tunnel (an echo
/// request, and errors behind a routing header and in a later fragment, which are never
/// answered), a chain of nine destination options headers, a header claiming more than the
/// packet and a jumbogram's payload length 0.
fn inner_v6_seeds(dir: &Path) {
    for (name, kind) in [("syn6-hbh", 0u8), ("syn6-routing", 43), ("syn6-frag", 44)] {
        let mut p = syn(true, true, 0);
        v6_ext_as(&mut p, kind, 1);
        if kind != 44 {
            finish_tcp(&mut p, 48);
        }
        write(dir, name, &inner(1220, 1280, 1280, &p));
    }
    // ICMPv6 of 1400 bytes: `kind` header (or none) then type `icmp_type`.
    let icmp6 = |ext: Option<(u8, u16)>, icmp_type: u8| {
        let s = Shape {
            ip_extra: if ext.is_some() { 8 } else { 0 },
            ..shape(true, true, 0, 1400 - 48 - if ext.is_some() { 8 } else { 0 })
        };
        let mut p = super_packet(&s)[VNET_HDR_LEN..].to_vec();
        let at = 40 + s.ip_extra;
        if let Some((kind, frag)) = ext {
            p[40] = 58;
            v6_ext_as(&mut p, kind, frag);
        } else {
            p[6] = 58;
        }
        p[at..at + 8].copy_from_slice(&[icmp_type, 0, 0, 0, 0, 0, 5, 0x78]);
        p
    };
    write(
        dir,
        "icmp6-echo-big",
        &inner(0, 1280, 1280, &icmp6(None, 128)),
    );
    write(
        dir,
        "icmp6-ptb-behind-routing",
        &inner(0, 1280, 1280, &icmp6(Some((43, 0)), 2)),
    );
    write(
        dir,
        "icmp6-later-fragment",
        &inner(0, 1280, 1280, &icmp6(Some((44, 0x0101)), 1)),
    );
    // Nine destination options headers of 8 bytes, then UDP.
    let mut nine = super_packet(&Shape {
        ip_extra: 72,
        ..shape(true, true, 0, 64)
    })[VNET_HDR_LEN..]
        .to_vec();
    for i in 0..9 {
        nine[40 + 8 * i..48 + 8 * i].copy_from_slice(&[
            if i < 8 { 60 } else { 17 },
            0,
            1,
            4,
            0,
            0,
            0,
            0,
        ]);
    }
    write(dir, "udp6-nine-destopts", &inner(0, 1280, 1280, &nine));
    // A destination options header claiming 2 KB in a 200-byte packet.
    let mut long = super_packet(&Shape {
        ip_extra: 8,
        ..shape(true, true, 0, 144)
    })[VNET_HDR_LEN..]
        .to_vec();
    long[41] = 255;
    write(dir, "udp6-destopts-past-end", &inner(0, 1280, 1280, &long));
    // A jumbogram: payload length 0, hop-by-hop with a Jumbo Payload option.
    let mut jumbo = super_packet(&Shape {
        ip_extra: 8,
        ..shape(true, true, 0, 100)
    })[VNET_HDR_LEN..]
        .to_vec();
    jumbo[4..6].fill(0);
    jumbo[6] = 0;
    jumbo[42..48].copy_from_slice(&[0xc2, 4, 0, 0, 0, 116]);
    write(dir, "udp6-jumbo", &inner(0, 1280, 1280, &jumbo));
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let off = root.join("offload");
    let gro = root.join("gro");
    let inn = root.join("inner");
    std::fs::create_dir_all(&inn).unwrap();
    inner_seeds(&inn);
    std::fs::create_dir_all(&off).unwrap();
    std::fs::create_dir_all(&gro).unwrap();
    let seeds = offload_seeds();
    for (name, s) in &seeds {
        write(&off, name, s);
        // Not splittable, or not a packet the kernel's GRO would have made segments of.
        if matches!(
            *name,
            "tcp4-plain-partial" | "tcp6-routing" | "udp6-payload-length-0"
        ) {
            continue;
        }
        let mut r = Vec::new();
        for seg in segments(s) {
            record(&mut r, 0, &seg);
        }
        write(&gro, name, &r);
    }
    // Interleaved flows: TCP v4, UDP v4, TCP v6 segments alternating in runs of two.
    let a = segments(&seeds[0].1);
    let b = segments(&seeds[2].1);
    let c = segments(&seeds[1].1);
    let mut r = Vec::new();
    for i in 0..4 {
        for s in [&a, &b, &c] {
            for seg in s.iter().skip(2 * i).take(2) {
                record(&mut r, 0, seg);
            }
        }
    }
    write(&gro, "interleaved", &r);
    // The target's own kinds: a TCP segment, next segments of it (new ID, same ID, checksums
    // left stale), a short one, then an IPv6 one stretched to the largest IPv6 length.
    let first = &a[0];
    let hl = 20 + 32;
    let mut r = Vec::new();
    record(&mut r, 1, first);
    record(&mut r, 2, &first[hl..]);
    record(&mut r, 2 | 4, &first[hl..]);
    record(&mut r, 2 | 8, &first[hl..]);
    record(&mut r, 2, &first[hl..hl + 100]);
    record(&mut r, 1, &c[0]);
    r.push(3);
    r.extend_from_slice(&u16::MAX.to_be_bytes());
    write(&gro, "kinds", &r);
    // Non-DF IPv4 segments whose IDs do not follow each other.
    let mut r = Vec::new();
    for (i, seg) in a.iter().enumerate() {
        let mut s = seg.clone();
        s[6] = 0;
        s[4..6].copy_from_slice(&(7u16 * i as u16).to_be_bytes());
        record(&mut r, 1, &s);
    }
    write(&gro, "tcp4-nodf-ids", &r);
    println!(
        "wrote {} offload, {} gro and {} inner seeds",
        std::fs::read_dir(&off).unwrap().count(),
        std::fs::read_dir(&gro).unwrap().count(),
        std::fs::read_dir(&inn).unwrap().count()
    );
}
