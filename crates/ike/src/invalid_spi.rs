//! INVALID_SPI outside an IKE SA (RFC 7296 1.5): what a gateway that lost its state (a
//! restart) can tell a peer still sending ESP on the old SPIs, and what that peer may do with
//! it.
//!
//! The sender has no IKE SA with the peer, so the message is an unprotected INFORMATIONAL
//! request with made-up IKE SPIs (the one case where that is allowed), the INVALID_SPI notify
//! carrying the unknown SPI as its data. Anyone can forge one, so the receiver treats it only
//! as a hint: it must not answer it and must not change any SA because of it, but it may check
//! at once that the peer is alive (RFC 7296 2.21.4), instead of waiting out the DPD interval.
//! If the peer did restart, that check fails and the SAs go as with any DPD failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::crypto::Rng;
use crate::wire::{
    self, ExchangeType, Flags, Header, Message, NotifyPayload, NotifyType, Payload, Payloads,
};

/// At most one notification per peer address this often: the trigger is unauthenticated
/// traffic, so without a limit a spoofed ESP flood would turn us into a reflector.
pub(crate) const PER_PEER_EVERY: Duration = Duration::from_secs(1);
/// Peers remembered by the limit; beyond this, notifications wait for entries to age out.
const MAX_TRACKED: usize = 256;

/// The unprotected INFORMATIONAL request reporting `spi`, unframed.
pub(crate) fn message(rng: &mut dyn Rng, spi: u32) -> Vec<u8> {
    let header = Header::new(
        crate::spi::random_ike_spi(rng),
        0,
        ExchangeType::Informational,
        Flags::request(true),
        0,
    );
    // Notification Data: the SPI of the wayward packet (RFC 7296 1.5); protocol ESP.
    let notify = Payload::Notify(NotifyPayload {
        protocol: 3,
        spi: Vec::new(),
        kind: NotifyType::InvalidSpi,
        data: spi.to_be_bytes().to_vec(),
    });
    wire::encode_message(&header, &[notify])
}

/// The SPI an unprotected INVALID_SPI request reports, if `msg` is one. Accepts the SPI in the
/// notify's SPI field too, where some implementations put it.
pub(crate) fn hint(msg: &Message) -> Option<u32> {
    let h = &msg.header;
    if h.exchange != ExchangeType::Informational || h.flags.response {
        return None;
    }
    let n = msg.payloads.notify(NotifyType::InvalidSpi)?;
    let b = if n.data.len() == 4 { &n.data } else { &n.spi };
    Some(u32::from_be_bytes(b.as_slice().try_into().ok()?))
}

/// Per-peer pacing of the notifications we send.
#[derive(Debug, Default)]
pub(crate) struct Pacing {
    last: HashMap<IpAddr, Instant>,
}

impl Pacing {
    /// Whether a notification to `peer` may go now (and if so, records it).
    pub(crate) fn allow(&mut self, now: Instant, peer: IpAddr) -> bool {
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < PER_PEER_EVERY;
        if self.last.get(&peer).is_some_and(fresh) {
            return false;
        }
        if self.last.len() >= MAX_TRACKED {
            self.last.retain(|_, t| fresh(t));
            if self.last.len() >= MAX_TRACKED {
                return false;
            }
        }
        self.last.insert(peer, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::TestRng;

    #[test]
    fn message_round_trips_as_a_hint() {
        let mut rng = TestRng::new(7);
        let m = message(&mut rng, 0xdead_beef);
        let parsed = Message::parse(&m).unwrap();
        assert_eq!(parsed.header.spi_r, 0);
        assert_ne!(parsed.header.spi_i, 0);
        assert!(parsed.header.flags.initiator && !parsed.header.flags.response);
        assert_eq!(hint(&parsed), Some(0xdead_beef));
    }

    #[test]
    fn responses_and_other_notifies_are_no_hint() {
        let mut rng = TestRng::new(7);
        let mut parsed = Message::parse(&message(&mut rng, 1)).unwrap();
        parsed.header.flags.response = true;
        assert_eq!(hint(&parsed), None);
        parsed.header.flags.response = false;
        parsed.payloads = vec![Payload::notify(NotifyType::InvalidIkeSpi, vec![])];
        assert_eq!(hint(&parsed), None);
        // A truncated SPI is no hint either.
        parsed.payloads = vec![Payload::notify(NotifyType::InvalidSpi, vec![1, 2])];
        assert_eq!(hint(&parsed), None);
    }

    #[test]
    fn pacing_is_per_peer_and_bounded() {
        let t0 = Instant::now();
        let mut p = Pacing::default();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        assert!(p.allow(t0, a));
        assert!(!p.allow(t0 + Duration::from_millis(500), a));
        assert!(p.allow(t0 + Duration::from_millis(500), b));
        assert!(p.allow(t0 + PER_PEER_EVERY, a));
        // A spoofed flood from many addresses fills the table, then waits for it to age.
        let mut p = Pacing::default();
        let allowed = (0..1000u32)
            .filter(|i| p.allow(t0, IpAddr::from(i.to_be_bytes())))
            .count();
        assert_eq!(allowed, MAX_TRACKED);
        assert!(p.allow(t0 + PER_PEER_EVERY, IpAddr::from([10, 9, 9, 9])));
    }
}
