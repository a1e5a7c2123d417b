//! One IKE SA: its keys, message IDs, the request in flight and its CHILD_SAs.
//!
//! Exchanges live in their own modules (`init`, `auth`, `info`, `child`); this one holds the
//! state they share and the plumbing: sealing and opening SK payloads, sending requests with
//! retransmission, answering retransmitted requests from the response cache.

pub(crate) mod auth;
pub(crate) mod child;
mod ctx;
pub(crate) mod eap;
mod eap_method;
pub(crate) mod eap_radius;
pub(crate) mod fragment;
pub(crate) mod info;
pub(crate) mod init;
pub(crate) mod proof;
pub(crate) mod proposals;
pub(crate) mod vip;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::config::{EndpointConfig, PeerConfig};
use crate::crypto::{IkeAlgorithms, KeyExchange, Rng, SkCipher};
use crate::events::{CloseReason, Event, IkeSaId, Transmit};
use crate::wire::{self, ExchangeType, Flags, Header, Message, NotifyType, Payload, Payloads};

pub(crate) use child::{ChildOffer, ChildSa};
pub(crate) use ctx::{Ctx, Outputs, SaAction, WallClock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Initiator: IKE_SA_INIT sent. Responder: IKE_SA_INIT answered (half-open).
    Init,
    /// Initiator: IKE_AUTH sent.
    Auth,
    Established,
    /// Our DELETE for the IKE SA is in flight.
    Closing,
    /// Gone: the endpoint removes it.
    Dead,
}

/// Keys of an established (or authenticating) IKE SA.
pub(crate) struct SaCrypto {
    pub algs: IkeAlgorithms,
    pub sk_d: Zeroizing<Vec<u8>>,
    pub sk_pi: Zeroizing<Vec<u8>>,
    pub sk_pr: Zeroizing<Vec<u8>>,
    /// Seals what we send (SK_ei/SK_ai if we are the original initiator, else SK_er/SK_ar);
    /// it picks each message's IV.
    pub tx: SkCipher,
    pub rx: SkCipher,
    /// SK_ei and SK_er, kept only so a test build can hand them to an outside decoder.
    #[cfg(feature = "key-export")]
    pub sk_e: (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>),
    /// SK_ai and SK_ar (empty for an AEAD), likewise.
    #[cfg(feature = "key-export")]
    pub sk_a: (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>),
}

impl SaCrypto {
    /// Keys for one side of an IKE SA: the original initiator seals with SK_ei.
    pub fn new(
        algs: IkeAlgorithms,
        keys: &crate::crypto::IkeKeys,
        initiator: bool,
    ) -> Option<SaCrypto> {
        let ei = SkCipher::new(algs.encr, &keys.sk_ei, &keys.sk_ai).ok()?;
        let er = SkCipher::new(algs.encr, &keys.sk_er, &keys.sk_ar).ok()?;
        let (tx, rx) = if initiator { (ei, er) } else { (er, ei) };
        Some(SaCrypto {
            algs,
            sk_d: keys.sk_d.clone(),
            sk_pi: keys.sk_pi.clone(),
            sk_pr: keys.sk_pr.clone(),
            tx,
            rx,
            #[cfg(feature = "key-export")]
            sk_e: (keys.sk_ei.clone(), keys.sk_er.clone()),
            #[cfg(feature = "key-export")]
            sk_a: (keys.sk_ai.clone(), keys.sk_ar.clone()),
        })
    }
}

/// A fast liveness check asked for by the gateway (failover), stricter than DPD.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    pub until: Instant,
    pub every: Duration,
    pub next: Instant,
}

/// A request we sent and wait an answer for.
pub(crate) struct Pending {
    pub id: u32,
    pub datagrams: Vec<Vec<u8>>,
    pub what: Request,
    pub retries: u32,
    pub deadline: Instant,
    /// First sent: [`Retransmit::give_up_after`](crate::config::Retransmit) counts from here.
    pub sent: Instant,
}

