//! IKE_SA_INIT (RFC 7296 1.2): both roles, with COOKIE (2.6), INVALID_KE_PAYLOAD retry (1.2)
//! and NAT detection (2.23).

use std::net::SocketAddr;
use std::sync::Arc;

use super::{later, proof, Ctx, IkeSa, Pending, Request, SaCrypto, State};
use crate::config::PeerConfig;
use crate::crypto::{
    self, accept_ike_response, choose_ike, derive_ike_keys, nat_detection_hash, offer_ike,
    skeyseed, DhGroup, IkeAlgorithms, IkeProposal, KeyExchange,
};
use crate::events::{Event, NatDetected};
use crate::sa::proposals::{offered, to_wire};
use crate::spi::random_bytes;
use crate::wire::{
    self, ExchangeType, Header, KePayload, Message, NotifyType, Payload, Payloads, ProtocolId,
    SaPayload,
};

pub(crate) const NONCE_LEN: usize = 32;

/// The NAT_DETECTION_SOURCE_IP we send: the real hash, or — to force UDP encapsulation — a
/// value that cannot match, so the peer believes we are behind a NAT.
fn nat_source(
    ctx: &mut Ctx,
    conn: &PeerConfig,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
) -> Vec<u8> {
    if conn.force_encap {
        random_bytes(ctx.rng, 20)
    } else {
        nat_detection_hash(spi_i, spi_r, local).to_vec()
    }
}

/// The single proposal that describes what was chosen, numbered as the initiator numbered it.
pub(crate) fn chosen_ike(number: u8, algs: IkeAlgorithms, spi: Vec<u8>) -> SaPayload {
    let o = offer_ike(&[IkeProposal {
        encr: vec![algs.encr.encr()],
        integ: algs.encr.integ().into_iter().collect(),
        prf: vec![algs.prf],
        dh: vec![algs.dh],
    }]);
    let mut p = o.into_iter().next().expect("one proposal in, one out");
    p.number = number;
    SaPayload {
        proposals: vec![to_wire(&p, ProtocolId::Ike, spi)],
    }
}

