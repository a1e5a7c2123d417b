//! CHILD_SAs: the first one in IKE_AUTH, more and rekeys in CREATE_CHILD_SA (RFC 7296 1.3),
//! and IKE SA rekeying, which shares the exchange (1.3.2, 2.18).

use std::sync::Arc;
use std::time::Instant;

use super::{jittered, Ctx, IkeSa, Request, SaAction, SaCrypto, State, Task};
use crate::config::{Keymat, PeerConfig};
use crate::crypto::{
    accept_esp_response, accept_ike_response, choose_esp, choose_ike, derive_child_keys,
    derive_ike_keys, offer_esp, offer_ike, skeyseed_rekey, DhGroup, EspAlgorithms, EspProposal,
    KeyExchange,
};
use crate::events::{ChildSaInfo, CloseReason, Event};
use crate::sa::init::{chosen_ike, NONCE_LEN};
use crate::sa::proposals::{offered, spi_of, to_wire};
use crate::spi::{random_bytes, random_child_spi, random_ike_spi};
use crate::ts;
use crate::wire::{
    DeletePayload, ExchangeType, KePayload, NotifyType, Payload, Payloads, ProtocolId, SaPayload,
    TrafficSelector,
};

/// An established CHILD_SA and its timers.
pub(crate) struct ChildSa {
    pub info: ChildSaInfo,
    pub rekey_at: Option<Instant>,
    pub expire_at: Option<Instant>,
    /// A rekey of this SA is under way or done (then it only waits for its delete).
    pub rekeyed: bool,
    /// Its hard lifetime ran out: its delete reports [`CloseReason::Expired`].
    pub expired: bool,
    /// Rekeys of this SA that completed: ours (we initiated) and the peer's (we answered),
    /// each as (lowest nonce of its exchange, inbound SPI of the SA it made). When both
    /// exist the rekeys collided, and the one with the lowest nonce is redundant (2.8.1).
    pub our_rekey: Option<(Vec<u8>, u32)>,
    pub peer_rekey: Option<(Vec<u8>, u32)>,
}

impl ChildSa {
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.rekey_at.filter(|_| !self.rekeyed), self.expire_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What we proposed for a CHILD_SA, kept until the answer comes.
pub(crate) struct ChildOffer {
    pub spi_in: u32,
    pub ke: Option<KeyExchange>,
    pub nonce: Vec<u8>,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub proposals: Vec<EspProposal>,
}

fn without_dh(p: &[EspProposal]) -> Vec<EspProposal> {
    p.iter()
        .map(|x| EspProposal {
            encr: x.encr.clone(),
            integ: x.integ.clone(),
            dh: Vec::new(),
            esn: x.esn.clone(),
        })
        .collect()
}

impl ChildOffer {
    /// `in_auth`: the first CHILD_SA, which takes no KE and so no DH transforms.
    pub fn new(
        ctx: &mut Ctx,
        conn: &PeerConfig,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        in_auth: bool,
    ) -> ChildOffer {
        let proposals = if in_auth {
            without_dh(&conn.esp_proposals)
        } else {
            conn.esp_proposals.clone()
        };
        let ke = if in_auth {
            None
        } else {
            proposals
                .first()
                .and_then(|p| p.dh.first())
                .map(|g| KeyExchange::new(*g, ctx.rng))
        };
        ChildOffer {
            spi_in: random_child_spi(ctx.rng),
            ke,
            nonce: if in_auth {
                Vec::new()
            } else {
                random_bytes(ctx.rng, NONCE_LEN)
            },
            local_ts,
            remote_ts,
            proposals,
        }
    }

