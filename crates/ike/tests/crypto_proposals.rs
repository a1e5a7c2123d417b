//! The transform table, proposal strings (strongSwan syntax), and proposal
//! selection on both sides (RFC 7296 §2.7, §3.3). Transform numbers are from
//! the IANA IKEv2 registry (RFC 7296 §3.3.2, RFC 4868, RFC 5282, RFC 5903,
//! RFC 7634, RFC 8031).

use ironsec_ike::crypto::{
    accept_esp_response, accept_ike_response, choose_esp, choose_ike, encr_from_transform,
    integ_from_transform, offer_esp, offer_ike, CbcCipher, DhGroup, Encr, EspAlgorithms,
    EspProposal, IkeAlgorithms, IkeProposal, Integ, OfferedProposal, OfferedTransform, Prf,
    ProposalError, Suite, TRANSFORM_DH, TRANSFORM_ENCR, TRANSFORM_ESN, TRANSFORM_INTEG,
    TRANSFORM_PRF,
};

// ---- the table ----------------------------------------------------------

#[test]
fn iana_numbers() {
    assert_eq!(
        (
            TRANSFORM_ENCR,
            TRANSFORM_PRF,
            TRANSFORM_INTEG,
            TRANSFORM_DH,
            TRANSFORM_ESN
        ),
        (1, 2, 3, 4, 5)
    );
    assert_eq!(Prf::HmacSha256.id(), 5);
    assert_eq!(Prf::HmacSha384.id(), 6);
    assert_eq!(Prf::HmacSha512.id(), 7);
    assert_eq!(DhGroup::Ecp256.id(), 19);
    assert_eq!(DhGroup::Ecp384.id(), 20);
    assert_eq!(DhGroup::Curve25519.id(), 31);
    for p in Prf::ALL {
        assert_eq!(Prf::from_id(p.id()), Some(p));
        assert_eq!(Prf::from_name(p.name()), Some(p));
        assert_eq!(p.key_len(), p.output_len());
    }
    for g in DhGroup::ALL {
        assert_eq!(DhGroup::from_id(g.id()), Some(g));
        assert_eq!(DhGroup::from_name(g.name()), Some(g));
    }
    assert_eq!(
        [Prf::HmacSha256, Prf::HmacSha384, Prf::HmacSha512].map(|p| (p.name(), p.output_len())),
        [("prfsha256", 32), ("prfsha384", 48), ("prfsha512", 64)]
    );
    assert_eq!(
        DhGroup::ALL.map(|g| (g.name(), g.id(), g.public_len())),
        [
            ("ecp256", 19, 64),
            ("ecp384", 20, 96),
            ("x25519", 31, 32),
            ("ecp521", 21, 132),
            ("modp2048", 14, 256),
            ("modp3072", 15, 384),
            ("modp4096", 16, 512),
            ("modp6144", 17, 768),
            ("modp8192", 18, 1024),
            ("modp2048s256", 24, 256),
            ("modp1024", 2, 128),
            ("modp1536", 5, 192),
        ]
    );
    assert_eq!(DhGroup::from_name("curve25519"), Some(DhGroup::Curve25519));
    assert_eq!(DhGroup::from_name("ECP256"), Some(DhGroup::Ecp256));
    assert_eq!(Prf::from_id(2), Some(Prf::HmacSha1)); // RFC 7296 §3.3.2
    assert_eq!(DhGroup::from_id(1), None); // MODP-768
    assert_eq!(DhGroup::from_id(22), None); // MODP-1024 with 160-bit subgroup
    assert_eq!(DhGroup::from_id(0), None);
}

#[test]
fn encryption_transforms() {
    assert_eq!(encr_from_transform(20, Some(128)), Some(Encr::Aes128Gcm16));
    assert_eq!(encr_from_transform(20, Some(256)), Some(Encr::Aes256Gcm16));
    assert_eq!(encr_from_transform(28, None), Some(Encr::ChaCha20Poly1305));
    // RFC 3602 AES-CBC, ID 12, each key size by its Key Length attribute.
    for (bits, c) in [
        (128, CbcCipher::Aes128),
        (192, CbcCipher::Aes192),
        (256, CbcCipher::Aes256),
    ] {
        assert_eq!(encr_from_transform(12, Some(bits)), Some(Encr::Cbc(c)));
    }
    // AES needs a key length; AES-GCM-192 is not implemented.
    assert_eq!(encr_from_transform(20, None), None);
    assert_eq!(encr_from_transform(12, None), None);
    assert_eq!(encr_from_transform(20, Some(192)), None);
    // ChaCha20-Poly1305 must not carry one (RFC 7634 §2).
    assert_eq!(encr_from_transform(28, Some(256)), None);
    // AES-GCM with 8- and 12-byte ICVs, 3DES.
    assert_eq!(encr_from_transform(18, Some(128)), None);
    assert_eq!(encr_from_transform(19, Some(128)), None);
    assert_eq!(encr_from_transform(3, None), None);
    for s in Suite::ALL {
        assert_eq!(
            encr_from_transform(s.transform_id(), s.key_length_attribute()),
            Some(s.encr())
        );
    }
    // RFC 2404 / RFC 4868 integrity IDs; NONE and attributes name nothing.
    assert_eq!(integ_from_transform(2, None), Some(Integ::HmacSha1_96));
    assert_eq!(integ_from_transform(12, None), Some(Integ::HmacSha256_128));
    assert_eq!(integ_from_transform(13, None), Some(Integ::HmacSha384_192));
    assert_eq!(integ_from_transform(14, None), Some(Integ::HmacSha512_256));
    assert_eq!(integ_from_transform(0, None), None);
    assert_eq!(integ_from_transform(12, Some(128)), None);
    assert_eq!(integ_from_transform(1, None), None); // HMAC-MD5-96
}

