//! Signature schemes IKEv2 uses and their verification/creation against a public key given as a
//! DER SubjectPublicKeyInfo.
//!
//! - RFC 7427 (AUTH method 14): the AUTH data starts with a length byte and the DER
//!   AlgorithmIdentifier of the scheme; ECDSA signatures are DER `ECDSA-Sig-Value`.
//! - RFC 7296 method 1 (RSA): PKCS#1 v1.5 with SHA-1.
//! - RFC 4754 methods 9, 10, 11: ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512 with the
//!   signature as fixed-length r || s.
//! - Certificates and CRLs are signed with the same schemes (DER ECDSA), named by the
//!   AlgorithmIdentifier in the certificate.
//!
//! With RFC 7427 and in certificates, `ecdsa-with-SHA256` names only the hash: the curve is the
//! key's. So the DER ECDSA schemes verify with a key on any of P-256/P-384/P-521 (a P-384 CA
//! signing with SHA-256 is what `openssl req` does by default); the names say which curve the
//! hash is meant for, and [`crate::PrivateKey::sign`] only signs with the matching pair. The
//! RFC 4754 fixed-encoding schemes tie curve and hash, and are checked strictly.

use ring::digest;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// A signature scheme: key type, hash, padding and encoding of the signature value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    RsaPkcs1Sha1,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    /// RSASSA-PSS, MGF1 with the same hash, salt length = hash length.
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    /// ECDSA with a DER `ECDSA-Sig-Value` (certificates, RFC 7427).
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    EcdsaP521Sha512,
    /// ECDSA with a fixed-length r || s (RFC 4754, AUTH methods 9, 10, 11).
    EcdsaP256Sha256Fixed,
    EcdsaP384Sha384Fixed,
    EcdsaP521Sha512Fixed,
    Ed25519,
}

/// RFC 7427 §4 hash algorithm numbers (IANA "IKEv2 Hash Algorithms") for the
/// SIGNATURE_HASH_ALGORITHMS notify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    Sha1 = 1,
    Sha256 = 2,
    Sha384 = 3,
    Sha512 = 4,
    /// "Identity" (RFC 8420): the data is signed as is (Ed25519).
    Identity = 5,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigError {
    #[error("signature does not verify")]
    BadSignature,
    #[error("public key is not usable with {0:?}")]
    KeyMismatch(SignatureScheme),
    #[error("unsupported or malformed public key: {0}")]
    BadKey(&'static str),
    #[error("unsupported signature algorithm")]
    Unsupported,
}

// The RFC 7427 Appendix A encodings (A.1 RSA PKCS#1 v1.5, A.3 ECDSA, A.4.3 RSASSA-PSS), and the
// RFC 8410 Ed25519 identifier RFC 8420 uses with RFC 7427.
const AID_RSA_SHA1: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
];
const AID_RSA_SHA256: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
const AID_RSA_SHA384: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
const AID_RSA_SHA512: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
];

/// RSASSA-PSS AlgorithmIdentifier: hashAlgorithm `hash_oid` (NULL params), maskGenAlgorithm
/// mgf1 with the same hash, saltLength `salt`, trailerField absent (default 1).
macro_rules! pss_aid {
    ($h:expr, $salt:expr) => {
        [
            0x30, 0x41, // AlgorithmIdentifier
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, // id-RSASSA-PSS
            0x30, 0x34, // RSASSA-PSS-params
            0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, $h,
            0x05, 0x00, // [0] hashAlgorithm
            0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
            0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, $h, 0x05,
            0x00, // [1] maskGenAlgorithm mgf1(hash)
            0xa2, 0x03, 0x02, 0x01, $salt, // [2] saltLength
        ]
    };
}
const AID_PSS_SHA256: &[u8] = &pss_aid!(0x01, 0x20);
const AID_PSS_SHA384: &[u8] = &pss_aid!(0x02, 0x30);
const AID_PSS_SHA512: &[u8] = &pss_aid!(0x03, 0x40);

const AID_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const AID_ECDSA_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
const AID_ECDSA_SHA512: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
];
const AID_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

