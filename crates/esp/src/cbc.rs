//! AES-CBC (RFC 3602) with an HMAC (RFC 2404, RFC 4868), encrypt-then-MAC as
//! RFC 4303 §3.3.2 orders it, and the generator of its unpredictable IVs.
//!
//! The AEAD suites' counterpart is `cipher.rs`, whose [`SaCipher`](crate::cipher::SaCipher)
//! dispatches to this one. AES and CBC are RustCrypto's (`aes` picks AES-NI at
//! run time; ring has no CBC mode), the HMACs are `ring`'s, and the truncated
//! ICV is compared in constant time with `subtle`.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{
    BlockCipher, BlockDecrypt, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, BlockSizeUser,
    InnerIvInit, KeyInit,
};
use aes::{Aes128, Aes192, Aes256};
use ring::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::suite::{CbcCipher, Integ};
use crate::{MAX_ICV_LEN, MAX_IV_LEN, SPI_SEQ_LEN};

/// The AES block, which is also the CBC IV (RFC 3602 §3).
pub(crate) const BLOCK: usize = 16;

/// An AES key schedule of one of the three sizes. The `aes` crate's
/// `zeroize` feature wipes the round keys when it is dropped.
enum Aes {
    A128(Aes128),
    A192(Aes192),
    A256(Aes256),
}

/// One direction's AES-CBC key and HMAC key.
///
/// The AES round keys are wiped on drop (the `aes` crate's `zeroize`
/// feature). The HMAC key is kept only as ring's `hmac::Key` (the inner and
/// outer hash states it precomputes) and its raw bytes are never copied out of
/// the caller's keying material (which the caller keeps in `Zeroizing`
/// buffers); ring offers no way to wipe those states, as for the AEAD keys
/// it holds.
pub(crate) struct CbcHmac {
    aes: Aes,
    mac: hmac::Key,
    icv_len: usize,
}

/// Why a CBC packet did not open. Carries nothing: a caller only ever counts
/// it as an authentication failure or a malformed packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rejected;

impl CbcHmac {
    /// `keymat` is the AES key followed by the HMAC key (RFC 7296 §2.17),
    /// exactly `cipher.key_len() + integ.key_len()` bytes (checked by the caller).
    pub(crate) fn new(cipher: CbcCipher, integ: Integ, keymat: &[u8]) -> Option<CbcHmac> {
        let (enc, mac) = keymat.split_at_checked(cipher.key_len())?;
        if mac.len() != integ.key_len() {
            return None;
        }
        let aes = match cipher {
            CbcCipher::Aes128 => Aes::A128(Aes128::new_from_slice(enc).ok()?),
            CbcCipher::Aes192 => Aes::A192(Aes192::new_from_slice(enc).ok()?),
            CbcCipher::Aes256 => Aes::A256(Aes256::new_from_slice(enc).ok()?),
        };
        Some(CbcHmac {
            aes,
            mac: hmac::Key::new(integ.hmac_algorithm(), mac),
            icv_len: integ.icv_len(),
        })
    }

    /// Seals `packet` = header (SPI, sequence number, 16-byte IV) | body |
    /// ICV: encrypts the body (a whole number of blocks) under the IV in the
    /// header, then writes the truncated HMAC of header and ciphertext
    /// (RFC 4303 §3.3.2: encrypt first, then compute the ICV over the result).
    pub(crate) fn seal(&self, packet: &mut [u8], seq: u64, esn: bool) -> Result<(), Rejected> {
        let auth_len = packet.len().checked_sub(self.icv_len).ok_or(Rejected)?;
        let (auth, icv) = packet.split_at_mut(auth_len);
        let (header, body) = auth
            .split_at_mut_checked(SPI_SEQ_LEN + BLOCK)
            .ok_or(Rejected)?;
        let iv = iv_of(header).ok_or(Rejected)?;
        self.aes.encrypt(&iv, body)?;
        let tag = self.tag(auth, seq, esn);
        icv.copy_from_slice(tag.as_ref().get(..self.icv_len).ok_or(Rejected)?);
        Ok(())
    }

