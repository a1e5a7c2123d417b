//! What `ironsecctl status` shows, as one set of serde types: the daemon serializes them, the
//! CLI deserializes them and renders a table, `--json` prints them as they are.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ironsec_ike::PeerText;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub version: String,
    pub tun: String,
    pub workers: usize,
    /// Fast-path workers that panicked or stopped on their own. Non-zero only in the moment
    /// before the daemon exits to be restarted (`ironsec_dataplane`'s `supervise.rs`).
    #[serde(default)]
    pub workers_failed: usize,
    pub uptime_secs: u64,
    pub counters: Counters,
    /// Gateway-wide drop totals by reason (including the per-SA ones).
    pub drops: BTreeMap<String, u64>,
    /// The IKE engine's message counters.
    #[serde(default)]
    pub ike: IkeCounters,
    /// The guard routes that keep the remote selectors fail closed while the daemon is absent
    /// (README "Fail closed: guard routes"); filled by the daemon, which owns them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guards: Option<GuardsStatus>,
    /// `gateway.shared_addresses` and whether each is on this host now (active-standby).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_addresses: Vec<SharedAddressStatus>,
    /// Planned maintenance (README "Planned maintenance"); filled by the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainStatus>,
    /// Counts over the connections asked for; only in a brief answer (`Request::Status`
    /// with `brief`), whose `connections` then hold just those not up when more than
    /// [`BRIEF_OVER`] matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Set when the request's filter matched no connection (a daemon that filters says so,
    /// as the CLI did with the whole list): the listing is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_match: Option<crate::namefilter::NoMatch>,
    pub connections: Vec<ConnectionStatus>,
}

/// Above this many connections `ironsecctl status` without a filter (or `--all`) prints the
/// summary line and the tunnels that are not up instead of every tunnel: 50 connections of
/// one or two tunnels are 400-800 lines, about what an operator still scrolls through; past
/// that the one line that says "all up" or names what is not is what is read.
pub const BRIEF_OVER: usize = 50;

/// Counts over a set of connections: what `ironsecctl status` says first when there are many.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Connections counted (the configured ones, or those a filter matched).
    pub connections: usize,
    /// Every tunnel (and remote-access client) up; a remote-access connection without
    /// clients counts as up.
    pub up: usize,
    /// At least one tunnel not up.
    pub down: usize,
    /// Of `down`: a tunnel that is not up has an error (its last negotiation failed or the
    /// peer refused its CHILD_SA).
    pub failing: usize,
    pub tunnels: usize,
    pub tunnels_up: usize,
    /// Connected remote-access clients (their tunnels are not in `tunnels`).
    pub clients: usize,
    /// Connections left out of the answer's list because they are up.
    #[serde(default)]
    pub omitted: usize,
}

impl ConnectionStatus {
    /// Every tunnel and client tunnel of the connection.
    fn all_tunnels(&self) -> impl Iterator<Item = &TunnelStatus> {
        self.tunnels
            .iter()
            .chain(self.clients.iter().map(|c| &c.tunnel))
    }

    /// Every tunnel up (vacuously, a remote-access connection without clients).
    pub fn is_up(&self) -> bool {
        self.all_tunnels().all(|t| t.state == "up")
    }

    /// Not up, and a tunnel that is not up says why.
    pub fn is_failing(&self) -> bool {
        self.all_tunnels()
            .any(|t| t.state != "up" && (t.last_error.is_some() || t.child_refused.is_some()))
    }
}

impl Summary {
    /// The counts over `conns`.
    pub fn of(conns: &[ConnectionStatus]) -> Summary {
        let mut s = Summary {
            connections: conns.len(),
            ..Summary::default()
        };
        for c in conns {
            if c.is_up() {
                s.up += 1;
            } else {
                s.down += 1;
                if c.is_failing() {
                    s.failing += 1;
                }
            }
            s.tunnels += c.tunnels.len();
            s.tunnels_up += c.tunnels.iter().filter(|t| t.state == "up").count();
            s.clients += c.clients.len();
        }
        s
    }
}

/// A shared address of an active-standby pair: present on this host (the master's) or not
/// (the standby's, whose tunnels from it are `dormant`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SharedAddressStatus {
    pub address: String,
    pub present: bool,
    /// Arrivals and losses since start.
    pub changes: u64,
    /// Traffic for a trapped tunnel that came while it was dormant and was dropped (gateway
    /// total, on the first address only; its packets are in the `no_sa` drops).
    #[serde(default)]
    pub ignored_acquires: u64,
}

/// `drain: ready|draining|drained` and what goes on.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DrainStatus {
    /// "ready", "draining" or "drained" (a rejoin under way is "ready": its state file says
    /// so already).
    pub state: String,
    /// What is happening now (waiting for traffic at N pps, rejoin commands running, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The last finished drain or rejoin, as `ironsecctl drain` printed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// How long the last drain took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drain_ms: Option<u64>,
    /// Peers' IKE_SA_INIT requests dropped while drained.
    #[serde(default)]
    pub ike_sa_init_refused: u64,
}

impl DrainStatus {
    /// The status line: "drain: ready", "drain: drained (since 12 s; ...)".
    pub fn line(&self) -> String {
        let mut s = format!("drain: {}", self.state);
        let mut notes: Vec<String> = self.detail.iter().cloned().collect();
        if self.ike_sa_init_refused > 0 {
            notes.push(format!(
                "{} IKE_SA_INIT from peers refused while drained",
                self.ike_sa_init_refused
            ));
        }
        if !notes.is_empty() {
            s.push_str(&format!(" ({})", notes.join("; ")));
        }
        if let Some(l) = &self.last {
            s.push_str(&format!("; last: {l}"));
        }
        s
    }
}