pub(crate) enum Request {
    Init {
        ke: KeyExchange,
        ni: Vec<u8>,
        message: Vec<u8>,
        cookie: Option<Vec<u8>>,
    },
    Auth {
        child: ChildOffer,
    },
    Dpd,
    DeleteIke,
    DeleteChild {
        spi_in: u32,
    },
    CreateChild {
        child: ChildOffer,
        rekey_of: Option<u32>,
    },
    RekeyIke {
        new_spi: u64,
        ke: KeyExchange,
        ni: Vec<u8>,
    },
}

/// Work waiting for the request window (size 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    Dpd,
    DeleteIke,
    DeleteChild(u32),
    RekeyChild(u32),
    RekeyIke,
}

pub(crate) struct IkeSa {
    pub id: IkeSaId,
    pub conn: Option<Arc<PeerConfig>>,
    /// Responder before IKE_AUTH: the connections this peer might be (a view of the shared
    /// index, not a copy). Dropped once IKE_AUTH picked one.
    pub candidates: Option<crate::index::Candidates>,
    pub initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: State,
    pub crypto: Option<SaCrypto>,
    /// Nonces (Ni, Nr) and the IKE_SA_INIT request and response as sent: AUTH signs them.
    pub nonces: (Vec<u8>, Vec<u8>),
    pub init_messages: (Vec<u8>, Vec<u8>),
    pub next_request_id: u32,
    pub expected_request_id: u32,
    pub last_response: Option<(u32, Vec<Vec<u8>>)>,
    pub pending: Option<Pending>,
    pub queued: VecDeque<Task>,
    pub children: Vec<ChildSa>,
    pub last_inbound: Instant,
    /// An operator-side liveness probe (see [`crate::Endpoint::probe`]): the peer must answer
    /// something before `until`, and the request in flight is resent every `every`.
    pub probe: Option<Probe>,
    pub established_at: Option<Instant>,
    pub rekey_at: Option<Instant>,
    /// The group the peer asked for with INVALID_KE_PAYLOAD in answer to our IKE SA rekey: the
    /// retry's KE is in it (RFC 7296 §1.3.2) instead of the SA's own group.
    pub rekey_group: Option<crate::crypto::DhGroup>,
    /// Half-open responder SAs give up after this.
    pub half_open_deadline: Option<Instant>,
    /// A NAT was detected or encapsulation is forced: IKE on 4500, ESP in UDP.
    pub natt: bool,
    /// Which ends NAT detection put behind a NAT (`natt` may be set without either).
    pub nat: crate::events::NatDetected,
    /// Where the request being answered came from: responses go back there (RFC 7296 2.11),
    /// whatever address the SA has on record.
    pub respond_to: Option<SocketAddr>,
    /// This SA reauthenticates `replaces`: once it is up, it asks the endpoint to delete
    /// that one ([`SaAction::DeleteReplaced`], make-before-break). Such an SA sends no INITIAL_CONTACT, or the peer would drop the
    /// old SAs before the new ones carry traffic.
    pub replaces: Option<IkeSaId>,
    /// Another IKE SA of the same connection lives (another tunnel to the same peer): this
    /// one must not claim to be the only one with INITIAL_CONTACT.
    pub siblings: bool,
    pub reauth_at: Option<Instant>,
    /// Replaced by a rekeyed IKE SA: whatever ends it now, it ends as `Rekeyed`.
    pub superseded: bool,
    /// Both ends announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
    pub fragmentation: bool,
    /// Fragments of a message being reassembled.
    pub reassembly: Option<fragment::Reassembly>,
    /// We just refused a request with INVALID_SYNTAX. RFC 7296 2.21.3: that notification
    /// "is considered fatal in both peers, meaning that the IKE SA is deleted without needing
    /// an explicit Delete payload", so [`IkeSa::handle`] closes the SA once it is sent.
    pub invalid_syntax_sent: bool,
    /// What the peer asked of our AUTH (RFC 7427 hashes, CERTREQ).
    pub wishes: proof::PeerWishes,
    /// The identity the peer authenticated as (a `remote_id` may be a pattern).
    pub peer_id: Option<crate::config::Identity>,
    /// The virtual IP of this IKE SA: as the gateway, the client's (leased from the
    /// connection's pool, released when the SA closes); as the client, ours.
    pub vip: Option<vip::Vip>,
    /// Gateway: the EAP dialogue of a client still authenticating (RFC 7296 §2.16).
    pub eap_server: Option<Box<eap::ServerSession>>,
    /// Client: our EAP dialogue with the gateway.
    pub eap_client: Option<Box<eap::ClientSession>>,
    /// Gateway: the EAP dialogue of a client relayed to a RADIUS server (RFC 3579).
    pub eap_radius: Option<Box<eap_radius::RadiusSession>>,
    /// The user an EAP client authenticated as (escaped with `PeerText`): the name the
    /// daemon shows and the owner of its address lease.
    pub eap_identity: Option<String>,
}

