//! EAP in IKE_AUTH (RFC 7296 §2.16), both roles, with EAP-MSCHAPv2 or EAP-TLS from
//! `ironsec_eap` ([`super::eap_method`]).
//!
//! ```text
//! I: IDi, [CERTREQ], [IDr], SAi2, TSi, TSr, CP(CFG_REQUEST)       <- no AUTH: wants EAP
//! R: IDr, [CERT], AUTH, EAP(Request/Identity)                       <- gateway signs now
//! I: EAP(Response) ... R: EAP(Request) ...                          <- one message ID each
//! R: EAP(Success)
//! I: AUTH = prf(prf(MSK, "Key Pad for IKEv2"), InitiatorSignedOctets with the FIRST IDi)
//! R: AUTH (MSK), CP(CFG_REPLY), SAr2, TSi, TSr
//! ```
//!
//! The gateway keeps the first request (IDi body, SA, TS, CP, INITIAL_CONTACT) until the end,
//! when the CHILD_SA and the lease are made exactly as without EAP ([`IkeSa::finish_auth`]).
//! The SA stays half-open meanwhile, so the half-open timeout bounds the dialogue, and each
//! round is an ordinary request/response pair (response cache, retransmissions unchanged).
//! EAP bytes, NT-Responses and hashes are never logged: only the user name, escaped.

use std::net::SocketAddr;
use std::sync::Arc;

use ironsec_eap::mschapv2::ClientStep;
use ironsec_eap::Msk;

use super::eap_method::{ClientMethod, MethodStep, ServerMethod};
use super::proof::{self, Signed};
use super::{Ctx, IkeSa, Request};
use crate::config::{Identity, PeerConfig};
use crate::credentials::LocalAuth;
use crate::crypto::{psk_auth, verify_psk_auth};
use crate::events::{CloseReason, Event};
use crate::peer_text::PeerText;
use crate::sa::child::ChildOffer;
use crate::stats::EapFailure;
use crate::wire::{
    AuthMethod, AuthPayload, EapPayload, ExchangeType, NotifyType, Payload, Payloads,
};

/// The gateway's side of one client's EAP dialogue.
pub(crate) struct ServerSession {
    server: ServerMethod,
    peer_id: Identity,
    /// IDi' and IDr' bodies: the final AUTHs cover them.
    idi_body: Vec<u8>,
    idr_body: Vec<u8>,
    /// The first IKE_AUTH request's payloads: SAi2, TSi, TSr, CP, INITIAL_CONTACT.
    first: Vec<Payload>,
    /// After EAP-Success: the MSK and the user (users file name).
    done: Option<(Msk, String)>,
    /// The failure was reported (event and counter) when the Failure request went out.
    reported: bool,
    /// The user's failure limit was looked at (once its EAP identity came).
    user_checked: bool,
}

/// What the gateway keeps from a client's first IKE_AUTH request through the EAP dialogue,
/// whatever the method: the final AUTHs cover IDi' and IDr', and the CHILD_SA and lease come
/// from the first request's payloads (SAi2, TSi, TSr, CP, INITIAL_CONTACT).
pub(crate) struct EapOpening {
    pub peer_id: Identity,
    pub idi_body: Vec<u8>,
    pub idr_body: Vec<u8>,
    pub first: Vec<Payload>,
}

/// The client's side.
pub(crate) struct ClientSession {
    client: ClientMethod,
    user: String,
    idi_body: Vec<u8>,
    /// From the gateway's first response (its identity and signature checked).
    idr: Option<(Vec<u8>, Identity)>,
    /// After EAP-Success: our AUTH went out keyed by it.
    msk: Option<Msk>,
}

fn eap_payload(data: Vec<u8>) -> Payload {
    Payload::Eap(EapPayload { data })
}

