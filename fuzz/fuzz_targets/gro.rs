//! The receive side's coalescers (`gro::Coalescer` for TCP, `gro::UdpCoalescer` for UDP) on
//! arbitrary sequences of decrypted packets, driven as `Worker::inbound` drives them, with the
//! writes split again by the TUN offload splitter (what the kernel does with a GSO write).
//!
//! Input: records `[kind][len u16][bytes]`, at most 200:
//! - kind & 3 == 0: the bytes as a packet.
//! - kind & 3 == 1: the bytes with their lengths fixed up (IPv4 total length, IPv6 payload
//!   length, UDP length) and checksums made valid: well-formed packets from fuzz bytes.
//! - kind & 3 == 2: the next segment of the previous packet's flow: its headers, `bytes` as
//!   payload, TCP sequence number advanced by the previous payload, IPv4 ID plus one, lengths
//!   and checksums fixed; kind & 4 keeps the previous ID, kind & 8 the previous checksums.
//! - kind & 3 == 3: the previous packet stretched (zeros) or cut to `len` bytes past its IP
//!   header with the lengths fixed: up to 65,575 bytes for IPv6.
//!
//! Checked, besides "no panic": the writes split again are exactly as many packets as went in,
//! in order; a packet written alone is written unchanged; only a packet whose checksums verify
//! goes into a run (IPv4 header and TCP/UDP; a UDP-over-IPv4 checksum of 0 is "none"), so a run
//! never launders a bad checksum (issue 19); it comes out with the same bytes except its TCP
//! urgent pointer (runs hold no URG segment), when DF is set its IPv4 ID (RFC 6864:
//! meaningless in an atomic datagram), and the checksums that cover those, or the UDP checksum
//! it had none.

#![no_main]

use ironsec_dataplane::checksum;
use ironsec_fuzz::tun_offload::{assert_same, coalesce, resplit};
use libfuzzer_sys::fuzz_target;

const MAX_RECORDS: usize = 200;
const MAX_V6: usize = 65_535 + 40;

/// IP header length and transport (6, 17 or other) of a packet, if it has an IP header.
fn layout(p: &[u8]) -> Option<(usize, u8)> {
    match p.first()? >> 4 {
        4 if p.len() >= 20 => Some((usize::from(p[0] & 0x0f) * 4, p[9])),
        6 if p.len() >= 40 => Some((40, p[6])),
        _ => None,
    }
}

/// Header length (IP + TCP/UDP), if the packet holds it.
fn headers(p: &[u8]) -> Option<usize> {
    let (ip, proto) = layout(p)?;
    let hl = match proto {
        6 => ip + (usize::from(*p.get(ip + 12)? >> 4) * 4).max(20),
        17 => ip + 8,
        _ => return None,
    };
    (hl <= p.len() && ip >= 20).then_some(hl)
}

