//! The config file as written: serde types that refuse unknown keys. `config::validate` turns
//! them into the checked model the daemon runs on.

use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileSchema {
    #[serde(default)]
    pub gateway: GatewaySchema,
    #[serde(default)]
    pub connection: Vec<ConnectionSchema>,
    /// Planned maintenance (`ironsecctl drain`, the stop path, rejoin): see [`DrainSchema`].
    #[serde(default)]
    pub drain: DrainSchema,
}

/// `[drain]`: what a planned drain runs and how it decides that traffic has moved away
/// (validated by `super::drain`). Every key is optional; without the table a drain still
/// closes the IKE SAs, it just runs nothing first and writes no state file.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct DrainSchema {
    /// Commands run in order when a drain starts, each an argv list (no shell), e.g.
    /// `[["birdc", "-s", "/run/bird/bird.ctl", "configure", "\"/etc/bird/bird-drain.conf\""]]`.
    pub withdraw: Option<Vec<Vec<String>>>,
    /// Commands run in order once a rejoin has the tunnels up again.
    pub rejoin: Option<Vec<Vec<String>>>,
    /// A file holding "1" while draining or drained and "0" otherwise (keepalived's
    /// `track_file`); none by default.
    pub state_file: Option<PathBuf>,
    /// Traffic counts as moved once all tunnels together carry fewer packets/s than this.
    pub idle_pps: Option<u64>,
    /// ... for this many seconds.
    pub quiet: Option<f64>,
    /// Seconds to wait for traffic to move before closing anyway; also each command's limit.
    pub timeout: Option<f64>,
    /// SIGTERM (systemctl stop/restart) drains before exiting.
    pub on_stop: Option<bool>,
    /// At start: state file "0", and the rejoin commands once the tunnels are up.
    pub rejoin_on_start: Option<bool>,
}

fn default_tun() -> String {
    "ipsec0".into()
}
fn default_tun_mtu() -> u16 {
    1400
}
fn default_txqueuelen() -> u32 {
    1000
}
fn default_port() -> u16 {
    4500
}
fn default_ike_port() -> u16 {
    500
}
fn default_control_socket() -> PathBuf {
    "/run/ironsec/ironsecd.sock".into()
}
fn default_replay_window() -> usize {
    1024
}
fn default_socket_buffer() -> usize {
    // 1 MiB: room for a burst at several Gbit/s without the queueing delay a larger buffer
    // adds under load (measured: 4 MiB -> 7 ms ping under 4 TCP streams, 1 MiB -> 3.9 ms,
    // 256 KiB -> 1.3 ms but 18% less throughput).
    1 << 20
}
fn default_batch() -> usize {
    64
}
// The IKE engine's own defaults (`ironsec_ike::EndpointConfig`), so an absent key changes
// nothing.
fn default_cookie_threshold() -> usize {
    10
}
fn default_half_open_limit() -> usize {
    1000
}
fn default_ike_fragment_size() -> usize {
    1280
}

/// Every key of `[gateway]`: derived from [`super::gateway::GatewayKey::ALL`] and checked against
/// [`GatewaySchema`] by a unit test, so the two cannot drift apart.
pub use super::gateway::GATEWAY_KEYS;

/// The keys of a table of type `T`, as its serde derive knows them: what unknown keys are
/// refused against and suggestions picked from, without a second list that could drift.
pub fn keys_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<T>()
}

