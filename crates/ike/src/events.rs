//! What the engine tells its owner: transmissions and events.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{Identity, Keymat};
use crate::crypto::{EspAlgorithms, IkeAlgorithms, LegacyAlgorithm};
use crate::wire::{NotifyType, TrafficSelector};

/// Our SPI of an IKE SA: unique within an endpoint, so it names the SA.
pub type IkeSaId = u64;

/// A datagram to send: the exact UDP payload (with the non-ESP marker when sent on the NAT-T
/// port) and the addresses to send it between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub payload: Vec<u8>,
}

/// A CHILD_SA as the fast path needs it.
#[derive(Clone, Debug)]
pub struct ChildSaInfo {
    /// SPI we receive on (we chose it) and SPI we send with (the peer chose it).
    pub spi_in: u32,
    pub spi_out: u32,
    pub algorithms: EspAlgorithms,
    pub key_in: Keymat,
    pub key_out: Keymat,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// ESP must be UDP-encapsulated (always, in practice: see `PeerConfig::force_encap`).
    pub encap: bool,
}

/// What NAT detection (RFC 7296 2.23) found in IKE_SA_INIT, apart from whether encapsulation
/// is forced: which end's address a NAT rewrites.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatDetected {
    /// Our address as the peer saw it is not ours (its NAT_DETECTION_DESTINATION_IP did not
    /// match): we are behind a NAT, so we keep its mapping alive (RFC 3948 2.3 keepalives).
    pub local: bool,
    /// The peer's address as we see it is not the one it hashed (NAT_DETECTION_SOURCE_IP did
    /// not match): the peer is behind a NAT, so we follow its address when an authenticated
    /// packet comes from a new one.
    pub remote: bool,
}

/// Why an IKE SA or CHILD_SA went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// We deleted it (terminate command, lifetime, replaced by a rekey).
    Local,
    /// The peer sent a DELETE.
    PeerDeleted,
    /// A request went unanswered through every retransmission (includes DPD).
    PeerUnreachable,
    /// The peer refused: an error notify such as AUTHENTICATION_FAILED or NO_PROPOSAL_CHOSEN.
    Refused(NotifyType),
    /// The peer's response broke the protocol (bad AUTH, wrong identity, bad proposal...).
    ProtocolError(String),
    /// Replaced by a rekeyed SA.
    Rekeyed,
    /// Hard lifetime reached.
    Expired,
    /// The peer came back with INITIAL_CONTACT (it restarted): its old SAs are stale.
    Replaced,
    /// Forgotten without a word ([`crate::Endpoint::abandon`]): our local address went away
    /// (a shared address moved to the other gateway), so nothing could be sent from it.
    Abandoned,
}

/// As logged (`reason=PeerUnreachable`, `reason=Refused(AUTHENTICATION_FAILED)`): the
/// variant's name, with what it carries in parentheses.
impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Refused(n) => write!(f, "Refused({n})"),
            CloseReason::ProtocolError(e) => write!(f, "ProtocolError({e})"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// A RADIUS server's answer to an EAP message relayed with [`Event::EapRadius`], handed back
/// with [`crate::Endpoint::eap_radius_answer`].
pub enum RadiusAnswer {
    /// Access-Challenge: this EAP request goes to the client.
    Challenge(Vec<u8>),
    /// Access-Accept: EAP-Success for the client; the final AUTHs are keyed by `msk`.
    Accept { eap: Vec<u8>, msk: ironsec_eap::Msk },
    /// Access-Reject (or an Accept the gateway cannot use): EAP-Failure for the client (this
    /// one, else one the engine makes); `detail` says why, for the log (no secret in it).
    Reject {
        eap: Option<Vec<u8>>,
        detail: String,
    },
    /// No answer through every try: the client gets EAP-Failure.
    Unreachable,
}

impl std::fmt::Debug for RadiusAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RadiusAnswer::Challenge(e) => write!(f, "Challenge({} bytes)", e.len()),
            RadiusAnswer::Accept { eap, .. } => write!(f, "Accept({} bytes, msk)", eap.len()),
            RadiusAnswer::Reject { detail, .. } => write!(f, "Reject({detail})"),
            RadiusAnswer::Unreachable => f.write_str("Unreachable"),
        }
    }
}

/// EAP bytes relayed for a client: `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct EapBytes(pub Vec<u8>);

impl std::fmt::Debug for EapBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EapBytes({} bytes)", self.0.len())
    }
}

