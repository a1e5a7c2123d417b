//! EAP-TLS (EAP type 13, RFC 5216), sans-IO: rustls driven from memory (`read_tls` from the
//! reassembled EAP-TLS message, `write_tls` into a buffer that is cut into EAP-TLS fragments).
//!
//! ```text
//! EAP-TLS type-data = Flags | [TLS Message Length(4) when L] | TLS data
//! Flags: L = 0x80 (length included), M = 0x40 (more fragments), S = 0x20 (start)
//! S: Request/Identity                 C: Response/Identity (the certificate's identity)
//! S: Request/TLS (S)                  C: Response/TLS ClientHello
//! S: Request/TLS ServerHello.. (L, M) C: Response/TLS (empty: ACK)        <- one per fragment
//! S: Request/TLS ..ServerHelloDone    C: Response/TLS Certificate.. (L, M)
//! S: Request/TLS (empty: ACK)         C: Response/TLS ..Finished
//! S: Request/TLS ChangeCipherSpec, Finished
//! C: Response/TLS (empty)             S: Success
//! ```
//!
//! TLS 1.2 only (strongSwan 5.9.8's default maximum; the TLS 1.3 key schedule of RFC 9190 is
//! not done here), with rustls's ring provider (ECDHE with AES-GCM or ChaCha20-Poly1305). The
//! MSK (RFC 5216 §2.3) is the first 64 bytes of `TLS-PRF(master_secret, "client EAP
//! encryption", client.random | server.random)`: the RFC 5705 exporter with that label and no
//! context, which is what strongSwan's libtls computes (`tls_crypto.c`, `msk_label`).
//!
//! The client's certificate is required and checked by `ironsec_pki` (the gateway's trust
//! anchors and CRLs, validity at the caller's clock), the handshake signature by rustls's
//! verify helpers. The EAP identity the client gave must be one its certificate speaks for (a
//! DN equal to the subject, an e-mail address, DNS name or IP address among the
//! subjectAltNames), as strongSwan checks it; it is the name the client is known by.
//!
//! Our own certificate and key are the gateway's (its IKE credential); the key signs through
//! `ironsec_pki::PrivateKey`, never leaving it. Nothing here logs; reasons carry no secret.
//! The TLS randoms and ECDHE keys come from ring's system RNG (rustls's provider), not from
//! the caller: the one place this crate is not fed its randomness.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use ironsec_pki::{Certificate, DistinguishedName, KeyKind, PrivateKey, TrustStore};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, Error, ServerConfig,
    ServerConnection, SignatureAlgorithm, SignatureScheme,
};

use crate::codec::{Body, Code, Packet, MAX_NAME, TYPE_NAK, TYPE_TLS};
use crate::mschapv2::{ClientError, ClientStep, Msk};

/// Flag bits (RFC 5216 §3.1).
pub const FLAG_LENGTH: u8 = 0x80;
pub const FLAG_MORE: u8 = 0x40;
pub const FLAG_START: u8 = 0x20;

/// TLS data per EAP-TLS packet we send (strongSwan's `fragment_size` default).
pub const FRAGMENT_SIZE: usize = 1024;
/// The longest reassembled TLS message accepted from a peer.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The most EAP-TLS rounds in one dialogue (strongSwan's `max_message_count`).
pub const MAX_ROUNDS: u32 = 32;
/// The MSK's length (RFC 5216 §2.3).
pub const MSK_LEN: usize = 64;
/// The exporter label (RFC 5216 §2.3, TLS 1.2).
pub const MSK_LABEL: &[u8] = b"client EAP encryption";

