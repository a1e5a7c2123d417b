//! ESP inbound: `classify` and `InboundSa::open_in_place` on one SA (fixed key and SPI; suite,
//! ESN and replay window size chosen by the first byte) fed a sequence of packets. Packets are
//! either raw fuzz bytes (forgeries) or sealed here with the SA's key at a fuzz-chosen
//! sequence number, so decryption, the trailer and inner-packet checks and the anti-replay
//! window are all reached. A small model of the window predicts the replay verdict of sealed
//! packets whose sequence number the receiver can infer.
//!
//! Input: `[flags]` then records `[kind]...` (see `Record`).
//! - flags bit 0: ESN; bits 3-4: replay window 1024 (default) / 64 / 128 / 4096; bit 5 clear:
//!   an AEAD, bits 1-2 (mod 3) pick which (the layout of the seeds from before AES-CBC); bit 5
//!   set: AES-CBC + HMAC, bits 1-2 and 6-7 (a 4-bit number mod 12) pick which. Every suite of
//!   `Suite::ALL` is reachable.
//! - kind & 3 == 0 (raw): `[len u16][bytes]`; with kind & 4 the first 4 bytes are replaced by
//!   the SA's SPI.
//! - kind & 3 == 1 (sealed body): `[seq][len u16][body]`: `body` (payload, padding, pad
//!   length, next header: all fuzz bytes) encrypted at sequence number `seq` by a framing
//!   written here (ring's AEADs; RustCrypto AES-CBC + ring HMAC), not the crate's. A CBC body
//!   that is not whole blocks goes out unencrypted: it is refused by its size first.
//! - kind & 3 == 2 (sealed packet): `[seq][next header][len u16][inner]`: sealed by
//!   `OutboundSa` (well-formed padding).
//! - kind & 3 == 3: `classify` on `[len u16][bytes]` only.
//! - `seq` is `[mode][8 bytes]`: mode & 1: absolute u64, else a signed offset from the highest
//!   sequence number accepted so far. Without ESN it is cut to 32 bits.

#![no_main]

use std::collections::BTreeSet;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use ironsec_esp::{
    classify, CbcCipher, Datagram, InboundSa, OpenError, OutboundSa, Suite, HEADROOM, MAX_TRAILER,
    MIN_ESP_LEN,
};
use libfuzzer_sys::fuzz_target;
use ring::{aead, hmac};

const SPI: u32 = 0xc000_0201;
const MAX_RECORDS: usize = 64;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let (b, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*b))
    }
    /// `[len u16][bytes]`; a short tail takes what is left.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let (l, rest) = self.0.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*l)).min(rest.len());
        let (b, rest) = rest.split_at(len);
        self.0 = rest;
        Some(b)
    }
}

fn keymat(suite: Suite) -> Vec<u8> {
    (0..suite.keymat_len())
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(3))
        .collect()
}

/// The suite `flags` picks (see the module doc).
fn suite_of(flags: u8) -> Suite {
    let low = usize::from((flags >> 1) & 3);
    if flags & 0x20 == 0 {
        Suite::AEAD[low % 3]
    } else {
        let cbc = &Suite::ALL[3..];
        cbc[(low | usize::from(flags >> 6) << 2) % cbc.len()]
    }
}

fn algorithm(suite: Suite) -> &'static aead::Algorithm {
    match suite {
        Suite::Aes128Gcm16 => &aead::AES_128_GCM,
        Suite::Aes256Gcm16 => &aead::AES_256_GCM,
        _ => &aead::CHACHA20_POLY1305,
    }
}

/// An ESP packet sealed independently of the crate.
fn seal_raw(suite: Suite, esn: bool, seq: u64, body: &[u8]) -> Vec<u8> {
    match suite {
        Suite::Cbc(cipher, _) => seal_raw_cbc(suite, cipher, esn, seq, body),
        _ => seal_raw_aead(suite, esn, seq, body),
    }
}

/// RFC 3602 + RFC 4303 3.3.2: SPI, low sequence bits, 16-byte IV, AES-CBC of `body` (if it is
/// whole blocks; else `body` as it is), then the HMAC of all that with the high sequence bits
/// appended under ESN (3.3.2.1), truncated to the ICV. Key material: AES key, HMAC key.
fn seal_raw_cbc(suite: Suite, cipher: CbcCipher, esn: bool, seq: u64, body: &[u8]) -> Vec<u8> {
    let km = keymat(suite);
    let (enc, mac) = km.split_at(cipher.key_len());
    let integ = suite.integ().unwrap();
    let iv = {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        iv
    };
    let mut ct = body.to_vec();
    if ct.len() % 16 == 0 {
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
        .unwrap();
    }
    let mut pkt = Vec::with_capacity(HEADROOM + body.len() + integ.icv_len());
    pkt.extend_from_slice(&SPI.to_be_bytes());
    pkt.extend_from_slice(&(seq as u32).to_be_bytes());
    pkt.extend_from_slice(&iv);
    pkt.extend_from_slice(&ct);
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(integ.hmac_algorithm(), mac));
    ctx.update(&pkt);
    if esn {
        ctx.update(&((seq >> 32) as u32).to_be_bytes());
    }
    pkt.extend_from_slice(&ctx.sign().as_ref()[..integ.icv_len()]);
    pkt
}

