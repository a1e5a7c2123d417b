//! Diffie-Hellman against published known answers, and the checks on peer
//! public values.
//!
//! Sources, transcribed via the search tool:
//! * RFC 5903 §8.1 (256-bit random ECP group, IKE group 19) and §8.2 (384-bit,
//!   group 20): private keys i and r, public values gix||giy and grx||gry, and
//!   the shared secret girx ("The Diffie-Hellman shared secret value is
//!   girx"). The same values appear in strongSwan's and several other
//!   projects' test suites, all agreeing.
//! * RFC 8031 Appendix A (Curve25519 in IKEv2): random_i/random_r, pub_i/pub_r
//!   and SHARED_SECRET, as carried ("From RFC 8031") in strongSwan's
//!   `src/libstrongswan/plugins/test_vectors/test_vectors/curve25519.c`.
//! * RFC 7748 §6.1 (X25519 Diffie-Hellman example), via the same file.

use ironsec_ike::crypto::{DhError, DhGroup, KeyExchange, Rng, TestRng};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

struct Kat {
    source: &'static str,
    group: DhGroup,
    i: &'static str,
    public_i: &'static str,
    r: &'static str,
    public_r: &'static str,
    shared: &'static str,
}

const KATS: &[Kat] = &[
    Kat {
        source: "RFC 5903 §8.1",
        group: DhGroup::Ecp256,
        i: "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
        // gix || giy
        public_i: "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180
                   5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
        r: "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
        // grx || gry
        public_r: "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63
                   56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
        // girx
        shared: "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
    },
    Kat {
        source: "RFC 5903 §8.2",
        group: DhGroup::Ecp384,
        i: "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655
            E35B5380 41E649EE 3FAEF896 783AB194",
        public_i: "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6
                   DE3AC808 ACB4BDB4 C88732AE E95F41AA
                   9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E
                   EB9FCFF3 C2C947DA E69B4C63 4573A81C",
        r: "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942
            E0308312 916B8ED2 960E4BD5 5A7448FC",
        public_r: "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D
                   0D1AC43A 0336DEF9 6FDA41D0 774A3571
                   DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF
                   F83FA401 42209DFF 5EAAD96D B9E6386C",
        shared: "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4
                 D6031355 69B9E9D0 9CF5D4A2 70F59746",
    },
    Kat {
        source: "RFC 8031 Appendix A",
        group: DhGroup::Curve25519,
        // random_i: the 32 random octets, clamped on use.
        i: "75 1f b4 30 86 55 b4 76 b6 78 9b 73 25 f9 ea 8c
            dd d1 6a 58 53 3f f6 d9 e6 00 09 46 4a 5f 9d 94",
        public_i: "48 d5 dd d4 06 12 57 ba 16 6f a3 f9 bb db 74 f1
                   a4 e8 1c 08 93 84 fa 77 f7 90 70 9f 0d fb c7 66",
        r: "0a 54 64 52 53 29 0d 60 dd ad d0 e0 30 ba cd 9e
            55 01 ef dc 22 07 55 a1 e9 78 f1 b8 39 a0 56 88",
        public_r: "0b e7 c1 f5 aa d8 7d 7e 44 86 62 67 32 98 a4 43
                   47 8b 85 97 45 17 9e af 56 4c 79 c0 ef 6e ee 25",
        shared: "c7 49 50 60 7a 12 32 7f 32 04 d9 4b 68 25 bf b0
                 68 b7 f8 31 9a 9e 37 08 ed 3d 43 ce 81 30 c9 50",
    },
    Kat {
        source: "RFC 7748 §6.1",
        group: DhGroup::Curve25519,
        i: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        public_i: "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        r: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        public_r: "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
        shared: "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
    },
];

#[test]
fn published_known_answers() {
    for k in KATS {
        let ki = KeyExchange::from_private(k.group, &unhex(k.i)).unwrap();
        let kr = KeyExchange::from_private(k.group, &unhex(k.r)).unwrap();
        assert_eq!(ki.group(), k.group);
        assert_eq!(
            hex::encode(ki.public()),
            hex::encode(unhex(k.public_i)),
            "{}: initiator public",
            k.source
        );
        assert_eq!(
            hex::encode(kr.public()),
            hex::encode(unhex(k.public_r)),
            "{}: responder public",
            k.source
        );
        assert_eq!(ki.public().len(), k.group.public_len());
        let si = ki.agree(&unhex(k.public_r)).unwrap();
        let sr = kr.agree(&unhex(k.public_i)).unwrap();
        assert_eq!(
            hex::encode(si.as_bytes()),
            hex::encode(unhex(k.shared)),
            "{}: g^ir at initiator",
            k.source
        );
        assert_eq!(
            hex::encode(sr.as_bytes()),
            hex::encode(unhex(k.shared)),
            "{}: g^ir at responder",
            k.source
        );
        assert_eq!(si.as_bytes().len(), k.group.shared_len());
    }
}

#[test]
fn fresh_exchanges_agree_in_every_group() {
    let mut rng = TestRng::new(7);
    for group in DhGroup::ALL {
        let a = KeyExchange::new(group, &mut rng);
        let b = KeyExchange::new(group, &mut rng);
        assert_eq!(a.public().len(), group.public_len());
        assert_ne!(a.public(), b.public());
        let sa = a.agree(b.public()).unwrap();
        let sb = b.agree(a.public()).unwrap();
        assert_eq!(sa.as_bytes(), sb.as_bytes(), "{group}");
        assert_eq!(sa.as_bytes().len(), group.shared_len());
    }
}