/// Why the server failed a client. Carries no secret; peer text only inside `Certificate`
/// (certificate subjects, as the chain check words them) and `Tls` (rustls's own words).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The client answered EAP-TLS with a Nak naming the types it wants.
    Nak { wanted: Vec<u8> },
    /// An EAP or EAP-TLS packet that does not parse.
    Malformed(&'static str),
    /// A valid packet out of turn.
    Unexpected(&'static str),
    /// The client's certificate chain was refused (why, as `ironsec_pki` says it).
    Certificate(String),
    /// The client's certificate does not speak for the EAP identity it gave.
    IdentityMismatch,
    /// The TLS handshake failed otherwise.
    Tls(String),
    /// A reassembled message over [`MAX_MESSAGE`].
    TooLarge,
    /// More than [`MAX_ROUNDS`] rounds.
    TooManyRounds,
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Nak { wanted } => {
                let names: Vec<String> = wanted
                    .iter()
                    .map(|t| crate::mschapv2::method_name(*t))
                    .collect();
                write!(f, "the client refused EAP-TLS (Nak; it wants {})", {
                    if names.is_empty() || wanted == &[0] {
                        "no other method".to_string()
                    } else {
                        names.join(", ")
                    }
                })
            }
            FailReason::Malformed(what) => write!(f, "malformed EAP-TLS packet: {what}"),
            FailReason::Unexpected(what) => write!(f, "unexpected EAP message: {what}"),
            FailReason::Certificate(why) => write!(f, "client certificate refused: {why}"),
            FailReason::IdentityMismatch => f.write_str(
                "the client certificate does not contain the EAP identity the client gave",
            ),
            FailReason::Tls(why) => write!(f, "TLS handshake failed: {why}"),
            FailReason::TooLarge => {
                write!(f, "EAP-TLS message longer than {MAX_MESSAGE} bytes")
            }
            FailReason::TooManyRounds => write!(f, "more than {MAX_ROUNDS} EAP-TLS rounds"),
        }
    }
}

/// What the server says next.
#[derive(Debug)]
pub enum ServerStep {
    /// Send this EAP request and wait for the response.
    Continue(Vec<u8>),
    /// Send this EAP-Success: the client is `user` (its EAP identity, found in its certificate).
    Success {
        packet: Vec<u8>,
        msk: Msk,
        user: String,
    },
    /// Send this EAP-Failure: the dialogue is over.
    Failure { packet: Vec<u8>, reason: FailReason },
}

/// A key of ours, held by whoever loaded it (the IKE credential): TLS signs with it through
/// [`PrivateKey::sign`].
pub type KeyRef = Arc<dyn AsRef<PrivateKey> + Send + Sync>;

/// What the gateway's side needs: the trust store for client certificates, and our chain and
/// key.
#[derive(Clone)]
pub struct ServerSetup {
    pub trust: Arc<TrustStore>,
    /// End-entity first.
    pub chain: Vec<Certificate>,
    pub key: KeyRef,
}

impl fmt::Debug for ServerSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("tls::ServerSetup")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// EAP-TLS framing, both directions.

/// The parts of an EAP-TLS type-data.
struct TlsData<'a> {
    flags: u8,
    length: Option<u32>,
    data: &'a [u8],
}

fn parse_tls_data(td: &[u8]) -> Result<TlsData<'_>, &'static str> {
    let [flags, rest @ ..] = td else {
        return Err("EAP-TLS without Flags");
    };
    if flags & FLAG_LENGTH != 0 {
        let [a, b, c, d, data @ ..] = rest else {
            return Err("EAP-TLS L flag without a length");
        };
        Ok(TlsData {
            flags: *flags,
            length: Some(u32::from_be_bytes([*a, *b, *c, *d])),
            data,
        })
    } else {
        Ok(TlsData {
            flags: *flags,
            length: None,
            data: rest,
        })
    }
}

/// Outgoing TLS bytes cut into fragments, and incoming fragments put back together.
#[derive(Default)]
struct Framing {
    /// What is left to send of our current message, and whether its first fragment went out.
    out: Vec<u8>,
    out_pos: usize,
    /// The peer's message being reassembled, and the length it announced.
    inbuf: Vec<u8>,
    announced: Option<usize>,
}

enum Incoming {
    /// A fragment with M set: acknowledge it.
    More,
    /// The whole message.
    Done(Vec<u8>),
}

