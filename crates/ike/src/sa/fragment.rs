//! IKE message fragmentation (RFC 7383): sealing a large message as several SKF fragments,
//! and checking and reassembling the fragments of a received one.

use crate::config::EndpointConfig;
use crate::crypto::{OpenError, Rng, SkCipher};
use crate::wire::{self, Header, Message, Payload, SkLayout, SkShape, HEADER_LEN};

use super::{IkeSa, OpenFailure, SaCrypto};

/// At most this many fragments per message and this many bytes reassembled: a peer cannot
/// make us hold more than that per IKE SA.
const MAX_FRAGMENTS: u16 = 64;
const MAX_REASSEMBLED: usize = 64 * 1024;

/// SKF generic header (4) plus Fragment Number and Total Fragments (2 + 2).
const SKF_HEADER_LEN: usize = 8;

/// Fragments received so far of one message.
pub(crate) struct Reassembly {
    message_id: u32,
    response: bool,
    first_inner: u8,
    parts: Vec<Option<Vec<u8>>>,
    size: usize,
}

/// The sizes `cipher` needs in an SK/SKF payload.
fn shape(cipher: &SkCipher) -> SkShape {
    SkShape {
        iv_len: cipher.iv_len(),
        icv_len: cipher.icv_len(),
        block_len: cipher.block_len(),
    }
}

/// Seals a laid-out message with our key: `None` only if the layout does not fit the suite,
/// which would be a bug here; the message is then not sent rather than sent wrong.
fn seal_layout(crypto: &mut SaCrypto, rng: &mut dyn Rng, mut l: SkLayout) -> Option<Vec<u8>> {
    crypto.tx.seal(rng, &mut l.bytes, l.aad.end).ok()?;
    Some(l.bytes)
}

/// Checks and decrypts `body` (IV || ciphertext || ICV) after `header` (the message up to the
/// end of the SK/SKF header); returns the plaintext without the padding and pad-length byte.
/// Errors before the ICV is checked are `Malformed` (anyone can send those); a bad pad length
/// after it verified is `Syntax` (only the peer can).
fn open_body(crypto: &SaCrypto, header: &[u8], body: &[u8]) -> Result<Vec<u8>, OpenFailure> {
    let plain = crypto.rx.open(header, body).map_err(|e| match e {
        OpenError::Integrity(_) => OpenFailure::Integrity,
        OpenError::TooShort { .. } | OpenError::NotBlockAligned { .. } => OpenFailure::Malformed,
    })?;
    let (&pad, rest) = plain.split_last().ok_or(OpenFailure::Syntax)?;
    let keep = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(OpenFailure::Syntax)?;
    Ok(rest[..keep].to_vec())
}

impl IkeSa {
    /// Seals `payloads` into one SK message, or into SKF fragments when both ends support
    /// fragmentation and the message would not fit `cfg.fragment_size`; returns the messages
    /// (unframed: [`IkeSa::datagram`] frames them when they leave).
    pub(crate) fn seal_datagrams(
        &mut self,
        cfg: &EndpointConfig,
        rng: &mut dyn Rng,
        header: &Header,
        payloads: &[Payload],
    ) -> Option<Vec<Vec<u8>>> {
        let fragmentation = self.fragmentation;
        let marker = if self.local.port() == cfg.natt_port {
            4
        } else {
            0
        };
        let crypto = self.crypto.as_mut()?;
        let (first, inner) = wire::encode_chain(payloads);
        let shape = shape(&crypto.tx);
        let whole = HEADER_LEN + 4 + shape.body_len(inner.len());
        // The most inner bytes one fragment holds: the room left by the headers, IV, Pad
        // Length and ICV, rounded down to the block so its padding cannot push it over.
        let overhead = HEADER_LEN + SKF_HEADER_LEN + shape.body_len(0);
        let block = shape.block_len.max(1);
        let room = cfg.fragment_size.saturating_sub(marker + overhead) / block * block;
        let messages = if fragmentation && whole + marker > cfg.fragment_size && room > 0 {
            let chunks: Vec<&[u8]> = inner.chunks(room).collect();
            let total = chunks.len() as u16;
            chunks
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let l = wire::layout_skf(header, first, i as u16 + 1, total, c, shape);
                    seal_layout(crypto, rng, l)
                })
                .collect::<Option<Vec<_>>>()?
        } else {
            let l = wire::layout_sk(header, &[], first, &inner, shape);
            vec![seal_layout(crypto, rng, l)?]
        };
        Some(messages)
    }

    /// Decrypts an SK message, or checks and stores an SKF fragment. `Ok(None)`: a fragment
    /// of a message that is not complete yet.
    pub(crate) fn decrypt(
        &mut self,
        bytes: &[u8],
        msg: &Message,
    ) -> Result<Option<Vec<Payload>>, OpenFailure> {
        let crypto = self.crypto.as_ref().ok_or(OpenFailure::NoKeys)?;
        match &msg.encrypted {
            Some(wire::Encrypted::Sk {
                first_inner,
                aad,
                body,
            }) => {
                let aad = bytes.get(aad.clone()).ok_or(OpenFailure::Malformed)?;
                let body = bytes.get(body.clone()).ok_or(OpenFailure::Malformed)?;
                let inner = open_body(crypto, aad, body)?;
                // Authenticated: a chain that does not parse is the peer's malformed message.
                wire::parse_chain(*first_inner, &inner)
                    .map(Some)
                    .map_err(|_| OpenFailure::Syntax)
            }
            Some(wire::Encrypted::Skf {
                first_inner,
                fragment_number,
                total_fragments,
                aad,
                body,
            }) => {
                let (n, total) = (*fragment_number, *total_fragments);
                if total > MAX_FRAGMENTS || n == 0 || n > total {
                    return Err(OpenFailure::Malformed);
                }
                let aad = bytes.get(aad.clone()).ok_or(OpenFailure::Malformed)?;
                let body = bytes.get(body.clone()).ok_or(OpenFailure::Malformed)?;
                // Each fragment is authenticated on its own before it is kept (7383 2.6).
                let chunk = open_body(crypto, aad, body)?;
                let (id, response) = (msg.header.message_id, msg.header.flags.response);
                let fresh = match &self.reassembly {
                    Some(r) => {
                        r.message_id != id
                            || r.response != response
                            || r.parts.len() != usize::from(total)
                    }
                    None => true,
                };
                if fresh {
                    self.reassembly = Some(Reassembly {
                        message_id: id,
                        response,
                        first_inner: 0,
                        parts: vec![None; usize::from(total)],
                        size: 0,
                    });
                }
                let r = self.reassembly.as_mut().expect("set above");
                let slot = &mut r.parts[usize::from(n - 1)];
                if slot.is_none() {
                    r.size += chunk.len();
                    if r.size > MAX_REASSEMBLED {
                        self.reassembly = None;
                        return Err(OpenFailure::Malformed);
                    }
                    *slot = Some(chunk);
                }
                if n == 1 {
                    r.first_inner = *first_inner;
                }
                if r.parts.iter().any(Option::is_none) {
                    return Ok(None);
                }
                let r = self.reassembly.take().expect("present");
                let inner: Vec<u8> = r.parts.into_iter().flatten().flatten().collect();
                // Every fragment was authenticated: as for SK, a bad chain is the peer's.
                wire::parse_chain(r.first_inner, &inner)
                    .map(Some)
                    .map_err(|_| OpenFailure::Syntax)
            }
            None => Err(OpenFailure::NotEncrypted),
        }
    }
}
