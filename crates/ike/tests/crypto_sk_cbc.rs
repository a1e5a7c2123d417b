//! The SK payload with AES-CBC + HMAC (RFC 7296 §3.14), and `SkCipher` for
//! every suite: known answers for the cipher, the HMACs and the PRFs, round
//! trips of whole laid-out messages, and the rejection of every single-bit
//! flip.
//!
//! Sources of the known answers:
//! * AES-CBC: RFC 3602 §4 cases 1 and 2 (AES-128), NIST SP 800-38A F.2.3 and
//!   F.2.5 (AES-192, AES-256; the first two blocks).
//! * HMAC-SHA1: RFC 2202 §3 test cases 1 and 3 (20-byte keys: the
//!   AUTH_HMAC_SHA1_96 key length), truncated to 96 bits as RFC 2404 says;
//!   test cases 2 and 6 through PRF_HMAC_SHA1 (any key length).
//! * HMAC-SHA-256/384/512: RFC 4868 §2.7.2 test cases AUTH256-1, AUTH384-1,
//!   AUTH512-1 (keys of the integrity key length), truncated to half; RFC 4231
//!   test case 2 through the PRFs.

use ironsec_ike::crypto::{
    prf, AuthError, CbcCipher, Integ, KeyLenError, OpenError, Prf, SkCbc, SkCipher, Suite, TestRng,
};
use ironsec_ike::wire::{layout_sk, layout_skf, ExchangeType, Flags, Header, SkLayout, SkShape};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

// ---- AES-CBC -------------------------------------------------------------

struct CbcKat {
    source: &'static str,
    cipher: CbcCipher,
    key: &'static str,
    iv: &'static str,
    plaintext: &'static str,
    ciphertext: &'static str,
}

const CBC_KATS: &[CbcKat] = &[
    CbcKat {
        source: "RFC 3602 case 1",
        cipher: CbcCipher::Aes128,
        key: "06a9214036b8a15b512e03d534120006",
        iv: "3dafba429d9eb430b422da802c9fac41",
        // "Single block msg"
        plaintext: "53696e676c6520626c6f636b206d7367",
        ciphertext: "e353779c1079aeb82708942dbe77181a",
    },
    CbcKat {
        source: "RFC 3602 case 2",
        cipher: CbcCipher::Aes128,
        key: "c286696d887c9aa0611bbb3e2025a45a",
        iv: "562e17996d093d28ddb3ba695a2e6f58",
        plaintext: "000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f",
        ciphertext: "d296cd94c2cccf8a3a863028b5e1dc0a 7586602d253cfff91b8266bea6d61ab1",
    },
    CbcKat {
        source: "SP 800-38A F.2.3 (CBC-AES192)",
        cipher: CbcCipher::Aes192,
        key: "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
        iv: "000102030405060708090a0b0c0d0e0f",
        plaintext: "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51",
        ciphertext: "4f021db243bc633d7178183a9fa071e8 b4d9ada9ad7dedf4e5e738763f69145a",
    },
    CbcKat {
        source: "SP 800-38A F.2.5 (CBC-AES256)",
        cipher: CbcCipher::Aes256,
        key: "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        iv: "000102030405060708090a0b0c0d0e0f",
        plaintext: "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51",
        ciphertext: "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d",
    },
];

fn sk_cbc(cipher: CbcCipher, integ: Integ, key: &[u8], mac_key: &[u8]) -> SkCbc {
    SkCbc::new(Suite::Cbc(cipher, integ), key, mac_key).unwrap()
}

#[test]
fn aes_cbc_known_answers() {
    for k in CBC_KATS {
        let c = sk_cbc(k.cipher, Integ::HmacSha256_128, &unhex(k.key), &[0; 32]);
        let iv: [u8; 16] = unhex(k.iv).try_into().unwrap();
        let mut buf = unhex(k.plaintext);
        c.encrypt(&iv, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf),
            hex::encode(unhex(k.ciphertext)),
            "{}",
            k.source
        );
        c.decrypt(&iv, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf),
            hex::encode(unhex(k.plaintext)),
            "{}",
            k.source
        );
    }
}

#[test]
fn aes_cbc_refuses_partial_blocks() {
    let c = sk_cbc(CbcCipher::Aes128, Integ::HmacSha1_96, &[1; 16], &[2; 20]);
    for len in [1, 15, 17, 31] {
        let mut buf = vec![0u8; len];
        assert_eq!(c.encrypt(&[0; 16], &mut buf).unwrap_err().len, len);
        assert_eq!(c.decrypt(&[0; 16], &mut buf).unwrap_err().len, len);
    }
    assert!(c.encrypt(&[0; 16], &mut []).is_ok(), "no blocks is whole");
}

