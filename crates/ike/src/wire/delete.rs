//! The Delete payload (RFC 7296 section 3.11).
//!
//! ```text
//! Delete = Protocol ID | SPI Size | Num of SPIs(2) | SPI*
//! ```

use super::error::ParseError;
use super::numbers::{PayloadType, ProtocolId};
use super::reader::{clamp16, Reader, Writer};
use super::MAX_DELETE_SPIS;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletePayload {
    /// IKE deletes the IKE SA the message travels in (no SPIs: they are in the header); ESP and
    /// AH list the SPIs of the sender's inbound SAs.
    pub protocol: ProtocolId,
    /// Length of each SPI: 0 for IKE, 4 for ESP and AH (checked on parse). Kept apart from
    /// `spis` because an IKE delete has a size but no SPIs; the encoder writes it as given, so
    /// every entry of `spis` must be this long.
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

fn invalid(offset: usize, reason: &'static str) -> ParseError {
    ParseError::InvalidSyntax {
        payload: PayloadType::Delete,
        offset,
        reason,
    }
}

impl DeletePayload {
    pub(crate) fn parse(mut r: Reader) -> Result<DeletePayload, ParseError> {
        let offset = r.offset();
        let protocol = ProtocolId::from(r.u8("Delete header")?);
        let spi_size = r.u8("Delete header")?;
        let count = usize::from(r.u16("Delete header")?);
        match protocol {
            ProtocolId::Ike if spi_size != 0 || count != 0 => {
                return Err(invalid(offset, "an IKE SA delete carries no SPIs"))
            }
            ProtocolId::Esp | ProtocolId::Ah if spi_size != 4 => {
                return Err(invalid(offset, "ESP and AH SPIs are 4 bytes"))
            }
            _ => {}
        }
        if spi_size == 0 && count != 0 {
            return Err(invalid(offset, "SPIs of size 0"));
        }
        if count > MAX_DELETE_SPIS {
            return Err(ParseError::TooMany {
                what: "SPIs",
                offset,
                limit: MAX_DELETE_SPIS,
            });
        }
        let size = usize::from(spi_size);
        if count * size != r.remaining() {
            return Err(ParseError::LengthMismatch {
                what: "Delete SPI list",
                offset,
                declared: count * size,
                actual: r.remaining(),
            });
        }
        let mut spis = Vec::with_capacity(count);
        for _ in 0..count {
            spis.push(r.take(size, "Delete SPI")?.to_vec());
        }
        Ok(DeletePayload {
            protocol,
            spi_size,
            spis,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u8(self.protocol.number());
        w.u8(self.spi_size);
        w.u16(clamp16(self.spis.len()));
        for spi in &self.spis {
            w.bytes(spi);
        }
    }
}