// Object identifiers, dotted, as x509-parser prints them.
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_RSA_SHA1: &str = "1.2.840.113549.1.1.5";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_MGF1: &str = "1.2.840.113549.1.1.8";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_SHA384: &str = "2.16.840.1.101.3.4.2.2";
const OID_SHA512: &str = "2.16.840.1.101.3.4.2.3";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

impl SignatureScheme {
    /// Every scheme, for tests and for callers listing what they support.
    pub const ALL: [SignatureScheme; 14] = [
        SignatureScheme::RsaPkcs1Sha1,
        SignatureScheme::RsaPkcs1Sha256,
        SignatureScheme::RsaPkcs1Sha384,
        SignatureScheme::RsaPkcs1Sha512,
        SignatureScheme::RsaPssSha256,
        SignatureScheme::RsaPssSha384,
        SignatureScheme::RsaPssSha512,
        SignatureScheme::EcdsaP256Sha256,
        SignatureScheme::EcdsaP384Sha384,
        SignatureScheme::EcdsaP521Sha512,
        SignatureScheme::EcdsaP256Sha256Fixed,
        SignatureScheme::EcdsaP384Sha384Fixed,
        SignatureScheme::EcdsaP521Sha512Fixed,
        SignatureScheme::Ed25519,
    ];

    /// The DER AlgorithmIdentifier (with parameters where the scheme has them: NULL for RSA
    /// PKCS#1, the RSASSA-PSS-params for PSS, none for ECDSA and Ed25519) as RFC 7427 puts it in
    /// AUTH data. None for the fixed-encoding ECDSA schemes, which RFC 7427 does not name.
    pub fn algorithm_identifier(self) -> Option<&'static [u8]> {
        use SignatureScheme::*;
        Some(match self {
            RsaPkcs1Sha1 => AID_RSA_SHA1,
            RsaPkcs1Sha256 => AID_RSA_SHA256,
            RsaPkcs1Sha384 => AID_RSA_SHA384,
            RsaPkcs1Sha512 => AID_RSA_SHA512,
            RsaPssSha256 => AID_PSS_SHA256,
            RsaPssSha384 => AID_PSS_SHA384,
            RsaPssSha512 => AID_PSS_SHA512,
            EcdsaP256Sha256 => AID_ECDSA_SHA256,
            EcdsaP384Sha384 => AID_ECDSA_SHA384,
            EcdsaP521Sha512 => AID_ECDSA_SHA512,
            EcdsaP256Sha256Fixed | EcdsaP384Sha384Fixed | EcdsaP521Sha512Fixed => return None,
            Ed25519 => AID_ED25519,
        })
    }

    /// The scheme an AlgorithmIdentifier (DER, as received in RFC 7427 AUTH data or a
    /// certificate's signatureAlgorithm) names. ECDSA ones give the DER-encoding variants.
    /// Accepts RSA PKCS#1 with absent or NULL parameters, and PSS only with MGF1 on the same
    /// hash and salt length = hash length (what ring can verify).
    pub fn from_algorithm_identifier(der: &[u8]) -> Option<SignatureScheme> {
        use SignatureScheme::*;
        let (rest, aid) = AlgorithmIdentifier::from_der(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let params = aid.parameters.as_ref();
        // RFC 3279 wants NULL for RSA, RFC 5758 none for ECDSA; both are seen in the wild
        // for RSA, and a stray NULL after an ECDSA OID changes nothing about the signature.
        let absent_or_null = match params {
            None => true,
            Some(p) => p.tag() == x509_parser::der_parser::asn1_rs::Tag::Null && p.data.is_empty(),
        };
        let oid = aid.algorithm.to_id_string();
        let scheme = match oid.as_str() {
            OID_RSA_SHA1 => RsaPkcs1Sha1,
            OID_RSA_SHA256 => RsaPkcs1Sha256,
            OID_RSA_SHA384 => RsaPkcs1Sha384,
            OID_RSA_SHA512 => RsaPkcs1Sha512,
            OID_ECDSA_SHA256 => EcdsaP256Sha256,
            OID_ECDSA_SHA384 => EcdsaP384Sha384,
            OID_ECDSA_SHA512 => EcdsaP521Sha512,
            // RFC 8410 §3: parameters MUST be absent.
            OID_ED25519 => return params.is_none().then_some(Ed25519),
            OID_RSA_PSS => return pss_scheme(params?),
            _ => return None,
        };
        absent_or_null.then_some(scheme)
    }

    /// The RFC 7427 hash this scheme uses.
    pub fn hash(self) -> HashAlgorithm {
        use SignatureScheme::*;
        match self {
            RsaPkcs1Sha1 => HashAlgorithm::Sha1,
            RsaPkcs1Sha256 | RsaPssSha256 | EcdsaP256Sha256 | EcdsaP256Sha256Fixed => {
                HashAlgorithm::Sha256
            }
            RsaPkcs1Sha384 | RsaPssSha384 | EcdsaP384Sha384 | EcdsaP384Sha384Fixed => {
                HashAlgorithm::Sha384
            }
            RsaPkcs1Sha512 | RsaPssSha512 | EcdsaP521Sha512 | EcdsaP521Sha512Fixed => {
                HashAlgorithm::Sha512
            }
            Ed25519 => HashAlgorithm::Identity,
        }
    }

    /// RSASSA-PSS with any hash.
    pub fn is_rsa_pss(self) -> bool {
        use SignatureScheme::*;
        matches!(self, RsaPssSha256 | RsaPssSha384 | RsaPssSha512)
    }

    pub(crate) fn is_rsa(self) -> bool {
        use SignatureScheme::*;
        matches!(
            self,
            RsaPkcs1Sha1
                | RsaPkcs1Sha256
                | RsaPkcs1Sha384
                | RsaPkcs1Sha512
                | RsaPssSha256
                | RsaPssSha384
                | RsaPssSha512
        )
    }
}

