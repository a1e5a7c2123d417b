//! What the engine needs to know about a connection: identities, secret, proposals,
//! selectors, timers. The daemon builds these from its own config file.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ironsec_pki::DistinguishedName;
use zeroize::Zeroizing;

use crate::crypto::{EspProposal, IkeProposal};
use crate::peer_text::PeerText;
use crate::wire::{IdPayload, IdType, TrafficSelector};

/// An IKE identity (RFC 7296 3.5). Compared as the peer sent it: type and bytes (a DN by its
/// attributes, whatever string types encode them).
///
/// A configured `remote_id` may also be a pattern ([`Identity::matches`]): `%any`, an FQDN or
/// e-mail address starting with `*`, or a DN with `*` values, as strongSwan's identities are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    Fqdn(String),
    Email(String),
    Ipv4(std::net::Ipv4Addr),
    Ipv6(std::net::Ipv6Addr),
    KeyId(Vec<u8>),
    /// ID_DER_ASN1_DN. One parsed from config text has no DER until it is resolved against a
    /// certificate's subject ([`Identity::to_payload`] needs it).
    Dn(DistinguishedName),
    /// `%any`: matches every identity; never sent.
    Any,
}

impl Identity {
    /// Parses the strongSwan-style forms: an IP address, `user@host` (RFC822), `@keyid:` hex,
    /// otherwise an FQDN (a leading `@` is dropped, as in swanctl.conf).
    pub fn parse(s: &str) -> Identity {
        Identity::try_parse(s).unwrap_or_else(|_| Identity::Fqdn(s.to_string()))
    }

    /// [`Identity::parse`], but text with `=` that is not a valid DN is an error rather than
    /// an FQDN (which never contains `=`): what config validation uses.
    pub fn try_parse(s: &str) -> Result<Identity, ironsec_pki::DnError> {
        if s == "%any" {
            return Ok(Identity::Any);
        }
        if s.contains('=') {
            return DistinguishedName::parse(s).map(Identity::Dn);
        }
        Ok(Identity::parse_simple(s))
    }

