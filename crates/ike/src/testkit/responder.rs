//! The `ike_responder` fuzz target's responder: its fixed configuration, the datagram framing
//! of its input, and the replay driver that the fuzz target, the seed generator
//! (`fuzz/examples/gen_seeds.rs`) and the regression tests (`tests/fuzz_regressions.rs`) all
//! use, so that a recorded conversation or a crash input replays exactly.
//!
//! # `ike_responder` input format
//!
//! A sequence of frames, each `[ctl: u8][len: u16 big-endian][len bytes]` (a short last frame
//! takes what is left). For each frame the clock first advances by `t^4 * 10 ms` where
//! `t = ctl >> 2` (0 .. 63: from 0 to about 43 hours, so retransmission, DPD, half-open expiry
//! and rekey deadlines are all reachable), then the bytes are handed to
//! `Endpoint::handle` (skipped if empty: a pure clock tick), then `handle_timeout` runs and
//! all transmits and events are drained.
//! - `ctl & 1`: local port 500 (0) or 4500 (1). The datagram is the whole UDP payload, so on
//!   4500 an IKE message carries the non-ESP marker.
//! - `ctl & 2`: the datagram comes from the initiator's usual address (0) or from another one
//!   (1): a NAT rebinding or a second peer.
//!
//! The remote port equals the local port. After the last frame the driver follows
//! `poll_timeout` a few times so that the retransmission and expiry paths run out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::crypto::TestRng;
use crate::wire::{Message, NON_ESP_MARKER};
use crate::{Endpoint, EndpointConfig, Event, LocalAuth, PeerConfig, Psk, RemoteAuth, Transmit};

/// The responder under test.
pub const RESPONDER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Where the initiator's datagrams come from (`ctl & 2 == 0`).
pub const INITIATOR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The other source address (`ctl & 2 != 0`).
pub const OTHER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// Seed of the responder's `TestRng`: fixed, so that recorded IKE_AUTH messages decrypt.
pub const RESPONDER_SEED: u64 = 0x1505_ec00_0000_0002;
/// The PSK of every connection of the fixed config.
pub const PSK: &[u8] = b"fuzzing-pre-shared-key-0123456789";
/// At most this many frames are processed (bounds the time of one input).
pub const MAX_FRAMES: usize = 96;
/// How many times the driver follows `poll_timeout` after the last frame.
pub const FINAL_TIMEOUTS: usize = 8;

pub const CTL_PORT_4500: u8 = 1;
pub const CTL_OTHER_ADDR: u8 = 2;

/// Clock advance encoded in a frame's control byte.
pub fn advance(ctl: u8) -> Duration {
    let t = u64::from(ctl >> 2);
    Duration::from_millis(t * t * t * t * 10)
}

/// The smallest time step `t` (0..=63) whose advance is at least `d`.
pub fn step_for(d: Duration) -> u8 {
    (0u8..64).find(|&t| advance(t << 2) >= d).unwrap_or(63)
}

/// [`super::peer`] with the fuzz target's own PSK.
#[allow(clippy::too_many_arguments)]
pub fn peer(
    name: &str,
    me: &str,
    them: &str,
    local: &str,
    remote: &str,
    ike: &str,
    esp: &str,
    psk: &[u8],
) -> PeerConfig {
    PeerConfig {
        local_auth: LocalAuth::Psk(Psk::new(psk.to_vec())),
        remote_auth: RemoteAuth::Psk(Psk::new(psk.to_vec())),
        ..super::peer(name, me, them, local, remote, ike, esp)
    }
}

/// The responder's fixed connections: two peers with different identities and algorithms.
pub fn responder_peers() -> Vec<PeerConfig> {
    vec![
        peer(
            "to-a",
            "gw-b.example",
            "gw-a.example",
            "10.2.0.0/24",
            "10.1.0.0/24,10.11.0.0/16",
            "aes256gcm16-aes128gcm16-prfsha256-x25519-ecp256",
            "aes256gcm16-x25519,aes128gcm16-esn",
            PSK,
        ),
        peer(
            "to-c",
            "gw-b.example",
            "gw-c@example.org",
            "10.2.0.0/24",
            "10.3.0.0/24",
            // AES-CBC + HMAC beside the AEAD (offered as two proposals), so the fuzzer can
            // reach the CBC SK payload too.
            "chacha20poly1305-aes256-sha256-prfsha384-ecp384",
            "chacha20poly1305,aes256-sha256",
            PSK,
        ),
    ]
}

