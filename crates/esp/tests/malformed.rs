//! Hostile ESP packets against a live inbound SA (issue 8, "malformed input table"): one test
//! per row, each run for every suite with and without ESN where that makes sense. Each row
//! expects one [`OpenError`] and checks what the packet did to the anti-replay window.
//!
//! The window is only observable through [`InboundSa::highest_seq`] and through which packets
//! it accepts, so every row ends by probing it with genuine packets kept aside:
//!
//! * a fresh packet right of the window (sequence number 101) still opens,
//! * a packet that fell into a hole of the window (95) still opens,
//! * a packet already received (100) is still a replay, and
//! * a packet left of the window (30) is still too old.
//!
//! RFC 4303 3.4.3: "the receive window is updated only if the integrity verification
//! succeeds". Packets that fail before or at the ICV leave the window exactly as it was.
//! A packet whose ICV verifies came from the key holder, so its sequence number is recorded
//! even when its decrypted trailer is then refused (bad padding, dummy, unknown next header):
//! a copy of it is a replay, as for any other authentic packet. Those rows say so
//! ([`Window::Records`]) and check it.

mod common;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use common::{ipv4_packet, ipv6_packet, keymat, pair, seal, SPI};
use ironsec_esp::{
    CbcCipher, InboundSa, OpenError, OutboundSa, Suite, MIN_ESP_LEN, NEXT_HEADER_IPV4,
    NEXT_HEADER_IPV6, NEXT_HEADER_NONE,
};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;

/// Replay window of the fixture, in packets.
const WINDOW: usize = 64;
/// Highest sequence number received by the fixture.
const HIGHEST: u64 = 100;
/// Sealed but never delivered: right of the window, in a hole of it, left of it.
const FRESH: u64 = 101;
const HOLE: u64 = 95;
const OLD: u64 = 30;

/// An inbound SA that has received 1..=100 except 30 and 95, the packets kept aside to probe
/// its window with, and the sender (whose next sequence number is 102).
struct Fixture {
    suite: Suite,
    esn: bool,
    out: OutboundSa,
    inb: InboundSa,
    fresh: Vec<u8>,
    hole: Vec<u8>,
    old: Vec<u8>,
    received: Vec<u8>,
}

impl Fixture {
    fn new(suite: Suite, esn: bool) -> Fixture {
        let (out, inb) = pair(suite, esn, WINDOW);
        let (mut fresh, mut hole, mut old, mut received) = (vec![], vec![], vec![], vec![]);
        for seq in 1..=FRESH {
            let p = seal(&out, &ipv4_packet(40, seq as u8), NEXT_HEADER_IPV4);
            match seq {
                FRESH => fresh = p,
                HOLE => hole = p,
                OLD => old = p,
                _ => {
                    if seq == HIGHEST {
                        received = p.clone();
                    }
                    assert_eq!(inb.open_in_place(&mut p.clone()).map(|o| o.seq), Ok(seq));
                }
            }
        }
        assert_eq!(inb.highest_seq(), HIGHEST);
        Fixture {
            suite,
            esn,
            out,
            inb,
            fresh,
            hole,
            old,
            received,
        }
    }

    fn open(&self, p: &[u8]) -> Result<u64, OpenError> {
        self.inb.open_in_place(&mut p.to_vec()).map(|o| o.seq)
    }

    /// Seals `body` (inner packet, padding, pad length, next header: given whole, so they can
    /// be wrong) as sequence number `seq` with the SA's real key, framed by hand from the
    /// RFCs rather than by the crate's own code: [`Fixture::seal_aead`] or
    /// [`Fixture::seal_cbc`].
    fn seal_raw(&self, seq: u64, body: &[u8]) -> Vec<u8> {
        match self.suite {
            Suite::Cbc(cipher, _) => self.seal_cbc(cipher, seq, body),
            _ => self.seal_aead(seq, body),
        }
    }

