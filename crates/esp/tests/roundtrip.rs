//! Seal/open round trips and tamper detection for every suite.

mod common;

use common::{ipv4_packet, ipv6_packet, pair, seal, sealed_seq, SPI};
use ironsec_esp::{
    CbcCipher, InboundSa, Integ, OpenError, Suite, HEADROOM, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6,
};
use proptest::prelude::*;

fn any_suite() -> impl Strategy<Value = Suite> {
    prop::sample::select(Suite::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// IPv4 packets of any size, with optional TFC padding after them, come
    /// back byte for byte and with their own length.
    #[test]
    fn ipv4_round_trip(
        suite in any_suite(),
        esn in any::<bool>(),
        len in 20usize..1500,
        tfc in prop_oneof![Just(0usize), 1usize..64],
        fill in any::<u8>(),
        start in prop_oneof![Just(1u64), 1u64..u64::from(u32::MAX)],
    ) {
        let (out, inb) = pair(suite, esn, 0);
        let out = out.with_next_seq(start);
        let inner = ipv4_packet(len, fill);
        let mut payload = inner.clone();
        payload.extend((0..tfc).map(|i| i as u8 ^ 0x5a));

        let mut packet = seal(&out, &payload, NEXT_HEADER_IPV4);
        prop_assert_eq!(packet.len() % 4, 0);
        prop_assert!(packet.len() <= HEADROOM + payload.len() + ironsec_esp::MAX_TRAILER);
        prop_assert_eq!(&packet[4..8], &(start as u32).to_be_bytes());
        if suite.is_aead() {
            prop_assert_eq!(sealed_seq(&packet), start);
        }
        prop_assert_eq!(out.next_seq(), start + 1);

        let opened = inb.open_in_place(&mut packet).unwrap();
        prop_assert_eq!(opened.seq, start);
        prop_assert_eq!(opened.next_header, NEXT_HEADER_IPV4);
        prop_assert_eq!(opened.offset, suite.header_len());
        prop_assert_eq!(opened.len, len);
        prop_assert_eq!(&packet[opened.range()], &inner[..]);
        prop_assert_eq!(inb.highest_seq(), start);
    }

    #[test]
    fn ipv6_round_trip(
        suite in any_suite(),
        len in 40usize..1500,
        tfc in 0usize..32,
    ) {
        let (out, inb) = pair(suite, true, 0);
        let inner = ipv6_packet(len, 0x66);
        let mut payload = inner.clone();
        payload.resize(len + tfc, 0);
        let mut packet = seal(&out, &payload, NEXT_HEADER_IPV6);
        let opened = inb.open_in_place(&mut packet).unwrap();
        prop_assert_eq!(opened.next_header, NEXT_HEADER_IPV6);
        prop_assert_eq!(&packet[opened.range()], &inner[..]);
    }

    /// Any single changed byte is caught. In the SPI it is a different SA's
    /// packet; in the sequence number it may also turn into an already-seen
    /// or zero sequence number, which the replay check catches before the
    /// ICV is even computed; anywhere else only the ICV can catch it.
    #[test]
    fn any_flipped_byte_fails(
        suite in any_suite(),
        esn in any::<bool>(),
        len in 20usize..600,
        index in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (out, inb) = pair(suite, esn, 0);
        let mut packet = seal(&out, &ipv4_packet(len, 1), NEXT_HEADER_IPV4);
        let i = index.index(packet.len());
        packet[i] ^= xor;
        let result = inb.open_in_place(&mut packet);
        match i {
            0..=3 => prop_assert_eq!(result, Err(OpenError::SpiMismatch)),
            4..=7 => prop_assert!(
                matches!(result, Err(OpenError::Authentication | OpenError::Replay)),
                "{:?}", result
            ),
            _ => prop_assert_eq!(result, Err(OpenError::Authentication)),
        }
        // A failed packet must not have moved the window.
        prop_assert_eq!(inb.highest_seq(), 0);
    }

    /// Every single-bit flip, of every bit of the packet, is caught: the
    /// SPI names another SA, a sequence number may turn into 0 (a replay),
    /// everything else, header, IV, ciphertext and ICV alike, fails the ICV.
    #[test]
    fn every_single_bit_flip_fails(
        suite in any_suite(),
        esn in any::<bool>(),
        len in 20usize..120,
    ) {
        let (out, inb) = pair(suite, esn, 0);
        let packet = seal(&out, &ipv4_packet(len, 7), NEXT_HEADER_IPV4);
        for bit in 0..packet.len() * 8 {
            let mut p = packet.clone();
            p[bit / 8] ^= 1 << (bit % 8);
            let result = inb.open_in_place(&mut p);
            match bit / 8 {
                0..=3 => prop_assert_eq!(result, Err(OpenError::SpiMismatch)),
                4..=7 => prop_assert!(
                    matches!(result, Err(OpenError::Authentication | OpenError::Replay)),
                    "{} bit {}: {:?}", suite, bit, result
                ),
                _ => prop_assert_eq!(result, Err(OpenError::Authentication), "{} bit {}", suite, bit),
            }
        }
        prop_assert_eq!(inb.highest_seq(), 0);
        // The unflipped packet still opens: nothing above moved the window.
        prop_assert!(inb.open_in_place(&mut packet.clone()).is_ok());
    }

    /// Packets cut short or padded out fail too (never success, never a
    /// panic).
    #[test]
    fn resized_packets_fail(
        suite in any_suite(),
        len in 20usize..300,
        cut in 1usize..64,
        grow in 1usize..16,
    ) {
        let (out, inb) = pair(suite, false, 0);
        let packet = seal(&out, &ipv4_packet(len, 2), NEXT_HEADER_IPV4);
        let mut short = packet[..packet.len().saturating_sub(cut)].to_vec();
        prop_assert!(inb.open_in_place(&mut short).is_err());
        let mut long = packet.clone();
        long.resize(packet.len() + grow, 0);
        prop_assert!(inb.open_in_place(&mut long).is_err());
        let mut exact = packet;
        prop_assert!(inb.open_in_place(&mut exact).is_ok());
    }
}

#[test]
fn wrong_key_or_suite_fails_authentication() {
    for suite in Suite::ALL {
        let (out, _) = pair(suite, false, 0);
        let packet = seal(&out, &ipv4_packet(100, 3), NEXT_HEADER_IPV4);

        let mut other_key = common::keymat(suite);
        other_key[0] ^= 1;
        let inb = InboundSa::new(suite, SPI, &other_key, false, 0).unwrap();
        let r = inb.open_in_place(&mut packet.clone());
        if suite.is_aead() {
            assert_eq!(r, Err(OpenError::Authentication));
        } else {
            // AES-CBC: the HMAC key is intact, so the packet authenticates and
            // decrypts to garbage, which the trailer checks refuse.
            assert!(
                matches!(
                    r,
                    Err(OpenError::BadPadding | OpenError::BadNextHeader | OpenError::Malformed)
                ),
                "{suite}: {r:?}"
            );
        }

        // An AEAD's salt, or the HMAC key's last byte.
        let mut other_salt = common::keymat(suite);
        *other_salt.last_mut().unwrap() ^= 1;
        let inb = InboundSa::new(suite, SPI, &other_salt, false, 0).unwrap();
        assert_eq!(
            inb.open_in_place(&mut packet.clone()),
            Err(OpenError::Authentication)
        );

        // Same SPI and key bytes, other ESN setting: the AAD differs.
        let inb = InboundSa::new(suite, SPI, &common::keymat(suite), true, 0).unwrap();
        assert_eq!(
            inb.open_in_place(&mut packet.clone()),
            Err(OpenError::Authentication)
        );
    }
}

#[test]
fn sealed_packet_layout() {
    let (out, _) = pair(Suite::Aes256Gcm16, false, 0);
    for len in 20..28 {
        let packet = seal(&out, &ipv4_packet(len, 0), NEXT_HEADER_IPV4);
        assert_eq!(&packet[..4], &SPI.to_be_bytes());
        let body = packet.len() - 16 - 16;
        assert_eq!(body % 4, 0);
        assert!(body >= len + 2 && body < len + 6, "len {len} body {body}");
    }
    // AES-CBC: 24-byte header (16-byte IV), body padded to 16, 12-byte ICV.
    let (out, _) = pair(Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96), false, 0);
    for len in 20..60 {
        let packet = seal(&out, &ipv4_packet(len, 0), NEXT_HEADER_IPV4);
        assert_eq!(&packet[..4], &SPI.to_be_bytes());
        let body = packet.len() - 24 - 12;
        assert_eq!(body % 16, 0);
        assert!(body >= len + 2 && body < len + 18, "len {len} body {body}");
        assert!(packet.len() <= HEADROOM + len + ironsec_esp::MAX_TRAILER);
    }
}
