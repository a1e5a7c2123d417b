//! A sans-IO RADIUS client for EAP pass-through (RFC 3579 §2.1): the gateway relays each EAP
//! response of a remote-access client to a RADIUS server in an Access-Request, and each
//! Access-Challenge's EAP request back; the Access-Accept carries EAP-Success and the MSK in
//! the MS-MPPE keys (RFC 2548), the Access-Reject EAP-Failure.
//!
//! - Packets: `Code(1) Identifier(1) Length(2) Authenticator(16) Attributes` (RFC 2865 §3).
//! - Every Access-Request carries Message-Authenticator **first** (HMAC-MD5 over the packet,
//!   RFC 3579 §3.2), and every response must carry a valid one: the BlastRADIUS
//!   (CVE-2024-3596) mitigation. Responses are also checked against their Response
//!   Authenticator `MD5(Code|ID|Length|RequestAuth|Attributes|Secret)`, their Identifier and
//!   their Length; anything else is dropped and counted ([`Dropped`], [`Stats`]).
//! - EAP-Message is split into attributes of at most 253 bytes and joined on receipt; State is
//!   echoed exactly.
//! - MSK = MS-MPPE-Recv-Key ‖ MS-MPPE-Send-Key, zero-padded to 64 bytes, as strongSwan 5.9.8
//!   (`radius_socket.c`) builds it, so that it agrees with what an EAP-MSCHAPv2 client
//!   computes ([`crate::mschapv2::msk`]).
//!
//! [`Client`] keeps one conversation per key (the caller's IKE SA id): Identifier allocation,
//! State, retransmission of the same packet after `timeout` up to `tries` times. Randomness
//! (the Request Authenticators) and time are handed in by the caller. The shared secret and the
//! keys are zeroed on drop and never shown by `Debug`.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::mschapv2::Msk;

pub const ACCESS_REQUEST: u8 = 1;
pub const ACCESS_ACCEPT: u8 = 2;
pub const ACCESS_REJECT: u8 = 3;
pub const ACCESS_CHALLENGE: u8 = 11;

pub const USER_NAME: u8 = 1;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const SERVICE_TYPE: u8 = 6;
pub const STATE: u8 = 24;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const CALLED_STATION_ID: u8 = 30;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const NAS_PORT_TYPE: u8 = 61;
pub const EAP_MESSAGE: u8 = 79;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;

/// Service-Type Framed (RFC 2865 §5.6), NAS-Port-Type Virtual (§5.41).
const FRAMED: u32 = 2;
const VIRTUAL: u32 = 5;
/// Microsoft's vendor id and the MS-MPPE key types (RFC 2548 §2.4.2, §2.4.3).
const VENDOR_MICROSOFT: u32 = 311;
const MS_MPPE_SEND_KEY: u8 = 16;
const MS_MPPE_RECV_KEY: u8 = 17;

const HEADER: usize = 20;
/// RFC 2865 §3: 20 to 4096 octets.
pub const MAX_PACKET: usize = 4096;
/// The most an attribute's value holds.
const MAX_VALUE: usize = 253;
/// The MSK's length as strongSwan pads it.
const MSK_LEN: usize = 64;

/// The shared secret: zeroed on drop, never shown.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// None when empty (RFC 2865 §3: "The secret (password) shared ... MUST NOT be empty").
    pub fn new(bytes: Vec<u8>) -> Option<Secret> {
        (!bytes.is_empty()).then(|| Secret(Zeroizing::new(bytes)))
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What one Access-Request says besides the EAP message.
#[derive(Clone, Debug)]
pub struct RequestAttrs<'a> {
    /// The EAP identity (RFC 3579 §2.1: User-Name is copied from EAP-Response/Identity).
    pub user_name: &'a [u8],
    pub nas_identifier: &'a str,
    pub nas_ip: Option<Ipv4Addr>,
    /// The gateway's address (RFC 3580 style: "ip[:port]").
    pub called_station_id: &'a str,
    /// The client's address.
    pub calling_station_id: &'a str,
    /// Echoed exactly from the last Access-Challenge.
    pub state: Option<&'a [u8]>,
    pub eap: &'a [u8],
}

