//! The IKEv2 key schedule (RFC 7296 §2.14, §2.17, §2.18 with RFC 5282's AEAD
//! rules), PSK authentication (§2.15), NAT detection (§2.23) and stateless
//! cookies (§2.6).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ironsec_esp::Suite;
use ring::{digest, hmac};
use zeroize::Zeroizing;

use super::dh::SharedSecret;
use super::prf::{expand, prf};
use super::proposal::IkeAlgorithms;
use super::transforms::Prf;

/// The key pad of RFC 7296 §2.15: 17 ASCII bytes, no terminating NUL.
pub const PSK_KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// Bytes of a NAT_DETECTION_*_IP notification's data (a SHA-1 digest).
pub const NAT_DETECTION_HASH_LEN: usize = 20;

/// Bytes of a cookie made by [`cookie`]: version byte and HMAC-SHA256.
pub const COOKIE_LEN: usize = 1 + 32;

/// `SKEYSEED = prf(Ni | Nr, g^ir)` (RFC 7296 §2.14): the nonces are the key.
pub fn skeyseed(alg: Prf, ni: &[u8], nr: &[u8], shared: &SharedSecret) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(ni.len() + nr.len()));
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    prf(alg, &key, &[shared.as_bytes()])
}

/// SKEYSEED of a rekeyed IKE SA (RFC 7296 §2.18):
/// `SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)`, with the old SA's PRF
/// and the nonces of the CREATE_CHILD_SA exchange.
pub fn skeyseed_rekey(
    alg: Prf,
    old_sk_d: &[u8],
    shared: &SharedSecret,
    ni: &[u8],
    nr: &[u8],
) -> Zeroizing<Vec<u8>> {
    prf(alg, old_sk_d, &[shared.as_bytes(), ni, nr])
}

/// The keys of an IKE SA. With an AEAD SK_ai and SK_ar are empty (RFC 5282
/// §7.1) and SK_ei and SK_er are key || 4-byte salt; with AES-CBC SK_ai and
/// SK_ar are the HMAC keys and SK_ei and SK_er the AES keys.
pub struct IkeKeys {
    /// Key for deriving CHILD_SA keys and the next SKEYSEED.
    pub sk_d: Zeroizing<Vec<u8>>,
    /// Integrity key of what the original initiator sends (empty for an AEAD).
    pub sk_ai: Zeroizing<Vec<u8>>,
    /// Integrity key of what the original responder sends (empty for an AEAD).
    pub sk_ar: Zeroizing<Vec<u8>>,
    /// Encrypts what the original initiator sends.
    pub sk_ei: Zeroizing<Vec<u8>>,
    /// Encrypts what the original responder sends.
    pub sk_er: Zeroizing<Vec<u8>>,
    /// The initiator's AUTH key.
    pub sk_pi: Zeroizing<Vec<u8>>,
    /// The responder's AUTH key.
    pub sk_pr: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = |k: &Zeroizing<Vec<u8>>| format!("<{} bytes redacted>", k.len());
        f.debug_struct("IkeKeys")
            .field("sk_d", &r(&self.sk_d))
            .field("sk_ai", &r(&self.sk_ai))
            .field("sk_ar", &r(&self.sk_ar))
            .field("sk_ei", &r(&self.sk_ei))
            .field("sk_er", &r(&self.sk_er))
            .field("sk_pi", &r(&self.sk_pi))
            .field("sk_pr", &r(&self.sk_pr))
            .finish()
    }
}

/// RFC 7296 §2.14:
/// `{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)`,
/// with SK_d, SK_pi, SK_pr the PRF's preferred key length (§2.13), SK_ai/SK_ar
/// the integrity transform's key length (empty for an AEAD) and SK_ei/SK_er
/// the cipher's key, plus a 4-byte salt for an AEAD (RFC 5282 §7.1, RFC 7634
/// §3). For a rekeyed IKE SA pass the new SKEYSEED, the new nonces and the new
/// SPIs.
pub fn derive_ike_keys(
    algs: IkeAlgorithms,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let p = algs.prf.key_len();
    let e = algs.encr.encr().keymat_len();
    let a = algs.encr.integ().map_or(0, |i| i.key_len());
    let stream = expand(
        algs.prf,
        skeyseed,
        &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
        3 * p + 2 * a + 2 * e,
    );
    let mut rest: &[u8] = &stream;
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Zeroizing::new(head.to_vec())
    };
    IkeKeys {
        sk_d: take(p),
        sk_ai: take(a),
        sk_ar: take(a),
        sk_ei: take(e),
        sk_er: take(e),
        sk_pi: take(p),
        sk_pr: take(p),
    }
}

/// The ESP keys of one CHILD_SA, one direction's [`Suite::keymat_len`] bytes
/// each: an AEAD's key and 4-byte salt, or the CBC key then the HMAC key.
pub struct ChildKeys {
    /// Protects traffic from the initiator of the CREATE_CHILD_SA (or
    /// IKE_AUTH) exchange to its responder.
    pub i_to_r: Zeroizing<Vec<u8>>,
    /// Protects traffic from the responder to the initiator.
    pub r_to_i: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildKeys")
            .field("i_to_r", &format!("<{} bytes redacted>", self.i_to_r.len()))
            .field("r_to_i", &format!("<{} bytes redacted>", self.r_to_i.len()))
            .finish()
    }
}

