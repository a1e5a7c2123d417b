//! What a UDP/4500 datagram carries (RFC 3948 §2): IKE behind the non-ESP
//! marker, a NAT keepalive, or ESP. Decided from the first bytes alone, so
//! the dataplane can hand IKE to the control plane without touching an SA.

use crate::MIN_ESP_LEN;

/// RFC 3948 §2.2: IKE on port 4500 is prefixed with four zero bytes, which
/// no ESP packet can start with because SPI 0 is reserved.
const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// RFC 7296 §3.1: the fixed IKE header.
const IKE_HEADER_LEN: usize = 28;
/// RFC 3948 §2.3: a NAT keepalive is a single 0xFF byte.
const NAT_KEEPALIVE: u8 = 0xFF;
/// RFC 4303 §2.1: SPIs 1..=255 are reserved by IANA and never assigned.
const FIRST_ASSIGNABLE_SPI: u32 = 256;

/// Kind of a UDP/4500 datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// An IKE message, without the non-ESP marker.
    Ike(&'a [u8]),
    /// NAT keepalive: only refreshes the NAT mapping, nothing to process.
    NatKeepalive,
    /// An ESP packet for the SA with this SPI (the whole datagram is the
    /// packet).
    Esp {
        /// Security parameter index from the first four bytes.
        spi: u32,
    },
    /// Not a valid datagram of any kind; dropped and counted.
    Malformed(MalformedKind),
}

/// Why a datagram was not classified; for drop counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MalformedKind {
    /// Zero-length datagram.
    Empty,
    /// Too short for an IKE header after the marker, or for the smallest
    /// ESP packet.
    TooShort,
    /// SPI in the IANA-reserved range 1..=255.
    ReservedSpi,
}

/// Classifies a UDP/4500 payload.
pub fn classify(payload: &[u8]) -> Datagram<'_> {
    match payload {
        [] => Datagram::Malformed(MalformedKind::Empty),
        [NAT_KEEPALIVE] => Datagram::NatKeepalive,
        [a, b, c, d, rest @ ..] => {
            if [*a, *b, *c, *d] == NON_ESP_MARKER {
                return if rest.len() < IKE_HEADER_LEN {
                    Datagram::Malformed(MalformedKind::TooShort)
                } else {
                    Datagram::Ike(rest)
                };
            }
            let spi = u32::from_be_bytes([*a, *b, *c, *d]);
            if payload.len() < MIN_ESP_LEN {
                Datagram::Malformed(MalformedKind::TooShort)
            } else if spi < FIRST_ASSIGNABLE_SPI {
                Datagram::Malformed(MalformedKind::ReservedSpi)
            } else {
                Datagram::Esp { spi }
            }
        }
        _ => Datagram::Malformed(MalformedKind::TooShort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(classify(&[]), Datagram::Malformed(MalformedKind::Empty));
        assert_eq!(classify(&[0xFF]), Datagram::NatKeepalive);
        assert_eq!(
            classify(&[0xFE]),
            Datagram::Malformed(MalformedKind::TooShort)
        );
        assert_eq!(
            classify(&[0xFF, 0xFF]),
            Datagram::Malformed(MalformedKind::TooShort)
        );
        assert_eq!(
            classify(&[0, 0, 0]),
            Datagram::Malformed(MalformedKind::TooShort)
        );

        let mut ike = vec![0u8; 4 + 28];
        ike[4] = 0xAB;
        assert_eq!(classify(&ike), Datagram::Ike(&ike[4..]));
        assert_eq!(
            classify(&ike[..31]),
            Datagram::Malformed(MalformedKind::TooShort)
        );
        assert_eq!(
            classify(&[0, 0, 0, 0]),
            Datagram::Malformed(MalformedKind::TooShort)
        );

        let mut esp = vec![0u8; MIN_ESP_LEN];
        esp[2] = 1; // SPI 256
        assert_eq!(classify(&esp), Datagram::Esp { spi: 256 });
        assert_eq!(
            classify(&esp[..MIN_ESP_LEN - 1]),
            Datagram::Malformed(MalformedKind::TooShort)
        );
        esp[2] = 0;
        esp[3] = 255;
        assert_eq!(
            classify(&esp),
            Datagram::Malformed(MalformedKind::ReservedSpi)
        );
        esp[0] = 0xFF;
        assert_eq!(classify(&esp), Datagram::Esp { spi: 0xFF00_00FF });
    }
}