impl IkeSa {
    /// Initiator: sends IKE_SA_INIT with a KE for `group` (default: the first configured).
    pub fn start_init(
        &mut self,
        ctx: &mut Ctx,
        group: Option<DhGroup>,
        cookie: Option<Vec<u8>>,
        reuse: Option<(KeyExchange, Vec<u8>)>,
    ) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let group = group
            .or_else(|| {
                conn.ike_proposals
                    .first()
                    .and_then(|p| p.dh.first().copied())
            })
            .unwrap_or(DhGroup::Curve25519);
        let (ke, ni) = match reuse {
            Some((ke, ni)) if ke.group() == group => (ke, ni),
            _ => (
                KeyExchange::new(group, ctx.rng),
                random_bytes(ctx.rng, NONCE_LEN),
            ),
        };
        let mut payloads = Vec::new();
        if let Some(c) = &cookie {
            // RFC 7296 2.6: the cookie goes first, everything else unchanged.
            payloads.push(Payload::notify(NotifyType::Cookie, c.clone()));
        }
        let offer = offer_ike(&conn.ike_proposals);
        payloads.push(Payload::Sa(SaPayload {
            proposals: offer
                .iter()
                .map(|p| to_wire(p, ProtocolId::Ike, Vec::new()))
                .collect(),
        }));
        payloads.push(Payload::Ke(KePayload {
            group: group.id(),
            data: ke.public().to_vec(),
        }));
        payloads.push(Payload::Nonce(ni.clone()));
        payloads.push(Payload::notify(
            NotifyType::NatDetectionSourceIp,
            nat_source(ctx, &conn, self.spi_i, 0, self.local),
        ));
        payloads.push(Payload::notify(
            NotifyType::NatDetectionDestinationIp,
            nat_detection_hash(self.spi_i, 0, self.remote).to_vec(),
        ));
        payloads.push(Payload::notify(
            NotifyType::Ikev2FragmentationSupported,
            Vec::new(),
        ));
        if proof::uses_signatures(&conn) {
            payloads.push(proof::hash_notify());
        }
        let header = self.header(ExchangeType::IkeSaInit, false, 0);
        let message = wire::encode_message(&header, &payloads);
        self.transmit(ctx, message.clone());
        self.state = State::Init;
        self.pending = Some(Pending {
            id: 0,
            datagrams: vec![message.clone()],
            what: Request::Init {
                ke,
                ni,
                message,
                cookie,
            },
            retries: 0,
            deadline: later(ctx.now, conn.retransmit.interval(0)),
            sent: ctx.now,
        });
        ctx.stats.requests_sent += 1;
    }

    /// Initiator: the IKE_SA_INIT response (or a COOKIE / INVALID_KE_PAYLOAD demand).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn init_response(
        &mut self,
        ctx: &mut Ctx,
        bytes: &[u8],
        msg: Message,
        ke: KeyExchange,
        ni: Vec<u8>,
        message: Vec<u8>,
        cookie: Option<Vec<u8>>,
        pending: Pending,
    ) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let p = &msg.payloads;
        if let Some(n) = p.notify(NotifyType::Cookie) {
            if cookie.as_deref() != Some(&n.data[..]) && !n.data.is_empty() && n.data.len() <= 64 {
                self.start_init(ctx, Some(ke.group()), Some(n.data.clone()), Some((ke, ni)));
            } else {
                // The same cookie again: keep retransmitting the request we have.
                self.pending = Some(Pending {
                    what: Request::Init {
                        ke,
                        ni,
                        message,
                        cookie,
                    },
                    ..pending
                });
            }
            return;
        }
        if let Some(n) = p.notify(NotifyType::InvalidKePayload) {
            let wanted = n
                .data
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .and_then(DhGroup::from_id);
            let allowed = wanted.filter(|g| {
                *g != ke.group() && conn.ike_proposals.iter().any(|pr| pr.dh.contains(g))
            });
            match allowed {
                Some(g) => self.start_init(ctx, Some(g), cookie, None),
                None => self.fail(
                    ctx,
                    NotifyType::InvalidKePayload,
                    format!(
                        "peer wants DH group {:?}, which is not in our proposals {}",
                        n.data,
                        describe_ike(&conn.ike_proposals)
                    ),
                ),
            }
            return;
        }
        if let Some(n) = p.error_notify() {
            let kind = n.kind;
            let detail = match kind {
                NotifyType::NoProposalChosen => format!(
                    "peer accepted none of our IKE proposals {}",
                    describe_ike(&conn.ike_proposals)
                ),
                _ => format!("peer refused IKE_SA_INIT with {kind:?}"),
            };
            self.fail(ctx, kind, detail);
            return;
        }
        let sa = p.sa();
        let kep = p.ke();
        let nr = p.nonce().cloned();
        let (Some(sa), Some(kep), Some(nr)) = (sa, kep, nr) else {
            self.fail(
                ctx,
                NotifyType::InvalidSyntax,
                "IKE_SA_INIT response lacks SA, KE or Nonce".into(),
            );
            return;
        };
        let offered = offered(sa, ProtocolId::Ike);
        let algs = match offered.as_slice() {
            [one] => accept_ike_response(one, &conn.ike_proposals),
            _ => None,
        };
        let Some(algs) = algs else {
            self.fail(
                ctx,
                NotifyType::NoProposalChosen,
                "peer answered with a proposal we did not offer".into(),
            );
            return;
        };
        if algs.dh != ke.group() || kep.group != ke.group().id() {
            self.fail(
                ctx,
                NotifyType::InvalidKePayload,
                "peer answered with another DH group".into(),
            );
            return;
        }
        if msg.header.spi_r == 0 {
            self.fail(
                ctx,
                NotifyType::InvalidSyntax,
                "responder SPI is zero".into(),
            );
            return;
        }
        self.spi_r = msg.header.spi_r;
        let shared = match ke.agree(&kep.data) {
            Ok(s) => s,
            Err(e) => {
                self.fail(
                    ctx,
                    NotifyType::InvalidSyntax,
                    format!("bad KE from peer: {e}"),
                );
                return;
            }
        };
        self.nat = nat_between(p, self.spi_i, self.spi_r, self.local, self.remote);
        self.natt = conn.force_encap || self.nat.local || self.nat.remote;
        self.fragmentation = p.notify(NotifyType::Ikev2FragmentationSupported).is_some();
        self.wishes.read_hashes(p);
        self.wishes.read_certreqs(p);
        if self.natt {
            self.local.set_port(ctx.cfg.natt_port);
            self.remote.set_port(ctx.cfg.natt_port);
        }
        let seed = skeyseed(algs.prf, &ni, &nr, &shared);
        let keys = derive_ike_keys(algs, &seed, &ni, &nr, self.spi_i, self.spi_r);
        let Some(crypto) = SaCrypto::new(algs, &keys, true) else {
            self.fail(
                ctx,
                NotifyType::InvalidSyntax,
                "key derivation failed".into(),
            );
            return;
        };
        self.crypto = Some(crypto);
        self.nonces = (ni, nr);
        self.init_messages = (message, bytes.to_vec());
        self.next_request_id = 1;
        self.state = State::Auth;
        self.start_auth(ctx);
    }

    /// Reports a failed negotiation and ends the SA.
    pub(crate) fn fail(&mut self, ctx: &mut Ctx, notify: NotifyType, detail: String) {
        ctx.events.push_back(Event::Failure {
            conn: self.conn_name(),
            remote: self.remote,
            remote_id: self.remote_identity(),
            notify,
            detail: detail.clone(),
            legacy_refused: Vec::new(),
        });
        self.close(
            ctx,
            if notify.is_error() && !detail.starts_with("peer answered") {
                crate::events::CloseReason::Refused(notify)
            } else {
                crate::events::CloseReason::ProtocolError(detail)
            },
        );
    }
}