// ---- the HMACs as integrity (truncated) and as PRF -----------------------

struct MacKat {
    source: &'static str,
    integ: Integ,
    key: Vec<u8>,
    data: Vec<u8>,
    /// The full HMAC; the ICV is its first `icv_len` bytes.
    hmac: &'static str,
}

fn mac_kats() -> Vec<MacKat> {
    vec![
        MacKat {
            source: "RFC 2202 HMAC-SHA1 test case 1",
            integ: Integ::HmacSha1_96,
            key: vec![0x0b; 20],
            data: b"Hi There".to_vec(),
            hmac: "b617318655057264e28bc0b6fb378c8ef146be00",
        },
        MacKat {
            source: "RFC 2202 HMAC-SHA1 test case 3",
            integ: Integ::HmacSha1_96,
            key: vec![0xaa; 20],
            data: vec![0xdd; 50],
            hmac: "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
        },
        MacKat {
            source: "RFC 4868 AUTH256-1",
            integ: Integ::HmacSha256_128,
            key: vec![0x0b; 32],
            data: b"Hi There".to_vec(),
            hmac: "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7",
        },
        MacKat {
            source: "RFC 4868 AUTH384-1",
            integ: Integ::HmacSha384_192,
            key: vec![0x0b; 48],
            data: b"Hi There".to_vec(),
            hmac: "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc\
                   4c5df61d5b3297b4fb68dab9f1b582c2",
        },
        MacKat {
            source: "RFC 4868 AUTH512-1",
            integ: Integ::HmacSha512_256,
            key: vec![0x0b; 64],
            data: b"Hi There".to_vec(),
            hmac: "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8\
                   ac2878ebd5803f6f0b61dbce5e251ff8789a4722c1be65aea45fd464e89f8f5b",
        },
    ]
}

#[test]
fn integrity_known_answers_truncated() {
    for k in mac_kats() {
        let c = sk_cbc(CbcCipher::Aes128, k.integ, &[0; 16], &k.key);
        let icv = unhex(k.hmac)[..k.integ.icv_len()].to_vec();
        assert_eq!(c.icv_len(), k.integ.icv_len());
        // The data in two parts, as a message's header and body are fed.
        let (a, b) = k.data.split_at(3);
        assert_eq!(
            hex::encode(c.icv(&[a, b])),
            hex::encode(&icv),
            "{}",
            k.source
        );
        assert_eq!(c.verify(&[&k.data], &icv), Ok(()), "{}", k.source);
        let mut bad = icv.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(c.verify(&[&k.data], &bad), Err(AuthError), "{}", k.source);
        // The full HMAC, or a shorter prefix, is not the ICV.
        assert_eq!(c.verify(&[&k.data], &unhex(k.hmac)), Err(AuthError));
        assert_eq!(c.verify(&[&k.data], &icv[..icv.len() - 1]), Err(AuthError));
    }
}

#[test]
fn prf_known_answers() {
    let jefe = (
        b"Jefe".as_slice(),
        b"what do ya want for nothing?".as_slice(),
    );
    // (PRF, key, data, expected, source)
    type Case<'a> = (Prf, &'a [u8], &'a [u8], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            Prf::HmacSha1,
            jefe.0,
            jefe.1,
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            "RFC 2202 test case 2",
        ),
        (
            Prf::HmacSha1,
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "aa4ae5e15272d00e95705637ce8a3b55ed402112",
            "RFC 2202 test case 6",
        ),
        (
            Prf::HmacSha256,
            jefe.0,
            jefe.1,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "RFC 4231 test case 2",
        ),
        (
            Prf::HmacSha384,
            jefe.0,
            jefe.1,
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649",
            "RFC 4231 test case 2",
        ),
        (
            Prf::HmacSha512,
            jefe.0,
            jefe.1,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            "RFC 4231 test case 2",
        ),
    ];
    for (alg, key, data, expected, source) in cases {
        assert_eq!(
            hex::encode(&*prf(*alg, key, &[data])),
            *expected,
            "{source}"
        );
    }
    // RFC 7296 §2.13/§2.14: SK_d, SK_pi, SK_pr are the preferred key length.
    assert_eq!((Prf::HmacSha1.id(), Prf::HmacSha1.key_len()), (2, 20));
    assert_eq!(Prf::from_name("PRFSHA1"), Some(Prf::HmacSha1));
}

// ---- whole messages through SkCipher, every suite -------------------------

