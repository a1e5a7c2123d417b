//! One X.509 certificate, parsed once, with what IKE needs from it.

use std::net::IpAddr;
use std::sync::Arc;

use x509_parser::der_parser::asn1_rs::{Any, FromDer};
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

use crate::dn::DistinguishedName;
use crate::signature::{verify, SignatureScheme};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("no certificate found (expected PEM CERTIFICATE or DER)")]
    NotFound,
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

/// Extensions validation acts on, or that may be critical without changing what IKE should
/// accept: keyUsage, subjectAltName, basicConstraints, extendedKeyUsage (IPsec has no EKU rule:
/// RFC 4945 §5.1.3.12 says not to refuse over it), subjectKeyIdentifier and
/// authorityKeyIdentifier (identifiers only). Name constraints, policy constraints and the
/// like are not enforced, so a certificate marking them critical is refused in a chain.
const UNDERSTOOD_EXTENSIONS: &[&str] = &[
    "2.5.29.15", // keyUsage
    "2.5.29.17", // subjectAltName
    "2.5.29.19", // basicConstraints
    "2.5.29.37", // extendedKeyUsage
    "2.5.29.14", // subjectKeyIdentifier
    "2.5.29.35", // authorityKeyIdentifier
];

/// A parsed certificate. Cheap to clone (the DER and parsed fields are shared).
#[derive(Clone, Debug)]
pub struct Certificate {
    inner: Arc<Inner>,
}

/// Everything IKE asks of a certificate, extracted once at parse time so the accessors are
/// plain field reads and the DER is not walked again.
#[derive(Debug)]
struct Inner {
    der: Vec<u8>,
    subject: DistinguishedName,
    issuer: DistinguishedName,
    serial: Vec<u8>,
    not_before: i64,
    not_after: i64,
    san_dns: Vec<String>,
    san_email: Vec<String>,
    san_ip: Vec<IpAddr>,
    spki: Vec<u8>,
    tbs: Vec<u8>,
    /// DER AlgorithmIdentifier of the signature (outer signatureAlgorithm).
    sig_alg: Vec<u8>,
    signature: Vec<u8>,
    ca: bool,
    /// Whether basicConstraints is there at all: a legacy (v1) self-signed root has none and
    /// is still accepted as a trust anchor.
    has_basic_constraints: bool,
    /// OIDs (dotted) of critical extensions this crate does not act on (RFC 5280 §4.2: a
    /// certificate with one must be refused when it is used in a chain).
    unsupported_critical: Vec<String>,
    path_len: Option<u32>,
    /// keyUsage bits as x509-parser numbers them; None when the extension is absent.
    key_usage: Option<x509_parser::extensions::KeyUsage>,
}

/// Serial numbers as the API hands them out: big-endian, no leading zero bytes (a DER INTEGER
/// adds one before a high bit), at least one byte.
pub(crate) fn normalize_serial(raw: &[u8]) -> Vec<u8> {
    let skip = raw.iter().take_while(|&&b| b == 0).count();
    if skip == raw.len() {
        return vec![0];
    }
    raw[skip..].to_vec()
}

/// The DER AlgorithmIdentifier that follows the signed part (`tbs`, a subslice of `der`) in
/// a certificate or CRL.
pub(crate) fn sig_alg_after(der: &[u8], tbs: &[u8]) -> Result<Vec<u8>, CertError> {
    let start = (tbs.as_ptr() as usize)
        .checked_sub(der.as_ptr() as usize)
        .ok_or_else(|| CertError::Malformed("signed part outside the DER".into()))?;
    let rest = der
        .get(start + tbs.len()..)
        .ok_or_else(|| CertError::Malformed("signed part outside the DER".into()))?;
    let (rem, _) = Any::from_der(rest)
        .map_err(|_| CertError::Malformed("no signatureAlgorithm after the signed part".into()))?;
    Ok(rest[..rest.len() - rem.len()].to_vec())
}

pub(crate) fn name(n: &X509Name<'_>) -> DistinguishedName {
    DistinguishedName::from_x509(n)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds (proleptic Gregorian, as X.509 times are).
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Decodes the PEM blocks with one of `labels`; None if `bytes` is not PEM at all.
pub(crate) fn pem_blocks(bytes: &[u8], labels: &[&str]) -> Option<Result<Vec<Vec<u8>>, String>> {
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return None;
    }
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        match block {
            Ok(p) if labels.contains(&p.label.as_str()) => out.push(p.contents),
            Ok(_) => {}
            Err(e) => return Some(Err(format!("PEM: {e:?}"))),
        }
    }
    Some(Ok(out))
}

