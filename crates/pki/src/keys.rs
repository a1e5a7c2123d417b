//! Private keys from PEM or DER files: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`), PKCS#1
//! (`RSA PRIVATE KEY`). Encrypted keys are refused with a clear error. `Debug` never shows key
//! material; the key bytes are zeroed when dropped where the backing library allows.

use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use ring::rand::SystemRandom;
use x509_parser::der_parser::asn1_rs::{Any, FromDer, Tag};
use zeroize::Zeroizing;

use crate::signature::SignatureScheme;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa { bits: usize },
    EcP256,
    EcP384,
    EcP521,
    Ed25519,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no private key found (expected PEM PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY, or DER)")]
    NotFound,
    #[error(
        "encrypted private keys are not supported; decrypt it (e.g. `openssl pkey -in K -out K2`)"
    )]
    Encrypted,
    #[error("malformed private key: {0}")]
    Malformed(String),
    #[error("unsupported key: {0}")]
    Unsupported(String),
    #[error("{0:?} cannot sign with a {1:?} key")]
    WrongScheme(SignatureScheme, KeyKind),
    #[error("signing failed")]
    SignFailed,
}

/// A private key able to sign IKE AUTH data.
pub struct PrivateKey {
    inner: Inner,
}

/// The backing library's key object; each wipes its secret on drop (ring's key pairs, the
/// RustCrypto `SecretKey`/`SigningKey` and `rsa::RsaPrivateKey` zeroize themselves).
enum Inner {
    Rsa {
        ring: ring::signature::RsaKeyPair,
        /// Only for PKCS#1 v1.5 SHA-1 signatures (ring cannot make them). None if the
        /// `rsa` crate refused a key ring accepted.
        legacy: Option<Box<rsa::RsaPrivateKey>>,
    },
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    Ed25519(ring::signature::Ed25519KeyPair),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?}, <redacted>)", self.kind())
    }
}

/// A key held directly is a key reference too (EAP-TLS takes `Arc<dyn AsRef<PrivateKey>>`, so
/// that an IKE credential can lend its key without a copy).
impl AsRef<PrivateKey> for PrivateKey {
    fn as_ref(&self) -> &PrivateKey {
        self
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// PEM labels that hold a private key; other blocks (e.g. the `EC PARAMETERS` block
/// `openssl ecparam -genkey` writes first, or a certificate in the same file) are skipped.
const KEY_LABELS: [&str; 4] = [
    "PRIVATE KEY",
    "EC PRIVATE KEY",
    "RSA PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
];

impl PrivateKey {
    /// Parses a key file's bytes: PEM (first key block) or DER.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<PrivateKey, KeyError> {
        if bytes.is_empty() {
            return Err(KeyError::NotFound);
        }
        if !contains(bytes, b"-----BEGIN ") {
            return Self::from_der(bytes);
        }
        // Legacy OpenSSL encryption puts headers into the block, which the PEM decoder
        // cannot read as base64: recognise it first so the error says what to do.
        if contains(bytes, b"Proc-Type: 4,ENCRYPTED") {
            return Err(KeyError::Encrypted);
        }
        for block in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let block = block.map_err(|e| KeyError::Malformed(format!("PEM: {e:?}")))?;
            let der = Zeroizing::new(block.contents);
            match block.label.as_str() {
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
                "PRIVATE KEY" => return Self::from_pkcs8(&der),
                "EC PRIVATE KEY" => return Self::from_sec1(&der),
                "RSA PRIVATE KEY" => return Self::from_pkcs1(&der),
                _ => debug_assert!(!KEY_LABELS.contains(&block.label.as_str())),
            }
        }
        Err(KeyError::NotFound)
    }

