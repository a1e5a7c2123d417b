//! The Notify payload (RFC 7296 section 3.10).
//!
//! ```text
//! Notify = Protocol ID | SPI Size | Notify Message Type(2) | SPI | Notification Data
//! ```

use super::error::ParseError;
use super::numbers::NotifyType;
use super::reader::{clamp8, Reader, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyPayload {
    /// Security protocol of the SA the notify is about: 0 (with an empty SPI) when it concerns
    /// the IKE SA or none, 3 (ESP) or 2 (AH) with that SA's 4-byte SPI (e.g. REKEY_SA).
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub kind: NotifyType,
    pub data: Vec<u8>,
}

impl NotifyPayload {
    pub(crate) fn parse(mut r: Reader) -> Result<NotifyPayload, ParseError> {
        let protocol = r.u8("Notify header")?;
        let spi_size = usize::from(r.u8("Notify header")?);
        let kind = NotifyType::from(r.u16("Notify header")?);
        let spi = r.take(spi_size, "Notify SPI")?.to_vec();
        let data = r.rest().to_vec();
        Ok(NotifyPayload {
            protocol,
            spi,
            kind,
            data,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u8(self.protocol);
        w.u8(clamp8(self.spi.len()));
        w.u16(self.kind.number());
        w.bytes(&self.spi);
        w.bytes(&self.data);
    }
}
