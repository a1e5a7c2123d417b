//! The TUN offload splitter (`offload::prepare`, `Split::segment`) on whatever the kernel could
//! put in a virtio-net header and the packet after it, and the round trip through the receive
//! side's coalescers (`gro::Coalescer`, `gro::UdpCoalescer`).
//!
//! Input: `[virtio-net header, 10 bytes][packet]` (as one read of an IFF_VNET_HDR device).
//!
//! Checked, besides "no panic": every segment is a well-formed packet with valid IPv4 and
//! transport checksums, all but the last carry `gso_size` bytes, their payloads together are
//! the super-packet's; a plain packet's partial checksum is completed correctly. Then the
//! round trip: the segments fed through the coalescers as the inbound path feeds decrypted
//! packets, and the coalescers' writes split again, give the same segments byte for byte;
//! and a run of mergeable segments (IPv4 without options or IPv6 without extension headers,
//! only ACK set, at most 64) is written as one.

#![no_main]

use ironsec_dataplane::offload::{VnetHdr, VNET_HDR_LEN};
use ironsec_fuzz::tun_offload::{assert_same, coalesce, resplit, split};
use libfuzzer_sys::fuzz_target;

/// Whether the coalescers should merge all of these segments of one super-packet into one
/// write: what `gro.rs` documents it merges.
fn mergeable(segs: &[Vec<u8>], udp: bool) -> bool {
    let s = &segs[0];
    let (ip, plain) = match s[0] >> 4 {
        4 => (
            20,
            s[0] == 0x45 && u16::from_be_bytes([s[6], s[7]]) & 0x3fff == 0,
        ),
        _ => (40, s[6] == if udp { 17 } else { 6 }),
    };
    let hl = if udp {
        ip + 8
    } else {
        ip + usize::from(s[ip + 12] >> 4) * 4
    };
    let total: usize = hl
        + segs
            .iter()
            .map(|s| s.len() - hl.min(s.len()))
            .sum::<usize>();
    plain
        && segs.len() <= 64
        && total <= 65_535
        && segs.iter().all(|s| s.len() > hl)
        && (udp || segs.iter().all(|s| s[ip + 13] == 0x10))
}

fuzz_target!(|data: &[u8]| {
    let Some(hdr) = VnetHdr::parse(data) else {
        return;
    };
    let pkt = &data[VNET_HDR_LEN..];
    let Some(segs) = split(&hdr, pkt) else {
        return;
    };
    if !(hdr.is_tso() || hdr.is_uso()) {
        return;
    }
    let writes = coalesce(segs.iter().map(|s| &s[..]));
    let again = resplit(&writes);
    assert_eq!(
        again.len(),
        segs.len(),
        "segment count after the round trip"
    );
    for (i, (a, s)) in again.iter().zip(&segs).enumerate() {
        assert_same(
            format_args!("segment {i} of {} after the round trip", segs.len()),
            a,
            s,
        );
    }
    if segs.len() > 1 && mergeable(&segs, hdr.is_uso()) {
        assert_eq!(
            writes.len(),
            1,
            "{} mergeable segments not merged",
            segs.len()
        );
    }
});