/// ironsec's guard routes (`blackhole PREFIX proto 147 metric 4242`) as the kernel has them now.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct GuardsStatus {
    /// Guard routes in this network namespace's main table, read from the kernel.
    pub installed: usize,
    /// Guards found in place at start and kept (left by a stop, crash or restart).
    pub adopted_at_start: usize,
    /// Guards of selectors no longer configured, removed at start.
    pub removed_at_start: usize,
    /// Every remote selector's prefix and whether its guard is installed.
    pub selectors: Vec<GuardedSelector>,
    /// Why the kernel's routes could not be read (then no selector counts as guarded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GuardedSelector {
    pub prefix: String,
    pub guarded: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct IkeCounters {
    pub received: u64,
    pub malformed: u64,
    pub unknown_spi: u64,
    pub cookies_sent: u64,
    pub half_open_dropped: u64,
    pub retransmits_answered: u64,
    /// Exchanges we started.
    pub requests_sent: u64,
    /// Retransmissions of our requests.
    pub retransmits_sent: u64,
    /// INVALID_SPI notifications sent for ESP we have no SA for (we lost state).
    #[serde(default)]
    pub invalid_spi_sent: u64,
    /// INVALID_SPI notifications received (each starts a liveness check of that peer).
    #[serde(default)]
    pub invalid_spi_hints: u64,
    /// Encrypted messages for a known IKE SA whose ICV did not verify (forged or corrupt).
    #[serde(default)]
    pub integrity_failed: u64,
    /// Messages for a known IKE SA with a Message ID that fits no exchange.
    #[serde(default)]
    pub wrong_message_id: u64,
    /// Requests of a later IKE major version answered with INVALID_MAJOR_VERSION.
    #[serde(default)]
    pub invalid_major_version_sent: u64,
    /// Datagrams dropped before the engine saw them: its queue was full, or half full and
    /// they came from an address no connection names (a flood).
    #[serde(default)]
    pub queue_dropped: u64,
    /// Datagrams the kernel dropped on the IKE sockets (UDP 500) before the reader took them:
    /// their receive buffer was full (RcvbufErrors, per socket).
    #[serde(default)]
    pub socket_dropped: u64,
    /// IKE_SA_INIT requests answered with NO_PROPOSAL_CHOSEN (unconfigured sender included).
    #[serde(default)]
    pub no_proposal_chosen: u64,
    /// Remote-access EAP logins that failed (wrong password, unknown user, refused method).
    #[serde(default)]
    pub eap_failures: u64,
    /// The same by why: wrong_password, unknown_user, refused_method, certificate, identity,
    /// protocol, radius_reject, radius_unreachable (each always present).
    #[serde(default)]
    pub eap_failure_reasons: BTreeMap<String, u64>,
    /// EAP logins refused before any challenge: too many recent failures from the address or
    /// for the user.
    #[serde(default)]
    pub auth_rate_limited: u64,
    /// Log lines caused by unauthenticated datagrams and not written: over the per-source
    /// rate limit (README, "Log rate limit").
    #[serde(default)]
    pub log_suppressed: u64,
}

/// Per-connection event counts (since start, or since a reload added or changed it).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionCounters {
    pub ike_up: u64,
    pub child_rekeys: u64,
    pub ike_rekeys: u64,
    pub dpd_failures: u64,
    pub failures: u64,
    #[serde(default)]
    pub failovers: u64,
    /// Moves to the tunnel the peer sends on (active-standby), not failures of ours.
    #[serde(default)]
    pub follows: u64,
    /// NAT keepalives sent: we are behind a NAT and the tunnel was idle.
    #[serde(default)]
    pub nat_keepalives: u64,
    /// Times the peer, behind a NAT, was followed to a new address or port.
    #[serde(default)]
    pub peer_moves: u64,
    /// CHILD_SA rekeys that failed: refused by the peer (the old SA carried on and the
    /// rekey was tried again), or a CHILD_SA that reached its hard lifetime or volume limit
    /// (its rekey never completed).
    #[serde(default)]
    pub child_rekey_failures: u64,
}

/// A connection's share of the gateway's bandwidth.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct BandwidthStatus {
    pub weight: u32,
    /// The connection's own cap, bits/s.
    pub cap_bps: Option<u64>,
    /// The rate it may send at now, bits/s.
    pub rate_bps: u64,
    /// What it has been offering, bits/s (smoothed).
    pub demand_bps: u64,
    pub offered_bytes: u64,
    pub offered_packets: u64,
    /// Packets over its share, dropped (also in drops.shaped).
    pub shaped_packets: u64,
}

