//! Test-only PKIs built with rcgen at test time (and the committed RSA fixture key).

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType,
    SerialNumber, SignatureAlgorithm,
};

use crate::{Certificate, Crl};

/// 2025-06-01 00:00:00 UTC: "now" in the tests.
pub const NOW: i64 = 1_748_736_000;

pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Ca {
    pub fn parsed(&self) -> Certificate {
        Certificate::from_der(self.cert.der()).unwrap()
    }
}

pub fn key(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).unwrap()
}

pub fn rsa_key() -> KeyPair {
    let pem = include_str!("../testdata/rsa2048.pkcs8.pem");
    KeyPair::from_pem(pem).unwrap()
}

pub fn params(cn: &str, ca: IsCa, from_year: i32, to_year: i32) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "CH");
    p.distinguished_name
        .push(DnType::OrganizationName, "ironsec");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = rcgen::date_time_ymd(from_year, 1, 1);
    p.not_after = rcgen::date_time_ymd(to_year, 1, 1);
    p.key_usages = match ca {
        IsCa::Ca(_) => vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        _ => vec![KeyUsagePurpose::DigitalSignature],
    };
    p.is_ca = ca;
    p
}

pub fn ca_params(cn: &str) -> CertificateParams {
    params(cn, IsCa::Ca(BasicConstraints::Unconstrained), 2020, 2040)
}

pub fn root(cn: &str, alg: &'static SignatureAlgorithm) -> Ca {
    let key = key(alg);
    Ca {
        cert: ca_params(cn).self_signed(&key).unwrap(),
        key,
    }
}

pub fn issue(p: CertificateParams, key: &KeyPair, by: &Ca) -> Certificate {
    let c = p.signed_by(key, &by.cert, &by.key).unwrap();
    Certificate::from_der(c.der()).unwrap()
}

pub fn sub_ca(p: CertificateParams, alg: &'static SignatureAlgorithm, by: &Ca) -> Ca {
    let key = key(alg);
    Ca {
        cert: p.signed_by(&key, &by.cert, &by.key).unwrap(),
        key,
    }
}

pub fn end_params(cn: &str, serial: u64) -> CertificateParams {
    let mut p = params(cn, IsCa::ExplicitNoCa, 2024, 2027);
    p.serial_number = Some(SerialNumber::from(serial));
    p.subject_alt_names = vec![
        SanType::DnsName(format!("{cn}.example").try_into().unwrap()),
        SanType::Rfc822Name("admin@ironsec.example".try_into().unwrap()),
        SanType::IpAddress("192.0.2.1".parse().unwrap()),
        SanType::IpAddress("2001:db8::1".parse().unwrap()),
    ];
    p
}

pub fn crl(by: &Ca, serials: &[u64]) -> Crl {
    crl_signed(&by.cert, &by.key, serials)
}

/// A CRL signed with `key` under `cert`'s name (rcgen insists the named cert allows cRLSign).
pub fn crl_signed(cert: &rcgen::Certificate, key: &KeyPair, serials: &[u64]) -> Crl {
    let params = CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2025, 5, 1),
        next_update: rcgen::date_time_ymd(2025, 5, 8),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: rcgen::date_time_ymd(2025, 4, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(cert, key).unwrap();
    Crl::from_der(crl.der()).unwrap()
}