    /// RFC 4106 / RFC 7634: nonce = salt || IV, AAD = SPI || [high 32 bits if ESN] || low 32
    /// bits, the tag appended.
    fn seal_aead(&self, seq: u64, body: &[u8]) -> Vec<u8> {
        let k = keymat(self.suite);
        let (key, salt) = k.split_at(self.suite.key_len());
        let alg = match self.suite {
            Suite::Aes128Gcm16 => &aead::AES_128_GCM,
            Suite::Aes256Gcm16 => &aead::AES_256_GCM,
            _ => &aead::CHACHA20_POLY1305,
        };
        let key = LessSafeKey::new(UnboundKey::new(alg, key).unwrap());
        // An IV the sender's own counter never uses, so no nonce repeats under the key.
        let iv = (!seq).to_be_bytes();
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(salt);
        nonce[4..].copy_from_slice(&iv);
        let mut aad = SPI.to_be_bytes().to_vec();
        if self.esn {
            aad.extend(((seq >> 32) as u32).to_be_bytes());
        }
        aad.extend((seq as u32).to_be_bytes());
        let mut p = SPI.to_be_bytes().to_vec();
        p.extend((seq as u32).to_be_bytes());
        p.extend(iv);
        let mut ct = body.to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut ct,
            )
            .unwrap();
        p.extend(ct);
        p.extend(tag.as_ref());
        p
    }

    /// RFC 3602 with RFC 4303 3.3.2 (encrypt, then MAC): SPI || low 32 bits || 16-byte IV ||
    /// AES-CBC(body), then the HMAC of all that, with the high 32 bits appended (ESN,
    /// 3.3.2.1) but not sent, truncated to the ICV length. The keying material is the AES key
    /// then the HMAC key (RFC 7296 2.17).
    fn seal_cbc(&self, cipher: CbcCipher, seq: u64, body: &[u8]) -> Vec<u8> {
        let integ = self.suite.integ().unwrap();
        let k = keymat(self.suite);
        let (enc, mac) = k.split_at(cipher.key_len());
        let mut iv = [0u8; 16];
        iv[8..].copy_from_slice(&(!seq).to_be_bytes());
        let mut ct = body.to_vec();
        let n = ct.len();
        match cipher {
            CbcCipher::Aes128 => cbc::Encryptor::<aes::Aes128>::new_from_slices(enc, &iv)
                .unwrap()
                .encrypt_padded_mut::<NoPadding>(&mut ct, n)
                .map(|_| ()),
            CbcCipher::Aes192 => cbc::Encryptor::<aes::Aes192>::new_from_slices(enc, &iv)
                .unwrap()
                .encrypt_padded_mut::<NoPadding>(&mut ct, n)
                .map(|_| ()),
            CbcCipher::Aes256 => cbc::Encryptor::<aes::Aes256>::new_from_slices(enc, &iv)
                .unwrap()
                .encrypt_padded_mut::<NoPadding>(&mut ct, n)
                .map(|_| ()),
        }
        .expect("the rows build whole blocks");
        let mut p = SPI.to_be_bytes().to_vec();
        p.extend((seq as u32).to_be_bytes());
        p.extend(iv);
        p.extend(ct);
        let mut authenticated = p.clone();
        if self.esn {
            authenticated.extend(((seq >> 32) as u32).to_be_bytes());
        }
        let tag = hmac::sign(&hmac::Key::new(integ.hmac_algorithm(), mac), &authenticated);
        p.extend(&tag.as_ref()[..integ.icv_len()]);
        p
    }
}

/// What a row's packets may do to the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    /// Nothing: refused before or at the ICV.
    Unchanged,
    /// The ICV verified, so the packet's sequence number (the row's packets all carry
    /// [`FRESH`]) is recorded before the trailer is refused.
    Records,
}

struct Row {
    /// Only for SAs with (Some(true)) or without (Some(false)) ESN; None: both.
    esn: Option<bool>,
    build: fn(&Fixture) -> Vec<Vec<u8>>,
    error: OpenError,
    window: Window,
}