    /// DER of unknown kind: PKCS#8, SEC1 or PKCS#1, told apart by their structure.
    fn from_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        // EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }, where
        // the three plain forms start with an INTEGER version.
        let (_, outer) = Any::from_der(der)
            .map_err(|_| KeyError::Malformed("not DER (and no PEM block found)".into()))?;
        if outer.tag() != Tag::Sequence {
            return Err(KeyError::Malformed("not a DER SEQUENCE".into()));
        }
        if let Ok((rest, first)) = Any::from_der(outer.data) {
            if first.tag() == Tag::Sequence {
                if let Ok((_, second)) = Any::from_der(rest) {
                    if second.tag() == Tag::OctetString {
                        return Err(KeyError::Encrypted);
                    }
                }
            }
        }
        if p256::pkcs8::PrivateKeyInfo::try_from(der).is_ok() {
            return Self::from_pkcs8(der);
        }
        if let Ok(k) = Self::from_sec1(der) {
            return Ok(k);
        }
        if let Ok(k) = Self::from_pkcs1(der) {
            return Ok(k);
        }
        Err(KeyError::Malformed(
            "DER is neither a PKCS#8, SEC1 nor PKCS#1 private key".into(),
        ))
    }

    fn from_pkcs8(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let info = p256::pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| KeyError::Malformed(format!("PKCS#8: {e}")))?;
        let alg = info.algorithm.oid.to_string();
        let inner = match alg.as_str() {
            OID_RSA => {
                let ring =
                    ring::signature::RsaKeyPair::from_pkcs8(der).map_err(|e| rsa_rejected(&e))?;
                let legacy = rsa::pkcs8::DecodePrivateKey::from_pkcs8_der(der)
                    .ok()
                    .map(Box::new);
                Inner::Rsa { ring, legacy }
            }
            OID_EC => {
                let curve = info
                    .algorithm
                    .parameters_oid()
                    .map_err(|_| KeyError::Malformed("EC key without a named curve".into()))?
                    .to_string();
                let bad = |e: p256::pkcs8::Error| KeyError::Malformed(format!("EC key: {e}"));
                match curve.as_str() {
                    OID_P256 => {
                        Inner::P256(p256::SecretKey::from_pkcs8_der(der).map_err(bad)?.into())
                    }
                    OID_P384 => {
                        Inner::P384(p384::SecretKey::from_pkcs8_der(der).map_err(bad)?.into())
                    }
                    OID_P521 => {
                        let sk = p521::SecretKey::from_pkcs8_der(der).map_err(bad)?;
                        Inner::P521(p521_signing_key(&sk)?)
                    }
                    other => {
                        return Err(KeyError::Unsupported(format!(
                            "EC curve {other} (supported: P-256, P-384, P-521)"
                        )))
                    }
                }
            }
            OID_ED25519 => Inner::Ed25519(
                ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|e| KeyError::Malformed(format!("Ed25519 key: {e}")))?,
            ),
            other => {
                return Err(KeyError::Unsupported(format!(
                    "key algorithm {other} (supported: RSA, ECDSA, Ed25519)"
                )))
            }
        };
        Ok(PrivateKey { inner })
    }

    /// SEC1 `ECPrivateKey`: the curve from its parameters (each decoder checks it matches),
    /// or from the scalar length when they are absent.
    fn from_sec1(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let inner = if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
            Inner::P256(k.into())
        } else if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
            Inner::P384(k.into())
        } else if let Ok(k) = p521::SecretKey::from_sec1_der(der) {
            Inner::P521(p521_signing_key(&k)?)
        } else {
            return Err(KeyError::Malformed(
                "not a SEC1 EC private key on P-256, P-384 or P-521".into(),
            ));
        };
        Ok(PrivateKey { inner })
    }

    fn from_pkcs1(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let ring = ring::signature::RsaKeyPair::from_der(der).map_err(|e| rsa_rejected(&e))?;
        let legacy = rsa::pkcs1::DecodeRsaPrivateKey::from_pkcs1_der(der)
            .ok()
            .map(Box::new);
        Ok(PrivateKey {
            inner: Inner::Rsa { ring, legacy },
        })
    }

    pub fn kind(&self) -> KeyKind {
        match &self.inner {
            Inner::Rsa { ring, .. } => KeyKind::Rsa {
                bits: ring.public().modulus_len() * 8,
            },
            Inner::P256(_) => KeyKind::EcP256,
            Inner::P384(_) => KeyKind::EcP384,
            Inner::P521(_) => KeyKind::EcP521,
            Inner::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// The DER SubjectPublicKeyInfo of the public half, to check a certificate belongs to
    /// this key.
    pub fn public_key_spki(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        match &self.inner {
            Inner::Rsa { ring, .. } => {
                // SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING { RSAPublicKey } }
                let alg: &[u8] = &[
                    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
                    0x05, 0x00,
                ];
                let mut bits = vec![0u8];
                bits.extend_from_slice(ring.public().as_ref());
                let mut body = alg.to_vec();
                body.extend(der_tlv(0x03, &bits));
                der_tlv(0x30, &body)
            }
            // Encoding a valid point cannot fail; an empty SPKI would only make the
            // certificate check fail.
            Inner::P256(k) => p256::PublicKey::from(k.verifying_key())
                .to_public_key_der()
                .map(|d| d.into_vec())
                .unwrap_or_default(),
            Inner::P384(k) => p384::PublicKey::from(k.verifying_key())
                .to_public_key_der()
                .map(|d| d.into_vec())
                .unwrap_or_default(),
            Inner::P521(k) => {
                let vk = p521::ecdsa::VerifyingKey::from(k);
                p521::PublicKey::from_affine(*vk.as_affine())
                    .ok()
                    .and_then(|pk| pk.to_public_key_der().ok())
                    .map(|d| d.into_vec())
                    .unwrap_or_default()
            }
            Inner::Ed25519(k) => {
                let mut spki = vec![
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ];
                spki.extend_from_slice(k.public_key().as_ref());
                spki
            }
        }
    }

    /// The schemes this key can sign with, strongest-first preference for RFC 7427 (RSA:
    /// PKCS#1 SHA-256/384/512, then PSS; ECDSA: the curve's hash, DER; Ed25519).
    ///
    /// Last come the legacy encodings for peers without RFC 7427, which have no
    /// AlgorithmIdentifier of their own in RFC 7427 terms: RSA PKCS#1 SHA-1 (AUTH method 1,
    /// only when the SHA-1 signer could load the key) and ECDSA with fixed r || s (RFC 4754,
    /// methods 9-11).
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        use SignatureScheme::*;
        match &self.inner {
            Inner::Rsa { legacy, .. } => {
                let mut v = vec![
                    RsaPkcs1Sha256,
                    RsaPkcs1Sha384,
                    RsaPkcs1Sha512,
                    RsaPssSha256,
                    RsaPssSha384,
                    RsaPssSha512,
                ];
                if legacy.is_some() {
                    v.push(RsaPkcs1Sha1);
                }
                v
            }
            Inner::P256(_) => vec![EcdsaP256Sha256, EcdsaP256Sha256Fixed],
            Inner::P384(_) => vec![EcdsaP384Sha384, EcdsaP384Sha384Fixed],
            Inner::P521(_) => vec![EcdsaP521Sha512, EcdsaP521Sha512Fixed],
            Inner::Ed25519(_) => vec![Ed25519],
        }
    }

    /// Signs `data`. RSA PKCS#1 v1.5 SHA-1 is available for AUTH method 1 (peers without
    /// RFC 7427).
    pub fn sign(&self, scheme: SignatureScheme, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        use p256::ecdsa::signature::Signer;
        use SignatureScheme::*;
        let wrong = Err(KeyError::WrongScheme(scheme, self.kind()));
        match (&self.inner, scheme) {
            (Inner::Rsa { legacy, .. }, RsaPkcs1Sha1) => {
                let Some(key) = legacy else { return wrong };
                let hash = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
                key.sign_with_rng(
                    &mut rsa::rand_core::OsRng,
                    rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                    hash.as_ref(),
                )
                .map_err(|_| KeyError::SignFailed)
            }
            (Inner::Rsa { ring, .. }, _) if scheme.is_rsa() => {
                let padding: &'static dyn ring::signature::RsaEncoding = match scheme {
                    RsaPkcs1Sha256 => &ring::signature::RSA_PKCS1_SHA256,
                    RsaPkcs1Sha384 => &ring::signature::RSA_PKCS1_SHA384,
                    RsaPkcs1Sha512 => &ring::signature::RSA_PKCS1_SHA512,
                    RsaPssSha256 => &ring::signature::RSA_PSS_SHA256,
                    RsaPssSha384 => &ring::signature::RSA_PSS_SHA384,
                    _ => &ring::signature::RSA_PSS_SHA512,
                };
                let mut sig = vec![0u8; ring.public().modulus_len()];
                ring.sign(padding, &SystemRandom::new(), data, &mut sig)
                    .map_err(|_| KeyError::SignFailed)?;
                Ok(sig)
            }
            (Inner::P256(k), EcdsaP256Sha256 | EcdsaP256Sha256Fixed) => {
                let sig: p256::ecdsa::Signature =
                    k.try_sign(data).map_err(|_| KeyError::SignFailed)?;
                Ok(if scheme == EcdsaP256Sha256 {
                    sig.to_der().as_bytes().to_vec()
                } else {
                    sig.to_bytes().to_vec()
                })
            }
            (Inner::P384(k), EcdsaP384Sha384 | EcdsaP384Sha384Fixed) => {
                let sig: p384::ecdsa::Signature =
                    k.try_sign(data).map_err(|_| KeyError::SignFailed)?;
                Ok(if scheme == EcdsaP384Sha384 {
                    sig.to_der().as_bytes().to_vec()
                } else {
                    sig.to_bytes().to_vec()
                })
            }
            (Inner::P521(k), EcdsaP521Sha512 | EcdsaP521Sha512Fixed) => {
                let sig: p521::ecdsa::Signature =
                    k.try_sign(data).map_err(|_| KeyError::SignFailed)?;
                Ok(if scheme == EcdsaP521Sha512 {
                    sig.to_der().as_bytes().to_vec()
                } else {
                    sig.to_bytes().to_vec()
                })
            }
            (Inner::Ed25519(k), Ed25519) => Ok(k.sign(data).as_ref().to_vec()),
            _ => wrong,
        }
    }
}

