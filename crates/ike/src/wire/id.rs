//! Identification payloads IDi and IDr (RFC 7296 section 3.5).
//!
//! ```text
//! ID = ID Type | RESERVED(3) | Identification Data
//! ```

use super::error::ParseError;
use super::numbers::{IdType, PayloadType};
use super::reader::{Reader, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdPayload {
    pub id_type: IdType,
    /// Never empty; 4 bytes for ID_IPV4_ADDR and 16 for ID_IPV6_ADDR (checked on parse).
    /// FQDN and RFC822 identities are ASCII without terminator.
    pub data: Vec<u8>,
}

impl IdPayload {
    /// The payload body without the generic header, "RestOfInitIDPayload" /
    /// "RestOfRespIDPayload" of RFC 7296 section 2.15: ID Type | RESERVED(3) | data. The AUTH
    /// payload signs or MACs `prf(SK_p, this)`.
    ///
    /// RESERVED is written as zero. A peer that put other bits there would compute its AUTH
    /// over them and ours would not match; RFC 7296 says it MUST send zero, and the major
    /// implementations do.
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode(&mut w);
        w.buf
    }

    pub(crate) fn parse(mut r: Reader, payload: PayloadType) -> Result<IdPayload, ParseError> {
        let offset = r.offset();
        let id_type = IdType::from(r.u8("ID header")?);
        r.skip(3, "ID header")?;
        let data = r.rest().to_vec();
        let invalid = |reason| ParseError::InvalidSyntax {
            payload,
            offset,
            reason,
        };
        match id_type {
            _ if data.is_empty() => return Err(invalid("empty identification data")),
            IdType::Ipv4Addr if data.len() != 4 => {
                return Err(invalid("ID_IPV4_ADDR is not 4 bytes"))
            }
            IdType::Ipv6Addr if data.len() != 16 => {
                return Err(invalid("ID_IPV6_ADDR is not 16 bytes"))
            }
            _ => {}
        }
        Ok(IdPayload { id_type, data })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u8(self.id_type.number());
        w.zeros(3);
        w.bytes(&self.data);
    }
}