impl Framing {
    fn sending(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// Starts sending `msg`.
    fn queue(&mut self, msg: Vec<u8>) {
        self.out = msg;
        self.out_pos = 0;
    }

    /// The next fragment's type-data (L on the first, as strongSwan's `include_length`; M while
    /// more follow). An empty message gives an ACK (Flags 0).
    fn next_fragment(&mut self) -> Vec<u8> {
        if self.out.is_empty() {
            return vec![0];
        }
        let first = self.out_pos == 0;
        let end = (self.out_pos + FRAGMENT_SIZE).min(self.out.len());
        let more = end < self.out.len();
        let mut td = vec![0u8];
        if first {
            td[0] |= FLAG_LENGTH;
            td.extend_from_slice(&(self.out.len() as u32).to_be_bytes());
        }
        if more {
            td[0] |= FLAG_MORE;
        }
        td.extend_from_slice(&self.out[self.out_pos..end]);
        self.out_pos = end;
        if !more {
            self.out.clear();
            self.out_pos = 0;
        }
        td
    }

    /// One fragment of the peer's message.
    fn take(&mut self, d: &TlsData<'_>) -> Result<Incoming, FailReason> {
        if let Some(l) = d.length {
            let l = l as usize;
            if l > MAX_MESSAGE {
                return Err(FailReason::TooLarge);
            }
            // A length on a later fragment must repeat the first's.
            match self.announced {
                Some(a) if a != l => {
                    return Err(FailReason::Malformed("TLS Message Length changed"));
                }
                None if !self.inbuf.is_empty() => {
                    return Err(FailReason::Malformed("L flag on a later fragment"));
                }
                _ => self.announced = Some(l),
            }
        }
        if self.inbuf.len() + d.data.len() > MAX_MESSAGE {
            return Err(FailReason::TooLarge);
        }
        self.inbuf.extend_from_slice(d.data);
        if let Some(a) = self.announced {
            if self.inbuf.len() > a {
                return Err(FailReason::Malformed("more data than TLS Message Length"));
            }
        }
        if d.flags & FLAG_MORE != 0 {
            if d.data.is_empty() {
                return Err(FailReason::Malformed("empty fragment with M set"));
            }
            return Ok(Incoming::More);
        }
        if self.announced.is_some_and(|a| a != self.inbuf.len()) {
            return Err(FailReason::Malformed("less data than TLS Message Length"));
        }
        self.announced = None;
        Ok(Incoming::Done(std::mem::take(&mut self.inbuf)))
    }
}

fn tls_packet(code: Code, id: u8, td: Vec<u8>) -> Vec<u8> {
    Packet::new(
        code,
        id,
        Body::Other {
            typ: TYPE_TLS,
            data: td,
        },
    )
    .encode()
}

/// Feeds a whole TLS message to rustls and collects what it answers.
fn pump<D>(conn: &mut rustls::ConnectionCommon<D>, msg: &[u8]) -> Result<Vec<u8>, Error> {
    let mut rd: &[u8] = msg;
    while !rd.is_empty() {
        match conn.read_tls(&mut rd) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(Error::General(format!("reading TLS records: {e}"))),
        }
        conn.process_new_packets()?;
    }
    drain(conn)
}

fn drain<D>(conn: &mut rustls::ConnectionCommon<D>) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out as &mut dyn io::Write)
            .map_err(|e| Error::General(format!("writing TLS records: {e}")))?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Keys and certificates for rustls.

/// Our key, as rustls wants it: signing goes through `ironsec_pki`.
struct PkiSigningKey(KeyRef);

impl fmt::Debug for PkiSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkiSigningKey(<redacted>)")
    }
}

/// The TLS schemes a key of this kind signs with, in our order of preference, and the
/// `ironsec_pki` scheme that makes each.
fn schemes_for(kind: KeyKind) -> &'static [(SignatureScheme, ironsec_pki::SignatureScheme)] {
    use ironsec_pki::SignatureScheme as P;
    match kind {
        KeyKind::Rsa { .. } => &[
            (SignatureScheme::RSA_PKCS1_SHA256, P::RsaPkcs1Sha256),
            (SignatureScheme::RSA_PKCS1_SHA384, P::RsaPkcs1Sha384),
            (SignatureScheme::RSA_PKCS1_SHA512, P::RsaPkcs1Sha512),
            (SignatureScheme::RSA_PSS_SHA256, P::RsaPssSha256),
            (SignatureScheme::RSA_PSS_SHA384, P::RsaPssSha384),
            (SignatureScheme::RSA_PSS_SHA512, P::RsaPssSha512),
        ],
        KeyKind::EcP256 => &[(SignatureScheme::ECDSA_NISTP256_SHA256, P::EcdsaP256Sha256)],
        KeyKind::EcP384 => &[(SignatureScheme::ECDSA_NISTP384_SHA384, P::EcdsaP384Sha384)],
        KeyKind::EcP521 => &[(SignatureScheme::ECDSA_NISTP521_SHA512, P::EcdsaP521Sha512)],
        KeyKind::Ed25519 => &[(SignatureScheme::ED25519, P::Ed25519)],
    }
}