impl IkeSa {
    /// Gateway, every EAP method: what the first IKE_AUTH response holds before the first EAP
    /// request (RFC 7296 2.16: IDr, [CERT], our signature AUTH), after the checks every EAP
    /// login passes first (a certificate of our own, the source's failure limit). Returns the
    /// IDr body (the final AUTH covers it) and those payloads; None once refused.
    pub(crate) fn eap_opening(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        from: SocketAddr,
        conn: &Arc<PeerConfig>,
        peer_id: &Identity,
    ) -> Option<(Vec<u8>, Vec<Payload>)> {
        let refuse = |sa: &mut IkeSa, ctx: &mut Ctx, detail: String| {
            sa.refuse_auth(ctx, id, from, Some(peer_id.clone()), detail);
            None
        };
        if !matches!(conn.local_auth, LocalAuth::Pubkey(_)) {
            let detail = format!(
                "connection '{}' authenticates clients with EAP but has no certificate of its \
                 own (local_auth must be pubkey with EAP)",
                conn.name
            );
            return refuse(self, ctx, detail);
        }
        if let Err(why) = ctx.auth.check_source(from.ip(), ctx.now) {
            ctx.stats.auth_rate_limited += 1;
            return refuse(self, ctx, format!("EAP login refused: {why}"));
        }
        let crypto = self.crypto.as_ref()?;
        let Some(idr) = conn.local_id.to_payload() else {
            let detail = format!("local identity '{}' cannot be sent", conn.local_id);
            return refuse(self, ctx, detail);
        };
        let ours = proof::prove(
            conn,
            &self.wishes,
            &Signed {
                prf: crypto.algs.prf,
                sk_p: &crypto.sk_pr,
                real_message: &self.init_messages.1,
                nonce: &self.nonces.0,
                id_body: &idr.body_bytes(),
            },
        );
        let (certs, auth) = match ours {
            Ok(p) => p,
            Err(detail) => return refuse(self, ctx, detail),
        };
        let idr_body = idr.body_bytes();
        let mut response = vec![Payload::IdR(idr)];
        response.extend(certs);
        response.push(auth);
        Some((idr_body, response))
    }

