//! Helpers shared by the integration tests.

#![allow(dead_code)]

use ironsec_esp::{InboundSa, OutboundSa, Suite, HEADROOM, MAX_TRAILER};

pub const SPI: u32 = 0xc0de_0001;

/// Distinct, arbitrary key material per suite; the same bytes for both ends.
pub fn keymat(suite: Suite) -> Vec<u8> {
    (0..suite.keymat_len()).map(|i| (i * 7 + 3) as u8).collect()
}

pub fn pair(suite: Suite, esn: bool, window: usize) -> (OutboundSa, InboundSa) {
    let k = keymat(suite);
    (
        OutboundSa::new(suite, SPI, &k, esn).unwrap(),
        InboundSa::new(suite, SPI, &k, esn, window).unwrap(),
    )
}

/// An IPv4 packet of `len` bytes (at least 20) whose total length field is
/// right; the rest is filler.
pub fn ipv4_packet(len: usize, fill: u8) -> Vec<u8> {
    assert!((20..=65535).contains(&len));
    let mut p = vec![fill; len];
    p[0] = 0x45;
    p[1] = 0;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

/// An IPv6 packet of `len` bytes (at least 40) with the payload length set.
pub fn ipv6_packet(len: usize, fill: u8) -> Vec<u8> {
    assert!((40..=65535 + 40).contains(&len));
    let mut p = vec![fill; len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    p
}

/// Seals `payload` (inner packet plus any TFC bytes) and returns the ESP
/// packet.
pub fn seal(sa: &OutboundSa, payload: &[u8], next_header: u8) -> Vec<u8> {
    let mut buf = vec![0u8; HEADROOM + payload.len() + MAX_TRAILER];
    buf[HEADROOM..HEADROOM + payload.len()].copy_from_slice(payload);
    let r = sa
        .seal_in_place(&mut buf, payload.len(), next_header)
        .unwrap();
    assert_eq!(r.start, HEADROOM - sa.suite().header_len());
    buf[r].to_vec()
}

/// The full sequence number an AEAD packet was sealed with: our explicit IV.
/// (An AES-CBC IV is the counter encrypted, so it says nothing.)
pub fn sealed_seq(packet: &[u8]) -> u64 {
    u64::from_be_bytes(packet[8..16].try_into().unwrap())
}
