//! Non-AEAD proposals (RFC 7296 §3.3): AES-CBC with integrity transforms
//! beside the AEADs, strongSwan's keywords and PRF derivation, `default`,
//! the split of mixed proposals when offering, the consistent choice from a
//! peer's proposals, and the legacy list.

use ironsec_ike::crypto::{
    accept_esp_response, accept_ike_response, choose_esp, choose_ike, offer_esp, offer_ike,
    CbcCipher, DhGroup, Encr, EspAlgorithms, EspProposal, IkeAlgorithms, IkeProposal, Integ,
    LegacyLevel, OfferedProposal, OfferedTransform, Prf, Suite, TRANSFORM_DH, TRANSFORM_ENCR,
    TRANSFORM_ESN, TRANSFORM_INTEG, TRANSFORM_PRF,
};

fn ike(s: &str) -> IkeProposal {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn esp(s: &str) -> EspProposal {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn t(kind: u8, id: u16, key_length: Option<u16>) -> OfferedTransform {
    OfferedTransform {
        kind,
        id,
        key_length,
        has_unknown_attributes: false,
    }
}

const AES256CBC: OfferedTransform = OfferedTransform {
    kind: TRANSFORM_ENCR,
    id: 12,
    key_length: Some(256),
    has_unknown_attributes: false,
};
const AES128CBC: OfferedTransform = OfferedTransform {
    key_length: Some(128),
    ..AES256CBC
};
const AES256GCM: OfferedTransform = OfferedTransform {
    kind: TRANSFORM_ENCR,
    id: 20,
    key_length: Some(256),
    has_unknown_attributes: false,
};
const SHA1_96: OfferedTransform = OfferedTransform {
    kind: TRANSFORM_INTEG,
    id: 2,
    key_length: None,
    has_unknown_attributes: false,
};
const SHA256_128: OfferedTransform = OfferedTransform { id: 12, ..SHA1_96 };
const INTEG_NONE: OfferedTransform = OfferedTransform { id: 0, ..SHA1_96 };
const PRF_SHA1: OfferedTransform = OfferedTransform {
    kind: TRANSFORM_PRF,
    id: 2,
    key_length: None,
    has_unknown_attributes: false,
};
const PRF_SHA256: OfferedTransform = OfferedTransform { id: 5, ..PRF_SHA1 };
const MODP2048: OfferedTransform = OfferedTransform {
    kind: TRANSFORM_DH,
    id: 14,
    key_length: None,
    has_unknown_attributes: false,
};
const ECP256: OfferedTransform = OfferedTransform { id: 19, ..MODP2048 };
const NO_ESN: OfferedTransform = OfferedTransform {
    kind: TRANSFORM_ESN,
    id: 0,
    key_length: None,
    has_unknown_attributes: false,
};

fn proposal(number: u8, transforms: &[OfferedTransform]) -> OfferedProposal {
    OfferedProposal {
        number,
        transforms: transforms.to_vec(),
    }
}

const CBC256_SHA256: Suite = Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128);
const CBC128_SHA1: Suite = Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96);

// ---- parsing ---------------------------------------------------------------