    /// Gateway, every EAP method: the client's EAP identity `user` is over its failure limit
    /// (`crate::authlimit`): EAP-Failure (answering EAP identifier `eap_id`) before any
    /// challenge or RADIUS request, told and counted, and the SA closed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refuse_limited_user(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        conn: &Arc<PeerConfig>,
        from: SocketAddr,
        peer: Option<Identity>,
        eap_id: u8,
        user: &[u8],
        why: crate::authlimit::Limited,
    ) {
        ctx.stats.auth_rate_limited += 1;
        let failure = ironsec_eap::codec::Packet::new(
            ironsec_eap::codec::Code::Failure,
            eap_id,
            ironsec_eap::codec::Body::Empty,
        )
        .encode();
        self.send_response(ctx, ExchangeType::IkeAuth, id, &[eap_payload(failure)]);
        ctx.events.push_back(Event::Failure {
            conn: Some(conn.name.clone()),
            remote: from,
            remote_id: peer,
            notify: NotifyType::AuthenticationFailed,
            detail: format!(
                "EAP login of user '{}' refused: {why}",
                PeerText::new(user).limit(64)
            ),
            legacy_refused: Vec::new(),
        });
        self.close(ctx, CloseReason::Refused(NotifyType::AuthenticationFailed));
    }

    /// Gateway: the client's first IKE_AUTH request had no AUTH and `conn` wants EAP. Answers
    /// with our identity, certificate and signature and EAP-Request/Identity.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_eap(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        payloads: &[Payload],
        from: SocketAddr,
        conn: Arc<PeerConfig>,
        peer_id: Identity,
        idi: &crate::wire::IdPayload,
    ) {
        self.conn = Some(conn.clone());
        if !conn.remote_auth.is_eap() {
            return;
        }
        let Some((idr_body, mut response)) = self.eap_opening(ctx, id, from, &conn, &peer_id)
        else {
            return;
        };
        let mut server = match ServerMethod::new(ctx, &conn) {
            Ok(s) => s,
            Err(detail) => {
                self.refuse_auth(ctx, id, from, Some(peer_id), detail);
                return;
            }
        };
        response.push(eap_payload(server.start()));
        self.candidates = None;
        self.learn_endpoint(from);
        self.send_response(ctx, ExchangeType::IkeAuth, id, &response);
        self.eap_server = Some(Box::new(ServerSession {
            server,
            peer_id,
            idi_body: idi.body_bytes(),
            idr_body,
            first: payloads.to_vec(),
            done: None,
            reported: false,
            user_checked: false,
        }));
    }

    /// Gateway: a later IKE_AUTH request of the dialogue: an EAP response, or after
    /// EAP-Success the client's AUTH.
    pub(crate) fn eap_request(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        payloads: &[Payload],
        from: SocketAddr,
    ) {
        let (Some(mut s), Some(conn)) = (self.eap_server.take(), self.conn.clone()) else {
            return;
        };
        let peer = Some(s.peer_id.clone());
        if let Some((msk, user)) = s.done.take() {
            self.eap_final_auth(ctx, id, payloads, from, &conn, *s, msk, user);
            return;
        }
        let Some(eap) = payloads.eap() else {
            let detail = "IKE_AUTH request during EAP without an EAP payload".to_string();
            self.refuse_auth(ctx, id, from, peer, detail);
            return;
        };
        let step = s.server.step(&conn, &eap.data);
        // The user's limit, as soon as its name is known and before any challenge: a
        // limited user gets EAP-Failure without a password check.
        if !s.user_checked {
            if let Some(user) = s
                .server
                .identity()
                .map(|u| String::from_utf8_lossy(u).into_owned())
            {
                s.user_checked = true;
                if let Err(why) = ctx.auth.check_user(&user, ctx.now) {
                    let eap_id = eap.data.get(1).copied().unwrap_or(0);
                    self.refuse_limited_user(
                        ctx,
                        id,
                        &conn,
                        from,
                        peer,
                        eap_id,
                        user.as_bytes(),
                        why,
                    );
                    return;
                }
            }
        }
        match step {
            MethodStep::Continue(next) => {
                self.send_response(ctx, ExchangeType::IkeAuth, id, &[eap_payload(next)]);
                // A wrong password is told now: the client may answer our Failure request by
                // abandoning the IKE SA, and the dialogue never reaches EAP-Failure.
                if let Some((detail, kind)) = s.server.refused().filter(|_| !s.reported) {
                    let user = eap_user(&s.server);
                    s.reported = true;
                    self.report_eap_failure(ctx, &conn, from, peer, detail, kind, user);
                }
                self.eap_server = Some(s);
            }
            MethodStep::Success { packet, msk, user } => {
                self.send_response(ctx, ExchangeType::IkeAuth, id, &[eap_payload(packet)]);
                s.done = Some((msk, user));
                self.eap_server = Some(s);
            }
            MethodStep::Failure {
                packet,
                detail,
                kind,
            } => {
                self.send_response(ctx, ExchangeType::IkeAuth, id, &[eap_payload(packet)]);
                if !s.reported {
                    let user = eap_user(&s.server);
                    self.report_eap_failure(ctx, &conn, from, peer, detail, kind, user);
                }
                self.close(ctx, CloseReason::Refused(NotifyType::AuthenticationFailed));
            }
        }
    }

    /// Counts and tells a failed EAP login (once per dialogue).
    #[allow(clippy::too_many_arguments)]
    fn report_eap_failure(
        &mut self,
        ctx: &mut Ctx,
        conn: &Arc<PeerConfig>,
        from: SocketAddr,
        peer: Option<Identity>,
        detail: String,
        kind: EapFailure,
        user: Option<String>,
    ) {
        ctx.stats.eap_failures += 1;
        ctx.stats.eap_failure_reasons.add(kind);
        if kind == (EapFailure::Protocol { malformed: true }) {
            ctx.stats.malformed += 1;
        }
        ctx.auth.failed(from.ip(), user.as_deref(), ctx.now);
        ctx.events.push_back(Event::Failure {
            conn: Some(conn.name.clone()),
            remote: from,
            remote_id: peer,
            notify: NotifyType::AuthenticationFailed,
            detail,
            legacy_refused: Vec::new(),
        });
    }

    /// Gateway: EAP succeeded; the client's AUTH must be the MSK-keyed MAC over its signed
    /// octets (with the first request's IDi). Then our AUTH, the lease and the CHILD_SA.
    #[allow(clippy::too_many_arguments)]
    fn eap_final_auth(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        payloads: &[Payload],
        from: SocketAddr,
        conn: &Arc<PeerConfig>,
        s: ServerSession,
        msk: Msk,
        user: String,
    ) {
        let shown = PeerText::new(user.as_bytes()).to_string();
        let source = format!("the {} MSK", s.server.name());
        let opening = EapOpening {
            peer_id: s.peer_id,
            idi_body: s.idi_body,
            idr_body: s.idr_body,
            first: s.first,
        };
        self.finish_eap(ctx, id, payloads, from, conn, opening, &msk, shown, &source);
    }

    /// Gateway, every EAP method, after EAP-Success: the client's AUTH must be the MSK-keyed
    /// MAC over its signed octets (RFC 7296 2.16, with the first request's IDi); then our own
    /// MSK-keyed AUTH, and `finish_auth` makes the lease (owned by `user`, escaped) and the
    /// CHILD_SA from the first request. `source` names the MSK's origin for the refusal.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_eap(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        payloads: &[Payload],
        from: SocketAddr,
        conn: &Arc<PeerConfig>,
        opening: EapOpening,
        msk: &Msk,
        user: String,
        source: &str,
    ) {
        let Some(crypto) = self.crypto.as_ref() else {
            return;
        };
        let prf = crypto.algs.prf;
        let ok = payloads.auth().is_some_and(|a| {
            a.method == AuthMethod::SharedKeyMic
                && verify_psk_auth(
                    prf,
                    msk.bytes(),
                    &self.init_messages.0,
                    &self.nonces.1,
                    &crypto.sk_pi,
                    &opening.idi_body,
                    &a.data,
                )
        });
        if !ok {
            let detail = format!(
                "AUTH of EAP user '{user}' does not verify with {source} (or is missing) after \
                 EAP-Success"
            );
            self.refuse_auth(ctx, id, from, Some(opening.peer_id), detail);
            return;
        }
        let ours = psk_auth(
            prf,
            msk.bytes(),
            &self.init_messages.1,
            &self.nonces.0,
            &crypto.sk_pr,
            &opening.idr_body,
        );
        self.eap_identity = Some(user.clone());
        let response = vec![Payload::Auth(AuthPayload {
            method: AuthMethod::SharedKeyMic,
            data: ours,
        })];
        self.finish_auth(
            ctx,
            id,
            conn,
            opening.peer_id,
            response,
            &opening.first,
            &user,
        );
    }

    /// Client: the first IKE_AUTH request, without AUTH (RFC 7296 §2.16). Returns false when
    /// the connection does not use EAP.
    pub(crate) fn start_eap_client(&mut self, ctx: &mut Ctx, idi_body: Vec<u8>) -> bool {
        let Some(conn) = self.conn.clone() else {
            return false;
        };
        let Some((client, user)) = ClientMethod::new(ctx, &conn) else {
            return false;
        };
        self.eap_client = Some(Box::new(ClientSession {
            client,
            user,
            idi_body,
            idr: None,
            msk: None,
        }));
        true
    }

    /// Client: an IKE_AUTH response while EAP runs.
    pub(crate) fn eap_auth_response(
        &mut self,
        ctx: &mut Ctx,
        payloads: &[Payload],
        child: ChildOffer,
    ) {
        let (Some(mut s), Some(conn)) = (self.eap_client.take(), self.conn.clone()) else {
            return;
        };
        let Some(crypto) = self.crypto.as_ref() else {
            return;
        };
        let prf = crypto.algs.prf;
        let refused = |payloads: &[Payload]| {
            payloads
                .error_notify()
                .map_or(NotifyType::AuthenticationFailed, |n| n.kind)
        };
        if s.idr.is_none() {
            // The gateway's identity and signature, checked as without EAP.
            let (Some(idr), Some(auth)) = (payloads.id_r(), payloads.auth()) else {
                let kind = refused(payloads);
                self.fail(ctx, kind, format!("peer refused IKE_AUTH with {kind:?}"));
                return;
            };
            let Some(peer_id) = self.check_responder(ctx, &conn, payloads, idr, auth) else {
                return;
            };
            s.idr = Some((idr.body_bytes(), peer_id));
        } else if let (Some(msk), Some((idr_body, peer_id))) = (&s.msk, &s.idr) {
            // The last response: the gateway's MSK-keyed AUTH, the CP reply and the CHILD_SA.
            let ok = payloads.auth().is_some_and(|a| {
                a.method == AuthMethod::SharedKeyMic
                    && verify_psk_auth(
                        prf,
                        msk.bytes(),
                        &self.init_messages.1,
                        &self.nonces.0,
                        &crypto.sk_pr,
                        idr_body,
                        &a.data,
                    )
            });
            if !ok {
                let kind = refused(payloads);
                let detail = if payloads.auth().is_none() {
                    format!("peer refused our EAP authentication's AUTH with {kind:?}")
                } else {
                    "the gateway's AUTH does not verify with the EAP MSK".to_string()
                };
                self.fail(ctx, kind, detail);
                return;
            }
            let peer_id = peer_id.clone();
            self.eap_identity = Some(PeerText::new(s.user.as_bytes()).to_string());
            self.up_as_initiator(ctx, &conn, peer_id, payloads, child);
            return;
        }
        let Some(eap) = payloads.eap() else {
            let kind = refused(payloads);
            self.fail(
                ctx,
                kind,
                "IKE_AUTH response during EAP without an EAP payload".into(),
            );
            return;
        };
        let user = PeerText::new(s.user.as_bytes()).to_string();
        let step = s.client.step(&eap.data);
        #[cfg(any(test, feature = "testkit"))]
        let step = test_misbehaviour(step, &eap.data);
        match step {
            Ok(ClientStep::Respond(next)) => {
                self.eap_client = Some(s);
                self.send_request(
                    ctx,
                    ExchangeType::IkeAuth,
                    &[eap_payload(next)],
                    Request::Auth { child },
                );
            }
            Ok(ClientStep::Success(msk)) => {
                let Some(crypto) = self.crypto.as_ref() else {
                    return;
                };
                let auth = psk_auth(
                    prf,
                    msk.bytes(),
                    &self.init_messages.0,
                    &self.nonces.1,
                    &crypto.sk_pi,
                    &s.idi_body,
                );
                s.msk = Some(msk);
                self.eap_client = Some(s);
                let auth = Payload::Auth(AuthPayload {
                    method: AuthMethod::SharedKeyMic,
                    data: auth,
                });
                self.send_request(ctx, ExchangeType::IkeAuth, &[auth], Request::Auth { child });
            }
            Ok(ClientStep::Failure) => self.fail(
                ctx,
                NotifyType::AuthenticationFailed,
                format!(
                    "the gateway refused {} authentication as '{user}' (EAP-Failure)",
                    s.client.name()
                ),
            ),
            Err(e) => self.fail(
                ctx,
                NotifyType::AuthenticationFailed,
                format!("{} as '{user}' failed: {e}", s.client.name()),
            ),
        }
    }
}

