//! Proving who we are and checking who the peer is in IKE_AUTH (RFC 7296 §2.15): a PSK MIC, or
//! a signature by a certificate's key (RFC 7427 "Digital Signature", method 14; the classic RSA
//! method 1 and RFC 4754 ECDSA methods 9-11 for peers without RFC 7427), with the CERT and
//! CERTREQ payloads around it (§3.6, §3.7).
//!
//! Both directions read the same "signed octets": the sender's IKE_SA_INIT message, the other
//! end's nonce and `prf(SK_p, IDBody)`. A PSK MACs them, a key signs them.

use ironsec_pki::signature::{self, HashAlgorithm};
use ironsec_pki::{Certificate, KeyKind, SignatureScheme};

use crate::config::{Identity, PeerConfig};
use crate::credentials::{
    id_in_certificate, Credential, LocalAuth, PeerTrust, RemoteAuth, SendCert,
};
use crate::crypto::{prf, psk_auth, verify_psk_auth, Prf};
use crate::wire::{AuthMethod, AuthPayload, CertPayload, NotifyType, Payload, CERT_X509_SIGNATURE};

/// The inputs of one direction's AUTH: whose IKE_SA_INIT message, whose nonce, whose SK_p,
/// whose ID payload body.
pub(crate) struct Signed<'a> {
    pub prf: Prf,
    pub sk_p: &'a [u8],
    pub real_message: &'a [u8],
    pub nonce: &'a [u8],
    pub id_body: &'a [u8],
}

impl Signed<'_> {
    /// RealMessage | Nonce | prf(SK_p, IDBody): what a signature covers.
    fn octets(&self) -> Vec<u8> {
        let maced_id = prf(self.prf, self.sk_p, &[self.id_body]);
        [self.real_message, self.nonce, &maced_id].concat()
    }
}

/// What the peer told us in its IKE_SA_INIT (or, for the responder, IKE_AUTH) message that
/// shapes our proof.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerWishes {
    /// RFC 7427 SIGNATURE_HASH_ALGORITHMS: the hashes it verifies. Empty = it did not send
    /// the notify, so it may only know the classic methods.
    pub hashes: Vec<HashAlgorithm>,
    /// It sent a CERTREQ (any, an empty one too): `send_cert = "ifasked"` sends ours.
    pub certreq: bool,
    /// The CAs its X.509 CERTREQs named (SHA-1 of their SubjectPublicKeyInfo): which of our
    /// certificates to use when we hold several.
    pub certreq_hashes: Vec<[u8; 20]>,
}

impl PeerWishes {
    /// Reads SIGNATURE_HASH_ALGORITHMS (2-byte numbers; unknown ones skipped; a trailing odd
    /// byte ignored) from a message's payloads.
    pub fn read_hashes(&mut self, payloads: &[Payload]) {
        use crate::wire::Payloads;
        if let Some(n) = payloads.notify(NotifyType::SignatureHashAlgorithms) {
            self.hashes = n
                .data
                .chunks_exact(2)
                .filter_map(|c| hash_from_number(u16::from_be_bytes([c[0], c[1]])))
                .collect();
        }
    }

    pub fn read_certreqs(&mut self, payloads: &[Payload]) {
        use crate::wire::Payloads;
        let reqs = payloads.certreqs();
        self.certreq |= !reqs.is_empty();
        for r in reqs.iter().filter(|r| r.encoding == CERT_X509_SIGNATURE) {
            for h in r.data.chunks_exact(20) {
                // At most a few hundred, whatever the peer sends (a lookup list, not a store).
                if self.certreq_hashes.len() < MAX_CERTREQ_HASHES {
                    let mut a = [0u8; 20];
                    a.copy_from_slice(h);
                    if !self.certreq_hashes.contains(&a) {
                        self.certreq_hashes.push(a);
                    }
                }
            }
        }
    }
}

/// How many CA hashes of a peer's CERTREQs are kept.
const MAX_CERTREQ_HASHES: usize = 256;