    fn parse_simple(s: &str) -> Identity {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return match ip {
                IpAddr::V4(a) => Identity::Ipv4(a),
                IpAddr::V6(a) => Identity::Ipv6(a),
            };
        }
        if let Some(hex) = s.strip_prefix("@#") {
            if let Some(bytes) = decode_hex(hex) {
                return Identity::KeyId(bytes);
            }
        }
        let s = s.strip_prefix('@').unwrap_or(s);
        if s.contains('@') {
            Identity::Email(s.to_string())
        } else {
            Identity::Fqdn(s.to_string())
        }
    }

    /// The ID payload for this identity; None for one that cannot be sent: `%any`, a DN
    /// without DER (config text not resolved against a certificate).
    pub fn to_payload(&self) -> Option<IdPayload> {
        let (id_type, data) = match self {
            Identity::Fqdn(s) => (IdType::Fqdn, s.as_bytes().to_vec()),
            Identity::Email(s) => (IdType::Rfc822Addr, s.as_bytes().to_vec()),
            Identity::Ipv4(a) => (IdType::Ipv4Addr, a.octets().to_vec()),
            Identity::Ipv6(a) => (IdType::Ipv6Addr, a.octets().to_vec()),
            Identity::KeyId(b) => (IdType::KeyId, b.clone()),
            Identity::Dn(dn) => (IdType::DerAsn1Dn, dn.der()?.to_vec()),
            Identity::Any => return None,
        };
        Some(IdPayload { id_type, data })
    }

    /// Whether this identity, as a pattern from config, accepts `peer` (what the peer sent):
    /// `%any` accepts all; `*.example.org` any FQDN ending in `.example.org`; `*@example.org`
    /// any e-mail address at that domain; a DN with `*` values any DN with the same attribute
    /// types in the same order and equal other values (strongSwan's rules). FQDNs and e-mail
    /// addresses compare case-insensitively (DNS names are); anything else must be equal.
    pub fn matches(&self, peer: &Identity) -> bool {
        match (self, peer) {
            (Identity::Any, _) => true,
            (Identity::Fqdn(p), Identity::Fqdn(s)) | (Identity::Email(p), Identity::Email(s)) => {
                match p.strip_prefix('*') {
                    Some(suffix) => {
                        s.len() > suffix.len()
                            && s.to_ascii_lowercase()
                                .ends_with(&suffix.to_ascii_lowercase())
                    }
                    None => p.eq_ignore_ascii_case(s),
                }
            }
            (Identity::Dn(p), Identity::Dn(d)) => p.matches(d),
            _ => self == peer,
        }
    }

    /// Whether this identity is a pattern (matches more than one identity): such a
    /// `remote_id` is not sent as IDr.
    pub fn is_pattern(&self) -> bool {
        match self {
            Identity::Any => true,
            Identity::Fqdn(s) | Identity::Email(s) => s.starts_with('*'),
            Identity::Dn(dn) => dn.has_wildcards(),
            _ => false,
        }
    }

    /// How narrowly this `remote_id` names a peer: an exact identity (2) before a pattern
    /// (1) before `%any` (0). A responder picks, among the connections whose `remote_id`
    /// matches, the most specific, so a remote-access connection for `%any` or `*.example.org`
    /// never takes a peer that has a connection of its own.
    pub fn specificity(&self) -> u8 {
        match self {
            Identity::Any => 0,
            id if id.is_pattern() => 1,
            _ => 2,
        }
    }

    pub fn from_payload(p: &IdPayload) -> Option<Identity> {
        Some(match p.id_type {
            IdType::Fqdn => Identity::Fqdn(String::from_utf8(p.data.clone()).ok()?),
            IdType::Rfc822Addr => Identity::Email(String::from_utf8(p.data.clone()).ok()?),
            IdType::Ipv4Addr => Identity::Ipv4(<[u8; 4]>::try_from(&p.data[..]).ok()?.into()),
            IdType::Ipv6Addr => Identity::Ipv6(<[u8; 16]>::try_from(&p.data[..]).ok()?.into()),
            IdType::KeyId => Identity::KeyId(p.data.clone()),
            IdType::DerAsn1Dn => Identity::Dn(DistinguishedName::from_der(&p.data).ok()?),
            _ => return None,
        })
    }

    /// How an ID payload from a peer is shown in logs and status: the identity (escaped by
    /// `Display`) or, for one that does not decode (invalid UTF-8, an unsupported type such as a
    /// DN), its type number and bytes, escaped.
    pub fn describe(p: &IdPayload) -> String {
        match Identity::from_payload(p) {
            Some(id) => id.to_string(),
            None => format!("<{} {}>", p.id_type, PeerText::new(&p.data)),
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The peer chose these bytes: escaped, so an identity cannot forge a log line or
            // drive the terminal that shows it.
            Identity::Fqdn(s) | Identity::Email(s) => write!(f, "{}", PeerText::new(s.as_bytes())),
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::KeyId(b) => {
                f.write_str("@#")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
            // Escapes what the peer chose, as above.
            Identity::Dn(dn) => write!(f, "{dn}"),
            Identity::Any => f.write_str("%any"),
        }
    }
}