// ---- parsing -----------------------------------------------------------

fn ike(s: &str) -> IkeProposal {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn esp(s: &str) -> EspProposal {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn parses_ike_proposals() {
    assert_eq!(
        ike("aes256gcm16-prfsha384-ecp384"),
        IkeProposal {
            encr: vec![Encr::Aes256Gcm16],
            integ: vec![],
            prf: vec![Prf::HmacSha384],
            dh: vec![DhGroup::Ecp384],
        }
    );
    assert_eq!(
        ike("aes128gcm16-aes256gcm16-prfsha256-x25519-ecp256"),
        IkeProposal {
            encr: vec![Encr::Aes128Gcm16, Encr::Aes256Gcm16],
            integ: vec![],
            prf: vec![Prf::HmacSha256],
            dh: vec![DhGroup::Curve25519, DhGroup::Ecp256],
        }
    );
    // Keywords may come in any order and case, with strongSwan's aliases;
    // repeats are dropped.
    assert_eq!(
        ike(" CURVE25519-prfsha512-ChaCha20Poly1305-aes128gcm128-prfsha512 "),
        IkeProposal {
            encr: vec![Encr::ChaCha20Poly1305, Encr::Aes128Gcm16],
            integ: vec![],
            prf: vec![Prf::HmacSha512],
            dh: vec![DhGroup::Curve25519],
        }
    );
}

#[test]
fn parses_esp_proposals() {
    assert_eq!(
        esp("aes128gcm16"),
        EspProposal {
            encr: vec![Encr::Aes128Gcm16],
            integ: vec![],
            dh: vec![],
            esn: vec![false],
        }
    );
    assert_eq!(
        esp("aes256gcm16-chacha20poly1305-x25519-ecp384"),
        EspProposal {
            encr: vec![Encr::Aes256Gcm16, Encr::ChaCha20Poly1305],
            integ: vec![],
            dh: vec![DhGroup::Curve25519, DhGroup::Ecp384],
            esn: vec![false],
        }
    );
    assert_eq!(esp("aes128gcm16-esn").esn, vec![true]);
    assert_eq!(esp("aes128gcm16-esn-noesn").esn, vec![true, false]);
    assert_eq!(esp("aes128gcm16-noesn-esn").esn, vec![false, true]);
}

fn ike_err(s: &str) -> ProposalError {
    s.parse::<IkeProposal>().unwrap_err()
}

fn esp_err(s: &str) -> ProposalError {
    s.parse::<EspProposal>().unwrap_err()
}

#[test]
fn refuses_bad_ike_proposals() {
    assert!(matches!(
        ike_err(""),
        ProposalError::Empty { kind: "IKE", .. }
    ));
    assert!(matches!(ike_err("  "), ProposalError::Empty { .. }));
    assert!(matches!(
        ike_err("aes256gcm16--prfsha256-x25519"),
        ProposalError::EmptyKeyword { .. }
    ));
    assert!(matches!(
        ike_err("aes256gcm16-prfsha256-x25519-"),
        ProposalError::EmptyKeyword { .. }
    ));

    let e = ike_err("serpent256-prfsha256-modp2048");
    assert!(
        matches!(&e, ProposalError::Unknown { token, .. } if token == "serpent256"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("\"serpent256\""), "{msg}");
    for valid in [
        "aes128gcm16",
        "aes256gcm16",
        "chacha20poly1305",
        "prfsha256",
        "prfsha384",
        "prfsha512",
        "x25519",
        "ecp256",
        "ecp384",
    ] {
        assert!(msg.contains(valid), "{msg} lacks {valid}");
    }
    assert!(!msg.contains("noesn"), "ESN is not an IKE keyword: {msg}");

    let e = ike_err("aes256gcm16-prfsha256-modp768");
    assert!(
        matches!(&e, ProposalError::NotImplemented { token, .. } if token == "modp768"),
        "{e}"
    );
    let e = ike_err("aes128gcm8-prfsha256-x25519");
    assert!(
        matches!(&e, ProposalError::NotImplemented { token, .. } if token == "aes128gcm8"),
        "{e}"
    );

    let e = ike_err("aes256-aesxcbc-prfsha256-x25519");
    assert!(
        matches!(&e, ProposalError::Integrity { token, .. } if token == "aesxcbc"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("\"aesxcbc\"") && msg.contains("not implement") && msg.contains("sha256"),
        "{msg}"
    );
    let e = ike_err("aes256-prfsha256-x25519");
    assert!(
        matches!(
            &e,
            ProposalError::NoIntegrity {
                cipher: "aes256",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("sha256"), "{e}");

    let e = ike_err("aes256gcm16-prfsha256-x25519-esn");
    assert!(
        matches!(&e, ProposalError::Misplaced { token, .. } if token == "esn"),
        "{e}"
    );

    let e = ike_err("aes256gcm16-x25519");
    assert!(
        matches!(&e, ProposalError::Missing { what, .. } if what.starts_with("PRF")),
        "{e}"
    );
    assert!(e.to_string().contains("prfsha256"), "{e}");
    let e = ike_err("aes256gcm16-prfsha256");
    assert!(
        matches!(
            &e,
            ProposalError::Missing {
                what: "DH group",
                ..
            }
        ),
        "{e}"
    );
    let e = ike_err("prfsha256-x25519");
    assert!(
        matches!(
            &e,
            ProposalError::Missing {
                what: "encryption algorithm",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("\"prfsha256-x25519\""), "{e}");
}

#[test]
fn refuses_bad_esp_proposals() {
    assert!(matches!(
        esp_err(""),
        ProposalError::Empty { kind: "ESP", .. }
    ));
    let e = esp_err("aes128gcm16-md5");
    assert!(
        matches!(&e, ProposalError::Integrity { kind: "ESP", token, .. } if token == "md5"),
        "{e}"
    );
    let e = esp_err("aes128-x25519");
    assert!(
        matches!(
            &e,
            ProposalError::NoIntegrity {
                kind: "ESP",
                cipher: "aes128",
                ..
            }
        ),
        "{e}"
    );
    let e = esp_err("aes128gcm16-prfsha256");
    assert!(
        matches!(&e, ProposalError::Misplaced { token, .. } if token == "prfsha256"),
        "{e}"
    );
    let e = esp_err("aes128gcm16-blowfish");
    assert!(
        matches!(&e, ProposalError::Unknown { token, .. } if token == "blowfish"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("esn") && msg.contains("noesn") && msg.contains("x25519"),
        "{msg}"
    );
    assert!(
        !msg.contains("prfsha256"),
        "a PRF is not an ESP keyword: {msg}"
    );
    let e = esp_err("x25519-esn");
    assert!(
        matches!(
            &e,
            ProposalError::Missing {
                what: "encryption algorithm",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn display_is_strongswan_syntax_and_round_trips() {
    for s in [
        "aes256gcm16-prfsha384-ecp384",
        "aes128gcm16-aes256gcm16-prfsha256-prfsha512-x25519-ecp256",
        "chacha20poly1305-prfsha256-x25519",
    ] {
        assert_eq!(ike(s).to_string(), s);
        assert_eq!(ike(&ike(s).to_string()), ike(s));
    }
    for (s, shown) in [
        ("aes128gcm16", "aes128gcm16"),
        ("aes128gcm16-noesn", "aes128gcm16"),
        ("aes128gcm16-x25519-esn", "aes128gcm16-x25519-esn"),
        ("aes128gcm16-noesn-esn", "aes128gcm16-noesn-esn"),
        ("aes256gcm16-curve25519", "aes256gcm16-x25519"),
    ] {
        assert_eq!(esp(s).to_string(), shown);
        assert_eq!(esp(shown), esp(s));
    }
    let a = IkeAlgorithms {
        encr: Suite::Aes256Gcm16,
        prf: Prf::HmacSha384,
        dh: DhGroup::Ecp384,
    };
    assert_eq!(a.to_string(), "aes256gcm16-prfsha384-ecp384");
    let e = EspAlgorithms {
        encr: Suite::Aes128Gcm16,
        dh: Some(DhGroup::Curve25519),
        esn: true,
    };
    assert_eq!(e.to_string(), "aes128gcm16-x25519-esn");
    let e = EspAlgorithms {
        encr: Suite::ChaCha20Poly1305,
        dh: None,
        esn: false,
    };
    assert_eq!(e.to_string(), "chacha20poly1305");
}

// ---- selection ---------------------------------------------------------

const fn t(kind: u8, id: u16, key_length: Option<u16>) -> OfferedTransform {
    OfferedTransform {
        kind,
        id,
        key_length,
        has_unknown_attributes: false,
    }
}

const AES128: OfferedTransform = t(1, 20, Some(128));
const AES256: OfferedTransform = t(1, 20, Some(256));
const CHACHA: OfferedTransform = t(1, 28, None);
const SHA256: OfferedTransform = t(2, 5, None);
const SHA384: OfferedTransform = t(2, 6, None);
const X25519: OfferedTransform = t(4, 31, None);
const ECP256: OfferedTransform = t(4, 19, None);
const ECP384: OfferedTransform = t(4, 20, None);
const DH_NONE: OfferedTransform = t(4, 0, None);
const INTEG_NONE: OfferedTransform = t(3, 0, None);
const HMAC_SHA256_128: OfferedTransform = t(3, 12, None);
const ESN: OfferedTransform = t(5, 1, None);
const NO_ESN: OfferedTransform = t(5, 0, None);

fn p(number: u8, transforms: &[OfferedTransform]) -> OfferedProposal {
    OfferedProposal {
        number,
        transforms: transforms.to_vec(),
    }
}

fn ikes(list: &[&str]) -> Vec<IkeProposal> {
    list.iter().map(|s| ike(s)).collect()
}

fn esps(list: &[&str]) -> Vec<EspProposal> {
    list.iter().map(|s| esp(s)).collect()
}

fn ike_algs(s: &str) -> IkeAlgorithms {
    let p = ike(s);
    assert!(p.encr.len() == 1 && p.integ.len() <= 1 && p.prf.len() == 1 && p.dh.len() == 1);
    IkeAlgorithms {
        encr: Suite::from_parts(p.encr[0], p.integ.first().copied()).unwrap(),
        prf: p.prf[0],
        dh: p.dh[0],
    }
}

/// (what it shows, the initiator's proposals, expected number and algorithms)
type IkeCase = (
    &'static str,
    Vec<OfferedProposal>,
    Option<(u8, &'static str)>,
);

/// (what it shows, our proposals, the initiator's, expected choice)
type EspCase<'a> = (
    &'static str,
    &'a [EspProposal],
    Vec<OfferedProposal>,
    Option<(u8, EspAlgorithms)>,
);

#[test]
fn choose_ike_table() {
    let ours = ikes(&[
        "aes256gcm16-prfsha384-ecp384",
        "aes128gcm16-chacha20poly1305-prfsha256-x25519-ecp256",
    ]);
    let cases: Vec<IkeCase> = vec![
        (
            "simple match",
            vec![p(1, &[AES256, SHA384, ECP384])],
            Some((1, "aes256gcm16-prfsha384-ecp384")),
        ),
        (
            "the initiator's first acceptable proposal wins, not ours",
            vec![
                p(1, &[AES128, SHA256, X25519]),
                p(2, &[AES256, SHA384, ECP384]),
            ],
            Some((1, "aes128gcm16-prfsha256-x25519")),
        ),
        (
            "within a type, the initiator's first acceptable transform",
            vec![p(1, &[CHACHA, AES128, SHA256, ECP256, X25519])],
            Some((1, "chacha20poly1305-prfsha256-ecp256")),
        ),
        (
            "transforms must fit one configured proposal, not a mix",
            vec![
                p(1, &[AES256, SHA256, X25519]),
                p(2, &[AES128, SHA256, X25519]),
            ],
            Some((2, "aes128gcm16-prfsha256-x25519")),
        ),
        (
            "unacceptable transforms are skipped, others of the type count",
            vec![p(
                1,
                &[
                    t(1, 20, Some(192)),
                    t(1, 12, Some(256)),
                    AES256,
                    SHA384,
                    t(4, 14, None),
                    ECP384,
                ],
            )],
            Some((1, "aes256gcm16-prfsha384-ecp384")),
        ),
        (
            "a Transform Type we do not know makes the proposal unacceptable",
            vec![
                p(1, &[AES256, SHA384, ECP384, t(6, 36, None)]),
                p(2, &[AES128, SHA256, X25519]),
            ],
            Some((2, "aes128gcm16-prfsha256-x25519")),
        ),
        (
            "ESN is no IKE transform type",
            vec![p(1, &[AES256, SHA384, ECP384, NO_ESN])],
            None,
        ),
        (
            "integrity other than NONE: proposal skipped",
            vec![
                p(1, &[AES256, SHA384, HMAC_SHA256_128, ECP384]),
                p(2, &[AES128, SHA256, X25519]),
            ],
            Some((2, "aes128gcm16-prfsha256-x25519")),
        ),
        (
            "integrity NONE is fine with an AEAD",
            vec![p(1, &[AES256, SHA384, INTEG_NONE, ECP384])],
            Some((1, "aes256gcm16-prfsha384-ecp384")),
        ),
        (
            "integrity NONE among others is fine",
            vec![p(1, &[AES256, SHA384, HMAC_SHA256_128, INTEG_NONE, ECP384])],
            Some((1, "aes256gcm16-prfsha384-ecp384")),
        ),
        (
            "a transform with attributes we do not know is skipped",
            vec![p(
                3,
                &[
                    OfferedTransform {
                        has_unknown_attributes: true,
                        ..AES256
                    },
                    AES128,
                    SHA256,
                    X25519,
                ],
            )],
            Some((3, "aes128gcm16-prfsha256-x25519")),
        ),
        (
            "... and if it was the only one of its type, so is the proposal",
            vec![p(
                1,
                &[
                    AES256,
                    SHA384,
                    OfferedTransform {
                        has_unknown_attributes: true,
                        ..ECP384
                    },
                ],
            )],
            None,
        ),
        (
            "a key length on a PRF is not understood",
            vec![p(1, &[AES256, t(2, 6, Some(384)), ECP384])],
            None,
        ),
        ("missing PRF", vec![p(1, &[AES256, ECP384])], None),
        ("missing DH", vec![p(1, &[AES256, SHA384])], None),
        ("missing ENCR", vec![p(1, &[SHA384, ECP384])], None),
        (
            "DH NONE is no IKE group",
            vec![p(1, &[AES256, SHA384, DH_NONE])],
            None,
        ),
        (
            "NO_PROPOSAL_CHOSEN",
            vec![
                p(1, &[AES128, SHA384, ECP384]),
                p(2, &[t(1, 12, Some(256)), SHA256, X25519]),
            ],
            None,
        ),
        ("nothing offered", vec![], None),
    ];
    for (name, offered, expected) in cases {
        let got = choose_ike(&offered, &ours);
        let expected = expected.map(|(n, s)| (n, ike_algs(s)));
        assert_eq!(got, expected, "{name}");
    }
    assert_eq!(
        choose_ike(&[p(1, &[AES256, SHA384, ECP384])], &[]),
        None,
        "nothing configured"
    );
}

/// When several of our proposals fit one of the initiator's, the
/// initiator's order of transforms decides, type by type (ENCR first).
#[test]
fn choose_prefers_initiators_transform_order_across_our_proposals() {
    let ours = ikes(&[
        "aes128gcm16-prfsha256-x25519",
        "aes256gcm16-prfsha384-x25519-ecp256",
    ]);
    let offered = [p(1, &[AES256, AES128, SHA256, SHA384, ECP256, X25519])];
    assert_eq!(
        choose_ike(&offered, &ours),
        Some((1, ike_algs("aes256gcm16-prfsha384-ecp256")))
    );
    let offered = [p(1, &[AES128, AES256, SHA384, SHA256, X25519])];
    assert_eq!(
        choose_ike(&offered, &ours),
        Some((1, ike_algs("aes128gcm16-prfsha256-x25519")))
    );
    // Equally good for the initiator: our earlier proposal.
    let ours = ikes(&[
        "aes256gcm16-prfsha256-x25519",
        "aes256gcm16-prfsha256-x25519-ecp256",
    ]);
    let offered = [p(1, &[AES256, SHA256, X25519, ECP256])];
    assert_eq!(
        choose_ike(&offered, &ours),
        Some((1, ike_algs("aes256gcm16-prfsha256-x25519")))
    );
    // ESP: the initiator's ENCR order beats our proposal order.
    let ours = esps(&["aes128gcm16", "aes256gcm16-esn"]);
    let offered = [p(3, &[AES256, AES128, ESN, NO_ESN])];
    assert_eq!(
        choose_esp(&offered, &ours),
        Some((
            3,
            EspAlgorithms {
                encr: Suite::Aes256Gcm16,
                dh: None,
                esn: true
            }
        ))
    );
}

#[test]
fn choose_esp_table() {
    let no_pfs = esps(&["aes256gcm16-aes128gcm16"]);
    let pfs = esps(&["aes256gcm16-x25519-ecp256"]);
    let esn_ok = esps(&["aes128gcm16-esn-noesn"]);
    let esn_only = esps(&["aes128gcm16-esn"]);
    let either = esps(&["aes256gcm16-x25519", "aes128gcm16"]);
    let a = |encr, dh, esn| EspAlgorithms { encr, dh, esn };
    use DhGroup::*;
    use Suite::*;
    let cases: Vec<EspCase> = vec![
        (
            "plain",
            &no_pfs,
            vec![p(1, &[AES128, NO_ESN])],
            Some((1, a(Aes128Gcm16, None, false))),
        ),
        (
            "initiator's order within a type",
            &no_pfs,
            vec![p(1, &[AES128, AES256, NO_ESN])],
            Some((1, a(Aes128Gcm16, None, false))),
        ),
        (
            "ESN absent means no ESN",
            &no_pfs,
            vec![p(1, &[AES256])],
            Some((1, a(Aes256Gcm16, None, false))),
        ),
        (
            "ESN only, not configured",
            &no_pfs,
            vec![p(1, &[AES256, ESN])],
            None,
        ),
        (
            "ESN preferred by initiator",
            &esn_ok,
            vec![p(1, &[AES128, ESN, NO_ESN])],
            Some((1, a(Aes128Gcm16, None, true))),
        ),
        (
            "no ESN preferred by initiator",
            &esn_ok,
            vec![p(1, &[AES128, NO_ESN, ESN])],
            Some((1, a(Aes128Gcm16, None, false))),
        ),
        (
            "ESN required, initiator has none",
            &esn_only,
            vec![p(1, &[AES128, NO_ESN])],
            None,
        ),
        (
            "ESN required, ESN absent",
            &esn_only,
            vec![p(1, &[AES128])],
            None,
        ),
        (
            "ESN required and offered",
            &esn_only,
            vec![p(1, &[AES128, NO_ESN, ESN])],
            Some((1, a(Aes128Gcm16, None, true))),
        ),
        (
            "PFS offered, we have none",
            &no_pfs,
            vec![p(1, &[AES256, X25519, NO_ESN])],
            None,
        ),
        (
            "PFS optional (DH NONE), we have none",
            &no_pfs,
            vec![p(1, &[AES256, X25519, DH_NONE, NO_ESN])],
            Some((1, a(Aes256Gcm16, None, false))),
        ),
        (
            "PFS group",
            &pfs,
            vec![p(1, &[AES256, ECP384, ECP256, X25519, NO_ESN])],
            Some((1, a(Aes256Gcm16, Some(Ecp256), false))),
        ),
        (
            "PFS required, none offered",
            &pfs,
            vec![p(1, &[AES256, NO_ESN])],
            None,
        ),
        (
            "PFS required, only NONE offered",
            &pfs,
            vec![p(1, &[AES256, DH_NONE, NO_ESN])],
            None,
        ),
        (
            "PFS required, NONE first",
            &pfs,
            vec![p(1, &[AES256, DH_NONE, X25519, NO_ESN])],
            Some((1, a(Aes256Gcm16, Some(Curve25519), false))),
        ),
        (
            "PFS or not, per configured proposal",
            &either,
            vec![p(1, &[AES128, NO_ESN]), p(2, &[AES256, X25519, NO_ESN])],
            Some((1, a(Aes128Gcm16, None, false))),
        ),
        (
            "PFS or not, the other way round",
            &either,
            vec![p(4, &[AES256, X25519, NO_ESN]), p(5, &[AES128, NO_ESN])],
            Some((4, a(Aes256Gcm16, Some(Curve25519), false))),
        ),
        (
            "integrity proposal skipped",
            &no_pfs,
            vec![
                p(1, &[AES128, HMAC_SHA256_128, NO_ESN]),
                p(2, &[AES256, INTEG_NONE, NO_ESN]),
            ],
            Some((2, a(Aes256Gcm16, None, false))),
        ),
        (
            "PRF is no ESP transform type",
            &no_pfs,
            vec![p(1, &[AES128, SHA256, NO_ESN])],
            None,
        ),
        (
            "unknown ESN id skipped",
            &esn_ok,
            vec![p(1, &[AES128, t(5, 2, None), ESN])],
            Some((1, a(Aes128Gcm16, None, true))),
        ),
        ("no ENCR", &no_pfs, vec![p(1, &[NO_ESN])], None),
        (
            "NO_PROPOSAL_CHOSEN",
            &no_pfs,
            vec![p(1, &[CHACHA, NO_ESN])],
            None,
        ),
    ];
    for (name, ours, offered, expected) in cases {
        assert_eq!(choose_esp(&offered, ours), expected, "{name}");
    }
}

#[test]
fn offer_ike_wire_form() {
    let offer = offer_ike(&ikes(&[
        "aes256gcm16-chacha20poly1305-prfsha384-ecp384-x25519",
        "aes128gcm16-prfsha256-ecp256",
    ]));
    assert_eq!(
        offer,
        vec![
            p(1, &[AES256, CHACHA, SHA384, ECP384, X25519]),
            p(2, &[AES128, SHA256, ECP256]),
        ]
    );
}

#[test]
fn offer_esp_wire_form() {
    let offer = offer_esp(&esps(&["aes256gcm16-x25519-esn-noesn", "aes128gcm16"]));
    assert_eq!(
        offer,
        vec![
            p(1, &[AES256, X25519, ESN, NO_ESN]),
            // ESN is a mandatory ESP transform type: noesn is sent explicitly.
            p(2, &[AES128, NO_ESN]),
        ]
    );
}

/// What a conforming responder answers: the chosen proposal's number and one
/// transform per type.
fn answer(number: u8, transforms: &[OfferedTransform]) -> OfferedProposal {
    p(number, transforms)
}

#[test]
fn ike_offer_choose_accept_round_trip() {
    let initiator = ikes(&[
        "aes256gcm16-prfsha384-ecp384",
        "aes128gcm16-chacha20poly1305-prfsha256-x25519-ecp256",
    ]);
    for responder in [
        ikes(&["aes128gcm16-prfsha256-ecp256"]),
        ikes(&["chacha20poly1305-prfsha256-x25519"]),
        ikes(&["aes256gcm16-prfsha384-ecp384"]),
        initiator.clone(),
    ] {
        let offer = offer_ike(&initiator);
        let (number, algs) = choose_ike(&offer, &responder).expect("a common proposal");
        let reply = offer_ike(&[IkeProposal {
            encr: vec![algs.encr.encr()],
            integ: algs.encr.integ().into_iter().collect(),
            prf: vec![algs.prf],
            dh: vec![algs.dh],
        }]);
        let reply = OfferedProposal {
            number,
            ..reply[0].clone()
        };
        assert_eq!(accept_ike_response(&reply, &initiator), Some(algs));
    }
}

#[test]
fn esp_offer_choose_accept_round_trip() {
    let initiator = esps(&[
        "aes256gcm16-x25519-esn-noesn",
        "aes128gcm16-chacha20poly1305",
    ]);
    for responder in [
        esps(&["aes128gcm16"]),
        esps(&["chacha20poly1305"]),
        esps(&["aes256gcm16-x25519"]),
        esps(&["aes256gcm16-x25519-esn"]),
        initiator.clone(),
    ] {
        let offer = offer_esp(&initiator);
        let (number, algs) = choose_esp(&offer, &responder).expect("a common proposal");
        let reply = offer_esp(&[EspProposal {
            encr: vec![algs.encr.encr()],
            integ: algs.encr.integ().into_iter().collect(),
            dh: algs.dh.into_iter().collect(),
            esn: vec![algs.esn],
        }]);
        let reply = OfferedProposal {
            number,
            ..reply[0].clone()
        };
        assert_eq!(
            accept_esp_response(&reply, &initiator),
            Some(algs),
            "{responder:?}"
        );
    }
    // ESN is only in the initiator's first proposal, which has PFS.
    let offer = offer_esp(&initiator);
    assert_eq!(choose_esp(&offer, &esps(&["chacha20poly1305-esn"])), None);
}

#[test]
fn accept_ike_response_rejects_inconsistent_answers() {
    let ours = ikes(&[
        "aes256gcm16-prfsha384-ecp384",
        "aes128gcm16-prfsha256-x25519-ecp256",
    ]);
    let ok = answer(2, &[AES128, SHA256, ECP256]);
    assert_eq!(
        accept_ike_response(&ok, &ours),
        Some(ike_algs("aes128gcm16-prfsha256-ecp256"))
    );
    let bad: Vec<(&str, OfferedProposal)> = vec![
        (
            "transforms from another proposal of ours",
            answer(1, &[AES128, SHA256, ECP256]),
        ),
        (
            "proposal number we never sent",
            answer(3, &[AES128, SHA256, ECP256]),
        ),
        ("proposal number 0", answer(0, &[AES128, SHA256, ECP256])),
        (
            "an algorithm we did not offer",
            answer(2, &[CHACHA, SHA256, ECP256]),
        ),
        ("two ENCR", answer(2, &[AES128, AES128, SHA256, ECP256])),
        ("two DH", answer(2, &[AES128, SHA256, ECP256, X25519])),
        ("no PRF", answer(2, &[AES128, ECP256])),
        ("no DH", answer(2, &[AES128, SHA256])),
        (
            "INTEG we did not offer",
            answer(2, &[AES128, SHA256, INTEG_NONE, ECP256]),
        ),
        ("ESN in IKE", answer(2, &[AES128, SHA256, ECP256, NO_ESN])),
        (
            "unknown attributes",
            answer(
                2,
                &[
                    OfferedTransform {
                        has_unknown_attributes: true,
                        ..AES128
                    },
                    SHA256,
                    ECP256,
                ],
            ),
        ),
        (
            "wrong key length",
            answer(2, &[t(1, 20, Some(256)), SHA256, ECP256]),
        ),
        ("empty", answer(2, &[])),
    ];
    for (name, resp) in bad {
        assert_eq!(accept_ike_response(&resp, &ours), None, "{name}");
    }
}

#[test]
fn accept_esp_response_rejects_inconsistent_answers() {
    let ours = esps(&["aes256gcm16-x25519-esn-noesn", "aes128gcm16"]);
    assert_eq!(
        accept_esp_response(&answer(1, &[AES256, X25519, ESN]), &ours),
        Some(EspAlgorithms {
            encr: Suite::Aes256Gcm16,
            dh: Some(DhGroup::Curve25519),
            esn: true
        })
    );
    assert_eq!(
        accept_esp_response(&answer(2, &[AES128, NO_ESN]), &ours),
        Some(EspAlgorithms {
            encr: Suite::Aes128Gcm16,
            dh: None,
            esn: false
        })
    );
    let bad: Vec<(&str, OfferedProposal)> = vec![
        ("PFS group dropped", answer(1, &[AES256, ESN])),
        (
            "DH NONE we did not offer",
            answer(1, &[AES256, DH_NONE, ESN]),
        ),
        ("PFS group added", answer(2, &[AES128, X25519, NO_ESN])),
        ("group we did not offer", answer(1, &[AES256, ECP256, ESN])),
        ("ESN we did not offer", answer(2, &[AES128, ESN])),
        ("ESN missing", answer(2, &[AES128])),
        ("two ESN", answer(1, &[AES256, X25519, ESN, NO_ESN])),
        ("integrity", answer(2, &[AES128, HMAC_SHA256_128, NO_ESN])),
        ("other proposal's cipher", answer(2, &[AES256, NO_ESN])),
        (
            "proposal number we never sent",
            answer(9, &[AES128, NO_ESN]),
        ),
    ];
    for (name, resp) in bad {
        assert_eq!(accept_esp_response(&resp, &ours), None, "{name}");
    }
}

// ---- properties over arbitrary offers -----------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Transforms from a pool that mixes what we implement with what we do
    /// not (unknown types and IDs, stray key lengths, unknown attributes).
    fn any_transform() -> impl Strategy<Value = OfferedTransform> {
        (
            prop_oneof![Just(1u8), Just(2), Just(3), Just(4), Just(5), 0u8..=8],
            prop_oneof![
                Just(0u16),
                Just(1),
                Just(5),
                Just(6),
                Just(7),
                Just(12),
                Just(19),
                Just(20),
                Just(28),
                Just(31),
                0u16..40
            ],
            prop_oneof![
                Just(None),
                Just(Some(128u16)),
                Just(Some(256)),
                Just(Some(192))
            ],
            prop::bool::weighted(0.05),
        )
            .prop_map(
                |(kind, id, key_length, has_unknown_attributes)| OfferedTransform {
                    kind,
                    id,
                    key_length,
                    has_unknown_attributes,
                },
            )
    }

    fn any_offer() -> impl Strategy<Value = Vec<OfferedProposal>> {
        prop::collection::vec(prop::collection::vec(any_transform(), 0..8), 0..5).prop_map(|ps| {
            ps.into_iter()
                .zip(1u8..)
                .map(|(transforms, number)| OfferedProposal { number, transforms })
                .collect()
        })
    }

    fn configured_ike() -> Vec<IkeProposal> {
        ikes(&[
            "aes256gcm16-prfsha384-ecp384",
            "aes128gcm16-chacha20poly1305-prfsha256-x25519-ecp256",
        ])
    }

    fn configured_esp() -> Vec<EspProposal> {
        esps(&["aes256gcm16-x25519-esn-noesn", "aes128gcm16"])
    }

    proptest! {
        /// What choose_ike picks is offered in the proposal it names, fits
        /// one configured proposal, and no earlier proposal was acceptable.
        #[test]
        fn choose_ike_is_sound(offer in any_offer()) {
            let ours = configured_ike();
            if let Some((number, algs)) = choose_ike(&offer, &ours) {
                let idx = offer.iter().position(|p| p.number == number).unwrap();
                let chosen = &offer[idx];
                let has = |t: OfferedTransform| chosen.transforms.iter().any(|x| {
                    x.kind == t.kind && x.id == t.id && x.key_length == t.key_length && !x.has_unknown_attributes
                });
                let encr = t(1, algs.encr.transform_id(), algs.encr.key_length_attribute());
                prop_assert!(has(encr));
                prop_assert!(has(t(2, algs.prf.id(), None)));
                prop_assert!(has(t(4, algs.dh.id(), None)));
                prop_assert!(ours.iter().any(|q| q.encr.contains(&algs.encr.encr()) && q.prf.contains(&algs.prf) && q.dh.contains(&algs.dh)));
                for earlier in &offer[..idx] {
                    prop_assert_eq!(choose_ike(std::slice::from_ref(earlier), &ours), None);
                }
            }
        }

        /// The same for ESP.
        #[test]
        fn choose_esp_is_sound(offer in any_offer()) {
            let ours = configured_esp();
            if let Some((number, algs)) = choose_esp(&offer, &ours) {
                let idx = offer.iter().position(|p| p.number == number).unwrap();
                let fits = ours.iter().any(|q| {
                    let dh_ok = match algs.dh {
                        None => q.dh.is_empty(),
                        Some(g) => q.dh.contains(&g),
                    };
                    q.encr.contains(&algs.encr.encr()) && q.esn.contains(&algs.esn) && dh_ok
                });
                prop_assert!(fits);
                for earlier in &offer[..idx] {
                    prop_assert_eq!(choose_esp(std::slice::from_ref(earlier), &ours), None);
                }
            }
        }

        /// An initiator always finds its own offer acceptable.
        #[test]
        fn own_offer_is_acceptable(first in 0usize..2) {
            let ours = configured_ike();
            let mine = &ours[first..];
            let (number, algs) = choose_ike(&offer_ike(mine), mine).unwrap();
            prop_assert_eq!(number, 1);
            prop_assert_eq!(algs.encr.encr(), mine[0].encr[0]);
        }

        #[test]
        fn parsing_arbitrary_strings_never_panics(s in "[a-z0-9_ -]{0,40}") {
            let _ = s.parse::<IkeProposal>();
            let _ = s.parse::<EspProposal>();
        }
    }
}

/// Algorithms left out on purpose are named as such (not "unknown keyword"), with the reason and
/// what to use instead, in both kinds of proposal.
#[test]
fn deliberately_missing_algorithms_say_why() {
    for (text, token, reason, instead) in [
        ("3des-sha1", "3des", "RFC 8221", "aes256-sha256"),
        ("aes128ctr-sha256", "aes128ctr", "AES-CTR", "aes256gcm16"),
        ("aes128ccm16", "aes128ccm16", "AES-CCM", "aes256gcm16"),
        (
            "camellia256-sha256",
            "camellia256",
            "Camellia",
            "aes256-sha256",
        ),
    ] {
        let e = esp_err(text);
        assert!(
            matches!(&e, ProposalError::NotImplemented { token: t, .. } if t == token),
            "{text}: {e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(reason) && msg.contains(instead), "{msg}");
    }
    for (text, token, reason) in [
        ("3DES-sha1-modp2048", "3DES", "Sweet32"),
        ("aes256-sha256-modp768", "modp768", "MUST NOT"),
        ("aes256-sha256-ecp256bp", "ecp256bp", "Brainpool"),
        ("aes256-sha256-curve448", "curve448", "448"),
    ] {
        let e = text.parse::<IkeProposal>().unwrap_err();
        assert!(
            matches!(&e, ProposalError::NotImplemented { token: t, .. } if t == token),
            "{text}: {e}"
        );
        assert!(e.to_string().contains(reason), "{e}");
    }
}