#[test]
fn same_seed_same_keys() {
    for group in DhGroup::ALL {
        let a = KeyExchange::new(group, &mut TestRng::new(42));
        let b = KeyExchange::new(group, &mut TestRng::new(42));
        let c = KeyExchange::new(group, &mut TestRng::new(43));
        assert_eq!(a.public(), b.public());
        assert_ne!(a.public(), c.public());
    }
}

#[test]
fn wrong_length_public_values_are_refused() {
    let mut rng = TestRng::new(1);
    for group in DhGroup::ALL {
        let ours = KeyExchange::new(group, &mut rng);
        let peer = KeyExchange::new(group, &mut rng);
        let n = group.public_len();
        // Including the SEC 1 tagged form of a real point, which RFC 5903
        // does not put on the wire.
        let mut tagged = vec![0x04];
        tagged.extend_from_slice(peer.public());
        for bad in [vec![], vec![1; n - 1], vec![1; n + 1], tagged] {
            assert_eq!(
                ours.agree(&bad).unwrap_err(),
                DhError::PublicLength {
                    group,
                    expected: n,
                    got: bad.len()
                },
                "{group}"
            );
        }
    }
}

#[test]
fn invalid_ecp_points_are_refused() {
    let mut rng = TestRng::new(2);
    for group in [DhGroup::Ecp256, DhGroup::Ecp384] {
        let ours = KeyExchange::new(group, &mut rng);
        let peer = KeyExchange::new(group, &mut rng);
        let n = group.public_len();
        // Off the curve: a real point with y changed.
        let mut off = peer.public().to_vec();
        off[n - 1] ^= 1;
        // All zero: (0, 0) is not on either curve; the identity has no x||y form.
        let zero = vec![0u8; n];
        // Coordinates not below p.
        let ff = vec![0xff; n];
        for bad in [off, zero, ff] {
            assert_eq!(
                ours.agree(&bad).unwrap_err(),
                DhError::InvalidPublic { group },
                "{group}"
            );
        }
        // The untouched point still works.
        assert!(ours.agree(peer.public()).is_ok());
    }
}

/// RFC 8031 §2: an all-zero X25519 result (a low-order peer point) must be
/// refused. u = 0 and u = 1 are points of small order.
#[test]
fn x25519_low_order_points_are_refused() {
    let ours = KeyExchange::new(DhGroup::Curve25519, &mut TestRng::new(3));
    let mut one = [0u8; 32];
    one[0] = 1;
    for bad in [[0u8; 32], one] {
        assert_eq!(
            ours.agree(&bad).unwrap_err(),
            DhError::NonContributory {
                group: DhGroup::Curve25519
            }
        );
    }
}

#[test]
fn invalid_private_keys_are_refused() {
    let cases: &[(DhGroup, Vec<u8>)] = &[
        (DhGroup::Ecp256, vec![0; 32]),
        (DhGroup::Ecp256, vec![0xff; 32]),
        (DhGroup::Ecp256, vec![1; 31]),
        (DhGroup::Ecp256, vec![1; 48]),
        (DhGroup::Ecp384, vec![0; 48]),
        (DhGroup::Ecp384, vec![0xff; 48]),
        (DhGroup::Ecp384, vec![1; 32]),
        (DhGroup::Curve25519, vec![1; 31]),
        (DhGroup::Curve25519, vec![1; 33]),
    ];
    for (group, bytes) in cases {
        assert_eq!(
            KeyExchange::from_private(*group, bytes).unwrap_err(),
            DhError::InvalidPrivate { group: *group },
            "{group} {}",
            bytes.len()
        );
    }
}

/// A generator that first returns invalid ECP scalars (all 0xff, above the
/// group order), to show `new` draws again rather than failing or looping.
struct BadThenGood(usize, TestRng);
impl Rng for BadThenGood {
    fn fill(&mut self, dest: &mut [u8]) {
        if self.0 > 0 {
            self.0 -= 1;
            dest.fill(0xff);
        } else {
            self.1.fill(dest);
        }
    }
}

#[test]
fn invalid_random_scalars_are_redrawn() {
    for group in [DhGroup::Ecp256, DhGroup::Ecp384] {
        let k = KeyExchange::new(group, &mut BadThenGood(3, TestRng::new(9)));
        let peer = KeyExchange::new(group, &mut TestRng::new(10));
        assert!(k.agree(peer.public()).is_ok());
    }
}

#[test]
fn debug_shows_no_private_key() {
    for k in KATS {
        let kx = KeyExchange::from_private(k.group, &unhex(k.i)).unwrap();
        let dbg = format!("{kx:?}");
        assert!(dbg.contains("redacted"), "{dbg}");
        let private = hex::encode(unhex(k.i));
        assert!(!dbg.to_lowercase().contains(&private[..8]), "{dbg}");
        let shared = kx.agree(&unhex(k.public_r)).unwrap();
        let dbg = format!("{shared:?}");
        assert!(
            !dbg.contains(&hex::encode(&shared.as_bytes()[..4])),
            "{dbg}"
        );
    }
}

#[test]
fn error_messages_name_the_group() {
    let e = DhError::PublicLength {
        group: DhGroup::Ecp256,
        expected: 64,
        got: 65,
    };
    let s = e.to_string();
    assert!(
        s.contains("ecp256") && s.contains("64") && s.contains("65"),
        "{s}"
    );
}