    /// SA, [Ni, KEi,] TSi, TSr of the request.
    pub fn payloads(&self, _conn: &PeerConfig, rekey_of: Option<u32>) -> Vec<Payload> {
        let mut v = Vec::new();
        if let Some(old) = rekey_of {
            v.push(Payload::Notify(crate::wire::NotifyPayload {
                protocol: 3,
                spi: old.to_be_bytes().to_vec(),
                kind: NotifyType::RekeySa,
                data: Vec::new(),
            }));
        }
        let offer = offer_esp(&self.proposals);
        v.push(Payload::Sa(SaPayload {
            proposals: offer
                .iter()
                .map(|p| to_wire(p, ProtocolId::Esp, self.spi_in.to_be_bytes().to_vec()))
                .collect(),
        }));
        if !self.nonce.is_empty() {
            v.push(Payload::Nonce(self.nonce.clone()));
        }
        if let Some(ke) = &self.ke {
            v.push(Payload::Ke(KePayload {
                group: ke.group().id(),
                data: ke.public().to_vec(),
            }));
        }
        v.push(Payload::TsI(self.local_ts.clone()));
        v.push(Payload::TsR(self.remote_ts.clone()));
        v
    }
}

fn chosen_esp(number: u8, a: EspAlgorithms, spi: u32) -> SaPayload {
    let o = offer_esp(&[EspProposal {
        encr: vec![a.encr.encr()],
        integ: a.encr.integ().into_iter().collect(),
        dh: a.dh.into_iter().collect(),
        esn: vec![a.esn],
    }]);
    let mut p = o.into_iter().next().expect("one proposal in, one out");
    p.number = number;
    SaPayload {
        proposals: vec![to_wire(&p, ProtocolId::Esp, spi.to_be_bytes().to_vec())],
    }
}

/// Refusal of a CHILD_SA: notify type, its data, and a line for the operator.
pub(crate) type ChildRefusal = (NotifyType, Vec<u8>, String);

impl IkeSa {
    fn prf_and_skd(&self) -> Option<(crate::crypto::Prf, zeroize::Zeroizing<Vec<u8>>)> {
        self.crypto.as_ref().map(|c| (c.algs.prf, c.sk_d.clone()))
    }

    /// Responder side of a CHILD_SA request (IKE_AUTH or CREATE_CHILD_SA): choose, narrow,
    /// derive. `ni`/`nr` are the exchange's nonces (initiator's first).
    pub(crate) fn accept_child(
        &mut self,
        ctx: &mut Ctx,
        payloads: &[Payload],
        ni: &[u8],
        nr: &[u8],
        in_auth: bool,
    ) -> Result<(Vec<Payload>, ChildSaInfo), ChildRefusal> {
        let conn = self.conn.clone().ok_or((
            NotifyType::NoProposalChosen,
            Vec::new(),
            "no connection".to_string(),
        ))?;
        let (Some(sa), Some(tsi), Some(tsr)) = (payloads.sa(), payloads.ts_i(), payloads.ts_r())
        else {
            return Err((
                NotifyType::InvalidSyntax,
                Vec::new(),
                "CHILD_SA request lacks SA, TSi or TSr".into(),
            ));
        };
        let ours = if in_auth {
            without_dh(&conn.esp_proposals)
        } else {
            conn.esp_proposals.clone()
        };
        let offer = offered(sa, ProtocolId::Esp);
        let ke = payloads.ke();
        // With a KE the initiator wants PFS: only proposals with that group qualify; without,
        // only proposals without DH.
        let (number, algs) = choose_esp(&offer, &ours).ok_or_else(|| {
            (
                NotifyType::NoProposalChosen,
                Vec::new(),
                format!(
                    "peer offered ESP proposals {} but we accept {}",
                    crate::sa::init::describe_offer(sa),
                    describe_esp(&ours)
                ),
            )
        })?;
        let pfs = match (algs.dh, ke) {
            (None, _) => None,
            (Some(g), Some(k)) if k.group == g.id() => Some(g),
            (Some(g), _) => {
                return Err((
                    NotifyType::InvalidKePayload,
                    g.id().to_be_bytes().to_vec(),
                    format!("peer's KE does not match the chosen PFS group {}", g.name()),
                ))
            }
        };
        let spi_out = spi_of(sa, number, ProtocolId::Esp)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes)
            .filter(|s| *s > 255)
            .ok_or((
                NotifyType::InvalidSyntax,
                Vec::new(),
                "peer's ESP SPI is not 4 bytes".to_string(),
            ))?;
        let tsi_n = ts::narrow(tsi, &self.peer_selectors(&conn));
        let tsr_n = ts::narrow(tsr, &self.own_selectors(&conn));
        if tsi_n.is_empty() || tsr_n.is_empty() {
            return Err((
                NotifyType::TsUnacceptable,
                Vec::new(),
                "peer's traffic selectors do not overlap ours".into(),
            ));
        }
        let (our_ke, shared) = match (pfs, ke) {
            (Some(g), Some(k)) => {
                let mine = KeyExchange::new(g, ctx.rng);
                let s = mine.agree(&k.data).map_err(|e| {
                    (
                        NotifyType::InvalidSyntax,
                        Vec::new(),
                        format!("bad KE: {e}"),
                    )
                })?;
                (Some(mine), Some(s))
            }
            _ => (None, None),
        };
        let (prf, sk_d) = self.prf_and_skd().ok_or((
            NotifyType::InvalidSyntax,
            Vec::new(),
            "no keys".to_string(),
        ))?;
        let keys = derive_child_keys(prf, algs.encr, &sk_d, shared.as_ref(), ni, nr);
        let spi_in = random_child_spi(ctx.rng);
        let info = ChildSaInfo {
            spi_in,
            spi_out,
            algorithms: algs,
            key_in: Keymat(keys.i_to_r.clone()),
            key_out: Keymat(keys.r_to_i.clone()),
            local_ts: tsr_n.clone(),
            remote_ts: tsi_n.clone(),
            local: self.local,
            remote: self.remote,
            encap: self.natt,
        };
        let mut out = vec![Payload::Sa(chosen_esp(number, algs, spi_in))];
        if !in_auth {
            out.push(Payload::Nonce(nr.to_vec()));
        }
        if let Some(k) = our_ke {
            out.push(Payload::Ke(KePayload {
                group: k.group().id(),
                data: k.public().to_vec(),
            }));
        }
        out.push(Payload::TsI(tsi_n));
        out.push(Payload::TsR(tsr_n));
        Ok((out, info))
    }