    /// Opens `packet` (header | ciphertext | ICV) in place: checks the ICV
    /// first, in constant time, and decrypts only an authentic packet, so
    /// nothing about a forgery's plaintext or padding can leak (RFC 4303
    /// §3.4.4). Returns the length of the decrypted body, which starts after
    /// the header.
    pub(crate) fn open(&self, packet: &mut [u8], seq: u64, esn: bool) -> Result<usize, Rejected> {
        let auth_len = packet.len().checked_sub(self.icv_len).ok_or(Rejected)?;
        let (auth, icv) = packet.split_at_mut(auth_len);
        if !self.icv_matches(auth, icv, seq, esn) {
            return Err(Rejected);
        }
        let (header, body) = auth
            .split_at_mut_checked(SPI_SEQ_LEN + BLOCK)
            .ok_or(Rejected)?;
        let iv = iv_of(header).ok_or(Rejected)?;
        self.aes.decrypt(&iv, body)?;
        Ok(body.len())
    }

    /// Whether `icv` is the truncated HMAC of `auth`, compared in constant
    /// time so that a forger learns nothing from how long a reject took.
    fn icv_matches(&self, auth: &[u8], icv: &[u8], seq: u64, esn: bool) -> bool {
        let tag = self.tag(auth, seq, esn);
        tag.as_ref()
            .get(..self.icv_len)
            .is_some_and(|expected| bool::from(expected.ct_eq(icv)))
    }

    /// The full HMAC over SPI, sequence number, IV and ciphertext; with ESN,
    /// the high 32 bits of the sequence number are appended to what is
    /// authenticated but never sent (RFC 4303 §3.3.2.1), so a wrongly
    /// inferred high half fails the ICV.
    fn tag(&self, auth: &[u8], seq: u64, esn: bool) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(auth);
        if esn {
            ctx.update(&((seq >> 32) as u32).to_be_bytes());
        }
        ctx.sign()
    }
}

fn iv_of(header: &[u8]) -> Option<[u8; BLOCK]> {
    header
        .get(SPI_SEQ_LEN..SPI_SEQ_LEN + BLOCK)?
        .try_into()
        .ok()
}

impl Aes {
    fn encrypt(&self, iv: &[u8; BLOCK], body: &mut [u8]) -> Result<(), Rejected> {
        match self {
            Aes::A128(k) => cbc_encrypt(k, iv, body),
            Aes::A192(k) => cbc_encrypt(k, iv, body),
            Aes::A256(k) => cbc_encrypt(k, iv, body),
        }
    }

    fn decrypt(&self, iv: &[u8; BLOCK], body: &mut [u8]) -> Result<(), Rejected> {
        match self {
            Aes::A128(k) => cbc_decrypt(k, iv, body),
            Aes::A192(k) => cbc_decrypt(k, iv, body),
            Aes::A256(k) => cbc_decrypt(k, iv, body),
        }
    }
}

/// CBC over a borrowed key schedule (`&Aes*` is a block cipher too), so a
/// packet costs no key expansion and no copy of the round keys. ESP does its
/// own padding, so the body is already whole blocks: `NoPadding`, and a body
/// that is not is refused.
fn cbc_encrypt<C>(key: &C, iv: &[u8; BLOCK], body: &mut [u8]) -> Result<(), Rejected>
where
    C: BlockEncrypt + BlockCipher + BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    let len = body.len();
    cbc::Encryptor::<&C>::inner_iv_init(key, iv.into())
        .encrypt_padded_mut::<NoPadding>(body, len)
        .map(|_| ())
        .map_err(|_| Rejected)
}

fn cbc_decrypt<C>(key: &C, iv: &[u8; BLOCK], body: &mut [u8]) -> Result<(), Rejected>
where
    C: BlockDecrypt + BlockCipher + BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    cbc::Decryptor::<&C>::inner_iv_init(key, iv.into())
        .decrypt_padded_mut::<NoPadding>(body)
        .map(|_| ())
        .map_err(|_| Rejected)
}