impl SigningKey for PkiSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let kind = (*self.0).as_ref().kind();
        schemes_for(kind)
            .iter()
            .find(|(tls, _)| offered.contains(tls))
            .map(|&(tls, pki)| {
                Box::new(PkiSigner {
                    key: self.0.clone(),
                    tls,
                    pki,
                }) as Box<dyn Signer>
            })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match (*self.0).as_ref().kind() {
            KeyKind::Rsa { .. } => SignatureAlgorithm::RSA,
            KeyKind::EcP256 | KeyKind::EcP384 | KeyKind::EcP521 => SignatureAlgorithm::ECDSA,
            KeyKind::Ed25519 => SignatureAlgorithm::ED25519,
        }
    }
}

struct PkiSigner {
    key: KeyRef,
    tls: SignatureScheme,
    pki: ironsec_pki::SignatureScheme,
}

impl fmt::Debug for PkiSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PkiSigner({:?})", self.tls)
    }
}

impl Signer for PkiSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        (*self.key)
            .as_ref()
            .sign(self.pki, message)
            .map_err(|e| Error::General(e.to_string()))
    }
    fn scheme(&self) -> SignatureScheme {
        self.tls
    }
}

fn certified_key(chain: &[Certificate], key: &KeyRef) -> Arc<CertifiedKey> {
    Arc::new(CertifiedKey::new(
        chain
            .iter()
            .map(|c| CertificateDer::from(c.der().to_vec()))
            .collect(),
        Arc::new(PkiSigningKey(key.clone())),
    ))
}

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for FixedCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

// ring is the provider on purpose (no aws-lc-rs); rustls deprecates it only for lacking the
// post-quantum hybrid key exchange, which TLS 1.2 does not have anyway.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks a peer's chain with `ironsec_pki` at `now` and remembers the verdict (the
/// certificate, or why it was refused) for the caller's report.
struct PkiVerifier {
    trust: Arc<TrustStore>,
    now: i64,
    algs: WebPkiSupportedAlgorithms,
    hints: Vec<rustls::DistinguishedName>,
    verdict: Mutex<Option<Result<Certificate, String>>>,
}

impl fmt::Debug for PkiVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkiVerifier")
    }
}

impl PkiVerifier {
    fn new(trust: Arc<TrustStore>, now: i64, algs: WebPkiSupportedAlgorithms) -> PkiVerifier {
        let hints = trust
            .anchors()
            .iter()
            .filter_map(|a| a.subject().der())
            .map(|d| rustls::DistinguishedName::from(d.to_vec()))
            .collect();
        PkiVerifier {
            trust,
            now,
            algs,
            hints,
            verdict: Mutex::new(None),
        }
    }

    fn check(
        &self,
        end: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), Error> {
        let verdict = (|| {
            let cert = Certificate::from_der(end).map_err(|e| {
                (
                    format!("malformed certificate: {e}"),
                    CertificateError::BadEncoding,
                )
            })?;
            let mut inter = Vec::with_capacity(intermediates.len());
            for c in intermediates
                .iter()
                .take(ironsec_pki::chain::MAX_CHAIN_LEN * 2)
            {
                let c = Certificate::from_der(c).map_err(|e| {
                    (
                        format!("malformed intermediate certificate: {e}"),
                        CertificateError::BadEncoding,
                    )
                })?;
                inter.push(c);
            }
            self.trust.validate(&cert, &inter, self.now).map_err(|e| {
                let kind = match &e {
                    ironsec_pki::ChainError::Expired { .. } => CertificateError::Expired,
                    ironsec_pki::ChainError::NotYetValid { .. } => CertificateError::NotValidYet,
                    ironsec_pki::ChainError::Revoked { .. } => CertificateError::Revoked,
                    ironsec_pki::ChainError::UnknownIssuer { .. } => {
                        CertificateError::UnknownIssuer
                    }
                    ironsec_pki::ChainError::BadSignature { .. } => CertificateError::BadSignature,
                    _ => CertificateError::ApplicationVerificationFailure,
                };
                (e.to_string(), kind)
            })?;
            Ok(cert)
        })();
        let result = verdict
            .as_ref()
            .map(|_| ())
            .map_err(|(_, kind)| Error::InvalidCertificate(kind.clone()));
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(verdict.map_err(|(why, _)| why));
        }
        result
    }

    fn verdict(&self) -> Option<Result<Certificate, String>> {
        self.verdict.lock().ok().and_then(|v| v.clone())
    }
}

