//! Inbound SA: authenticates, decrypts and replay-checks an ESP packet in
//! place and finds the inner packet in it.

use std::fmt;
use std::ops::Range;

use crate::cipher::SaCipher;
use crate::replay::{ReplayError, ReplayWindow};
use crate::suite::{KeyError, Layout, Suite};
use crate::{trailer, SPI_SEQ_LEN};

/// Why an ESP packet was dropped. Every variant is a drop reason the
/// dataplane counts; none of them is fatal to the SA.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than the smallest possible ESP packet.
    #[error("ESP packet too short")]
    Truncated,
    /// The packet belongs to another SA; the caller looked up the wrong one.
    #[error("SPI does not belong to this SA")]
    SpiMismatch,
    /// Sequence number already received (or 0, which is never sent).
    #[error("replayed sequence number")]
    Replay,
    /// Sequence number left of the replay window.
    #[error("sequence number older than the replay window")]
    TooOld,
    /// The ICV did not verify: forged, corrupted, wrong key or wrongly
    /// inferred ESN high bits.
    #[error("ICV check failed")]
    Authentication,
    /// Pad length larger than the data, or padding not 1, 2, 3, ...
    #[error("invalid ESP padding")]
    BadPadding,
    /// Next header is neither IPv4, IPv6 nor "no next header"; only tunnel
    /// mode is supported.
    #[error("unsupported next header")]
    BadNextHeader,
    /// A dummy packet (next header 59, RFC 4303 §2.6): authenticated and
    /// recorded, but carries nothing; counted apart from errors.
    #[error("dummy packet")]
    Dummy,
    /// Misaligned ciphertext, or an inner packet whose own header disagrees
    /// with what was decrypted (for IPv6 also a jumbogram, or extension
    /// headers running past the stated payload length).
    #[error("malformed ESP payload")]
    Malformed,
}

impl From<ReplayError> for OpenError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Duplicate | ReplayError::Zero => OpenError::Replay,
            ReplayError::TooOld => OpenError::TooOld,
        }
    }
}

/// Where the decrypted inner packet lies in the buffer given to
/// [`InboundSa::open_in_place`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Start of the inner packet: right after the SA's header
    /// ([`Suite::header_len`]: 16 bytes for the AEADs, 24 for AES-CBC).
    pub offset: usize,
    /// Inner packet length, without ESP and TFC padding.
    pub len: usize,
    /// [`NEXT_HEADER_IPV4`](crate::NEXT_HEADER_IPV4) or
    /// [`NEXT_HEADER_IPV6`](crate::NEXT_HEADER_IPV6).
    pub next_header: u8,
    /// Full (ESN-inferred) sequence number of the packet.
    pub seq: u64,
}

impl Opened {
    /// The inner packet as a range of the opened buffer.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// SPI of an ESP packet, for finding its SA before opening it.
pub fn peek_spi(esp: &[u8]) -> Option<u32> {
    let spi: [u8; 4] = esp.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(spi))
}

/// Inbound SA: the key and its anti-replay window. Shared by worker threads
/// behind an `Arc`; the window is lock-free (see [`ReplayWindow`]), so workers
/// opening packets of one SA never wait for each other.
pub struct InboundSa {
    cipher: SaCipher,
    suite: Suite,
    layout: Layout,
    spi: u32,
    esn: bool,
    window: ReplayWindow,
}

impl InboundSa {
    /// `keymat` is this direction's [`Suite::keymat_len`] bytes (an AEAD's
    /// key then salt, or the AES-CBC key then the HMAC key); `replay_window` is in
    /// packets with the rounding of [`ReplayWindow::new`] (0 = default).
    pub fn new(
        suite: Suite,
        spi: u32,
        keymat: &[u8],
        esn: bool,
        replay_window: usize,
    ) -> Result<Self, KeyError> {
        Ok(InboundSa {
            cipher: SaCipher::new(suite, keymat)?,
            suite,
            layout: Layout::of(suite),
            spi,
            esn,
            window: ReplayWindow::new(replay_window),
        })
    }

    /// Security parameter index we chose for this SA.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// Suite of this SA.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Whether extended (64-bit) sequence numbers are in use.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Replay window size in packets after rounding.
    pub fn replay_window_size(&self) -> usize {
        self.window().size()
    }

    /// Highest sequence number accepted so far, for status displays.
    pub fn highest_seq(&self) -> u64 {
        self.window().highest()
    }

    pub(crate) fn window(&self) -> &ReplayWindow {
        &self.window
    }