fn run(row: Row) {
    for suite in Suite::ALL {
        for esn in [false, true] {
            if row.esn.is_some_and(|e| e != esn) {
                continue;
            }
            let f = Fixture::new(suite, esn);
            let packets = (row.build)(&f);
            assert!(!packets.is_empty());
            match row.window {
                Window::Unchanged => probe(&f, &packets, &row),
                // A recorded packet uses up FRESH, so each of the row's packets (all sealed
                // as FRESH) meets a fixture of its own; packets depend on the keys only, which
                // every fixture of the suite shares.
                Window::Records => {
                    probe(&f, &packets[..1], &row);
                    for p in &packets[1..] {
                        probe(&Fixture::new(suite, esn), std::slice::from_ref(p), &row);
                    }
                }
            }
        }
    }
}

/// Offers `packets` to the fixture twice each, then checks the window with the packets kept
/// aside and the sender's next packet.
fn probe(f: &Fixture, packets: &[Vec<u8>], row: &Row) {
    let (suite, esn) = (f.suite, f.esn);
    for p in packets {
        let what = format!("{suite} esn={esn} {:02x?}", &p[..p.len().min(24)]);
        assert_eq!(f.open(p), Err(row.error), "{what}");
        // A second copy gets the same answer (or, once recorded, is a replay).
        let again = f.open(p);
        match row.window {
            Window::Unchanged => {
                assert_eq!(again, Err(row.error), "{what}");
                assert_eq!(f.inb.highest_seq(), HIGHEST, "{what}");
            }
            Window::Records => {
                assert_eq!(again, Err(OpenError::Replay), "{what}");
                assert_eq!(f.inb.highest_seq(), FRESH, "{what}");
            }
        }
    }
    // The window accepts and refuses exactly what it did before.
    let what = format!("{suite} esn={esn}");
    match row.window {
        Window::Unchanged => assert_eq!(f.open(&f.fresh), Ok(FRESH), "{what}"),
        Window::Records => {
            assert_eq!(f.open(&f.fresh), Err(OpenError::Replay), "{what}")
        }
    }
    assert_eq!(f.open(&f.hole), Ok(HOLE), "{what}");
    assert_eq!(f.open(&f.received), Err(OpenError::Replay), "{what}");
    assert_eq!(f.open(&f.old), Err(OpenError::TooOld), "{what}");
    // And the sender's next packet goes through.
    let next = seal(&f.out, &ipv4_packet(60, 1), NEXT_HEADER_IPV4);
    assert_eq!(f.open(&next), Ok(FRESH + 1), "{what}");
}

/// One `#[test]` per row: `name: esn, build => OpenError variant, Window variant;`.
macro_rules! rows {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $esn:expr, $build:expr => $error:ident, $window:ident;
    )*) => {
        $(
            $(#[doc = $doc])*
            #[test]
            fn $name() {
                run(Row {
                    esn: $esn,
                    build: $build,
                    error: OpenError::$error,
                    window: Window::$window,
                });
            }
        )*
    };
}

/// A body of whole blocks of the suite: a 20-byte IPv4 packet, TFC padding (zeros, 8 bytes
/// for AES-CBC, none for an AEAD) and `trailer` (4 bytes: padding, pad length, next header,
/// however wrong).
fn body(f: &Fixture, trailer: [u8; 4]) -> Vec<u8> {
    let mut b = ipv4_packet(20, 0x77);
    b.resize((20 + 4usize).next_multiple_of(f.suite.block_len()) - 4, 0);
    b.extend(trailer);
    b
}

/// A body of whole blocks of the suite: `inner` (any bytes), the default padding, pad length
/// and next header `nh`, so only the inner packet or the next header can be wrong.
fn body_with(f: &Fixture, inner: &[u8], nh: u8) -> Vec<u8> {
    let len = (inner.len() + 2).next_multiple_of(f.suite.block_len());
    let pad = len - 2 - inner.len();
    let mut b = inner.to_vec();
    b.extend((1..=pad).map(|i| i as u8));
    b.extend([pad as u8, nh]);
    b
}