impl IkeSa {
    pub fn new(
        id: IkeSaId,
        initiator: bool,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
    ) -> IkeSa {
        IkeSa {
            id,
            conn: None,
            candidates: None,
            initiator,
            spi_i,
            spi_r,
            local,
            remote,
            state: State::Init,
            crypto: None,
            nonces: (Vec::new(), Vec::new()),
            init_messages: (Vec::new(), Vec::new()),
            next_request_id: 0,
            expected_request_id: 0,
            last_response: None,
            pending: None,
            queued: VecDeque::new(),
            children: Vec::new(),
            last_inbound: now,
            probe: None,
            established_at: None,
            rekey_at: None,
            rekey_group: None,
            half_open_deadline: None,
            natt: false,
            nat: Default::default(),
            respond_to: None,
            replaces: None,
            siblings: false,
            reauth_at: None,
            fragmentation: false,
            reassembly: None,
            superseded: false,
            invalid_syntax_sent: false,
            wishes: Default::default(),
            peer_id: None,
            vip: None,
            eap_server: None,
            eap_client: None,
            eap_radius: None,
            eap_identity: None,
        }
    }

    /// Who the peer is: the identity it authenticated as, else the configured one (which may
    /// be a pattern).
    pub fn remote_identity(&self) -> Option<crate::config::Identity> {
        self.peer_id
            .clone()
            .or_else(|| self.conn.as_ref().map(|c| c.remote_id.clone()))
    }

    pub fn conn_name(&self) -> Option<Arc<str>> {
        self.conn.as_ref().map(|c| c.name.clone())
    }

