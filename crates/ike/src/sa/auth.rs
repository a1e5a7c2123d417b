//! IKE_AUTH (RFC 7296 1.2, 2.15) and the first CHILD_SA. How each end proves itself (PSK or
//! certificate signature) is [`super::proof`]'s business.

use std::net::SocketAddr;

use super::proof::{self, Signed};
use super::{Ctx, IkeSa, Request, SaAction, State};
use crate::config::{Identity, VipRole};
use crate::events::{CloseReason, Event};
use crate::sa::child::ChildOffer;
use crate::wire::{ExchangeType, NotifyType, Payload, Payloads};

impl IkeSa {
    /// Initiator: IDi, [CERT], [CERTREQ], [IDr], AUTH, and the first CHILD_SA (SA, TSi, TSr).
    pub(crate) fn start_auth(&mut self, ctx: &mut Ctx) {
        let (Some(conn), Some(_)) = (self.conn.clone(), self.crypto.as_ref()) else {
            return;
        };
        let Some(idi) = conn.local_id.to_payload() else {
            self.fail(
                ctx,
                NotifyType::AuthenticationFailed,
                format!("local identity '{}' cannot be sent", conn.local_id),
            );
            return;
        };
        // An EAP client sends no AUTH now (RFC 7296 §2.16): it comes after EAP, keyed by the MSK.
        let proof = if self.start_eap_client(ctx, idi.body_bytes()) {
            None
        } else {
            let Some(crypto) = self.crypto.as_ref() else {
                return;
            };
            let proof = proof::prove(
                &conn,
                &self.wishes,
                &Signed {
                    prf: crypto.algs.prf,
                    sk_p: &crypto.sk_pi,
                    real_message: &self.init_messages.0,
                    nonce: &self.nonces.1,
                    id_body: &idi.body_bytes(),
                },
            );
            match proof {
                Ok(p) => Some(p),
                Err(detail) => {
                    self.fail(ctx, NotifyType::AuthenticationFailed, detail);
                    return;
                }
            }
        };
        let (certs, auth) = match proof {
            Some((certs, auth)) => (certs, Some(auth)),
            None => (Vec::new(), None),
        };
        // The first CHILD_SA uses the IKE SA's key exchange: no KE, so no DH transforms.
        let child = ChildOffer::new(
            ctx,
            &conn,
            conn.local_ts.clone(),
            conn.remote_ts.clone(),
            true,
        );
        let mut payloads = vec![Payload::IdI(idi)];
        // RFC 7296 §1.2: CERT, then CERTREQ, then IDr, then AUTH.
        payloads.extend(certs);
        if let Some(trust) = conn.remote_auth.trust() {
            payloads.push(proof::certreq(trust));
        }
        // A pattern (`%any`, `*.example.org`) says nothing the responder could pick by.
        if let Some(idr) = conn
            .remote_id
            .to_payload()
            .filter(|_| !conn.remote_id.is_pattern())
        {
            payloads.push(Payload::IdR(idr));
        }
        payloads.extend(auth);
        if self.replaces.is_none() && !self.siblings {
            payloads.push(Payload::notify(NotifyType::InitialContact, Vec::new()));
        }
        if let VipRole::Request(want) = conn.vip {
            payloads.push(super::vip::request(want));
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
        if self.eap_client.is_some() {
            self.eap_auth_response(ctx, payloads, child);
            return;
        }
        let Some(conn) = self.conn.clone().filter(|_| self.crypto.is_some()) else {
            return;
        };
        let (Some(idr), Some(auth)) = (payloads.id_r(), payloads.auth()) else {
            let kind = payloads
                .error_notify()
                .map_or(NotifyType::InvalidSyntax, |n| n.kind);
            let detail = if kind == NotifyType::AuthenticationFailed {
                format!(
                    "peer rejected our authentication as '{}' (wrong PSK, certificate or \
                     identity?)",
                    conn.local_id
                )
            } else {
                format!("peer refused IKE_AUTH with {kind:?}")
            };
            self.fail(ctx, kind, detail);
            return;
        };
        let Some(peer_id) = self.check_responder(ctx, &conn, payloads, idr, auth) else {
            return;
        };
        self.up_as_initiator(ctx, &conn, peer_id, payloads, child);
    }

    /// Initiator (with or without EAP): the responder's IDr must match our `remote_id` and its
    /// AUTH (and certificates) prove it; the proven identity, or None once the SA failed (after
    /// telling the peer AUTHENTICATION_FAILED).
    pub(crate) fn check_responder(
        &mut self,
        ctx: &mut Ctx,
        conn: &crate::config::PeerConfig,
        payloads: &[Payload],
        idr: &crate::wire::IdPayload,
        auth: &crate::wire::AuthPayload,
    ) -> Option<Identity> {
        let crypto = self.crypto.as_ref()?;
        let Some(peer_id) = Identity::from_payload(idr).filter(|id| conn.remote_id.matches(id))
        else {
            let seen = Identity::describe(idr);
            self.notify_authentication_failed(ctx);
            self.fail(
                ctx,
                NotifyType::AuthenticationFailed,
                format!(
                    "peer identity '{seen}' does not match remote_id '{}'",
                    conn.remote_id
                ),
            );
            return None;
        };
        let checked = proof::check(
            conn,
            ctx.unix,
            &Signed {
                prf: crypto.algs.prf,
                sk_p: &crypto.sk_pr,
                real_message: &self.init_messages.1,
                nonce: &self.nonces.0,
                id_body: &idr.body_bytes(),
            },
            &peer_id,
            auth,
            &payloads.certs(),
        );
        if let Err(detail) = checked {
            self.notify_authentication_failed(ctx);
            self.fail(ctx, NotifyType::AuthenticationFailed, detail);
            return None;
        }
        Some(peer_id)
    }

    /// Initiator: the peer proved itself; the IKE SA is up, with the virtual IP and the first
    /// CHILD_SA from the last IKE_AUTH response.
    pub(crate) fn up_as_initiator(
        &mut self,
        ctx: &mut Ctx,
        conn: &crate::config::PeerConfig,
        peer_id: Identity,
        payloads: &[Payload],
        child: ChildOffer,
    ) {
        let Some(algorithms) = self.crypto.as_ref().map(|c| c.algs) else {
            return;
        };
        self.established(ctx);
        self.peer_id = Some(peer_id.clone());
        ctx.events.push_back(Event::IkeSaUp {
            conn: conn.name.clone(),
            ike: self.id,
            local: self.local,
            remote: self.remote,
            remote_id: peer_id,
            algorithms,
            initiator: true,
            nat: self.nat,
        });
        self.read_vip(ctx, conn, payloads);
        let (ni, nr) = self.nonces.clone();
        self.complete_child(ctx, payloads, child, &ni, &nr, None);
    }

    /// Responder: refuses the IKE_AUTH request `id` with AUTHENTICATION_FAILED, logs why
    /// (`detail`) and ends the half-open SA.
    pub(crate) fn refuse_auth(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        from: SocketAddr,
        remote_id: Option<Identity>,
        detail: String,
    ) {
        self.send_response(
            ctx,
            ExchangeType::IkeAuth,
            id,
            &[Payload::notify(
                NotifyType::AuthenticationFailed,
                Vec::new(),
            )],
        );
        ctx.events.push_back(Event::Failure {
            conn: self
                .conn
                .as_ref()
                .or(self.candidates.as_ref().and_then(|c| c.first()))
                .map(|c| c.name.clone()),
            remote: from,
            remote_id,
            notify: NotifyType::AuthenticationFailed,
            detail,
            legacy_refused: Vec::new(),
        });
        self.close(ctx, CloseReason::Refused(NotifyType::AuthenticationFailed));
    }

    /// Responder: IKE_AUTH request. Picks the connection by the peer's identity (and the IDr it
    /// asked for), checks its proof, answers with ours and the first CHILD_SA. A request
    /// without AUTH from a peer of an EAP connection starts EAP instead ([`super::eap`]); the
    /// later requests of that dialogue go there too.
    pub(crate) fn auth_request(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        payloads: &[Payload],
        from: SocketAddr,
    ) {
        if self.eap_server.is_some() {
            self.eap_request(ctx, id, payloads, from);
            return;
        }
        if self.eap_radius.is_some() {
            self.eap_radius_request(ctx, id, payloads, from);
            return;
        }
        let Some(crypto) = self.crypto.as_ref() else {
            return;
        };
        let prf = crypto.algs.prf;
        let (sk_pi, sk_pr) = (crypto.sk_pi.clone(), crypto.sk_pr.clone());
        let idi = payloads.id_i();
        let idr = payloads.id_r().and_then(Identity::from_payload);
        let peer_id = idi.and_then(Identity::from_payload);
        let auth = payloads.auth();
        let Some(idi) = idi else {
            self.refuse_auth(
                ctx,
                id,
                from,
                peer_id,
                "IKE_AUTH without IDi or AUTH".into(),
            );
            return;
        };
        // The most specific match; among equals, the first configured. A request without
        // AUTH asks for EAP (RFC 7296 §2.16): only EAP connections take it, and only those
        // take no AUTH.
        // (An index lookup: [`crate::index::Candidates::by_identity`].)
        let conn = peer_id.as_ref().and_then(|pid| {
            self.candidates.as_ref()?.by_identity(pid, |c| {
                idr.as_ref().is_none_or(|r| *r == c.local_id)
                    && c.remote_auth.is_eap() == auth.is_none()
            })
        });
        let (Some(conn), Some(peer_id_v)) = (conn, peer_id.clone()) else {
            if auth.is_none() && !self.candidates.as_ref().is_some_and(|c| c.any_eap()) {
                self.refuse_auth(
                    ctx,
                    id,
                    from,
                    peer_id,
                    "IKE_AUTH without IDi or AUTH".into(),
                );
                return;
            }
            let who = Identity::describe(idi);
            let configured = crate::index::listed(
                self.candidates.iter().flat_map(|c| c.iter()),
                |c| format!("'{}'", c.remote_id),
                ", ",
            );
            let wants = if auth.is_none() { " with EAP" } else { "" };
            self.refuse_auth(
                ctx,
                id,
                from,
                peer_id,
                format!(
                    "no connection for peer identity '{who}'{wants}: it does not match any \
                     remote_id for this address ({configured})",
                ),
            );
            return;
        };
        self.wishes.read_certreqs(payloads);
        let Some(auth) = auth else {
            if matches!(conn.remote_auth, crate::RemoteAuth::EapRadius { .. }) {
                self.start_eap_radius(ctx, id, payloads, from, conn, peer_id_v, idi);
                return;
            }
            self.start_eap(ctx, id, payloads, from, conn, peer_id_v, idi);
            return;
        };
        let checked = proof::check(
            &conn,
            ctx.unix,
            &Signed {
                prf,
                sk_p: &sk_pi,
                real_message: &self.init_messages.0,
                nonce: &self.nonces.1,
                id_body: &idi.body_bytes(),
            },
            &peer_id_v,
            auth,
            &payloads.certs(),
        );
        if let Err(detail) = checked {
            self.conn = Some(conn.clone());
            self.refuse_auth(ctx, id, from, peer_id, detail);
            return;
        }
        let Some(idr_p) = conn.local_id.to_payload() else {
            self.conn = Some(conn.clone());
            let detail = format!("local identity '{}' cannot be sent", conn.local_id);
            self.refuse_auth(ctx, id, from, peer_id, detail);
            return;
        };
        let ours = proof::prove(
            &conn,
            &self.wishes,
            &Signed {
                prf,
                sk_p: &sk_pr,
                real_message: &self.init_messages.1,
                nonce: &self.nonces.0,
                id_body: &idr_p.body_bytes(),
            },
        );
        let (certs, auth) = match ours {
            Ok(p) => p,
            Err(detail) => {
                self.conn = Some(conn.clone());
                self.refuse_auth(ctx, id, from, peer_id, detail);
                return;
            }
        };
        self.conn = Some(conn.clone());
        self.candidates = None;
        self.learn_endpoint(from);
        // RFC 7296 §1.2: IDr, [CERT], AUTH, then the CHILD_SA.
        let mut response = vec![Payload::IdR(idr_p)];
        response.extend(certs);
        response.push(auth);
        let owner = peer_id_v.to_string();
        self.finish_auth(ctx, id, &conn, peer_id_v, response, payloads, &owner);
    }

    /// Responder, the peer authenticated: the last IKE_AUTH response (`response` holds what
    /// proves us) with the CFG_REPLY and the first CHILD_SA asked for in `request` (the first
    /// IKE_AUTH request, which for EAP came several rounds earlier). The client's address is
    /// leased to `owner`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_auth(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        conn: &std::sync::Arc<crate::config::PeerConfig>,
        peer_id: Identity,
        mut response: Vec<Payload>,
        request: &[Payload],
        owner: &str,
    ) {
        let Some(algorithms) = self.crypto.as_ref().map(|c| c.algs) else {
            return;
        };
        // RFC 7296 §3.15.4: no address for a client that asked for one, no CHILD_SA; the IKE
        // SA stands (the client may ask again or give up).
        let vip = self.assign_vip(ctx, conn, request, owner);
        if let Ok(Some(cp)) = &vip {
            response.push(cp.clone());
        }
        let (ni, nr) = self.nonces.clone();
        let child = match vip {
            Ok(_) => self.accept_child(ctx, request, &ni, &nr, true),
            Err(detail) => Err((NotifyType::InternalAddressFailure, Vec::new(), detail)),
        };
        match &child {
            Ok((p, _)) => response.extend(p.iter().cloned()),
            Err((kind, data, _)) => response.push(Payload::notify(*kind, data.clone())),
        }
        self.send_response(ctx, ExchangeType::IkeAuth, id, &response);
        self.established(ctx);
        self.peer_id = Some(peer_id.clone());
        ctx.events.push_back(Event::IkeSaUp {
            conn: conn.name.clone(),
            ike: self.id,
            local: self.local,
            remote: self.remote,
            remote_id: peer_id.clone(),
            algorithms,
            initiator: false,
            nat: self.nat,
        });
        match child {
            Ok((_, info)) => self.child_up(ctx, info, None, false),
            Err((kind, _, detail)) => ctx.events.push_back(Event::Failure {
                conn: Some(conn.name.clone()),
                remote: self.remote,
                remote_id: Some(peer_id),
                notify: kind,
                detail,
                legacy_refused: Vec::new(),
            }),
        }
        let initial_contact = request.notify(NotifyType::InitialContact).is_some();
        if initial_contact {
            ctx.stats.initial_contacts += 1;
        }
        ctx.actions.push_back(SaAction::Unique {
            ike: self.id,
            initial_contact,
        });
        debug_assert!(self.state == State::Established);
    }

    /// The responder learns the NAT-T addresses from the first authenticated message.
    pub(crate) fn learn_endpoint(&mut self, from: SocketAddr) {
        if self.natt {
            self.remote = from;
        }
    }
}