/// A pre-shared key. Zeroed on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    pub fn new(bytes: Vec<u8>) -> Psk {
        Psk(Zeroizing::new(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Constant-time comparison, so a config reload that diffs connections does not leak how
/// much of a key matched through timing.
impl PartialEq for Psk {
    fn eq(&self, other: &Psk) -> bool {
        // Every byte is looked at whatever the first difference is.
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        self.0.len() == other.0.len() && std::hint::black_box(diff) == 0
    }
}

impl Eq for Psk {}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// Retransmission of requests (RFC 7296 2.1): `initial`, then each wait `factor` times the
/// last, at most `max_interval`; after `tries` retransmissions the peer is declared gone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retransmit {
    pub initial: Duration,
    pub factor: f64,
    pub max_interval: Duration,
    pub tries: u32,
    /// On an established IKE SA, a request unanswered this long (from its first send) means
    /// the peer is gone even if retransmissions remain: the operator's DPD timeout. None =
    /// when the retransmissions run out.
    pub give_up_after: Option<Duration>,
}

impl Default for Retransmit {
    fn default() -> Self {
        Retransmit {
            initial: Duration::from_secs(2),
            factor: 1.8,
            max_interval: Duration::from_secs(30),
            tries: 5,
            give_up_after: None,
        }
    }
}

impl Retransmit {
    /// Wait before retransmission number `n` (0 = wait after the first send).
    pub fn interval(&self, n: u32) -> Duration {
        let secs = self.initial.as_secs_f64() * self.factor.max(1.0).powi(n as i32);
        Duration::from_secs_f64(secs.min(self.max_interval.as_secs_f64()))
    }
}

/// SA lifetimes. The soft limit starts a rekey (with up to `jitter` taken off at random, so
/// both ends rarely rekey at once); the hard limit deletes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lifetimes {
    pub ike_rekey: Duration,
    /// If set, the IKE SA is reauthenticated (a fresh IKE SA and CHILD_SAs, made before the
    /// old ones are deleted) this long after it came up, instead of only being rekeyed.
    pub ike_reauth: Option<Duration>,
    pub child_rekey: Duration,
    pub child_hard: Duration,
    /// Volume limits of a CHILD_SA (either direction), fed in by the owner through
    /// [`crate::Endpoint::child_traffic`]: soft starts a rekey, hard deletes.
    pub child_rekey_bytes: Option<u64>,
    pub child_rekey_packets: Option<u64>,
    pub child_hard_bytes: Option<u64>,
    pub child_hard_packets: Option<u64>,
    pub jitter: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            ike_rekey: Duration::from_secs(4 * 3600),
            ike_reauth: None,
            child_rekey: Duration::from_secs(3600),
            child_hard: Duration::from_secs(3600 + 600),
            child_rekey_bytes: None,
            child_rekey_packets: None,
            child_hard_bytes: None,
            child_hard_packets: None,
            jitter: Duration::from_secs(60),
        }
    }
}

/// One connection to one peer.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub name: Arc<str>,
    pub local_id: Identity,
    /// For a certificate-authenticated peer, may be a pattern ([`Identity::matches`]).
    pub remote_id: Identity,
    pub local_auth: crate::credentials::LocalAuth,
    pub remote_auth: crate::credentials::RemoteAuth,
    pub ike_proposals: Vec<IkeProposal>,
    pub esp_proposals: Vec<EspProposal>,
    /// Our side's selectors (TSi when we initiate).
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// Addresses the peer may contact us from as responder; empty = any.
    pub remote_addrs: Vec<IpAddr>,
    pub retransmit: Retransmit,
    pub lifetimes: Lifetimes,
    /// Liveness check after this much inbound silence (INFORMATIONAL with no payloads).
    pub dpd_interval: Option<Duration>,
    /// Make the peer use UDP encapsulation even without a NAT by announcing a NAT on our side
    /// (a NAT_DETECTION_SOURCE_IP that cannot match), as strongSwan's `encap = yes` does. Our
    /// fast path speaks ESP-in-UDP only, so this is on by default.
    pub force_encap: bool,
    /// Virtual IPs (RFC 7296 §3.15): whether we ask for an inner address, hand them out, or
    /// neither.
    pub vip: VipRole,
    /// What a peer's new IKE SA does to the established ones of the same identity.
    pub unique: Unique,
}