/// The testkit's misbehaving client ([`crate::testkit::eap_hooks`]).
#[cfg(any(test, feature = "testkit"))]
fn test_misbehaviour(
    step: Result<ClientStep, ironsec_eap::mschapv2::ClientError>,
    request: &[u8],
) -> Result<ClientStep, ironsec_eap::mschapv2::ClientError> {
    use crate::testkit::eap_hooks;
    use ironsec_eap::codec::{Body, Code, MsChapV2, Packet};
    match (step, Packet::parse(request)) {
        (Ok(ClientStep::Success(msk)), _) if eap_hooks::msk_corrupted() => {
            let mut b = msk.bytes().to_vec();
            b[0] ^= 1;
            Ok(ClientStep::Success(Msk::new(b)))
        }
        (Ok(ClientStep::Respond(_)), Ok(p))
            if matches!(p.body, Body::MsChapV2(MsChapV2::Challenge { .. }))
                && eap_hooks::nak().is_some() =>
        {
            let wanted = eap_hooks::nak().into_iter().collect();
            let nak = Packet::new(Code::Response, p.identifier, Body::Nak(wanted));
            Ok(ClientStep::Respond(nak.encode()))
        }
        (step, _) => step,
    }
}

/// The user a failed login counts against: its EAP identity, as the limiter keys it.
fn eap_user(server: &ServerMethod) -> Option<String> {
    server
        .identity()
        .map(|u| String::from_utf8_lossy(u).into_owned())
}