    pub fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
        let flags = if response {
            Flags::response(self.initiator)
        } else {
            Flags::request(self.initiator)
        };
        Header::new(self.spi_i, self.spi_r, exchange, flags, message_id)
    }

    /// Adds the non-ESP marker when the SA talks on the NAT-T port.
    pub fn frame(&self, cfg: &EndpointConfig, msg: Vec<u8>) -> Vec<u8> {
        if self.local.port() == cfg.natt_port {
            let mut v = Vec::with_capacity(msg.len() + 4);
            v.extend_from_slice(&wire::NON_ESP_MARKER);
            v.extend_from_slice(&msg);
            v
        } else {
            msg
        }
    }

    /// A datagram carrying `msg` from this SA's current local address to `remote`, framed
    /// for the port it leaves from. Messages are kept unframed (for retransmission and the
    /// response cache) and framed only here, so a resend after a move to the NAT-T port still
    /// carries the non-ESP marker.
    pub fn datagram(&self, cfg: &EndpointConfig, remote: SocketAddr, msg: Vec<u8>) -> Transmit {
        Transmit {
            local: self.local,
            remote,
            payload: self.frame(cfg, msg),
        }
    }

    pub fn transmit(&self, ctx: &mut Ctx, msg: Vec<u8>) {
        let t = self.datagram(ctx.cfg, self.remote, msg);
        ctx.transmits.push_back(t);
    }

    /// Sends a new encrypted request (the window is free) and tracks it for retransmission.
    pub fn send_request(
        &mut self,
        ctx: &mut Ctx,
        exchange: ExchangeType,
        payloads: &[Payload],
        what: Request,
    ) {
        let Some((id, datagrams)) = self.transmit_request(ctx, exchange, payloads) else {
            return;
        };
        let rt = self.retransmit_config();
        self.pending = Some(Pending {
            id,
            datagrams,
            what,
            retries: 0,
            deadline: self.retransmit_deadline(&rt, ctx.now, ctx.now, 0),
            sent: ctx.now,
        });
    }

    /// Seals `payloads` as a request with the next message ID and sends it once; returns the
    /// ID and the datagrams (for retransmissions), or None when sealing failed.
    pub(crate) fn transmit_request(
        &mut self,
        ctx: &mut Ctx,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Option<(u32, Vec<Vec<u8>>)> {
        let id = self.next_request_id;
        let header = self.header(exchange, false, id);
        let datagrams = self.seal_datagrams(ctx.cfg, ctx.rng, &header, payloads)?;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        for d in &datagrams {
            self.transmit(ctx, d.clone());
        }
        ctx.stats.requests_sent += 1;
        Some((id, datagrams))
    }

    /// Sends an encrypted response to request `id` and caches it for retransmissions.
    pub fn send_response(
        &mut self,
        ctx: &mut Ctx,
        exchange: ExchangeType,
        id: u32,
        payloads: &[Payload],
    ) {
        let header = self.header(exchange, true, id);
        let Some(datagrams) = self.seal_datagrams(ctx.cfg, ctx.rng, &header, payloads) else {
            return;
        };
        let to = self.respond_to.unwrap_or(self.remote);
        for d in &datagrams {
            let t = self.datagram(ctx.cfg, to, d.clone());
            ctx.transmits.push_back(t);
        }
        self.last_response = Some((id, datagrams));
        // A refusal with INVALID_SYNTAX ends the IKE SA (RFC 7296 2.21.3). Not when it rides in
        // an IKE_AUTH response next to our AUTH: there it refuses only the first CHILD_SA and
        // the peer, having authenticated us, keeps the IKE SA (2.21.2), and so must we.
        let auth = payloads.auth().is_some();
        if !auth && payloads.notify(NotifyType::InvalidSyntax).is_some() {
            self.invalid_syntax_sent = true;
        }
    }

    pub fn retransmit_config(&self) -> crate::config::Retransmit {
        self.conn
            .as_ref()
            .or(self.candidates.as_ref().and_then(|c| c.first()))
            .map(|c| c.retransmit)
            .unwrap_or_default()
    }

    /// When to retransmit (or give up on) a request first sent at `sent`, after `retries`
    /// retransmissions: the schedule's next interval, but never past `give_up_after` on an
    /// established SA.
    fn retransmit_deadline(
        &self,
        rt: &crate::config::Retransmit,
        now: Instant,
        sent: Instant,
        retries: u32,
    ) -> Instant {
        let next = later(now, rt.interval(retries));
        match rt.give_up_after {
            Some(g) if self.state == State::Established => next.min(later(sent, g)),
            _ => next,
        }
    }

    /// Any authenticated message proves the peer alive: DPD restarts its wait, a probe ends.
    fn heard_from_peer(&mut self, now: Instant) {
        self.last_inbound = now;
        self.probe = None;
    }

    /// Starts a probe: a liveness request now (or the request already in flight, resent
    /// faster), and the SA closes as `PeerUnreachable` unless the peer answers within
    /// `give_up`.
    pub fn start_probe(&mut self, ctx: &mut Ctx, give_up: Duration) -> bool {
        if self.state != State::Established || self.probe.is_some() {
            return false;
        }
        let every = (give_up / 4).max(Duration::from_millis(50));
        self.probe = Some(Probe {
            until: later(ctx.now, give_up),
            every,
            next: later(ctx.now, every),
        });
        if self.pending.is_none() {
            self.enqueue(ctx, Task::Dpd);
        }
        true
    }

    /// The earliest moment this SA needs [`IkeSa::on_timeout`].
    pub fn deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |x| x.min(t)));
            }
        };
        take(self.pending.as_ref().map(|p| p.deadline));
        take(self.half_open_deadline);
        take(self.probe.map(|p| p.until));
        take(self.probe.map(|p| p.next));
        if self.state == State::Established {
            take(self.rekey_at);
            take(self.reauth_at);
            if self.pending.is_none() {
                take(self.dpd_due());
            }
            for c in &self.children {
                take(c.next_deadline());
            }
        }
        d
    }

    fn dpd_due(&self) -> Option<Instant> {
        let i = self.conn.as_ref()?.dpd_interval?;
        Some(self.last_inbound + i)
    }

    pub fn on_timeout(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        if self.half_open_deadline.is_some_and(|d| d <= now) && self.state != State::Established {
            self.close(ctx, CloseReason::PeerUnreachable);
            return;
        }
        if let Some(mut probe) = self.probe {
            if probe.until <= now {
                self.close(ctx, CloseReason::PeerUnreachable);
                return;
            }
            if probe.next <= now {
                probe.next = later(now, probe.every);
                self.probe = Some(probe);
                if let Some(p) = self.pending.as_ref() {
                    let datagrams = p.datagrams.clone();
                    ctx.stats.retransmits_sent += 1;
                    for d in datagrams {
                        self.transmit(ctx, d);
                    }
                }
            }
        }
        if self.pending.as_ref().is_some_and(|p| p.deadline <= now) {
            let rt = self.retransmit_config();
            let established = self.state == State::Established;
            let (sent, retries) = self
                .pending
                .as_ref()
                .map(|p| (p.sent, p.retries))
                .unwrap_or((now, 0));
            let given_up = established && rt.give_up_after.is_some_and(|g| now >= later(sent, g));
            if retries < rt.tries && !given_up {
                let deadline = self.retransmit_deadline(&rt, now, sent, retries + 1);
                if let Some(p) = self.pending.as_mut() {
                    p.retries += 1;
                    p.deadline = deadline;
                    let datagrams = p.datagrams.clone();
                    ctx.stats.retransmits_sent += 1;
                    for d in datagrams {
                        self.transmit(ctx, d);
                    }
                }
            } else {
                let p = self.pending.take();
                self.request_failed(ctx, p);
                return;
            }
        }
        if self.state != State::Established {
            return;
        }
        if self.rekey_at.is_some_and(|t| t <= now) {
            self.rekey_at = None;
            self.enqueue(ctx, Task::RekeyIke);
        }
        if self.reauth_at.is_some_and(|t| t <= now) {
            self.reauth_at = None;
            ctx.actions
                .push_back(SaAction::Reauthenticate { ike: self.id });
        }
        if self.pending.is_none()
            && self.queued.is_empty()
            && self.dpd_due().is_some_and(|t| t <= now)
        {
            self.enqueue(ctx, Task::Dpd);
        }
        self.child_timers(ctx);
    }

    /// A request got no answer through all retransmissions: the peer is gone.
    fn request_failed(&mut self, ctx: &mut Ctx, p: Option<Pending>) {
        if let Some(Request::DeleteChild { spi_in }) = p.map(|p| p.what) {
            // The peer did not confirm; the SA is gone on our side regardless.
            self.remove_child(ctx, spi_in, CloseReason::Local);
        }
        self.close(ctx, CloseReason::PeerUnreachable);
    }

    /// Ends the SA and every CHILD_SA with events; the endpoint drops it.
    pub fn close(&mut self, ctx: &mut Ctx, reason: CloseReason) {
        if self.state == State::Dead {
            return;
        }
        let reason = if self.superseded {
            CloseReason::Rekeyed
        } else {
            reason
        };
        let was_up = self.established_at.is_some();
        self.release_vip(ctx);
        for c in std::mem::take(&mut self.children) {
            if let Some(conn) = self.conn_name() {
                ctx.events.push_back(Event::ChildSaDown {
                    conn,
                    ike: self.id,
                    spi_in: c.info.spi_in,
                    spi_out: c.info.spi_out,
                    reason: reason.clone(),
                });
            }
        }
        if was_up || self.initiator {
            ctx.events.push_back(Event::IkeSaDown {
                conn: self.conn_name(),
                ike: self.id,
                remote: self.remote,
                reason,
            });
        }
        self.state = State::Dead;
        self.pending = None;
        self.queued.clear();
    }

    /// Queues work for the request window and starts it if the window is free.
    pub fn enqueue(&mut self, ctx: &mut Ctx, t: Task) {
        if !self.queued.contains(&t) {
            self.queued.push_back(t);
        }
        self.kick(ctx);
    }

    /// Starts the next queued request if none is in flight.
    pub fn kick(&mut self, ctx: &mut Ctx) {
        while self.pending.is_none() && self.state == State::Established {
            let Some(t) = self.queued.pop_front() else {
                return;
            };
            match t {
                Task::Dpd => self.send_request(ctx, ExchangeType::Informational, &[], Request::Dpd),
                Task::DeleteIke => self.start_delete_ike(ctx),
                Task::DeleteChild(spi) => self.start_delete_child(ctx, spi),
                Task::RekeyChild(spi) => self.start_rekey_child(ctx, spi),
                Task::RekeyIke => self.start_rekey_ike(ctx),
            }
        }
    }

    /// Handles an authenticated-or-not IKE message addressed to this SA.
    pub fn handle(&mut self, ctx: &mut Ctx, bytes: &[u8], msg: Message, from: SocketAddr) {
        if msg.header.flags.response {
            self.handle_response(ctx, bytes, msg, from);
        } else {
            self.handle_request(ctx, bytes, msg, from);
        }
        if std::mem::take(&mut self.invalid_syntax_sent) {
            // RFC 7296 2.21.3: our INVALID_SYNTAX answer is fatal in both peers. The response
            // is already queued (and the peer, on reading it, deletes its side too); a
            // retransmission of the request then finds no SA and goes unanswered.
            self.close(
                ctx,
                CloseReason::ProtocolError(
                    "peer sent a malformed request; answered INVALID_SYNTAX (RFC 7296 2.21.3)"
                        .into(),
                ),
            );
            return;
        }
        self.kick(ctx);
    }

    /// Counts an encrypted message that could not be opened; it is then dropped unanswered.
    /// Only [`OpenFailure::Syntax`] (authenticated, so from the peer) gets an answer, and
    /// only for a request: see [`IkeSa::handle_request`].
    fn count_unopened(ctx: &mut Ctx, e: OpenFailure) {
        match e {
            OpenFailure::Integrity => ctx.stats.integrity_failed += 1,
            OpenFailure::NoKeys
            | OpenFailure::NotEncrypted
            | OpenFailure::Malformed
            | OpenFailure::Syntax => ctx.stats.malformed += 1,
        }
    }

    fn handle_response(&mut self, ctx: &mut Ctx, bytes: &[u8], msg: Message, from: SocketAddr) {
        // A response to no request of ours in flight: a late duplicate, or forged. RFC 7296
        // 2.21.4 says never to answer a response; it must not touch the SA either.
        let Some(p) = self.pending.as_ref() else {
            ctx.stats.wrong_message_id += 1;
            return;
        };
        if p.id != msg.header.message_id {
            ctx.stats.wrong_message_id += 1;
            return;
        }
        if matches!(p.what, Request::Init { .. }) {
            let mut p = self.pending.take().expect("checked above");
            // The request moves out; `p` keeps the retransmission state in case we go on
            // waiting (then init_response puts the request back).
            let Request::Init {
                ke,
                ni,
                message,
                cookie,
            } = std::mem::replace(&mut p.what, Request::Dpd)
            else {
                unreachable!("matched above")
            };
            self.init_response(ctx, bytes, msg, ke, ni, message, cookie, p);
            return;
        }
        let payloads = match self.decrypt(bytes, &msg) {
            Ok(Some(p)) => p,
            // A fragment of a message still incomplete: keep waiting.
            Ok(None) => return,
            // Unauthenticated garbage must not disturb the exchange: keep waiting. A response
            // that authenticates but does not parse is dropped too (no answer to a response,
            // RFC 7296 2.21.4); retransmitting may yet get a good one, or gives up.
            Err(e) => {
                Self::count_unopened(ctx, e);
                return;
            }
        };
        self.heard_from_peer(ctx.now);
        self.learn_address(ctx, from);
        let p = self.pending.take().expect("checked above");
        // RFC 7296 2.21.3: INVALID_SYNTAX "is considered fatal in both peers, meaning that the
        // IKE SA is deleted without needing an explicit Delete payload". IKE_AUTH responses
        // are left to `auth_response`: without AUTH it fails the SA anyway, and next to AUTH
        // the notify refuses only the first CHILD_SA (2.21.2; see `send_response`).
        if !matches!(p.what, Request::Auth { .. })
            && payloads.notify(NotifyType::InvalidSyntax).is_some()
        {
            ctx.events.push_back(Event::Failure {
                conn: self.conn_name(),
                remote: self.remote,
                remote_id: self.remote_identity(),
                notify: NotifyType::InvalidSyntax,
                detail: "peer found our request malformed (INVALID_SYNTAX); the IKE SA ends \
                         (RFC 7296 2.21.3)"
                    .into(),
                legacy_refused: Vec::new(),
            });
            if let Request::DeleteChild { spi_in } = p.what {
                self.remove_child(ctx, spi_in, CloseReason::Local);
            }
            self.close(ctx, CloseReason::Refused(NotifyType::InvalidSyntax));
            return;
        }
        match p.what {
            Request::Init { .. } => {}
            Request::Auth { child } => self.auth_response(ctx, &payloads, child),
            Request::Dpd => {}
            Request::DeleteIke => self.close(ctx, CloseReason::Local),
            Request::DeleteChild { spi_in } => self.remove_child(ctx, spi_in, CloseReason::Local),
            Request::CreateChild { child, rekey_of } => {
                self.create_child_response(ctx, &payloads, child, rekey_of)
            }
            Request::RekeyIke { new_spi, ke, ni } => {
                self.rekey_ike_response(ctx, &payloads, new_spi, ke, ni)
            }
        }
    }

    fn handle_request(&mut self, ctx: &mut Ctx, bytes: &[u8], msg: Message, from: SocketAddr) {
        let id = msg.header.message_id;
        // A retransmitted request: answer from the cache, never process twice (RFC 7296 2.1).
        if let Some((cached, datagrams)) = &self.last_response {
            // For a fragmented request, answer its first fragment only (RFC 7383 2.6.1).
            let first = !matches!(&msg.encrypted, Some(wire::Encrypted::Skf { fragment_number, .. }) if *fragment_number != 1);
            if *cached == id && first {
                for d in datagrams.clone() {
                    let t = self.datagram(ctx.cfg, from, d);
                    ctx.transmits.push_back(t);
                }
                ctx.stats.retransmits_answered += 1;
                return;
            }
        }
        // A retransmission of the request whose EAP message waits for the RADIUS server: its
        // answer is not there yet. Dropped (it must not go to the server twice), counted.
        if self.eap_radius_waits_for(id) {
            ctx.stats.eap_radius_retransmits += 1;
            return;
        }
        // Neither the next request nor a retransmission of the last: outside our window of
        // one (RFC 7296 2.3). Checked before decrypting, so it costs no AEAD work.
        if id != self.expected_request_id {
            ctx.stats.wrong_message_id += 1;
            return;
        }
        let payloads = match self.decrypt(bytes, &msg) {
            Ok(Some(p)) => p,
            // A fragment of a message still incomplete.
            Ok(None) => return,
            // Passed the ICV and window checks, yet badly formatted: only the peer can have
            // sent it. RFC 7296 2.21.2/2.21.3: answer INVALID_SYNTAX (and nothing else, without
            // looking at the payloads), which then ends the IKE SA in both peers.
            Err(OpenFailure::Syntax) => {
                ctx.stats.malformed += 1;
                self.respond_to = Some(from);
                self.heard_from_peer(ctx.now);
                self.expected_request_id = self.expected_request_id.wrapping_add(1);
                let n = Payload::notify(NotifyType::InvalidSyntax, Vec::new());
                self.send_response(ctx, msg.header.exchange, id, &[n]);
                return;
            }
            // Not authenticated: drop it, and leave the SA exactly as it was.
            Err(e) => {
                Self::count_unopened(ctx, e);
                return;
            }
        };
        // Only an authenticated request may say where the answer goes (RFC 7296 2.23).
        self.respond_to = Some(from);
        self.heard_from_peer(ctx.now);
        self.expected_request_id = self.expected_request_id.wrapping_add(1);
        if let Some(unknown) = payloads.unsupported_critical() {
            let n = Payload::notify(NotifyType::UnsupportedCriticalPayload, vec![unknown]);
            self.send_response(ctx, msg.header.exchange, id, &[n]);
            return;
        }
        match msg.header.exchange {
            ExchangeType::IkeAuth if self.state == State::Init && !self.initiator => {
                self.auth_request(ctx, id, &payloads, from)
            }
            _ if self.state != State::Established && self.state != State::Closing => {}
            ExchangeType::Informational => {
                self.learn_address(ctx, from);
                self.informational_request(ctx, id, &payloads)
            }
            ExchangeType::CreateChildSa => {
                self.learn_address(ctx, from);
                self.create_child_request(ctx, id, &payloads)
            }
            other => {
                let n = Payload::notify(NotifyType::InvalidSyntax, Vec::new());
                self.send_response(ctx, other, id, &[n]);
            }
        }
    }

    /// Whether a DELETE of the CHILD_SA with inbound SPI `spi_in` is in flight or queued.
    pub fn deleting_child(&self, spi_in: u32) -> bool {
        matches!(self.pending.as_ref().map(|p| &p.what), Some(Request::DeleteChild { spi_in: s }) if *s == spi_in)
            || self.queued.contains(&Task::DeleteChild(spi_in))
    }

    /// Behind a NAT the peer's mapping may change; follow it on authenticated messages
    /// (RFC 7296 2.23), and only for a peer NAT detection put behind one: without a NAT, a
    /// packet from another address is someone replaying or redirecting it, not the peer
    /// moving. Returns whether the address changed.
    pub(crate) fn learn_address(&mut self, ctx: &mut Ctx, from: SocketAddr) -> bool {
        if !(self.natt && self.nat.remote) || from == self.remote || from.port() == 0 {
            return false;
        }
        let old = std::mem::replace(&mut self.remote, from);
        for c in &mut self.children {
            c.info.remote = from;
        }
        ctx.events.push_back(Event::PeerAddressChanged {
            conn: self.conn_name(),
            ike: self.id,
            old,
            remote: from,
        });
        true
    }

    pub fn established(&mut self, ctx: &mut Ctx) {
        self.state = State::Established;
        if let Some(old) = self.replaces.take() {
            ctx.actions
                .push_back(SaAction::DeleteReplaced { by: self.id, old });
        }
        self.established_at = Some(ctx.now);
        self.half_open_deadline = None;
        self.init_messages = (Vec::new(), Vec::new());
        if let Some(conn) = &self.conn {
            let l = conn.lifetimes;
            // A lifetime too long to represent means "never".
            self.rekey_at = ctx
                .now
                .checked_add(jittered(ctx.rng, l.ike_rekey, l.jitter));
            // Only the side that initiated reauthenticates, so the two ends do not both.
            if self.initiator {
                self.reauth_at = l
                    .ike_reauth
                    .and_then(|r| ctx.now.checked_add(jittered(ctx.rng, r, l.jitter)));
            }
        }
    }
}

