//! IKE message fragmentation (RFC 7383): sealing a large message as several SKF fragments,
//! and checking and reassembling the fragments of a received one.

use crate::config::EndpointConfig;
use crate::crypto::SkCipher;
use crate::wire::{self, Header, Message, Payload, SkLayout, HEADER_LEN};

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

fn seal_layout(crypto: &mut SaCrypto, mut l: SkLayout) -> Vec<u8> {
    crypto.iv = crypto.iv.wrapping_add(1);
    let iv = crypto.iv.to_be_bytes();
    l.bytes[l.iv.clone()].copy_from_slice(&iv);
    let (head, tail) = l.bytes.split_at_mut(l.iv.start);
    let pt = l.plaintext.start - l.iv.start..l.plaintext.end - l.iv.start;
    let tag = crypto.tx.seal(iv, &head[l.aad.clone()], &mut tail[pt]);
    l.bytes[l.icv.clone()].copy_from_slice(&tag);
    l.bytes
}

/// Decrypts `body` (IV || ciphertext || ICV) with `aad`; returns the plaintext without the
/// padding and pad-length byte. Errors before the ICV is checked are `Malformed` (anyone can
/// send those); a bad pad length after it verified is `Syntax` (only the peer can).
fn open_body(crypto: &SaCrypto, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, OpenFailure> {
    if body.len() < SkCipher::IV_LEN + SkCipher::ICV_LEN + 1 {
        return Err(OpenFailure::Malformed);
    }
    let iv: [u8; 8] = body[..8].try_into().map_err(|_| OpenFailure::Malformed)?;
    let mut ct = body[8..].to_vec();
    let n = crypto
        .rx
        .open(iv, aad, &mut ct)
        .map_err(|_| OpenFailure::Integrity)?;
    ct.truncate(n);
    let pad = *ct.last().ok_or(OpenFailure::Syntax)? as usize;
    if pad + 1 > ct.len() {
        return Err(OpenFailure::Syntax);
    }
    ct.truncate(ct.len() - pad - 1);
    Ok(ct)
}

impl IkeSa {
    /// Seals `payloads` into one SK message, or into SKF fragments when both ends support
    /// fragmentation and the message would not fit `cfg.fragment_size`; returns the messages
    /// (unframed: [`IkeSa::datagram`] frames them when they leave).
    pub(crate) fn seal_datagrams(
        &mut self,
        cfg: &EndpointConfig,
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
        let overhead = HEADER_LEN + SKF_HEADER_LEN + SkCipher::IV_LEN + 1 + SkCipher::ICV_LEN;
        let whole = HEADER_LEN + 4 + SkCipher::IV_LEN + inner.len() + 1 + SkCipher::ICV_LEN;
        let room = cfg.fragment_size.saturating_sub(marker + overhead);
        let messages = if fragmentation && whole + marker > cfg.fragment_size && room > 0 {
            let chunks: Vec<&[u8]> = inner.chunks(room).collect();
            let total = chunks.len() as u16;
            chunks
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let l = wire::layout_skf(
                        header,
                        first,
                        i as u16 + 1,
                        total,
                        c,
                        SkCipher::IV_LEN,
                        SkCipher::ICV_LEN,
                    );
                    seal_layout(crypto, l)
                })
                .collect()
        } else {
            let l = wire::layout_sk(
                header,
                &[],
                first,
                &inner,
                SkCipher::IV_LEN,
                SkCipher::ICV_LEN,
            );
            vec![seal_layout(crypto, l)]
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
