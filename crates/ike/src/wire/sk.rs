//! Laying out messages with an Encrypted (SK, RFC 7296 section 3.14) or Encrypted Fragment
//! (SKF, RFC 7383 section 2.5) payload, for an AEAD (RFC 5282) or a block cipher with an
//! integrity transform; [`SkShape`] says which sizes the suite needs.
//!
//! ```text
//! SK  = Next Payload | C|RESERVED | Length(2) | IV | Ciphertext(inner chain, Padding, Pad Length) | ICV
//! SKF = Next Payload | C|RESERVED | Length(2) | Fragment Number(2) | Total Fragments(2) | IV | ... | ICV
//! ```
//!
//! The layout is final before anything is encrypted, since the AAD (RFC 5282 section 5.1), or
//! for CBC the start of the integrity-protected span, is the IKE header and the SK header with
//! their lengths. The plaintext is the inner chain, the fewest Padding bytes (zeros) that make
//! it with the Pad Length byte a multiple of the block, and Pad Length: an AEAD (block 1)
//! gets none, as RFC 5282 allows.

use std::ops::Range;

use super::header::{Header, HEADER_LEN};
use super::message::{finish_header, SKF_HEADER_LEN};
use super::numbers::PayloadType;
use super::payload::{encode_chain_into, Payload, GENERIC_HEADER_LEN};
use super::reader::{clamp16, Writer};

/// The sizes a suite's SK payload needs: IV, ICV, and the block the plaintext is padded to
/// (1: no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkShape {
    pub iv_len: usize,
    pub icv_len: usize,
    pub block_len: usize,
}

impl SkShape {
    /// The AEADs we run: 8-byte IV, 16-byte ICV, no padding (RFC 5282, RFC 7634).
    pub const AEAD: SkShape = SkShape {
        iv_len: 8,
        icv_len: 16,
        block_len: 1,
    };

    /// Padding bytes for `len` bytes of inner data: with the Pad Length byte a multiple of the
    /// block.
    pub fn padding(&self, len: usize) -> usize {
        let block = self.block_len.max(1);
        (block - (len + 1) % block) % block
    }

    /// Bytes of IV, plaintext (inner data, padding, Pad Length) and ICV for `len` bytes of
    /// inner data.
    pub fn body_len(&self, len: usize) -> usize {
        self.iv_len + len + self.padding(len) + 1 + self.icv_len
    }
}

/// A message with room for the crypto. The caller writes the IV into `bytes[iv]`, encrypts
/// `bytes[plaintext]` in place with `bytes[aad]` as associated data, and writes the tag into
/// `bytes[icv]`. The ranges are consecutive: `aad.end == iv.start`, `iv.end ==
/// plaintext.start`, `plaintext.end == icv.start`, `icv.end == bytes.len()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkLayout {
    pub bytes: Vec<u8>,
    pub aad: Range<usize>,
    pub iv: Range<usize>,
    /// The inner chain, Padding and the Pad Length byte.
    pub plaintext: Range<usize>,
    pub icv: Range<usize>,
}

/// Lays out a message whose (possibly empty) cleartext payloads are followed by an SK payload
/// holding `inner` (an encoded chain whose first type is `first_inner`, see
/// [`super::encode_chain`]). IV and ICV are left zero. Header length and every Next Payload
/// field are final, so `bytes[aad]` is the AAD.
pub fn layout_sk(
    header: &Header,
    cleartext: &[Payload],
    first_inner: u8,
    inner: &[u8],
    shape: SkShape,
) -> SkLayout {
    let mut w = Writer::default();
    w.zeros(HEADER_LEN);
    let first = encode_chain_into(cleartext, PayloadType::Sk.number(), &mut w);
    let sk_start = w.len();
    w.u8(first_inner);
    w.u8(0);
    w.u16(clamp16(GENERIC_HEADER_LEN + shape.body_len(inner.len())));
    finish(
        header,
        first,
        w,
        inner,
        shape,
        sk_start + GENERIC_HEADER_LEN,
    )
}

/// Lays out one SKF fragment (RFC 7383 section 2.5) holding `chunk`, a piece of the encoded
/// inner chain. `first_inner` is written only in fragment 1 (0 in the others, as the RFC
/// requires); the fragment fields are part of the AAD. No cleartext payloads precede it.
pub fn layout_skf(
    header: &Header,
    first_inner: u8,
    fragment_number: u16,
    total_fragments: u16,
    chunk: &[u8],
    shape: SkShape,
) -> SkLayout {
    let mut w = Writer::default();
    w.zeros(HEADER_LEN);
    let skf_start = w.len();
    w.u8(if fragment_number == 1 { first_inner } else { 0 });
    w.u8(0);
    w.u16(clamp16(SKF_HEADER_LEN + shape.body_len(chunk.len())));
    w.u16(fragment_number);
    w.u16(total_fragments);
    finish(
        header,
        PayloadType::Skf.number(),
        w,
        chunk,
        shape,
        skf_start + SKF_HEADER_LEN,
    )
}

/// Appends IV, plaintext and ICV after the encrypted payload's header (which ends at
/// `aad_end`) and writes the IKE header.
fn finish(
    header: &Header,
    first: u8,
    mut w: Writer,
    plaintext: &[u8],
    shape: SkShape,
    aad_end: usize,
) -> SkLayout {
    w.zeros(shape.iv_len);
    let pt_start = w.len();
    w.bytes(plaintext);
    let pad = shape.padding(plaintext.len());
    w.zeros(pad);
    // Pad Length: below the block length, at most 255 for any block we run.
    w.u8(u8::try_from(pad).unwrap_or(u8::MAX));
    let icv_start = w.len();
    w.zeros(shape.icv_len);
    let bytes = finish_header(header, first, w.buf);
    SkLayout {
        aad: 0..aad_end,
        iv: aad_end..pt_start,
        plaintext: pt_start..icv_start,
        icv: icv_start..bytes.len(),
        bytes,
    }
}
