//! Anti-replay through the public packet path: duplicates, packets left of
//! the window, reordering, and the 2^32 boundary of extended sequence
//! numbers.

mod common;

use common::{ipv4_packet, pair, seal};
use ironsec_esp::{OpenError, Suite, NEXT_HEADER_IPV4};
use proptest::prelude::*;

fn any_suite() -> impl Strategy<Value = Suite> {
    prop::sample::select(Suite::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every packet is accepted exactly once, whatever the arrival order, as
    /// long as all of it fits in the window; every later copy is a replay.
    #[test]
    fn replays_are_refused(
        suite in any_suite(),
        esn in any::<bool>(),
        order in Just((0..40usize).collect::<Vec<_>>()).prop_shuffle(),
        replays in proptest::collection::vec(0..40usize, 1..20),
    ) {
        let (out, inb) = pair(suite, esn, 64);
        let packets: Vec<Vec<u8>> = (0..40).map(|i| seal(&out, &ipv4_packet(40 + i, i as u8), NEXT_HEADER_IPV4)).collect();
        for &i in &order {
            let opened = inb.open_in_place(&mut packets[i].clone()).unwrap();
            prop_assert_eq!(opened.seq, i as u64 + 1);
        }
        for &i in &replays {
            prop_assert_eq!(inb.open_in_place(&mut packets[i].clone()), Err(OpenError::Replay));
        }
        prop_assert_eq!(inb.highest_seq(), 40);
    }

    /// Once the window has moved `size` past a packet, that packet is too old
    /// even if it was never seen; one inside the window is still accepted.
    #[test]
    fn packets_left_of_window_are_too_old(
        suite in any_suite(),
        esn in any::<bool>(),
        window in prop_oneof![Just(64usize), Just(128), Just(200)],
        extra in 1usize..50,
    ) {
        let (out, inb) = pair(suite, esn, window);
        let size = inb.replay_window_size();
        let count = size + extra;
        let packets: Vec<Vec<u8>> = (0..count).map(|_| seal(&out, &ipv4_packet(20, 0), NEXT_HEADER_IPV4)).collect();
        // Deliver only the newest one first: highest = count.
        inb.open_in_place(&mut packets[count - 1].clone()).unwrap();
        for (i, p) in packets.iter().enumerate().take(count - 1) {
            let seq = i as u64 + 1;
            let result = inb.open_in_place(&mut p.clone());
            if count as u64 - seq >= size as u64 {
                prop_assert_eq!(result, Err(OpenError::TooOld), "seq {}", seq);
            } else {
                prop_assert_eq!(result.map(|o| o.seq), Ok(seq));
            }
        }
    }

    /// Across the 2^32 boundary of an ESN SA: packets from just before and
    /// just after it arrive in any order inside the window, each is accepted
    /// once with its full 64-bit sequence number (the high half increments
    /// though it is never sent), and copies are replays.
    #[test]
    fn esn_boundary_in_any_order(
        suite in any_suite(),
        before in 1u64..40,
        order in Just((0..80usize).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let first = (1u64 << 32) - before;
        let (out, inb) = pair(suite, true, 128);
        // An SA's traffic starts at 1, so the receiver has always seen
        // something before the boundary; one earlier packet stands in for it.
        let out = out.with_next_seq(first - 50);
        let mut earlier = seal(&out, &ipv4_packet(20, 0), NEXT_HEADER_IPV4);
        prop_assert_eq!(inb.open_in_place(&mut earlier).map(|o| o.seq), Ok(first - 50));
        let out = out.with_next_seq(first);
        let packets: Vec<Vec<u8>> = (0..80).map(|_| seal(&out, &ipv4_packet(28, 9), NEXT_HEADER_IPV4)).collect();
        for &i in &order {
            let expected = first + i as u64;
            // Only the low 32 bits are on the wire.
            prop_assert_eq!(&packets[i][4..8], &(expected as u32).to_be_bytes());
            let opened = inb.open_in_place(&mut packets[i].clone());
            prop_assert_eq!(opened.map(|o| o.seq), Ok(expected));
        }
        prop_assert_eq!(inb.highest_seq(), first + 79);
        for &i in order.iter().take(10) {
            prop_assert_eq!(inb.open_in_place(&mut packets[i].clone()), Err(OpenError::Replay));
        }
    }
}

/// The window keeps sliding far past the boundary: a long in-order run
/// through 2^32 with a small window.
#[test]
fn esn_window_slides_through_boundary() {
    let first = (1u64 << 32) - 300;
    let (out, inb) = pair(Suite::ChaCha20Poly1305, true, 64);
    let out = out.with_next_seq(first);
    let mut kept = Vec::new();
    for i in 0..600u64 {
        let packet = seal(&out, &ipv4_packet(20, 0), NEXT_HEADER_IPV4);
        if i % 100 == 0 {
            kept.push(packet.clone());
        }
        assert_eq!(
            inb.open_in_place(&mut packet.clone()).map(|o| o.seq),
            Ok(first + i)
        );
    }
    assert_eq!(inb.highest_seq(), first + 599);
    // All kept packets are now far left of a 64-packet window.
    for p in kept {
        assert_eq!(inb.open_in_place(&mut p.clone()), Err(OpenError::TooOld));
    }
}

/// Without ESN the sequence number on the wire is the whole number.
#[test]
fn without_esn_there_is_no_high_half() {
    let (out, inb) = pair(Suite::Aes128Gcm16, false, 64);
    let out = out.with_next_seq(u64::from(u32::MAX) - 1);
    for expected in [u64::from(u32::MAX) - 1, u64::from(u32::MAX)] {
        let mut p = seal(&out, &ipv4_packet(20, 0), NEXT_HEADER_IPV4);
        assert_eq!(inb.open_in_place(&mut p).map(|o| o.seq), Ok(expected));
    }
}
