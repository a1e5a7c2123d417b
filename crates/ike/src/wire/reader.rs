//! Bounds-checked reading and length-patching writing.
//!
//! Every byte the parser looks at goes through [`Reader`], so a hostile datagram can only make
//! it return an error, never index out of bounds. A reader remembers where its slice sits in the
//! outermost buffer, so errors name absolute offsets a person can find in a capture.

use super::error::ParseError;

/// A cursor over a byte slice that knows its absolute position for error messages.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the buffer the caller handed to the public parse function.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// Absolute offset of the next unread byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes; `what` names the field for the error.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ParseError> {
        let have = self.remaining();
        if n > have {
            return Err(ParseError::Truncated {
                what,
                offset: self.offset(),
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A reader over the next `n` bytes (a substructure), advancing past them.
    pub(crate) fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, ParseError> {
        let base = self.offset();
        let s = self.take(n, what)?;
        Ok(Reader::new(s, base))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, ParseError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, ParseError> {
        let b = self.array::<2>(what)?;
        Ok(u16::from_be_bytes(b))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array::<4>(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array::<8>(what)?))
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], ParseError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Skips `n` bytes (RESERVED fields: sent as zero, ignored on receipt, RFC 7296 section 3).
    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<(), ParseError> {
        self.take(n, what).map(|_| ())
    }
}

/// Appends big-endian fields to a buffer and fills in length fields afterwards.
///
/// Lengths on the IKE wire are 16 bits (payloads, substructures) or 32 bits (the header). A
/// structure larger than its length field is a caller bug (no IKE message exceeds 64 KiB); the
/// writer then stores the field's maximum rather than a wrapped value, so the peer sees a length
/// that does not match and drops the message instead of misparsing it.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// Reserves a 16-bit length field; returns its position for [`Writer::patch_len16`].
    pub(crate) fn len16_placeholder(&mut self) -> usize {
        let at = self.buf.len();
        self.u16(0);
        at
    }

    /// Stores `self.len() - start` in the 16-bit field at `at`.
    pub(crate) fn patch_len16(&mut self, at: usize, start: usize) {
        let n = u16::try_from(self.buf.len().saturating_sub(start)).unwrap_or(u16::MAX);
        if let Some(field) = self.buf.get_mut(at..at + 2) {
            field.copy_from_slice(&n.to_be_bytes());
        }
    }
}

/// `n` as a 16-bit wire field, saturating (see [`Writer`] for why not wrapping).
pub(crate) fn clamp16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// `n` as an 8-bit wire field, saturating.
pub(crate) fn clamp8(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}