/// Makes the IVs of an outbound AES-CBC SA.
///
/// RFC 3602 §2.1 wants CBC IVs that an attacker cannot predict (a predictable
/// IV lets a chosen-plaintext attacker test guesses of earlier plaintext
/// blocks, as BEAST did to TLS 1.0). Two ways were open: random bytes per
/// packet, or "a per-SA counter encrypted" under a secret key, which is the
/// first method of NIST SP 800-38A Appendix C. This is the second: IV =
/// AES-128 under a key of its own, drawn at random when the SA is created,
/// of the 64-bit counter `seq + iv_offset` (the same counter the AEAD suites
/// send as their IV). Why:
///
/// * It costs one AES block per packet and no system call: a CSPRNG per
///   packet means `getrandom` per packet, or a buffer of random bytes refilled
///   in batches, which is state shared by the worker threads that seal for
///   one SA (a lock, or per-thread buffers the crate cannot own being sans-IO).
/// * The counter never repeats within an SA (the sequence number may not
///   cycle), and AES is a permutation, so no two packets of an SA share an IV;
///   without the key the next IV is as unpredictable as AES output.
/// * A key of its own rather than the SA's encryption key keeps IV blocks
///   and data blocks apart, and drawing it at random per SA instance keeps a
///   manually keyed SA that restarts its counter (static keying) from
///   repeating IVs across restarts.
pub(crate) struct IvKey {
    key: Aes128,
}

impl IvKey {
    /// A fresh random key from the operating system (once per outbound SA).
    pub(crate) fn random() -> Option<IvKey> {
        use ring::rand::SecureRandom;
        let mut k = Zeroizing::new([0u8; 16]);
        ring::rand::SystemRandom::new().fill(&mut k[..]).ok()?;
        Some(IvKey {
            key: Aes128::new(&(*k).into()),
        })
    }

    /// The IV of the packet whose counter is `ctr`.
    #[inline]
    pub(crate) fn iv(&self, ctr: u64) -> [u8; MAX_IV_LEN] {
        let mut block = [0u8; BLOCK];
        block[8..].copy_from_slice(&ctr.to_be_bytes());
        let mut b = block.into();
        self.key.encrypt_block(&mut b);
        b.into()
    }
}