/// An Access-Request as sent: its Identifier and Request Authenticator check the response.
#[derive(Clone)]
pub struct Request {
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("identifier", &self.identifier)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Why an Access-Request cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// User-Name empty or over 253 bytes, or a station id over 253 bytes.
    BadAttribute(&'static str),
    /// Empty EAP message.
    NoEap,
    /// Over 4096 bytes.
    TooLong,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::BadAttribute(a) => write!(f, "{a} empty or longer than 253 bytes"),
            BuildError::NoEap => f.write_str("no EAP message"),
            BuildError::TooLong => f.write_str("Access-Request longer than 4096 bytes"),
        }
    }
}

fn push_attr(out: &mut Vec<u8>, typ: u8, value: &[u8]) {
    debug_assert!(value.len() <= MAX_VALUE);
    out.push(typ);
    out.push((value.len() + 2) as u8);
    out.extend_from_slice(value);
}

fn hmac_md5(secret: &Secret, parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(secret.bytes()).expect("HMAC takes any key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Builds an Access-Request with Message-Authenticator first (RFC 3579 §3.2), then User-Name,
/// NAS-Identifier, [NAS-IP-Address], Service-Type Framed, NAS-Port-Type Virtual,
/// Called-/Calling-Station-Id, [State] and the EAP message in as many EAP-Message attributes
/// as it takes. `authenticator` must be 16 unpredictable bytes (RFC 2865 §3).
pub fn access_request(
    secret: &Secret,
    identifier: u8,
    authenticator: [u8; 16],
    a: &RequestAttrs<'_>,
) -> Result<Request, BuildError> {
    if a.user_name.is_empty() || a.user_name.len() > MAX_VALUE {
        return Err(BuildError::BadAttribute("User-Name"));
    }
    for (name, v) in [
        ("NAS-Identifier", a.nas_identifier),
        ("Called-Station-Id", a.called_station_id),
        ("Calling-Station-Id", a.calling_station_id),
    ] {
        if v.is_empty() || v.len() > MAX_VALUE {
            return Err(BuildError::BadAttribute(name));
        }
    }
    if a.state.is_some_and(|s| s.is_empty() || s.len() > MAX_VALUE) {
        return Err(BuildError::BadAttribute("State"));
    }
    if a.eap.is_empty() {
        return Err(BuildError::NoEap);
    }
    let mut p = Vec::with_capacity(128 + a.eap.len());
    p.extend_from_slice(&[ACCESS_REQUEST, identifier, 0, 0]);
    p.extend_from_slice(&authenticator);
    let ma_at = p.len() + 2;
    push_attr(&mut p, MESSAGE_AUTHENTICATOR, &[0; 16]);
    push_attr(&mut p, USER_NAME, a.user_name);
    push_attr(&mut p, NAS_IDENTIFIER, a.nas_identifier.as_bytes());
    if let Some(ip) = a.nas_ip {
        push_attr(&mut p, NAS_IP_ADDRESS, &ip.octets());
    }
    push_attr(&mut p, SERVICE_TYPE, &FRAMED.to_be_bytes());
    push_attr(&mut p, NAS_PORT_TYPE, &VIRTUAL.to_be_bytes());
    push_attr(&mut p, CALLED_STATION_ID, a.called_station_id.as_bytes());
    push_attr(&mut p, CALLING_STATION_ID, a.calling_station_id.as_bytes());
    if let Some(s) = a.state {
        push_attr(&mut p, STATE, s);
    }
    for chunk in a.eap.chunks(MAX_VALUE) {
        push_attr(&mut p, EAP_MESSAGE, chunk);
    }
    if p.len() > MAX_PACKET {
        return Err(BuildError::TooLong);
    }
    let len = (p.len() as u16).to_be_bytes();
    p[2..4].copy_from_slice(&len);
    let ma = hmac_md5(secret, &[&p]);
    p[ma_at..ma_at + 16].copy_from_slice(&ma);
    Ok(Request {
        identifier,
        authenticator,
        bytes: p,
    })
}

/// What the server answered.
pub enum Answer {
    /// Access-Challenge: this EAP request goes to the client; `state` is echoed next time.
    Challenge {
        eap: Vec<u8>,
        state: Option<Vec<u8>>,
    },
    /// Access-Accept: EAP-Success for the client; the MSK when both MS-MPPE keys came.
    Accept { eap: Vec<u8>, msk: Option<Msk> },
    /// Access-Reject: EAP-Failure for the client, if the server sent one.
    Reject { eap: Option<Vec<u8>> },
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Challenge { eap, state } => write!(
                f,
                "Challenge({} EAP bytes, state: {})",
                eap.len(),
                state.is_some()
            ),
            Answer::Accept { eap, msk } => {
                write!(f, "Accept({} EAP bytes, msk: {})", eap.len(), msk.is_some())
            }
            Answer::Reject { eap } => write!(f, "Reject(eap: {})", eap.is_some()),
        }
    }
}