fn p521_signing_key(sk: &p521::SecretKey) -> Result<p521::ecdsa::SigningKey, KeyError> {
    let bytes = Zeroizing::new(sk.to_bytes());
    p521::ecdsa::SigningKey::from_bytes(&bytes)
        .map_err(|_| KeyError::Malformed("P-521 scalar out of range".into()))
}

fn rsa_rejected(e: &ring::error::KeyRejected) -> KeyError {
    match e.to_string().as_str() {
        "TooSmall" => KeyError::Unsupported("RSA key shorter than 2048 bits".into()),
        "TooLarge" => KeyError::Unsupported("RSA key longer than ring supports".into()),
        d => KeyError::Malformed(format!("RSA key rejected: {d}")),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One DER TLV with a definite length.
pub(crate) fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len = n.to_be_bytes();
        let skip = len.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::verify;
    use SignatureScheme::*;

    const RSA_PKCS1: &[u8] = include_bytes!("../testdata/rsa2048.pkcs1.pem");
    const RSA_PKCS8: &[u8] = include_bytes!("../testdata/rsa2048.pkcs8.pem");
    const P256_SEC1: &[u8] = include_bytes!("../testdata/p256.sec1.pem");
    const P384_PKCS8: &[u8] = include_bytes!("../testdata/p384.pkcs8.pem");
    const P521_SEC1: &[u8] = include_bytes!("../testdata/p521.sec1.pem");
    const ED25519_PKCS8: &[u8] = include_bytes!("../testdata/ed25519.pkcs8.pem");
    const MESSAGE: &[u8] = include_bytes!("../testdata/message.txt");

    fn pem_body(pem: &[u8]) -> Vec<u8> {
        x509_parser::pem::Pem::iter_from_buffer(pem)
            .map(|p| p.unwrap())
            .find(|p| p.label.contains("PRIVATE KEY"))
            .unwrap()
            .contents
    }

    fn all_keys() -> Vec<PrivateKey> {
        [
            RSA_PKCS1,
            RSA_PKCS8,
            P256_SEC1,
            P384_PKCS8,
            P521_SEC1,
            ED25519_PKCS8,
        ]
        .iter()
        .map(|b| PrivateKey::from_pem_or_der(b).unwrap())
        .collect()
    }

    #[test]
    fn kinds_and_public_keys_match_openssl() {
        let rsa = PrivateKey::from_pem_or_der(RSA_PKCS1).unwrap();
        assert_eq!(rsa.kind(), KeyKind::Rsa { bits: 2048 });
        assert_eq!(
            rsa.public_key_spki(),
            include_bytes!("../testdata/rsa2048.spki.der")
        );
        let rsa8 = PrivateKey::from_pem_or_der(RSA_PKCS8).unwrap();
        assert_eq!(rsa8.public_key_spki(), rsa.public_key_spki());
        let p256 = PrivateKey::from_pem_or_der(P256_SEC1).unwrap();
        assert_eq!(p256.kind(), KeyKind::EcP256);
        assert_eq!(
            p256.public_key_spki(),
            include_bytes!("../testdata/p256.spki.der")
        );
        assert_eq!(
            PrivateKey::from_pem_or_der(P384_PKCS8).unwrap().kind(),
            KeyKind::EcP384
        );
        assert_eq!(
            PrivateKey::from_pem_or_der(P521_SEC1).unwrap().kind(),
            KeyKind::EcP521
        );
        let ed = PrivateKey::from_pem_or_der(ED25519_PKCS8).unwrap();
        assert_eq!(ed.kind(), KeyKind::Ed25519);
        assert_eq!(
            ed.public_key_spki(),
            include_bytes!("../testdata/ed25519.spki.der")
        );
    }

    #[test]
    fn der_forms_load_too() {
        for pem in [
            RSA_PKCS1,
            RSA_PKCS8,
            P256_SEC1,
            P384_PKCS8,
            P521_SEC1,
            ED25519_PKCS8,
        ] {
            let from_pem = PrivateKey::from_pem_or_der(pem).unwrap();
            let from_der = PrivateKey::from_pem_or_der(&pem_body(pem)).unwrap();
            assert_eq!(from_pem.kind(), from_der.kind());
            assert_eq!(from_pem.public_key_spki(), from_der.public_key_spki());
        }
    }

    #[test]
    fn sign_verify_round_trip_every_scheme() {
        let mut covered = std::collections::HashSet::new();
        for key in all_keys() {
            let spki = key.public_key_spki();
            for scheme in SignatureScheme::ALL {
                match key.sign(scheme, MESSAGE) {
                    Ok(sig) => {
                        assert!(key.schemes().contains(&scheme), "{scheme:?}");
                        verify(&spki, scheme, MESSAGE, &sig)
                            .unwrap_or_else(|e| panic!("{:?} {scheme:?}: {e}", key.kind()));
                        assert_eq!(
                            verify(&spki, scheme, b"tampered", &sig),
                            Err(crate::SigError::BadSignature)
                        );
                        covered.insert(scheme);
                    }
                    Err(KeyError::WrongScheme(s, k)) => {
                        assert_eq!((s, k), (scheme, key.kind()));
                        assert!(!key.schemes().contains(&scheme));
                    }
                    Err(e) => panic!("{scheme:?}: {e}"),
                }
            }
        }
        assert_eq!(covered.len(), SignatureScheme::ALL.len());
    }

    #[test]
    fn fixed_ecdsa_signatures_have_rfc4754_lengths() {
        let keys = all_keys();
        assert_eq!(
            keys[2].sign(EcdsaP256Sha256Fixed, MESSAGE).unwrap().len(),
            64
        );
        assert_eq!(
            keys[3].sign(EcdsaP384Sha384Fixed, MESSAGE).unwrap().len(),
            96
        );
        assert_eq!(
            keys[4].sign(EcdsaP521Sha512Fixed, MESSAGE).unwrap().len(),
            132
        );
        assert_eq!(keys[2].sign(EcdsaP256Sha256, MESSAGE).unwrap()[0], 0x30);
    }

    #[test]
    fn rsa_pkcs1_signatures_equal_openssl_bytes() {
        // PKCS#1 v1.5 is deterministic: our bytes must be OpenSSL's, for SHA-1 (the `rsa`
        // crate) and SHA-256 (ring).
        let key = PrivateKey::from_pem_or_der(RSA_PKCS8).unwrap();
        assert_eq!(
            key.sign(RsaPkcs1Sha1, MESSAGE).unwrap(),
            include_bytes!("../testdata/rsa2048-pkcs1-sha1.sig")
        );
        assert_eq!(
            key.sign(RsaPkcs1Sha256, MESSAGE).unwrap(),
            include_bytes!("../testdata/rsa2048-pkcs1-sha256.sig")
        );
    }

    #[test]
    fn scheme_preferences() {
        let keys = all_keys();
        assert_eq!(keys[0].schemes()[0], RsaPkcs1Sha256);
        assert_eq!(*keys[0].schemes().last().unwrap(), RsaPkcs1Sha1);
        assert_eq!(keys[2].schemes()[0], EcdsaP256Sha256);
        assert_eq!(keys[4].schemes()[0], EcdsaP521Sha512);
        assert_eq!(keys[5].schemes(), vec![Ed25519]);
        assert!(matches!(
            keys[2].sign(EcdsaP384Sha384, MESSAGE),
            Err(KeyError::WrongScheme(EcdsaP384Sha384, KeyKind::EcP256))
        ));
    }

    #[test]
    fn encrypted_keys_are_refused_clearly() {
        let enc = include_bytes!("../testdata/rsa2048.encrypted.pem");
        assert_eq!(
            PrivateKey::from_pem_or_der(enc).unwrap_err(),
            KeyError::Encrypted
        );
        assert_eq!(
            PrivateKey::from_pem_or_der(&pem_body(enc)).unwrap_err(),
            KeyError::Encrypted
        );
        assert_eq!(
            PrivateKey::from_pem_or_der(include_bytes!("../testdata/p256.sec1.encrypted.pem"))
                .unwrap_err(),
            KeyError::Encrypted
        );
    }

    #[test]
    fn not_found_and_malformed() {
        assert_eq!(
            PrivateKey::from_pem_or_der(b"").unwrap_err(),
            KeyError::NotFound
        );
        let cert_only = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            PrivateKey::from_pem_or_der(cert_only).unwrap_err(),
            KeyError::NotFound
        );
        assert!(matches!(
            PrivateKey::from_pem_or_der(b"\x30\x03\x02\x01\x00"),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn debug_redacts() {
        let key = PrivateKey::from_pem_or_der(P256_SEC1).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey(EcP256, <redacted>)");
    }

    #[test]
    fn mangled_keys_never_panic() {
        for pem in [RSA_PKCS1, P256_SEC1, P384_PKCS8, P521_SEC1, ED25519_PKCS8] {
            let der = pem_body(pem);
            for cut in (0..der.len()).step_by(7) {
                let _ = PrivateKey::from_pem_or_der(&der[..cut]);
            }
            for i in (0..der.len()).step_by(3) {
                let mut v = der.clone();
                v[i] ^= 0x41;
                if let Ok(k) = PrivateKey::from_pem_or_der(&v) {
                    let _ = k.sign(k.schemes()[0], MESSAGE);
                }
            }
        }
    }
}
