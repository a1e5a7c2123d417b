//! EAP-MSCHAPv2 (EAP type 26; RFC 2759, draft-kamath-pppext-eap-mschapv2-02): the RFC 2759
//! §8 computations, the MSK as strongSwan 5.9.8 derives it (RFC 3079 §3.4 start keys), the
//! server side (the gateway, [`Server`]) and the client side ([`Client`], for tests and for
//! the engine as a remote-access client).
//!
//! The server asks for the EAP identity, challenges, checks the NT-Response in constant time
//! and answers Success (with the authenticator response) or Failure (`E=691 R=0`, no retry),
//! then EAP-Success or EAP-Failure. MD4, DES and SHA-1 come from RustCrypto.

use std::fmt;
use std::sync::Arc;

use des::cipher::{BlockEncrypt, KeyInit};
use des::Des;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::codec::{Body, Code, MsChapV2, Packet, ParseError, MAX_NAME, TYPE_MSCHAPV2};
use crate::users::{NtHash, Users};

const MAGIC_SIGN: &[u8] = b"Magic server to client signing constant";
const MAGIC_PAD: &[u8] = b"Pad to make it do more than one iteration";
const MAGIC_MASTER: &[u8] = b"This is the MPPE Master Key";
/// RFC 3079 §3.4 Magic2: the server's receive key.
const MAGIC_CLIENT_SEND: &[u8] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
/// RFC 3079 §3.4 Magic3: the server's send key.
const MAGIC_CLIENT_RECV: &[u8] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";
const SHS_PAD1: [u8; 40] = [0; 40];
const SHS_PAD2: [u8; 40] = [0xf2; 40];

/// What the gateway calls itself in the Challenge's Name field.
pub const SERVER_NAME: &[u8] = b"ironsec";

/// The Master Session Key of an EAP method (64 bytes for MSCHAPv2). Zeroed on drop; `Debug`
/// redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Msk(Zeroizing<Vec<u8>>);

