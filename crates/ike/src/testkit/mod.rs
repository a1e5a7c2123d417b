//! Test scaffolding shared by this crate's unit tests, its integration tests (`tests/`) and
//! the fuzz crate (`fuzz/`), so there is one test peer and one harness rather than copies:
//! compiled for `cargo test` and with the `testkit` feature, never in a release build.
//!
//! - [`peer`] and [`pair_configs`]: the site-to-site connections the protocol tests use.
//! - [`Net`]: two endpoints wired in memory on a fake clock, with a filter that can lose or
//!   duplicate datagrams and a tap on the wire. It checks the endpoints' indexes (deadlines, SAs) after
//!   every step. The clock starts at `Instant::now()` and only moves by `run_for`.
//! - [`responder`]: the fixed responder the `ike_responder` fuzz target drives, and its input
//!   framing, so that fuzz inputs replay byte for byte in regression tests.

pub mod certauth;
pub mod eap_hooks;
pub mod responder;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::crypto::TestRng;
use crate::{
    ts, Endpoint, EndpointConfig, Event, Identity, IkeSaId, LocalAuth, PeerConfig, Psk, RemoteAuth,
    Transmit,
};

pub const A: &str = "192.0.2.1";
pub const B: &str = "192.0.2.2";

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

pub fn sel(s: &str) -> crate::wire::TrafficSelector {
    let (a, l) = s.split_once('/').unwrap();
    ts::from_prefix(a.parse().unwrap(), l.parse().unwrap())
}

/// A site-to-site pair: A (10.1.0.0/24) and B (10.2.0.0/24), PSK "secret".
pub fn peer(
    name: &str,
    me: &str,
    them: &str,
    local: &str,
    remote: &str,
    ike: &str,
    esp: &str,
) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        local_id: Identity::parse(me),
        remote_id: Identity::parse(them),
        local_auth: LocalAuth::Psk(Psk::new(b"secret-shared-by-both-sites".to_vec())),
        remote_auth: RemoteAuth::Psk(Psk::new(b"secret-shared-by-both-sites".to_vec())),
        ike_proposals: ike.split(',').map(|p| p.parse().unwrap()).collect(),
        esp_proposals: esp.split(',').map(|p| p.parse().unwrap()).collect(),
        local_ts: local.split(',').map(sel).collect(),
        remote_ts: remote.split(',').map(sel).collect(),
        remote_addrs: Vec::new(),
        retransmit: Default::default(),
        lifetimes: Default::default(),
        dpd_interval: Some(Duration::from_secs(30)),
        force_encap: true,
        vip: crate::config::VipRole::None,
        unique: Default::default(),
    }
}

pub fn pair_configs(ike: &str, esp: &str) -> (PeerConfig, PeerConfig) {
    (
        peer(
            "to-b",
            "gw-a.example",
            "gw-b.example",
            "10.1.0.0/24",
            "10.2.0.0/24",
            ike,
            esp,
        ),
        peer(
            "to-a",
            "gw-b.example",
            "gw-a.example",
            "10.2.0.0/24",
            "10.1.0.0/24",
            ike,
            esp,
        ),
    )
}

/// What the network does to a datagram: `n` counts datagrams in each direction from 0.
pub type Filter = Box<dyn FnMut(bool, usize, &Transmit) -> Fate>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fate {
    Deliver,
    Drop,
    Duplicate,
}

pub struct Net {
    pub a: Endpoint,
    pub b: Endpoint,
    /// When the network started: captured datagrams are timed from here.
    pub start: Instant,
    pub now: Instant,
    /// Every datagram an endpoint sent, whatever the filter then did with it.
    pub wire: Vec<Captured>,
    pub sent: [usize; 2],
    pub filter: Filter,
    pub events_a: Vec<Event>,
    pub events_b: Vec<Event>,
}

/// One datagram as it left an endpoint: when, from, to, UDP payload.
pub struct Captured {
    pub at: Duration,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

impl Net {
    pub fn new(a: PeerConfig, b: PeerConfig) -> Net {
        Net::with_config(a, b, EndpointConfig::default(), EndpointConfig::default())
    }

    pub fn with_config(
        a: PeerConfig,
        b: PeerConfig,
        ca: EndpointConfig,
        cb: EndpointConfig,
    ) -> Net {
        let now = Instant::now();
        Net {
            a: Endpoint::new(ca, vec![a], Box::new(TestRng::new(1))),
            b: Endpoint::new(cb, vec![b], Box::new(TestRng::new(2))),
            start: now,
            now,
            wire: Vec::new(),
            sent: [0, 0],
            filter: Box::new(|_, _, _| Fate::Deliver),
            events_a: Vec::new(),
            events_b: Vec::new(),
        }
    }

    fn capture(&mut self, t: &Transmit) {
        self.wire.push(Captured {
            at: self.now - self.start,
            from: t.local,
            to: t.remote,
            payload: t.payload.clone(),
        });
    }

    /// Events of each side that match `f`.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> (usize, usize) {
        (
            self.events_a.iter().filter(|e| f(e)).count(),
            self.events_b.iter().filter(|e| f(e)).count(),
        )
    }

    /// Moves datagrams until both sides are quiet.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                self.capture(&t);
                let n = self.sent[0];
                self.sent[0] += 1;
                match (self.filter)(true, n, &t) {
                    Fate::Drop => {}
                    Fate::Deliver => self.b.handle(self.now, t.remote, t.local, &t.payload),
                    Fate::Duplicate => {
                        self.b.handle(self.now, t.remote, t.local, &t.payload);
                        self.b.handle(self.now, t.remote, t.local, &t.payload);
                    }
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                self.capture(&t);
                let n = self.sent[1];
                self.sent[1] += 1;
                match (self.filter)(false, n, &t) {
                    Fate::Drop => {}
                    Fate::Deliver => self.a.handle(self.now, t.remote, t.local, &t.payload),
                    Fate::Duplicate => {
                        self.a.handle(self.now, t.remote, t.local, &t.payload);
                        self.a.handle(self.now, t.remote, t.local, &t.payload);
                    }
                }
            }
            self.a.check_indexes();
            self.b.check_indexes();
            while let Some(e) = self.a.poll_event() {
                self.events_a.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.events_b.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("datagrams never stopped flowing");
    }

    /// Advances the clock to each deadline in turn for `total`.
    pub fn run_for(&mut self, total: Duration) {
        let end = self.now + total;
        loop {
            self.pump();
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => {
                    self.now = end;
                    self.pump();
                    return;
                }
            }
        }
    }

    pub fn initiate_a(&mut self) -> IkeSaId {
        let id = self
            .a
            .initiate(self.now, "to-b", addr(A, 500), addr(B, 500))
            .unwrap();
        self.pump();
        id
    }
}
