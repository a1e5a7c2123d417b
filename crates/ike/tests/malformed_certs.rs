//! Malformed certificates and AUTH payloads in IKE_AUTH (issue 23): each row takes a valid
//! initiator IKE_AUTH payload chain (IDi, CERT end entity, CERT intermediate, AUTH; P-256,
//! RFC 7427), breaks one thing, and runs the responder's certificate check on it
//! (`testkit::certauth`, the code the `ike_auth_certs` fuzz target drives). Every row must be
//! refused, never panic, and say why in a reason that is safe to log (no control characters).
//! The full exchange answers such a refusal with AUTHENTICATION_FAILED (tests/certs.rs).

use std::time::{SystemTime, UNIX_EPOCH};

use ironsec_ike::pki::{Certificate, Crl, PrivateKey, TrustStore};
use ironsec_ike::testkit::certauth::{initiator_payloads, CertAuth};
use ironsec_ike::wire::{encode_chain, parse_chain, AuthMethod, IdType, Payload};
use ironsec_ike::{Credential, Identity, SendCert};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

struct Fixture {
    auth: CertAuth,
    valid: Vec<Payload>,
    int_der: Vec<u8>,
    other_ee_der: Vec<u8>,
    evil_cn: Vec<u8>,
    now: i64,
}

fn ca(
    cn: &str,
    key: &KeyPair,
    issuer: Option<(&rcgen::Certificate, &KeyPair)>,
) -> rcgen::Certificate {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    match issuer {
        Some((c, k)) => p.signed_by(key, c, k).unwrap(),
        None => p.self_signed(key).unwrap(),
    }
}