/// A conf.d fragment: connections only. Unknown top-level keys are not refused by serde here
/// but by the loader, which says why (only the main file sets gateway keys).
#[derive(Deserialize, Debug, Default)]
pub struct FragmentSchema {
    #[serde(default)]
    pub connection: Vec<ConnectionSchema>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct GatewaySchema {
    #[serde(default = "default_tun")]
    pub tun: String,
    #[serde(default = "default_tun_mtu")]
    pub tun_mtu: u16,
    #[serde(default = "default_txqueuelen")]
    pub tun_txqueuelen: u32,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_ike_port")]
    pub ike_port: u16,
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    #[serde(default)]
    pub workers: usize,
    #[serde(default = "default_replay_window")]
    pub replay_window: usize,
    #[serde(default = "default_socket_buffer")]
    pub socket_buffer: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Prometheus text endpoint, `"ADDRESS:PORT"` or `"off"`; default
    /// [`DEFAULT_METRICS`] (loopback only).
    #[serde(default = "default_metrics")]
    pub metrics: String,
    /// A file holding the bearer token a scrape must send (`Authorization: Bearer TOKEN`);
    /// none: no authentication (fine on loopback).
    #[serde(default)]
    pub metrics_token_file: Option<PathBuf>,
    /// Cap on the sum of every tunnel's egress: "200M", "1.5Gbit", "500k" or bits/s.
    #[serde(default)]
    pub bandwidth: Option<Bandwidth>,
    /// UDP GSO/GRO on the ESP sockets where the kernel allows (default on).
    #[serde(default = "default_true")]
    pub udp_offload: bool,
    /// TSO and checksum offload on the TUN device (default on).
    #[serde(default = "default_true")]
    pub tun_offload: bool,
    /// Zero-checksum UDP over IPv6 on the ESP and IKE sockets (RFC 6935/6936): refused
    /// (default) or accepted.
    #[serde(default)]
    pub udp6_zero_checksum: Udp6ZeroChecksum,
    /// Half-open IKE SAs above which IKE_SA_INIT must carry a cookie.
    #[serde(default = "default_cookie_threshold")]
    pub cookie_threshold: usize,
    /// Half-open IKE SAs above which new IKE_SA_INIT requests are dropped.
    #[serde(default = "default_half_open_limit")]
    pub half_open_limit: usize,
    /// Largest IP datagram (bytes, IP and UDP headers included) an IKE message is sent in once
    /// IKE fragmentation is agreed.
    #[serde(default = "default_ike_fragment_size")]
    pub ike_fragment_size: usize,
    /// Trust anchors for certificate authentication: every PEM/DER certificate file in this
    /// directory (relative paths: to the main config file's directory).
    #[serde(default)]
    pub ca_dir: Option<PathBuf>,
    /// Certificate revocation lists (PEM or DER files) checked with the anchors.
    #[serde(default)]
    pub crl_dir: Option<PathBuf>,
    /// Local tunnel addresses this host may not hold (an active-standby pair's shared
    /// address): bound with IP_FREEBIND, their tunnels dormant while the address is away.
    #[serde(default)]
    pub shared_addresses: Vec<String>,
    /// Prefixes a guard route blackholes whatever the connections are (e.g. every spoke
    /// site's prefix on a hub gateway that owns a share of them).
    #[serde(default)]
    pub protect: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// Where the metrics endpoint listens unless told otherwise: loopback only, so that it is on
/// for the local Prometheus (or a reverse proxy) without being reachable from the networks the
/// gateway serves. The port is outside 9100-9999, the range of Prometheus exporter defaults,
/// which is wholly allocated: any port there is another exporter's that may run on this host
/// (README "Metrics").
pub const DEFAULT_METRICS: &str = "127.0.0.1:14500";

fn default_metrics() -> String {
    DEFAULT_METRICS.to_string()
}

impl Default for GatewaySchema {
    fn default() -> Self {
        GatewaySchema {
            tun: default_tun(),
            tun_mtu: default_tun_mtu(),
            tun_txqueuelen: default_txqueuelen(),
            port: default_port(),
            ike_port: default_ike_port(),
            control_socket: default_control_socket(),
            workers: 0,
            replay_window: default_replay_window(),
            socket_buffer: default_socket_buffer(),
            batch: default_batch(),
            metrics: default_metrics(),
            metrics_token_file: None,
            bandwidth: None,
            udp_offload: true,
            tun_offload: true,
            udp6_zero_checksum: Udp6ZeroChecksum::Refuse,
            cookie_threshold: default_cookie_threshold(),
            half_open_limit: default_half_open_limit(),
            ike_fragment_size: default_ike_fragment_size(),
            ca_dir: None,
            crl_dir: None,
            shared_addresses: Vec::new(),
            protect: Vec::new(),
        }
    }
}

/// `TryFrom<String>` for a config word: the config crate's own message for an unknown enum
/// value ("enum X does not have variant constructor y") tells an operator neither the key's
/// choices nor how to spell them; this one lists them and suggests the closest. Aliases are
/// accepted but not advertised.
macro_rules! config_word {
    ($ty:ident, $what:literal, [$($word:literal => $variant:ident),+] $(, aliases [$($alias:literal => $avariant:ident),+])?) => {
        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                match s.as_str() {
                    $($word => Ok($ty::$variant),)+
                    $($($alias => Ok($ty::$avariant),)+)?
                    _ => Err(format!(
                        "'{s}' is not a {}: expected {}{}",
                        $what,
                        [$(concat!("\"", $word, "\"")),+].join(", "),
                        super::suggest::did_you_mean(&s, [$($word),+])
                    )),
                }
            }
        }
    };
}

