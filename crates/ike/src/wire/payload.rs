//! The payload chain: generic payload headers (RFC 7296 section 3.2), the [`Payload`] enum,
//! and walking and writing chains.
//!
//! ```text
//! Generic payload header = Next Payload | C|RESERVED(7) | Payload Length(2)
//! ```
//!
//! Each header names the type of the payload after it, so a chain is parsed by following
//! those fields from the IKE header's (or the SK payload's) first type until a 0.

use super::auth::{AuthPayload, CertPayload};
use super::cp::CpPayload;
use super::delete::DeletePayload;
use super::eap::EapPayload;
use super::error::ParseError;
use super::id::IdPayload;
use super::ke::{parse_nonce, KePayload};
use super::notify::NotifyPayload;
use super::numbers::PayloadType;
use super::reader::{Reader, Writer};
use super::sa::SaPayload;
use super::ts::TrafficSelector;
use super::MAX_PAYLOADS;

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

const CRITICAL: u8 = 0x80;

/// One parsed payload, owning its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Sa(SaPayload),
    Ke(KePayload),
    IdI(IdPayload),
    IdR(IdPayload),
    Cert(CertPayload),
    CertReq(CertPayload),
    Auth(AuthPayload),
    /// 16 to 256 bytes (checked on parse).
    Nonce(Vec<u8>),
    Notify(NotifyPayload),
    Delete(DeletePayload),
    VendorId(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    Cp(CpPayload),
    Eap(EapPayload),
    /// A payload type this codec does not parse. RFC 7296 section 2.5: if `critical` is clear
    /// the receiver skips it; if set, it rejects the message with UNSUPPORTED_CRITICAL_PAYLOAD
    /// (whose data is `kind`). Kept, not dropped, so the caller can decide and so messages
    /// round-trip. `kind` should not be 0 or a type listed in [`PayloadType`]; the encoder
    /// writes it and `data` as they are.
    Unknown {
        kind: u8,
        critical: bool,
        data: Vec<u8>,
    },
}

impl Payload {
    /// A notify about the IKE SA itself (protocol 0, no SPI): the common case, e.g. an error
    /// notify in a response or a status notify such as INITIAL_CONTACT.
    pub fn notify(kind: super::NotifyType, data: Vec<u8>) -> Payload {
        Payload::Notify(NotifyPayload {
            protocol: 0,
            spi: Vec::new(),
            kind,
            data,
        })
    }

    pub fn kind(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::Sa,
            Payload::Ke(_) => PayloadType::Ke,
            Payload::IdI(_) => PayloadType::IdI,
            Payload::IdR(_) => PayloadType::IdR,
            Payload::Cert(_) => PayloadType::Cert,
            Payload::CertReq(_) => PayloadType::CertReq,
            Payload::Auth(_) => PayloadType::Auth,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notify(_) => PayloadType::Notify,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::VendorId(_) => PayloadType::VendorId,
            Payload::TsI(_) => PayloadType::TsI,
            Payload::TsR(_) => PayloadType::TsR,
            Payload::Cp(_) => PayloadType::Cp,
            Payload::Eap(_) => PayloadType::Eap,
            Payload::Unknown { kind, .. } => PayloadType::from(*kind),
        }
    }

    /// Parses the body (after the generic header) of a payload of type `kind`.
    fn parse_body(kind: u8, critical: bool, mut r: Reader) -> Result<Payload, ParseError> {
        Ok(match PayloadType::from(kind) {
            PayloadType::Sa => Payload::Sa(SaPayload::parse(r)?),
            PayloadType::Ke => Payload::Ke(KePayload::parse(r)?),
            PayloadType::IdI => Payload::IdI(IdPayload::parse(r, PayloadType::IdI)?),
            PayloadType::IdR => Payload::IdR(IdPayload::parse(r, PayloadType::IdR)?),
            PayloadType::Cert => Payload::Cert(CertPayload::parse(r)?),
            PayloadType::CertReq => Payload::CertReq(CertPayload::parse(r)?),
            PayloadType::Auth => Payload::Auth(AuthPayload::parse(r)?),
            PayloadType::Nonce => Payload::Nonce(parse_nonce(r)?),
            PayloadType::Notify => Payload::Notify(NotifyPayload::parse(r)?),
            PayloadType::Delete => Payload::Delete(DeletePayload::parse(r)?),
            PayloadType::VendorId => Payload::VendorId(r.rest().to_vec()),
            PayloadType::TsI => Payload::TsI(TrafficSelector::parse_list(r)?),
            PayloadType::TsR => Payload::TsR(TrafficSelector::parse_list(r)?),
            PayloadType::Cp => Payload::Cp(CpPayload::parse(r)?),
            PayloadType::Eap => Payload::Eap(EapPayload::parse(r)?),
            // SK and SKF are handled by the chain walker before we get here.
            PayloadType::Sk | PayloadType::Skf | PayloadType::Other(_) => Payload::Unknown {
                kind,
                critical,
                data: r.rest().to_vec(),
            },
        })
    }

    fn encode_body(&self, w: &mut Writer) {
        match self {
            Payload::Sa(p) => p.encode(w),
            Payload::Ke(p) => p.encode(w),
            Payload::IdI(p) | Payload::IdR(p) => p.encode(w),
            Payload::Cert(p) | Payload::CertReq(p) => p.encode(w),
            Payload::Auth(p) => p.encode(w),
            Payload::Nonce(d) | Payload::VendorId(d) => w.bytes(d),
            Payload::Notify(p) => p.encode(w),
            Payload::Delete(p) => p.encode(w),
            Payload::TsI(l) | Payload::TsR(l) => TrafficSelector::encode_list(l, w),
            Payload::Cp(p) => p.encode(w),
            Payload::Eap(p) => p.encode(w),
            Payload::Unknown { data, .. } => w.bytes(data),
        }
    }

    fn critical(&self) -> bool {
        matches!(self, Payload::Unknown { critical: true, .. })
    }
}

