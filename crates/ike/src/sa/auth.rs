//! IKE_AUTH with PSK (RFC 7296 1.2, 2.15) and the first CHILD_SA.

use std::net::SocketAddr;

use super::{Ctx, IkeSa, Request, SaAction, State};
use crate::config::Identity;
use crate::crypto::{psk_auth, verify_psk_auth};
use crate::events::{CloseReason, Event};
use crate::sa::child::ChildOffer;
use crate::wire::{AuthMethod, AuthPayload, ExchangeType, NotifyType, Payload, Payloads};

impl IkeSa {
    /// Initiator: IDi, IDr, AUTH, and the first CHILD_SA (SA, TSi, TSr).
    pub(crate) fn start_auth(&mut self, ctx: &mut Ctx) {
        let (Some(conn), Some(crypto)) = (self.conn.clone(), self.crypto.as_ref()) else {
            return;
        };
        let idi = conn.local_id.to_payload();
        let auth = psk_auth(
            crypto.algs.prf,
            conn.psk.bytes(),
            &self.init_messages.0,
            &self.nonces.1,
            &crypto.sk_pi,
            &idi.body_bytes(),
        );
        // The first CHILD_SA uses the IKE SA's key exchange: no KE, so no DH transforms.
        let child = ChildOffer::new(
            ctx,
            &conn,
            conn.local_ts.clone(),
            conn.remote_ts.clone(),
            true,
        );
        let mut payloads = vec![
            Payload::IdI(idi),
            Payload::IdR(conn.remote_id.to_payload()),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SharedKeyMic,
                data: auth,
            }),
        ];
        if self.replaces.is_none() && !self.siblings {
            payloads.push(Payload::notify(NotifyType::InitialContact, Vec::new()));
        }
        payloads.extend(child.payloads(&conn, None));
        self.send_request(
            ctx,
            ExchangeType::IkeAuth,
            &payloads,
            Request::Auth { child },
        );
    }

    /// Initiator: the IKE_AUTH response.
    pub(crate) fn auth_response(&mut self, ctx: &mut Ctx, payloads: &[Payload], child: ChildOffer) {
        let (Some(conn), Some(crypto)) = (self.conn.clone(), self.crypto.as_ref()) else {
            return;
        };
        let (Some(idr), Some(auth)) = (payloads.id_r(), payloads.auth()) else {
            let kind = payloads
                .error_notify()
                .map_or(NotifyType::InvalidSyntax, |n| n.kind);
            let detail = if kind == NotifyType::AuthenticationFailed {
                format!(
                    "peer rejected our authentication as '{}' (wrong PSK or identity?)",
                    conn.local_id
                )
            } else {
                format!("peer refused IKE_AUTH with {kind:?}")
            };
            self.fail(ctx, kind, detail);
            return;
        };
        if Identity::from_payload(idr).as_ref() != Some(&conn.remote_id) {
            let seen = Identity::describe(idr);
            self.fail(
                ctx,
                NotifyType::AuthenticationFailed,
                format!("peer identified as '{seen}', expected '{}'", conn.remote_id),
            );
            return;
        }
        let ok = auth.method == AuthMethod::SharedKeyMic
            && verify_psk_auth(
                crypto.algs.prf,
                conn.psk.bytes(),
                &self.init_messages.1,
                &self.nonces.0,
                &crypto.sk_pr,
                &idr.body_bytes(),
                &auth.data,
            );
        if !ok {
            self.fail(
                ctx,
                NotifyType::AuthenticationFailed,
                format!(
                    "AUTH from '{}' does not verify (wrong PSK?)",
                    conn.remote_id
                ),
            );
            return;
        }
        let algorithms = crypto.algs;
        self.established(ctx);
        ctx.events.push_back(Event::IkeSaUp {
            conn: conn.name.clone(),
            ike: self.id,
            local: self.local,
            remote: self.remote,
            remote_id: conn.remote_id.clone(),
            algorithms,
            initiator: true,
            nat: self.nat,
        });
        let (ni, nr) = self.nonces.clone();
        self.complete_child(ctx, payloads, child, &ni, &nr, None);
    }

    /// Responder: IKE_AUTH request. Picks the connection by the peer's identity, checks AUTH,
    /// answers with ours and the first CHILD_SA.
    pub(crate) fn auth_request(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        payloads: &[Payload],
        from: SocketAddr,
    ) {
        let Some(crypto) = self.crypto.as_ref() else {
            return;
        };
        let (prf, algorithms) = (crypto.algs.prf, crypto.algs);
        let (sk_pi, sk_pr) = (crypto.sk_pi.clone(), crypto.sk_pr.clone());
        let idi = payloads.id_i();
        let idr = payloads.id_r().and_then(Identity::from_payload);
        let peer_id = idi.and_then(Identity::from_payload);
        let reject = |sa: &mut IkeSa, ctx: &mut Ctx, detail: String| {
            sa.send_response(
                ctx,
                ExchangeType::IkeAuth,
                id,
                &[Payload::notify(
                    NotifyType::AuthenticationFailed,
                    Vec::new(),
                )],
            );
            ctx.events.push_back(Event::Failure {
                conn: sa.candidates.first().map(|c| c.name.clone()),
                remote: from,
                remote_id: peer_id.clone(),
                notify: NotifyType::AuthenticationFailed,
                detail,
                legacy_refused: Vec::new(),
            });
            sa.close(ctx, CloseReason::Refused(NotifyType::AuthenticationFailed));
        };
        let (Some(idi), Some(auth)) = (idi, payloads.auth()) else {
            reject(self, ctx, "IKE_AUTH without IDi or AUTH".into());
            return;
        };
        let conn = self
            .candidates
            .iter()
            .find(|c| {
                Some(&c.remote_id) == peer_id.as_ref()
                    && idr.as_ref().is_none_or(|r| *r == c.local_id)
            })
            .cloned();
        let Some(conn) = conn else {
            let who = Identity::describe(idi);
            reject(
                self,
                ctx,
                format!("no connection for peer identity '{who}'"),
            );
            return;
        };
        let ok = auth.method == AuthMethod::SharedKeyMic
            && verify_psk_auth(
                prf,
                conn.psk.bytes(),
                &self.init_messages.0,
                &self.nonces.1,
                &sk_pi,
                &idi.body_bytes(),
                &auth.data,
            );
        if !ok {
            self.conn = Some(conn.clone());
            reject(
                self,
                ctx,
                format!(
                    "AUTH from '{}' does not verify (wrong PSK?)",
                    conn.remote_id
                ),
            );
            return;
        }
        self.conn = Some(conn.clone());
        self.candidates.clear();
        self.learn_endpoint(from);
        let idr_p = conn.local_id.to_payload();
        let our_auth = psk_auth(
            prf,
            conn.psk.bytes(),
            &self.init_messages.1,
            &self.nonces.0,
            &sk_pr,
            &idr_p.body_bytes(),
        );
        let mut response = vec![
            Payload::IdR(idr_p),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SharedKeyMic,
                data: our_auth,
            }),
        ];
        let (ni, nr) = self.nonces.clone();
        let child = self.accept_child(ctx, payloads, &ni, &nr, true);
        match &child {
            Ok((p, _)) => response.extend(p.iter().cloned()),
            Err((kind, data, _)) => response.push(Payload::notify(*kind, data.clone())),
        }
        self.send_response(ctx, ExchangeType::IkeAuth, id, &response);
        self.established(ctx);
        ctx.events.push_back(Event::IkeSaUp {
            conn: conn.name.clone(),
            ike: self.id,
            local: self.local,
            remote: self.remote,
            remote_id: conn.remote_id.clone(),
            algorithms,
            initiator: false,
            nat: self.nat,
        });
        match child {
            Ok((_, info)) => self.child_up(ctx, info, None, false),
            Err((kind, _, detail)) => ctx.events.push_back(Event::Failure {
                conn: Some(conn.name.clone()),
                remote: self.remote,
                remote_id: Some(conn.remote_id.clone()),
                notify: kind,
                detail,
                legacy_refused: Vec::new(),
            }),
        }
        if payloads.notify(NotifyType::InitialContact).is_some() {
            ctx.stats.initial_contacts += 1;
            ctx.actions
                .push_back(SaAction::InitialContact { ike: self.id });
        }
        debug_assert!(self.state == State::Established);
    }

    /// The responder learns the NAT-T addresses from the first authenticated message.
    fn learn_endpoint(&mut self, from: SocketAddr) {
        if self.natt {
            self.remote = from;
        }
    }
}
