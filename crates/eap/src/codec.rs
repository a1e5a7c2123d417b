//! EAP packets (RFC 3748 §4) and the EAP-MSCHAPv2 type-data (draft-kamath-pppext-eap-mschapv2,
//! RFC 2759), parsed strictly: every length field must agree with the bytes, reserved bytes
//! must be zero, and nothing here panics whatever the input ([`Packet::parse`] is
//! proptested and fuzzed).
//!
//! ```text
//! EAP packet     = Code | Identifier | Length(2) | [Type | Type-Data]     (Type: codes 1 and 2)
//! MSCHAPv2 data  = OpCode | MS-CHAPv2-ID | MS-Length(2) | ...              (MS-Length = from OpCode)
//! ```
//!
//! A valid packet encodes back to the same bytes ([`Packet::encode`]).

use std::fmt;

/// EAP codes (RFC 3748 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Request = 1,
    Response = 2,
    Success = 3,
    Failure = 4,
}

/// EAP method types used here (RFC 3748 §5, IANA "EAP Method Types").
pub const TYPE_IDENTITY: u8 = 1;
pub const TYPE_NAK: u8 = 3;
pub const TYPE_TLS: u8 = 13;
pub const TYPE_MSCHAPV2: u8 = 26;

/// MSCHAPv2 OpCodes.
pub const OP_CHALLENGE: u8 = 1;
pub const OP_RESPONSE: u8 = 2;
pub const OP_SUCCESS: u8 = 3;
pub const OP_FAILURE: u8 = 4;

/// Longest name kept from a peer (an Identity or an MSCHAPv2 Name), as strongSwan cuts it.
pub const MAX_NAME: usize = 255;

/// One EAP packet.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    pub code: Code,
    pub identifier: u8,
    pub body: Body,
}

/// What follows the EAP header.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// EAP-Success and EAP-Failure carry nothing.
    Empty,
    /// Type 1: a request's optional prompt, a response's identity (raw bytes: peer text).
    Identity(Vec<u8>),
    /// Type 3 (responses only): the method types the peer would rather use.
    Nak(Vec<u8>),
    /// Type 26.
    MsChapV2(MsChapV2),
    /// Any other type, kept opaque.
    Other { typ: u8, data: Vec<u8> },
}

/// EAP-MSCHAPv2 messages; which ones a code allows is checked by [`Packet::parse`].
#[derive(Clone, PartialEq, Eq)]
pub enum MsChapV2 {
    /// Server (Request): Value-Size 16.
    Challenge {
        ms_id: u8,
        challenge: [u8; 16],
        name: Vec<u8>,
    },
    /// Client (Response): Value-Size 49 = Peer-Challenge, 8 zero bytes, NT-Response, Flags.
    Response {
        ms_id: u8,
        peer_challenge: [u8; 16],
        nt_response: [u8; 24],
        flags: u8,
        name: Vec<u8>,
    },
    /// Server (Request): "S=<40 hex> M=<text>".
    Success { ms_id: u8, message: Vec<u8> },
    /// Client (Response): the OpCode alone.
    SuccessAck,
    /// Server (Request): "E=691 R=0 C=<32 hex> V=3 M=<text>".
    Failure { ms_id: u8, message: Vec<u8> },
    /// Client (Response): the OpCode alone.
    FailureAck,
}

/// Why bytes are not a valid EAP packet. Says nothing of their content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed EAP packet: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

// Debug never shows peer-chosen bytes raw (names, messages) nor response values: lengths and
// numbers only, so a `{:?}` in a log cannot leak an NT-Response or forge a line.
impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("code", &self.code)
            .field("identifier", &self.identifier)
            .field("body", &self.body)
            .finish()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Identity(d) => write!(f, "Identity(<{} bytes>)", d.len()),
            Body::Nak(t) => write!(f, "Nak({t:?})"),
            Body::MsChapV2(m) => write!(f, "MsChapV2({m:?})"),
            Body::Other { typ, data } => write!(f, "Other(type {typ}, <{} bytes>)", data.len()),
        }
    }
}

