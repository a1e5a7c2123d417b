//! Outbound SA: turns an inner IP packet into an ESP packet in place.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cbc::IvKey;
use crate::cipher::{SaCipher, AEAD_IV_LEN};
use crate::suite::{KeyError, Layout, Suite};
use crate::{trailer, HEADROOM, MAX_IV_LEN};

/// Counter value once the last sequence number has been handed out. 0 is
/// free for this because it is never a valid sequence number, and it is the
/// only value left when an ESN SA has used all 2^64 - 1 others.
const EXHAUSTED: u64 = 0;

/// Why a packet could not be sealed.
#[derive(thiserror::Error, Debug, PartialEq, Eq, Clone, Copy)]
pub enum SealError {
    /// RFC 4303 §3.3.3: the counter must not cycle, because a repeated
    /// sequence number would be dropped as a replay and, worse, would reuse an
    /// AEAD nonce under the same key. The SA must be rekeyed.
    #[error("sequence numbers exhausted: SA must be rekeyed")]
    SequenceExhausted,
    /// The buffer cannot hold the header, the payload and the trailer.
    #[error("buffer too small for ESP header, payload, trailer and ICV")]
    BufferTooSmall,
}

/// Outbound SA, meant to be shared by worker threads behind an `Arc`:
/// sealing takes `&self` and draws sequence numbers from one atomic counter,
/// so concurrent sealers never reuse a sequence number and therefore never
/// reuse a nonce.
pub struct OutboundSa {
    cipher: SaCipher,
    /// AES-CBC only: the key that turns the counter into an unpredictable IV
    /// (see [`IvKey`] for why). The AEADs send the counter itself.
    iv_key: Option<IvKey>,
    suite: Suite,
    layout: Layout,
    spi: u32,
    esn: bool,
    /// Next sequence number to hand out, or [`EXHAUSTED`].
    next: AtomicU64,
    /// Added (mod 2^64) to the sequence number to form the IV counter. See
    /// [`OutboundSa::with_iv_offset`].
    iv_offset: u64,
}

impl OutboundSa {
    /// `keymat` is this direction's slice of the CHILD_SA keying material
    /// ([`Suite::keymat_len`] bytes: an AEAD's key then salt, or the AES-CBC
    /// key then the HMAC key); `esn` is whether extended sequence numbers
    /// were negotiated. An AES-CBC SA also draws its random IV key here, the
    /// one time this crate asks the operating system for anything.
    pub fn new(suite: Suite, spi: u32, keymat: &[u8], esn: bool) -> Result<Self, KeyError> {
        let cipher = SaCipher::new(suite, keymat)?;
        let iv_key = match suite {
            Suite::Cbc(..) => Some(IvKey::random().ok_or(KeyError::Random { suite })?),
            _ => None,
        };
        Ok(OutboundSa {
            cipher,
            iv_key,
            layout: Layout::of(suite),
            suite,
            spi,
            esn,
            next: AtomicU64::new(1),
            iv_offset: 0,
        })
    }

    /// Derives the IV counter as `seq + offset (mod 2^64)` instead of `seq`: an AEAD sends
    /// it as its explicit IV, AES-CBC encrypts it ([`IvKey`]). Adding a constant is a
    /// bijection, so IVs stay unique for the life of this SA; a random offset also keeps them
    /// unique across SA instances that share a key — manual keys outlive the process, and a
    /// restarted daemon starts its sequence numbers at 1 again, which with a plain counter IV
    /// would repeat AEAD nonces under the same key.
    pub fn with_iv_offset(mut self, offset: u64) -> Self {
        self.iv_offset = offset;
        self
    }

    /// Starts the counter at `next_seq`, so tests can reach exhaustion
    /// without sealing billions of packets. 0 is not a sequence number and is
    /// taken as 1.
    pub fn with_next_seq(mut self, next_seq: u64) -> Self {
        *self.next.get_mut() = next_seq.max(1);
        self
    }

    /// Security parameter index the peer chose for this SA.
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

