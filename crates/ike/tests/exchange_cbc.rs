//! Whole exchanges over an IKE SA with AES-CBC + HMAC (RFC 7296 §3.14) and CHILD_SAs
//! negotiated with integrity transforms: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA rekeys of the
//! CHILD_SA and of the IKE SA, fragmentation, and strongSwan-style proposal lists, between two
//! sans-IO endpoints (the harness of `ironsec_ike::testkit`). ESP SAs themselves are not built
//! here: the keys are checked to mirror each other and to have the suite's length.

use std::time::Duration;

use ironsec_ike::crypto::IkeAlgorithms;
use ironsec_ike::crypto::{CbcCipher, Integ, Suite};
use ironsec_ike::testkit::*;
use ironsec_ike::{CloseReason, EndpointConfig, Event};

fn ike_algorithms(ev: &[Event]) -> Vec<IkeAlgorithms> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeSaUp { algorithms, .. } | Event::IkeSaRekeyed { algorithms, .. } => {
                Some(*algorithms)
            }
            _ => None,
        })
        .collect()
}

fn children_up(ev: &[Event]) -> Vec<&ironsec_ike::ChildSaInfo> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaUp { child, .. } => Some(child),
            _ => None,
        })
        .collect()
}

fn rekeyed(ev: &[Event]) -> Vec<&ironsec_ike::ChildSaInfo> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaRekeyed { new, .. } => Some(new),
            _ => None,
        })
        .collect()
}

fn count(ev: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    ev.iter().filter(|e| f(e)).count()
}

/// The two ends agree on the CHILD_SA: mirrored SPIs and keys of the suite's length.
fn assert_child_pair(a: &ironsec_ike::ChildSaInfo, b: &ironsec_ike::ChildSaInfo, suite: Suite) {
    assert_eq!(a.algorithms.encr, suite);
    assert_eq!(a.algorithms, b.algorithms);
    assert_eq!((a.spi_out, a.spi_in), (b.spi_in, b.spi_out));
    assert_eq!((&a.key_out, &a.key_in), (&b.key_in, &b.key_out));
    assert_ne!(a.key_in, a.key_out);
    // RFC 7296 §2.17: each direction's encryption key, then its integrity key.
    assert_eq!(a.key_out.bytes().len(), suite.keymat_len());
}

/// IKE_SA_INIT + IKE_AUTH, a CHILD_SA rekey from each side, an IKE SA rekey, and a CHILD_SA
/// rekey over the new IKE SA, all with `ike`/`esp`.
fn full_life(ike: &str, esp: &str, ike_suite: Suite, esp_suite: Suite) {
    let (a, b) = pair_configs(ike, esp);
    let mut net = Net::new(a, b);
    net.initiate_a();
    for ev in [&net.events_a, &net.events_b] {
        let algs = ike_algorithms(ev);
        assert_eq!(algs.len(), 1, "{ev:?}");
        assert_eq!(algs[0].encr, ike_suite);
        assert_eq!(algs[0].to_string(), ike);
    }
    let (ca, cb) = (children_up(&net.events_a), children_up(&net.events_b));
    assert_eq!((ca.len(), cb.len()), (1, 1), "{:?}", net.events_b);
    assert_child_pair(ca[0], cb[0], esp_suite);
    let first = ca[0].clone();

    // CHILD_SA rekeys (CREATE_CHILD_SA with REKEY_SA), from either side.
    for from_a in [true, false] {
        let (ep, s) = if from_a {
            let s = net.a.ike_sas()[0].clone();
            (&mut net.a, s)
        } else {
            let s = net.b.ike_sas()[0].clone();
            (&mut net.b, s)
        };
        ep.rekey_child(net.now, s.id, s.children[0].spi_in).unwrap();
        net.pump();
    }
    let (ra, rb) = (rekeyed(&net.events_a), rekeyed(&net.events_b));
    assert_eq!((ra.len(), rb.len()), (2, 2), "{:?}", net.events_a);
    for (x, y) in ra.iter().zip(&rb) {
        assert_child_pair(x, y, esp_suite);
        assert_ne!(x.key_out, first.key_out, "fresh keys");
    }

    // IKE SA rekey: the new SA derives SK_* for the same CBC suite and carries exchanges.
    let id = net.a.ike_sas()[0].id;
    net.a.rekey_ike(net.now, id).unwrap();
    net.pump();
    for ev in [&net.events_a, &net.events_b] {
        let algs = ike_algorithms(ev);
        assert_eq!(algs.len(), 2, "up and rekeyed: {ev:?}");
        assert_eq!(algs[1].encr, ike_suite);
        assert_eq!(
            count(ev, |e| matches!(
                e,
                Event::IkeSaDown {
                    reason: CloseReason::Rekeyed,
                    ..
                }
            )),
            1
        );
    }
    let s = net.a.ike_sas();
    assert_eq!((s.len(), net.b.ike_sas().len()), (1, 1));
    net.a
        .rekey_child(net.now, s[0].id, s[0].children[0].spi_in)
        .unwrap();
    net.pump();
    assert_eq!(rekeyed(&net.events_b).len(), 3, "{:?}", net.events_b);
    // Nothing failed the integrity check or was dropped as malformed along the way.
    for st in [net.a.stats(), net.b.stats()] {
        assert_eq!((st.integrity_failed, st.malformed), (0, 0), "{st:?}");
    }
}