/// An IPv6 packet of 40 + `ext.len()` + `upper` bytes from 2001:db8:2::2 to 2001:db8:1::2
/// whose first next header is `next`, extension headers `ext` and payload length `payload`
/// (None: the true one).
fn ipv6_inner(next: u8, ext: &[u8], upper: usize, payload: Option<u16>) -> Vec<u8> {
    let mut p = ipv6_packet(40 + ext.len() + upper, 0x5c);
    p[6] = next;
    p[7] = 64;
    p[8..24].copy_from_slice(&0x2001_0db8_0002_0000_0000_0000_0000_0002u128.to_be_bytes());
    p[24..40].copy_from_slice(&0x2001_0db8_0001_0000_0000_0000_0000_0002u128.to_be_bytes());
    p[40..40 + ext.len()].copy_from_slice(ext);
    if let Some(n) = payload {
        p[4..6].copy_from_slice(&n.to_be_bytes());
    }
    p
}

/// Hop-by-hop (8 bytes: PadN) then destination options (16 bytes: PadN), then UDP.
const HBH_DEST_UDP: [u8; 24] = [
    60, 0, 1, 4, 0, 0, 0, 0, 17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Sealed as [`FRESH`]: one IPv6 packet per next header that is not tunnel mode.
fn ipv6_under(f: &Fixture, nhs: &[u8]) -> Vec<Vec<u8>> {
    let inner = ipv6_inner(17, &[], 24, None);
    nhs.iter()
        .map(|nh| f.seal_raw(FRESH, &body_with(f, &inner, *nh)))
        .collect()
}

rows! {
    /// Shorter than ESP header + IV + (pad length, next header) + ICV: every length from 0 to
    /// MIN_ESP_LEN - 1, cut from a genuine packet.
    shorter_than_header_iv_and_icv: None, |f| {
        (0..MIN_ESP_LEN).map(|n| f.fresh[..n].to_vec()).collect()
    } => Truncated, Unchanged;

    /// A body (after header and IV, before the ICV) that is not a multiple of 4 bytes (of the
    /// 16-byte AES block for CBC): no conforming sender makes one (RFC 4303 2.4, RFC 3602
    /// 2.4), refused before any cryptography.
    misaligned_body: None, |f| {
        (1..f.suite.block_len())
            .map(|extra| {
                let mut p = f.fresh.clone();
                p.extend(vec![0; extra]);
                p
            })
            .collect()
    } => Malformed, Unchanged;

    /// Another SA's SPI: the caller looked up the wrong SA (or the packet is forged).
    wrong_spi: None, |f| {
        [SPI ^ 1, 0, 256, u32::MAX]
            .iter()
            .map(|spi| {
                let mut p = f.fresh.clone();
                p[..4].copy_from_slice(&spi.to_be_bytes());
                p
            })
            .collect()
    } => SpiMismatch, Unchanged;

    /// A flipped bit in the ICV, the ciphertext, the IV or the sequence number (which the
    /// ICV covers: as AAD of an AEAD, in the HMAC input of AES-CBC).
    bad_icv: None, |f| {
        let n = f.fresh.len();
        let h = f.suite.header_len();
        [n - 1, n - f.suite.icv_len(), h, h - 1, 8, 7]
            .iter()
            .map(|at| {
                let mut p = f.fresh.clone();
                p[*at] ^= 0x10;
                p
            })
            .collect()
    } => Authentication, Unchanged;

    /// Sealed with the wrong key (the fixture's key with one byte changed): an AEAD's key or
    /// salt, AES-CBC's HMAC key. (A wrong AES-CBC encryption key with the right HMAC key
    /// authenticates and decrypts to garbage: `wrong_cbc_encryption_key` below.)
    wrong_key: None, |f| {
        let flip = |at: usize| {
            let mut k = keymat(f.suite);
            k[at] ^= 1;
            let other = OutboundSa::new(f.suite, SPI, &k, f.esn)
                .unwrap()
                .with_next_seq(FRESH);
            seal(&other, &ipv4_packet(40, 3), NEXT_HEADER_IPV4)
        };
        let last = f.suite.keymat_len() - 1;
        if f.suite.is_aead() {
            vec![flip(0), flip(last)]
        } else {
            vec![flip(f.suite.key_len()), flip(last)]
        }
    } => Authentication, Unchanged;

    /// Pad Length larger than the data before it (200 bytes of padding in a 24-byte body).
    pad_length_larger_than_the_payload: None, |f| {
        let mut b = ipv4_packet(24usize.next_multiple_of(f.suite.block_len()) - 2, 0x66);
        b.extend([200, NEXT_HEADER_IPV4]);
        vec![f.seal_raw(FRESH, &b)]
    } => BadPadding, Records;

    /// Padding that is not 1, 2, 3, ... (RFC 4303 2.4 lets the receiver check it).
    padding_not_the_default_pattern: None, |f| {
        vec![f.seal_raw(FRESH, &body(f, [1, 3, 2, NEXT_HEADER_IPV4]))]
    } => BadPadding, Records;

    /// Next header 59: a dummy packet (RFC 4303 2.6), authenticated and then discarded.
    next_header_59_dummy: None, |f| {
        let dummy = OutboundSa::new(f.suite, SPI, &keymat(f.suite), f.esn)
            .unwrap()
            .with_next_seq(FRESH)
            .with_iv_offset(1 << 40);
        vec![seal(&dummy, &[0x5a; 17], NEXT_HEADER_NONE)]
    } => Dummy, Records;

    /// A next header that is neither IPv4 nor IPv6 (transport mode TCP, 6): only tunnel mode.
    unsupported_next_header: None, |f| {
        vec![f.seal_raw(FRESH, &body(f, [1, 2, 2, 6]))]
    } => BadNextHeader, Records;

    /// Sequence number 0, which a sender never uses (RFC 4303 3.3.3), even correctly sealed:
    /// refused before decryption.
    sequence_number_zero: None, |f| {
        let mut forged = f.fresh.clone();
        forged[4..8].copy_from_slice(&[0; 4]);
        vec![f.seal_raw(0, &body(f, [1, 2, 2, NEXT_HEADER_IPV4])), forged]
    } => Replay, Unchanged;

    /// A byte-identical copy of a packet already received.
    replayed_sequence_number: None, |f| vec![f.received.clone()] => Replay, Unchanged;

    /// Sequence numbers left of the window, received or not: refused before decryption.
    too_old_sequence_number: None, |f| {
        let forged = {
            let mut p = f.fresh.clone();
            p[4..8].copy_from_slice(&((HIGHEST - WINDOW as u64) as u32).to_be_bytes());
            p
        };
        vec![f.old.clone(), f.seal_raw(2, &body(f, [1, 2, 2, NEXT_HEADER_IPV4])), forged]
    } => TooOld, Unchanged;

    /// ESN: a packet sealed with high bits 1 (sequence number 2^32 + 150) when the receiver
    /// is in the first 2^32 block infers high bits 0, so its AAD is not the sender's and the
    /// ICV fails (RFC 4303 A2.2). Two such packets: from the real sender's code path and
    /// sealed by hand.
    esn_high_bits_mismatch: Some(true), |f| {
        let ahead = OutboundSa::new(f.suite, SPI, &keymat(f.suite), true)
            .unwrap()
            .with_next_seq((1 << 32) + 150);
        vec![
            seal(&ahead, &ipv4_packet(40, 9), NEXT_HEADER_IPV4),
            f.seal_raw((1 << 32) + 120, &body(f, [1, 2, 2, NEXT_HEADER_IPV4])),
        ]
    } => Authentication, Unchanged;

    /// IPv6 inside: ESP trailers whose next header is an IPv6 extension header or another
    /// protocol rather than IPv4 (4), IPv6 (41) or none (59): hop-by-hop 0, routing 43,
    /// fragment 44, destination options 60, ESP 50, AH 51, TCP 6, UDP 17, ICMPv6 58,
    /// reserved 255. Authentic, so recorded, then refused (tunnel mode only).
    ipv6_inner_under_a_next_header_not_tunnel_mode: None, |f| {
        ipv6_under(f, &[0, 43, 44, 60, 50, 51, 6, 17, 58, 255])
    } => BadNextHeader, Records;

    /// The trailer says IPv4 (4) but the inner packet is IPv6 (version nibble 6), with and
    /// without extension headers; and an IPv4 packet under next header 41.
    inner_version_disagrees_with_the_next_header: None, |f| {
        vec![
            f.seal_raw(FRESH, &body_with(f, &ipv6_inner(17, &[], 24, None), NEXT_HEADER_IPV4)),
            f.seal_raw(
                FRESH,
                &body_with(f, &ipv6_inner(0, &HBH_DEST_UDP, 8, None), NEXT_HEADER_IPV4),
            ),
            f.seal_raw(FRESH, &body_with(f, &ipv4_packet(60, 0x11), NEXT_HEADER_IPV6)),
        ]
    } => Malformed, Records;

    /// IPv6 payload lengths that disagree with the decrypted data: larger than what
    /// follows the fixed header (by one byte, and 65,535), an inner packet shorter than the
    /// 40-byte fixed header, and payload lengths that end inside the extension header
    /// chain (in the destination options header, right after the hop-by-hop header whose
    /// next header is then missing).
    ipv6_payload_length_disagrees_with_the_packet: None, |f| {
        let cut = |payload| ipv6_inner(0, &HBH_DEST_UDP, 8, Some(payload));
        [
            ipv6_inner(17, &[], 24, Some(25)),
            ipv6_inner(17, &[], 24, Some(u16::MAX)),
            ipv6_inner(17, &[], 24, None)[..39].to_vec(),
            cut(20),
            cut(8),
        ]
        .iter()
        .map(|inner| f.seal_raw(FRESH, &body_with(f, inner, NEXT_HEADER_IPV6)))
        .collect()
    } => Malformed, Records;

    /// IPv6 extension headers whose own length runs past the packet: a routing header of
    /// (255 + 1) * 8 bytes, a fragment header cut to 4 bytes, a destination options header
    /// whose length byte is missing.
    ipv6_extension_header_longer_than_the_packet: None, |f| {
        [
            ipv6_inner(43, &[17, 255, 2, 1, 0, 0, 0, 0], 8, None),
            ipv6_inner(44, &[17, 0, 0, 0], 0, None),
            ipv6_inner(60, &[17], 0, None),
        ]
        .iter()
        .map(|inner| f.seal_raw(FRESH, &body_with(f, inner, NEXT_HEADER_IPV6)))
        .collect()
    } => Malformed, Records;

    /// A jumbogram (RFC 2675): payload length 0, a hop-by-hop header with a Jumbo Payload
    /// option (0xc2) giving the real length, then UDP; and payload length 0 before a
    /// hop-by-hop header that is not even there. Refused rather than cut to the bare 40-byte
    /// header (what the stated length 0 alone would give).
    ipv6_jumbo_payload_length: None, |f| {
        let jumbo = [17, 0, 0xc2, 4, 0, 0, 0, 16];
        [
            ipv6_inner(0, &jumbo, 8, Some(0)),
            ipv6_inner(0, &[], 0, Some(0)),
        ]
        .iter()
        .map(|inner| f.seal_raw(FRESH, &body_with(f, inner, NEXT_HEADER_IPV6)))
        .collect()
    } => Malformed, Records;
}

/// The IPv6 packets the rows above are made from open when nothing is wrong: an extension
/// header chain that fits, TFC padding after an IPv6 packet (cut off by its payload
/// length), IPv4-in-IPv6 and "no next header" inside the inner packet, for every suite.
#[test]
fn well_formed_ipv6_inner_packets_open() {
    for suite in Suite::ALL {
        for esn in [false, true] {
            let f = Fixture::new(suite, esn);
            let chain = ipv6_inner(0, &HBH_DEST_UDP, 8, None);
            let mut padded = chain.clone();
            padded.extend([0; 37]);
            let cases = [
                (chain.clone(), 72),
                (padded, 72),
                (ipv6_inner(4, &[], 20, None), 60),
                (ipv6_inner(59, &[], 0, None), 40),
                (ipv6_inner(43, &[17, 0, 0, 0, 0, 0, 0, 0], 8, None), 56),
            ];
            for (i, (inner, len)) in cases.iter().enumerate() {
                let p = f.seal_raw(FRESH + i as u64, &body_with(&f, inner, NEXT_HEADER_IPV6));
                let o = f.inb.open_in_place(&mut p.clone());
                assert_eq!(
                    o.map(|o| (o.len, o.next_header)),
                    Ok((*len, NEXT_HEADER_IPV6)),
                    "{suite} esn={esn} case {i}"
                );
            }
        }
    }
}

/// ESN from the other side: a receiver past the 2^32 boundary refuses a packet sealed in the
/// block before it (high bits 0) whose low bits land ahead of the window, without moving the
/// window; the genuine packet with those low bits then opens.
#[test]
fn esn_high_bits_behind_the_receiver() {
    for suite in Suite::ALL {
        let (out, inb) = pair(suite, true, WINDOW);
        let base = (1u64 << 32) + 10;
        // The receiver follows the sender across the boundary (an SA starts at 1, so it has
        // always seen the block before): one packet just before it, one just after.
        for seq in [(1u64 << 32) - 20, base] {
            let out = OutboundSa::new(suite, SPI, &keymat(suite), true)
                .unwrap()
                .with_next_seq(seq);
            let p = seal(&out, &ipv4_packet(40, 0), NEXT_HEADER_IPV4);
            assert_eq!(inb.open_in_place(&mut p.clone()).map(|o| o.seq), Ok(seq));
        }
        let out = out.with_next_seq(base + 1);
        let genuine = seal(&out, &ipv4_packet(40, 1), NEXT_HEADER_IPV4);
        // The same low bits, one block lower.
        let behind = OutboundSa::new(suite, SPI, &keymat(suite), true)
            .unwrap()
            .with_next_seq(base + 1 - (1 << 32))
            .with_iv_offset(1 << 50);
        let stale = seal(&behind, &ipv4_packet(40, 2), NEXT_HEADER_IPV4);
        assert_eq!(&stale[4..8], &genuine[4..8]);
        assert_eq!(
            inb.open_in_place(&mut stale.clone()),
            Err(OpenError::Authentication)
        );
        assert_eq!(inb.highest_seq(), base);
        assert_eq!(
            inb.open_in_place(&mut genuine.clone()).map(|o| o.seq),
            Ok(base + 1)
        );
    }
}

/// AES-CBC with the right HMAC key and a wrong AES key: the ICV verifies (it is computed
/// over the ciphertext), so the sequence number is recorded, and the garbage the wrong key
/// decrypts to is refused by the trailer checks, never delivered.
#[test]
fn wrong_cbc_encryption_key() {
    for suite in Suite::ALL.into_iter().filter(|s| !s.is_aead()) {
        for esn in [false, true] {
            let f = Fixture::new(suite, esn);
            let mut k = keymat(suite);
            k[0] ^= 1;
            let other = OutboundSa::new(suite, SPI, &k, esn)
                .unwrap()
                .with_next_seq(FRESH);
            let p = seal(&other, &ipv4_packet(40, 3), NEXT_HEADER_IPV4);
            let r = f.open(&p);
            assert!(
                matches!(
                    r,
                    Err(OpenError::BadPadding | OpenError::BadNextHeader | OpenError::Malformed)
                ),
                "{suite}: {r:?}"
            );
            assert_eq!(f.inb.highest_seq(), FRESH);
        }
    }
}

/// The hand-made framing of [`Fixture::seal_raw`] and the crate's own agree: a correct body
/// sealed by hand opens, for every suite.
#[test]
fn hand_sealed_packets_open() {
    for suite in Suite::ALL {
        for esn in [false, true] {
            let f = Fixture::new(suite, esn);
            let p = f.seal_raw(FRESH, &body(&f, [1, 2, 2, NEXT_HEADER_IPV4]));
            let opened = f.inb.open_in_place(&mut p.clone()).unwrap();
            assert_eq!((opened.seq, opened.len), (FRESH, 20), "{suite}");
            assert_eq!(opened.offset, suite.header_len(), "{suite}");
        }
    }
}