#[test]
fn cbc_proposals_parse_with_the_prf_derived_from_integrity() {
    // strongSwan's check_proposal: no PRF named, so each integrity algorithm brings its own.
    assert_eq!(
        ike("aes256-sha256-ecp256"),
        IkeProposal {
            encr: vec![Encr::Cbc(CbcCipher::Aes256)],
            integ: vec![Integ::HmacSha256_128],
            prf: vec![Prf::HmacSha256],
            dh: vec![DhGroup::Ecp256],
        }
    );
    assert_eq!(ike("aes128-sha1-ecp256").prf, vec![Prf::HmacSha1]);
    assert_eq!(
        ike("aes-sha-sha2_512-sha384-x25519"),
        IkeProposal {
            encr: vec![Encr::Cbc(CbcCipher::Aes128)],
            integ: vec![
                Integ::HmacSha1_96,
                Integ::HmacSha512_256,
                Integ::HmacSha384_192
            ],
            prf: vec![Prf::HmacSha1, Prf::HmacSha512, Prf::HmacSha384],
            dh: vec![DhGroup::Curve25519],
        }
    );
    // An explicit PRF wins: nothing is derived.
    assert_eq!(
        ike("aes192-sha256-prfsha384-ecp384").prf,
        vec![Prf::HmacSha384]
    );
    assert_eq!(
        ike("aes256-sha256-prfsha256-ecp256").to_string(),
        "aes256-sha256-prfsha256-ecp256"
    );
    // AEAD-only with an integrity keyword: it only names the PRF, then is dropped.
    assert_eq!(
        ike("aes256gcm16-sha384-ecp384"),
        IkeProposal {
            encr: vec![Encr::Aes256Gcm16],
            integ: vec![],
            prf: vec![Prf::HmacSha384],
            dh: vec![DhGroup::Ecp384],
        }
    );
    assert_eq!(
        esp("aes256-sha256"),
        EspProposal {
            encr: vec![Encr::Cbc(CbcCipher::Aes256)],
            integ: vec![Integ::HmacSha256_128],
            dh: vec![],
            esn: vec![false],
        }
    );
    assert_eq!(esp("aes128gcm16-sha256").integ, vec![]);
    assert_eq!(
        esp("aes128-sha1-ecp256-esn").to_string(),
        "aes128-sha1-ecp256-esn"
    );
}

#[test]
fn cbc_without_integrity_is_refused() {
    for (s, ike_side) in [("aes256-prfsha256-ecp256", true), ("aes128", false)] {
        let e = if ike_side {
            s.parse::<IkeProposal>().unwrap_err()
        } else {
            s.parse::<EspProposal>().unwrap_err()
        };
        let msg = e.to_string();
        assert!(msg.contains("integrity") && msg.contains("sha256"), "{msg}");
    }
    // In IKE without a PRF either, the PRF is reported missing first.
    assert!("aes256-ecp256".parse::<IkeProposal>().is_err());
}

// ---- offering: strict, never mixed -----------------------------------------

fn is_mixed(p: &OfferedProposal) -> bool {
    let integ = p
        .transforms
        .iter()
        .any(|t| t.kind == TRANSFORM_INTEG && t.id != 0);
    let aead = p
        .transforms
        .iter()
        .any(|t| t.kind == TRANSFORM_ENCR && t.id != 12);
    let cbc = p
        .transforms
        .iter()
        .any(|t| t.kind == TRANSFORM_ENCR && t.id == 12);
    // AEAD beside CBC or INTEG, or CBC without INTEG.
    matches!(
        (aead, cbc, integ),
        (true, true, _) | (true, _, true) | (_, true, false)
    )
}

#[test]
fn a_mixed_proposal_is_offered_as_two() {
    let mixed = ike("aes256gcm16-aes256-sha256-prfsha256-ecp256");
    let parts = mixed.split();
    assert_eq!(
        parts,
        vec![
            ike("aes256gcm16-prfsha256-ecp256"),
            ike("aes256-sha256-prfsha256-ecp256")
        ]
    );
    // The order is that of each kind's first cipher.
    let cbc_first = ike("aes128-aes128gcm16-sha1-ecp256").split();
    assert_eq!(cbc_first[0].encr, vec![Encr::Cbc(CbcCipher::Aes128)]);
    assert_eq!(cbc_first[1].encr, vec![Encr::Aes128Gcm16]);
    assert_eq!(cbc_first[1].prf, vec![Prf::HmacSha1], "shared PRF list");

    let offer = offer_ike(&[mixed, ike("aes128-sha1-ecp256")]);
    assert_eq!(
        offer.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        offer[1].transforms,
        [AES256CBC, SHA256_128, PRF_SHA256, ECP256]
    );
    assert!(!offer.iter().any(is_mixed), "{offer:?}");

    let offer = offer_esp(&[esp("aes128gcm16-aes256-sha256-sha1")]);
    assert_eq!(offer.len(), 2);
    assert!(!offer.iter().any(is_mixed), "{offer:?}");
    assert_eq!(
        offer[1].transforms,
        [AES256CBC, SHA256_128, SHA1_96, NO_ESN]
    );
}

// ---- strongSwan's `default` --------------------------------------------------