#[test]
fn aes256_sha256_ike_and_esp_through_rekeys() {
    let suite = Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128);
    full_life(
        "aes256-sha256-prfsha256-ecp256",
        "aes256-sha256",
        suite,
        suite,
    );
}

#[test]
fn aes128_sha1_ike_and_esp_through_rekeys() {
    let suite = Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96);
    full_life("aes128-sha1-prfsha1-ecp256", "aes128-sha1", suite, suite);
}

#[test]
fn every_cbc_suite_and_prf_sets_up() {
    for suite in Suite::ALL.into_iter().filter(|s| !s.is_aead()) {
        for prf in ["prfsha1", "prfsha256", "prfsha384", "prfsha512"] {
            let ike = format!("{suite}-{prf}-x25519");
            let (a, b) = pair_configs(&ike, &suite.to_string());
            let mut net = Net::new(a, b);
            net.initiate_a();
            let algs = ike_algorithms(&net.events_b);
            assert_eq!(algs.len(), 1, "{ike}: {:?}", net.events_b);
            assert_eq!(algs[0].to_string(), ike);
            let (ca, cb) = (children_up(&net.events_a), children_up(&net.events_b));
            assert_child_pair(ca[0], cb[0], suite);
        }
    }
}

#[test]
fn strongswan_style_proposal_lists_meet_a_specific_peer() {
    // The initiator offers strongSwan's default (non-AEAD proposal first, then AEAD); the
    // responder takes what it has configured.
    for (responder_ike, responder_esp, ike_suite, esp_suite) in [
        (
            "aes256-sha256-ecp256",
            "aes256-sha256",
            Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128),
            Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128),
        ),
        (
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            Suite::Aes256Gcm16,
            Suite::Aes256Gcm16,
        ),
        (
            "aes128gcm16-aes192-sha512-x25519",
            "aes128gcm16-aes128-sha1",
            Suite::Cbc(CbcCipher::Aes192, Integ::HmacSha512_256),
            Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96),
        ),
    ] {
        let (a, _) = pair_configs("default", "default");
        let (_, b) = pair_configs(responder_ike, responder_esp);
        let mut net = Net::new(a, b);
        net.initiate_a();
        let algs = ike_algorithms(&net.events_a);
        assert_eq!(algs.len(), 1, "{responder_ike}: {:?}", net.events_a);
        assert_eq!(algs[0].encr, ike_suite, "{responder_ike}");
        let (ca, cb) = (children_up(&net.events_a), children_up(&net.events_b));
        assert_eq!(ca.len(), 1, "{responder_esp}: {:?}", net.events_a);
        assert_child_pair(ca[0], cb[0], esp_suite);
    }
}

#[test]
fn cbc_messages_are_fragmented_and_reassembled() {
    // Many selectors make IKE_AUTH large; a small fragment size forces SKF fragments, each
    // padded to the AES block and carrying its own HMAC.
    let many: Vec<String> = (0..40).map(|i| format!("10.1.{i}.0/24")).collect();
    let remote: Vec<String> = (0..40).map(|i| format!("10.2.{i}.0/24")).collect();
    let (ike, esp) = ("aes256-sha512-ecp256", "aes128-sha256");
    let a = peer(
        "to-b",
        "gw-a.example",
        "gw-b.example",
        &many.join(","),
        &remote.join(","),
        ike,
        esp,
    );
    let b = peer(
        "to-a",
        "gw-b.example",
        "gw-a.example",
        &remote.join(","),
        &many.join(","),
        ike,
        esp,
    );
    let cfg = EndpointConfig {
        fragment_size: 576,
        ..Default::default()
    };
    for lose in [None, Some(3usize)] {
        let mut net = Net::with_config(a.clone(), b.clone(), cfg.clone(), cfg.clone());
        let mut seen = 0usize;
        net.filter = Box::new(move |_, _, t| {
            seen += 1;
            assert!(t.payload.len() <= 576, "{} bytes", t.payload.len());
            if Some(seen) == lose {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        net.initiate_a();
        net.run_for(Duration::from_secs(10));
        assert!(net.sent[0] >= 4, "IKE_AUTH in fragments: {:?}", net.sent);
        let (ca, cb) = (children_up(&net.events_a), children_up(&net.events_b));
        assert_eq!(ca.len(), 1, "{:?}", net.events_a);
        assert_child_pair(
            ca[0],
            cb[0],
            Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha256_128),
        );
        assert_eq!(ca[0].local_ts.len(), 40);
    }
}