#[derive(Clone, Debug)]
pub enum Event {
    /// Gateway: a remote-access client's EAP response, to relay to the RADIUS server `server`
    /// (RFC 3579). `identity` (raw peer bytes: escape before showing) is set on the first
    /// one, the EAP-Response/Identity: it starts a conversation and is its User-Name. Answer
    /// with [`crate::Endpoint::eap_radius_answer`]; until then, the client's retransmissions
    /// are dropped. An [`Event::IkeSaDown`] for `ike` ends the conversation.
    EapRadius {
        conn: Arc<str>,
        ike: IkeSaId,
        server: Arc<str>,
        local: SocketAddr,
        remote: SocketAddr,
        identity: Option<Vec<u8>>,
        eap: EapBytes,
    },
    IkeSaUp {
        conn: Arc<str>,
        ike: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        remote_id: Identity,
        algorithms: IkeAlgorithms,
        initiator: bool,
        /// Which ends NAT detection put behind a NAT.
        nat: NatDetected,
    },
    IkeSaDown {
        conn: Option<Arc<str>>,
        ike: IkeSaId,
        remote: SocketAddr,
        reason: CloseReason,
    },
    /// The IKE SA was rekeyed: `new` carries on with the same CHILD_SAs.
    IkeSaRekeyed {
        conn: Arc<str>,
        old: IkeSaId,
        new: IkeSaId,
        algorithms: IkeAlgorithms,
    },
    ChildSaUp {
        conn: Arc<str>,
        ike: IkeSaId,
        child: ChildSaInfo,
    },
    /// `new` replaces the CHILD_SA whose inbound SPI was `old_spi_in`. Install `new` inbound
    /// now; switch outbound to it as `initiated` says; remove the old one when
    /// [`Event::ChildSaDown`] for it comes.
    ChildSaRekeyed {
        conn: Arc<str>,
        ike: IkeSaId,
        old_spi_in: u32,
        new: ChildSaInfo,
        /// We started the rekey, so the peer has the new SA installed: send on it now. When
        /// the peer started it, keep sending on the old SA until the peer deletes it, or
        /// traffic from us could arrive before the peer has the new SA (make-before-break).
        initiated: bool,
    },
    ChildSaDown {
        conn: Arc<str>,
        ike: IkeSaId,
        spi_in: u32,
        spi_out: u32,
        reason: CloseReason,
    },
    /// A CHILD_SA we asked for was refused by the peer (`notify`, e.g. NO_PROPOSAL_CHOSEN,
    /// TS_UNACCEPTABLE, INVALID_KE_PAYLOAD) or its answer was unusable. Comes right after the
    /// [`Event::Failure`] that describes the same refusal.
    ///
    /// - The first CHILD_SA (at IKE_AUTH, `rekey_of` None): the IKE SA stays up without it and
    ///   the engine does not try again; whether and when to is the owner's policy (ironsecd
    ///   starts a new IKE SA after a backoff).
    /// - A rekey of the CHILD_SA whose inbound SPI is `rekey_of`: the old SA carries on and the
    ///   engine tries the rekey again at `retry_at`; if the old SA reaches its hard lifetime
    ///   first, an [`Event::ChildSaDown`] with [`CloseReason::Expired`] follows and the IKE SA
    ///   is left without it, as after a refusal at IKE_AUTH.
    ChildSaRefused {
        conn: Arc<str>,
        ike: IkeSaId,
        notify: NotifyType,
        detail: String,
        rekey_of: Option<u32>,
        retry_at: Option<std::time::Instant>,
    },
    /// A virtual IP (RFC 7296 §3.15) on IKE SA `ike`: leased by us to a remote-access client
    /// (`to_peer`), or given to us by the gateway.
    VirtualIp {
        conn: Arc<str>,
        ike: IkeSaId,
        /// At most one per family, IPv4 first (a dual-stack client has both).
        addresses: Vec<std::net::IpAddr>,
        dns: Vec<std::net::IpAddr>,
        to_peer: bool,
        /// The EAP user the client authenticated as (escaped), when it used EAP: the lease's
        /// owner. None for a certificate client (its IKE identity owns the lease) and on the
        /// client side.
        eap_identity: Option<String>,
    },
    /// A negotiation failed in a way the operator should hear about (log it): which peer,
    /// which notify, and details such as the offered and configured proposals.
    Failure {
        conn: Option<Arc<str>>,
        remote: SocketAddr,
        remote_id: Option<Identity>,
        notify: NotifyType,
        detail: String,
        /// For a peer's IKE_SA_INIT answered with NO_PROPOSAL_CHOSEN: the legacy groups
        /// (opt-in, e.g. MODP-1024) it offered that no candidate connection accepts, so the
        /// operator learns that `allow_legacy_crypto` (and the group in the proposals) would
        /// have matched. Empty everywhere else.
        legacy_refused: Vec<LegacyAlgorithm>,
    },
    /// The peer, behind a NAT, now sends from `remote`: an authenticated IKE message or (see
    /// [`crate::Endpoint::peer_moved`]) an authenticated ESP packet came from there (RFC 7296
    /// 2.23). The IKE SA and its CHILD_SAs now send there; the owner moves its ESP too.
    PeerAddressChanged {
        conn: Option<Arc<str>>,
        ike: IkeSaId,
        old: SocketAddr,
        remote: SocketAddr,
    },
    /// An unprotected INVALID_SPI notification came from `remote` (RFC 7296 1.5): the peer
    /// may have restarted and lost its SAs. Only a hint, as anyone can forge one: the engine
    /// answers nothing and changes no SA, but checks at once that the peer of every
    /// established IKE SA with that address is alive (2.21.4). Counted in
    /// [`EndpointStats::invalid_spi_hints`](crate::EndpointStats::invalid_spi_hints).
    InvalidSpiHint { remote: SocketAddr },
    /// ESP came from `remote` with an SPI we have no SA for and no IKE SA with that address
    /// lives (we restarted): we told the peer with an unprotected INVALID_SPI notification
    /// carrying `spi`. Counted in
    /// [`EndpointStats::invalid_spi_sent`](crate::EndpointStats::invalid_spi_sent).
    InvalidSpiSent { remote: SocketAddr, spi: u32 },
}