config_word!(KeyingKind, "keying", ["static" => Static, "ike" => Ike]);
config_word!(StartAction, "start_action", ["start" => Start, "trap" => Trap, "none" => None]);
config_word!(UniqueWord, "unique", ["no" => No, "never" => Never, "replace" => Replace, "keep" => Keep]);
config_word!(
    Udp6ZeroChecksum,
    "udp6_zero_checksum",
    ["refuse" => Refuse, "accept" => Accept]
);
config_word!(Mode, "mode", ["active-standby" => ActiveStandby, "active-active" => ActiveActive]);
config_word!(
    CloseAction,
    "close_action",
    ["none" => None, "trap" => Trap, "restart" => Restart],
    aliases ["start" => Restart]
);

/// What the IPv6 sockets do with a UDP datagram whose checksum is zero. RFC 8200 makes the
/// checksum mandatory over IPv6; RFC 6935 lets a tunnel protocol send zero and RFC 6936 says
/// a receiver accepts zero only on a port configured for it. ESP carries its own integrity
/// check, so accepting zero endangers no data, but a corrupted address or port would then go
/// unnoticed: refusing is the default, as the kernel does, and ironsecd always sends checksums.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(try_from = "String")]
pub enum Udp6ZeroChecksum {
    /// The kernel drops them (counted in the namespace's Udp6InCsumErrors).
    #[default]
    Refuse,
    /// UDP_NO_CHECK6_RX on the IPv6 sockets: delivered as if checksummed.
    Accept,
}

impl Udp6ZeroChecksum {
    pub fn word(self) -> &'static str {
        match self {
            Udp6ZeroChecksum::Refuse => "refuse",
            Udp6ZeroChecksum::Accept => "accept",
        }
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum KeyingKind {
    /// Manual SAs: SPIs and keys from the config, like `ip xfrm state add`.
    Static,
    /// IKEv2 with a pre-shared key.
    Ike,
}

/// strongSwan's `unique` (see `ironsec_ike::config::Unique`).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum UniqueWord {
    No,
    Never,
    Replace,
    Keep,
}

impl From<UniqueWord> for ironsec_ike::config::Unique {
    fn from(w: UniqueWord) -> Self {
        match w {
            UniqueWord::No => ironsec_ike::config::Unique::No,
            UniqueWord::Never => ironsec_ike::config::Unique::Never,
            UniqueWord::Replace => ironsec_ike::config::Unique::Replace,
            UniqueWord::Keep => ironsec_ike::config::Unique::Keep,
        }
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum StartAction {
    /// Initiate at start, and again whenever the IKE SA goes away.
    Start,
    /// Negotiate when the first packet for the remote selectors arrives (and again after the
    /// tunnel went down), like an IPsec trap policy.
    Trap,
    /// Wait for the peer to initiate.
    None,
}

/// How the tunnels of one connection carry its traffic.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum Mode {
    /// One tunnel at a time: the up tunnel of highest priority; the others stand by, up.
    ActiveStandby,
    /// Every up tunnel, flows spread by weight; a flow stays on its tunnel.
    ActiveActive,
}

/// What to do when the peer closes the IKE SA or stops answering (DPD, retransmissions).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum CloseAction {
    /// Leave it down until the peer or an operator brings it up.
    None,
    /// Bring it up again on the next packet for the remote selectors.
    Trap,
    /// Initiate again at once (after a short back-off). strongSwan calls this `start`, which
    /// is accepted too.
    Restart,
}