impl fmt::Debug for MsChapV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsChapV2::Challenge { ms_id, .. } => write!(f, "Challenge(ms_id {ms_id})"),
            MsChapV2::Response { ms_id, .. } => write!(f, "Response(ms_id {ms_id})"),
            MsChapV2::Success { ms_id, .. } => write!(f, "Success(ms_id {ms_id})"),
            MsChapV2::SuccessAck => f.write_str("SuccessAck"),
            MsChapV2::Failure { ms_id, .. } => write!(f, "Failure(ms_id {ms_id})"),
            MsChapV2::FailureAck => f.write_str("FailureAck"),
        }
    }
}

impl Packet {
    pub fn new(code: Code, identifier: u8, body: Body) -> Packet {
        Packet {
            code,
            identifier,
            body,
        }
    }

    /// The method type, for a request or response.
    pub fn typ(&self) -> Option<u8> {
        match &self.body {
            Body::Empty => None,
            Body::Identity(_) => Some(TYPE_IDENTITY),
            Body::Nak(_) => Some(TYPE_NAK),
            Body::MsChapV2(_) => Some(TYPE_MSCHAPV2),
            Body::Other { typ, .. } => Some(*typ),
        }
    }

    /// Parses one EAP packet that fills `bytes` exactly (as in an IKE EAP payload).
    pub fn parse(bytes: &[u8]) -> Result<Packet, ParseError> {
        let [code, identifier, l0, l1, rest @ ..] = bytes else {
            return Err(ParseError("shorter than the EAP header"));
        };
        if usize::from(u16::from_be_bytes([*l0, *l1])) != bytes.len() {
            return Err(ParseError("Length does not match the packet"));
        }
        let code = match code {
            1 => Code::Request,
            2 => Code::Response,
            3 => Code::Success,
            4 => Code::Failure,
            _ => return Err(ParseError("unknown Code")),
        };
        let body = match code {
            Code::Success | Code::Failure => {
                if !rest.is_empty() {
                    return Err(ParseError("Success or Failure with data"));
                }
                Body::Empty
            }
            Code::Request | Code::Response => {
                let [typ, data @ ..] = rest else {
                    return Err(ParseError("request or response without a Type"));
                };
                match *typ {
                    TYPE_IDENTITY => Body::Identity(data.to_vec()),
                    TYPE_NAK => {
                        if code != Code::Response || data.is_empty() {
                            return Err(ParseError("Nak not a response or without types"));
                        }
                        Body::Nak(data.to_vec())
                    }
                    TYPE_MSCHAPV2 => Body::MsChapV2(MsChapV2::parse(code, data)?),
                    // Types 0, 2 (Notification) and 254/255 (expanded, experimental) are not
                    // spoken here; an opaque method (EAP-TLS...) is kept for a Nak decision.
                    typ => Body::Other {
                        typ,
                        data: data.to_vec(),
                    },
                }
            }
        };
        Ok(Packet {
            code,
            identifier: *identifier,
            body,
        })
    }

    /// The packet's bytes. A body longer than an EAP packet can carry is cut to fit (only a
    /// caller building an oversized name could get there).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.code as u8, self.identifier, 0, 0];
        match &self.body {
            Body::Empty => {}
            Body::Identity(d) => {
                out.push(TYPE_IDENTITY);
                out.extend_from_slice(d);
            }
            Body::Nak(t) => {
                out.push(TYPE_NAK);
                out.extend_from_slice(t);
            }
            Body::MsChapV2(m) => {
                out.push(TYPE_MSCHAPV2);
                m.encode(&mut out);
            }
            Body::Other { typ, data } => {
                out.push(*typ);
                out.extend_from_slice(data);
            }
        }
        out.truncate(usize::from(u16::MAX));
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        if let Some(ms_len) = out.get_mut(7..9) {
            // MS-Length covers the type-data from the OpCode on (EAP Length - 5).
            if self.body_is_long_mschapv2() {
                ms_len.copy_from_slice(&(len - 5).to_be_bytes());
            }
        }
        out
    }

    fn body_is_long_mschapv2(&self) -> bool {
        matches!(
            &self.body,
            Body::MsChapV2(
                MsChapV2::Challenge { .. }
                    | MsChapV2::Response { .. }
                    | MsChapV2::Success { .. }
                    | MsChapV2::Failure { .. }
            )
        )
    }
}

