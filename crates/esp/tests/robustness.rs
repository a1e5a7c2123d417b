//! Arbitrary bytes from the network never panic and never pass.

mod common;

use common::{pair, SPI};
use ironsec_esp::{classify, peek_spi, Datagram, MalformedKind, OpenError, Suite, MIN_ESP_LEN};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Classification follows RFC 3948's rules for any datagram.
    #[test]
    fn classify_any_bytes(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        match classify(&payload) {
            Datagram::Ike(ike) => {
                prop_assert_eq!(&payload[..4], &[0, 0, 0, 0]);
                prop_assert_eq!(ike, &payload[4..]);
                prop_assert!(ike.len() >= 28);
            }
            Datagram::NatKeepalive => prop_assert_eq!(&payload[..], &[0xFF]),
            Datagram::Esp { spi } => {
                prop_assert!(payload.len() >= MIN_ESP_LEN);
                prop_assert!(spi >= 256);
                prop_assert_eq!(Some(spi), peek_spi(&payload));
            }
            Datagram::Malformed(MalformedKind::Empty) => prop_assert!(payload.is_empty()),
            Datagram::Malformed(MalformedKind::TooShort) => {
                prop_assert!(!payload.is_empty() && payload.len() < MIN_ESP_LEN);
            }
            Datagram::Malformed(MalformedKind::ReservedSpi) => {
                let spi = peek_spi(&payload).unwrap();
                prop_assert!((1..256).contains(&spi));
            }
        }
    }

    /// Random bytes through `open_in_place`: never a panic, never success.
    #[test]
    fn open_any_bytes(
        suite in prop::sample::select(Suite::ALL.to_vec()),
        esn in any::<bool>(),
        mut bytes in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let (_, inb) = pair(suite, esn, 0);
        prop_assert!(inb.open_in_place(&mut bytes).is_err());
    }

    /// Random bytes that pass the cheap checks (right SPI, aligned length)
    /// reach the ICV check and fail there, or as a replay when they carry
    /// sequence number 0.
    #[test]
    fn open_plausible_bytes(
        suite in prop::sample::select(Suite::ALL.to_vec()),
        esn in any::<bool>(),
        blocks in 1..20usize,
        seed in proptest::collection::vec(any::<u8>(), 400),
    ) {
        let (_, inb) = pair(suite, esn, 0);
        let len = suite.header_len() + blocks * suite.block_len() + suite.icv_len();
        prop_assert!(len >= MIN_ESP_LEN);
        let mut bytes = seed[..len].to_vec();
        bytes[..4].copy_from_slice(&SPI.to_be_bytes());
        let result = inb.open_in_place(&mut bytes);
        prop_assert!(
            matches!(result, Err(OpenError::Authentication | OpenError::Replay)),
            "{:?}", result
        );
        prop_assert_eq!(inb.highest_seq(), 0);
    }
}

#[test]
fn peek_spi_needs_four_bytes() {
    assert_eq!(peek_spi(&[]), None);
    assert_eq!(peek_spi(&[1, 2, 3]), None);
    assert_eq!(peek_spi(&[1, 2, 3, 4]), Some(0x0102_0304));
}