/// Sets the lengths to the packet's and, unless `keep_sums`, makes the checksums valid.
fn fix(p: &mut [u8], keep_sums: bool) {
    let Some((ip, proto)) = layout(p) else { return };
    let len = p.len();
    let v4 = p[0] >> 4 == 4;
    if v4 {
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    } else {
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    }
    if ip > len {
        return;
    }
    if proto == 17 && ip + 8 <= len {
        p[ip + 4..ip + 6].copy_from_slice(&((len - ip) as u16).to_be_bytes());
    }
    if keep_sums {
        return;
    }
    if v4 {
        p[10..12].fill(0);
        let c = checksum::fold(checksum::sum(&p[..ip], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let at = match proto {
        6 => ip + 16,
        17 => ip + 6,
        _ => return,
    };
    if at + 2 > len {
        return;
    }
    p[at..at + 2].fill(0);
    let c = transport_sum(p, ip, proto);
    let c = if proto == 17 && c == 0 { 0xffff } else { c };
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn transport_sum(p: &[u8], ip: usize, proto: u8) -> u16 {
    let pseudo = if p[0] >> 4 == 4 {
        &p[12..20]
    } else {
        &p[8..40]
    };
    let sum = checksum::sum(pseudo, 0) + u64::from(proto) + (p.len() - ip) as u64;
    checksum::fold(checksum::sum(&p[ip..], sum))
}

/// Whether the packet may join a run: its IPv4 header and transport checksums verify, or it
/// is UDP over IPv4 without a checksum (0).
fn sums_mergeable(p: &[u8]) -> bool {
    let Some((ip, proto)) = layout(p) else {
        return false;
    };
    let v4 = p[0] >> 4 == 4;
    if v4 && proto == 17 && p[ip + 6..ip + 8] == [0, 0] {
        return checksum::fold(checksum::sum(&p[..ip], 0)) == 0;
    }
    sums_valid(p)
}

/// Whether the packet's IPv4 header and transport checksums verify.
fn sums_valid(p: &[u8]) -> bool {
    let Some((ip, proto)) = layout(p) else {
        return false;
    };
    let v4 = p[0] >> 4 == 4;
    (!v4 || checksum::fold(checksum::sum(&p[..ip], 0)) == 0)
        && transport_sum(p, ip, proto) == 0
        && !(proto == 17 && p[ip + 6..ip + 8] == [0, 0])
}

/// Input packet `p` and what came out of a run for it, `a`: `p` had valid checksums, and `a`
/// equals it but for a DF packet's ID and the urgent pointer (and the checksums over them).
fn check_merged(i: usize, p: &[u8], a: &[u8]) {
    assert!(
        sums_mergeable(p),
        "packet {i}: merged with a bad checksum (laundered)"
    );
    assert_eq!(a.len(), p.len(), "packet {i}: length");
    let (ip, proto) = layout(p).expect("merged packets have IP headers");
    let v4 = p[0] >> 4 == 4;
    let mut masked = p.to_vec();
    let mut mask = |r: std::ops::Range<usize>| masked[r.clone()].copy_from_slice(&a[r]);
    if v4 {
        if p[6] & 0x40 != 0 {
            // The ID, and so the header checksum.
            mask(4..6);
            mask(10..12);
        }
        if proto == 17 && p[ip + 6..ip + 8] == [0, 0] {
            // No UDP checksum in: the run's segments get one.
            mask(ip + 6..ip + 8);
        }
    }
    if proto == 6 {
        // Runs hold only ACK (and PSH) segments: without URG the urgent pointer means nothing
        // (RFC 9293 3.1), and the kernel's GRO does not compare it either. (With it, the
        // checksum.)
        if p[ip + 18..ip + 20] != a[ip + 18..ip + 20] {
            mask(ip + 18..ip + 20);
            mask(ip + 16..ip + 18);
        }
    }
    if let Some(at) = (0..a.len()).find(|&k| a[k] != masked[k]) {
        panic!(
            "packet {i} ({} bytes) changed in a run at byte {at}: {:02x?} -> {:02x?}",
            a.len(),
            &p[at..(at + 8).min(p.len())],
            &a[at..(at + 8).min(a.len())]
        );
    }
    assert!(
        sums_valid(a),
        "packet {i}: a run's segment with bad checksums"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut inp = data;
    let mut packets: Vec<Vec<u8>> = Vec::new();
    while packets.len() < MAX_RECORDS {
        let Some((&kind, rest)) = inp.split_first() else {
            break;
        };
        let Some((l, rest)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*l));
        let (bytes, rest) = rest.split_at(len.min(rest.len()));
        inp = rest;
        let p = match kind & 3 {
            0 => bytes.to_vec(),
            1 => {
                let mut p = bytes.to_vec();
                fix(&mut p, false);
                p
            }
            2 => {
                let Some(prev) = packets.last() else { continue };
                let Some(hl) = headers(prev) else { continue };
                let mut p = prev[..hl].to_vec();
                let (ip, proto) = layout(&p).expect("headers");
                if proto == 6 {
                    let seq = u32::from_be_bytes(p[ip + 4..ip + 8].try_into().unwrap())
                        .wrapping_add((prev.len() - hl) as u32);
                    p[ip + 4..ip + 8].copy_from_slice(&seq.to_be_bytes());
                }
                if p[0] >> 4 == 4 && kind & 4 == 0 {
                    let id = u16::from_be_bytes([p[4], p[5]]).wrapping_add(1);
                    p[4..6].copy_from_slice(&id.to_be_bytes());
                }
                p.extend_from_slice(bytes);
                fix(&mut p, kind & 8 != 0);
                p
            }
            _ => {
                let Some(prev) = packets.last() else { continue };
                let Some((ip, _)) = layout(prev) else {
                    continue;
                };
                let mut p = prev.clone();
                let max = if p[0] >> 4 == 4 { 65_535 } else { MAX_V6 };
                p.resize((ip + len).min(max), 0);
                fix(&mut p, kind & 8 != 0);
                p
            }
        };
        packets.push(p);
    }
    let writes = coalesce(packets.iter().map(|p| &p[..]));
    let again = resplit(&writes);
    assert_eq!(again.len(), packets.len(), "packets in != packets out");
    let mut k = 0;
    for w in &writes {
        for _ in 0..w.segments {
            if w.segments == 1 {
                assert_same(
                    format_args!("packet {k} written alone"),
                    &again[k],
                    &packets[k],
                );
            } else {
                check_merged(k, &packets[k], &again[k]);
            }
            k += 1;
        }
    }
});