/// One schema for both keyings: which keys apply depends on `keying`, and validation says
/// which ones are missing or do not belong.
///
/// Every key is an `Option`, the required ones too (validation reports those missing): so a
/// connection whose bad keys were set aside still deserializes, and its other keys are still
/// checked in the same run ([`super::load`]).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSchema {
    /// Required.
    pub name: Option<String>,
    /// Required.
    pub keying: Option<KeyingKind>,
    /// Required, except for a route-based connection (`interface`), where both default to
    /// ["0.0.0.0/0", "::/0"] (both families; the peer narrows to what it has).
    pub local_ts: Option<Vec<String>>,
    /// Required, except for a route-based connection (as `local_ts`).
    pub remote_ts: Option<Vec<String>>,
    /// Required.
    pub tunnels: Option<Vec<TunnelSchema>>,
    // route-based connections
    /// Makes the connection route-based: a tunnel interface of its own with this name,
    /// created and removed by ironsecd; the kernel's routes decide what enters it.
    pub interface: Option<String>,
    /// An address (with its prefix length) ironsecd puts on the interface, e.g. the APIPA
    /// /30 a BGP session runs over ("169.254.21.1/30").
    pub interface_address: Option<String>,
    /// Static routes into the interface (prefixes); a routing daemon can add the rest.
    pub routes: Option<Vec<String>>,
    /// Prefixes that must never leave except through a tunnel: guard routes (blackhole,
    /// metric 4242) that stay while routes into the interface come and go and while
    /// ironsecd is absent.
    pub protect: Option<Vec<String>>,
    // keying = "static"
    pub esp: Option<String>,
    pub esn: Option<bool>,
    pub keys_file: Option<PathBuf>,
    // keying = "ike"
    pub local_id: Option<String>,
    pub remote_id: Option<String>,
    pub psk: Option<String>,
    pub psk_file: Option<PathBuf>,
    /// Certificate authentication: our end-entity certificate (intermediates may follow it in
    /// the same PEM file) and its private key (0600).
    pub local_cert: Option<PathBuf>,
    pub local_key: Option<PathBuf>,
    /// Instead of local_cert/local_key: several certificates with their keys, the one whose
    /// CA the peer's CERTREQ names used, else the first.
    pub local_certs: Option<Vec<LocalCertSchema>>,
    /// The peer's certificate, pinned: it need not send it, and must send this one if any.
    pub remote_cert: Option<PathBuf>,
    /// "psk" or "pubkey": how we prove ourselves (default pubkey with local_cert, else psk).
    pub local_auth: Option<String>,
    /// "psk", "pubkey" or "eap-mschapv2" (remote-access clients): how the peer must
    /// (default: as local_auth).
    pub remote_auth: Option<String>,
    /// With remote_auth = "eap-mschapv2": the users, one `name:NT-hash` line each (MD4 of
    /// the UTF-16LE password, 32 hex digits; never the password), mode 0600.
    pub eap_users_file: Option<PathBuf>,
    /// With remote_auth = "eap-radius": the RADIUS server ("ip:port", or "ip" for 1812).
    pub radius_server: Option<String>,
    /// The secret shared with the RADIUS server, first line of this file (mode 0600).
    pub radius_secret_file: Option<PathBuf>,
    /// Seconds before an unanswered RADIUS request is sent again (default 3).
    pub radius_timeout: Option<u64>,
    /// How many times a RADIUS request is sent in all (default 3).
    pub radius_tries: Option<u32>,
    /// NAS-Identifier in our Access-Requests (default "ironsec").
    pub radius_nas_identifier: Option<String>,
    /// "ifasked" (default), "always" or "never": when our certificates go out.
    pub send_cert: Option<String>,
    /// Sign with RSASSA-PSS instead of PKCS#1 v1.5 when our key is RSA (default false).
    pub rsa_pss: Option<bool>,
    pub ike_proposals: Option<Vec<String>>,
    pub esp_proposals: Option<Vec<String>>,
    /// Lets the proposals name legacy algorithms that need an opt-in (MODP-768/1024/1536,
    /// 3DES; `ironsec_ike::crypto::LegacyLevel::OptIn`). Default false.
    pub allow_legacy_crypto: Option<bool>,
    pub start_action: Option<StartAction>,
    /// What a peer's new IKE SA does to the established ones of the same identity, as
    /// strongSwan's `unique`: "no" (default: replace them on INITIAL_CONTACT), "never",
    /// "replace", "keep".
    pub unique: Option<UniqueWord>,
    pub close_action: Option<CloseAction>,
    /// Seconds a request on an established IKE SA may go unanswered before the peer is
    /// declared dead; absent = when the retransmissions run out.
    pub dpd_timeout: Option<u64>,
    /// Seconds before the first retransmission of a request.
    pub retransmit_timeout: Option<f64>,
    /// Retransmissions before giving up.
    pub retransmit_tries: Option<u32>,
    /// Each wait is this many times the last one.
    pub retransmit_base: Option<f64>,
    /// Seconds of inbound silence before a liveness check; 0 disables.
    pub dpd_interval: Option<u64>,
    /// Seconds between NAT keepalives while we are behind a NAT and the tunnel sends nothing
    /// (RFC 3948 2.3); 0 disables. Default 20, as strongSwan's `keep_alive`.
    pub nat_keepalive: Option<u64>,
    /// CHILD_SA rekey after this many seconds (hard limit: 10% later).
    pub rekey_time: Option<u64>,
    /// IKE SA rekey after this many seconds.
    pub ike_rekey_time: Option<u64>,
    /// Reauthenticate the IKE SA (a new IKE SA and CHILD_SAs, made before the old ones go)
    /// after this many seconds; absent or 0 = never (rekeying only).
    pub reauth_time: Option<u64>,
    /// CHILD_SA rekey after this many bytes in either direction ("500MB", "2GiB" or bytes).
    pub rekey_bytes: Option<Volume>,
    /// CHILD_SA hard byte limit: deleted when it carried this much (default rekey_bytes + 10%).
    pub life_bytes: Option<Volume>,
    /// CHILD_SA rekey after this many packets in either direction.
    pub rekey_packets: Option<Volume>,
    /// CHILD_SA hard packet limit (default rekey_packets + 10%).
    pub life_packets: Option<Volume>,
    /// Force UDP encapsulation (the fast path speaks ESP-in-UDP only).
    pub encap: Option<bool>,
    /// How several tunnels share the traffic.
    pub mode: Option<Mode>,
    /// This connection's weight in sharing gateway.bandwidth (default 1).
    pub bandwidth_weight: Option<u32>,
    /// This connection's own cap on egress, within the gateway's.
    pub bandwidth: Option<Bandwidth>,
    /// Seconds within which a dead tunnel's traffic moves to another one.
    pub failover_after: Option<f64>,
    /// Move traffic back to a higher-priority tunnel once it is healthy again.
    pub preempt: Option<bool>,
    /// Seconds the higher-priority tunnel must stay up before traffic moves back.
    pub preempt_hold: Option<u64>,
    // remote access (keying = "ike", a tunnel with remote = "%any")
    /// The clients' virtual addresses: a prefix, or a list of at most one per family
    /// (`["10.99.0.0/24", "2001:db8:99::/112"]`: dual-stack clients get one of each). An IPv4
    /// prefix's network and broadcast addresses and an IPv6 prefix's first address are never
    /// handed out. The connection's remote side is these prefixes, each routed into the
    /// shared TUN device as one route.
    pub pool: Option<OneOrMany>,
    /// DNS servers sent to clients (INTERNAL_IP4_DNS, INTERNAL_IP6_DNS).
    pub pool_dns: Option<Vec<String>>,
    /// Seconds a client's address stays reserved for it after it left (default 600).
    pub lease_grace: Option<u64>,
    // both keyings
    /// TCP MSS clamping of SYNs through the tunnels: "auto" (default: to what fits), "off",
    /// or a fixed MSS such as 1350 (never above what fits).
    pub mss_clamp: Option<WordOrNumber>,
    /// The outer path's MTU towards the peer: "auto" (default: the kernel's route to the
    /// peer) or bytes, 1280..=9000.
    pub path_mtu: Option<WordOrNumber>,
    /// DSCP copy between inner and outer headers, strongSwan's words: "out" (default), "in",
    /// "yes", "no".
    pub copy_dscp: Option<String>,
    /// Accept a psk_file/keys_file that group or others may read (with a warning at load).
    /// For secrets deployed by tools that cannot set 0600; off by default because a key other
    /// local users can read is no longer secret.
    pub allow_readable_secret_file: Option<bool>,
}