/// Why a datagram from the server was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Shorter than its header or its Length, or Length out of range, or attributes that do
    /// not add up.
    Malformed,
    /// Not Access-Accept, -Reject or -Challenge.
    UnexpectedCode,
    /// No request of ours in flight with this Identifier.
    UnknownIdentifier,
    /// Response Authenticator does not verify (wrong secret, or forged).
    BadResponseAuthenticator,
    /// No Message-Authenticator, or more than one.
    NoMessageAuthenticator,
    BadMessageAuthenticator,
    /// Challenge or Accept without an EAP message, or one that is not an EAP packet; several
    /// State attributes; an MS-MPPE key that does not decrypt.
    BadAttributes,
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dropped::Malformed => "malformed RADIUS packet",
            Dropped::UnexpectedCode => "unexpected RADIUS code",
            Dropped::UnknownIdentifier => "Identifier of no request in flight",
            Dropped::BadResponseAuthenticator => "Response Authenticator does not verify",
            Dropped::NoMessageAuthenticator => "Message-Authenticator attribute missing",
            Dropped::BadMessageAuthenticator => "Message-Authenticator does not verify",
            Dropped::BadAttributes => "bad EAP-Message, State or MS-MPPE attributes",
        })
    }
}

/// The attributes of a packet (after the header), as (type, value); None when they overrun.
pub fn attributes(mut rest: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let [typ, len, ..] = *rest else {
            return None;
        };
        let len = len as usize;
        if len < 2 || len > rest.len() {
            return None;
        }
        out.push((typ, &rest[2..len]));
        rest = &rest[len..];
    }
    Some(out)
}

/// The RFC 2865 §3 Response Authenticator check: `MD5(Code|ID|Length|RequestAuth|Attributes|
/// Secret)` against the packet's authenticator field. `packet` is cut to its Length.
pub fn response_authenticator_ok(secret: &Secret, request_auth: &[u8; 16], packet: &[u8]) -> bool {
    if packet.len() < HEADER {
        return false;
    }
    let d = md5(&[
        &packet[..4],
        request_auth,
        &packet[HEADER..],
        secret.bytes(),
    ]);
    bool::from(d.ct_eq(&packet[4..HEADER]))
}