/// Packets and bytes of every SA a tunnel has had, live or gone: what metrics count.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters {
    pub tun_rx_packets: u64,
    pub tun_tx_packets: u64,
    /// TUN offload at work: super-packets read (TSO/USO, split here) and coalesced writes
    /// (GRO). Zero when the device has no offload or nothing could be merged.
    #[serde(default)]
    pub tun_rx_super_packets: u64,
    #[serde(default)]
    pub tun_tx_super_packets: u64,
    pub udp_rx_packets: u64,
    pub udp_tx_packets: u64,
    /// UDP offload at work on the ESP sockets: coalesced receives (GRO) and segmented sends
    /// (GSO), each carrying several of the datagrams counted above.
    #[serde(default)]
    pub udp_rx_super_packets: u64,
    #[serde(default)]
    pub udp_tx_super_packets: u64,
    /// UDP over IPv6 the kernel dropped for a bad checksum in this gateway's network
    /// namespace (/proc/net/snmp6 Udp6InCsumErrors, every socket's share): with
    /// `udp6_zero_checksum = "refuse"` zero checksums count here too. None where the kernel
    /// has no IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp6_checksum_errors: Option<u64>,
    pub ike_packets: u64,
    pub keepalives: u64,
    /// MTU: SYNs whose MSS was clamped to fit a tunnel (both directions); ICMP "fragmentation
    /// needed" / "packet too big" written back to the site, and those the rate limit held
    /// back (the packets themselves count as drops, `too_big`).
    #[serde(default)]
    pub mss_clamped: u64,
    /// Decrypted packets not coalesced for the TUN device because their checksum failed:
    /// written alone and unchanged, for the receiving stack to drop.
    #[serde(default)]
    pub gro_bad_checksums: u64,
    #[serde(default)]
    pub icmp_too_big: u64,
    #[serde(default)]
    pub icmp_limited: u64,
    /// Packets without DF cut into fragments to fit a tunnel before sealing.
    #[serde(default)]
    pub inner_fragmented: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    pub name: String,
    pub keying: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    /// `start`, `trap` or `none` (IKE connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_action: Option<String>,
    #[serde(default)]
    pub counters: ConnectionCounters,
    /// `active-standby` or `active-active` (IKE connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Remote addresses of the tunnels that carry the traffic now.
    #[serde(default)]
    pub active: Vec<String>,
    /// Bandwidth sharing (when gateway.bandwidth or the connection's bandwidth is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthStatus>,
    /// The last failover: how long ago and what happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<String>,
    /// A route-based connection's tunnel interface; absent for a policy-based one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<InterfaceStatus>,
    pub tunnels: Vec<TunnelStatus>,
    /// A remote-access connection's address pools (one per family, IPv4 first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolStatus>,
    /// A remote-access connection's connected clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientStatus>,
}

/// A remote-access connection's address pool.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    /// The prefix, as configured.
    pub prefix: String,
    /// Addresses that can be handed out (an IPv6 /64: 2^64 - 1).
    pub size: u64,
    /// Held by a connected client.
    pub online: u64,
    /// Kept for a client that left, until its grace period ends.
    pub offline: u64,
}

/// One connected remote-access client: who, its address, and its tunnel.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClientStatus {
    /// The identity it authenticated with (escaped).
    pub identity: String,
    /// Its virtual addresses: one per family, IPv4 first, comma-separated.
    pub address: String,
    pub connected_secs: u64,
    /// `remote` is where it connects from now (its NAT's address and port).
    pub tunnel: TunnelStatus,
}

/// A route-based connection's tunnel interface, as ironsecd made it and as the kernel
/// counts it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct InterfaceStatus {
    pub name: String,
    /// Whether the device exists now: false when it could not be made, or someone deleted it.
    pub present: bool,
    /// "up" while a tunnel of the connection has an SA to send with: what is routed into the
    /// interface is then sealed; "down": it is dropped and counted (`no_sa`), never sent in
    /// clear.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Static routes into it (a routing daemon may add others).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Guarded prefixes (blackhole routes at metric 4242 behind whatever routes them).
    #[serde(default)]
    pub protect: Vec<String>,
    /// The kernel's counters of the device (`ip -s link`), read with the status: `tx` is what
    /// the host routed into the tunnel (towards the peer), `rx` what came out of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<InterfaceCounters>,
}

/// ", address A, routes P,Q, protect R": a route-based connection's interface keys for a text
/// line (status and list-conns), each part only when set.
pub fn interface_keys(address: Option<&str>, routes: &[String], protect: &[String]) -> String {
    let mut s = String::new();
    if let Some(a) = address {
        s.push_str(&format!(", address {a}"));
    }
    for (word, list) in [("routes", routes), ("protect", protect)] {
        if !list.is_empty() {
            s.push_str(&format!(", {word} {}", list.join(",")));
        }
    }
    s
}

/// A network device's counters as /sys/class/net/DEV/statistics has them.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterfaceCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl InterfaceCounters {
    /// Reads device `name`'s counters; `None` if it does not exist (in this namespace).
    pub fn read(name: &str) -> Option<InterfaceCounters> {
        let dir = std::path::Path::new("/sys/class/net")
            .join(name)
            .join("statistics");
        let get = |f: &str| -> Option<u64> {
            std::fs::read_to_string(dir.join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Some(InterfaceCounters {
            rx_packets: get("rx_packets")?,
            rx_bytes: get("rx_bytes")?,
            tx_packets: get("tx_packets")?,
            tx_bytes: get("tx_bytes")?,
        })
    }
}

/// Every value [`TunnelStatus::state`] takes: metrics give each its own series.
pub const TUNNEL_STATES: [&str; 5] = ["up", "connecting", "down", "trapped", "dormant"];

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TunnelStatus {
    pub local: String,
    pub remote: String,
    /// The peer as configured: its address, or the DNS name it was given by. Unlike
    /// `remote` (where the peer is now, with its port), it never changes while the daemon
    /// runs, so metrics label the tunnel with it.
    #[serde(default)]
    pub peer: String,
    /// `up` (sends with an SA), `connecting`, `down`, `trapped` (down, comes up on traffic),
    /// or `dormant` (its local address is a shared address that is not on this host).
    pub state: String,
    /// `active` (carries the traffic) or `standby`; absent for single-tunnel connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub priority: u32,
    #[serde(default)]
    pub weight: u32,
    /// Why the last IKE SA went down or the last negotiation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The peer refused the CHILD_SA this tunnel's IKE SA asked for; absent once one is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_refused: Option<ChildRefusedStatus>,
    /// The CHILD_SA the tunnel sends with (negotiated tunnels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<ChildStatus>,
    /// Every CHILD_SA the tunnel sends with, each for its own selectors (the first is `child`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildStatus>,
    /// Totals over every SA the tunnel has had.
    #[serde(default)]
    pub total_out: Traffic,
    #[serde(default)]
    pub total_in: Traffic,
    /// The IKE SA serving the tunnel (negotiated tunnels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ike: Option<IkeStatus>,
    pub outbound: Option<OutboundStatus>,
    pub inbound: Option<InboundStatus>,
    /// What NAT detection found for the IKE SA and where it talks now (negotiated tunnels with
    /// an IKE SA only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<NatStatus>,
    /// How much of its sequence space the static SA pair has used (static tunnels only: they
    /// cannot rekey; README "Static SAs and the sequence space").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_space: Option<SeqSpaceStatus>,
}

/// A static SA pair's sequence space.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SeqSpaceStatus {
    /// The highest sequence number sent or received.
    pub used: u64,
    /// 4294967295 without ESN; 18446744073709551615 with.
    pub size: u64,
    /// Whole percent of `size` used.
    pub percent: u8,
    pub esn: bool,
}

