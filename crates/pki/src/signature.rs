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

impl SignatureScheme {
    /// The DER AlgorithmIdentifier (with parameters where the scheme has them: NULL for RSA
    /// PKCS#1, the RSASSA-PSS-params for PSS, none for ECDSA and Ed25519) as RFC 7427 puts it in
    /// AUTH data. None for the fixed-encoding ECDSA schemes, which RFC 7427 does not name.
    pub fn algorithm_identifier(self) -> Option<&'static [u8]> {
        todo!()
    }

    /// The scheme an AlgorithmIdentifier (DER, as received in RFC 7427 AUTH data or a
    /// certificate's signatureAlgorithm) names. ECDSA ones give the DER-encoding variants.
    /// Accepts RSA PKCS#1 with absent or NULL parameters, and PSS only with MGF1 on the same
    /// hash and salt length = hash length (what ring can verify).
    pub fn from_algorithm_identifier(der: &[u8]) -> Option<SignatureScheme> {
        todo!()
    }

    /// The RFC 7427 hash this scheme uses.
    pub fn hash(self) -> HashAlgorithm {
        todo!()
    }
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
    todo!()
}