impl Msk {
    pub fn new(bytes: Vec<u8>) -> Msk {
        Msk(Zeroizing::new(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Msk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msk(<{} bytes redacted>)", self.0.len())
    }
}

/// The user name without a `DOMAIN\` prefix (everything up to the first backslash), as
/// strongSwan's `extract_username` hashes it.
pub fn strip_domain(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b'\\') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `ChallengeHash` (RFC 2759 §8.2): SHA-1(PeerChallenge | AuthenticatorChallenge | UserName),
/// first 8 bytes; `user` is the name as sent, its domain is stripped here.
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 8] {
    let d = sha1(&[peer_challenge, auth_challenge, strip_domain(user)]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// A 7-byte DES key spread over 8 bytes, odd parity in each low bit (RFC 2759 §8.6).
fn des_key(k: &[u8; 7]) -> [u8; 8] {
    let bits = k.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        let seven = ((bits >> (49 - 7 * i)) & 0x7f) as u8;
        let b = seven << 1;
        *o = b | u8::from(b.count_ones() & 1 == 0);
    }
    out
}

fn des_encrypt(key7: &[u8; 7], block: &[u8; 8]) -> [u8; 8] {
    let key = Zeroizing::new(des_key(key7));
    let cipher = Des::new(&(*key).into());
    let mut b = (*block).into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// `ChallengeResponse` (RFC 2759 §8.5): the challenge hash DES-encrypted under the three
/// 7-byte thirds of the zero-padded NT hash.
pub fn nt_response_for(hash: &NtHash, challenge_hash: &[u8; 8]) -> [u8; 24] {
    let mut z = Zeroizing::new([0u8; 21]);
    z[..16].copy_from_slice(hash.bytes());
    let mut out = [0u8; 24];
    for i in 0..3 {
        let mut k = Zeroizing::new([0u8; 7]);
        k.copy_from_slice(&z[7 * i..7 * i + 7]);
        out[8 * i..8 * i + 8].copy_from_slice(&des_encrypt(&k, challenge_hash));
    }
    out
}

/// `GenerateNTResponse` (RFC 2759 §8.1).
pub fn nt_response(
    hash: &NtHash,
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 24] {
    nt_response_for(hash, &challenge_hash(peer_challenge, auth_challenge, user))
}

/// `HashNtPasswordHash`: MD4 of the NT hash.
fn hash_hash(hash: &NtHash) -> Zeroizing<[u8; 16]> {
    use md4::Md4;
    let mut h = Md4::new();
    md4::Digest::update(&mut h, hash.bytes());
    Zeroizing::new(md4::Digest::finalize(h).into())
}

/// `GenerateAuthenticatorResponse` (RFC 2759 §8.7): `S=` and 40 upper-case hex digits.
pub fn authenticator_response(
    hash: &NtHash,
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    user: &[u8],
) -> String {
    let hh = hash_hash(hash);
    let digest = sha1(&[&hh[..], nt_response, MAGIC_SIGN]);
    let ch = challenge_hash(peer_challenge, auth_challenge, user);
    let d = sha1(&[&digest, &ch, MAGIC_PAD]);
    let mut s = String::from("S=");
    for b in d {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// `GetMasterKey` (RFC 3079 §3.4).
pub fn master_key(hash: &NtHash, nt_response: &[u8; 24]) -> Zeroizing<[u8; 16]> {
    let hh = hash_hash(hash);
    let d = Zeroizing::new(sha1(&[&hh[..], nt_response, MAGIC_MASTER]));
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&d[..16]);
    out
}

/// `GetAsymmetricStartKey` (RFC 3079 §3.4), 128 bits: (server receive key = client send key,
/// server send key = client receive key).
pub fn start_keys(master: &[u8; 16]) -> (Zeroizing<[u8; 16]>, Zeroizing<[u8; 16]>) {
    let key = |magic: &[u8]| {
        let d = Zeroizing::new(sha1(&[master, &SHS_PAD1, magic, &SHS_PAD2]));
        let mut k = Zeroizing::new([0u8; 16]);
        k.copy_from_slice(&d[..16]);
        k
    };
    (key(MAGIC_CLIENT_SEND), key(MAGIC_CLIENT_RECV))
}

/// The MSK exactly as strongSwan 5.9.8 (`GenerateMSK`) computes it on both ends: the server's
/// receive start key, its send start key, 32 zero bytes.
pub fn msk(hash: &NtHash, nt_response: &[u8; 24]) -> Msk {
    let master = master_key(hash, nt_response);
    let (recv, send) = start_keys(&master);
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&recv[..]);
    v.extend_from_slice(&send[..]);
    v.extend_from_slice(&[0; 32]);
    Msk::new(v)
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Why the server failed a client. Carries no secret and no peer bytes: the caller has the
/// client's name from [`Server::peer_name`] (to escape before logging).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The client answered our method with a Nak naming the types it wants (0: none).
    Nak { wanted: Vec<u8> },
    /// No such user in the users file.
    UnknownUser,
    /// The NT-Response did not verify.
    WrongPassword,
    /// A packet that does not parse.
    Malformed(ParseError),
    /// A valid packet out of turn (wrong identifier, type or OpCode for the state).
    Unexpected(&'static str),
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Nak { wanted } => {
                f.write_str("the client refused EAP-MSCHAPv2 (Nak)")?;
                let names: Vec<String> = wanted.iter().map(|t| method_name(*t)).collect();
                if names.is_empty() || wanted == &[0] {
                    f.write_str(" and offered no other method")
                } else {
                    write!(f, "; it wants {}", names.join(", "))
                }
            }
            FailReason::UnknownUser => f.write_str("unknown user"),
            FailReason::WrongPassword => f.write_str("wrong password"),
            FailReason::Malformed(e) => write!(f, "{e}"),
            FailReason::Unexpected(what) => write!(f, "unexpected EAP message: {what}"),
        }
    }
}

/// An EAP method type as an operator knows it.
pub fn method_name(t: u8) -> String {
    match t {
        1 => "Identity".into(),
        4 => "EAP-MD5".into(),
        13 => "EAP-TLS".into(),
        21 => "EAP-TTLS".into(),
        25 => "PEAP".into(),
        26 => "EAP-MSCHAPv2".into(),
        t => format!("EAP type {t}"),
    }
}

/// What the server says next.
#[derive(Debug)]
pub enum ServerStep {
    /// Send this EAP request and wait for the response.
    Continue(Vec<u8>),
    /// Send this EAP-Success: the client is `user` (the users file's name for it).
    Success {
        packet: Vec<u8>,
        msk: Msk,
        user: String,
    },
    /// Send this EAP-Failure: the dialogue is over.
    Failure { packet: Vec<u8>, reason: FailReason },
}

enum ServerState {
    Start,
    Identity,
    Challenge,
    SuccessSent { msk: Msk, user: String },
    FailureSent(FailReason),
    Done,
}

/// The gateway's side of one EAP-MSCHAPv2 dialogue.
pub struct Server {
    users: Arc<Users>,
    challenge: [u8; 16],
    /// Identifier of the request in flight.
    id: u8,
    ms_id: u8,
    state: ServerState,
    identity: Option<Vec<u8>>,
    name: Option<Vec<u8>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mschapv2::Server")
    }
}

impl Server {
    /// A dialogue whose Challenge is `challenge` (16 random bytes from the caller's RNG) and
    /// whose first request carries Identifier `first_id`.
    pub fn new(users: Arc<Users>, challenge: [u8; 16], first_id: u8) -> Server {
        Server {
            users,
            challenge,
            id: first_id,
            ms_id: first_id.wrapping_add(1),
            state: ServerState::Start,
            identity: None,
            name: None,
        }
    }