/// Configured IKE proposals in strongSwan syntax, for log lines.
pub(crate) fn describe_ike(p: &[IkeProposal]) -> String {
    let v: Vec<String> = p.iter().map(|x| x.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// An offered SA payload rendered for an operator: known transforms by name, others by number.
pub(crate) fn describe_offer(sa: &SaPayload) -> String {
    let mut out = Vec::new();
    for p in &sa.proposals {
        let mut parts = Vec::new();
        for t in &p.transforms {
            let name = match t.kind.number() {
                crypto::TRANSFORM_ENCR => {
                    crypto::encr_from_transform(t.id, t.key_length).map(|s| s.name().to_string())
                }
                crypto::TRANSFORM_INTEG if t.id != 0 => {
                    crypto::integ_from_transform(t.id, t.key_length).map(|s| s.name().to_string())
                }
                crypto::TRANSFORM_PRF => crypto::Prf::from_id(t.id).map(|x| x.name().to_string()),
                crypto::TRANSFORM_DH => {
                    crypto::DhGroup::from_id(t.id).map(|x| x.name().to_string())
                }
                crypto::TRANSFORM_ESN => Some(if t.id == 1 { "esn" } else { "noesn" }.to_string()),
                crypto::TRANSFORM_INTEG if t.id == 0 => continue,
                _ => None,
            };
            parts.push(name.unwrap_or_else(|| {
                format!(
                    "type{}:{}{}",
                    t.kind.number(),
                    t.id,
                    t.key_length.map(|k| format!("/{k}")).unwrap_or_default()
                )
            }));
        }
        out.push(parts.join("-"));
    }
    format!("[{}]", out.join(", "))
}

/// Answers an IKE_SA_INIT request without creating state (COOKIE, INVALID_KE_PAYLOAD,
/// NO_PROPOSAL_CHOSEN...).
pub(crate) fn stateless_reply(
    cfg: &crate::config::EndpointConfig,
    transmits: &mut std::collections::VecDeque<crate::events::Transmit>,
    spi_i: u64,
    local: SocketAddr,
    remote: SocketAddr,
    payloads: &[Payload],
) {
    let header = Header::new(
        spi_i,
        0,
        ExchangeType::IkeSaInit,
        wire::Flags::response(false),
        0,
    );
    let m = wire::encode_message(&header, payloads);
    let payload = if local.port() == cfg.natt_port {
        [&wire::NON_ESP_MARKER[..], &m].concat()
    } else {
        m
    };
    transmits.push_back(crate::events::Transmit {
        local,
        remote,
        payload,
    });
}

/// Responder: a fresh IKE_SA_INIT request. Returns the new half-open SA, or None when the
/// request was answered statelessly (error notify) or dropped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn respond(
    ctx: &mut Ctx,
    peers: &Arc<crate::index::PeerIndex>,
    new_spi: u64,
    local: SocketAddr,
    remote: SocketAddr,
    bytes: &[u8],
    msg: &Message,
) -> Option<IkeSa> {
    let h = &msg.header;
    let reply = |ctx: &mut Ctx, payloads: Vec<Payload>| {
        stateless_reply(ctx.cfg, ctx.transmits, h.spi_i, local, remote, &payloads)
    };
    // The connections for this address: a view of the index, built once per connection list.
    let candidates = crate::index::Candidates::new(peers.clone(), remote.ip());
    let p = &msg.payloads;
    if let Some(kind) = p.unsupported_critical() {
        reply(
            ctx,
            vec![Payload::notify(
                NotifyType::UnsupportedCriticalPayload,
                vec![kind],
            )],
        );
        return None;
    }
    let sa = p.sa();
    let kep = p.ke();
    let ni = p.nonce().cloned();
    let (Some(sa), Some(kep), Some(ni)) = (sa, kep, ni) else {
        reply(
            ctx,
            vec![Payload::notify(NotifyType::InvalidSyntax, Vec::new())],
        );
        return None;
    };
    let offer = offered(sa, ProtocolId::Ike);
    // Each distinct proposal list once, in configuration order: the same first match.
    let chosen = candidates
        .by_proposals()
        .find_map(|c| choose_ike(&offer, &c.ike_proposals).map(|x| (c.clone(), x)));
    let Some((conn, (number, algs))) = chosen else {
        let configured = crate::index::listed(
            candidates.iter(),
            |c| describe_ike(&c.ike_proposals),
            " or ",
        );
        ctx.stats.no_proposal_chosen += 1;
        // Legacy groups the peer offered that none of the candidates lists: the config
        // refuses them without `allow_legacy_crypto`, which the operator should hear about.
        let mut legacy_refused: Vec<crypto::LegacyAlgorithm> = Vec::new();
        for t in sa.proposals.iter().flat_map(|p| &p.transforms) {
            if t.kind.number() != crypto::TRANSFORM_DH {
                continue;
            }
            let Some(g) = DhGroup::from_id(t.id) else {
                continue;
            };
            let accepted = candidates
                .by_proposals()
                .any(|c| c.ike_proposals.iter().any(|p| p.dh.contains(&g)));
            if let Some(l) = crypto::legacy_group(g) {
                if !accepted && !legacy_refused.contains(&l) {
                    legacy_refused.push(l);
                }
            }
        }
        ctx.events.push_back(Event::Failure {
            conn: candidates.first().map(|c| c.name.clone()),
            remote,
            remote_id: None,
            notify: NotifyType::NoProposalChosen,
            detail: if candidates.is_empty() {
                format!("no connection is configured for peer {}", remote.ip())
            } else {
                format!(
                    "peer offered IKE proposals {} but we accept {}",
                    describe_offer(sa),
                    configured
                )
            },
            legacy_refused,
        });
        reply(
            ctx,
            vec![Payload::notify(NotifyType::NoProposalChosen, Vec::new())],
        );
        return None;
    };
    if kep.group != algs.dh.id() {
        reply(
            ctx,
            vec![Payload::notify(
                NotifyType::InvalidKePayload,
                algs.dh.id().to_be_bytes().to_vec(),
            )],
        );
        return None;
    }
    let ke = KeyExchange::new(algs.dh, ctx.rng);
    let shared = match ke.agree(&kep.data) {
        Ok(s) => s,
        Err(_) => {
            reply(
                ctx,
                vec![Payload::notify(NotifyType::InvalidSyntax, Vec::new())],
            );
            return None;
        }
    };
    let nr = random_bytes(ctx.rng, NONCE_LEN);
    let mut sa_state = IkeSa::new(new_spi, false, h.spi_i, new_spi, local, remote, ctx.now);
    sa_state.candidates = Some(candidates);
    sa_state.nat = nat_between(p, h.spi_i, 0, local, remote);
    sa_state.natt = conn.force_encap || sa_state.nat.local || sa_state.nat.remote;
    let mut payloads = vec![
        Payload::Sa(chosen_ike(number, algs, Vec::new())),
        Payload::Ke(KePayload {
            group: algs.dh.id(),
            data: ke.public().to_vec(),
        }),
        Payload::Nonce(nr.clone()),
        Payload::notify(
            NotifyType::NatDetectionSourceIp,
            nat_source(ctx, &conn, h.spi_i, new_spi, local),
        ),
        Payload::notify(
            NotifyType::NatDetectionDestinationIp,
            nat_detection_hash(h.spi_i, new_spi, remote).to_vec(),
        ),
    ];
    // RFC 7296 §1.2: HDR, SAr1, KEr, Nr, [CERTREQ]. Which connection the peer is, is known
    // only at IKE_AUTH: ask for a certificate if one it might be authenticates by one.
    if let Some(trust) = sa_state.candidates.as_ref().and_then(|c| c.first_trust()) {
        payloads.push(proof::certreq(trust));
    }
    sa_state.wishes.read_hashes(p);
    if sa_state
        .candidates
        .as_ref()
        .is_some_and(|c| c.any_signatures())
    {
        payloads.push(proof::hash_notify());
    }
    sa_state.fragmentation = p.notify(NotifyType::Ikev2FragmentationSupported).is_some();
    if sa_state.fragmentation {
        payloads.push(Payload::notify(
            NotifyType::Ikev2FragmentationSupported,
            Vec::new(),
        ));
    }
    let header = sa_state.header(ExchangeType::IkeSaInit, true, 0);
    let response = wire::encode_message(&header, &payloads);
    let seed = skeyseed(algs.prf, &ni, &nr, &shared);
    let keys = derive_ike_keys(algs, &seed, &ni, &nr, h.spi_i, new_spi);
    sa_state.crypto = Some(SaCrypto::new(algs, &keys, false)?);
    sa_state.nonces = (ni, nr);
    sa_state.transmit(ctx, response.clone());
    sa_state.last_response = Some((0, vec![response.clone()]));
    sa_state.init_messages = (bytes.to_vec(), response);
    sa_state.expected_request_id = 1;
    sa_state.half_open_deadline = ctx.now.checked_add(ctx.cfg.half_open_timeout);
    Some(sa_state)
}

/// NAT detection (RFC 7296 2.23): whether the peer's NAT_DETECTION_SOURCE_IP (hashed over the
/// SPIs it knew and its own address) or NAT_DETECTION_DESTINATION_IP (over ours) disagrees
/// with the addresses this datagram came from and went to, i.e. a NAT sits between us, and
/// in front of which end.
fn nat_between(
    p: &[Payload],
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
) -> NatDetected {
    let differs = |kind, addr| {
        p.notify(kind)
            .is_some_and(|n| n.data[..] != nat_detection_hash(spi_i, spi_r, addr)[..])
    };
    NatDetected {
        local: differs(NotifyType::NatDetectionDestinationIp, local),
        remote: differs(NotifyType::NatDetectionSourceIp, remote),
    }
}