fn hash_from_number(n: u16) -> Option<HashAlgorithm> {
    Some(match n {
        1 => HashAlgorithm::Sha1,
        2 => HashAlgorithm::Sha256,
        3 => HashAlgorithm::Sha384,
        4 => HashAlgorithm::Sha512,
        5 => HashAlgorithm::Identity,
        _ => return None,
    })
}

/// The hashes we verify in RFC 7427 signatures: SHA-2 and "Identity" (Ed25519). SHA-1 only in
/// the classic RSA method.
const OUR_HASHES: [HashAlgorithm; 4] = [
    HashAlgorithm::Sha256,
    HashAlgorithm::Sha384,
    HashAlgorithm::Sha512,
    HashAlgorithm::Identity,
];

/// Whether a connection uses signatures in either direction: then IKE_SA_INIT carries
/// SIGNATURE_HASH_ALGORITHMS (PSK-only connections keep their messages as they were).
pub(crate) fn uses_signatures(conn: &PeerConfig) -> bool {
    matches!(conn.local_auth, LocalAuth::Pubkey(_))
        || matches!(conn.remote_auth, RemoteAuth::Pubkey(_))
}

/// Our SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 §4).
pub(crate) fn hash_notify() -> Payload {
    let data = OUR_HASHES
        .iter()
        .flat_map(|h| (*h as u16).to_be_bytes())
        .collect();
    Payload::notify(NotifyType::SignatureHashAlgorithms, data)
}

/// Our CERTREQ for a peer checked against `trust`: the SHA-1 SPKI hashes of our trust anchors
/// (empty with only a pinned certificate: it still tells the peer we want a certificate).
pub(crate) fn certreq(trust: &PeerTrust) -> Payload {
    Payload::CertReq(CertPayload {
        encoding: CERT_X509_SIGNATURE,
        data: trust.store.certreq_hashes(),
    })
}

/// Our proof: CERT payloads (when they go out) and AUTH.
pub(crate) fn prove(
    conn: &PeerConfig,
    wishes: &PeerWishes,
    signed: &Signed,
) -> Result<(Vec<Payload>, Payload), String> {
    match &conn.local_auth {
        LocalAuth::Psk(psk) => Ok((
            Vec::new(),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SharedKeyMic,
                data: psk_auth(
                    signed.prf,
                    psk.bytes(),
                    signed.real_message,
                    signed.nonce,
                    signed.sk_p,
                    signed.id_body,
                ),
            }),
        )),
        LocalAuth::Pubkey(creds) => {
            let cred = creds.for_certreq(&wishes.certreq_hashes);
            let mut out = Vec::new();
            let send = match cred.send_cert {
                SendCert::Always => true,
                SendCert::IfAsked => wishes.certreq,
                SendCert::Never => false,
            };
            if send {
                out.extend(cred.chain.iter().map(|c| {
                    Payload::Cert(CertPayload {
                        encoding: CERT_X509_SIGNATURE,
                        data: c.der().to_vec(),
                    })
                }));
            }
            Ok((out, Payload::Auth(sign(cred, wishes, &signed.octets())?)))
        }
        // An EAP client's AUTH is keyed by the MSK once EAP is done (`sa::eap`).
        LocalAuth::EapMschapv2 { .. } | LocalAuth::EapTls { .. } => {
            Err("an EAP client has no AUTH before EAP".into())
        }
    }
}