/// Checks and reads a response to `request` (RFC 2865 §3, RFC 3579 §3.2). Bytes past the
/// Length field are ignored (RFC 2865 §3); everything else that is off is [`Dropped`].
pub fn parse_response(
    secret: &Secret,
    request: &Request,
    datagram: &[u8],
) -> Result<Answer, Dropped> {
    if datagram.len() < HEADER {
        return Err(Dropped::Malformed);
    }
    let len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    if !(HEADER..=MAX_PACKET).contains(&len) || len > datagram.len() {
        return Err(Dropped::Malformed);
    }
    let packet = &datagram[..len];
    let code = packet[0];
    if ![ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE].contains(&code) {
        return Err(Dropped::UnexpectedCode);
    }
    if packet[1] != request.identifier {
        return Err(Dropped::UnknownIdentifier);
    }
    let attrs = attributes(&packet[HEADER..]).ok_or(Dropped::Malformed)?;
    if !response_authenticator_ok(secret, &request.authenticator, packet) {
        return Err(Dropped::BadResponseAuthenticator);
    }
    // Message-Authenticator: exactly one, 16 bytes, HMAC-MD5 over the packet with the request's
    // authenticator in the header and its own value zeroed.
    let mut ma_at = None;
    let mut offset = HEADER;
    for (typ, value) in &attrs {
        if *typ == MESSAGE_AUTHENTICATOR {
            if ma_at.is_some() || value.len() != 16 {
                return Err(Dropped::NoMessageAuthenticator);
            }
            ma_at = Some(offset + 2);
        }
        offset += value.len() + 2;
    }
    let ma_at = ma_at.ok_or(Dropped::NoMessageAuthenticator)?;
    let mut copy = packet.to_vec();
    copy[4..HEADER].copy_from_slice(&request.authenticator);
    copy[ma_at..ma_at + 16].fill(0);
    let ma = hmac_md5(secret, &[&copy]);
    if !bool::from(ma.ct_eq(&packet[ma_at..ma_at + 16])) {
        return Err(Dropped::BadMessageAuthenticator);
    }
    // Authentic from here on; the contents must still make sense.
    let eap: Vec<u8> = attrs
        .iter()
        .filter(|(t, _)| *t == EAP_MESSAGE)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let eap = if eap.is_empty() {
        None
    } else if eap.len() >= 4 && u16::from_be_bytes([eap[2], eap[3]]) as usize == eap.len() {
        Some(eap)
    } else {
        return Err(Dropped::BadAttributes);
    };
    match code {
        ACCESS_CHALLENGE => {
            let mut states = attrs.iter().filter(|(t, _)| *t == STATE);
            let state = states.next().map(|(_, v)| v.to_vec());
            if states.next().is_some() {
                return Err(Dropped::BadAttributes);
            }
            let eap = eap.ok_or(Dropped::BadAttributes)?;
            Ok(Answer::Challenge { eap, state })
        }
        ACCESS_ACCEPT => {
            let eap = eap.ok_or(Dropped::BadAttributes)?;
            let msk = mppe_msk(secret, &request.authenticator, &attrs)?;
            Ok(Answer::Accept { eap, msk })
        }
        _ => Ok(Answer::Reject { eap }),
    }
}

/// MSK = Recv-Key ‖ Send-Key zero-padded to 64 bytes, when both keys came (one each).
fn mppe_msk(
    secret: &Secret,
    request_auth: &[u8; 16],
    attrs: &[(u8, &[u8])],
) -> Result<Option<Msk>, Dropped> {
    let (mut send, mut recv) = (None, None);
    for (_, v) in attrs.iter().filter(|(t, _)| *t == VENDOR_SPECIFIC) {
        if v.len() < 4 || u32::from_be_bytes([v[0], v[1], v[2], v[3]]) != VENDOR_MICROSOFT {
            continue;
        }
        let subs = attributes(&v[4..]).ok_or(Dropped::BadAttributes)?;
        for (typ, value) in subs {
            let slot = match typ {
                MS_MPPE_SEND_KEY => &mut send,
                MS_MPPE_RECV_KEY => &mut recv,
                _ => continue,
            };
            if slot.is_some() {
                return Err(Dropped::BadAttributes);
            }
            *slot =
                Some(decrypt_mppe_key(secret, request_auth, value).ok_or(Dropped::BadAttributes)?);
        }
    }
    let (Some(recv), Some(send)) = (recv, send) else {
        return Ok(None);
    };
    let mut msk = Vec::with_capacity(MSK_LEN.max(recv.len() + send.len()));
    msk.extend_from_slice(&recv);
    msk.extend_from_slice(&send);
    if msk.len() < MSK_LEN {
        msk.resize(MSK_LEN, 0);
    }
    Ok(Some(Msk::new(msk)))
}