#[test]
fn default_is_strongswans_default_as_far_as_implemented() {
    let d = ike("default");
    assert_eq!(d, ike("DEFAULT"));
    assert_eq!(d, IkeProposal::strongswan_default());
    let cbc = [CbcCipher::Aes128, CbcCipher::Aes192, CbcCipher::Aes256].map(Encr::Cbc);
    assert_eq!(
        d.encr,
        [
            &cbc[..],
            &[Encr::Aes128Gcm16, Encr::Aes256Gcm16, Encr::ChaCha20Poly1305]
        ]
        .concat()
    );
    assert_eq!(
        d.integ,
        [
            Integ::HmacSha256_128,
            Integ::HmacSha384_192,
            Integ::HmacSha512_256,
            Integ::HmacSha1_96
        ]
    );
    assert_eq!(
        d.prf,
        [
            Prf::HmacSha256,
            Prf::HmacSha384,
            Prf::HmacSha512,
            Prf::HmacSha1
        ]
    );
    // strongSwan's order (Curve25519, NIST ECC, then MODP 3072+, then MODP 2048), of the
    // groups we have: the ones implemented today come in this order, whatever joins them.
    let known: Vec<DhGroup> =
        d.dh.iter()
            .copied()
            .filter(|g| [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Curve25519].contains(g))
            .collect();
    assert_eq!(
        known,
        [DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Ecp384]
    );
    assert!(d.dh.iter().all(|g| DhGroup::ALL.contains(g)));

    // Offered as strongSwan offers it: non-AEAD first, then AEAD.
    let offer = offer_ike(&[d]);
    assert_eq!(offer.len(), 2);
    assert!(offer[0]
        .transforms
        .iter()
        .any(|t| t.kind == TRANSFORM_INTEG));
    assert!(!offer[1]
        .transforms
        .iter()
        .any(|t| t.kind == TRANSFORM_INTEG));

    let e = esp("default");
    assert_eq!(e, EspProposal::strongswan_default());
    assert_eq!(
        e.encr,
        [&cbc[..], &[Encr::Aes128Gcm16, Encr::Aes256Gcm16]].concat()
    );
    assert_eq!(e.integ.len(), 4);
    assert_eq!((e.dh.clone(), e.esn.clone()), (vec![], vec![false]));
    let offer = offer_esp(&[e]);
    assert_eq!(offer.len(), 2);
    assert!(!offer.iter().any(is_mixed));
    // `default` is a whole proposal, not a keyword among others.
    assert!("default-ecp256".parse::<IkeProposal>().is_err());
}

// ---- choosing: liberal, always consistent ------------------------------------

#[test]
fn strongswans_typical_offer_is_chosen() {
    // strongSwan `aes256-sha256-modp2048-ecp256` (derived PRF): MODP-2048 is not ours, but
    // with `aes256-sha256-ecp256` configured the proposal is chosen with ECP-256 (the KE
    // then gets INVALID_KE_PAYLOAD if it was for MODP-2048).
    let offer = [proposal(
        1,
        &[AES256CBC, SHA256_128, PRF_SHA256, MODP2048, ECP256],
    )];
    assert_eq!(
        choose_ike(&offer, &[ike("aes256-sha256-ecp256")]),
        Some((
            1,
            IkeAlgorithms {
                encr: CBC256_SHA256,
                prf: Prf::HmacSha256,
                dh: DhGroup::Ecp256
            }
        ))
    );
    // strongSwan `aes128-sha1-modp2048-ecp256`: the interop matrix's SHA-1 case.
    let offer = [proposal(
        1,
        &[AES128CBC, SHA1_96, PRF_SHA1, MODP2048, ECP256],
    )];
    assert_eq!(
        choose_ike(&offer, &[ike("aes128-sha1-ecp256")]).map(|(_, a)| a.encr),
        Some(CBC128_SHA1)
    );
    // strongSwan's default sends a non-AEAD and an AEAD proposal: each kind of ours finds
    // its own.
    let offer = offer_ike(&[IkeProposal::strongswan_default()]);
    let (n, a) = choose_ike(&offer, &[ike("aes256-sha256-ecp256")]).unwrap();
    assert_eq!((n, a.encr), (1, CBC256_SHA256));
    let (n, a) = choose_ike(&offer, &[ike("aes256gcm16-prfsha256-ecp256")]).unwrap();
    assert_eq!((n, a.encr), (2, Suite::Aes256Gcm16));
}