    /// Next sequence number that will be used, for status displays. Once an
    /// SA is exhausted this is the last usable number plus one, or 0 for an
    /// ESN SA that used 2^64 - 1.
    pub fn next_seq(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Whether every sequence number has been used, so the control plane can
    /// see that a rekey is overdue.
    pub fn is_exhausted(&self) -> bool {
        let n = self.next_seq();
        n == EXHAUSTED || n > self.max_seq()
    }

    fn max_seq(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// Takes the next sequence number. A compare-and-swap loop rather than
    /// `fetch_add`, because the counter must stop at the end of the space
    /// instead of wrapping back to already used numbers, even with many
    /// threads racing at the boundary.
    #[inline]
    fn take_seq(&self) -> Result<u64, SealError> {
        let max = self.max_seq();
        self.next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                if n == EXHAUSTED || n > max {
                    None
                } else {
                    Some(n.checked_add(1).unwrap_or(EXHAUSTED))
                }
            })
            .map_err(|_| SealError::SequenceExhausted)
    }

    /// Where this SA's packets start in a sealing buffer: its header ends
    /// where the inner packet begins, at [`HEADROOM`], so a suite with a
    /// shorter header than the longest starts further in.
    pub fn packet_start(&self) -> usize {
        HEADROOM - self.layout.header
    }

    /// Seals the inner packet at `buf[HEADROOM..HEADROOM + payload_len]`
    /// into an ESP packet and returns where in `buf` it lies: it starts at
    /// [`OutboundSa::packet_start`] (the header is written in front of the
    /// inner packet, which is encrypted where it is) and ends after the ICV.
    ///
    /// `buf` needs room for the padding, pad length, next header and ICV
    /// after the payload; [`MAX_TRAILER`](crate::MAX_TRAILER) bytes are always
    /// enough. The size is checked before a sequence number is taken, so a
    /// short buffer does not burn one.
    #[inline]
    pub fn seal_in_place(
        &self,
        buf: &mut [u8],
        payload_len: usize,
        next_header: u8,
    ) -> Result<Range<usize>, SealError> {
        let body_len = self.body_len(payload_len)?;
        self.packet_range(body_len)
            .filter(|r| r.end <= buf.len())
            .ok_or(SealError::BufferTooSmall)?;
        let seq = self.take_seq()?;
        self.write_trailer(buf, payload_len, body_len, next_header)?;
        // The IV counter is the 64-bit sequence number (plus a constant offset): unique per
        // key by construction, which is all RFC 4106 §3.1 and RFC 7634 §2 ask of an AEAD's
        // IV. AES-CBC needs it unpredictable as well (RFC 3602 §2.1) and encrypts it.
        let ctr = seq.wrapping_add(self.iv_offset);
        self.finish(buf, body_len, seq, Iv::Counter(ctr))
    }

    /// Sealing with a caller-chosen sequence number and IV (of
    /// [`Suite::iv_len`] bytes). Crate-private: reusing an IV under one key
    /// breaks an AEAD, and a predictable one breaks CBC, so outside code only
    /// gets the counter-driven [`OutboundSa::seal_in_place`]; tests use this to
    /// reproduce published vectors whose IV is not their sequence number.
    #[cfg(test)]
    pub(crate) fn seal_with_iv(
        &self,
        buf: &mut [u8],
        payload_len: usize,
        next_header: u8,
        seq: u64,
        iv: &[u8],
    ) -> Result<Range<usize>, SealError> {
        let body_len = self.body_len(payload_len)?;
        self.write_trailer(buf, payload_len, body_len, next_header)?;
        self.finish(buf, body_len, seq, Iv::Given(iv))
    }

    /// Encrypts `buf[HEADROOM..HEADROOM + body_len]` as it is, trailer
    /// included, and writes the header (with the given IV) and ICV around it.
    #[cfg(test)]
    pub(crate) fn seal_body(
        &self,
        buf: &mut [u8],
        body_len: usize,
        seq: u64,
        iv: &[u8],
    ) -> Result<Range<usize>, SealError> {
        self.finish(buf, body_len, seq, Iv::Given(iv))
    }

    #[inline]
    fn write_trailer(
        &self,
        buf: &mut [u8],
        payload_len: usize,
        body_len: usize,
        next_header: u8,
    ) -> Result<(), SealError> {
        // body_len >= payload_len + 2; both checked to fit with HEADROOM.
        let end = HEADROOM
            .checked_add(body_len)
            .ok_or(SealError::BufferTooSmall)?;
        let trailer_bytes = buf
            .get_mut(HEADROOM + payload_len..end)
            .ok_or(SealError::BufferTooSmall)?;
        trailer::write(trailer_bytes, next_header);
        Ok(())
    }