impl ClientCertVerifier for PkiVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity, intermediates)
            .map(|()| ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ServerCertVerifier for PkiVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end_entity, intermediates)
            .map(|()| ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Whether `cert` speaks for the EAP identity `id` (strongSwan's `has_subject`): an IP
/// address among the IP SANs; text with `=` a DN equal to the subject; with `@` an e-mail
/// SAN; otherwise a DNS SAN. Case-insensitive for names.
pub fn identity_in_certificate(id: &str, cert: &Certificate) -> bool {
    if let Ok(ip) = id.parse::<std::net::IpAddr>() {
        return cert.san_ip().contains(&ip);
    }
    if id.contains('=') {
        return DistinguishedName::parse(id).is_ok_and(|dn| &dn == cert.subject());
    }
    if id.contains('@') {
        return cert.san_email().iter().any(|e| e.eq_ignore_ascii_case(id));
    }
    cert.san_dns().iter().any(|d| d.eq_ignore_ascii_case(id))
}

// ---------------------------------------------------------------------------------------------
// Server.

enum State {
    Start,
    Identity,
    /// TLS Start sent, then the handshake.
    Handshake,
    /// Our last flight (ChangeCipherSpec, Finished) is out; the client's ACK ends TLS.
    Finished {
        msk: Msk,
        user: String,
    },
    Done,
}

/// The gateway's side of one EAP-TLS dialogue.
pub struct Server {
    conn: ServerConnection,
    verifier: Arc<PkiVerifier>,
    /// Identifier of the request in flight.
    id: u8,
    state: State,
    identity: Option<Vec<u8>>,
    framing: Framing,
    rounds: u32,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tls::Server")
    }
}

impl Server {
    /// A dialogue whose client certificates are checked at `now` (Unix seconds), whose first
    /// request carries Identifier `first_id`.
    pub fn new(setup: &ServerSetup, now: i64, first_id: u8) -> Result<Server, String> {
        if setup.chain.is_empty() {
            return Err("EAP-TLS needs a certificate of our own".into());
        }
        let provider = provider();
        let verifier = Arc::new(PkiVerifier::new(
            setup.trust.clone(),
            now,
            provider.signature_verification_algorithms,
        ));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(Arc::new(FixedCert(certified_key(&setup.chain, &setup.key))));
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        let conn = ServerConnection::new(Arc::new(config)).map_err(|e| format!("TLS: {e}"))?;
        Ok(Server {
            conn,
            verifier,
            id: first_id,
            state: State::Start,
            identity: None,
            framing: Framing::default(),
            rounds: 0,
        })
    }

    /// The first request: EAP-Request/Identity.
    pub fn start(&mut self) -> Vec<u8> {
        self.state = State::Identity;
        Packet::new(Code::Request, self.id, Body::Identity(Vec::new())).encode()
    }

    /// The EAP identity the client gave (raw peer bytes: escape before showing).
    pub fn identity(&self) -> Option<&[u8]> {
        self.identity.as_deref()
    }

    /// The subject of the client's certificate, once rustls handed it to us (whether it was
    /// accepted or not is in the step's reason).
    pub fn peer_subject(&self) -> Option<String> {
        self.conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| Certificate::from_der(c).ok())
            .map(|c| c.subject().to_string())
    }

    fn request(&mut self, td: Vec<u8>) -> ServerStep {
        self.id = self.id.wrapping_add(1);
        ServerStep::Continue(tls_packet(Code::Request, self.id, td))
    }

    fn fail(&mut self, reason: FailReason) -> ServerStep {
        self.state = State::Done;
        ServerStep::Failure {
            packet: Packet::new(Code::Failure, self.id, Body::Empty).encode(),
            reason,
        }
    }

    /// The client's next EAP response.
    pub fn step(&mut self, response: &[u8]) -> ServerStep {
        let p = match Packet::parse(response) {
            Ok(p) => p,
            Err(e) => return self.fail(FailReason::Malformed(e.0)),
        };
        if p.code != Code::Response {
            return self.fail(FailReason::Unexpected("not an EAP Response"));
        }
        if p.identifier != self.id {
            return self.fail(FailReason::Unexpected("Identifier of another request"));
        }
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return self.fail(FailReason::TooManyRounds);
        }
        match (std::mem::replace(&mut self.state, State::Done), p.body) {
            (State::Identity, Body::Identity(name)) => {
                if name.is_empty() || name.len() > MAX_NAME || std::str::from_utf8(&name).is_err() {
                    return self.fail(FailReason::Malformed(
                        "EAP identity empty, long or not UTF-8",
                    ));
                }
                self.identity = Some(name);
                self.state = State::Handshake;
                self.request(vec![FLAG_START])
            }
            (_, Body::Nak(wanted)) => self.fail(FailReason::Nak { wanted }),
            (
                State::Handshake,
                Body::Other {
                    typ: TYPE_TLS,
                    data,
                },
            ) => self.handshake(&data),
            (
                State::Finished { msk, user },
                Body::Other {
                    typ: TYPE_TLS,
                    data,
                },
            ) => {
                if data != [0] {
                    // An alert: the client did not accept our Finished.
                    return self.fail(FailReason::Tls(
                        "the client answered our Finished with data (an alert?)".into(),
                    ));
                }
                ServerStep::Success {
                    packet: Packet::new(Code::Success, self.id, Body::Empty).encode(),
                    msk,
                    user,
                }
            }
            (_, Body::Other { typ, .. }) if typ == TYPE_NAK => {
                self.fail(FailReason::Unexpected("Nak"))
            }
            _ => self.fail(FailReason::Unexpected("response type out of turn")),
        }
    }

    fn handshake(&mut self, td: &[u8]) -> ServerStep {
        self.state = State::Handshake;
        let d = match parse_tls_data(td) {
            Ok(d) => d,
            Err(e) => return self.fail(FailReason::Malformed(e)),
        };
        if self.framing.sending() {
            // Each of our fragments is acknowledged by an empty response.
            if !d.data.is_empty() || d.flags & (FLAG_MORE | FLAG_LENGTH) != 0 {
                return self.fail(FailReason::Unexpected("data while we send fragments"));
            }
            let td = self.framing.next_fragment();
            return self.request(td);
        }
        let msg = match self.framing.take(&d) {
            Err(r) => return self.fail(r),
            Ok(Incoming::More) => return self.request(vec![0]),
            Ok(Incoming::Done(m)) => m,
        };
        if msg.is_empty() {
            return self.fail(FailReason::Unexpected(
                "empty EAP-TLS response mid-handshake",
            ));
        }
        let out = match pump(&mut *self.conn, &msg) {
            Ok(out) => out,
            Err(e) => {
                return match self.verifier.verdict() {
                    Some(Err(why)) => self.fail(FailReason::Certificate(why)),
                    _ => self.fail(FailReason::Tls(e.to_string())),
                };
            }
        };
        if out.is_empty() && self.conn.is_handshaking() {
            // Each of the client's two TLS 1.2 flights calls for ours: a message that does not
            // is cut short (or not TLS).
            return self.fail(FailReason::Tls(
                "the client's EAP-TLS message holds no complete TLS flight".into(),
            ));
        }
        if !self.conn.is_handshaking() {
            let Some(Ok(cert)) = self.verifier.verdict() else {
                return self.fail(FailReason::Certificate("no client certificate".into()));
            };
            let id = self.identity.clone().unwrap_or_default();
            let user = String::from_utf8_lossy(&id).into_owned();
            if !identity_in_certificate(&user, &cert) {
                return self.fail(FailReason::IdentityMismatch);
            }
            let msk = match self
                .conn
                .export_keying_material([0u8; MSK_LEN], MSK_LABEL, None)
            {
                Ok(k) => Msk::new(k.to_vec()),
                Err(e) => return self.fail(FailReason::Tls(e.to_string())),
            };
            self.state = State::Finished { msk, user };
        }
        self.framing.queue(out);
        let td = self.framing.next_fragment();
        self.request(td)
    }
}