/// The PSS scheme RSASSA-PSS-params describe, if ring can verify it: SHA-2 hash, MGF1 with
/// the same hash, salt as long as the hash, trailer 1.
fn pss_scheme(params: &x509_parser::der_parser::asn1_rs::Any<'_>) -> Option<SignatureScheme> {
    use x509_parser::signature_algorithm::RsaSsaPssParams;
    let p = RsaSsaPssParams::try_from(params).ok()?;
    let hash_params_ok = |aid: Option<&AlgorithmIdentifier<'_>>| match aid {
        None => true,
        Some(a) => match &a.parameters {
            None => true,
            Some(n) => n.tag() == x509_parser::der_parser::asn1_rs::Tag::Null && n.data.is_empty(),
        },
    };
    if !hash_params_ok(p.hash_algorithm()) {
        return None;
    }
    let (scheme, salt) = match p.hash_algorithm_oid().to_id_string().as_str() {
        OID_SHA256 => (SignatureScheme::RsaPssSha256, 32),
        OID_SHA384 => (SignatureScheme::RsaPssSha384, 48),
        OID_SHA512 => (SignatureScheme::RsaPssSha512, 64),
        _ => return None,
    };
    let mgf = p.mask_gen_algorithm().ok()?;
    if mgf.mgf.to_id_string() != OID_MGF1 || mgf.hash != *p.hash_algorithm_oid() {
        return None;
    }
    (p.salt_length() == salt && p.trailer_field() == 1).then_some(scheme)
}

/// A peer's public key, decoded and checked (EC points on the curve, RSA size).
pub(crate) enum PublicKey {
    /// `der` is the PKCS#1 RSAPublicKey ring takes.
    Rsa {
        der: Vec<u8>,
    },
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519([u8; 32]),
}

/// Bits of a big-endian unsigned integer.
fn bit_len(n: &[u8]) -> usize {
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    (n.len() - 1) * 8 + (8 - n[0].leading_zeros() as usize)
}