impl MsChapV2 {
    fn parse(code: Code, data: &[u8]) -> Result<MsChapV2, ParseError> {
        let [opcode, rest @ ..] = data else {
            return Err(ParseError("MSCHAPv2 without an OpCode"));
        };
        // The client's acknowledgements are the OpCode alone.
        match (code, *opcode) {
            (Code::Response, OP_SUCCESS) | (Code::Response, OP_FAILURE) => {
                if !rest.is_empty() {
                    return Err(ParseError("MSCHAPv2 acknowledgement with data"));
                }
                return Ok(if *opcode == OP_SUCCESS {
                    MsChapV2::SuccessAck
                } else {
                    MsChapV2::FailureAck
                });
            }
            _ => {}
        }
        let [ms_id, l0, l1, value @ ..] = rest else {
            return Err(ParseError("MSCHAPv2 header cut short"));
        };
        if usize::from(u16::from_be_bytes([*l0, *l1])) != data.len() {
            return Err(ParseError("MS-Length does not match the packet"));
        }
        let ms_id = *ms_id;
        match (code, *opcode) {
            (Code::Request, OP_CHALLENGE) => {
                let [16, rest @ ..] = value else {
                    return Err(ParseError("Challenge Value-Size is not 16"));
                };
                let (challenge, name) =
                    split::<16>(rest).ok_or(ParseError("Challenge cut short"))?;
                Ok(MsChapV2::Challenge {
                    ms_id,
                    challenge,
                    name: name.to_vec(),
                })
            }
            (Code::Response, OP_RESPONSE) => {
                let [49, rest @ ..] = value else {
                    return Err(ParseError("Response Value-Size is not 49"));
                };
                let (peer_challenge, rest) =
                    split::<16>(rest).ok_or(ParseError("Response cut short"))?;
                let (reserved, rest) = split::<8>(rest).ok_or(ParseError("Response cut short"))?;
                let (nt_response, rest) =
                    split::<24>(rest).ok_or(ParseError("Response cut short"))?;
                let [flags, name @ ..] = rest else {
                    return Err(ParseError("Response cut short"));
                };
                if reserved != [0; 8] {
                    return Err(ParseError("Response reserved bytes not zero"));
                }
                Ok(MsChapV2::Response {
                    ms_id,
                    peer_challenge,
                    nt_response,
                    flags: *flags,
                    name: name.to_vec(),
                })
            }
            (Code::Request, OP_SUCCESS) => Ok(MsChapV2::Success {
                ms_id,
                message: value.to_vec(),
            }),
            (Code::Request, OP_FAILURE) => Ok(MsChapV2::Failure {
                ms_id,
                message: value.to_vec(),
            }),
            _ => Err(ParseError("MSCHAPv2 OpCode not valid for the EAP Code")),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        // MS-Length (bytes 2..4 of the type-data) is filled in by `Packet::encode`.
        match self {
            MsChapV2::Challenge {
                ms_id,
                challenge,
                name,
            } => {
                out.extend_from_slice(&[OP_CHALLENGE, *ms_id, 0, 0, 16]);
                out.extend_from_slice(challenge);
                out.extend_from_slice(name);
            }
            MsChapV2::Response {
                ms_id,
                peer_challenge,
                nt_response,
                flags,
                name,
            } => {
                out.extend_from_slice(&[OP_RESPONSE, *ms_id, 0, 0, 49]);
                out.extend_from_slice(peer_challenge);
                out.extend_from_slice(&[0; 8]);
                out.extend_from_slice(nt_response);
                out.push(*flags);
                out.extend_from_slice(name);
            }
            MsChapV2::Success { ms_id, message } => {
                out.extend_from_slice(&[OP_SUCCESS, *ms_id, 0, 0]);
                out.extend_from_slice(message);
            }
            MsChapV2::Failure { ms_id, message } => {
                out.extend_from_slice(&[OP_FAILURE, *ms_id, 0, 0]);
                out.extend_from_slice(message);
            }
            MsChapV2::SuccessAck => out.push(OP_SUCCESS),
            MsChapV2::FailureAck => out.push(OP_FAILURE),
        }
    }
}

/// The first `N` bytes as an array, and the rest.
fn split<const N: usize>(b: &[u8]) -> Option<([u8; N], &[u8])> {
    let head = b.get(..N)?;
    Some((head.try_into().ok()?, &b[N..]))
}