// ---------------------------------------------------------------------------------------------
// Client (for tests and the engine's EAP-TLS client role).

/// The client's side of EAP-TLS: answers Identity with `identity`, runs TLS with our
/// certificate, checks the server's chain against `trust`.
pub struct Client {
    identity: String,
    conn: ClientConnection,
    verifier: Arc<PkiVerifier>,
    framing: Framing,
    started: bool,
    rounds: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tls::Client")
    }
}

impl Client {
    pub fn new(
        identity: &str,
        chain: &[Certificate],
        key: KeyRef,
        trust: Arc<TrustStore>,
        now: i64,
    ) -> Result<Client, String> {
        let provider = provider();
        let verifier = Arc::new(PkiVerifier::new(
            trust,
            now,
            provider.signature_verification_algorithms,
        ));
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_cert_resolver(Arc::new(FixedCert(certified_key(chain, &key))));
        config.enable_sni = false;
        config.resumption = rustls::client::Resumption::disabled();
        let name = ServerName::try_from("eap-tls.invalid").map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        Ok(Client {
            identity: identity.to_string(),
            conn,
            verifier,
            framing: Framing::default(),
            started: false,
            rounds: 0,
        })
    }

    /// Why the server's certificate was refused, if it was.
    pub fn server_cert_error(&self) -> Option<String> {
        self.verifier.verdict().and_then(|v| v.err())
    }

