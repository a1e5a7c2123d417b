//! The encrypted ESP trailer (padding, pad length, next header) and the
//! inner packet's own length, which together decide where the inner packet
//! ends once TFC padding may follow it.

use crate::inbound::OpenError;
use crate::{NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_NONE};

/// Length of payload, padding, pad length and next header for a suite whose
/// body must be a multiple of `block` ([`Suite::block_len`](crate::Suite::block_len)).
/// RFC 4303 §2.4 requires pad length and next header to end on a 4-byte
/// boundary (the AEADs' 16-byte header keeps that alignment, so only the body
/// is padded), and a block cipher's input to be whole blocks: 16 bytes for
/// AES-CBC (RFC 3602 §2.4).
pub(crate) fn body_len(payload_len: usize, block: usize) -> Option<usize> {
    payload_len.checked_add(2)?.checked_next_multiple_of(block)
}

/// Fills `trailer` (everything after the payload in the body) with the
/// default padding 1, 2, 3, ... (RFC 4303 §2.4), the pad length and the next
/// header.
#[inline]
pub(crate) fn write(trailer: &mut [u8], next_header: u8) {
    let Some(pad_len) = trailer.len().checked_sub(2) else {
        return;
    };
    let (pad, tail) = trailer.split_at_mut(pad_len);
    for (i, b) in pad.iter_mut().enumerate() {
        *b = (i + 1) as u8;
    }
    tail[0] = pad_len as u8;
    tail[1] = next_header;
}

/// Splits a decrypted body into the data before the padding and the next
/// header. The padding content is checked because RFC 4303 §2.4 lets a
/// receiver rely on the default pattern, and a wrong pattern from an
/// authenticated peer means the peer is broken.
pub(crate) fn parse(body: &[u8]) -> Result<(usize, u8), OpenError> {
    let [rest @ .., pad_len, next_header] = body else {
        return Err(OpenError::BadPadding);
    };
    let pad_len = usize::from(*pad_len);
    let data_len = rest
        .len()
        .checked_sub(pad_len)
        .ok_or(OpenError::BadPadding)?;
    let pad = rest.get(data_len..).ok_or(OpenError::BadPadding)?;
    if pad
        .iter()
        .enumerate()
        .any(|(i, &b)| usize::from(b) != i + 1)
    {
        return Err(OpenError::BadPadding);
    }
    match *next_header {
        NEXT_HEADER_IPV4 | NEXT_HEADER_IPV6 => Ok((data_len, *next_header)),
        NEXT_HEADER_NONE => Err(OpenError::Dummy),
        _ => Err(OpenError::BadNextHeader),
    }
}

/// The inner packet's length as its own header states it. Everything after
/// it is TFC padding (RFC 4303 §2.4 and §2.7), which a sender may append to
/// hide the real length; a header claiming more than arrived is malformed.
pub(crate) fn inner_len(data: &[u8], next_header: u8) -> Result<usize, OpenError> {
    let stated = match next_header {
        NEXT_HEADER_IPV4 => {
            if data.len() < 20 || data[0] >> 4 != 4 {
                return Err(OpenError::Malformed);
            }
            let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
            let header = usize::from(data[0] & 0x0f) * 4;
            if header < 20 || total < header {
                return Err(OpenError::Malformed);
            }
            total
        }
        NEXT_HEADER_IPV6 => {
            if data.len() < 40 || data[0] >> 4 != 6 {
                return Err(OpenError::Malformed);
            }
            let payload = usize::from(u16::from_be_bytes([data[4], data[5]]));
            // Payload length 0 before a hop-by-hop header announces a jumbogram (RFC 2675),
            // whose real length is in an option: one cannot come through ESP in UDP (a UDP
            // datagram, like a write to the TUN device, holds at most 65,535 bytes), and
            // taking the 0 at its word would deliver the bare 40-byte header.
            if payload == 0 && data[6] == 0 {
                return Err(OpenError::Malformed);
            }
            let stated = 40 + payload;
            if stated > data.len() || !ipv6_chain_fits(&data[..stated]) {
                return Err(OpenError::Malformed);
            }
            return Ok(stated);
        }
        _ => return Err(OpenError::BadNextHeader),
    };
    if stated > data.len() {
        return Err(OpenError::Malformed);
    }
    Ok(stated)
}