impl PublicKey {
    pub(crate) fn from_spki(spki: &[u8]) -> Result<PublicKey, SigError> {
        let (rest, info) = SubjectPublicKeyInfo::from_der(spki)
            .map_err(|_| SigError::BadKey("malformed SubjectPublicKeyInfo"))?;
        if !rest.is_empty() {
            return Err(SigError::BadKey("trailing data after SubjectPublicKeyInfo"));
        }
        let key = &info.subject_public_key.data;
        match info.algorithm.algorithm.to_id_string().as_str() {
            OID_RSA_ENCRYPTION => {
                let parsed = info
                    .parsed()
                    .map_err(|_| SigError::BadKey("malformed RSA public key"))?;
                let x509_parser::public_key::PublicKey::RSA(rsa) = parsed else {
                    return Err(SigError::BadKey("malformed RSA public key"));
                };
                let bits = bit_len(rsa.modulus);
                if bits < 2048 {
                    return Err(SigError::BadKey("RSA key shorter than 2048 bits"));
                }
                if bits > 8192 {
                    return Err(SigError::BadKey("RSA key longer than 8192 bits"));
                }
                Ok(PublicKey::Rsa { der: key.to_vec() })
            }
            OID_EC_PUBLIC_KEY => {
                let curve = info
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .ok_or(SigError::BadKey("EC key without a named curve"))?;
                let bad = |_| SigError::BadKey("EC public key is not a point on its curve");
                match curve.as_str() {
                    OID_P256 => Ok(PublicKey::P256(
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(bad)?,
                    )),
                    OID_P384 => Ok(PublicKey::P384(
                        p384::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(bad)?,
                    )),
                    OID_P521 => Ok(PublicKey::P521(
                        p521::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(bad)?,
                    )),
                    _ => Err(SigError::BadKey("EC curve other than P-256, P-384, P-521")),
                }
            }
            OID_ED25519 => {
                let k: [u8; 32] = key
                    .as_ref()
                    .try_into()
                    .map_err(|_| SigError::BadKey("Ed25519 key is not 32 bytes"))?;
                Ok(PublicKey::Ed25519(k))
            }
            _ => Err(SigError::BadKey(
                "key algorithm other than RSA, EC, Ed25519",
            )),
        }
    }
}

/// ring's digest of `data` for an ECDSA hash.
fn ecdsa_prehash(scheme: SignatureScheme, data: &[u8]) -> digest::Digest {
    let alg = match scheme.hash() {
        HashAlgorithm::Sha384 => &digest::SHA384,
        HashAlgorithm::Sha512 => &digest::SHA512,
        _ => &digest::SHA256,
    };
    digest::digest(alg, data)
}