/// RFC 2548 §2.4.2: `Salt(2, high bit set) | C`, `b(1) = MD5(S | R | Salt)`, `p(i) = c(i) ⊕
/// b(i)`, `b(i) = MD5(S | c(i-1))`; the plaintext is `Key-Length | Key | padding`. None when
/// it does not decrypt to a sensible key.
pub fn decrypt_mppe_key(
    secret: &Secret,
    request_auth: &[u8; 16],
    value: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if value.len() < 2 + 16 || (value.len() - 2) & 0xf != 0 || value[0] & 0x80 == 0 {
        return None;
    }
    let (salt, cipher) = value.split_at(2);
    let mut plain = Zeroizing::new(Vec::with_capacity(cipher.len()));
    let mut b = Zeroizing::new(md5(&[secret.bytes(), request_auth, salt]));
    for c in cipher.chunks(16) {
        plain.extend(c.iter().zip(b.iter()).map(|(x, y)| x ^ y));
        *b = md5(&[secret.bytes(), c]);
    }
    let key_len = plain[0] as usize;
    if key_len == 0 || key_len > plain.len() - 1 {
        return None;
    }
    Some(Zeroizing::new(plain[1..1 + key_len].to_vec()))
}

/// The MS-MPPE encryption (RFC 2548 §2.4.2), for tests and tools that play the server.
pub fn encrypt_mppe_key(
    secret: &Secret,
    request_auth: &[u8; 16],
    salt: [u8; 2],
    key: &[u8],
) -> Vec<u8> {
    let mut plain = vec![key.len() as u8];
    plain.extend_from_slice(key);
    plain.resize(plain.len().div_ceil(16) * 16, 0);
    let mut out = salt.to_vec();
    let mut b = md5(&[secret.bytes(), request_auth, &salt]);
    for p in plain.chunks(16) {
        let c: Vec<u8> = p.iter().zip(b.iter()).map(|(x, y)| x ^ y).collect();
        b = md5(&[secret.bytes(), &c]);
        out.extend_from_slice(&c);
    }
    out
}

/// A response as a server builds it (tests and tools): Message-Authenticator first, then
/// `attrs`, both authenticators computed with `request_auth`.
pub fn build_response(
    secret: &Secret,
    code: u8,
    identifier: u8,
    request_auth: &[u8; 16],
    attrs: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    let mut p = vec![code, identifier, 0, 0];
    p.extend_from_slice(request_auth);
    push_attr(&mut p, MESSAGE_AUTHENTICATOR, &[0; 16]);
    for (t, v) in attrs {
        push_attr(&mut p, *t, v);
    }
    let len = (p.len() as u16).to_be_bytes();
    p[2..4].copy_from_slice(&len);
    let ma = hmac_md5(secret, &[&p]);
    p[HEADER + 2..HEADER + 18].copy_from_slice(&ma);
    let auth = md5(&[&p, secret.bytes()]);
    p[4..HEADER].copy_from_slice(&auth);
    p
}

/// EAP-Message attributes of `eap` (≤ 253 bytes each), for [`build_response`].
pub fn eap_attrs(eap: &[u8]) -> Vec<(u8, Vec<u8>)> {
    eap.chunks(MAX_VALUE)
        .map(|c| (EAP_MESSAGE, c.to_vec()))
        .collect()
}