    /// The first request: EAP-Request/Identity.
    pub fn start(&mut self) -> Vec<u8> {
        self.state = ServerState::Identity;
        Packet::new(Code::Request, self.id, Body::Identity(Vec::new())).encode()
    }

    /// The EAP identity the client gave (raw peer bytes: escape before showing).
    pub fn identity(&self) -> Option<&[u8]> {
        self.identity.as_deref()
    }

    /// The client's answer did not verify (or it refused the method): the Failure request is
    /// on its way, and the dialogue ends in EAP-Failure whatever comes next. Known here, one
    /// round before [`ServerStep::Failure`], which a client may never let happen: strongSwan
    /// answers a Failure request by giving up on the IKE SA (AUTHENTICATION_FAILED).
    pub fn refused(&self) -> Option<&FailReason> {
        match &self.state {
            ServerState::FailureSent(r) => Some(r),
            _ => None,
        }
    }

    /// The name the client authenticated under (its MSCHAPv2 Name), else its EAP identity:
    /// raw peer bytes, for a log line once escaped.
    pub fn peer_name(&self) -> Option<&[u8]> {
        self.name.as_deref().or(self.identity.as_deref())
    }

    fn request(&mut self, m: MsChapV2) -> Vec<u8> {
        self.id = self.id.wrapping_add(1);
        Packet::new(Code::Request, self.id, Body::MsChapV2(m)).encode()
    }

    fn fail(&mut self, reason: FailReason) -> ServerStep {
        self.state = ServerState::Done;
        ServerStep::Failure {
            packet: Packet::new(Code::Failure, self.id, Body::Empty).encode(),
            reason,
        }
    }