    /// Initiator side: the answer to our CHILD_SA request. `rekey_of` names the SA it replaces.
    pub(crate) fn complete_child(
        &mut self,
        ctx: &mut Ctx,
        payloads: &[Payload],
        offer: ChildOffer,
        ni: &[u8],
        nr: &[u8],
        rekey_of: Option<u32>,
    ) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let fail = |sa: &mut IkeSa, ctx: &mut Ctx, kind: NotifyType, detail: String| {
            let mut retry_at = None;
            if let Some(old) = rekey_of {
                let retry = ctx.now + retry_delay(ctx);
                if let Some(c) = sa.children.iter_mut().find(|c| c.info.spi_in == old) {
                    // Try again later; the hard lifetime still bounds how long the old SA lives.
                    c.rekeyed = false;
                    c.rekey_at = Some(retry);
                    retry_at = Some(retry);
                }
            }
            ctx.events.push_back(Event::Failure {
                conn: Some(conn.name.clone()),
                remote: sa.remote,
                remote_id: sa.remote_identity(),
                notify: kind,
                detail: detail.clone(),
                legacy_refused: Vec::new(),
            });
            ctx.events.push_back(Event::ChildSaRefused {
                conn: conn.name.clone(),
                ike: sa.id,
                notify: kind,
                detail,
                rekey_of,
                retry_at,
            });
        };
        if let Some(n) = payloads.error_notify() {
            let kind = n.kind;
            let detail = match kind {
                NotifyType::NoProposalChosen => format!(
                    "peer accepted none of our ESP proposals {}",
                    describe_esp(&offer.proposals)
                ),
                NotifyType::TsUnacceptable => "peer refused our traffic selectors".to_string(),
                _ => format!("peer refused the CHILD_SA with {kind:?}"),
            };
            fail(self, ctx, kind, detail);
            return;
        }
        let (Some(sa), Some(tsi), Some(tsr)) = (payloads.sa(), payloads.ts_i(), payloads.ts_r())
        else {
            fail(
                self,
                ctx,
                NotifyType::InvalidSyntax,
                "CHILD_SA response lacks SA, TSi or TSr".into(),
            );
            return;
        };
        let offer_list = offered(sa, ProtocolId::Esp);
        let algs = match offer_list.as_slice() {
            [one] => accept_esp_response(one, &offer.proposals).map(|a| (one.number, a)),
            _ => None,
        };
        let Some((number, algs)) = algs else {
            fail(
                self,
                ctx,
                NotifyType::NoProposalChosen,
                "peer answered with an ESP proposal we did not offer".into(),
            );
            return;
        };
        let spi_out = spi_of(sa, number, ProtocolId::Esp)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes)
            .filter(|s| *s > 255);
        let Some(spi_out) = spi_out else {
            fail(
                self,
                ctx,
                NotifyType::InvalidSyntax,
                "peer's ESP SPI is not valid".into(),
            );
            return;
        };
        if !ts::all_within(tsi, &offer.local_ts) || !ts::all_within(tsr, &offer.remote_ts) {
            fail(
                self,
                ctx,
                NotifyType::TsUnacceptable,
                "peer answered with selectors wider than ours".into(),
            );
            return;
        }
        let shared = match (algs.dh, &offer.ke, payloads.ke()) {
            (None, _, _) => None,
            (Some(g), Some(mine), Some(k)) if mine.group() == g && k.group == g.id() => {
                match mine.agree(&k.data) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        fail(self, ctx, NotifyType::InvalidSyntax, format!("bad KE: {e}"));
                        return;
                    }
                }
            }
            _ => {
                fail(
                    self,
                    ctx,
                    NotifyType::InvalidKePayload,
                    "PFS group mismatch".into(),
                );
                return;
            }
        };
        let Some((prf, sk_d)) = self.prf_and_skd() else {
            return;
        };
        let keys = derive_child_keys(prf, algs.encr, &sk_d, shared.as_ref(), ni, nr);
        let info = ChildSaInfo {
            spi_in: offer.spi_in,
            spi_out,
            algorithms: algs,
            key_in: Keymat(keys.r_to_i.clone()),
            key_out: Keymat(keys.i_to_r.clone()),
            local_ts: tsi.clone(),
            remote_ts: tsr.clone(),
            local: self.local,
            remote: self.remote,
            encap: self.natt,
        };
        let new_in = info.spi_in;
        self.child_up(ctx, info, rekey_of, true);
        if let Some(old) = rekey_of {
            // We started the rekey, so we delete the old SA — after the new one is in use.
            self.queued.push_back(Task::DeleteChild(old));
            self.note_rekey(ctx, old, true, lowest(ni, nr), new_in);
        }
    }

    /// Records a completed rekey of `old` and settles a collision once both sides' rekeys
    /// are known: the CHILD_SA made by the exchange with the lowest nonce is deleted by the
    /// peer that made it (RFC 7296 2.8.1) — here, if that is us.
    fn note_rekey(&mut self, ctx: &mut Ctx, old: u32, ours: bool, nonce: Vec<u8>, new_in: u32) {
        let Some(c) = self.children.iter_mut().find(|c| c.info.spi_in == old) else {
            return;
        };
        if ours {
            c.our_rekey = Some((nonce, new_in));
        } else {
            c.peer_rekey = Some((nonce, new_in));
        }
        if let (Some(o), Some(p)) = (&c.our_rekey, &c.peer_rekey) {
            let redundant = (o.0 < p.0).then_some(o.1);
            c.our_rekey = None;
            c.peer_rekey = None;
            if let Some(spi) = redundant {
                self.enqueue(ctx, Task::DeleteChild(spi));
            }
        }
    }

    /// Records a new CHILD_SA and reports it (as a rekey of `rekey_of`, if given).
    pub(crate) fn child_up(
        &mut self,
        ctx: &mut Ctx,
        info: ChildSaInfo,
        rekey_of: Option<u32>,
        initiated: bool,
    ) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let l = conn.lifetimes;
        let child = ChildSa {
            info: info.clone(),
            rekey_at: ctx
                .now
                .checked_add(jittered(ctx.rng, l.child_rekey, l.jitter)),
            expire_at: ctx.now.checked_add(l.child_hard),
            rekeyed: false,
            expired: false,
            our_rekey: None,
            peer_rekey: None,
        };
        self.children.push(child);
        ctx.events.push_back(match rekey_of {
            Some(old) => {
                if let Some(c) = self.children.iter_mut().find(|c| c.info.spi_in == old) {
                    c.rekeyed = true;
                }
                Event::ChildSaRekeyed {
                    conn: conn.name.clone(),
                    ike: self.id,
                    old_spi_in: old,
                    new: info,
                    initiated,
                }
            }
            None => Event::ChildSaUp {
                conn: conn.name.clone(),
                ike: self.id,
                child: info,
            },
        });
    }

    pub(crate) fn remove_child(&mut self, ctx: &mut Ctx, spi_in: u32, reason: CloseReason) {
        if let Some(i) = self.children.iter().position(|c| c.info.spi_in == spi_in) {
            let c = self.children.remove(i);
            let reason = match reason {
                CloseReason::Local if c.expired => CloseReason::Expired,
                other => other,
            };
            if let Some(conn) = self.conn_name() {
                ctx.events.push_back(Event::ChildSaDown {
                    conn,
                    ike: self.id,
                    spi_in: c.info.spi_in,
                    spi_out: c.info.spi_out,
                    reason,
                });
            }
        }
    }

    /// The CHILD_SA reached a hard limit: its delete reports [`CloseReason::Expired`].
    pub(crate) fn mark_expired(&mut self, spi_in: u32) {
        if let Some(c) = self.children.iter_mut().find(|c| c.info.spi_in == spi_in) {
            c.expired = true;
        }
    }

    /// Soft lifetime: rekey; hard lifetime: delete.
    pub(crate) fn child_timers(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        let mut tasks = Vec::new();
        for c in &mut self.children {
            if c.expire_at.is_some_and(|t| t <= now) {
                c.expire_at = None;
                c.expired = true;
                tasks.push(Task::DeleteChild(c.info.spi_in));
            } else if !c.rekeyed && c.rekey_at.is_some_and(|t| t <= now) {
                c.rekey_at = None;
                tasks.push(Task::RekeyChild(c.info.spi_in));
            }
        }
        for t in tasks {
            self.enqueue(ctx, t);
        }
    }

    pub(crate) fn start_rekey_child(&mut self, ctx: &mut Ctx, spi_in: u32) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let Some(c) = self.children.iter_mut().find(|c| c.info.spi_in == spi_in) else {
            return;
        };
        c.rekeyed = true;
        let (l, r) = (c.info.local_ts.clone(), c.info.remote_ts.clone());
        let offer = ChildOffer::new(ctx, &conn, l, r, false);
        let payloads = offer.payloads(&conn, Some(spi_in));
        self.send_request(
            ctx,
            ExchangeType::CreateChildSa,
            &payloads,
            Request::CreateChild {
                child: offer,
                rekey_of: Some(spi_in),
            },
        );
    }

    pub(crate) fn create_child_response(
        &mut self,
        ctx: &mut Ctx,
        payloads: &[Payload],
        child: ChildOffer,
        rekey_of: Option<u32>,
    ) {
        let Some(nr) = payloads.nonce().cloned() else {
            if payloads.error_notify().is_none() {
                return;
            }
            let ni = child.nonce.clone();
            self.complete_child(ctx, payloads, child, &ni, &[], rekey_of);
            return;
        };
        let ni = child.nonce.clone();
        self.complete_child(ctx, payloads, child, &ni, &nr, rekey_of);
    }

    /// A CREATE_CHILD_SA request: a new CHILD_SA, a CHILD_SA rekey, or an IKE SA rekey.
    pub(crate) fn create_child_request(&mut self, ctx: &mut Ctx, id: u32, payloads: &[Payload]) {
        let Some(ni) = payloads.nonce().cloned() else {
            self.send_response(
                ctx,
                ExchangeType::CreateChildSa,
                id,
                &[Payload::notify(NotifyType::InvalidSyntax, Vec::new())],
            );
            return;
        };
        if payloads
            .sa()
            .is_some_and(|s| s.proposals.iter().any(|p| p.protocol == ProtocolId::Ike))
        {
            self.rekey_ike_request(ctx, id, payloads, &ni);
            return;
        }
        let rekey = payloads.notify(NotifyType::RekeySa).map(|n| {
            <[u8; 4]>::try_from(&n.spi[..])
                .map(u32::from_be_bytes)
                .unwrap_or(0)
        });
        let old_in = match rekey {
            Some(out) => match self.children.iter().find(|c| c.info.spi_out == out) {
                Some(c) if self.deleting_child(c.info.spi_in) => {
                    // RFC 7296 2.25: rekeying an SA we are closing.
                    let n = Payload::notify(NotifyType::TemporaryFailure, Vec::new());
                    self.send_response(ctx, ExchangeType::CreateChildSa, id, &[n]);
                    return;
                }
                Some(c) => Some(c.info.spi_in),
                None => {
                    let n = Payload::Notify(crate::wire::NotifyPayload {
                        protocol: 3,
                        spi: out.to_be_bytes().to_vec(),
                        kind: NotifyType::ChildSaNotFound,
                        data: Vec::new(),
                    });
                    self.send_response(ctx, ExchangeType::CreateChildSa, id, &[n]);
                    return;
                }
            },
            None => None,
        };
        let nr = random_bytes(ctx.rng, NONCE_LEN);
        match self.accept_child(ctx, payloads, &ni, &nr, false) {
            Ok((out, info)) => {
                self.send_response(ctx, ExchangeType::CreateChildSa, id, &out);
                let new_in = info.spi_in;
                self.child_up(ctx, info, old_in, false);
                if let Some(old) = old_in {
                    self.note_rekey(ctx, old, false, lowest(&ni, &nr), new_in);
                }
            }
            Err((kind, data, detail)) => {
                self.send_response(
                    ctx,
                    ExchangeType::CreateChildSa,
                    id,
                    &[Payload::notify(kind, data)],
                );
                if let Some(conn) = self.conn.clone() {
                    ctx.events.push_back(Event::Failure {
                        conn: Some(conn.name.clone()),
                        remote: self.remote,
                        remote_id: self.remote_identity(),
                        notify: kind,
                        detail,
                        legacy_refused: Vec::new(),
                    });
                }
            }
        }
    }

    pub(crate) fn start_delete_child(&mut self, ctx: &mut Ctx, spi_in: u32) {
        if !self.children.iter().any(|c| c.info.spi_in == spi_in) {
            return;
        }
        let d = Payload::Delete(DeletePayload {
            protocol: ProtocolId::Esp,
            spi_size: 4,
            spis: vec![spi_in.to_be_bytes().to_vec()],
        });
        self.send_request(
            ctx,
            ExchangeType::Informational,
            &[d],
            Request::DeleteChild { spi_in },
        );
    }

    // ---- IKE SA rekey (RFC 7296 1.3.2, 2.18) ----

    pub(crate) fn start_rekey_ike(&mut self, ctx: &mut Ctx) {
        let (Some(conn), Some(crypto)) = (self.conn.clone(), self.crypto.as_ref()) else {
            return;
        };
        let new_spi = random_ike_spi(ctx.rng);
        // The KE is in the SA's group, unless the peer answered a first try with
        // INVALID_KE_PAYLOAD naming another group of our proposals.
        let group = self.rekey_group.take().unwrap_or(crypto.algs.dh);
        let ke = KeyExchange::new(group, ctx.rng);
        let ni = random_bytes(ctx.rng, NONCE_LEN);
        let offer = offer_ike(&conn.ike_proposals);
        let payloads = vec![
            Payload::Sa(SaPayload {
                proposals: offer
                    .iter()
                    .map(|p| to_wire(p, ProtocolId::Ike, new_spi.to_be_bytes().to_vec()))
                    .collect(),
            }),
            Payload::Nonce(ni.clone()),
            Payload::Ke(KePayload {
                group: group.id(),
                data: ke.public().to_vec(),
            }),
        ];
        self.send_request(
            ctx,
            ExchangeType::CreateChildSa,
            &payloads,
            Request::RekeyIke { new_spi, ke, ni },
        );
    }

    pub(crate) fn rekey_ike_response(
        &mut self,
        ctx: &mut Ctx,
        payloads: &[Payload],
        new_spi: u64,
        ke: KeyExchange,
        ni: Vec<u8>,
    ) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let (Some(sa), Some(nr), Some(kep)) = (payloads.sa(), payloads.nonce(), payloads.ke())
        else {
            // The peer picked another group of our offer than our KE's: retry at once with a
            // KE in the group it names (RFC 7296 §1.3.2), if it is one we offered. Once per
            // try: a KE not in the SA's group was already such a retry, and a peer that asks
            // again gets the delayed retry below rather than a ping-pong.
            let first_try = self
                .crypto
                .as_ref()
                .is_some_and(|c| c.algs.dh == ke.group());
            let wanted = payloads
                .notify(NotifyType::InvalidKePayload)
                .and_then(|n| n.data.get(..2))
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .and_then(DhGroup::from_id)
                .filter(|g| {
                    *g != ke.group() && conn.ike_proposals.iter().any(|p| p.dh.contains(g))
                });
            if let (true, Some(g)) = (first_try, wanted) {
                self.rekey_group = Some(g);
                self.enqueue(ctx, Task::RekeyIke);
                return;
            }
            // Refused (e.g. TEMPORARY_FAILURE during a collision): try again after a random
            // delay, so two peers that collided do not collide again.
            self.rekey_at = Some(ctx.now + retry_delay(ctx));
            return;
        };
        let off = offered(sa, ProtocolId::Ike);
        let Some((number, algs)) = (match off.as_slice() {
            [one] => accept_ike_response(one, &conn.ike_proposals).map(|a| (one.number, a)),
            _ => None,
        }) else {
            return;
        };
        let Some(peer_spi) = spi_of(sa, number, ProtocolId::Ike)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_be_bytes)
        else {
            return;
        };
        if algs.dh != ke.group() || kep.group != ke.group().id() {
            return;
        }
        let Ok(shared) = ke.agree(&kep.data) else {
            return;
        };
        let nr = nr.clone();
        // The rekey initiator becomes the original initiator of the new SA (2.18).
        if let Some(new) = self.spawn_rekeyed(
            ctx, algs, &shared, &ni, &nr, new_spi, peer_spi, true, new_spi,
        ) {
            ctx.actions.push_back(SaAction::Adopt(Box::new(new)));
            self.queued.push_back(Task::DeleteIke);
        }
    }

    fn rekey_ike_request(&mut self, ctx: &mut Ctx, id: u32, payloads: &[Payload], ni: &[u8]) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        // RFC 7296 2.25: while we are creating, rekeying or deleting SAs ourselves (including
        // rekeying this IKE SA), ask the peer to try again later; each side retries after a
        // random delay, so simultaneous IKE rekeys settle on one new SA.
        if matches!(
            self.pending.as_ref().map(|p| &p.what),
            Some(
                Request::RekeyIke { .. }
                    | Request::CreateChild { .. }
                    | Request::DeleteChild { .. }
            )
        ) {
            let n = Payload::notify(NotifyType::TemporaryFailure, Vec::new());
            self.send_response(ctx, ExchangeType::CreateChildSa, id, &[n]);
            return;
        }
        let (Some(sa), Some(kep)) = (payloads.sa(), payloads.ke()) else {
            self.send_response(
                ctx,
                ExchangeType::CreateChildSa,
                id,
                &[Payload::notify(NotifyType::InvalidSyntax, Vec::new())],
            );
            return;
        };
        let off = offered(sa, ProtocolId::Ike);
        let Some((number, algs)) = choose_ike(&off, &conn.ike_proposals) else {
            self.send_response(
                ctx,
                ExchangeType::CreateChildSa,
                id,
                &[Payload::notify(NotifyType::NoProposalChosen, Vec::new())],
            );
            return;
        };
        if kep.group != algs.dh.id() {
            self.send_response(
                ctx,
                ExchangeType::CreateChildSa,
                id,
                &[Payload::notify(
                    NotifyType::InvalidKePayload,
                    algs.dh.id().to_be_bytes().to_vec(),
                )],
            );
            return;
        }
        let Some(peer_spi) = spi_of(sa, number, ProtocolId::Ike)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_be_bytes)
            .filter(|s| *s != 0)
        else {
            self.send_response(
                ctx,
                ExchangeType::CreateChildSa,
                id,
                &[Payload::notify(NotifyType::InvalidSyntax, Vec::new())],
            );
            return;
        };
        let ke = KeyExchange::new(algs.dh, ctx.rng);
        let Ok(shared) = ke.agree(&kep.data) else {
            self.send_response(
                ctx,
                ExchangeType::CreateChildSa,
                id,
                &[Payload::notify(NotifyType::InvalidSyntax, Vec::new())],
            );
            return;
        };
        let new_spi = random_ike_spi(ctx.rng);
        let nr = random_bytes(ctx.rng, NONCE_LEN);
        let out = vec![
            Payload::Sa(chosen_ike(number, algs, new_spi.to_be_bytes().to_vec())),
            Payload::Nonce(nr.clone()),
            Payload::Ke(KePayload {
                group: algs.dh.id(),
                data: ke.public().to_vec(),
            }),
        ];
        self.send_response(ctx, ExchangeType::CreateChildSa, id, &out);
        if let Some(new) = self.spawn_rekeyed(
            ctx, algs, &shared, ni, &nr, peer_spi, new_spi, false, new_spi,
        ) {
            ctx.actions.push_back(SaAction::Adopt(Box::new(new)));
        }
    }

    /// Builds the IKE SA that replaces this one and moves the CHILD_SAs over to it.
    #[allow(clippy::too_many_arguments)]
    fn spawn_rekeyed(
        &mut self,
        ctx: &mut Ctx,
        algs: crate::crypto::IkeAlgorithms,
        shared: &crate::crypto::SharedSecret,
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
        initiator: bool,
        our_spi: u64,
    ) -> Option<IkeSa> {
        let conn: Arc<PeerConfig> = self.conn.clone()?;
        let old = self.crypto.as_ref()?;
        let seed = skeyseed_rekey(old.algs.prf, &old.sk_d, shared, ni, nr);
        let keys = derive_ike_keys(algs, &seed, ni, nr, spi_i, spi_r);
        let crypto = SaCrypto::new(algs, &keys, initiator)?;
        let mut new = IkeSa::new(
            our_spi,
            initiator,
            spi_i,
            spi_r,
            self.local,
            self.remote,
            ctx.now,
        );
        new.conn = Some(conn.clone());
        new.natt = self.natt;
        new.nat = self.nat;
        new.fragmentation = self.fragmentation;
        new.crypto = Some(crypto);
        new.children = std::mem::take(&mut self.children);
        // Who the peer is and its leased address go with the SA (the lease is not released).
        new.peer_id = self.peer_id.clone();
        new.vip = self.vip.take();
        new.eap_identity = self.eap_identity.clone();
        new.state = State::Established;
        new.established(ctx);
        ctx.events.push_back(Event::IkeSaRekeyed {
            conn: conn.name.clone(),
            old: self.id,
            new: new.id,
            algorithms: algs,
        });
        // This SA only waits for its DELETE now.
        self.rekey_at = None;
        self.superseded = true;
        Some(new)
    }
}

/// The lowest of an exchange's two nonces (byte-wise, as the collision rule compares them).
fn lowest(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.min(b).to_vec()
}

/// 2 to 10 s, at random: how long to wait before retrying a refused rekey.
fn retry_delay(ctx: &mut Ctx) -> std::time::Duration {
    let mut b = [0u8; 2];
    ctx.rng.fill(&mut b);
    std::time::Duration::from_millis(2000 + u64::from(u16::from_be_bytes(b)) % 8000)
}

/// Configured ESP proposals in strongSwan syntax, for log lines.
pub(crate) fn describe_esp(p: &[EspProposal]) -> String {
    let v: Vec<String> = p.iter().map(|x| x.to_string()).collect();
    format!("[{}]", v.join(", "))
}