fn keys(suite: Suite, salt: u8) -> (Vec<u8>, Vec<u8>) {
    let e = (0..suite.encr().keymat_len())
        .map(|i| (i as u8).wrapping_mul(37) ^ salt)
        .collect();
    let a = (0..suite.integ().map_or(0, |i| i.key_len()))
        .map(|i| (i as u8).wrapping_mul(91) ^ salt)
        .collect();
    (e, a)
}

fn cipher(suite: Suite) -> SkCipher {
    let (e, a) = keys(suite, 0);
    SkCipher::new(suite, &e, &a).unwrap()
}

fn shape(c: &SkCipher) -> SkShape {
    SkShape {
        iv_len: c.iv_len(),
        icv_len: c.icv_len(),
        block_len: c.block_len(),
    }
}

fn header() -> Header {
    Header {
        spi_i: 0x0102_0304_0506_0708,
        spi_r: 0x1112_1314_1516_1718,
        next_payload: 0,
        major: 2,
        minor: 0,
        exchange: ExchangeType::Informational,
        flags: Flags {
            initiator: true,
            version: false,
            response: false,
        },
        message_id: 7,
        length: 0,
    }
}

/// An SK message holding `inner`, sealed; returns it with its layout.
fn sealed(c: &mut SkCipher, rng: &mut TestRng, inner: &[u8]) -> SkLayout {
    let mut l = layout_sk(&header(), &[], 41, inner, shape(c));
    c.seal(rng, &mut l.bytes, l.aad.end).unwrap();
    l
}

fn open(c: &SkCipher, l: &SkLayout, bytes: &[u8]) -> Result<Vec<u8>, OpenError> {
    c.open(&bytes[..l.aad.end], &bytes[l.aad.end..])
        .map(|p| p.to_vec())
}

#[test]
fn round_trip_every_suite_and_length() {
    let mut rng = TestRng::new(1);
    for suite in Suite::ALL {
        let mut c = cipher(suite);
        assert_eq!(c.suite(), suite);
        assert_eq!(c.iv_len(), suite.iv_len());
        assert_eq!(c.icv_len(), suite.icv_len());
        for len in [0usize, 1, 14, 15, 16, 17, 100, 1500] {
            let inner: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let l = sealed(&mut c, &mut rng, &inner);
            let pt = open(&c, &l, &l.bytes).unwrap();
            // Plaintext = inner | padding | Pad Length, a whole number of blocks.
            assert_eq!(pt.len() % c.block_len(), 0, "{suite} {len}");
            let pad = usize::from(*pt.last().unwrap());
            assert_eq!(&pt[..pt.len() - 1 - pad], &inner[..], "{suite} {len}");
            if suite.is_aead() {
                assert_eq!(pad, 0, "AEADs are not padded");
            } else {
                assert!(pad < 16);
                // Encrypted in place: the inner bytes are not in the clear.
                if len >= 16 {
                    let ct = &l.bytes[l.plaintext.clone()];
                    assert!(!ct.windows(16).any(|w| w == &inner[..16]), "{suite}");
                }
            }
        }
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let mut rng = TestRng::new(2);
    for suite in Suite::ALL {
        let mut c = cipher(suite);
        let l = sealed(&mut c, &mut rng, b"an inner payload chain of 33 byte");
        assert!(open(&c, &l, &l.bytes).is_ok());
        for bit in 0..l.bytes.len() * 8 {
            let mut bad = l.bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                open(&c, &l, &bad),
                Err(OpenError::Integrity(AuthError)),
                "{suite}: bit {bit} of {}",
                l.bytes.len()
            );
        }
    }
}

#[test]
fn cbc_ivs_are_random_and_aead_ivs_count() {
    let mut rng = TestRng::new(3);
    let mut cbc = cipher(Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128));
    let a = sealed(&mut cbc, &mut rng, b"same");
    let b = sealed(&mut cbc, &mut rng, b"same");
    assert_ne!(a.bytes[a.iv.clone()], b.bytes[b.iv.clone()]);
    assert_ne!(a.bytes[a.plaintext.clone()], b.bytes[b.plaintext.clone()]);
    let mut gcm = cipher(Suite::Aes128Gcm16);
    let a = sealed(&mut gcm, &mut rng, b"same");
    let b = sealed(&mut gcm, &mut rng, b"same");
    assert_eq!(a.bytes[a.iv.clone()], 1u64.to_be_bytes());
    assert_eq!(b.bytes[b.iv.clone()], 2u64.to_be_bytes());
}