/// A tunnel's NAT traversal state.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NatStatus {
    /// We are behind a NAT: keepalives keep its mapping (see `nat_keepalive`).
    pub we_are_behind_nat: bool,
    /// The peer is behind a NAT: it is followed to the address its packets come from.
    pub peer_is_behind_nat: bool,
    /// The peer's address and port the tunnel sends to now.
    pub peer: String,
}

/// A refused CHILD_SA and the retry (a new IKE SA, 5 s doubling to 5 min between tries).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChildRefusedStatus {
    /// The error notify, e.g. `NO_PROPOSAL_CHOSEN` or `TS_UNACCEPTABLE`.
    pub notify: String,
    pub detail: String,
    /// Refusals in a row.
    pub refusals: u32,
    pub secs_ago: u64,
    /// A rekey was refused: the old CHILD_SA still carries the traffic and the next try is a
    /// rekey (until the old SA's hard lifetime; then a new IKE SA).
    #[serde(default)]
    pub rekey: bool,
    /// Seconds until the next try (a new IKE SA, or the rekey); absent when none is scheduled
    /// (the IKE SA went down meanwhile and the close action decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_try_in_secs: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IkeStatus {
    pub state: String,
    pub initiator: bool,
    pub spi_i: String,
    pub spi_r: String,
    pub algorithms: Option<String>,
    pub established_secs: Option<u64>,
    pub rekey_in_secs: Option<u64>,
    pub children: usize,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChildStatus {
    pub spi_in: String,
    pub spi_out: String,
    pub algorithms: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    pub established_secs: u64,
    pub rekey_in_secs: Option<u64>,
    /// What it carried against its volume limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeStatus>,
}

/// A CHILD_SA's volume against its limits (README "Volume lifetimes and the sequence space").
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeStatus {
    /// Bytes and packets in its busier direction: what `rekey_*`/`life_*` count.
    pub bytes: u64,
    pub packets: u64,
    /// The highest sequence number used in either direction.
    pub seq: u64,
    /// The connection's limits (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub life_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub life_packets: Option<u64>,
    /// Without ESN: the sequence number past which it is rekeyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_rekey_at: Option<u64>,
    /// Left before the rekey in each measure (absent: no limit, or reached and the rekey
    /// under way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_in_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_in_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_in_seq: Option<u64>,
    /// Milliseconds until the daemon next reads its counters against the limits (absent: no
    /// limit ahead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_in_ms: Option<u64>,
}