#[test]
fn a_peers_mixed_proposal_yields_a_consistent_subset() {
    let mixed = [proposal(
        1,
        &[AES256GCM, AES256CBC, SHA256_128, PRF_SHA256, ECP256],
    )];
    let (_, a) = choose_ike(&mixed, &[ike("aes256-sha256-ecp256")]).unwrap();
    assert_eq!(a.encr, CBC256_SHA256);
    let (_, a) = choose_ike(&mixed, &[ike("aes256gcm16-prfsha256-ecp256")]).unwrap();
    assert_eq!(
        a.encr,
        Suite::Aes256Gcm16,
        "the INTEG belongs to the CBC cipher"
    );
    // Both acceptable: the initiator's first cipher wins.
    let ours = [ike("aes256gcm16-aes256-sha256-prfsha256-ecp256")];
    assert_eq!(
        choose_ike(&mixed, &ours).unwrap().1.encr,
        Suite::Aes256Gcm16
    );
    let cbc_first = [proposal(
        1,
        &[AES256CBC, AES256GCM, SHA256_128, PRF_SHA256, ECP256],
    )];
    assert_eq!(choose_ike(&cbc_first, &ours).unwrap().1.encr, CBC256_SHA256);
}

#[test]
fn inconsistent_peer_proposals_are_refused() {
    let aead = [ike("aes256gcm16-prfsha256-ecp256")];
    let cbc = [ike("aes256-sha256-ecp256")];
    // An AEAD-only proposal demanding integrity.
    let p = [proposal(1, &[AES256GCM, SHA256_128, PRF_SHA256, ECP256])];
    assert_eq!(choose_ike(&p, &aead), None);
    // ... but INTEG NONE is fine with an AEAD (RFC 5282 §8).
    let p = [proposal(1, &[AES256GCM, INTEG_NONE, PRF_SHA256, ECP256])];
    assert!(choose_ike(&p, &aead).is_some());
    // CBC without integrity, or with only NONE.
    for p in [
        proposal(1, &[AES256CBC, PRF_SHA256, ECP256]),
        proposal(1, &[AES256CBC, INTEG_NONE, PRF_SHA256, ECP256]),
    ] {
        assert_eq!(choose_ike(std::slice::from_ref(&p), &cbc), None, "{p:?}");
    }
    // CBC with an integrity algorithm we did not configure.
    let p = [proposal(1, &[AES256CBC, SHA1_96, PRF_SHA256, ECP256])];
    assert_eq!(choose_ike(&p, &cbc), None);
    // Integrity with a Key Length attribute is not one we understand; the next one counts.
    let p = [proposal(
        1,
        &[
            AES256CBC,
            t(3, 12, Some(128)),
            SHA256_128,
            PRF_SHA256,
            ECP256,
        ],
    )];
    assert_eq!(choose_ike(&p, &cbc).unwrap().1.encr, CBC256_SHA256);
}

#[test]
fn esp_with_integrity_is_chosen_and_accepted() {
    let ours = [esp("aes128gcm16"), esp("aes256-sha256-sha1")];
    let offer = [proposal(1, &[AES256CBC, SHA1_96, SHA256_128, NO_ESN])];
    let (n, a) = choose_esp(&offer, &ours).unwrap();
    assert_eq!(
        (n, a),
        (
            1,
            EspAlgorithms {
                encr: Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha1_96),
                dh: None,
                esn: false
            }
        )
    );
    let p = [proposal(1, &[AES256GCM, SHA256_128, NO_ESN])];
    assert_eq!(choose_esp(&p, &[esp("aes256gcm16")]), None);
    let p = [proposal(1, &[AES256CBC, NO_ESN])];
    assert_eq!(choose_esp(&p, &ours), None);

    // As initiator: our offer is [aes128gcm16] [aes256-sha256-sha1], numbered 1 and 2.
    let answer = proposal(2, &[AES256CBC, SHA256_128, NO_ESN]);
    assert_eq!(
        accept_esp_response(&answer, &ours).map(|a| a.encr),
        Some(CBC256_SHA256)
    );
    for bad in [
        proposal(2, &[AES256CBC, NO_ESN]),
        proposal(2, &[AES256CBC, SHA256_128, SHA1_96, NO_ESN]),
        proposal(1, &[t(1, 20, Some(128)), SHA256_128, NO_ESN]),
        proposal(2, &[AES128CBC, SHA256_128, NO_ESN]),
    ] {
        assert_eq!(accept_esp_response(&bad, &ours), None, "{bad:?}");
    }
}