    /// Opens one whole ESP packet (the UDP payload, starting with the SPI)
    /// in place; on success the inner packet is `buf[opened.range()]`.
    ///
    /// The order is RFC 4303 §3.4.3's: cheap checks and the replay check
    /// first, so that junk and replays cost no cryptography; then the ICV
    /// (for AES-CBC before anything is decrypted); the window is updated only
    /// after authentication, so forgeries cannot move it, and checked again
    /// then, so that of two copies of one packet opened concurrently exactly
    /// one is accepted.
    pub fn open_in_place(&self, buf: &mut [u8]) -> Result<Opened, OpenError> {
        let seq_lo = self.check_header(buf)?;
        let seq = self.window.infer(seq_lo, self.esn);
        self.window.check(seq)?;
        let body_len = self.decrypt(buf, seq)?;
        self.window.update(seq)?;
        let offset = self.layout.header;
        let body = buf
            .get(offset..offset + body_len)
            .ok_or(OpenError::Malformed)?;
        let (data_len, next_header) = trailer::parse(body)?;
        let data = body.get(..data_len).ok_or(OpenError::Malformed)?;
        let len = trailer::inner_len(data, next_header)?;
        Ok(Opened {
            offset,
            len,
            next_header,
            seq,
        })
    }

    /// Length, SPI and alignment checks; returns the low sequence bits.
    fn check_header(&self, buf: &[u8]) -> Result<u32, OpenError> {
        if buf.len() < self.layout.min_packet() {
            return Err(OpenError::Truncated);
        }
        if peek_spi(buf) != Some(self.spi) {
            return Err(OpenError::SpiMismatch);
        }
        // RFC 4303 §2.4: pad length and next header end on a 4-byte
        // boundary, and a block cipher's input is whole blocks (RFC 3602
        // §2.4), so a peer never sends a body of another length.
        if !self
            .layout
            .aligned(buf.len() - self.layout.header - self.layout.icv)
        {
            return Err(OpenError::Malformed);
        }
        buf.get(4..SPI_SEQ_LEN)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or(OpenError::Truncated)
    }

    /// Authenticates and decrypts with the full sequence number `seq`,
    /// leaving the body (payload, padding, pad length, next header) right
    /// after the header; returns the body length. No replay or trailer
    /// checks, so known-answer tests can reach the raw cipher framing.
    pub(crate) fn decrypt(&self, buf: &mut [u8], seq: u64) -> Result<usize, OpenError> {
        self.cipher
            .open(buf, self.layout.header, self.spi, seq, self.esn)
            .map_err(|_| OpenError::Authentication)
    }
}

impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("suite", &self.suite)
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("esn", &self.esn)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{CbcCipher, Integ};
    use crate::{OutboundSa, HEADROOM, MAX_TRAILER, MIN_ESP_LEN};
    use proptest::prelude::*;

    const KEY: [u8; 96] = [9u8; 96];

    fn pair(suite: Suite, esn: bool) -> (OutboundSa, InboundSa) {
        let n = suite.keymat_len();
        (
            OutboundSa::new(suite, 0x4000, &KEY[..n], esn).unwrap(),
            InboundSa::new(suite, 0x4000, &KEY[..n], esn, 64).unwrap(),
        )
    }

    /// Seals an arbitrary body exactly as given, so trailer handling can be
    /// driven with authenticated garbage.
    fn seal_raw(out: &OutboundSa, seq: u64, body: &[u8]) -> Vec<u8> {
        let suite = out.suite();
        let mut buf = vec![0u8; HEADROOM + body.len() + suite.icv_len()];
        buf[HEADROOM..HEADROOM + body.len()].copy_from_slice(body);
        let iv = [seq as u8; 16];
        let r = out
            .seal_body(&mut buf, body.len(), seq, &iv[..suite.iv_len()])
            .unwrap();
        assert_eq!(r.end, buf.len());
        buf[r].to_vec()
    }

    /// A body of `n` bytes ending in the given trailer bytes, whole blocks of `suite`.
    fn body(suite: Suite, tail: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; tail.len().next_multiple_of(suite.block_len())];
        let at = b.len() - tail.len();
        b[at..].copy_from_slice(tail);
        b
    }

    #[test]
    fn authenticated_trailer_errors_still_use_up_the_sequence_number() {
        for suite in [
            Suite::Aes256Gcm16,
            Suite::Cbc(CbcCipher::Aes128, Integ::HmacSha1_96),
        ] {
            let (out, inb) = pair(suite, false);
            let b = |t: &[u8]| body(suite, t);
            let mut p = seal_raw(&out, 1, &b(&[0, 0, 0, 7, 1, 2, 2, 99]));
            assert_eq!(inb.open_in_place(&mut p), Err(OpenError::BadNextHeader));
            let mut p = seal_raw(&out, 1, &b(&[0, 0, 0, 7, 1, 2, 2, 99]));
            assert_eq!(inb.open_in_place(&mut p), Err(OpenError::Replay));
            let mut p = seal_raw(&out, 2, &b(&[0, 0, 9, 9, 1, 3, 2, 4]));
            assert_eq!(inb.open_in_place(&mut p), Err(OpenError::BadPadding));
            let mut p = seal_raw(&out, 3, &b(&[0, 0, 9, 9, 1, 2, 2, 59]));
            assert_eq!(inb.open_in_place(&mut p), Err(OpenError::Dummy));
            let mut p = seal_raw(&out, 4, &b(&[0, 0, 9, 9, 1, 2, 2, 4]));
            assert_eq!(inb.open_in_place(&mut p), Err(OpenError::Malformed));
            assert_eq!(inb.highest_seq(), 4, "{suite}");
        }
    }

    #[test]
    fn misaligned_body_is_malformed_before_any_crypto() {
        let (_, inb) = pair(Suite::ChaCha20Poly1305, false);
        let mut p = vec![0u8; MIN_ESP_LEN + 1];
        p[..4].copy_from_slice(&0x4000u32.to_be_bytes());
        assert_eq!(inb.open_in_place(&mut p), Err(OpenError::Malformed));
        assert_eq!(
            inb.open_in_place(&mut p[..MIN_ESP_LEN - 1]),
            Err(OpenError::Truncated)
        );
        p[3] = 1;
        assert_eq!(inb.open_in_place(&mut p), Err(OpenError::SpiMismatch));
        // AES-CBC: the body must be whole 16-byte blocks.
        let suite = Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha512_256);
        let (_, inb) = pair(suite, false);
        let min = suite.min_packet_len();
        assert_eq!(min, 24 + 2 + 32);
        for len in [min, 24 + 4 + 32, 24 + 20 + 32, 24 + 32 + 32 - 1] {
            let mut p = vec![0u8; len];
            p[..4].copy_from_slice(&0x4000u32.to_be_bytes());
            assert_eq!(
                inb.open_in_place(&mut p),
                Err(OpenError::Malformed),
                "{len}"
            );
        }
        let mut p = vec![0u8; min - 1];
        p[..4].copy_from_slice(&0x4000u32.to_be_bytes());
        assert_eq!(inb.open_in_place(&mut p), Err(OpenError::Truncated));
        // Whole blocks reach the ICV check (and fail it).
        let mut p = vec![0u8; 24 + 16 + 32];
        p[..4].copy_from_slice(&0x4000u32.to_be_bytes());
        p[7] = 1;
        assert_eq!(inb.open_in_place(&mut p), Err(OpenError::Authentication));
    }

    #[test]
    fn dummy_packet_from_seal_in_place() {
        let (out, inb) = pair(Suite::Aes128Gcm16, true);
        let mut buf = vec![0u8; HEADROOM + 40 + MAX_TRAILER];
        let r = out
            .seal_in_place(&mut buf, 40, crate::NEXT_HEADER_NONE)
            .unwrap();
        assert_eq!(inb.open_in_place(&mut buf[r]), Err(OpenError::Dummy));
        assert_eq!(inb.highest_seq(), 1);
    }

    #[test]
    fn debug_shows_no_key() {
        let (_, inb) = pair(Suite::Aes128Gcm16, false);
        let dbg = format!("{inb:?}");
        assert!(
            dbg.contains("0x00004000") && dbg.contains("highest"),
            "{dbg}"
        );
        assert!(!dbg.contains("9, 9"), "{dbg}");
    }

    proptest! {
        /// Authenticated bodies of any content exercise the trailer and inner
        /// length paths that random ciphertext never reaches.
        #[test]
        fn authenticated_garbage_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..200),
            suite in prop::sample::select(Suite::ALL.to_vec()),
        ) {
            let (out, inb) = pair(suite, false);
            let mut body = body;
            body.truncate(body.len() / suite.block_len() * suite.block_len());
            if body.is_empty() {
                body = vec![0; suite.block_len()];
            }
            let mut p = seal_raw(&out, 1, &body);
            match inb.open_in_place(&mut p) {
                Ok(o) => {
                    prop_assert!(o.range().end <= p.len() - suite.icv_len());
                    prop_assert!(o.next_header == 4 || o.next_header == 41);
                }
                Err(e) => prop_assert!(!matches!(
                    e,
                    OpenError::Authentication | OpenError::Replay | OpenError::SpiMismatch
                )),
            }
        }
    }
}