    /// Writes the header around the body at `buf[HEADROOM..HEADROOM + body_len]`,
    /// encrypts it and appends the ICV.
    #[inline(always)]
    fn finish(
        &self,
        buf: &mut [u8],
        body_len: usize,
        seq: u64,
        iv: Iv<'_>,
    ) -> Result<Range<usize>, SealError> {
        let range = self
            .packet_range(body_len)
            .ok_or(SealError::BufferTooSmall)?;
        let packet = buf
            .get_mut(range.clone())
            .ok_or(SealError::BufferTooSmall)?;
        let header_len = self.layout.header;
        let header = packet
            .get_mut(..header_len)
            .ok_or(SealError::BufferTooSmall)?;
        let (spi_seq, iv_bytes) = header.split_at_mut(8);
        spi_seq[..4].copy_from_slice(&self.spi.to_be_bytes());
        spi_seq[4..].copy_from_slice(&(seq as u32).to_be_bytes());
        // Fixed-size copies for the two real layouts; the suite decided the header length.
        match (iv, &self.iv_key, iv_bytes.len()) {
            (Iv::Counter(ctr), None, AEAD_IV_LEN) => iv_bytes.copy_from_slice(&ctr.to_be_bytes()),
            (Iv::Counter(ctr), Some(k), MAX_IV_LEN) => iv_bytes.copy_from_slice(&k.iv(ctr)),
            (Iv::Given(given), _, n) if given.len() == n => iv_bytes.copy_from_slice(given),
            _ => return Err(SealError::BufferTooSmall),
        }
        // The ciphers refuse only what the checks above rule out (a body that
        // is not whole blocks, inputs beyond an AEAD's ~2^36-byte limit).
        self.cipher
            .seal(packet, header_len, self.spi, seq, self.esn)
            .map_err(|_| SealError::BufferTooSmall)?;
        Ok(range)
    }

    #[inline]
    fn body_len(&self, payload_len: usize) -> Result<usize, SealError> {
        self.layout
            .body_len(payload_len)
            .ok_or(SealError::BufferTooSmall)
    }

    /// Where the packet with a body of `body_len` bytes lies in the buffer.
    #[inline]
    fn packet_range(&self, body_len: usize) -> Option<Range<usize>> {
        let end = HEADROOM
            .checked_add(body_len)?
            .checked_add(self.layout.icv)?;
        Some(self.packet_start()..end)
    }
}

/// Where a packet's IV comes from: the SA's counter (the only way outside
/// the crate), or the caller (known-answer tests).
#[derive(Clone, Copy)]
enum Iv<'a> {
    Counter(u64),
    #[cfg_attr(not(test), allow(dead_code))]
    Given(&'a [u8]),
}

impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("suite", &self.suite)
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("esn", &self.esn)
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{CbcCipher, Integ};
    use crate::MAX_TRAILER;

    const CBC: Suite = Suite::Cbc(CbcCipher::Aes256, Integ::HmacSha256_128);

    fn sa(esn: bool) -> OutboundSa {
        OutboundSa::new(Suite::Aes128Gcm16, 0x1234, &[1u8; 20], esn).unwrap()
    }

    #[test]
    fn header_layout_and_padding() {
        let sa = sa(true).with_next_seq(0x1_0000_0002);
        let mut buf = vec![0u8; HEADROOM + 21 + MAX_TRAILER];
        let r = sa.seal_in_place(&mut buf, 21, 4).unwrap();
        // The AEAD header is 16 bytes: the packet starts 8 bytes into the headroom.
        assert_eq!(r, 8..HEADROOM + 24 + 16);
        let p = &buf[r];
        assert_eq!(&p[..4], &0x1234u32.to_be_bytes());
        assert_eq!(&p[4..8], &2u32.to_be_bytes());
        assert_eq!(&p[8..16], &0x1_0000_0002u64.to_be_bytes());
        assert_eq!(sa.next_seq(), 0x1_0000_0003);
    }

    #[test]
    fn cbc_header_layout_padding_and_unpredictable_iv() {
        let sa = OutboundSa::new(CBC, 0x1234, &[3u8; 64], false).unwrap();
        let mut buf = vec![0u8; HEADROOM + 21 + MAX_TRAILER];
        let r = sa.seal_in_place(&mut buf, 21, 4).unwrap();
        // 24-byte header from the start of the buffer, 21 + 2 padded to 32, 16-byte ICV.
        assert_eq!(r, 0..HEADROOM + 32 + 16);
        assert_eq!(sa.packet_start(), 0);
        assert_eq!(&buf[..4], &0x1234u32.to_be_bytes());
        assert_eq!(&buf[4..8], &1u32.to_be_bytes());
        let iv1 = buf[8..24].to_vec();
        let r2 = sa.seal_in_place(&mut buf, 21, 4).unwrap();
        assert_eq!(r2, r);
        assert_ne!(&buf[8..24], &iv1[..], "a fresh IV per packet");
        assert_ne!(&iv1[8..], &1u64.to_be_bytes(), "not the counter in clear");
        // Another SA instance with the same key draws another IV key.
        let other = OutboundSa::new(CBC, 0x1234, &[3u8; 64], false).unwrap();
        other.seal_in_place(&mut buf, 21, 4).unwrap();
        assert_ne!(&buf[8..24], &iv1[..]);
    }

    #[test]
    fn iv_offset_changes_the_iv_not_the_sequence_number() {
        let a = sa(true);
        let b = sa(true).with_iv_offset(u64::MAX);
        // A minimal IPv4 header (total length 20) as the inner packet.
        let mut x = vec![0u8; 100];
        x[HEADROOM] = 0x45;
        x[HEADROOM + 3] = 20;
        let mut y = x.clone();
        let r = a.seal_in_place(&mut x, 20, 4).unwrap();
        assert_eq!(b.seal_in_place(&mut y, 20, 4), Ok(r.clone()));
        let (x, y) = (&mut x[r.clone()], &mut y[r]);
        let n = x.len();
        assert_eq!(&x[4..8], &y[4..8], "same sequence number");
        assert_eq!(&x[8..16], &1u64.to_be_bytes());
        assert_eq!(&y[8..16], &0u64.to_be_bytes(), "1 + (2^64 - 1) wraps to 0");
        // Same key, same sequence number, different nonce: different ciphertext.
        assert_ne!(&x[16..n], &y[16..n]);
        // The receiver takes the IV from the packet, so the offset needs no agreement.
        let rx = crate::InboundSa::new(Suite::Aes128Gcm16, 0x1234, &[1u8; 20], true, 0).unwrap();
        let opened = rx.open_in_place(y).unwrap();
        assert_eq!((opened.seq, opened.len), (1, 20));
    }

    #[test]
    fn short_buffer_keeps_sequence_number() {
        let sa = sa(false);
        // 20 bytes of payload take 2 bytes of padding plus pad length and next header.
        let mut buf = vec![0u8; HEADROOM + 24 + 16 - 1];
        assert_eq!(
            sa.seal_in_place(&mut buf, 20, 4),
            Err(SealError::BufferTooSmall)
        );
        assert_eq!(
            sa.seal_in_place(&mut buf, usize::MAX, 4),
            Err(SealError::BufferTooSmall)
        );
        assert_eq!(
            sa.seal_in_place(&mut [], 0, 4),
            Err(SealError::BufferTooSmall)
        );
        assert_eq!(sa.next_seq(), 1);
        let mut buf = vec![0u8; HEADROOM + 24 + 16];
        assert_eq!(sa.seal_in_place(&mut buf, 20, 4), Ok(8..buf.len()));
    }

    #[test]
    fn zero_start_is_one_and_debug_hides_keys() {
        let sa = sa(false).with_next_seq(0);
        assert_eq!(sa.next_seq(), 1);
        let dbg = format!("{sa:?}");
        assert!(dbg.contains("0x00001234"), "{dbg}");
        assert!(!dbg.contains("salt") && !dbg.contains("key"), "{dbg}");
    }

    #[test]
    fn exhaustion_sticks() {
        let sa = sa(false).with_next_seq(u64::from(u32::MAX));
        let mut buf = vec![0u8; 100];
        assert!(!sa.is_exhausted());
        assert!(sa.seal_in_place(&mut buf, 20, 4).is_ok());
        assert!(sa.is_exhausted());
        for _ in 0..3 {
            assert_eq!(
                sa.seal_in_place(&mut buf, 20, 4),
                Err(SealError::SequenceExhausted)
            );
        }
        let sa = sa_esn_max();
        assert!(sa.seal_in_place(&mut buf, 20, 4).is_ok());
        assert_eq!(sa.next_seq(), EXHAUSTED);
        assert!(sa.is_exhausted());
        for _ in 0..3 {
            assert_eq!(
                sa.seal_in_place(&mut buf, 20, 4),
                Err(SealError::SequenceExhausted)
            );
        }
    }

    fn sa_esn_max() -> OutboundSa {
        sa(true).with_next_seq(u64::MAX)
    }
}