/// The Microsoft Vendor-Specific attribute with one MS-MPPE key (`typ` 16 send, 17 receive).
pub fn mppe_attr(
    secret: &Secret,
    request_auth: &[u8; 16],
    typ: u8,
    salt: [u8; 2],
    key: &[u8],
) -> (u8, Vec<u8>) {
    let enc = encrypt_mppe_key(secret, request_auth, salt, key);
    let mut v = VENDOR_MICROSOFT.to_be_bytes().to_vec();
    v.push(typ);
    v.push((enc.len() + 2) as u8);
    v.extend_from_slice(&enc);
    (VENDOR_SPECIFIC, v)
}

/// MS-MPPE-Send-Key / MS-MPPE-Recv-Key vendor types, for [`mppe_attr`].
pub const MPPE_SEND: u8 = MS_MPPE_SEND_KEY;
pub const MPPE_RECV: u8 = MS_MPPE_RECV_KEY;

/// A RADIUS client's settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub nas_identifier: String,
    pub nas_ip: Option<Ipv4Addr>,
    /// Wait this long for an answer before sending the same packet again.
    pub timeout: Duration,
    /// Send a request at most this many times in all.
    pub tries: u32,
}

/// What the client counted. No secret, no user name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub retransmits: u64,
    /// Requests that went unanswered through every try.
    pub timeouts: u64,
    pub challenges: u64,
    pub accepts: u64,
    pub rejects: u64,
    /// Datagrams dropped ([`Dropped`]), all reasons together.
    pub dropped: u64,
    pub dropped_authenticator: u64,
    pub dropped_message_authenticator: u64,
    pub dropped_unknown_id: u64,
}

/// Why [`Client::send`] sent nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No conversation under this key ([`Client::start`] first).
    NoConversation,
    /// 256 requests in flight: every Identifier is taken.
    Busy,
    Build(BuildError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NoConversation => f.write_str("no RADIUS conversation for this client"),
            SendError::Busy => f.write_str("256 RADIUS requests in flight"),
            SendError::Build(e) => write!(f, "{e}"),
        }
    }
}

struct Conversation {
    user: Vec<u8>,
    called: String,
    calling: String,
    state: Option<Vec<u8>>,
    flight: Option<u8>,
}

struct Flight {
    key: u64,
    request: Request,
    deadline: Instant,
    sent: u32,
}

/// What a timer run produced.
#[derive(Debug, Default)]
pub struct Timeouts {
    /// Send these again (same Identifier and authenticator).
    pub resend: Vec<Vec<u8>>,
    /// These conversations' requests went unanswered through every try: the server is
    /// unreachable for them (the conversation is gone).
    pub gave_up: Vec<u64>,
}

/// One RADIUS server's client side: conversations keyed by the caller's id (an IKE SA), one
/// request in flight each, Identifiers shared among them (8 bits: 256 in flight at most).
pub struct Client {
    secret: Secret,
    cfg: ClientConfig,
    next_id: u8,
    flights: HashMap<u8, Flight>,
    conversations: HashMap<u64, Conversation>,
    stats: Stats,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("radius::Client")
            .field("cfg", &self.cfg)
            .field("in_flight", &self.flights.len())
            .finish()
    }
}