/// strongSwan's `unique`: what a new IKE SA (from IKE_AUTH, as responder) of an identity does
/// to the established IKE SAs of the same identity on the same connection. The identity is a
/// remote-access client's EAP user if it has one, else the IKE identity; a site is matched at
/// its own address only, a remote-access client at any address (it comes back from wherever
/// it is).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unique {
    /// Replace them when the new one says INITIAL_CONTACT (the peer has no other SA with us):
    /// strongSwan's default `no`.
    #[default]
    No,
    /// Never replace, even on INITIAL_CONTACT: several sessions per identity.
    Never,
    /// Replace them always: one session per identity, the newest.
    Replace,
    /// Keep the established one: the new IKE SA is deleted as soon as it is up.
    Keep,
}

/// A connection's part in virtual IP assignment (remote access).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum VipRole {
    #[default]
    None,
    /// We are the client: ask the gateway for an inner address of each family in the request
    /// (CFG_REQUEST in IKE_AUTH).
    Request(VipRequest),
    /// We are the gateway: a client that asks gets an address from this pool, and its
    /// CHILD_SAs are narrowed to that address.
    Assign(VipPool),
}

/// Which families of inner address a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipRequest {
    pub v4: bool,
    pub v6: bool,
}

impl VipRequest {
    pub const V4: VipRequest = VipRequest {
        v4: true,
        v6: false,
    };
    pub const V6: VipRequest = VipRequest {
        v4: false,
        v6: true,
    };
    /// Both: a dual-stack client (one CHILD_SA carries its /32 and its /128).
    pub const DUAL: VipRequest = VipRequest { v4: true, v6: true };
}

/// The pools of a remote-access connection and what comes with an address.
#[derive(Clone, Debug, PartialEq)]
pub struct VipPool {
    /// Prefixes or ranges ([`crate::pool::AddressPool::new`]), at most one per family: a
    /// client gets an address from each whose family it asks for.
    pub ranges: Vec<String>,
    /// How long a client's address stays its own after it left.
    pub grace: Duration,
    /// Sent as INTERNAL_IP4_DNS and INTERNAL_IP6_DNS, each family to a client that got an
    /// address of that family.
    pub dns: Vec<std::net::IpAddr>,
}

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// IKE port (500) and NAT-T port (4500, where messages carry the non-ESP marker).
    pub ike_port: u16,
    pub natt_port: u16,
    /// Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet) above which the responder
    /// demands cookies (RFC 7296 2.6).
    pub cookie_threshold: usize,
    /// IKE_SA_INIT requests a second (new ones, not retransmissions) above which the responder
    /// demands cookies whatever the half-open count. A flood from spoofed addresses that no
    /// connection accepts creates no half-open SA, so the count alone never engages cookies,
    /// while each request would still cost a parse, a NO_PROPOSAL_CHOSEN answer and a logged
    /// failure; with cookies it costs one HMAC and a stateless answer, and failures are logged
    /// only for senders that can receive at their address.
    pub cookie_rate_threshold: u64,
    /// Hard cap on half-open SAs: beyond it new IKE_SA_INIT requests are dropped.
    pub max_half_open: usize,
    /// How long a half-open SA may wait for IKE_AUTH.
    pub half_open_timeout: Duration,
    /// Largest IKE datagram we send once fragmentation is agreed (RFC 7383; strongSwan's
    /// default too): larger encrypted messages go out as fragments.
    pub fragment_size: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            ike_port: 500,
            natt_port: 4500,
            cookie_threshold: 10,
            cookie_rate_threshold: 100,
            max_half_open: 1000,
            half_open_timeout: Duration::from_secs(30),
            fragment_size: 1280,
        }
    }
}

/// Key material handed to the fast path: key || salt. Zeroed on drop; `Debug` redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Keymat(pub(crate) Zeroizing<Vec<u8>>);

impl Keymat {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Keymat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keymat(<{} bytes redacted>)", self.0.len())
    }
}