impl VolumeStatus {
    /// One line for `ironsecctl status`: `volume: 12000 bytes, 10 packets, seq 10; rekey in
    /// 3988000 bytes (rekey_bytes 4000000, life_bytes 4400000), in 4026531830 seq; next look
    /// in 100 ms`.
    pub fn render(&self) -> String {
        let mut s = format!(
            "volume: {} bytes, {} packets, seq {}",
            self.bytes, self.packets, self.seq
        );
        let mut limits = Vec::new();
        for (what, rekey_in, rekey, life) in [
            (
                "bytes",
                self.rekey_in_bytes,
                self.rekey_bytes,
                self.life_bytes,
            ),
            (
                "packets",
                self.rekey_in_packets,
                self.rekey_packets,
                self.life_packets,
            ),
        ] {
            if let (Some(r), Some(l)) = (rekey, life) {
                limits.push(format!(
                    "{} {what} (rekey_{what} {r}, life_{what} {l})",
                    rekey_in.map_or("rekey due, passed".to_string(), |n| format!("in {n}")),
                ));
            }
        }
        if let Some(at) = self.seq_rekey_at {
            limits.push(format!(
                "{} seq (no ESN: rekeyed at {at})",
                self.rekey_in_seq
                    .map_or("rekey due, passed".to_string(), |n| format!("in {n}"))
            ));
        }
        if limits.is_empty() {
            s.push_str("; no volume limit");
        } else {
            s.push_str("; rekey ");
            s.push_str(&limits.join(", "));
        }
        if let Some(ms) = self.next_check_in_ms {
            s.push_str(&format!("; next look in {ms} ms"));
        }
        s
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OutboundStatus {
    pub spi: String,
    pub suite: String,
    pub esn: bool,
    pub packets: u64,
    pub bytes: u64,
    pub next_seq: u64,
    pub drops: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct InboundStatus {
    pub spi: String,
    pub suite: String,
    pub esn: bool,
    pub packets: u64,
    pub bytes: u64,
    pub highest_seq: u64,
    pub drops: BTreeMap<String, u64>,
}

/// The address of `ADDRESS:PORT` (`[V6]:PORT` too), or the whole text when it has no port.
fn address_of(s: &str) -> &str {
    match s.rsplit_once(':') {
        Some((a, port))
            if port.parse::<u16>().is_ok() && (!a.contains(':') || a.starts_with('[')) =>
        {
            a.trim_start_matches('[').trim_end_matches(']')
        }
        _ => s,
    }
}

impl TunnelStatus {
    /// The tunnel's local address without its port, for metrics labels.
    pub fn metrics_local(&self) -> &str {
        address_of(&self.local)
    }

    /// The configured peer, for metrics labels (the current address if a document has none).
    pub fn metrics_remote(&self) -> &str {
        if self.peer.is_empty() {
            address_of(&self.remote)
        } else {
            &self.peer
        }
    }
}

pub fn spi_string(spi: u32) -> String {
    format!("0x{spi:08x}")
}

fn nonzero(drops: &BTreeMap<String, u64>) -> String {
    let v: Vec<String> = drops
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

impl Status {
    /// Makes this a brief answer: the summary over all its connections and, when more than
    /// [`BRIEF_OVER`], only the connections that are not up.
    pub fn make_brief(&mut self) {
        let mut sum = Summary::of(&self.connections);
        if self.connections.len() > BRIEF_OVER {
            self.connections.retain(|c| !c.is_up());
            sum.omitted = sum.connections - self.connections.len();
        }
        self.summary = Some(sum);
    }

    /// The summary line: `connections: 10000 configured, 9998 up, 2 down (1 failing);
    /// tunnels: 9998 of 10000 up; ike: 20000 received, 3 retransmitted, 0 queue drops, 0
    /// half-open drops`.
    pub fn summary_line(&self) -> String {
        let s = self
            .summary
            .clone()
            .unwrap_or_else(|| Summary::of(&self.connections));
        let k = &self.ike;
        format!(
            "connections: {} configured, {} up, {} down ({} failing); tunnels: {} of {} up{}; \
             ike: {} received, {} retransmitted, {} queue drops, {} half-open drops",
            s.connections,
            s.up,
            s.down,
            s.failing,
            s.tunnels_up,
            s.tunnels,
            if s.clients > 0 {
                format!(", {} client(s)", s.clients)
            } else {
                String::new()
            },
            k.received,
            k.retransmits_sent,
            k.queue_dropped,
            k.half_open_dropped
        )
    }

    /// `ironsecctl status` with many connections: the first line, the summary, then one line
    /// per tunnel that is not up (its error escaped as in [`Status::render`]).
    pub fn render_brief(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ironsecd {}  tun {}  workers {}  up {}s",
            self.version, self.tun, self.workers, self.uptime_secs
        );
        if self.workers_failed > 0 {
            let _ = writeln!(
                s,
                "  FAST PATH DOWN: {} worker(s) failed; ironsecd is exiting to be restarted",
                self.workers_failed
            );
        }
        let _ = writeln!(s, "{}", self.summary_line());
        for c in &self.connections {
            for t in c.all_tunnels().filter(|t| t.state != "up") {
                let _ = writeln!(
                    s,
                    "{}: tunnel {} -> {}: {}{}{}",
                    c.name,
                    t.local,
                    t.remote,
                    t.state,
                    t.last_error
                        .as_deref()
                        .map(|e| format!(" (last error: {})", PeerText::relayed(e)))
                        .unwrap_or_default(),
                    t.child_refused
                        .as_ref()
                        .map(|r| format!(
                            " (child SA refused {} time(s): {})",
                            r.refusals, r.notify
                        ))
                        .unwrap_or_default()
                );
            }
        }
        s
    }

    /// Human-readable rendering for `ironsecctl status`. Free text that may hold what a peer
    /// sent (errors, details) is escaped again on the way to the terminal (`PeerText`), so
    /// the document of any daemon, old or new, cannot forge a line or send an escape sequence.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let c = &self.counters;
        let _ = writeln!(
            s,
            "ironsecd {}  tun {}  workers {}  up {}s",
            self.version, self.tun, self.workers, self.uptime_secs
        );
        if self.workers_failed > 0 {
            let _ = writeln!(
                s,
                "  FAST PATH DOWN: {} worker(s) failed; ironsecd is exiting to be restarted",
                self.workers_failed
            );
        }
        let _ = writeln!(
            s,
            "  packets: tun rx {} ({} super) tx {} ({} super), udp rx {} tx {}, ike {}, keepalives {}",
            c.tun_rx_packets,
            c.tun_rx_super_packets,
            c.tun_tx_packets,
            c.tun_tx_super_packets,
            c.udp_rx_packets,
            c.udp_tx_packets,
            c.ike_packets,
            c.keepalives
        );
        let _ = writeln!(
            s,
            "  udp offload: rx {} coalesced, tx {} segmented",
            c.udp_rx_super_packets, c.udp_tx_super_packets
        );
        if let Some(n) = c.udp6_checksum_errors.filter(|n| *n > 0) {
            let _ = writeln!(
                s,
                "  udp/ipv6 dropped by the kernel for a bad or zero checksum: {n}"
            );
        }
        if c.gro_bad_checksums > 0 {
            let _ = writeln!(
                s,
                "  not coalesced (bad inner checksum): {}",
                c.gro_bad_checksums
            );
        }
        let _ = writeln!(
            s,
            "  mtu: mss clamped {}, icmp too-big sent {} (rate-limited {}), fragmented {}",
            c.mss_clamped, c.icmp_too_big, c.icmp_limited, c.inner_fragmented
        );
        let _ = writeln!(s, "  drops: {}", nonzero(&self.drops));
        for a in &self.shared_addresses {
            let _ = writeln!(
                s,
                "  shared address {}: {} ({} change(s) since start{})",
                a.address,
                if a.present {
                    "on this host"
                } else {
                    "not on this host, its tunnels are dormant"
                },
                a.changes,
                if a.ignored_acquires > 0 {
                    format!(", {} trap report(s) dropped", a.ignored_acquires)
                } else {
                    String::new()
                }
            );
        }
        if let Some(d) = &self.drain {
            let _ = writeln!(s, "  {}", d.line());
        }
        if let Some(g) = &self.guards {
            let unguarded: Vec<&str> = g
                .selectors
                .iter()
                .filter(|x| !x.guarded)
                .map(|x| x.prefix.as_str())
                .collect();
            let _ = writeln!(
                s,
                "  guards: {} route(s) installed (at start: {} adopted, {} removed), {} of {} remote selector(s) guarded{}{}",
                g.installed,
                g.adopted_at_start,
                g.removed_at_start,
                g.selectors.len() - unguarded.len(),
                g.selectors.len(),
                if unguarded.is_empty() {
                    String::new()
                } else {
                    format!(", UNGUARDED: {}", unguarded.join(","))
                },
                g.error
                    .as_deref()
                    .map(|e| format!(" (cannot read routes: {e})"))
                    .unwrap_or_default()
            );
        }
        let k = &self.ike;
        let ike: BTreeMap<String, u64> = [
            ("malformed", k.malformed),
            ("unknown_spi", k.unknown_spi),
            ("integrity_failed", k.integrity_failed),
            ("wrong_message_id", k.wrong_message_id),
            ("cookies_sent", k.cookies_sent),
            ("half_open_dropped", k.half_open_dropped),
            ("invalid_spi_sent", k.invalid_spi_sent),
            ("invalid_spi_hints", k.invalid_spi_hints),
            ("invalid_major_version_sent", k.invalid_major_version_sent),
            ("no_proposal_chosen", k.no_proposal_chosen),
            ("eap_failures", k.eap_failures),
            ("auth_rate_limited", k.auth_rate_limited),
            ("log_suppressed", k.log_suppressed),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
        let _ = writeln!(
            s,
            "  ike: {} received, {} requests sent, {} retransmitted; {}",
            k.received,
            k.requests_sent,
            k.retransmits_sent,
            nonzero(&ike)
        );
        for conn in &self.connections {
            let _ = writeln!(
                s,
                "{}: {} keying, {} === {}",
                conn.name,
                conn.keying,
                conn.local_ts.join(","),
                conn.remote_ts.join(",")
            );
            if let Some(i) = &conn.interface {
                let _ = writeln!(
                    s,
                    "  interface {}: {}{}{}",
                    i.name,
                    if i.present { &i.state } else { "missing" },
                    interface_keys(i.address.as_deref(), &i.routes, &i.protect),
                    i.kernel
                        .map(|k| format!(
                            "; kernel: tx {} packets {} bytes (into the tunnel), rx {} packets {} bytes",
                            k.tx_packets, k.tx_bytes, k.rx_packets, k.rx_bytes
                        ))
                        .unwrap_or_default()
                );
            }
            if let Some(b) = &conn.bandwidth {
                let _ = writeln!(
                    s,
                    "  bandwidth: weight {}, rate {:.1} Mbit/s, demand {:.1} Mbit/s{}, shaped {} of {} packets",
                    b.weight,
                    b.rate_bps as f64 / 1e6,
                    b.demand_bps as f64 / 1e6,
                    b.cap_bps
                        .map(|c| format!(", cap {:.1} Mbit/s", c as f64 / 1e6))
                        .unwrap_or_default(),
                    b.shaped_packets,
                    b.offered_packets
                );
            }
            if conn.tunnels.len() > 1 {
                let _ = writeln!(
                    s,
                    "  {}: traffic on {}, {} failover(s){}",
                    conn.mode.as_deref().unwrap_or("-"),
                    if conn.active.is_empty() {
                        "none".to_string()
                    } else {
                        conn.active.join("+")
                    },
                    conn.counters.failovers,
                    conn.last_failover
                        .as_deref()
                        .map(|f| format!(", last {f}"))
                        .unwrap_or_default()
                );
            }
            for p in &conn.pools {
                let _ = writeln!(
                    s,
                    "  pool {}: {} of {} addresses in use ({} connected, {} kept for clients that left)",
                    p.prefix,
                    p.online + p.offline,
                    p.size,
                    p.online,
                    p.offline
                );
            }
            for c in &conn.clients {
                let t = &c.tunnel;
                let _ = writeln!(
                    s,
                    "  client {} {} from {}: {} for {}s, out {} packets {} bytes, in {} packets {} bytes",
                    ironsec_ike::PeerText::new(c.identity.as_bytes()),
                    c.address,
                    t.remote,
                    t.state,
                    c.connected_secs,
                    t.total_out.packets,
                    t.total_out.bytes,
                    t.total_in.packets,
                    t.total_in.bytes
                );
            }
            for t in &conn.tunnels {
                let _ = writeln!(
                    s,
                    "  tunnel {} -> {}: {}{}",
                    t.local,
                    t.remote,
                    if t.state == "dormant" {
                        // `local` is ADDRESS:PORT; the address is what moved.
                        let ip = t
                            .local
                            .parse::<std::net::SocketAddr>()
                            .map_or(t.local.clone(), |a| a.ip().to_string());
                        format!("dormant ({ip} not on this host)")
                    } else {
                        t.state.clone()
                    },
                    t.role
                        .as_deref()
                        .map(|r| format!(", {r} (priority {}, weight {})", t.priority, t.weight))
                        .unwrap_or_default()
                );
                if let Some(e) = &t.last_error {
                    let _ = writeln!(s, "    last error: {}", PeerText::relayed(e));
                }
                if let Some(r) = &t.child_refused {
                    let _ = writeln!(
                        s,
                        "    child SA {}refused: {} ({}), {} time(s), last {}s ago, {}",
                        if r.rekey { "rekey " } else { "" },
                        r.notify,
                        PeerText::relayed(&r.detail),
                        r.refusals,
                        r.secs_ago,
                        r.next_try_in_secs
                            .map_or("no retry scheduled".to_string(), |n| {
                                let how = if r.rekey { "rekey" } else { "new IKE SA" };
                                format!("next try ({how}) in {n}s")
                            })
                    );
                }
                if let Some(n) = t
                    .nat
                    .as_ref()
                    .filter(|n| n.we_are_behind_nat || n.peer_is_behind_nat)
                {
                    let _ = writeln!(
                        s,
                        "    nat: {}, peer at {}",
                        match (n.we_are_behind_nat, n.peer_is_behind_nat) {
                            (true, true) => "both ends behind NATs",
                            (true, false) => "we are behind a NAT",
                            // A peer that forces UDP encapsulation (ironsec always does,
                            // strongSwan with encap = yes) fakes NAT detection: from here it
                            // cannot be told apart from a real NAT, and it is followed alike.
                            _ => "the peer is behind a NAT (or forces UDP encapsulation)",
                        },
                        n.peer
                    );
                }
                if let Some(i) = &t.ike {
                    let _ = writeln!(
                        s,
                        "    ike {} {}, {} {}/{}, up {}s, rekey in {}s, {} child SA(s)",
                        i.state,
                        if i.initiator {
                            "(initiator)"
                        } else {
                            "(responder)"
                        },
                        i.algorithms.as_deref().unwrap_or("-"),
                        i.spi_i,
                        i.spi_r,
                        i.established_secs.unwrap_or(0),
                        i.rekey_in_secs.map_or("-".to_string(), |x| x.to_string()),
                        i.children
                    );
                }
                for c in &t.children {
                    let _ = writeln!(
                        s,
                        "    child {}/{} {}, {} === {}, up {}s, rekey in {}s",
                        c.spi_in,
                        c.spi_out,
                        c.algorithms,
                        c.local_ts.join(","),
                        c.remote_ts.join(","),
                        c.established_secs,
                        c.rekey_in_secs.map_or("-".to_string(), |x| x.to_string())
                    );
                    if let Some(v) = &c.volume {
                        let _ = writeln!(s, "      {}", v.render());
                    }
                }
                if let Some(q) = &t.seq_space {
                    let _ = writeln!(
                        s,
                        "    sequence space: {}% used ({} of {}{}){}",
                        q.percent,
                        q.used,
                        q.size,
                        if q.esn { ", esn" } else { "" },
                        if q.percent >= 75 {
                            "; static keys cannot rekey: install new keys or use esn = true"
                        } else {
                            ""
                        }
                    );
                }
                match &t.outbound {
                    Some(o) => {
                        let _ = writeln!(
                            s,
                            "    out spi {} {}{}: {} packets, {} bytes, next seq {}, drops: {}",
                            o.spi,
                            o.suite,
                            if o.esn { "/esn" } else { "" },
                            o.packets,
                            o.bytes,
                            o.next_seq,
                            nonzero(&o.drops)
                        );
                    }
                    None => {
                        let _ = writeln!(s, "    out: no SA");
                    }
                }
                match &t.inbound {
                    Some(i) => {
                        let _ = writeln!(
                            s,
                            "    in  spi {} {}{}: {} packets, {} bytes, highest seq {}, drops: {}",
                            i.spi,
                            i.suite,
                            if i.esn { "/esn" } else { "" },
                            i.packets,
                            i.bytes,
                            i.highest_seq,
                            nonzero(&i.drops)
                        );
                    }
                    None => {
                        let _ = writeln!(s, "    in: no SA");
                    }
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod worker_failure_tests {
    use super::*;

    fn status(workers_failed: usize) -> Status {
        Status {
            version: "0".into(),
            tun: "ipsec0".into(),
            workers: 2,
            workers_failed,
            uptime_secs: 1,
            counters: Counters::default(),
            drops: BTreeMap::new(),
            ike: IkeCounters::default(),
            connections: Vec::new(),
            guards: None,
            shared_addresses: Vec::new(),
            drain: None,
            summary: None,
            no_match: None,
        }
    }

    #[test]
    fn a_failed_worker_is_shown_and_an_older_daemons_json_still_reads() {
        assert!(!status(0).render().contains("FAST PATH DOWN"));
        assert!(status(1)
            .render()
            .contains("FAST PATH DOWN: 1 worker(s) failed"));
        // A daemon from before the field: it reads as 0.
        let mut v = serde_json::to_value(status(0)).unwrap();
        v.as_object_mut().unwrap().remove("workers_failed");
        let back: Status = serde_json::from_value(v).unwrap();
        assert_eq!(back.workers_failed, 0);
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::tests::sample_status;

    #[test]
    fn text_rendering_escapes_what_a_peer_sent() {
        let mut st = sample_status();
        let t = &mut st.connections[0].tunnels[0];
        // A document as an older daemon could send it: raw control bytes in free text.
        t.last_error = Some("no connection for peer identity 'x\nFORGED\x1b]0;t\x07'".into());
        t.child_refused = Some(super::ChildRefusedStatus {
            notify: "TS_UNACCEPTABLE".into(),
            detail: "d\x1b[2J\r".into(),
            refusals: 1,
            secs_ago: 0,
            rekey: false,
            next_try_in_secs: None,
        });
        let text = st.render();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{text}");
        assert!(text.contains("'x\\nFORGED\\x1b]0;t\\x07'"), "{text}");
        assert!(text.contains("d\\x1b[2J\\r"), "{text}");
    }
}

#[cfg(test)]
mod volume_tests {
    use super::*;

    #[test]
    fn volume_line_names_each_limit_and_what_is_left() {
        let v = VolumeStatus {
            bytes: 3_000_000,
            packets: 3,
            seq: 3,
            rekey_bytes: Some(4_000_000),
            life_bytes: Some(40_000_000),
            seq_rekey_at: Some(4_026_531_840),
            rekey_in_bytes: Some(1_000_000),
            rekey_in_seq: Some(4_026_531_837),
            next_check_in_ms: Some(100),
            ..Default::default()
        };
        assert_eq!(
            v.render(),
            "volume: 3000000 bytes, 3 packets, seq 3; rekey in 1000000 bytes (rekey_bytes \
             4000000, life_bytes 40000000), in 4026531837 seq (no ESN: rekeyed at 4026531840); \
             next look in 100 ms"
        );
        let passed = VolumeStatus {
            bytes: 5_000_000,
            rekey_bytes: Some(4_000_000),
            life_bytes: Some(40_000_000),
            ..Default::default()
        };
        assert!(passed
            .render()
            .contains("rekey due, passed bytes (rekey_bytes 4000000"));
        let none = VolumeStatus {
            bytes: 10,
            packets: 1,
            seq: 1,
            ..Default::default()
        };
        assert_eq!(
            none.render(),
            "volume: 10 bytes, 1 packets, seq 1; no volume limit"
        );
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;
    use crate::metrics::tests::sample_status;

    /// `n` connections like the sample's (one tunnel, up), the ones in `down` with their
    /// tunnel down, those in `failing` down with an error.
    fn many(n: usize, down: &[usize], failing: &[usize]) -> Status {
        let mut st = sample_status();
        st.workers_failed = 0;
        let one = st.connections[0].clone();
        st.connections = (0..n)
            .map(|i| {
                let mut c = one.clone();
                c.name = format!("s{i}");
                if down.contains(&i) || failing.contains(&i) {
                    c.tunnels[0].state = "connecting".into();
                }
                if failing.contains(&i) {
                    c.tunnels[0].last_error = Some("AUTHENTICATION_FAILED\x1b[2J".into());
                }
                c
            })
            .collect();
        st
    }

    #[test]
    fn many_connections_make_one_line_and_the_tunnels_not_up() {
        let mut st = many(BRIEF_OVER + 1, &[3], &[7]);
        st.make_brief();
        let s = st.summary.clone().unwrap();
        assert_eq!(
            s,
            Summary {
                connections: BRIEF_OVER + 1,
                up: BRIEF_OVER - 1,
                down: 2,
                failing: 1,
                tunnels: BRIEF_OVER + 1,
                tunnels_up: BRIEF_OVER - 1,
                clients: 0,
                omitted: BRIEF_OVER - 1,
            }
        );
        // Only the two not up are still listed.
        let names: Vec<&str> = st.connections.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["s3", "s7"]);
        let text = st.render_brief();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[1],
            "connections: 51 configured, 49 up, 2 down (1 failing); tunnels: 49 of 51 up; \
             ike: 0 received, 1 retransmitted, 0 queue drops, 0 half-open drops"
        );
        assert!(
            lines[2].starts_with("s3: tunnel ") && lines[2].ends_with(": connecting"),
            "{text}"
        );
        assert!(
            lines[3].ends_with(": connecting (last error: AUTHENTICATION_FAILED\\x1b[2J)"),
            "{text}"
        );
        // The summary survives the wire; a document without one still reads.
        let back: Status = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        assert_eq!(back, st);
        let plain = sample_status();
        let v = serde_json::to_value(&plain).unwrap();
        assert!(v.get("summary").is_none() && v.get("no_match").is_none());
    }

    #[test]
    fn few_connections_stay_listed_whole() {
        let mut st = many(BRIEF_OVER, &[3], &[]);
        let full = st.render();
        st.make_brief();
        assert_eq!(st.connections.len(), BRIEF_OVER);
        assert_eq!(st.summary.as_ref().unwrap().omitted, 0);
        // Rendering ignores the summary: small configs print as they always did.
        assert_eq!(st.render(), full);
        // Without a summary (a daemon from before), the line is counted here.
        let st = many(3, &[], &[1]);
        assert!(st.summary_line().starts_with(
            "connections: 3 configured, 2 up, 1 down (1 failing); tunnels: 2 of 3 up"
        ));
    }

    #[test]
    fn a_remote_access_connection_counts_its_clients() {
        let mut st = sample_status();
        let mut c = st.connections[0].clone();
        let t = c.tunnels.remove(0);
        c.name = "ra".into();
        // Without clients: up (it waits for them).
        st.connections.push(c.clone());
        c.name = "ra2".into();
        c.clients.push(ClientStatus {
            identity: "alice".into(),
            address: "10.9.0.1".into(),
            connected_secs: 1,
            tunnel: t,
        });
        st.connections.push(c);
        let s = Summary::of(&st.connections);
        assert_eq!((s.connections, s.up, s.down), (3, 3, 0));
        assert_eq!((s.tunnels, s.clients), (1, 1));
    }
}
