//! The fixed 28-byte IKE header (RFC 7296 section 3.1).

use super::error::ParseError;
use super::numbers::ExchangeType;
use super::reader::Reader;

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;

const FLAG_INITIATOR: u8 = 0x08;
const FLAG_VERSION: u8 = 0x10;
const FLAG_RESPONSE: u8 = 0x20;

/// The header's flag bits. The other five bits are reserved: sent as zero, ignored on receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flags {
    /// Set by the original initiator of the IKE SA (not of the exchange), in every message.
    pub initiator: bool,
    /// "I could speak a higher major version": we never set it.
    pub version: bool,
    /// This message answers a request with the same message ID.
    pub response: bool,
}

impl Flags {
    pub fn from_byte(b: u8) -> Flags {
        Flags {
            initiator: b & FLAG_INITIATOR != 0,
            version: b & FLAG_VERSION != 0,
            response: b & FLAG_RESPONSE != 0,
        }
    }

    /// The flags of a request from the original initiator (`initiator`) or responder.
    pub fn request(initiator: bool) -> Flags {
        Flags {
            initiator,
            version: false,
            response: false,
        }
    }

    /// The flags of a response from the original initiator (`initiator`) or responder.
    pub fn response(initiator: bool) -> Flags {
        Flags {
            initiator,
            version: false,
            response: true,
        }
    }

    pub fn to_byte(self) -> u8 {
        let mut b = 0;
        if self.initiator {
            b |= FLAG_INITIATOR;
        }
        if self.version {
            b |= FLAG_VERSION;
        }
        if self.response {
            b |= FLAG_RESPONSE;
        }
        b
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    /// Type of the first payload (0: none).
    pub next_payload: u8,
    /// 4 bits on the wire; must be 2 (checked by [`Header::parse`]).
    pub major: u8,
    /// 4 bits on the wire; ignored on receipt (RFC 7296 section 2.5).
    pub minor: u8,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    /// Length of the whole message, header included. The encoders compute it.
    pub length: u32,
}

impl Header {
    /// A version 2.0 header, the only one we send. `next_payload` and `length` start at zero:
    /// [`super::encode_message`] and the SK layouts fill them in.
    pub fn new(
        spi_i: u64,
        spi_r: u64,
        exchange: ExchangeType,
        flags: Flags,
        message_id: u32,
    ) -> Header {
        Header {
            spi_i,
            spi_r,
            next_payload: 0,
            major: 2,
            minor: 0,
            exchange,
            flags,
            message_id,
            length: 0,
        }
    }

    /// Parses the header and checks the major version; the length field is checked against
    /// the datagram by [`super::Message::parse`], not here.
    pub fn parse(b: &[u8]) -> Result<Header, ParseError> {
        let h = Header::decode(b)?;
        if h.major != 2 {
            return Err(ParseError::BadVersion {
                major: h.major,
                minor: h.minor,
            });
        }
        Ok(h)
    }

    /// Reads the 28 header bytes whatever the version says: what a responder needs to answer a
    /// [`ParseError::BadVersion`] with INVALID_MAJOR_VERSION (same SPIs and message ID).
    pub fn decode(b: &[u8]) -> Result<Header, ParseError> {
        let mut r = Reader::new(b, 0).sub(HEADER_LEN, "IKE header")?;
        let spi_i = r.u64("IKE header")?;
        let spi_r = r.u64("IKE header")?;
        let next_payload = r.u8("IKE header")?;
        let version = r.u8("IKE header")?;
        let exchange = ExchangeType::from(r.u8("IKE header")?);
        let flags = Flags::from_byte(r.u8("IKE header")?);
        let message_id = r.u32("IKE header")?;
        let length = r.u32("IKE header")?;
        Ok(Header {
            spi_i,
            spi_r,
            next_payload,
            major: version >> 4,
            minor: version & 0x0f,
            exchange,
            flags,
            message_id,
            length,
        })
    }

    /// Writes the header as it stands (major and minor are cut to their 4 bits).
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..8].copy_from_slice(&self.spi_i.to_be_bytes());
        out[8..16].copy_from_slice(&self.spi_r.to_be_bytes());
        out[16] = self.next_payload;
        out[17] = (self.major & 0x0f) << 4 | (self.minor & 0x0f);
        out[18] = self.exchange.number();
        out[19] = self.flags.to_byte();
        out[20..24].copy_from_slice(&self.message_id.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        self.write(&mut out);
        out
    }
}