/// Verifies `signature` over `data` with the public key `spki` (a DER SubjectPublicKeyInfo).
/// Checks that the key type fits the scheme (an RSA key with an ECDSA scheme is
/// `KeyMismatch`); RSA keys below 2048 bits are refused as `BadKey`.
pub fn verify(
    spki: &[u8],
    scheme: SignatureScheme,
    data: &[u8],
    signature: &[u8],
) -> Result<(), SigError> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use SignatureScheme::*;
    let key = PublicKey::from_spki(spki)?;
    let mismatch = Err(SigError::KeyMismatch(scheme));
    match key {
        PublicKey::Rsa { der } => {
            if !scheme.is_rsa() {
                return mismatch;
            }
            let alg: &dyn ring::signature::VerificationAlgorithm = match scheme {
                RsaPkcs1Sha1 => &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                RsaPkcs1Sha256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                RsaPkcs1Sha384 => &ring::signature::RSA_PKCS1_2048_8192_SHA384,
                RsaPkcs1Sha512 => &ring::signature::RSA_PKCS1_2048_8192_SHA512,
                RsaPssSha256 => &ring::signature::RSA_PSS_2048_8192_SHA256,
                RsaPssSha384 => &ring::signature::RSA_PSS_2048_8192_SHA384,
                _ => &ring::signature::RSA_PSS_2048_8192_SHA512,
            };
            ring::signature::UnparsedPublicKey::new(alg, &der)
                .verify(data, signature)
                .map_err(|_| SigError::BadSignature)
        }
        PublicKey::Ed25519(k) => {
            if scheme != Ed25519 {
                return mismatch;
            }
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &k)
                .verify(data, signature)
                .map_err(|_| SigError::BadSignature)
        }
        PublicKey::P256(vk) => {
            let sig = match scheme {
                EcdsaP256Sha256 | EcdsaP384Sha384 => p256::ecdsa::Signature::from_der(signature),
                EcdsaP256Sha256Fixed => p256::ecdsa::Signature::from_slice(signature),
                _ => return mismatch,
            }
            .map_err(|_| SigError::BadSignature)?;
            vk.verify_prehash(ecdsa_prehash(scheme, data).as_ref(), &sig)
                .map_err(|_| SigError::BadSignature)
        }
        PublicKey::P384(vk) => {
            let sig = match scheme {
                EcdsaP256Sha256 | EcdsaP384Sha384 => p384::ecdsa::Signature::from_der(signature),
                EcdsaP384Sha384Fixed => p384::ecdsa::Signature::from_slice(signature),
                _ => return mismatch,
            }
            .map_err(|_| SigError::BadSignature)?;
            vk.verify_prehash(ecdsa_prehash(scheme, data).as_ref(), &sig)
                .map_err(|_| SigError::BadSignature)
        }
        PublicKey::P521(vk) => {
            // SHA-256 is shorter than half of P-521's field: the ECDSA code refuses it.
            let sig = match scheme {
                EcdsaP384Sha384 | EcdsaP521Sha512 => p521::ecdsa::Signature::from_der(signature),
                EcdsaP521Sha512Fixed => p521::ecdsa::Signature::from_slice(signature),
                _ => return mismatch,
            }
            .map_err(|_| SigError::BadSignature)?;
            vk.verify_prehash(ecdsa_prehash(scheme, data).as_ref(), &sig)
                .map_err(|_| SigError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SignatureScheme::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const MESSAGE: &[u8] = include_bytes!("../testdata/message.txt");

    /// RFC 7427 Appendix A, typed in from its hex dumps (A.1.1-A.1.4, A.3.2-A.3.4, A.4.3),
    /// plus RFC 8410's Ed25519 identifier (RFC 8420 §2). PSS with SHA-384/512 is A.4.3 with the
    /// hash OID's last arc and the salt length changed.
    #[test]
    fn algorithm_identifiers_match_rfc7427_appendix_a() {
        let cases = [
            (RsaPkcs1Sha1, "300d 0609 2a86 4886 f70d 0101 0505 00"),
            (RsaPkcs1Sha256, "300d 0609 2a86 4886 f70d 0101 0b05 00"),
            (RsaPkcs1Sha384, "300d 0609 2a86 4886 f70d 0101 0c05 00"),
            (RsaPkcs1Sha512, "300d 0609 2a86 4886 f70d 0101 0d05 00"),
            (EcdsaP256Sha256, "300a 0608 2a86 48ce 3d04 0302"),
            (EcdsaP384Sha384, "300a 0608 2a86 48ce 3d04 0303"),
            (EcdsaP521Sha512, "300a 0608 2a86 48ce 3d04 0304"),
            (
                RsaPssSha256,
                "3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0201
                 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0201
                 0500 a203 0201 20",
            ),
            (
                RsaPssSha384,
                "3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0202
                 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0202
                 0500 a203 0201 30",
            ),
            (
                RsaPssSha512,
                "3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0203
                 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0203
                 0500 a203 0201 40",
            ),
            (Ed25519, "3005 0603 2b65 70"),
        ];
        for (scheme, expected) in cases {
            let expected = hex(expected);
            assert_eq!(
                scheme.algorithm_identifier(),
                Some(&expected[..]),
                "{scheme:?}"
            );
            assert_eq!(
                SignatureScheme::from_algorithm_identifier(&expected),
                Some(scheme)
            );
        }
        for fixed in [
            EcdsaP256Sha256Fixed,
            EcdsaP384Sha384Fixed,
            EcdsaP521Sha512Fixed,
        ] {
            assert_eq!(fixed.algorithm_identifier(), None);
        }
    }

    #[test]
    fn pss_identifier_agrees_with_rustls_pki_types_encoding() {
        // Independent source: webpki's alg-rsa-pss-sha256.der (AlgorithmIdentifier contents).
        let body = hex(
            "0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0201 0500 a11c
             301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0201 0500 a203 0201 20",
        );
        let mut full = vec![0x30, body.len() as u8];
        full.extend(body);
        assert_eq!(RsaPssSha256.algorithm_identifier().unwrap(), &full[..]);
    }

    #[test]
    fn from_algorithm_identifier_variants() {
        // RSA PKCS#1 without the NULL.
        let no_null = hex("300b 0609 2a86 4886 f70d 0101 0b");
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&no_null),
            Some(RsaPkcs1Sha256)
        );
        // Some other parameter than NULL.
        let junk = hex("300e 0609 2a86 4886 f70d 0101 0b02 0100");
        assert_eq!(SignatureScheme::from_algorithm_identifier(&junk), None);
        // Ed25519 with a NULL is against RFC 8410.
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&hex("3007 0603 2b65 7005 00")),
            None
        );
        // Trailing data.
        let mut trailing = AID_ECDSA_SHA256.to_vec();
        trailing.push(0);
        assert_eq!(SignatureScheme::from_algorithm_identifier(&trailing), None);
        // PSS with salt 20 (not the hash length): ring cannot verify it.
        let mut salt20 = AID_PSS_SHA256.to_vec();
        *salt20.last_mut().unwrap() = 20;
        assert_eq!(SignatureScheme::from_algorithm_identifier(&salt20), None);
        // PSS with MGF1 on another hash.
        let mut mgf_other = AID_PSS_SHA256.to_vec();
        assert_eq!(mgf_other[0x3b], 0x01);
        mgf_other[0x3b] = 0x03;
        assert_eq!(SignatureScheme::from_algorithm_identifier(&mgf_other), None);
        // PSS without parameters (defaults SHA-1): unsupported.
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&hex("300b 0609 2a86 4886 f70d 0101 0a")),
            None
        );
        // ecdsa-with-SHA1, DSA and unknown OIDs.
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&hex("3009 0607 2a86 48ce 3d04 01")),
            None
        );
        assert_eq!(SignatureScheme::from_algorithm_identifier(&[]), None);
    }

    #[test]
    fn hashes() {
        assert_eq!(RsaPkcs1Sha1.hash(), HashAlgorithm::Sha1);
        assert_eq!(RsaPssSha384.hash(), HashAlgorithm::Sha384);
        assert_eq!(EcdsaP521Sha512Fixed.hash(), HashAlgorithm::Sha512);
        assert_eq!(Ed25519.hash(), HashAlgorithm::Identity);
        assert_eq!(HashAlgorithm::Sha256 as u16, 2);
    }

    #[test]
    fn verifies_openssl_signatures() {
        let rsa = include_bytes!("../testdata/rsa2048.spki.der");
        verify(
            rsa,
            RsaPkcs1Sha256,
            MESSAGE,
            include_bytes!("../testdata/rsa2048-pkcs1-sha256.sig"),
        )
        .unwrap();
        verify(
            rsa,
            RsaPkcs1Sha1,
            MESSAGE,
            include_bytes!("../testdata/rsa2048-pkcs1-sha1.sig"),
        )
        .unwrap();
        verify(
            rsa,
            RsaPssSha256,
            MESSAGE,
            include_bytes!("../testdata/rsa2048-pss-sha256.sig"),
        )
        .unwrap();
        verify(
            include_bytes!("../testdata/p256.spki.der"),
            EcdsaP256Sha256,
            MESSAGE,
            include_bytes!("../testdata/p256-sha256.der.sig"),
        )
        .unwrap();
        verify(
            include_bytes!("../testdata/ed25519.spki.der"),
            Ed25519,
            MESSAGE,
            include_bytes!("../testdata/ed25519.sig"),
        )
        .unwrap();
    }

    #[test]
    fn wrong_message_scheme_or_key() {
        let rsa = include_bytes!("../testdata/rsa2048.spki.der");
        let sig = include_bytes!("../testdata/rsa2048-pkcs1-sha256.sig");
        assert_eq!(
            verify(rsa, RsaPkcs1Sha256, b"other", sig),
            Err(SigError::BadSignature)
        );
        assert_eq!(
            verify(rsa, RsaPkcs1Sha384, MESSAGE, sig),
            Err(SigError::BadSignature)
        );
        assert_eq!(
            verify(rsa, RsaPssSha256, MESSAGE, sig),
            Err(SigError::BadSignature)
        );
        assert_eq!(
            verify(rsa, EcdsaP256Sha256, MESSAGE, sig),
            Err(SigError::KeyMismatch(EcdsaP256Sha256))
        );
        let p256 = include_bytes!("../testdata/p256.spki.der");
        let ecsig = include_bytes!("../testdata/p256-sha256.der.sig");
        assert_eq!(
            verify(p256, RsaPkcs1Sha256, MESSAGE, ecsig),
            Err(SigError::KeyMismatch(RsaPkcs1Sha256))
        );
        assert_eq!(
            verify(p256, EcdsaP384Sha384Fixed, MESSAGE, ecsig),
            Err(SigError::KeyMismatch(EcdsaP384Sha384Fixed))
        );
        // The DER signature is not a fixed r || s.
        assert_eq!(
            verify(p256, EcdsaP256Sha256Fixed, MESSAGE, ecsig),
            Err(SigError::BadSignature)
        );
        let ed = include_bytes!("../testdata/ed25519.spki.der");
        assert_eq!(
            verify(ed, EcdsaP256Sha256, MESSAGE, ecsig),
            Err(SigError::KeyMismatch(EcdsaP256Sha256))
        );
    }

    #[test]
    fn short_rsa_keys_are_refused() {
        assert!(matches!(
            verify(
                include_bytes!("../testdata/rsa1024.spki.der"),
                RsaPkcs1Sha256,
                MESSAGE,
                include_bytes!("../testdata/rsa1024-pkcs1-sha256.sig"),
            ),
            Err(SigError::BadKey(_))
        ));
    }

    #[test]
    fn point_not_on_curve_is_a_bad_key() {
        let mut spki = include_bytes!("../testdata/p256.spki.der").to_vec();
        let last = spki.len() - 1;
        spki[last] ^= 1;
        assert!(matches!(
            verify(&spki, EcdsaP256Sha256, MESSAGE, &[0; 64]),
            Err(SigError::BadKey(_))
        ));
    }

    #[test]
    fn malformed_inputs_never_panic() {
        let aids: Vec<&[u8]> = SignatureScheme::ALL
            .iter()
            .filter_map(|s| s.algorithm_identifier())
            .collect();
        let spkis: [&[u8]; 3] = [
            include_bytes!("../testdata/rsa2048.spki.der"),
            include_bytes!("../testdata/p256.spki.der"),
            include_bytes!("../testdata/ed25519.spki.der"),
        ];
        for input in aids.iter().chain(spkis.iter()) {
            for cut in 0..input.len() {
                let _ = SignatureScheme::from_algorithm_identifier(&input[..cut]);
                let _ = verify(&input[..cut], Ed25519, MESSAGE, &[]);
            }
            for i in 0..input.len() {
                for bit in 0..8 {
                    let mut v = input.to_vec();
                    v[i] ^= 1 << bit;
                    let _ = SignatureScheme::from_algorithm_identifier(&v);
                    for scheme in SignatureScheme::ALL {
                        let _ = verify(&v, scheme, MESSAGE, &[0x30, 0x06, 2, 1, 1, 2, 1, 1]);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_algorithm_identifiers(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = SignatureScheme::from_algorithm_identifier(&bytes);
        }

        #[test]
        fn arbitrary_signatures(sig in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..140)) {
            for scheme in SignatureScheme::ALL {
                proptest::prop_assert!(verify(include_bytes!("../testdata/p256.spki.der"), scheme, MESSAGE, &sig).is_err());
            }
        }
    }
}