/// RFC 4303 / 4106 / 7634: SPI, low sequence bits, explicit IV, ciphertext of `body`, ICV;
/// AAD with the high bits under ESN.
fn seal_raw_aead(suite: Suite, esn: bool, seq: u64, body: &[u8]) -> Vec<u8> {
    let km = keymat(suite);
    let (key, salt) = km.split_at(suite.key_len());
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(algorithm(suite), key).unwrap());
    let iv = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes();
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&iv);
    let mut aad = SPI.to_be_bytes().to_vec();
    if esn {
        aad.extend_from_slice(&seq.to_be_bytes());
    } else {
        aad.extend_from_slice(&(seq as u32).to_be_bytes());
    }
    let mut pkt = Vec::with_capacity(HEADROOM + body.len() + suite.icv_len());
    pkt.extend_from_slice(&SPI.to_be_bytes());
    pkt.extend_from_slice(&(seq as u32).to_be_bytes());
    pkt.extend_from_slice(&iv);
    let mut ct = body.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&aad[..]),
            &mut ct,
        )
        .unwrap();
    pkt.extend_from_slice(&ct);
    pkt.extend_from_slice(tag.as_ref());
    pkt
}

/// What the receiver's window has accepted, as far as the model knows.
struct Model {
    highest: u64,
    seen: BTreeSet<u64>,
    size: u64,
    /// A raw packet passed authentication (cannot happen unless forged keys): stop predicting.
    lost: bool,
}

impl Model {
    fn record(&mut self, s: u64) {
        self.seen.insert(s);
        self.highest = self.highest.max(s);
        let floor = self.highest.saturating_sub(self.size);
        self.seen = self.seen.split_off(&floor);
    }

    /// The replay verdict for a packet really sealed at `s`, when the receiver can infer `s`
    /// from its low 32 bits: `Some(Ok)` = passes the window, `Some(Err)` = refused;
    /// `None` = no prediction.
    fn predict(&self, s: u64, esn: bool) -> Option<Result<(), OpenError>> {
        if self.lost {
            return None;
        }
        let h = self.highest;
        let near = !esn
            || if s > h {
                s - h < 1 << 31
            } else {
                h - s <= 1 << 31
            };
        if !near {
            return None;
        }
        Some(if s == 0 {
            Err(OpenError::Replay)
        } else if s > h {
            Ok(())
        } else if h - s >= self.size {
            Err(OpenError::TooOld)
        } else if self.seen.contains(&s) {
            Err(OpenError::Replay)
        } else {
            Ok(())
        })
    }
}

/// Errors that mean the packet was authenticated (and so recorded in the window).
fn after_auth(r: &Result<ironsec_esp::Opened, OpenError>, aligned: bool) -> bool {
    match r {
        Ok(_) => true,
        Err(OpenError::BadPadding | OpenError::BadNextHeader | OpenError::Dummy) => true,
        Err(OpenError::Malformed) => aligned,
        Err(_) => false,
    }
}

fn check_classify(pkt: &[u8]) {
    match classify(pkt) {
        Datagram::Ike(ike) => {
            assert!(pkt.len() >= 4 + 28 && pkt[..4] == [0; 4] && ike == &pkt[4..]);
        }
        Datagram::NatKeepalive => assert_eq!(pkt, [0xff]),
        Datagram::Esp { spi } => {
            assert!(pkt.len() >= MIN_ESP_LEN && spi >= 256);
            assert_eq!(spi.to_be_bytes(), pkt[..4]);
        }
        Datagram::Malformed(_) => {}
    }
}