/// Signs with RFC 7427 when the peer announced a hash our key can use, else with the key
/// type's classic method.
fn sign(cred: &Credential, wishes: &PeerWishes, octets: &[u8]) -> Result<AuthPayload, String> {
    let failed = |e: ironsec_pki::KeyError| format!("signing AUTH failed: {e}");
    let mut schemes = cred.key.schemes();
    if cred.rsa_pss {
        // PSS before PKCS#1 v1.5 (stable: the hash order stays).
        schemes.sort_by_key(|s| !s.is_rsa_pss());
    }
    let chosen = schemes
        .into_iter()
        .find(|s| wishes.hashes.contains(&s.hash()) && s.algorithm_identifier().is_some());
    if let Some(scheme) = chosen {
        let alg = scheme.algorithm_identifier().unwrap_or_default();
        let sig = cred.key.sign(scheme, octets).map_err(failed)?;
        let mut data = Vec::with_capacity(1 + alg.len() + sig.len());
        data.push(alg.len() as u8);
        data.extend_from_slice(alg);
        data.extend_from_slice(&sig);
        return Ok(AuthPayload {
            method: AuthMethod::DigitalSignature,
            data,
        });
    }
    let (method, scheme) =
        match cred.key.kind() {
            KeyKind::Rsa { .. } => (AuthMethod::RsaSig, SignatureScheme::RsaPkcs1Sha1),
            KeyKind::EcP256 => (
                AuthMethod::EcdsaSha256P256,
                SignatureScheme::EcdsaP256Sha256Fixed,
            ),
            KeyKind::EcP384 => (
                AuthMethod::EcdsaSha384P384,
                SignatureScheme::EcdsaP384Sha384Fixed,
            ),
            KeyKind::EcP521 => (
                AuthMethod::EcdsaSha512P521,
                SignatureScheme::EcdsaP521Sha512Fixed,
            ),
            KeyKind::Ed25519 => return Err(
                "the peer announced no RFC 7427 hash algorithm usable with our Ed25519 key, and \
                 Ed25519 has no classic AUTH method"
                    .into(),
            ),
        };
    let data = cred.key.sign(scheme, octets).map_err(failed)?;
    Ok(AuthPayload { method, data })
}

/// Checks the peer's AUTH (and certificates) for `conn`, whose identity is `peer_id`. The
/// error says which check failed and for which certificate: it becomes the
/// AUTHENTICATION_FAILED log line.
pub(crate) fn check(
    conn: &PeerConfig,
    unix: Option<i64>,
    signed: &Signed,
    peer_id: &Identity,
    auth: &AuthPayload,
    certs: &[&CertPayload],
) -> Result<(), String> {
    match &conn.remote_auth {
        RemoteAuth::Psk(psk) => {
            if auth.method != AuthMethod::SharedKeyMic {
                return Err(format!(
                    "'{peer_id}' authenticated with {} but this connection expects a PSK \
                     (remote_auth = \"psk\")",
                    auth.method
                ));
            }
            let ok = verify_psk_auth(
                signed.prf,
                psk.bytes(),
                signed.real_message,
                signed.nonce,
                signed.sk_p,
                signed.id_body,
                &auth.data,
            );
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "AUTH from '{peer_id}' does not verify (wrong PSK?)"
                ))
            }
        }
        RemoteAuth::Pubkey(trust) => {
            if auth.method == AuthMethod::SharedKeyMic {
                return Err(format!(
                    "'{peer_id}' authenticated with a PSK but this connection expects a \
                     certificate signature (remote_auth = \"pubkey\")"
                ));
            }
            let cert = peer_certificate(trust, unix, peer_id, certs)?;
            let (scheme, sig) = signature_of(auth)?;
            signature::verify(cert.spki(), scheme, &signed.octets(), sig).map_err(|e| {
                format!(
                    "AUTH signature of '{peer_id}' ({scheme:?}) does not verify with the key of \
                     certificate '{}': {e}",
                    cert.subject()
                )
            })
        }
        RemoteAuth::EapMschapv2(_) => Err(format!(
            "'{peer_id}' sent AUTH in its first IKE_AUTH request but this connection expects \
             EAP-MSCHAPv2 (remote_auth = \"eap-mschapv2\")"
        )),
        RemoteAuth::EapRadius { .. } => Err(format!(
            "'{peer_id}' sent AUTH in its first IKE_AUTH request but this connection expects \
             EAP via RADIUS (remote_auth = \"eap-radius\")"
        )),
        RemoteAuth::EapTls(_) => Err(format!(
            "'{peer_id}' sent AUTH in its first IKE_AUTH request but this connection expects \
             EAP-TLS (remote_auth = \"eap-tls\")"
        )),
    }
}