    /// The client's next EAP response.
    pub fn step(&mut self, response: &[u8]) -> ServerStep {
        let p = match Packet::parse(response) {
            Ok(p) => p,
            Err(e) => return self.fail(FailReason::Malformed(e)),
        };
        if p.code != Code::Response {
            return self.fail(FailReason::Unexpected("not an EAP Response"));
        }
        if p.identifier != self.id {
            return self.fail(FailReason::Unexpected("Identifier of another request"));
        }
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Identity => match p.body {
                Body::Identity(name) if name.len() <= MAX_NAME => {
                    self.identity = Some(name);
                    self.ms_id = self.id.wrapping_add(1);
                    self.state = ServerState::Challenge;
                    let m = MsChapV2::Challenge {
                        ms_id: self.ms_id,
                        challenge: self.challenge,
                        name: SERVER_NAME.to_vec(),
                    };
                    ServerStep::Continue(self.request(m))
                }
                Body::Identity(_) => self.fail(FailReason::Unexpected("identity too long")),
                _ => self.fail(FailReason::Unexpected("expected an Identity response")),
            },
            ServerState::Challenge => match p.body {
                Body::Nak(wanted) => self.fail(FailReason::Nak { wanted }),
                Body::MsChapV2(MsChapV2::Response {
                    ms_id,
                    peer_challenge,
                    nt_response: got,
                    name,
                    ..
                }) if ms_id == self.ms_id => {
                    if name.len() > MAX_NAME {
                        return self.fail(FailReason::Unexpected("name too long"));
                    }
                    self.name = Some(name.clone());
                    self.check_response(&name, &peer_challenge, &got)
                }
                Body::MsChapV2(MsChapV2::Response { .. }) => {
                    self.fail(FailReason::Unexpected("MS-CHAPv2-ID of another challenge"))
                }
                _ => self.fail(FailReason::Unexpected("expected an MSCHAPv2 Response")),
            },
            ServerState::SuccessSent { msk, user } => match p.body {
                Body::MsChapV2(MsChapV2::SuccessAck) => ServerStep::Success {
                    packet: Packet::new(Code::Success, self.id, Body::Empty).encode(),
                    msk,
                    user,
                },
                _ => self.fail(FailReason::Unexpected(
                    "expected the Success acknowledgement",
                )),
            },
            // Whatever the client says to our Failure, it has failed.
            ServerState::FailureSent(reason) => self.fail(reason),
            ServerState::Start | ServerState::Done => {
                self.fail(FailReason::Unexpected("no EAP request in flight"))
            }
        }
    }

    fn check_response(
        &mut self,
        name: &[u8],
        peer_challenge: &[u8; 16],
        got: &[u8; 24],
    ) -> ServerStep {
        let users = self.users.clone();
        let found = users.lookup(name);
        // An unknown user costs the same work as a known one and gets the same answer.
        let dummy = NtHash::from_bytes([0; 16]);
        let hash = found.map_or(&dummy, |(_, h)| h);
        let want = nt_response(hash, &self.challenge, peer_challenge, name);
        let ok: bool = want.ct_eq(got).into();
        match found {
            Some((user, hash)) if ok => {
                let s = authenticator_response(hash, got, peer_challenge, &self.challenge, name);
                let msk = msk(hash, got);
                self.state = ServerState::SuccessSent {
                    msk,
                    user: user.to_string(),
                };
                let message = format!("{s} M=Welcome").into_bytes();
                let m = MsChapV2::Success {
                    ms_id: self.ms_id,
                    message,
                };
                ServerStep::Continue(self.request(m))
            }
            _ => {
                let reason = if found.is_some() {
                    FailReason::WrongPassword
                } else {
                    FailReason::UnknownUser
                };
                self.state = ServerState::FailureSent(reason);
                // R=0: no retry (a retry would give a password guesser a second try).
                let message = format!(
                    "E=691 R=0 C={} V=3 M=Authentication failed",
                    hex_upper(&self.challenge)
                )
                .into_bytes();
                let m = MsChapV2::Failure {
                    ms_id: self.ms_id,
                    message,
                };
                ServerStep::Continue(self.request(m))
            }
        }
    }
}

