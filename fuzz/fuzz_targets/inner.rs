//! The fast path's reads and edits of inner packets beyond the addresses, on arbitrary bytes:
//! `selector::Transport::of` (protocol and ports for narrowed selectors), `mtu::may_be_syn` /
//! `mtu::syn_offset` / `mtu::clamp_mss` (MSS clamping), `mtu::write_too_big` (ICMP
//! fragmentation-needed / packet-too-big) and `mtu::Fragments` (inner fragmentation of a
//! non-DF IPv4 packet).
//!
//! Input: `[mss u16][mtu u16][limit u16][packet]`.
//!
//! Checked, besides "no panic": ports are read from inside the packet; `may_be_syn` never
//! says no to a packet `syn_offset` finds a SYN in; a clamp changes only the MSS value (to
//! `mss`, downwards) and the TCP checksum, and keeps a valid checksum valid; an ICMP error is
//! at most 576 (IPv4) or 1280 (IPv6) bytes, fits its buffer, has valid checksums, is
//! addressed back to the sender and quotes the packet's first bytes; fragments fit `limit`,
//! have valid header checksums, offsets that follow each other, MF on all but the last (or
//! carried over), and put together give the packet's payload.

#![no_main]

use ironsec_dataplane::checksum;
use ironsec_dataplane::mtu::{self, Fragments, TOO_BIG_BUF};
use ironsec_dataplane::packet;
use ironsec_dataplane::selector::Transport;
use libfuzzer_sys::fuzz_target;

/// Whether the TCP checksum of a segment at `th` verifies (pseudo-header length: the rest of
/// the packet).
fn tcp_valid(p: &[u8], th: usize) -> bool {
    let pseudo = if p[0] >> 4 == 4 {
        &p[12..20]
    } else {
        &p[8..40]
    };
    let sum = checksum::sum(pseudo, 0) + 6 + (p.len() - th) as u64;
    checksum::fold(checksum::sum(&p[th..], sum)) == 0
}

fn check_transport(p: &[u8]) {
    let Some(t) = Transport::of(p) else { return };
    assert!(
        packet::inner_addrs(p).is_some(),
        "a transport without an IP header"
    );
    if let Some((s, d)) = t.ports {
        // The ports are two 16-bit words somewhere in the packet.
        let found = p.windows(4).any(|w| {
            u16::from_be_bytes([w[0], w[1]]) == s && u16::from_be_bytes([w[2], w[3]]) == d
        }) || p
            .windows(2)
            .any(|w| u16::from_be_bytes([w[0], w[1]]) == s && s == d);
        assert!(found, "{t:?} not read from the packet");
    }
}

fn check_clamp(p: &[u8], mss: u16) {
    let syn = mtu::syn_offset(p);
    if syn.is_some() {
        assert!(mtu::may_be_syn(p), "may_be_syn missed a SYN");
    }
    let mut q = p.to_vec();
    let changed = mtu::clamp_mss(&mut q, mss);
    if !changed {
        assert_eq!(q, p, "clamp_mss changed a packet it says it left alone");
        return;
    }
    let th = syn.expect("clamped a packet that is no SYN");
    let diff: Vec<usize> = (0..p.len()).filter(|&i| p[i] != q[i]).collect();
    assert!(
        diff.iter()
            .all(|&i| i == th + 16 || i == th + 17 || i > th + 20),
        "clamp changed bytes {diff:?} (TCP header at {th})"
    );
    // The MSS option now holds `mss`, where it held more.
    let at = (th + 20..p.len() - 3)
        .find(|&o| p[o] == 2 && p[o + 1] == 4 && q[o + 2..o + 4] != p[o + 2..o + 4])
        .expect("the changed MSS option");
    assert_eq!(u16::from_be_bytes([q[at + 2], q[at + 3]]), mss);
    assert!(u16::from_be_bytes([p[at + 2], p[at + 3]]) > mss);
    if tcp_valid(p, th) {
        assert!(tcp_valid(&q, th), "clamp broke a valid TCP checksum");
    }
}