#[test]
fn skf_fragments_seal_and_open_with_cbc() {
    let mut rng = TestRng::new(4);
    let mut c = cipher(Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96));
    let mut l = layout_skf(&header(), 41, 2, 3, b"fragment two", shape(&c));
    c.seal(&mut rng, &mut l.bytes, l.aad.end).unwrap();
    let pt = open(&c, &l, &l.bytes).unwrap();
    assert_eq!(&pt[..12], b"fragment two");
    // The fragment numbers are integrity-protected.
    let mut bad = l.bytes.clone();
    bad[l.aad.end - 1] ^= 1;
    assert_eq!(open(&c, &l, &bad), Err(AuthError.into()));
}

#[test]
fn keys_of_the_other_direction_or_suite_do_not_open() {
    let mut rng = TestRng::new(5);
    for suite in Suite::ALL {
        let mut c = cipher(suite);
        let l = sealed(&mut c, &mut rng, b"inner");
        // Another integrity key alone (same cipher key) fails.
        let (e, a) = keys(suite, 0);
        let (_, a2) = keys(suite, 0x5a);
        if !suite.is_aead() {
            let other = SkCipher::new(suite, &e, &a2).unwrap();
            assert_eq!(open(&other, &l, &l.bytes), Err(AuthError.into()), "{suite}");
        }
        let (e2, _) = keys(suite, 0x5a);
        let other = SkCipher::new(suite, &e2, &a).unwrap();
        if suite.is_aead() {
            assert_eq!(open(&other, &l, &l.bytes), Err(AuthError.into()), "{suite}");
        } else {
            // Encrypt-then-MAC: the ICV is SK_a's alone, so another SK_e passes it and
            // decrypts to something else.
            let pt = open(&other, &l, &l.bytes).unwrap();
            assert_ne!(&pt[..5], b"inner", "{suite}");
        }
    }
}

#[test]
fn short_or_unaligned_bodies_are_refused_before_any_crypto() {
    for suite in Suite::ALL {
        let c = cipher(suite);
        let need = c.iv_len() + c.block_len() + c.icv_len();
        for len in [0, 1, need - 1] {
            assert_eq!(
                c.open(b"hdr", &vec![0; len]),
                Err(OpenError::TooShort { need, got: len }),
                "{suite}"
            );
        }
        if !suite.is_aead() {
            let body = vec![0u8; c.iv_len() + 17 + c.icv_len()];
            assert_eq!(
                c.open(b"hdr", &body),
                Err(OpenError::NotBlockAligned { len: 17 }),
                "{suite}"
            );
        }
    }
}

#[test]
fn wrong_key_lengths_are_refused() {
    for suite in Suite::ALL {
        let (e, a) = keys(suite, 0);
        let err = SkCipher::new(suite, &e[1..], &a).unwrap_err();
        assert_eq!((err.suite, err.got), (suite, e.len() - 1));
        assert!(err.to_string().contains("SK_e"), "{err}");
        let mut long_a = a.clone();
        long_a.push(0);
        let err = SkCipher::new(suite, &e, &long_a).unwrap_err();
        assert_eq!(err.got, a.len() + 1);
        assert!(err.to_string().contains("SK_a"), "{err}");
    }
    assert_eq!(
        SkCbc::new(Suite::Aes128Gcm16, &[0; 16], &[]).unwrap_err(),
        KeyLenError {
            suite: Suite::Aes128Gcm16,
            what: "SK_a (an AEAD has no integrity key)",
            expected: 0,
            got: 0
        }
    );
}

#[test]
fn seal_refuses_a_layout_that_does_not_fit() {
    let mut rng = TestRng::new(6);
    let mut c = cipher(Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha512_256));
    // An AEAD layout: no padding, an 8-byte IV.
    let mut l = layout_sk(&header(), &[], 41, b"x", SkShape::AEAD);
    assert!(c.seal(&mut rng, &mut l.bytes, l.aad.end).is_err());
    let mut tiny = vec![0u8; 10];
    assert!(c.seal(&mut rng, &mut tiny, 4).is_err());
}

#[test]
fn debug_shows_no_key() {
    for suite in Suite::ALL {
        let (e, a) = keys(suite, 0);
        let dbg = format!("{:?}", SkCipher::new(suite, &e, &a).unwrap());
        assert!(dbg.contains("redacted"), "{dbg}");
        assert!(!dbg.contains(&hex::encode(&e[1..5])), "{dbg}");
        assert!(!dbg.contains("37, 74"), "{dbg}");
        assert!(!dbg.contains("91, 182"), "{dbg}");
    }
}
