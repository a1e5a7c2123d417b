//! The certificate half of a responder's IKE_AUTH on its own, for the `ike_auth_certs` fuzz
//! target and its regression tests: an IKE_AUTH request's decrypted payload chain (IDi, CERT,
//! CERTREQ, AUTH, ...) goes through the same payload parser and the same [`proof::check`] the
//! responder runs (certificate decoding, chain building to the trust anchors, validity against
//! the wall clock, CRLs, identity binding, RFC 7427 AUTH decoding, signature verification).
//!
//! Reaching that code through the encrypted exchange would make the fuzzer find the SK keys
//! first; here only the IKE SA's keys and messages are fixed ([`signed`]), so a seed made by
//! [`initiator_payloads`] carries a valid signature and every byte of it can be mutated.

use std::sync::Arc;

use crate::config::Identity;
use crate::credentials::{Credential, Credentials, LocalAuth, PeerTrust, RemoteAuth};
use crate::crypto::Prf;
use crate::sa::proof::{self, PeerWishes, Signed};
use crate::wire::{encode_chain, parse_chain, Payload, Payloads};
use crate::PeerConfig;
use ironsec_pki::signature::HashAlgorithm;
use ironsec_pki::{Certificate, TrustStore};

/// The fixed IKE SA the checked AUTH belongs to: SK_pi, the initiator's IKE_SA_INIT message
/// and the responder's nonce.
const SK_PI: [u8; 32] = [0x5a; 32];
const REAL_MESSAGE: &[u8] = b"the initiator's IKE_SA_INIT request, fixed for the fuzz target";
const NONCE_R: [u8; 32] = [0xa5; 32];

fn signed(id_body: &[u8]) -> Signed<'_> {
    Signed {
        prf: Prf::HmacSha256,
        sk_p: &SK_PI,
        real_message: REAL_MESSAGE,
        nonce: &NONCE_R,
        id_body,
    }
}

fn conn(local: LocalAuth, remote: RemoteAuth, local_id: Identity) -> PeerConfig {
    let mut c = super::peer(
        "certauth",
        super::A,
        super::B,
        "10.1.0.0/24",
        "10.2.0.0/24",
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
    );
    c.local_auth = local;
    c.remote_auth = remote;
    c.local_id = local_id;
    c.remote_id = Identity::Any;
    c
}

/// What an initiator holding `cred` as `local_id` sends in IKE_AUTH for [`CertAuth`] (IDi,
/// its CERTs, AUTH signed with RFC 7427 as a peer that announced SHA-256/384/512 gets it, or
/// with the key type's classic method when `rfc7427` is false), as the first payload type
/// followed by the encoded chain: a seed for the fuzz target.
pub fn initiator_payloads(cred: Credential, local_id: Identity, rfc7427: bool) -> Vec<u8> {
    let conn = conn(
        LocalAuth::Pubkey(Credentials::one(cred)),
        RemoteAuth::Psk(crate::Psk::new(b"unused by the initiator".to_vec())),
        local_id.clone(),
    );
    let idi = local_id.to_payload().expect("a sendable identity");
    let wishes = PeerWishes {
        hashes: if rfc7427 {
            vec![
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha384,
                HashAlgorithm::Sha512,
            ]
        } else {
            Vec::new()
        },
        certreq: true,
        certreq_hashes: Vec::new(),
    };
    let body = idi.body_bytes();
    let (certs, auth) = proof::prove(&conn, &wishes, &signed(&body)).expect("signing works");
    let mut payloads = vec![Payload::IdI(idi)];
    payloads.extend(certs);
    payloads.push(auth);
    let (first, chain) = encode_chain(&payloads);
    let mut out = vec![first];
    out.extend(chain);
    out
}

/// A responder's certificate check with fixed trust anchors, CRLs and optional pinned peer
/// certificate, accepting any peer identity (`remote_id = "%any"`).
pub struct CertAuth {
    conn: PeerConfig,
}

impl CertAuth {
    pub fn new(store: TrustStore, pinned: Option<Certificate>) -> CertAuth {
        let trust = Arc::new(PeerTrust {
            store: Arc::new(store),
            pinned,
        });
        CertAuth {
            conn: conn(
                LocalAuth::Psk(crate::Psk::new(b"unused by the responder".to_vec())),
                RemoteAuth::Pubkey(trust),
                Identity::Any,
            ),
        }
    }

    /// Checks `data` (first payload type, then the chain) at wall-clock time `unix`: `None`
    /// when it does not parse or lacks IDi or AUTH (the responder answers those before any
    /// certificate is looked at), else the verdict the responder would log.
    pub fn check(&self, unix: i64, data: &[u8]) -> Option<Result<(), String>> {
        let (&first, chain) = data.split_first()?;
        let payloads = parse_chain(first, chain).ok()?;
        let (idi, auth) = (payloads.id_i()?, payloads.auth()?);
        let Some(peer_id) = Identity::from_payload(idi) else {
            return Some(Err("unusable IDi".into()));
        };
        let body = idi.body_bytes();
        Some(proof::check(
            &self.conn,
            Some(unix),
            &signed(&body),
            &peer_id,
            auth,
            &payloads.certs(),
        ))
    }
}
