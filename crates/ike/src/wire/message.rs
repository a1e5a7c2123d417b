//! A whole IKE message: header, cleartext payloads, and where the encrypted part is.

use std::ops::Range;

use super::error::ParseError;
use super::header::{Header, HEADER_LEN};
use super::numbers::PayloadType;
use super::payload::{encode_chain_into, walk, Payload, GENERIC_HEADER_LEN};
use super::reader::{Reader, Writer};

/// Length of the SKF payload's fixed part: generic header, Fragment Number, Total Fragments.
pub const SKF_HEADER_LEN: usize = GENERIC_HEADER_LEN + 4;

/// A parsed datagram: header, the cleartext payloads before the SK/SKF payload, and where the
/// encrypted part is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
    pub encrypted: Option<Encrypted>,
}

/// The encrypted payload of a message, as ranges into the parsed buffer: the caller decrypts
/// `buf[body]` with `buf[aad]` as associated data, strips padding, then calls
/// [`super::parse_chain`] with `first_inner`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encrypted {
    /// SK payload (46). Offsets are into the datagram that was parsed (which must be the IKE
    /// message itself, i.e. after any non-ESP marker).
    Sk {
        /// Type of the first inner payload (0: none, as in an empty INFORMATIONAL).
        first_inner: u8,
        /// RFC 5282 section 5.1: from the first byte of the IKE header to the last byte of the
        /// SK generic payload header.
        aad: Range<usize>,
        /// IV || ciphertext || ICV, to the end of the message.
        body: Range<usize>,
    },
    /// SKF payload (53, RFC 7383): one fragment.
    Skf {
        /// Type of the first inner payload; nonzero only in fragment 1 (checked on parse).
        first_inner: u8,
        /// 1..=total_fragments (checked on parse).
        fragment_number: u16,
        /// At least 1 (checked on parse).
        total_fragments: u16,
        /// RFC 7383 section 2.5.3: IKE header and SKF header including the fragment fields.
        aad: Range<usize>,
        /// IV || ciphertext || ICV, to the end of the message.
        body: Range<usize>,
    },
}

impl Message {
    /// Parses one IKE message. `datagram` is the IKE message exactly: the caller strips the
    /// non-ESP marker on port 4500, and the header's length must equal `datagram.len()`
    /// (RFC 7296 section 3.1: the length of the total message; a shorter datagram is
    /// truncated, extra bytes are not ours to ignore).
    pub fn parse(datagram: &[u8]) -> Result<Message, ParseError> {
        let header = Header::parse(datagram)?;
        let declared = usize::try_from(header.length).unwrap_or(usize::MAX);
        if declared < HEADER_LEN || declared != datagram.len() {
            return Err(ParseError::LengthMismatch {
                what: "IKE message",
                offset: 0,
                declared,
                actual: datagram.len(),
            });
        }
        let mut r = Reader::new(datagram, 0);
        r.skip(HEADER_LEN, "IKE header")?;
        let (payloads, encrypted) = walk(header.next_payload, &mut r, true)?;
        let encrypted = match encrypted {
            None => None,
            Some(at) if at.kind == PayloadType::Sk => {
                let aad_end = at.offset + GENERIC_HEADER_LEN;
                Some(Encrypted::Sk {
                    first_inner: at.first_inner,
                    aad: 0..aad_end,
                    body: aad_end..datagram.len(),
                })
            }
            Some(mut at) => {
                let fragment_number = at.body.u16("SKF fragment fields")?;
                let total_fragments = at.body.u16("SKF fragment fields")?;
                let invalid = |reason| ParseError::InvalidSyntax {
                    payload: PayloadType::Skf,
                    offset: at.offset,
                    reason,
                };
                if fragment_number == 0 || total_fragments == 0 {
                    return Err(invalid("fragment number or total is 0"));
                }
                if fragment_number > total_fragments {
                    return Err(invalid("fragment number above the total"));
                }
                if fragment_number != 1 && at.first_inner != 0 {
                    return Err(invalid(
                        "Next Payload set in a fragment other than the first",
                    ));
                }
                let aad_end = at.offset + SKF_HEADER_LEN;
                Some(Encrypted::Skf {
                    first_inner: at.first_inner,
                    fragment_number,
                    total_fragments,
                    aad: 0..aad_end,
                    body: aad_end..datagram.len(),
                })
            }
        };
        Ok(Message {
            header,
            payloads,
            encrypted,
        })
    }
}

/// A whole cleartext message (IKE_SA_INIT, or an unprotected error notify): header.length and
/// next_payload are computed here, whatever the caller put in them.
pub fn encode_message(header: &Header, payloads: &[Payload]) -> Vec<u8> {
    let mut w = Writer::default();
    w.zeros(HEADER_LEN);
    let first = encode_chain_into(payloads, 0, &mut w);
    finish_header(header, first, w.buf)
}

/// Writes `header` with `next_payload` and the final length into the first 28 bytes.
pub(crate) fn finish_header(header: &Header, next_payload: u8, mut bytes: Vec<u8>) -> Vec<u8> {
    let h = Header {
        next_payload,
        length: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        ..header.clone()
    };
    if let Some(out) = bytes.first_chunk_mut::<HEADER_LEN>() {
        h.write(out);
    }
    bytes
}