impl Client {
    pub fn new(cfg: ClientConfig, secret: Secret) -> Client {
        Client {
            secret,
            cfg,
            next_id: 0,
            flights: HashMap::new(),
            conversations: HashMap::new(),
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// How many requests are in flight.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// A new conversation for `key`: the client `user` (its EAP identity), between the
    /// gateway (`called`) and the client (`calling`) addresses. Replaces an older one.
    pub fn start(&mut self, key: u64, user: &[u8], called: String, calling: String) {
        self.forget(key);
        self.conversations.insert(
            key,
            Conversation {
                user: user.to_vec(),
                called,
                calling,
                state: None,
                flight: None,
            },
        );
    }

    /// Ends `key`'s conversation (its client went away); a late answer is then dropped.
    pub fn forget(&mut self, key: u64) {
        if let Some(c) = self.conversations.remove(&key) {
            if let Some(id) = c.flight {
                self.flights.remove(&id);
            }
        }
    }

    /// The Access-Request that carries the client's `eap` response, to send now.
    /// `authenticator`: 16 fresh random bytes.
    pub fn send(
        &mut self,
        now: Instant,
        key: u64,
        eap: &[u8],
        authenticator: [u8; 16],
    ) -> Result<Vec<u8>, SendError> {
        let c = self
            .conversations
            .get_mut(&key)
            .ok_or(SendError::NoConversation)?;
        if let Some(old) = c.flight.take() {
            self.flights.remove(&old);
        }
        let identifier = (0..=255u8)
            .map(|i| self.next_id.wrapping_add(i))
            .find(|i| !self.flights.contains_key(i))
            .ok_or(SendError::Busy)?;
        let request = access_request(
            &self.secret,
            identifier,
            authenticator,
            &RequestAttrs {
                user_name: &c.user,
                nas_identifier: &self.cfg.nas_identifier,
                nas_ip: self.cfg.nas_ip,
                called_station_id: &c.called,
                calling_station_id: &c.calling,
                state: c.state.as_deref(),
                eap,
            },
        )
        .map_err(SendError::Build)?;
        self.next_id = identifier.wrapping_add(1);
        c.flight = Some(identifier);
        let bytes = request.bytes.clone();
        self.flights.insert(
            identifier,
            Flight {
                key,
                request,
                deadline: now + self.cfg.timeout,
                sent: 1,
            },
        );
        self.stats.requests += 1;
        Ok(bytes)
    }

    /// A datagram from the server: the conversation it answers and the answer, or None when
    /// it is dropped (counted in [`Client::stats`]). An Accept or a Reject ends the
    /// conversation; a Challenge keeps its State for the next request.
    pub fn receive(&mut self, datagram: &[u8]) -> Result<(u64, Answer), Dropped> {
        let r = self.receive_inner(datagram);
        if let Err(d) = r {
            self.stats.dropped += 1;
            match d {
                Dropped::BadResponseAuthenticator => self.stats.dropped_authenticator += 1,
                Dropped::NoMessageAuthenticator | Dropped::BadMessageAuthenticator => {
                    self.stats.dropped_message_authenticator += 1
                }
                Dropped::UnknownIdentifier => self.stats.dropped_unknown_id += 1,
                _ => {}
            }
        }
        r
    }

    fn receive_inner(&mut self, datagram: &[u8]) -> Result<(u64, Answer), Dropped> {
        let id = *datagram.get(1).ok_or(Dropped::Malformed)?;
        let flight = self.flights.get(&id).ok_or(Dropped::UnknownIdentifier)?;
        let answer = parse_response(&self.secret, &flight.request, datagram)?;
        let key = flight.key;
        self.flights.remove(&id);
        match &answer {
            Answer::Challenge { state, .. } => {
                self.stats.challenges += 1;
                if let Some(c) = self.conversations.get_mut(&key) {
                    c.flight = None;
                    c.state = state.clone();
                }
            }
            Answer::Accept { .. } => {
                self.stats.accepts += 1;
                self.conversations.remove(&key);
            }
            Answer::Reject { .. } => {
                self.stats.rejects += 1;
                self.conversations.remove(&key);
            }
        }
        Ok((key, answer))
    }

    /// When [`Client::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.flights.values().map(|f| f.deadline).min()
    }

    /// Resends what timed out, and gives up on what was sent `tries` times.
    pub fn handle_timeout(&mut self, now: Instant) -> Timeouts {
        let mut out = Timeouts::default();
        let due: Vec<u8> = self
            .flights
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(f) = self.flights.get_mut(&id) else {
                continue;
            };
            if f.sent >= self.cfg.tries.max(1) {
                let key = f.key;
                self.flights.remove(&id);
                self.conversations.remove(&key);
                self.stats.timeouts += 1;
                out.gave_up.push(key);
            } else {
                f.sent += 1;
                f.deadline = now + self.cfg.timeout;
                self.stats.retransmits += 1;
                out.resend.push(f.request.bytes.clone());
            }
        }
        out.gave_up.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new(b"s3cr3t-shared".to_vec()).unwrap()
    }