fn ee(cn: &str, key: &KeyPair, issuer: (&rcgen::Certificate, &KeyPair)) -> rcgen::Certificate {
    let mut p = CertificateParams::new(vec![cn.replace(['\n', '\x1b'], "")]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.signed_by(key, issuer.0, issuer.1).unwrap()
}

fn fixture() -> Fixture {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let (root_key, int_key, ee_key) = (
        KeyPair::generate_for(alg).unwrap(),
        KeyPair::generate_for(alg).unwrap(),
        KeyPair::generate_for(alg).unwrap(),
    );
    let root = ca("Root CA", &root_key, None);
    let int = ca("Intermediate CA", &int_key, Some((&root, &root_key)));
    let gw = ee("gw.example", &ee_key, (&int, &int_key));
    // A validly issued certificate whose subject carries a newline and an escape sequence.
    let evil = ee("evil\n\x1b[2Jx.example", &ee_key, (&int, &int_key));
    let other_key = KeyPair::generate_for(alg).unwrap();
    let other_root = ca("Other Root CA", &other_key, None);
    let other_ee = ee("gw.example", &ee_key, (&other_root, &other_key));
    let parse = |c: &rcgen::Certificate| Certificate::from_der(c.der()).unwrap();
    let cred = Credential::new(
        vec![parse(&gw), parse(&int)],
        PrivateKey::from_pem_or_der(ee_key.serialize_pem().as_bytes()).unwrap(),
        SendCert::Always,
    );
    let data = initiator_payloads(cred, Identity::parse("gw.example"), true);
    let valid = parse_chain(data[0], &data[1..]).unwrap();
    let auth = CertAuth::new(TrustStore::new(vec![parse(&root)], Vec::<Crl>::new()), None);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(
        auth.check(now, &data),
        Some(Ok(())),
        "the unbroken chain passes"
    );
    Fixture {
        auth,
        valid,
        int_der: int.der().to_vec(),
        other_ee_der: other_ee.der().to_vec(),
        evil_cn: evil.der().to_vec(),
        now,
    }
}

fn encode(payloads: &[Payload]) -> Vec<u8> {
    let (first, chain) = encode_chain(payloads);
    [vec![first], chain].concat()
}

/// The valid chain with `edit` applied; the check's reason, which must contain `want`.
fn row(f: &Fixture, what: &str, want: &str, edit: impl FnOnce(&mut Vec<Payload>)) {
    let mut p = f.valid.clone();
    edit(&mut p);
    let verdict = f.auth.check(f.now, &encode(&p));
    let Some(Err(why)) = verdict else {
        panic!("{what}: not refused: {verdict:?}");
    };
    assert!(
        !why.chars().any(char::is_control),
        "{what}: control character in {why:?}"
    );
    eprintln!("{what}: {why}");
    assert!(
        why.to_lowercase().contains(&want.to_lowercase()),
        "{what}: reason {why:?} lacks {want:?}"
    );
}

fn first_cert(p: &mut [Payload]) -> &mut Vec<u8> {
    p.iter_mut()
        .find_map(|x| match x {
            Payload::Cert(c) => Some(&mut c.data),
            _ => None,
        })
        .unwrap()
}

fn auth_data(p: &mut [Payload]) -> &mut ironsec_ike::wire::AuthPayload {
    p.iter_mut()
        .find_map(|x| match x {
            Payload::Auth(a) => Some(a),
            _ => None,
        })
        .unwrap()
}

#[test]
fn malformed_certificates_and_auth_payloads_are_refused_with_a_reason() {
    let f = fixture();
    row(&f, "truncated end-entity DER", "certificate", |p| {
        let c = first_cert(p);
        c.truncate(c.len() / 2);
    });
    row(&f, "random bytes as CERT", "certificate", |p| {
        *first_cert(p) = (0..300u32).map(|i| (i * 97 + 13) as u8).collect();
    });
    row(&f, "empty CERT", "certificate", |p| first_cert(p).clear());
    row(&f, "trailing bytes after the DER", "certificate", |p| {
        first_cert(p).extend_from_slice(&[0; 7]);
    });
    row(&f, "one flipped bit in the signature", "", |p| {
        let c = first_cert(p);
        let n = c.len();
        c[n - 3] ^= 0x01;
    });
    row(
        &f,
        "Hash and URL encoding instead of X.509",
        "certificate",
        |p| {
            for x in p.iter_mut() {
                if let Payload::Cert(c) = x {
                    c.encoding = 12;
                }
            }
        },
    );
    row(&f, "no CERT at all", "certificate", |p| {
        p.retain(|x| !matches!(x, Payload::Cert(_)));
    });
    row(&f, "intermediate only", "", |p| {
        let i = p
            .iter()
            .position(|x| matches!(x, Payload::Cert(_)))
            .unwrap();
        p.remove(i);
    });
    row(
        &f,
        "a certificate from another PKI",
        "not a trusted CA",
        |p| {
            *first_cert(p) = f.other_ee_der.clone();
        },
    );
    row(&f, "a subject with a newline and ESC", "", |p| {
        *first_cert(p) = f.evil_cn.clone();
    });
    row(
        &f,
        "RFC 7427 AUTH with a truncated AlgorithmIdentifier",
        "",
        |p| {
            let a = auth_data(p);
            a.data.truncate(5);
        },
    );
    row(&f, "RFC 7427 AUTH with length byte past the end", "", |p| {
        let a = auth_data(p);
        a.data[0] = 0xff;
    });
    row(&f, "RFC 7427 AUTH with an unknown algorithm OID", "", |p| {
        let a = auth_data(p);
        // Inside the AlgorithmIdentifier: corrupt the OID's last arc.
        let len = a.data[0] as usize;
        a.data[len - 1] ^= 0x55;
    });
    // An AUTH payload without data does not even parse: the responder answers INVALID_SYNTAX
    // before any certificate is looked at.
    let mut p = f.valid.clone();
    auth_data(&mut p).data.clear();
    assert_eq!(f.auth.check(f.now, &encode(&p)), None);
    row(&f, "ECDSA P-384 method with a P-256 key", "", |p| {
        let a = auth_data(p);
        let len = a.data[0] as usize;
        a.data.drain(..1 + len);
        a.method = AuthMethod::EcdsaSha384P384;
    });
    row(&f, "RSA method with an ECDSA key", "", |p| {
        let a = auth_data(p);
        let len = a.data[0] as usize;
        a.data.drain(..1 + len);
        a.method = AuthMethod::RsaSig;
    });
    row(
        &f,
        "an IDi the certificate does not carry",
        "does not match",
        |p| {
            for x in p.iter_mut() {
                if let Payload::IdI(id) = x {
                    id.data = b"mallory.example".to_vec();
                }
            }
        },
    );
    row(&f, "a DN IDi that is not DER", "", |p| {
        for x in p.iter_mut() {
            if let Payload::IdI(id) = x {
                id.id_type = IdType::DerAsn1Dn;
                id.data = vec![0x30, 0x82, 0xff, 0xff, 0x01];
            }
        }
    });
}

/// Extra copies of the intermediate are harmless (strongSwan accepts them too): the chain is
/// still built and checked once.
#[test]
fn duplicate_intermediates_are_accepted() {
    let f = fixture();
    let mut p = f.valid.clone();
    let int = p
        .iter()
        .position(|x| matches!(x, Payload::Cert(c) if c.data == f.int_der))
        .unwrap();
    let copy = p[int].clone();
    for _ in 0..40 {
        p.insert(int, copy.clone());
    }
    assert_eq!(f.auth.check(f.now, &encode(&p)), Some(Ok(())));
}