#[test]
fn ike_responses_must_match_the_split_proposal_they_name() {
    let ours = [ike("aes256gcm16-aes256-sha256-prfsha256-ecp256")];
    let cbc_answer = proposal(2, &[AES256CBC, SHA256_128, PRF_SHA256, ECP256]);
    assert_eq!(
        accept_ike_response(&cbc_answer, &ours).map(|a| a.encr),
        Some(CBC256_SHA256)
    );
    let aead_answer = proposal(1, &[AES256GCM, PRF_SHA256, ECP256]);
    assert_eq!(
        accept_ike_response(&aead_answer, &ours).map(|a| a.encr),
        Some(Suite::Aes256Gcm16)
    );
    for bad in [
        // The CBC answer under the AEAD proposal's number, and the reverse.
        proposal(1, &[AES256CBC, SHA256_128, PRF_SHA256, ECP256]),
        proposal(2, &[AES256GCM, PRF_SHA256, ECP256]),
        // CBC without INTEG, AEAD with it.
        proposal(2, &[AES256CBC, PRF_SHA256, ECP256]),
        proposal(1, &[AES256GCM, SHA256_128, PRF_SHA256, ECP256]),
        proposal(2, &[AES256CBC, SHA1_96, PRF_SHA256, ECP256]),
    ] {
        assert_eq!(accept_ike_response(&bad, &ours), None, "{bad:?}");
    }
}

#[test]
fn offers_round_trip_through_choice_and_acceptance_for_every_suite() {
    for suite in Suite::ALL {
        let name = suite.name();
        let mine = [ike(&format!("{name}-prfsha256-ecp256"))];
        let (n, a) = choose_ike(&offer_ike(&mine), &mine).unwrap();
        assert_eq!(a.encr, suite);
        let reply = offer_ike(&[IkeProposal {
            encr: vec![a.encr.encr()],
            integ: a.encr.integ().into_iter().collect(),
            prf: vec![a.prf],
            dh: vec![a.dh],
        }]);
        let reply = OfferedProposal {
            number: n,
            ..reply[0].clone()
        };
        assert_eq!(accept_ike_response(&reply, &mine), Some(a), "{name}");
        let mine = [esp(name)];
        let (_, a) = choose_esp(&offer_esp(&mine), &mine).unwrap();
        assert_eq!(a.encr, suite);
    }
}

// ---- legacy algorithms -------------------------------------------------------

#[test]
fn sha1_is_reported_as_discouraged_and_nothing_needs_the_opt_in_yet() {
    let l = ike("aes128-sha1-ecp256").legacy_algorithms();
    assert_eq!(
        l.iter().map(|x| (x.keyword, x.level)).collect::<Vec<_>>(),
        [
            ("sha1", LegacyLevel::Discouraged),
            ("prfsha1", LegacyLevel::Discouraged)
        ]
    );
    assert!(l[0].reason.contains("RFC 8247"), "{}", l[0]);
    assert!(ike("aes256-sha256-ecp256").legacy_algorithms().is_empty());
    assert!(ike("aes256gcm16-prfsha256-x25519")
        .legacy_algorithms()
        .is_empty());
    // Dropped with an AEAD, so not in use.
    assert!(esp("aes128gcm16-sha1").legacy_algorithms().is_empty());
    assert_eq!(esp("aes128-sha1").legacy_algorithms()[0].keyword, "sha1");
    let d = IkeProposal::strongswan_default().legacy_algorithms();
    assert!(d.iter().any(|x| x.keyword == "prfsha1"));
    assert!(
        d.iter().all(|x| x.level == LegacyLevel::Discouraged),
        "strongSwan's default has no MODP-1024: {d:?}"
    );
}