/// What the client says next.
#[derive(Debug)]
pub enum ClientStep {
    /// Send this EAP response.
    Respond(Vec<u8>),
    /// EAP-Success after a verified MSCHAPv2 Success: the method's key.
    Success(Msk),
    /// EAP-Failure (after the server's MSCHAPv2 Failure, or at any point).
    Failure,
}

/// Why the client gives up on a server (a packet that does not parse, a server that does not
/// know our password hash, an EAP-Success before MSCHAPv2 succeeded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientError(pub &'static str);

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The client's side of EAP-MSCHAPv2: answers Identity with `user`, the Challenge with an
/// NT-Response, checks the server's authenticator response.
pub struct Client {
    user: String,
    hash: NtHash,
    peer_challenge: [u8; 16],
    /// After our Response: the authenticator response we expect and the MSK.
    expect: Option<(String, Msk)>,
    verified: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mschapv2::Client")
    }
}

impl Client {
    /// `peer_challenge`: 16 random bytes from the caller's RNG.
    pub fn new(user: &str, hash: NtHash, peer_challenge: [u8; 16]) -> Client {
        Client {
            user: user.to_string(),
            hash,
            peer_challenge,
            expect: None,
            verified: false,
        }
    }

    /// The server's next EAP packet.
    pub fn step(&mut self, request: &[u8]) -> Result<ClientStep, ClientError> {
        let p = Packet::parse(request).map_err(|_| ClientError("malformed EAP packet"))?;
        let respond = |body| Packet::new(Code::Response, p.identifier, body).encode();
        match (p.code, p.body) {
            (Code::Request, Body::Identity(_)) => Ok(ClientStep::Respond(respond(Body::Identity(
                self.user.as_bytes().to_vec(),
            )))),
            (
                Code::Request,
                Body::MsChapV2(MsChapV2::Challenge {
                    ms_id, challenge, ..
                }),
            ) => {
                let name = self.user.as_bytes();
                let nt = nt_response(&self.hash, &challenge, &self.peer_challenge, name);
                let s =
                    authenticator_response(&self.hash, &nt, &self.peer_challenge, &challenge, name);
                self.expect = Some((s, msk(&self.hash, &nt)));
                Ok(ClientStep::Respond(respond(Body::MsChapV2(
                    MsChapV2::Response {
                        ms_id,
                        peer_challenge: self.peer_challenge,
                        nt_response: nt,
                        flags: 0,
                        name: name.to_vec(),
                    },
                ))))
            }
            (Code::Request, Body::MsChapV2(MsChapV2::Success { message, .. })) => {
                let Some((want, _)) = &self.expect else {
                    return Err(ClientError("MSCHAPv2 Success before our Response"));
                };
                let got = message
                    .split(|&b| b == b' ')
                    .find(|t| t.starts_with(b"S="))
                    .unwrap_or_default();
                let ok = got.len() == want.len()
                    && bool::from(got.to_ascii_uppercase().ct_eq(want.as_bytes()));
                if !ok {
                    return Err(ClientError(
                        "the server's authenticator response does not verify",
                    ));
                }
                self.verified = true;
                Ok(ClientStep::Respond(respond(Body::MsChapV2(
                    MsChapV2::SuccessAck,
                ))))
            }
            (Code::Request, Body::MsChapV2(MsChapV2::Failure { .. })) => Ok(ClientStep::Respond(
                respond(Body::MsChapV2(MsChapV2::FailureAck)),
            )),
            // Another method: say which one we do.
            (Code::Request, Body::Other { .. }) => {
                Ok(ClientStep::Respond(respond(Body::Nak(vec![TYPE_MSCHAPV2]))))
            }
            (Code::Success, _) => match (&self.expect, self.verified) {
                (Some((_, msk)), true) => Ok(ClientStep::Success(msk.clone())),
                _ => Err(ClientError("EAP-Success before MSCHAPv2 succeeded")),
            },
            (Code::Failure, _) => Ok(ClientStep::Failure),
            _ => Err(ClientError("unexpected EAP packet")),
        }
    }
}