/// The responder's endpoint settings (the library defaults).
pub fn responder_config() -> EndpointConfig {
    EndpointConfig::default()
}

/// Splits a fuzz input into frames `(ctl, datagram)`.
pub fn frames(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&ctl, rest) = data.split_first()?;
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (d, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some((ctl, d))
    })
    .take(MAX_FRAMES)
}

/// One frame of an input.
pub fn encode_frame(ctl: u8, datagram: &[u8]) -> Vec<u8> {
    let mut v = vec![ctl];
    v.extend_from_slice(&u16::try_from(datagram.len()).unwrap().to_be_bytes());
    v.extend_from_slice(datagram);
    v
}

/// The responder endpoint driven by frames.
pub struct Responder {
    pub ep: Endpoint,
    pub now: Instant,
    pub events: Vec<Event>,
}

impl Default for Responder {
    fn default() -> Self {
        Self::new()
    }
}

impl Responder {
    pub fn new() -> Responder {
        Responder {
            ep: Endpoint::new(
                responder_config(),
                responder_peers(),
                Box::new(TestRng::new(RESPONDER_SEED)),
            ),
            now: Instant::now(),
            events: Vec::new(),
        }
    }

    /// Addresses of a frame: (local, remote).
    pub fn addrs(ctl: u8) -> (SocketAddr, SocketAddr) {
        let port = if ctl & CTL_PORT_4500 != 0 { 4500 } else { 500 };
        let remote = if ctl & CTL_OTHER_ADDR != 0 {
            OTHER_IP
        } else {
            INITIATOR_IP
        };
        (
            SocketAddr::new(IpAddr::V4(RESPONDER_IP), port),
            SocketAddr::new(IpAddr::V4(remote), port),
        )
    }

    /// Processes one frame; returns what the responder sent.
    pub fn step(&mut self, ctl: u8, datagram: &[u8]) -> Vec<Transmit> {
        self.now += advance(ctl);
        if !datagram.is_empty() {
            let (local, remote) = Self::addrs(ctl);
            self.ep.handle(self.now, local, remote, datagram);
        }
        self.ep.handle_timeout(self.now);
        self.drain()
    }

    /// Follows the endpoint's deadlines `n` times (retransmissions, expiry).
    pub fn run_out(&mut self, n: usize) -> Vec<Transmit> {
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(t) = self.ep.poll_timeout() else {
                break;
            };
            self.now = self.now.max(t);
            self.ep.handle_timeout(self.now);
            out.extend(self.drain());
        }
        out
    }

    /// Drains transmits and events, checking what can be checked about them.
    pub fn drain(&mut self) -> Vec<Transmit> {
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_transmit() {
            check_transmit(&t);
            out.push(t);
        }
        self.ep.check_indexes();
        while let Some(e) = self.ep.poll_event() {
            check_event(&e);
            self.events.push(e);
        }
        // Keep memory bounded over long inputs.
        if self.events.len() > 256 {
            self.events.drain(..128);
        }
        out
    }
}

/// Whatever the endpoint sends must be an IKE message it can parse itself, with the non-ESP
/// marker exactly when it goes out on the NAT-T port.
pub fn check_transmit(t: &Transmit) {
    let cfg = responder_config();
    let bytes = if t.local.port() == cfg.natt_port {
        t.payload
            .strip_prefix(&NON_ESP_MARKER[..])
            .unwrap_or_else(|| panic!("sent on {} without the non-ESP marker", t.local))
    } else {
        &t.payload[..]
    };
    if let Err(e) = Message::parse(bytes) {
        panic!(
            "the endpoint sent a message it cannot parse ({e}): {:02x?}",
            t.payload
        );
    }
}

/// Key material handed to the fast path has the length its suite needs.
pub fn check_event(e: &Event) {
    if let Event::ChildSaUp { child, .. } | Event::ChildSaRekeyed { new: child, .. } = e {
        let want = child.algorithms.encr.keymat_len();
        assert_eq!(child.key_in.bytes().len(), want, "inbound keymat length");
        assert_eq!(child.key_out.bytes().len(), want, "outbound keymat length");
        assert_ne!(child.spi_in, 0, "inbound SPI 0");
    }
}

/// Runs one `ike_responder` input.
pub fn run_responder(data: &[u8]) {
    let mut r = Responder::new();
    for (ctl, d) in frames(data) {
        r.step(ctl, d);
    }
    r.run_out(FINAL_TIMEOUTS);
}
