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
            40 + usize::from(u16::from_be_bytes([data[4], data[5]]))
        }
        _ => return Err(OpenError::BadNextHeader),
    };
    if stated > data.len() {
        return Err(OpenError::Malformed);
    }
    Ok(stated)
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
        assert_eq!(inner_len(&v6, 41), Ok(48));
        assert_eq!(inner_len(&v6, 4), Err(OpenError::Malformed));
        assert_eq!(inner_len(&ipv4(20, 64), 41), Err(OpenError::Malformed));
        assert_eq!(inner_len(&v6[..39], 41), Err(OpenError::Malformed));
        v6[5] = 61;
        assert_eq!(inner_len(&v6, 41), Err(OpenError::Malformed));
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..300), nh in any::<u8>()) {
            if let Ok((len, nh2)) = parse(&body) {
                prop_assert!(len + 2 <= body.len());
                let _ = inner_len(&body[..len], nh2);
            }
            let _ = inner_len(&body, nh);
        }
    }
}
