//! The Configuration payload (RFC 7296 section 3.15).
//!
//! ```text
//! CP        = CFG Type | RESERVED(3) | Attribute*
//! Attribute = R|Attribute Type(2) | Length(2) | Value
//! ```

use super::error::ParseError;
use super::reader::{clamp16, Reader, Writer};
use super::MAX_ATTRIBUTES;

/// CFG_REQUEST: ask the peer for configuration (e.g. an internal address).
pub const CFG_REQUEST: u8 = 1;
/// CFG_REPLY: the answer to a CFG_REQUEST.
pub const CFG_REPLY: u8 = 2;
/// CFG_SET: push configuration.
pub const CFG_SET: u8 = 3;
/// CFG_ACK: acknowledge a CFG_SET.
pub const CFG_ACK: u8 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpPayload {
    pub cfg_type: u8,
    /// (attribute type, value). Types are 15 bits: the reserved top bit is dropped on parse and
    /// never sent.
    pub attributes: Vec<(u16, Vec<u8>)>,
}

const TYPE_MASK: u16 = 0x7fff;

impl CpPayload {
    pub(crate) fn parse(mut r: Reader) -> Result<CpPayload, ParseError> {
        let offset = r.offset();
        let cfg_type = r.u8("CP header")?;
        r.skip(3, "CP header")?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            if attributes.len() == MAX_ATTRIBUTES {
                return Err(ParseError::TooMany {
                    what: "configuration attributes",
                    offset,
                    limit: MAX_ATTRIBUTES,
                });
            }
            let t = r.u16("configuration attribute")? & TYPE_MASK;
            let len = usize::from(r.u16("configuration attribute")?);
            let v = r.take(len, "configuration attribute value")?;
            attributes.push((t, v.to_vec()));
        }
        Ok(CpPayload {
            cfg_type,
            attributes,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u8(self.cfg_type);
        w.zeros(3);
        for (t, v) in &self.attributes {
            w.u16(t & TYPE_MASK);
            w.u16(clamp16(v.len()));
            w.bytes(v);
        }
    }
}