// The ICV buffer must hold every truncation this module writes.
const _: () = assert!(MAX_ICV_LEN >= 32 && MAX_IV_LEN == BLOCK);

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    /// RFC 3602 §4, cases 1-4: the raw AES-128-CBC vectors, through the
    /// same `Aes::encrypt` / `decrypt` the ESP path uses.
    #[test]
    fn rfc3602_cases_1_to_4() {
        let cases = [
            (
                "06a9214036b8a15b512e03d534120006",
                "3dafba429d9eb430b422da802c9fac41",
                "53696e676c6520626c6f636b206d7367",
                "e353779c1079aeb82708942dbe77181a",
            ),
            (
                "c286696d887c9aa0611bbb3e2025a45a",
                "562e17996d093d28ddb3ba695a2e6f58",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
            ),
            (
                "6c3ea0477630ce21a2ce334aa746c2cd",
                "c782dc4c098c66cbd9cd27d825682c81",
                "5468697320697320612034382d62797465206d657373616765202865786163746c7920332041455320626c6f636b7329",
                "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5021c19216bad525c8579695d83ba2684",
            ),
            (
                "56e47a38c5598974bc46903dba290349",
                "8ce82eefbea0da3c44699ed7db51b7d9",
                "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
                "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
            ),
        ];
        for (i, (key, iv, plain, cipher)) in cases.iter().enumerate() {
            let aes = Aes::A128(Aes128::new_from_slice(&unhex(key)).unwrap());
            let iv: [u8; 16] = unhex(iv).try_into().unwrap();
            let mut buf = unhex(plain);
            aes.encrypt(&iv, &mut buf).unwrap();
            assert_eq!(
                hex::encode(&buf),
                hex::encode(unhex(cipher)),
                "case {}",
                i + 1
            );
            aes.decrypt(&iv, &mut buf).unwrap();
            assert_eq!(
                hex::encode(&buf),
                hex::encode(unhex(plain)),
                "case {}",
                i + 1
            );
        }
    }

    /// HMAC truncation known answers through the ICV code (`tag` truncated
    /// to the suite's ICV, `icv_matches`). RFC 2202 §3 test cases 1 and 2
    /// (SHA-1; RFC 2404 §3 truncates them to 96 bits), RFC 4231 §4.2 and §4.3
    /// test cases 1 and 2 (SHA-2; RFC 4868 §2.1 truncates to half). Their
    /// keys are not the suites' key lengths, so the HMAC key is set directly.
    #[test]
    fn hmac_truncation_kats() {
        let hi = b"Hi There".to_vec();
        let jefe = b"what do ya want for nothing?".to_vec();
        let k1 = vec![0x0bu8; 20];
        let k2 = b"Jefe".to_vec();
        let cases: [(Integ, &Vec<u8>, &Vec<u8>, &str); 8] = [
            (
                Integ::HmacSha1_96,
                &k1,
                &hi,
                "b617318655057264e28bc0b6fb378c8ef146be00",
            ),
            (
                Integ::HmacSha1_96,
                &k2,
                &jefe,
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            ),
            (
                Integ::HmacSha256_128,
                &k1,
                &hi,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                Integ::HmacSha256_128,
                &k2,
                &jefe,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                Integ::HmacSha384_192,
                &k1,
                &hi,
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6",
            ),
            (
                Integ::HmacSha384_192,
                &k2,
                &jefe,
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
            ),
            (
                Integ::HmacSha512_256,
                &k1,
                &hi,
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ),
            (
                Integ::HmacSha512_256,
                &k2,
                &jefe,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (integ, key, data, full) in cases {
            let c = CbcHmac {
                aes: Aes::A128(Aes128::new(&[0u8; 16].into())),
                mac: hmac::Key::new(integ.hmac_algorithm(), key),
                icv_len: integ.icv_len(),
            };
            let full = unhex(full);
            let icv = &full[..integ.icv_len()];
            assert_eq!(
                hex::encode(&c.tag(data, 0, false).as_ref()[..integ.icv_len()]),
                hex::encode(icv),
                "{integ}"
            );
            assert!(c.icv_matches(data, icv, 0, false), "{integ}");
            // Any other truncation, or one changed bit, is refused.
            assert!(!c.icv_matches(data, &full[..integ.icv_len() - 1], 0, false));
            assert!(
                !c.icv_matches(data, &full, 0, false),
                "{integ}: untruncated"
            );
            let mut bad = icv.to_vec();
            bad[0] ^= 1;
            assert!(!c.icv_matches(data, &bad, 0, false), "{integ}");
            // With ESN the unsent high bits are authenticated too.
            assert!(!c.icv_matches(data, icv, 1 << 32, true), "{integ}");
            assert!(c.icv_matches(data, icv, 0, false));
        }
    }

    #[test]
    fn partial_blocks_are_refused() {
        let aes = Aes::A256(Aes256::new_from_slice(&[1u8; 32]).unwrap());
        for len in [1, 15, 17, 31] {
            let mut b = vec![0u8; len];
            assert_eq!(aes.encrypt(&[0; 16], &mut b), Err(Rejected));
            assert_eq!(aes.decrypt(&[0; 16], &mut b), Err(Rejected));
        }
    }

    #[test]
    fn iv_key_gives_distinct_ivs_and_keys_differ() {
        let a = IvKey::random().unwrap();
        let b = IvKey::random().unwrap();
        assert_ne!(a.iv(1), a.iv(2));
        assert_ne!(a.iv(1), b.iv(1), "a random key per SA");
        assert_eq!(a.iv(7), a.iv(7));
    }
}
