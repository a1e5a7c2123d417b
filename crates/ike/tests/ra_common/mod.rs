//! What the remote-access engine tests share (`remote_access*.rs`): the proposals, a
//! gateway certificate under a fresh root, the two-endpoint network with a wall clock, and
//! readers of the events and leases. Each test binary uses part of it.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ironsec_ike::pki::{Certificate, PrivateKey, TrustStore};
use ironsec_ike::pool::LeaseState;
use ironsec_ike::testkit::*;
use ironsec_ike::wire::NotifyType;
use ironsec_ike::{Credential, Event, PeerConfig, PeerTrust, SendCert};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

pub const IKE: &str = "aes128gcm16-prfsha256-x25519";
pub const ESP: &str = "aes128gcm16";

/// An address of the type the caller wants (Ipv4Addr, IpAddr, ...).
pub fn ip<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

/// A root CA and the gateway's certificate (`gw-b.example`) issued by it.
pub fn gateway_pki() -> (Credential, Arc<PeerTrust>) {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root_key = KeyPair::generate_for(alg).unwrap();
    let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
    rp.distinguished_name.push(DnType::CommonName, "RA Root CA");
    rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    rp.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    rp.not_before = rcgen::date_time_ymd(2020, 1, 1);
    rp.not_after = rcgen::date_time_ymd(2060, 1, 1);
    let root = rp.self_signed(&root_key).unwrap();
    let key = KeyPair::generate_for(alg).unwrap();
    let mut gp = CertificateParams::new(vec!["gw-b.example".to_string()]).unwrap();
    gp.distinguished_name
        .push(DnType::CommonName, "gw-b.example");
    gp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    gp.not_before = rcgen::date_time_ymd(2021, 1, 1);
    gp.not_after = rcgen::date_time_ymd(2055, 1, 1);
    let cert = gp.signed_by(&key, &root, &root_key).unwrap();
    let cred = Credential::new(
        vec![Certificate::from_der(cert.der()).unwrap()],
        PrivateKey::from_pem_or_der(key.serialize_pem().as_bytes()).unwrap(),
        SendCert::IfAsked,
    );
    let trust = Arc::new(PeerTrust {
        store: Arc::new(TrustStore::new(
            vec![Certificate::from_der(root.der()).unwrap()],
            Vec::new(),
        )),
        pinned: None,
    });
    (cred, trust)
}

pub fn net(a: PeerConfig, b: PeerConfig) -> Net {
    let mut n = Net::new(a, b);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    n.a.set_wall_clock(n.now, t);
    n.b.set_wall_clock(n.now, t);
    n
}

pub fn failures(events: &[Event]) -> Vec<(NotifyType, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failure { notify, detail, .. } => Some((*notify, detail.clone())),
            _ => None,
        })
        .collect()
}

pub fn up(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::IkeSaUp { .. }))
        .count()
}

pub fn leases(n: &Net) -> Vec<(IpAddr, String, bool)> {
    n.b.leases("to-a")
        .into_iter()
        .map(|l| {
            let active = matches!(l.state, LeaseState::Active { .. });
            (l.address, l.owner, active)
        })
        .collect()
}