fn check_opened(
    suite: Suite,
    r: &Result<ironsec_esp::Opened, OpenError>,
    buf: &[u8],
    plain: Option<&[u8]>,
    seq: Option<u64>,
) {
    if let Ok(o) = r {
        assert_eq!(o.offset, suite.header_len());
        assert!(
            o.range().end <= buf.len() - suite.icv_len(),
            "{o:?} beyond the body"
        );
        assert!(o.next_header == 4 || o.next_header == 41, "{o:?}");
        // The inner packet's own header states the length delivered and agrees with the
        // next header; an IPv6 jumbogram (payload length 0 before hop-by-hop) never opens.
        let inner = &buf[o.range()];
        if o.next_header == 4 {
            assert_eq!(inner[0] >> 4, 4, "{o:?}");
            assert_eq!(usize::from(u16::from_be_bytes([inner[2], inner[3]])), o.len);
        } else {
            assert_eq!(inner[0] >> 4, 6, "{o:?}");
            let payload = usize::from(u16::from_be_bytes([inner[4], inner[5]]));
            assert_eq!(40 + payload, o.len, "{o:?}");
            assert!(payload != 0 || inner[6] != 0, "jumbogram delivered: {o:?}");
        }
        if let Some(s) = seq {
            assert_eq!(o.seq, s, "opened at another sequence number");
        }
        if let Some(p) = plain {
            assert_eq!(&buf[o.range()], &p[..o.len], "decrypted bytes differ");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_classify(data);
    let mut inp = Input(data);
    let Some(flags) = inp.u8() else { return };
    let esn = flags & 1 != 0;
    let suite = suite_of(flags);
    let window = [0, 64, 128, 4096][usize::from((flags >> 3) & 3)];
    let sa = InboundSa::new(suite, SPI, &keymat(suite), esn, window).unwrap();
    assert_eq!(sa.esn(), esn);
    let mut model = Model {
        highest: 0,
        seen: BTreeSet::new(),
        size: sa.replay_window_size() as u64,
        lost: false,
    };
    for _ in 0..MAX_RECORDS {
        let Some(kind) = inp.u8() else { break };
        match kind & 3 {
            0 => {
                let Some(b) = inp.bytes() else { break };
                let mut buf = b.to_vec();
                if kind & 4 != 0 && buf.len() >= 4 {
                    buf[..4].copy_from_slice(&SPI.to_be_bytes());
                }
                check_classify(&buf);
                let r = sa.open_in_place(&mut buf);
                check_opened(suite, &r, &buf, None, None);
                match &r {
                    Ok(o) => model.record(o.seq),
                    Err(_) if after_auth(&r, true) => model.lost = true,
                    Err(_) => {}
                }
            }
            1 | 2 => {
                let (Some(mode), Some(v)) = (inp.u8(), inp.u64()) else {
                    break;
                };
                let mut s = if mode & 1 != 0 {
                    v
                } else {
                    model.highest.wrapping_add(v)
                };
                if !esn {
                    s &= u64::from(u32::MAX);
                }
                let (mut buf, plain) = if kind & 3 == 1 {
                    let Some(body) = inp.bytes() else { break };
                    (seal_raw(suite, esn, s, body), body.to_vec())
                } else {
                    let Some(nh) = inp.u8() else { break };
                    let Some(inner) = inp.bytes() else { break };
                    s = s.max(1);
                    let out = OutboundSa::new(suite, SPI, &keymat(suite), esn)
                        .unwrap()
                        .with_next_seq(s);
                    let mut buf = vec![0u8; HEADROOM + inner.len() + MAX_TRAILER];
                    buf[HEADROOM..HEADROOM + inner.len()].copy_from_slice(inner);
                    let r = out
                        .seal_in_place(&mut buf, inner.len(), nh)
                        .expect("sealing within the sequence space");
                    assert_eq!(r.start, HEADROOM - suite.header_len());
                    (buf[r].to_vec(), inner.to_vec())
                };
                check_classify(&buf);
                if buf.len() >= MIN_ESP_LEN {
                    assert_eq!(classify(&buf), Datagram::Esp { spi: SPI });
                }
                let overhead = suite.header_len() + suite.icv_len();
                let aligned =
                    buf.len() >= overhead && (buf.len() - overhead) % suite.block_len() == 0;
                let size_verdict = if buf.len() < suite.min_packet_len() {
                    Some(OpenError::Truncated)
                } else if !aligned {
                    Some(OpenError::Malformed)
                } else {
                    None
                };
                let prediction = model.predict(s, esn);
                let r = sa.open_in_place(&mut buf);
                check_opened(suite, &r, &buf, Some(&plain), Some(s));
                if let Some(e) = size_verdict {
                    assert_eq!(r, Err(e), "seq {s}, {} bytes", buf.len());
                    continue;
                }
                match prediction {
                    Some(Ok(())) => assert!(
                        after_auth(&r, aligned),
                        "sealed at {s} (highest {}, window {}, esn {esn}): {r:?}",
                        model.highest,
                        model.size
                    ),
                    Some(Err(e)) => assert_eq!(
                        r,
                        Err(e),
                        "sealed at {s} (highest {}, window {}, esn {esn})",
                        model.highest,
                        model.size
                    ),
                    None => {}
                }
                if after_auth(&r, aligned) {
                    model.record(s);
                }
                if !model.lost {
                    assert_eq!(sa.highest_seq(), model.highest, "window's highest");
                }
            }
            _ => {
                let Some(b) = inp.bytes() else { break };
                check_classify(b);
            }
        }
    }
});