/// RFC 7296 §2.17: `KEYMAT = prf+(SK_d, Ni | Nr)`, or with PFS
/// `KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr)`. The initiator-to-responder key
/// comes first, then the responder-to-initiator one; each is the encryption
/// key (with an AEAD's salt) followed by the integrity key, if any ("the
/// encryption key is taken from the first octets of KEYMAT and the
/// authentication key is taken from the next octets"). `ni`/`nr` are the nonces of the exchange that
/// creates the CHILD_SA (those of IKE_SA_INIT for the first one).
pub fn derive_child_keys(
    prf: Prf,
    encr: Suite,
    sk_d: &[u8],
    pfs: Option<&SharedSecret>,
    ni: &[u8],
    nr: &[u8],
) -> ChildKeys {
    let n = encr.keymat_len();
    let stream = match pfs {
        Some(g) => expand(prf, sk_d, &[g.as_bytes(), ni, nr], 2 * n),
        None => expand(prf, sk_d, &[ni, nr], 2 * n),
    };
    ChildKeys {
        i_to_r: Zeroizing::new(stream[..n].to_vec()),
        r_to_i: Zeroizing::new(stream[n..].to_vec()),
    }
}

/// The AUTH payload data for shared-key authentication (RFC 7296 §2.15):
///
/// ```text
/// AUTH = prf( prf(PSK, "Key Pad for IKEv2"), <SignedOctets> )
/// SignedOctets = RealMessage | peer's nonce | prf(SK_p, RestOfIDPayload)
/// ```
///
/// For the initiator's AUTH: `real_message` is its IKE_SA_INIT request,
/// `peer_nonce` is Nr, `sk_p` is SK_pi and `id_body` its IDi payload body.
/// For the responder's: its IKE_SA_INIT response, Ni, SK_pr and IDr.
/// `id_body` is the ID payload after the generic header: ID type, three
/// reserved bytes, identification data.
pub fn psk_auth(
    alg: Prf,
    psk: &[u8],
    real_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let pad_key = prf(alg, psk, &[PSK_KEY_PAD]);
    let maced_id = prf(alg, sk_p, &[id_body]);
    // AUTH is sent in the clear; only the pad key is secret.
    prf(alg, &pad_key, &[real_message, peer_nonce, &maced_id]).to_vec()
}

/// Checks a peer's AUTH payload data against [`psk_auth`] of the same
/// inputs, in constant time.
pub fn verify_psk_auth(
    prf: Prf,
    psk: &[u8],
    real_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
    received: &[u8],
) -> bool {
    let pad_key = super::prf::prf(prf, psk, &[PSK_KEY_PAD]);
    let maced_id = super::prf::prf(prf, sk_p, &[id_body]);
    let signed_octets = [real_message, peer_nonce, &maced_id].concat();
    // ring's HMAC verification compares in constant time.
    hmac::verify(
        &hmac::Key::new(prf.hmac(), &pad_key),
        &signed_octets,
        received,
    )
    .is_ok()
}

/// The address bytes that enter NAT detection and cookies: 4 bytes for IPv4
/// (including an IPv4-mapped IPv6 address, which is what a dual-stack socket
/// reports for an IPv4 peer, who hashes the 4-byte form), 16 for IPv6.
fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// NAT_DETECTION_SOURCE_IP / _DESTINATION_IP data (RFC 7296 §2.23):
/// `SHA-1(SPIi | SPIr | IP address | port)`, SPIs and port in network byte
/// order. In the IKE_SA_INIT request SPIr is zero.
pub fn nat_detection_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    ctx.update(&ip_bytes(addr.ip()));
    ctx.update(&addr.port().to_be_bytes());
    let mut out = [0u8; NAT_DETECTION_HASH_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A stateless COOKIE (RFC 7296 §2.6):
/// `<version> | HMAC-SHA256(secret, Ni | IPi | SPIi)`, [`COOKIE_LEN`] bytes.
///
/// `version` names which of the responder's rotating secrets made it, so that
/// cookies made just before a rotation still verify with the previous secret.
/// Only the peer's IP address enters the hash (not the port), as in §2.6.
pub fn cookie(secret: &[u8; 32], version: u8, ni: &[u8], spi_i: u64, peer: SocketAddr) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(ni);
    ctx.update(&ip_bytes(peer.ip()));
    ctx.update(&spi_i.to_be_bytes());
    let mut out = Vec::with_capacity(COOKIE_LEN);
    out.push(version);
    out.extend_from_slice(ctx.sign().as_ref());
    out
}

/// Whether `received` is the cookie [`cookie`] makes from these inputs,
/// compared in constant time. Call it with the secret whose version is
/// `received[0]`.
pub fn verify_cookie(
    secret: &[u8; 32],
    version: u8,
    ni: &[u8],
    spi_i: u64,
    peer: SocketAddr,
    received: &[u8],
) -> bool {
    let Some((&got_version, mac)) = received.split_first() else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let data = [ni, &ip_bytes(peer.ip()), &spi_i.to_be_bytes()].concat();
    // ring's HMAC verification compares in constant time.
    let mac_ok = hmac::verify(&key, &data, mac).is_ok();
    mac_ok & (got_version == version)
}