impl Certificate {
    /// One certificate from DER.
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertError> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::Malformed(
                "trailing data after the certificate".into(),
            ));
        }
        let der = &der[..der.len() - rest.len()];
        let tbs = &cert.tbs_certificate;
        // RFC 5280 §4.1.1.2: the signed and the outer algorithm must be the same, or a
        // verifier could be made to check the signature under another algorithm.
        if tbs.signature != cert.signature_algorithm {
            return Err(CertError::Malformed(
                "signature algorithm differs inside and outside the signed part".into(),
            ));
        }
        let ext_err = |e: x509_parser::error::X509Error| CertError::Malformed(e.to_string());
        let (mut san_dns, mut san_email, mut san_ip) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(san) = cert.subject_alternative_name().map_err(ext_err)? {
            for gn in &san.value.general_names {
                match gn {
                    GeneralName::DNSName(d) => san_dns.push((*d).to_string()),
                    GeneralName::RFC822Name(e) => san_email.push((*e).to_string()),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => san_ip.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                        16 => {
                            san_ip.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()))
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        let bc = cert.basic_constraints().map_err(ext_err)?;
        let unsupported_critical = cert
            .extensions()
            .iter()
            .filter(|e| e.critical)
            .map(|e| e.oid.to_id_string())
            .filter(|oid| !UNDERSTOOD_EXTENSIONS.contains(&oid.as_str()))
            .collect();
        let key_usage = cert.key_usage().map_err(ext_err)?.map(|k| *k.value);
        let inner = Inner {
            subject: name(&tbs.subject),
            issuer: name(&tbs.issuer),
            serial: normalize_serial(tbs.raw_serial()),
            not_before: tbs.validity.not_before.timestamp(),
            not_after: tbs.validity.not_after.timestamp(),
            san_dns,
            san_email,
            san_ip,
            spki: tbs.subject_pki.raw.to_vec(),
            tbs: tbs.as_ref().to_vec(),
            sig_alg: sig_alg_after(der, tbs.as_ref())?,
            signature: cert.signature_value.data.to_vec(),
            ca: bc.as_ref().is_some_and(|b| b.value.ca),
            has_basic_constraints: bc.is_some(),
            unsupported_critical,
            path_len: bc.and_then(|b| b.value.path_len_constraint),
            key_usage,
            der: der.to_vec(),
        };
        Ok(Certificate {
            inner: Arc::new(inner),
        })
    }

    /// Every certificate in a file's bytes: all PEM CERTIFICATE blocks in order, or one DER.
    pub fn all_from_pem_or_der(bytes: &[u8]) -> Result<Vec<Certificate>, CertError> {
        match pem_blocks(bytes, &["CERTIFICATE", "X509 CERTIFICATE"]) {
            None if bytes.is_empty() => Err(CertError::NotFound),
            None => Ok(vec![Certificate::from_der(bytes)?]),
            Some(Err(e)) => Err(CertError::Malformed(e)),
            Some(Ok(blocks)) if blocks.is_empty() => Err(CertError::NotFound),
            Some(Ok(blocks)) => blocks.iter().map(|b| Certificate::from_der(b)).collect(),
        }
    }

    pub fn der(&self) -> &[u8] {
        &self.inner.der
    }
    pub fn subject(&self) -> &DistinguishedName {
        &self.inner.subject
    }
    pub fn issuer(&self) -> &DistinguishedName {
        &self.inner.issuer
    }
    /// Serial number, big-endian bytes without leading zeros.
    pub fn serial(&self) -> &[u8] {
        &self.inner.serial
    }
    /// The serial as colon-separated hex, as logs and `openssl x509 -serial` show it.
    pub fn serial_hex(&self) -> String {
        self.inner
            .serial
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
    /// notBefore / notAfter, seconds since the Unix epoch.
    pub fn not_before(&self) -> i64 {
        self.inner.not_before
    }
    pub fn not_after(&self) -> i64 {
        self.inner.not_after
    }
    /// subjectAltName entries.
    pub fn san_dns(&self) -> &[String] {
        &self.inner.san_dns
    }
    pub fn san_email(&self) -> &[String] {
        &self.inner.san_email
    }
    pub fn san_ip(&self) -> &[IpAddr] {
        &self.inner.san_ip
    }
    /// DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.inner.spki
    }
    /// SHA-1 of the DER SubjectPublicKeyInfo: what CERTREQ lists for a trust anchor
    /// (RFC 7296 §3.7; strongSwan's KEYID_PUBKEY_INFO_SHA1).
    pub fn spki_sha1(&self) -> [u8; 20] {
        let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.inner.spki);
        let mut out = [0u8; 20];
        out.copy_from_slice(d.as_ref());
        out
    }
    /// basicConstraints cA, and its pathLenConstraint.
    pub fn is_ca(&self) -> bool {
        self.inner.ca
    }
    pub fn path_len(&self) -> Option<u32> {
        self.inner.path_len
    }
    /// Critical extensions (dotted OIDs) that validation does not understand: a chain through
    /// this certificate is refused.
    pub fn unsupported_critical_extensions(&self) -> &[String] {
        &self.inner.unsupported_critical
    }

    pub(crate) fn has_basic_constraints(&self) -> bool {
        self.inner.has_basic_constraints
    }
    /// keyUsage allows keyCertSign (true when the extension is absent).
    pub fn may_sign_certs(&self) -> bool {
        self.inner
            .key_usage
            .as_ref()
            .map_or(true, |k| k.key_cert_sign())
    }
    /// keyUsage allows cRLSign (true when absent).
    pub fn may_sign_crls(&self) -> bool {
        self.inner.key_usage.as_ref().map_or(true, |k| k.crl_sign())
    }
    /// keyUsage allows digitalSignature (true when absent): an end-entity key signing AUTH.
    pub fn may_sign_data(&self) -> bool {
        self.inner
            .key_usage
            .as_ref()
            .map_or(true, |k| k.digital_signature())
    }
    /// Self-issued and self-signed (the signature verifies with its own key).
    pub fn is_self_signed(&self) -> bool {
        self.inner.subject == self.inner.issuer && self.signed_by(self).is_ok()
    }
    /// Days from `now` (Unix seconds) to notAfter, rounded down; negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.inner.not_after - now).div_euclid(86_400)
    }
    /// The certificate's own signature, made by `issuer`'s key.
    pub fn signed_by(&self, issuer: &Certificate) -> Result<(), crate::SigError> {
        let scheme = SignatureScheme::from_algorithm_identifier(&self.inner.sig_alg)
            .ok_or(crate::SigError::Unsupported)?;
        verify(
            issuer.spki(),
            scheme,
            &self.inner.tbs,
            &self.inner.signature,
        )
    }
    /// SHA-256 fingerprint of the DER, for logs and `ironsecctl certs`.
    pub fn fingerprint(&self) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.inner.der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::*;
    use crate::Crl;
    use rcgen::PKCS_ECDSA_P256_SHA256 as P256;

    #[test]
    fn fields() {
        let root = root("root", &P256);
        let k = key(&P256);
        let end = issue(end_params("gw-a", 0x80), &k, &root);
        assert_eq!(end.subject().to_string(), "C=CH, O=ironsec, CN=gw-a");
        assert_eq!(end.issuer(), root.parsed().subject());
        assert_eq!(end.subject().der().unwrap()[0], 0x30);
        // 0x80 is encoded 00 80 in DER; the API drops the zero.
        assert_eq!(end.serial(), &[0x80]);
        assert_eq!(end.serial_hex(), "80");
        assert_eq!(end.san_dns(), ["gw-a.example"]);
        assert_eq!(end.san_email(), ["admin@ironsec.example"]);
        assert_eq!(
            end.san_ip(),
            [
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert_eq!(end.not_before(), 1_704_067_200); // 2024-01-01
        assert_eq!(end.not_after(), 1_798_761_600); // 2027-01-01
        assert_eq!(end.days_left(NOW), 579);
        assert_eq!(end.days_left(end.not_after() - 1), 0);
        assert_eq!(end.days_left(end.not_after() + 1), -1);
        assert_eq!(end.spki(), k.public_key_der());
        assert!(!end.is_ca() && end.may_sign_data() && !end.may_sign_certs());
        assert!(!end.is_self_signed());
        assert!(end.signed_by(&root.parsed()).is_ok());
        let r = root.parsed();
        assert!(r.is_ca() && r.may_sign_certs() && r.may_sign_crls() && !r.may_sign_data());
        assert!(r.is_self_signed());
        assert_eq!(r.path_len(), None);
        assert_eq!(
            r.fingerprint().as_ref(),
            ring::digest::digest(&ring::digest::SHA256, root.cert.der()).as_ref()
        );
    }

    #[test]
    fn spki_sha1_is_over_the_whole_subject_public_key_info() {
        // strongSwan's KEYID_PUBKEY_INFO_SHA1 (pkcs1_encoder.c build_info_sha1,
        // openssl_util.c): SHA-1 of the DER SubjectPublicKeyInfo, algorithm included. The
        // known answer is `sha1sum testdata/rsa2048.spki.der`.
        let rsa = rcgen::KeyPair::from_pem(include_str!("../testdata/rsa2048.pkcs8.pem")).unwrap();
        let ca = Ca {
            cert: ca_params("rsa").self_signed(&rsa).unwrap(),
            key: rsa,
        };
        let got: String = ca
            .parsed()
            .spki_sha1()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, "dde9047ac74611bdb7fced6f3d067e346dcef2f5");
    }

    #[test]
    fn format_time_known_values() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(NOW), "2025-06-01 00:00:00 UTC");
        assert_eq!(format_time(951_782_400 + 3_661), "2000-02-29 01:01:01 UTC");
        assert_eq!(format_time(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(format_time(253_402_300_799), "9999-12-31 23:59:59 UTC");
    }

    #[test]
    fn pem_bundles_and_der() {
        let a = root("a", &P256);
        let b = root("b", &P256);
        let bundle = format!("junk before\n{}\n{}trailing", a.cert.pem(), b.cert.pem());
        let certs = Certificate::all_from_pem_or_der(bundle.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[1].subject().to_string(), "C=CH, O=ironsec, CN=b");
        let der = Certificate::all_from_pem_or_der(a.cert.der()).unwrap();
        assert_eq!(der[0].der(), a.cert.der().as_ref());
        assert_eq!(
            Certificate::all_from_pem_or_der(b"").unwrap_err(),
            CertError::NotFound
        );
        let key_only = include_bytes!("../testdata/p384.pkcs8.pem");
        assert_eq!(
            Certificate::all_from_pem_or_der(key_only).unwrap_err(),
            CertError::NotFound
        );
        assert!(matches!(
            Certificate::all_from_pem_or_der(
                b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"
            ),
            Err(CertError::Malformed(_))
        ));
        let mut trailing = a.cert.der().to_vec();
        trailing.push(0);
        assert!(matches!(
            Certificate::from_der(&trailing),
            Err(CertError::Malformed(_))
        ));
    }

    #[test]
    fn crl_pem_and_fields() {
        let ca = root("ca", &P256);
        let crl = crl(&ca, &[5, 0x1234]);
        assert_eq!(crl.this_update(), 1_746_057_600); // 2025-05-01
        assert_eq!(crl.next_update(), Some(1_746_662_400));
        assert!(crl.revokes(&[5]) && !crl.revokes(&[6]));
        let pem = format!(
            "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
            base64(&crl_der(&ca))
        );
        let crls = Crl::all_from_pem_or_der(pem.as_bytes()).unwrap();
        assert_eq!(crls.len(), 1);
        assert_eq!(crls[0].issuer().to_string(), "C=CH, O=ironsec, CN=ca");
        assert_eq!(Crl::all_from_pem_or_der(&crl_der(&ca)).unwrap().len(), 1);
        assert_eq!(
            Crl::all_from_pem_or_der(ca.cert.pem().as_bytes()).unwrap_err(),
            CertError::NotFound
        );
    }

    fn crl_der(ca: &Ca) -> Vec<u8> {
        rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2025, 5, 1),
            next_update: rcgen::date_time_ymd(2025, 5, 8),
            crl_number: rcgen::SerialNumber::from(2u64),
            issuing_distribution_point: None,
            revoked_certs: vec![],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&ca.cert, &ca.key)
        .unwrap()
        .der()
        .to_vec()
    }

    fn base64(data: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in data.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Truncated and bit-flipped certificates and CRLs: errors or (for flips in the
    /// signature or a value) a parsed object, never a panic.
    #[test]
    fn mangled_der_never_panics() {
        let ca = root("ca", &P256);
        let k = key(&P256);
        let end = issue(end_params("gw-a", 77), &k, &ca);
        let crl = crl_der(&ca);
        for der in [end.der().to_vec(), crl] {
            for cut in 0..der.len() {
                assert!(Certificate::from_der(&der[..cut]).is_err());
                let _ = Crl::all_from_pem_or_der(&der[..cut]);
            }
            for i in 0..der.len() {
                for bit in [0, 3, 7] {
                    let mut v = der.clone();
                    v[i] ^= 1 << bit;
                    if let Ok(c) = Certificate::from_der(&v) {
                        let _ = (c.signed_by(&ca.parsed()), c.is_self_signed(), c.to_owned());
                        let _ = c.subject().to_string();
                    }
                    if let Ok(crls) = Crl::all_from_pem_or_der(&v) {
                        let _ = crls[0].signed_by(&ca.parsed());
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = Certificate::from_der(&bytes);
            let _ = Certificate::all_from_pem_or_der(&bytes);
            let _ = Crl::all_from_pem_or_der(&bytes);
        }
    }
}