/// The peer's end-entity certificate, validated: the one it sent (first X.509 CERT) or the
/// pinned one, bound to its identity.
fn peer_certificate(
    trust: &PeerTrust,
    unix: Option<i64>,
    peer_id: &Identity,
    certs: &[&CertPayload],
) -> Result<Certificate, String> {
    let Some(now) = unix else {
        return Err("no wall-clock time to check certificate validity against".into());
    };
    let mut sent = Vec::new();
    for (i, c) in certs
        .iter()
        .filter(|c| c.encoding == CERT_X509_SIGNATURE)
        .enumerate()
    {
        match Certificate::from_der(&c.data) {
            Ok(cert) => sent.push(cert),
            // An unparsable intermediate may be junk the chain does not need; an unparsable
            // end-entity certificate is fatal.
            Err(e) if i == 0 => {
                return Err(format!(
                    "certificate sent by '{peer_id}' does not parse: {e}"
                ))
            }
            Err(_) => {}
        }
    }
    let cert = match (&trust.pinned, sent.first()) {
        (Some(pinned), Some(end)) if pinned.der() != end.der() => {
            return Err(format!(
                "certificate '{}' sent by '{peer_id}' is not the configured remote_cert '{}'",
                end.subject(),
                pinned.subject()
            ))
        }
        (Some(pinned), _) => {
            let anchors = trust.store.anchors().iter().cloned();
            let store = ironsec_pki::TrustStore::new(
                anchors.chain([pinned.clone()]).collect(),
                trust.store.crls().to_vec(),
            );
            store
                .validate(pinned, &[], now)
                .map_err(|e| format!("certificate of '{peer_id}' refused: {e}"))?;
            pinned.clone()
        }
        (None, Some(end)) => {
            trust
                .store
                .validate(end, &sent[1..], now)
                .map_err(|e| format!("certificate of '{peer_id}' refused: {e}"))?;
            end.clone()
        }
        (None, None) => {
            return Err(format!(
                "'{peer_id}' sent no certificate and no remote_cert is configured for it"
            ))
        }
    };
    if !id_in_certificate(peer_id, &cert) {
        return Err(format!(
            "certificate '{}' does not match peer identity '{peer_id}' (neither its subject \
             nor a subjectAltName)",
            cert.subject()
        ));
    }
    Ok(cert)
}

/// The scheme and signature value of a signature AUTH payload.
fn signature_of(auth: &AuthPayload) -> Result<(SignatureScheme, &[u8]), String> {
    let fixed = match auth.method {
        AuthMethod::RsaSig => Some(SignatureScheme::RsaPkcs1Sha1),
        AuthMethod::EcdsaSha256P256 => Some(SignatureScheme::EcdsaP256Sha256Fixed),
        AuthMethod::EcdsaSha384P384 => Some(SignatureScheme::EcdsaP384Sha384Fixed),
        AuthMethod::EcdsaSha512P521 => Some(SignatureScheme::EcdsaP521Sha512Fixed),
        AuthMethod::DigitalSignature => None,
        other => return Err(format!("unsupported AUTH method {other}")),
    };
    if let Some(scheme) = fixed {
        return Ok((scheme, &auth.data));
    }
    // RFC 7427 §3: length of the AlgorithmIdentifier, the AlgorithmIdentifier, the signature.
    let len = usize::from(auth.data[0]);
    let (Some(alg), Some(sig)) = (auth.data.get(1..1 + len), auth.data.get(1 + len..)) else {
        return Err("RFC 7427 AUTH data shorter than its AlgorithmIdentifier".into());
    };
    let scheme = SignatureScheme::from_algorithm_identifier(alg)
        .ok_or_else(|| "RFC 7427 AUTH with an unsupported signature algorithm".to_string())?;
    if !OUR_HASHES.contains(&scheme.hash()) {
        return Err(format!(
            "RFC 7427 AUTH signed with {scheme:?}, whose hash we did not announce"
        ));
    }
    Ok((scheme, sig))
}