/// One entry of `local_certs`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct LocalCertSchema {
    /// Required: the certificate, then its intermediates.
    pub cert: Option<PathBuf>,
    /// Required: its private key (0600).
    pub key: Option<PathBuf>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct TunnelSchema {
    /// Required (an `Option` for the same reason as [`ConnectionSchema`]'s keys).
    pub local: Option<String>,
    /// Required.
    pub remote: Option<String>,
    /// active-standby: the up tunnel with the highest priority carries the traffic.
    pub priority: Option<u32>,
    /// active-active: share of the flows.
    pub weight: Option<u32>,
    pub remote_port: Option<u16>,
    pub spi_out: Option<Spi>,
    pub spi_in: Option<Spi>,
}

/// A key that takes a word (`"auto"`, `"off"`) or a number. Which words and which range is
/// the validator's business, so its error can name the key's own choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordOrNumber {
    Word(String),
    Number(i64),
}

/// A string or a list of strings (`pool = "10.99.0.0/24"` or `pool = ["10.99.0.0/24",
/// "2001:db8:99::/112"]`): the single form stays valid for configs written before IPv6 pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OneOrMany, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for WordOrNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WordOrNumber, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WordOrNumber;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a word such as \"auto\" or a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WordOrNumber, E> {
                Ok(WordOrNumber::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WordOrNumber, E> {
                Ok(WordOrNumber::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WordOrNumber, E> {
                Ok(WordOrNumber::Word(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A rate in bits per second, written `"200M"`, `"200Mbit"`, `"1.5G"`, `"500k"` (decimal
/// units, as network operators quote links) or as a plain integer of bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth(pub u64);

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bandwidth, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bandwidth;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a rate such as \"200M\", \"1.5Gbit\" or bits per second")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bandwidth, E> {
                Ok(Bandwidth(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bandwidth, E> {
                u64::try_from(v)
                    .map(Bandwidth)
                    .map_err(|_| E::custom("a rate cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bandwidth, E> {
                parse_bandwidth(v).map(Bandwidth).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

pub fn parse_bandwidth(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("bit/s")
        .or_else(|| lower.strip_suffix("bps"))
        .or_else(|| lower.strip_suffix("bit"))
        .unwrap_or(&lower)
        .trim_end();
    let (num, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1e3),
        Some('m') => (&body[..body.len() - 1], 1e6),
        Some('g') => (&body[..body.len() - 1], 1e9),
        Some('t') => (&body[..body.len() - 1], 1e12),
        _ => (body, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n * mult <= 1e15 => Ok((n * mult) as u64),
        _ => Err(format!(
            "'{t}' is not a rate: expected a number with k, M, G or T (bits per second), e.g. \"200M\""
        )),
    }
}

/// An SPI written as `"0xc0000102"` (as `ip xfrm` and swanctl print them) or as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spi(pub u32);

impl<'de> Deserialize<'de> for Spi {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Spi, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Spi;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an SPI: \"0x\" and up to 8 hex digits, or an integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Spi, E> {
                u32::try_from(v)
                    .map(Spi)
                    .map_err(|_| E::custom("SPI does not fit in 32 bits"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Spi, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("SPI cannot be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Spi, E> {
                parse_spi(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

pub fn parse_spi(v: &str) -> Result<Spi, String> {
    let v = v.trim();
    let r = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.len() <= 8 => u32::from_str_radix(h, 16),
        Some(_) => {
            return Err(format!(
                "'{v}' is not an SPI: expected 0x and 1 to 8 hex digits"
            ))
        }
        None => v.parse::<u32>(),
    };
    r.map(Spi)
        .map_err(|_| format!("'{v}' is not an SPI: expected 0x and 1 to 8 hex digits"))
}

/// An amount of bytes or packets: an integer, or a number with a unit, `"500MB"`, `"2GiB"`,
/// `"100k"` (k, M, G, T are powers of 1000, Ki, Mi, Gi, Ti of 1024; a trailing `B` is
/// optional). Azure's "102,400,000 KB" is written `"102400000KiB"` or `"102400000KB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Volume(pub u64);

impl<'de> Deserialize<'de> for Volume {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Volume, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Volume;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an amount such as \"500MB\", \"2GiB\" or an integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Volume, E> {
                Ok(Volume(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Volume, E> {
                u64::try_from(v)
                    .map(Volume)
                    .map_err(|_| E::custom("an amount cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Volume, E> {
                parse_volume(v).map(Volume).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a [`Volume`] written as text.
pub fn parse_volume(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let bad = || {
        format!(
            "'{t}' is not an amount: expected an integer or a number with k, M, G, T (x1000) or Ki, Mi, Gi, Ti (x1024), e.g. \"500MB\""
        )
    };
    let body = t.strip_suffix('B').unwrap_or(t).trim_end();
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|(u, m)| {
            body.strip_suffix(u)
                .or_else(|| (*u == "k").then(|| body.strip_suffix('K')).flatten())
                .map(|n| (n.trim_end(), *m))
        })
        .unwrap_or((body, 1));
    if num.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(bad);
    }
    match num.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n * (mult as f64) < 1.8e19 => {
            Ok((n * mult as f64) as u64)
        }
        _ => Err(bad()),
    }
}