    fn attrs<'a>(eap: &'a [u8], state: Option<&'a [u8]>) -> RequestAttrs<'a> {
        RequestAttrs {
            user_name: b"alice",
            nas_identifier: "ironsec",
            nas_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
            called_station_id: "192.0.2.1[4500]",
            calling_station_id: "198.51.100.7[4500]",
            state,
            eap,
        }
    }

    fn eap_packet(code: u8, id: u8, len: usize) -> Vec<u8> {
        let mut e = vec![code, id, 0, 0];
        e.resize(len, 0x5a);
        let l = (len as u16).to_be_bytes();
        e[2..4].copy_from_slice(&l);
        e
    }

    #[test]
    fn request_has_message_authenticator_first_and_split_eap() {
        let s = secret();
        let eap = eap_packet(2, 7, 600);
        let r = access_request(&s, 9, [0x11; 16], &attrs(&eap, Some(b"st"))).unwrap();
        assert_eq!(r.bytes[0], ACCESS_REQUEST);
        assert_eq!(r.bytes[1], 9);
        assert_eq!(
            u16::from_be_bytes([r.bytes[2], r.bytes[3]]) as usize,
            r.bytes.len()
        );
        let a = attributes(&r.bytes[20..]).unwrap();
        assert_eq!(a[0].0, MESSAGE_AUTHENTICATOR);
        let eaps: Vec<usize> = a
            .iter()
            .filter(|(t, _)| *t == EAP_MESSAGE)
            .map(|(_, v)| v.len())
            .collect();
        assert_eq!(eaps, vec![253, 253, 94]);
        let joined: Vec<u8> = a
            .iter()
            .filter(|(t, _)| *t == EAP_MESSAGE)
            .flat_map(|(_, v)| v.to_vec())
            .collect();
        assert_eq!(joined, eap);
        assert!(a.contains(&(STATE, &b"st"[..])));
        assert!(a.contains(&(NAS_PORT_TYPE, &[0, 0, 0, 5][..])));
        assert!(a.contains(&(SERVICE_TYPE, &[0, 0, 0, 2][..])));
        assert!(a.contains(&(USER_NAME, &b"alice"[..])));
        assert!(a.contains(&(NAS_IP_ADDRESS, &[192, 0, 2, 1][..])));
        // The HMAC over the packet with the attribute zeroed is what it carries.
        let mut z = r.bytes.clone();
        z[22..38].fill(0);
        assert_eq!(hmac_md5(&s, &[&z]), a[0].1);
    }

    #[test]
    fn request_refuses_bad_attributes() {
        let s = secret();
        let eap = eap_packet(2, 1, 10);
        let mut a = attrs(&eap, None);
        a.user_name = b"";
        assert_eq!(
            access_request(&s, 1, [0; 16], &a).unwrap_err(),
            BuildError::BadAttribute("User-Name")
        );
        let long = vec![b'x'; 254];
        a.user_name = &long;
        assert!(access_request(&s, 1, [0; 16], &a).is_err());
        let big = eap_packet(2, 1, 4100);
        assert_eq!(
            access_request(&s, 1, [0; 16], &attrs(&big, None)).unwrap_err(),
            BuildError::TooLong
        );
        assert_eq!(
            access_request(&s, 1, [0; 16], &attrs(&[], None)).unwrap_err(),
            BuildError::NoEap
        );
    }
}