fn check_too_big(p: &[u8], mtu_v: u16) {
    let mut out = vec![0u8; TOO_BIG_BUF + 16];
    let Some(n) = mtu::write_too_big(p, mtu_v, &mut out[..TOO_BIG_BUF]) else {
        return;
    };
    let e = &out[..n];
    if e[0] >> 4 == 4 {
        assert!(n <= 576 && n >= 28 && p.len() >= 28);
        assert_eq!(usize::from(u16::from_be_bytes([e[2], e[3]])), n);
        assert_eq!(
            checksum::fold(checksum::sum(&e[..20], 0)),
            0,
            "IPv4 checksum"
        );
        assert_eq!(
            checksum::fold(checksum::sum(&e[20..], 0)),
            0,
            "ICMP checksum"
        );
        assert_eq!((&e[12..16], &e[16..20]), (&p[16..20], &p[12..16]));
        assert_eq!((e[20], e[21]), (3, 4));
        assert_eq!(u16::from_be_bytes([e[26], e[27]]), mtu_v);
        assert_eq!(&e[28..], &p[..n - 28]);
    } else {
        assert!(n <= 1280 && n >= 48 && p.len() >= 40);
        assert_eq!(usize::from(u16::from_be_bytes([e[4], e[5]])) + 40, n);
        let sum = checksum::sum(&e[8..40], 0) + (n - 40) as u64 + 58;
        assert_eq!(
            checksum::fold(checksum::sum(&e[40..], sum)),
            0,
            "ICMPv6 checksum"
        );
        assert_eq!((&e[8..24], &e[24..40]), (&p[24..40], &p[8..24]));
        assert_eq!((e[40], e[41]), (2, 0));
        assert_eq!(
            u32::from_be_bytes([e[44], e[45], e[46], e[47]]),
            u32::from(mtu_v)
        );
        assert_eq!(&e[48..], &p[..n - 48]);
    }
}

fn check_fragments(p: &[u8], limit: u16) {
    if p.first().is_none_or(|b| b >> 4 != 4) || p.len() < 20 {
        return;
    }
    let Some(f) = Fragments::plan(p, limit) else {
        return;
    };
    assert!(f.count >= 2 && f.count <= Fragments::MAX && f.per % 8 == 0 && f.per > 0);
    let orig = u16::from_be_bytes([p[6], p[7]]);
    let mut payload = Vec::new();
    let mut buf = vec![0u8; 20 + f.per];
    let mut frags = Vec::new();
    for k in 1..f.count {
        let n = f.write(p, k, &mut buf);
        frags.push((k, buf[..n].to_vec()));
    }
    let mut first = p.to_vec();
    let n = f.first_in_place(&mut first);
    frags.insert(0, (0, first[..n].to_vec()));
    for (k, fr) in &frags {
        let k = *k;
        assert!(
            fr.len() <= usize::from(limit),
            "fragment {k} over the limit"
        );
        assert_eq!(usize::from(u16::from_be_bytes([fr[2], fr[3]])), fr.len());
        assert_eq!(
            checksum::fold(checksum::sum(&fr[..20], 0)),
            0,
            "fragment {k} checksum"
        );
        let fl = u16::from_be_bytes([fr[6], fr[7]]);
        assert_eq!(fl & 0x4000, orig & 0x4000, "DF kept");
        assert_eq!(fl & 0x8000, 0, "reserved bit");
        let more = k + 1 < f.count || orig & 0x2000 != 0;
        assert_eq!(fl & 0x2000 != 0, more, "MF of fragment {k}");
        let off = usize::from(orig & 0x1fff) + k * f.per / 8;
        assert_eq!(usize::from(fl & 0x1fff), off, "offset of fragment {k}");
        assert_eq!(fr[..2], p[..2]);
        assert_eq!(fr[4..6], p[4..6]);
        assert_eq!(fr[8..10], p[8..10]);
        assert_eq!(fr[12..20], p[12..20]);
        payload.extend_from_slice(&fr[20..]);
    }
    assert_eq!(payload, p[20..], "fragments put together");
}

fuzz_target!(|data: &[u8]| {
    let Some((head, p)) = data.split_first_chunk::<6>() else {
        return;
    };
    let mss = u16::from_be_bytes([head[0], head[1]]);
    let mtu_v = u16::from_be_bytes([head[2], head[3]]);
    let limit = u16::from_be_bytes([head[4], head[5]]);
    check_transport(p);
    check_clamp(p, mss);
    check_too_big(p, mtu_v);
    check_fragments(p, limit);
});
