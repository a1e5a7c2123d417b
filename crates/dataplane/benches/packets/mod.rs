//! Inner packets shared by the criterion bench (`benches/path.rs`) and the instruction-count
//! example (`examples/path_instructions.rs`), so both measure the same bytes.

use ironsec_dataplane::offload::VnetHdr;

/// An IPv4/UDP packet of `len` bytes, 10.1.0.2 -> 10.2.0.2.
pub fn udp4(len: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 1, 0, 2]);
    p[16..20].copy_from_slice(&[10, 2, 0, 2]);
    p
}

/// A 64 KiB TCP super-packet as an offloading TUN device hands it over: 46 segments of 1348
/// bytes (1400-byte packets: 20 bytes of IP, 32 of TCP with timestamps).
pub fn tso_super_packet() -> (Vec<u8>, VnetHdr) {
    let mss = 1348usize;
    let mut sup = vec![0x33u8; 52 + 46 * mss];
    sup[0] = 0x45;
    sup[9] = 6;
    sup[12..16].copy_from_slice(&[10, 1, 0, 2]);
    sup[16..20].copy_from_slice(&[10, 2, 0, 2]);
    sup[32] = 8 << 4;
    sup[33] = 0x10;
    let h = VnetHdr {
        flags: 1,
        gso_type: 1,
        hdr_len: 52,
        gso_size: mss as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    (sup, h)
}