/// Whether the extension headers of IPv6 packet `pkt` (cut to its stated length) that come
/// before the fragmentable part or the upper layer (hop-by-hop, routing, destination options,
/// up to a fragment header; at most 8 of them) end within it: the IPv6 counterpart of
/// IPv4's header length within the total length. A chain longer than its packet would
/// otherwise be delivered, for the receiving host's stack to parse past the end. What
/// follows a fragment header is the fragment's data (or, for the first fragment, headers the
/// reassembly checks), and chains longer than 8 are left to the host.
fn ipv6_chain_fits(pkt: &[u8]) -> bool {
    let mut next = pkt[6];
    let mut off = 40;
    for _ in 0..8 {
        let len = match next {
            0 | 43 | 60 => match pkt.get(off + 1) {
                Some(l) => (usize::from(*l) + 1) * 8,
                None => return false,
            },
            44 => return off + 8 <= pkt.len(),
            _ => return true,
        };
        if off + len > pkt.len() {
            return false;
        }
        next = pkt[off];
        off += len;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn padding_aligns_body() {
        assert_eq!(body_len(0, 4), Some(4));
        assert_eq!(body_len(1, 4), Some(4));
        assert_eq!(body_len(2, 4), Some(4));
        assert_eq!(body_len(3, 4), Some(8));
        assert_eq!(body_len(84, 4), Some(88));
        assert_eq!(body_len(usize::MAX, 4), None);
        assert_eq!(body_len(usize::MAX - 2, 4), None);
        assert_eq!(body_len(0, 16), Some(16));
        assert_eq!(body_len(14, 16), Some(16));
        assert_eq!(body_len(15, 16), Some(32));
        assert_eq!(body_len(1400, 16), Some(1408));
        assert_eq!(body_len(usize::MAX - 15, 16), None);
    }

    #[test]
    fn write_then_parse() {
        for (payload, block) in (20..40usize).flat_map(|p| [(p, 4), (p, 16)]) {
            let body = body_len(payload, block).unwrap();
            let mut buf = vec![0x45u8; body];
            write(&mut buf[payload..], NEXT_HEADER_IPV6);
            assert_eq!(parse(&buf), Ok((payload, NEXT_HEADER_IPV6)));
            assert_eq!(buf[body - 2] as usize, body - payload - 2);
        }
    }

    #[test]
    fn parse_rejects() {
        assert_eq!(parse(&[]), Err(OpenError::BadPadding));
        assert_eq!(parse(&[4]), Err(OpenError::BadPadding));
        assert_eq!(parse(&[1, 4]), Err(OpenError::BadPadding));
        assert_eq!(parse(&[1, 3, 2, 4]), Err(OpenError::BadPadding));
        assert_eq!(parse(&[9, 1, 2, 2, 4]), Ok((1, 4)));
        assert_eq!(parse(&[9, 1, 2, 2, 59]), Err(OpenError::Dummy));
        assert_eq!(parse(&[9, 1, 2, 2, 1]), Err(OpenError::BadNextHeader));
        assert_eq!(parse(&[0, 41]), Ok((0, 41)));
    }

    fn ipv4(total: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p
    }

    #[test]
    fn inner_length_and_tfc() {
        assert_eq!(inner_len(&ipv4(20, 20), 4), Ok(20));
        assert_eq!(inner_len(&ipv4(20, 64), 4), Ok(20));
        assert_eq!(inner_len(&ipv4(65, 64), 4), Err(OpenError::Malformed));
        assert_eq!(inner_len(&ipv4(19, 64), 4), Err(OpenError::Malformed));
        assert_eq!(inner_len(&ipv4(20, 19), 4), Err(OpenError::Malformed));
        let mut v6 = vec![0u8; 100];
        v6[0] = 0x60;
        v6[5] = 8;
        v6[6] = 17; // UDP (0 would be a hop-by-hop header, which must fit)
        assert_eq!(inner_len(&v6, 41), Ok(48));
        assert_eq!(inner_len(&v6, 4), Err(OpenError::Malformed));
        assert_eq!(inner_len(&ipv4(20, 64), 41), Err(OpenError::Malformed));
        assert_eq!(inner_len(&v6[..39], 41), Err(OpenError::Malformed));
        v6[5] = 61;
        assert_eq!(inner_len(&v6, 41), Err(OpenError::Malformed));
    }

    /// An IPv6 packet of `len` bytes whose payload length says `payload` and whose header
    /// chain is `chain` (from byte 6: next header, then the extension headers at 40).
    fn ipv6(payload: u16, next: u8, ext: &[u8], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(40 + ext.len())];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        p[6] = next;
        p[40..40 + ext.len()].copy_from_slice(ext);
        p.truncate(len);
        p
    }

    /// IPv6 rows of the inner-length table: extension header chains within, across and past
    /// the stated length, jumbograms, and lengths that disagree with the data.
    #[test]
    fn ipv6_extension_headers_and_jumbo_lengths() {
        let m = Err(OpenError::Malformed);
        // Hop-by-hop (8 bytes), destination options (16), then UDP: 8 + 16 + 8 = 32.
        let chain = [
            60, 0, 1, 4, 0, 0, 0, 0, 17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let ok = ipv6(32, 0, &chain, 72);
        assert_eq!(inner_len(&ok, 41), Ok(72));
        // With TFC padding after it.
        assert_eq!(inner_len(&ipv6(32, 0, &chain, 200), 41), Ok(72));
        // The stated length ends inside the destination options header, or right after the
        // hop-by-hop header whose next header (destination options) is then missing.
        assert_eq!(inner_len(&ipv6(20, 0, &chain, 72), 41), m);
        assert_eq!(inner_len(&ipv6(8, 0, &chain, 72), 41), m);
        // Stated lengths past the decrypted data.
        assert_eq!(inner_len(&ipv6(33, 0, &chain, 72), 41), m);
        assert_eq!(inner_len(&ipv6(u16::MAX, 0, &chain, 72), 41), m);
        // A routing header claiming 255 * 8 + 8 bytes in a short packet.
        assert_eq!(inner_len(&ipv6(16, 43, &[17, 255, 0, 0], 56), 41), m);
        // A routing header that fits, then TCP.
        assert_eq!(inner_len(&ipv6(8, 43, &[6, 0, 0, 0], 48), 41), Ok(48));
        // A fragment header must fit; what follows it is fragment data, not walked.
        assert_eq!(
            inner_len(&ipv6(8, 44, &[60, 0, 0, 8, 0, 0, 0, 1], 48), 41),
            Ok(48)
        );
        assert_eq!(inner_len(&ipv6(4, 44, &[60, 0, 0, 8], 44), 41), m);
        // Nine chained destination options headers: past the 8 walked, left to the host.
        let nine: Vec<u8> = (0..9).flat_map(|_| [60, 0, 1, 4, 0, 0, 0, 0]).collect();
        assert_eq!(inner_len(&ipv6(72, 60, &nine, 112), 41), Ok(112));
        // Unknown next headers (an upper layer for all the check knows) and "no next
        // header" end the walk.
        assert_eq!(inner_len(&ipv6(0, 59, &[], 40), 41), Ok(40));
        assert_eq!(inner_len(&ipv6(4, 255, &[1, 2, 3, 4], 44), 41), Ok(44));
        // A jumbogram: payload length 0, hop-by-hop with a Jumbo Payload option (0xc2, 4
        // bytes) giving 16, then UDP. Never carried: refused instead of cut to 40 bytes.
        let jumbo = [17, 0, 0xc2, 4, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(inner_len(&ipv6(0, 0, &jumbo, 56), 41), m);
        assert_eq!(inner_len(&ipv6(0, 0, &[], 40), 41), m);
        // Payload length 0 with another next header is a bare 40-byte packet.
        assert_eq!(inner_len(&ipv6(0, 17, &[], 40), 41), Ok(40));
        // Version nibble and next header disagree.
        assert_eq!(inner_len(&ok, 4), m);
        let mut v4_under_41 = ok.clone();
        v4_under_41[0] = 0x45;
        assert_eq!(inner_len(&v4_under_41, 41), m);
        // An IPv6 packet whose next header is IPv4 (IPv4-in-IPv6) is an upper layer here.
        assert_eq!(inner_len(&ipv6(20, 4, &[0x45; 20], 60), 41), Ok(60));
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..300), nh in any::<u8>()) {
            if let Ok((len, nh2)) = parse(&body) {
                prop_assert!(len + 2 <= body.len());
                let _ = inner_len(&body[..len], nh2);
            }
            let _ = inner_len(&body, nh);
            // And as an IPv6 packet, whatever its chain: a length within the data or an error.
            let mut v6 = body.clone();
            if v6.len() >= 40 {
                v6[0] = 0x60 | (v6[0] & 0x0f);
                if let Ok(n) = inner_len(&v6, 41) {
                    prop_assert!((40..=v6.len()).contains(&n));
                }
            }
        }
    }
}