    /// The server's next EAP packet.
    pub fn step(&mut self, request: &[u8]) -> Result<ClientStep, ClientError> {
        let p = Packet::parse(request).map_err(|_| ClientError("malformed EAP packet"))?;
        let id = p.identifier;
        let respond = |td: Vec<u8>| ClientStep::Respond(tls_packet(Code::Response, id, td));
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS + 2 {
            return Err(ClientError("too many EAP-TLS rounds"));
        }
        match (p.code, p.body) {
            (Code::Request, Body::Identity(_)) => Ok(ClientStep::Respond(
                Packet::new(
                    Code::Response,
                    id,
                    Body::Identity(self.identity.as_bytes().to_vec()),
                )
                .encode(),
            )),
            (
                Code::Request,
                Body::Other {
                    typ: TYPE_TLS,
                    data,
                },
            ) => {
                let d = parse_tls_data(&data).map_err(ClientError)?;
                if d.flags & FLAG_START != 0 {
                    if self.started {
                        return Err(ClientError("a second EAP-TLS Start"));
                    }
                    self.started = true;
                    let hello = drain(&mut *self.conn).map_err(|_| ClientError("TLS failed"))?;
                    self.framing.queue(hello);
                    return Ok(respond(self.framing.next_fragment()));
                }
                if !self.started {
                    return Err(ClientError("EAP-TLS data before Start"));
                }
                if self.framing.sending() {
                    if !d.data.is_empty() {
                        return Err(ClientError("data while we send fragments"));
                    }
                    return Ok(respond(self.framing.next_fragment()));
                }
                let msg = match self.framing.take(&d) {
                    Err(_) => return Err(ClientError("bad EAP-TLS fragment")),
                    Ok(Incoming::More) => return Ok(respond(vec![0])),
                    Ok(Incoming::Done(m)) => m,
                };
                let out = pump(&mut *self.conn, &msg).map_err(|_| {
                    if self.server_cert_error().is_some() {
                        ClientError("the server's certificate was refused")
                    } else {
                        ClientError("TLS handshake failed")
                    }
                })?;
                self.framing.queue(out);
                Ok(respond(self.framing.next_fragment()))
            }
            (Code::Request, Body::Other { .. }) | (Code::Request, Body::MsChapV2(_)) => {
                Ok(ClientStep::Respond(
                    Packet::new(Code::Response, id, Body::Nak(vec![TYPE_TLS])).encode(),
                ))
            }
            (Code::Success, _) => {
                if self.conn.is_handshaking() || self.framing.sending() {
                    return Err(ClientError("EAP-Success before TLS finished"));
                }
                let k = self
                    .conn
                    .export_keying_material([0u8; MSK_LEN], MSK_LABEL, None)
                    .map_err(|_| ClientError("no TLS keys"))?;
                Ok(ClientStep::Success(Msk::new(k.to_vec())))
            }
            (Code::Failure, _) => Ok(ClientStep::Failure),
            _ => Err(ClientError("unexpected EAP packet")),
        }
    }
}