/// Why an encrypted message could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenFailure {
    NoKeys,
    NotEncrypted,
    /// The ICV did not verify.
    Integrity,
    /// Broken before the ICV could be checked (too short for IV and ICV, bad fragment
    /// numbering, reassembly over its limit): anyone could have sent it.
    Malformed,
    /// The ICV verified but the plaintext is not a valid message (pad length past the data,
    /// an inner payload chain that does not parse): the peer, who holds the key, sent a
    /// malformed message, which a request is answered for (RFC 7296 2.21.3).
    Syntax,
}

/// `base` minus a random part of `jitter`, so two peers with the same settings rarely rekey
/// at the same moment.
/// The jitter is at most half of `base`: one jitter serves every lifetime of a connection, and
/// one larger than a short lifetime (a `reauth_time` below the CHILD_SA's jitter) would
/// otherwise make it due at once, again after every renewal.
pub(crate) fn jittered(rng: &mut dyn Rng, base: Duration, jitter: Duration) -> Duration {
    let mut b = [0u8; 4];
    rng.fill(&mut b);
    let frac = f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX);
    base.saturating_sub(jitter.min(base / 2).mul_f64(frac))
}

/// `now + d`, or as far as an `Instant` goes: a configured interval too long to represent
/// must not panic the engine.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86400)))
        .unwrap_or(now)
}
