//! The Security Association payload and its substructures (RFC 7296 section 3.3).
//!
//! ```text
//! SA payload   = Proposal+                      (Last Substruc: 2 "more", 0 "last")
//! Proposal     = Last | RESERVED | Length(2) | Number | Protocol ID | SPI Size | #Transforms
//!                | SPI | Transform*
//! Transform    = Last | RESERVED | Length(2) | Type | RESERVED | Transform ID(2) | Attribute*
//!                                              (Last Substruc: 3 "more", 0 "last")
//! Attribute    = AF|Type(2) | Value(2)                 (TV, AF = 1)
//!              | AF|Type(2) | Length(2) | Value        (TLV, AF = 0)
//! ```

use super::error::ParseError;
use super::numbers::{PayloadType, ProtocolId, TransformType, ATTR_FORMAT_TV, ATTR_KEY_LENGTH};
use super::reader::{clamp16, clamp8, Reader, Writer};
use super::{MAX_ATTRIBUTES, MAX_PROPOSALS, MAX_TRANSFORMS};

const PROPOSAL_MORE: u8 = 2;
const TRANSFORM_MORE: u8 = 3;
const LAST: u8 = 0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaPayload {
    /// Never empty on the wire. In a request, numbered 1, 2, 3...; in a response, the one
    /// proposal chosen, carrying the number it had in the request.
    pub proposals: Vec<Proposal>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub number: u8,
    pub protocol: ProtocolId,
    /// The sender's SPI for the SA being negotiated: empty for an initial IKE SA, 8 bytes when
    /// rekeying an IKE SA, 4 bytes for ESP and AH (checked on parse).
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transform {
    pub kind: TransformType,
    pub id: u16,
    /// The Key Length attribute (type 14, always TV format), in bits.
    pub key_length: Option<u16>,
    /// Any other attribute, with the type as on the wire including the AF bit
    /// ([`ATTR_FORMAT_TV`]): `0x8000 | t` is a TV attribute whose value is exactly 2 bytes,
    /// plain `t` a TLV attribute. RFC 7296 section 3.3.6 says a transform with an attribute we
    /// do not understand must not be chosen, so proposal matching needs to see them.
    pub other_attributes: Vec<(u16, Vec<u8>)>,
}

fn invalid(offset: usize, reason: &'static str) -> ParseError {
    ParseError::InvalidSyntax {
        payload: PayloadType::Sa,
        offset,
        reason,
    }
}

impl SaPayload {
    pub(crate) fn parse(mut r: Reader) -> Result<SaPayload, ParseError> {
        let payload_offset = r.offset();
        let mut proposals: Vec<Proposal> = Vec::new();
        loop {
            if proposals.len() == MAX_PROPOSALS {
                return Err(ParseError::TooMany {
                    what: "proposals",
                    offset: payload_offset,
                    limit: MAX_PROPOSALS,
                });
            }
            let offset = r.offset();
            let last = r.u8("proposal header")?;
            r.skip(1, "proposal header")?;
            let length = usize::from(r.u16("proposal header")?);
            let body_len = length
                .checked_sub(4)
                .filter(|n| *n >= 4)
                .ok_or(invalid(offset, "proposal length below its 8-byte header"))?;
            let body = r.sub(body_len, "proposal")?;
            let p = Proposal::parse(body, offset)?;
            match proposals.last() {
                None if p.number == 0 => return Err(invalid(offset, "proposal number 0")),
                Some(prev) if Some(p.number) != prev.number.checked_add(1) => {
                    return Err(invalid(offset, "proposal numbers do not go up by one"))
                }
                _ => {}
            }
            proposals.push(p);
            match last {
                LAST if r.is_empty() => return Ok(SaPayload { proposals }),
                LAST => {
                    return Err(ParseError::TrailingBytes {
                        what: "last proposal",
                        offset: r.offset(),
                        extra: r.remaining(),
                    })
                }
                PROPOSAL_MORE if r.is_empty() => {
                    return Err(invalid(
                        offset,
                        "proposal says more follow but the SA payload ends",
                    ))
                }
                PROPOSAL_MORE => {}
                _ => return Err(invalid(offset, "proposal Last Substruc is neither 0 nor 2")),
            }
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        for (i, p) in self.proposals.iter().enumerate() {
            let last = if i + 1 == self.proposals.len() {
                LAST
            } else {
                PROPOSAL_MORE
            };
            p.encode(last, w);
        }
    }
}

impl Proposal {
    /// `r` holds the proposal after its 4-byte substructure header at `offset`.
    fn parse(mut r: Reader, offset: usize) -> Result<Proposal, ParseError> {
        let number = r.u8("proposal header")?;
        let protocol = ProtocolId::from(r.u8("proposal header")?);
        let spi_size = r.u8("proposal header")?;
        let count = usize::from(r.u8("proposal header")?);
        let spi_ok = match protocol {
            ProtocolId::Ike => spi_size == 0 || spi_size == 8,
            ProtocolId::Esp | ProtocolId::Ah => spi_size == 4,
            ProtocolId::Other(_) => true,
        };
        if !spi_ok {
            return Err(invalid(
                offset,
                "SPI size does not suit the protocol (IKE 0 or 8, ESP/AH 4)",
            ));
        }
        let spi = r.take(usize::from(spi_size), "proposal SPI")?.to_vec();
        if count == 0 {
            return Err(invalid(offset, "proposal without transforms"));
        }
        if count > MAX_TRANSFORMS {
            return Err(ParseError::TooMany {
                what: "transforms",
                offset,
                limit: MAX_TRANSFORMS,
            });
        }
        let mut transforms = Vec::with_capacity(count);
        for i in 0..count {
            let t_offset = r.offset();
            if r.is_empty() {
                return Err(ParseError::LengthMismatch {
                    what: "proposal transform count",
                    offset,
                    declared: count,
                    actual: i,
                });
            }
            let last = r.u8("transform header")?;
            r.skip(1, "transform header")?;
            let length = usize::from(r.u16("transform header")?);
            let body_len = length.checked_sub(4).filter(|n| *n >= 4).ok_or(invalid(
                t_offset,
                "transform length below its 8-byte header",
            ))?;
            let body = r.sub(body_len, "transform")?;
            transforms.push(Transform::parse(body, t_offset)?);
            if last == LAST && i + 1 < count && r.is_empty() {
                return Err(ParseError::LengthMismatch {
                    what: "proposal transform count",
                    offset,
                    declared: count,
                    actual: i + 1,
                });
            }
            let expected = if i + 1 == count { LAST } else { TRANSFORM_MORE };
            if last != expected {
                return Err(invalid(
                    t_offset,
                    "transform Last Substruc disagrees with the transform count (3 before the last, 0 on it)",
                ));
            }
        }
        if !r.is_empty() {
            // More bytes than the counted transforms fill: the count is too low.
            return Err(ParseError::TrailingBytes {
                what: "last counted transform",
                offset: r.offset(),
                extra: r.remaining(),
            });
        }
        Ok(Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
    }

    fn encode(&self, last: u8, w: &mut Writer) {
        let start = w.len();
        w.u8(last);
        w.u8(0);
        let len_at = w.len16_placeholder();
        w.u8(self.number);
        w.u8(self.protocol.number());
        w.u8(clamp8(self.spi.len()));
        w.u8(clamp8(self.transforms.len()));
        w.bytes(&self.spi);
        for (i, t) in self.transforms.iter().enumerate() {
            let last = if i + 1 == self.transforms.len() {
                LAST
            } else {
                TRANSFORM_MORE
            };
            t.encode(last, w);
        }
        w.patch_len16(len_at, start);
    }
}

impl Transform {
    /// `r` holds the transform after its 4-byte substructure header at `offset`.
    fn parse(mut r: Reader, offset: usize) -> Result<Transform, ParseError> {
        let kind = TransformType::from(r.u8("transform header")?);
        r.skip(1, "transform header")?;
        let id = r.u16("transform header")?;
        let mut key_length = None;
        let mut other_attributes = Vec::new();
        while !r.is_empty() {
            let a_offset = r.offset();
            if other_attributes.len() + usize::from(key_length.is_some()) == MAX_ATTRIBUTES {
                return Err(ParseError::TooMany {
                    what: "transform attributes",
                    offset,
                    limit: MAX_ATTRIBUTES,
                });
            }
            let raw_type = r.u16("transform attribute")?;
            let attr_type = raw_type & !ATTR_FORMAT_TV;
            if raw_type & ATTR_FORMAT_TV != 0 {
                let value = r.array::<2>("TV attribute value")?;
                if attr_type == ATTR_KEY_LENGTH {
                    if key_length.is_some() {
                        return Err(invalid(a_offset, "Key Length attribute twice"));
                    }
                    key_length = Some(u16::from_be_bytes(value));
                } else {
                    other_attributes.push((raw_type, value.to_vec()));
                }
            } else {
                if attr_type == ATTR_KEY_LENGTH {
                    return Err(invalid(a_offset, "Key Length attribute in TLV format"));
                }
                let len = usize::from(r.u16("TLV attribute length")?);
                let value = r.take(len, "TLV attribute value")?;
                other_attributes.push((raw_type, value.to_vec()));
            }
        }
        Ok(Transform {
            kind,
            id,
            key_length,
            other_attributes,
        })
    }

    fn encode(&self, last: u8, w: &mut Writer) {
        let start = w.len();
        w.u8(last);
        w.u8(0);
        let len_at = w.len16_placeholder();
        w.u8(self.kind.number());
        w.u8(0);
        w.u16(self.id);
        if let Some(k) = self.key_length {
            w.u16(ATTR_FORMAT_TV | ATTR_KEY_LENGTH);
            w.u16(k);
        }
        for (t, v) in &self.other_attributes {
            w.u16(*t);
            if t & ATTR_FORMAT_TV != 0 {
                // A TV value is exactly 2 bytes: a longer one is cut, a shorter one zero-filled.
                let mut tv = [0u8; 2];
                for (dst, src) in tv.iter_mut().zip(v) {
                    *dst = *src;
                }
                w.bytes(&tv);
            } else {
                w.u16(clamp16(v.len()));
                w.bytes(v);
            }
        }
        w.patch_len16(len_at, start);
    }
}