/// Where a chain stopped at an SK or SKF payload.
pub(crate) struct EncryptedAt<'a> {
    pub kind: PayloadType,
    /// Offset of the SK/SKF generic payload header.
    pub offset: usize,
    /// Its Next Payload field: the type of the first inner payload.
    pub first_inner: u8,
    /// Its body, after the generic header.
    pub body: Reader<'a>,
}

/// Parses payloads from `r` starting with type `first` until a Next Payload of 0, or until an
/// SK/SKF payload (allowed only if `outer`, and then necessarily the last thing in `r`).
/// Everything in `r` must be used.
pub(crate) fn walk<'a>(
    first: u8,
    r: &mut Reader<'a>,
    outer: bool,
) -> Result<(Vec<Payload>, Option<EncryptedAt<'a>>), ParseError> {
    let mut out = Vec::new();
    let mut next = first;
    while next != 0 {
        if out.len() == MAX_PAYLOADS {
            return Err(ParseError::ChainTooLong {
                limit: MAX_PAYLOADS,
            });
        }
        let kind = PayloadType::from(next);
        let offset = r.offset();
        let np = r.u8("generic payload header")?;
        let flags = r.u8("generic payload header")?;
        let length = usize::from(r.u16("generic payload header")?);
        let Some(body_len) = length.checked_sub(GENERIC_HEADER_LEN) else {
            return Err(ParseError::BadPayloadLength {
                payload: kind,
                offset,
                length,
                reason: "shorter than the 4-byte generic header",
            });
        };
        if body_len > r.remaining() {
            return Err(ParseError::BadPayloadLength {
                payload: kind,
                offset,
                length,
                reason: "running past the end of the message",
            });
        }
        let body = r.sub(body_len, "payload body")?;
        if matches!(kind, PayloadType::Sk | PayloadType::Skf) {
            if !outer {
                return Err(ParseError::NestedEncrypted {
                    payload: kind,
                    offset,
                });
            }
            if !r.is_empty() {
                return Err(ParseError::PayloadAfterSk {
                    payload: kind,
                    offset: r.offset(),
                    extra: r.remaining(),
                });
            }
            let at = EncryptedAt {
                kind,
                offset,
                first_inner: np,
                body,
            };
            return Ok((out, Some(at)));
        }
        out.push(Payload::parse_body(next, flags & CRITICAL != 0, body)?);
        next = np;
    }
    if !r.is_empty() {
        return Err(ParseError::TrailingBytes {
            what: "last payload of the chain",
            offset: r.offset(),
            extra: r.remaining(),
        });
    }
    Ok((out, None))
}

/// Parses a decrypted inner payload chain (after the caller stripped padding and pad length).
/// `first` is the SK payload's Next Payload field. Offsets in errors are into `bytes`.
pub fn parse_chain(first: u8, bytes: &[u8]) -> Result<Vec<Payload>, ParseError> {
    let mut r = Reader::new(bytes, 0);
    walk(first, &mut r, false).map(|(payloads, _)| payloads)
}

/// Encodes payloads as a chain; returns (type of the first payload, or 0 if none; bytes).
/// Each generic header's Next Payload names the following payload and the last one's is 0.
/// The critical bit is set only on `Payload::Unknown { critical: true, .. }`: RFC 7296 lets a
/// sender set it on known types, but nothing is gained by it.
pub fn encode_chain(payloads: &[Payload]) -> (u8, Vec<u8>) {
    let mut w = Writer::default();
    let first = encode_chain_into(payloads, 0, &mut w);
    (first, w.buf)
}

/// Appends `payloads` to `w`, the last one's Next Payload being `after` (0, or the type of an
/// SK payload that follows). Returns the type of the first payload, or `after` if there is
/// none, which is what the preceding header must name.
pub(crate) fn encode_chain_into(payloads: &[Payload], after: u8, w: &mut Writer) -> u8 {
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads.get(i + 1).map_or(after, |n| n.kind().number());
        let start = w.len();
        w.u8(next);
        w.u8(if p.critical() { CRITICAL } else { 0 });
        let len_at = w.len16_placeholder();
        p.encode_body(w);
        w.patch_len16(len_at, start);
    }
    payloads.first().map_or(after, |p| p.kind().number())
}
