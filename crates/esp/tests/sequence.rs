//! Outbound sequence numbers: they never wrap (RFC 4303 §3.3.3), and
//! sealers on several threads never share one, since a shared sequence
//! number is a reused nonce.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;

use common::{ipv4_packet, pair, sealed_seq};
use ironsec_esp::{
    OpenError, OutboundSa, SealError, Suite, HEADROOM, MAX_TRAILER, NEXT_HEADER_IPV4,
};

fn seal_one(sa: &OutboundSa) -> Result<Vec<u8>, SealError> {
    let inner = ipv4_packet(40, 0);
    let mut buf = vec![0u8; HEADROOM + inner.len() + MAX_TRAILER];
    buf[HEADROOM..HEADROOM + inner.len()].copy_from_slice(&inner);
    let r = sa.seal_in_place(&mut buf, inner.len(), NEXT_HEADER_IPV4)?;
    Ok(buf[r].to_vec())
}

#[test]
fn without_esn_the_last_sequence_number_is_u32_max() {
    for suite in Suite::ALL {
        let (out, inb) = pair(suite, false, 0);
        let out = out.with_next_seq(u64::from(u32::MAX) - 2);
        for expected in u64::from(u32::MAX) - 2..=u64::from(u32::MAX) {
            let mut p = seal_one(&out).unwrap();
            assert_eq!(&p[4..8], &(expected as u32).to_be_bytes());
            assert_eq!(inb.open_in_place(&mut p).map(|o| o.seq), Ok(expected));
        }
        assert!(out.is_exhausted());
        for _ in 0..5 {
            assert_eq!(seal_one(&out), Err(SealError::SequenceExhausted));
        }
        assert_eq!(out.next_seq(), 1 << 32);
    }
}

#[test]
fn with_esn_the_last_sequence_number_is_u64_max() {
    for suite in Suite::ALL {
        let (out, _) = pair(suite, true, 0);
        let out = out.with_next_seq(u64::MAX - 2);
        // Past u32::MAX an ESN SA goes on.
        for expected in u64::MAX - 2..=u64::MAX {
            let p = seal_one(&out).unwrap();
            // Only an AEAD's IV shows the high bits; AES-CBC's is encrypted.
            if suite.is_aead() {
                assert_eq!(sealed_seq(&p), expected);
            }
            assert_eq!(&p[4..8], &(expected as u32).to_be_bytes());
        }
        assert!(out.is_exhausted());
        for _ in 0..5 {
            assert_eq!(seal_one(&out), Err(SealError::SequenceExhausted));
        }
    }
    let (out, _) = pair(Suite::Aes128Gcm16, true, 0);
    let out = out.with_next_seq(u64::from(u32::MAX));
    assert_eq!(sealed_seq(&seal_one(&out).unwrap()), u64::from(u32::MAX));
    assert_eq!(sealed_seq(&seal_one(&out).unwrap()), 1 << 32);
}

#[test]
fn exhaustion_error_says_rekey() {
    assert_eq!(
        SealError::SequenceExhausted.to_string(),
        "sequence numbers exhausted: SA must be rekeyed"
    );
}

/// The dataplane shares SAs between worker threads behind an `Arc`.
#[test]
fn sas_are_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<OutboundSa>();
    shareable::<ironsec_esp::InboundSa>();
}

const THREADS: usize = 4;

/// Seals from several threads at once on one shared SA; returns the
/// sequence numbers each packet carried.
fn seal_concurrently(sa: Arc<OutboundSa>, per_thread: usize) -> Vec<u64> {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let sa = Arc::clone(&sa);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                (0..per_thread)
                    .map_while(|_| seal_one(&sa).ok())
                    .map(|p| sealed_seq(&p))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

#[test]
fn concurrent_sealers_get_unique_sequence_numbers() {
    let (out, _) = pair(Suite::Aes128Gcm16, false, 0);
    let per_thread = 5_000;
    let seqs = seal_concurrently(Arc::new(out), per_thread);
    assert_eq!(seqs.len(), THREADS * per_thread);
    let unique: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), seqs.len(), "a sequence number was used twice");
    assert_eq!(unique, (1..=(THREADS * per_thread) as u64).collect());
}

#[test]
fn concurrent_sealers_stop_exactly_at_exhaustion() {
    for (esn, last) in [(false, u64::from(u32::MAX)), (true, u64::MAX)] {
        let (out, _) = pair(Suite::ChaCha20Poly1305, esn, 0);
        let left = 1_000u64;
        let sa = Arc::new(out.with_next_seq(last - left + 1));
        let seqs = seal_concurrently(Arc::clone(&sa), 1_000);
        let unique: HashSet<u64> = seqs.iter().copied().collect();
        assert_eq!(seqs.len() as u64, left, "esn {esn}");
        assert_eq!(unique, (last - left + 1..=last).collect(), "esn {esn}");
        assert_eq!(seal_one(&sa), Err(SealError::SequenceExhausted));
    }
}

/// Two copies of one packet opened at the same time: the replay window is
/// checked again after decryption, so exactly one is accepted.
#[test]
fn concurrent_duplicates_accept_one() {
    let (out, inb) = pair(Suite::Aes256Gcm16, true, 0);
    let inb = Arc::new(inb);
    for _ in 0..50 {
        let packet = seal_one(&out).unwrap();
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let inb = Arc::clone(&inb);
                let barrier = Arc::clone(&barrier);
                let mut copy = packet.clone();
                thread::spawn(move || {
                    barrier.wait();
                    inb.open_in_place(&mut copy).map(|o| o.seq)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let accepted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(accepted, 1, "{results:?}");
        assert!(results
            .iter()
            .all(|r| r.is_ok() || *r == Err(OpenError::Replay)));
    }
}
