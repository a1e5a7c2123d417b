//! EAP in IKE_AUTH relayed to a RADIUS server (RFC 3579 §2.1 pass-through), gateway side.
//!
//! ```text
//! I: IDi, [IDr], SAi2, TSi, TSr, CP           (no AUTH)
//! R: IDr, [CERT], AUTH, EAP(Request/Identity)  <- the gateway asks for the identity itself
//! I: EAP(Response/Identity)      -> Event::EapRadius { identity: Some(name) }
//!                                   ... the owner sends Access-Request, gets Access-Challenge
//! R: EAP(Request)                <- Endpoint::eap_radius_answer(Challenge)
//! I: EAP(Response)               -> Event::EapRadius { identity: None } ...
//! R: EAP(Success)                <- Accept { msk } (MS-MPPE keys, RFC 2548)
//! I: AUTH (MSK)   R: AUTH (MSK), CP(CFG_REPLY), SAr2, TSi, TSr
//! ```
//!
//! The engine does not block: the IKE_AUTH request whose EAP message went out waits, with its
//! message ID, for the answer; retransmissions of it meanwhile are dropped and counted
//! (`eap_radius_retransmits`), and once the answer has gone out the response cache answers
//! them. The half-open timeout bounds the whole dialogue. Apart from [`super::eap`] (where the
//! engine is the EAP server itself) so that methods land without reshaping each other; the
//! gateway's own proof and the final AUTH are the same computations.

use std::net::SocketAddr;
use std::sync::Arc;

use ironsec_eap::codec::{Body, Code, Packet};
use ironsec_eap::Msk;

use super::{Ctx, IkeSa};
use crate::config::{Identity, PeerConfig};
use crate::credentials::RemoteAuth;
use crate::events::{CloseReason, EapBytes, Event, RadiusAnswer};
use crate::peer_text::PeerText;
use crate::stats::EapFailure;
use crate::wire::{EapPayload, ExchangeType, NotifyType, Payload, Payloads};

/// The longest EAP identity taken: it becomes the RADIUS User-Name (RFC 2865 §5.1).
const MAX_IDENTITY: usize = 253;

/// The gateway's side of one client's EAP dialogue relayed to RADIUS.
pub(crate) struct RadiusSession {
    server: Arc<str>,
    peer_id: Identity,
    idi_body: Vec<u8>,
    idr_body: Vec<u8>,
    /// The first IKE_AUTH request's payloads: SAi2, TSi, TSr, CP, INITIAL_CONTACT.
    first: Vec<Payload>,
    /// Identifier of our EAP-Request/Identity.
    identity_request: u8,
    /// The client's EAP identity (raw), once it answered the Identity request.
    identity: Option<Vec<u8>>,
    /// Identifier of the client's last EAP response (an EAP-Failure we make carries it).
    last_response: u8,
    /// The IKE_AUTH request (message ID) whose EAP message waits for the server's answer.
    waiting: Option<u32>,
    /// After Access-Accept: the MSK.
    done: Option<Msk>,
}

fn eap_payload(data: Vec<u8>) -> Payload {
    Payload::Eap(EapPayload { data })
}

impl IkeSa {
    /// Whether request `id` is the one waiting for the RADIUS server's answer.
    pub(crate) fn eap_radius_waits_for(&self, id: u32) -> bool {
        self.eap_radius
            .as_ref()
            .is_some_and(|s| s.waiting == Some(id))
    }

    fn radius_user(&self) -> String {
        let raw = self
            .eap_radius
            .as_ref()
            .and_then(|s| s.identity.clone())
            .unwrap_or_default();
        PeerText::new(&raw).limit(64).to_string()
    }

    /// Gateway: the client's first IKE_AUTH request had no AUTH and `conn` relays EAP to a
    /// RADIUS server. Answers with our identity, certificate and signature and
    /// EAP-Request/Identity (RFC 3579 §2.1: the NAS may ask for the identity itself).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_eap_radius(
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
        let RemoteAuth::EapRadius { server } = &conn.remote_auth else {
            return;
        };
        let server = server.clone();
        let Some((idr_body, mut response)) = self.eap_opening(ctx, id, from, &conn, &peer_id)
        else {
            return;
        };
        let mut first_id = [0u8; 1];
        ctx.rng.fill(&mut first_id);
        let request = Packet::new(Code::Request, first_id[0], Body::Identity(Vec::new())).encode();
        self.candidates = None;
        self.learn_endpoint(from);
        response.push(eap_payload(request));
        self.send_response(ctx, ExchangeType::IkeAuth, id, &response);
        self.eap_radius = Some(Box::new(RadiusSession {
            server,
            peer_id,
            idi_body: idi.body_bytes(),
            idr_body,
            first: payloads.to_vec(),
            identity_request: first_id[0],
            identity: None,
            last_response: first_id[0],
            waiting: None,
            done: None,
        }));
    }

    /// Gateway: a later IKE_AUTH request of the dialogue: an EAP response to relay, or after
    /// the Access-Accept the client's AUTH.
    pub(crate) fn eap_radius_request(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        payloads: &[Payload],
        from: SocketAddr,
    ) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let Some(s) = self.eap_radius.as_mut() else {
            return;
        };
        let peer = Some(s.peer_id.clone());
        if s.waiting.is_some() {
            // Window of one: the client cannot send another request before our response.
            ctx.stats.eap_radius_retransmits += 1;
            return;
        }
        if let Some(msk) = s.done.take() {
            self.eap_radius_final_auth(ctx, id, payloads, from, &conn, msk);
            return;
        }
        let Some(eap) = payloads.eap() else {
            let detail = "IKE_AUTH request during EAP without an EAP payload".to_string();
            self.refuse_auth(ctx, id, from, peer, detail);
            return;
        };
        let data = eap.data.clone();
        match self.eap_radius_read(&data) {
            Ok(identity) => {
                let Some(s) = self.eap_radius.as_mut() else {
                    return;
                };
                if let Some(name) = &identity {
                    s.identity = identity.clone();
                    // The user's failure limit, before anything goes to the server.
                    let user = String::from_utf8_lossy(name).into_owned();
                    if let Err(why) = ctx.auth.check_user(&user, ctx.now) {
                        let peer_id = s.peer_id.clone();
                        self.eap_radius = None;
                        self.refuse_limited_user(
                            ctx,
                            id,
                            &conn,
                            from,
                            Some(peer_id),
                            data[1],
                            name,
                            why,
                        );
                        return;
                    }
                }
                s.last_response = data[1];
                s.waiting = Some(id);
                let server = s.server.clone();
                ctx.events.push_back(Event::EapRadius {
                    conn: conn.name.clone(),
                    ike: self.id,
                    server,
                    local: self.local,
                    remote: from,
                    identity,
                    eap: EapBytes(data),
                });
            }
            Err(detail) => {
                ctx.stats.malformed += 1;
                let kind = EapFailure::Protocol { malformed: false };
                self.eap_radius_fail(ctx, id, &conn, from, detail.into(), kind);
            }
        }
    }

    /// Checks a client's EAP response before it goes to the server: an EAP Response with the
    /// right length; the first one must be the Response/Identity to our request, whose name
    /// (non-empty, at most 253 bytes) is returned. The rest goes to the server as it is.
    fn eap_radius_read(&self, data: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
        let Some(s) = self.eap_radius.as_ref() else {
            return Err("no EAP dialogue");
        };
        if !(data.len() >= 5 && is_eap(data, Code::Response)) {
            return Err("malformed EAP response");
        }
        if s.identity.is_some() {
            return Ok(None);
        }
        match Packet::parse(data) {
            Ok(p) if p.identifier == s.identity_request => match p.body {
                Body::Identity(name) if !name.is_empty() && name.len() <= MAX_IDENTITY => {
                    Ok(Some(name))
                }
                _ => Err("EAP identity missing, empty or over 253 bytes"),
            },
            _ => Err("the first EAP response is not an EAP-Response/Identity to our request"),
        }
    }

    /// Gateway: the RADIUS server's answer for the waiting request.
    pub(crate) fn eap_radius_answer(&mut self, ctx: &mut Ctx, answer: RadiusAnswer) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let Some(s) = self.eap_radius.as_mut() else {
            return;
        };
        let Some(id) = s.waiting.take() else {
            return;
        };
        let from = self.respond_to.unwrap_or(self.remote);
        let server = s.server.clone();
        let user = self.radius_user();
        match answer {
            RadiusAnswer::Challenge(eap) if is_eap(&eap, Code::Request) => {
                self.send_response(ctx, ExchangeType::IkeAuth, id, &[eap_payload(eap)]);
            }
            RadiusAnswer::Accept { eap, msk } if is_eap(&eap, Code::Success) => {
                self.send_response(ctx, ExchangeType::IkeAuth, id, &[eap_payload(eap)]);
                if let Some(s) = self.eap_radius.as_mut() {
                    s.done = Some(msk);
                }
            }
            RadiusAnswer::Challenge(_) | RadiusAnswer::Accept { .. } => {
                ctx.stats.malformed += 1;
                let detail = format!(
                    "RADIUS server '{server}' answered EAP user '{user}' with an EAP message \
                     that does not fit (not a Request in a Challenge, not a Success in an Accept)"
                );
                let kind = EapFailure::Protocol { malformed: false };
                self.eap_radius_fail(ctx, id, &conn, from, detail, kind);
            }
            RadiusAnswer::Reject { eap, detail } => {
                let detail = format!(
                    "RADIUS server '{server}' rejected EAP user '{user}' (Access-Reject{})",
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {detail}")
                    }
                );
                let eap = eap.filter(|e| is_eap(e, Code::Failure));
                // A rejected login counts against its address and user (password guessing).
                let raw = self
                    .eap_radius
                    .as_ref()
                    .and_then(|s| s.identity.as_deref())
                    .map(|n| String::from_utf8_lossy(n).into_owned());
                ctx.auth.failed(from.ip(), raw.as_deref(), ctx.now);
                let kind = EapFailure::Rejected;
                self.eap_radius_fail_with(ctx, id, &conn, from, detail, eap, kind);
            }
            RadiusAnswer::Unreachable => {
                let detail = format!(
                    "radius server unreachable: '{server}' did not answer for EAP user '{user}'"
                );
                self.eap_radius_fail(ctx, id, &conn, from, detail, EapFailure::Unreachable);
            }
        }
    }

    fn eap_radius_fail(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        conn: &Arc<PeerConfig>,
        from: SocketAddr,
        detail: String,
        kind: EapFailure,
    ) {
        self.eap_radius_fail_with(ctx, id, conn, from, detail, None, kind);
    }

    /// EAP-Failure to the client, the failure told and counted, the SA closed.
    #[allow(clippy::too_many_arguments)]
    fn eap_radius_fail_with(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        conn: &Arc<PeerConfig>,
        from: SocketAddr,
        detail: String,
        eap: Option<Vec<u8>>,
        kind: EapFailure,
    ) {
        let Some(s) = self.eap_radius.take() else {
            return;
        };
        let failure = eap
            .unwrap_or_else(|| Packet::new(Code::Failure, s.last_response, Body::Empty).encode());
        self.send_response(ctx, ExchangeType::IkeAuth, id, &[eap_payload(failure)]);
        ctx.stats.eap_failures += 1;
        ctx.stats.eap_failure_reasons.add(kind);
        ctx.events.push_back(Event::Failure {
            conn: Some(conn.name.clone()),
            remote: from,
            remote_id: Some(s.peer_id.clone()),
            notify: NotifyType::AuthenticationFailed,
            detail,
            legacy_refused: Vec::new(),
        });
        self.close(ctx, CloseReason::Refused(NotifyType::AuthenticationFailed));
    }

    /// Gateway: the server accepted; the client's AUTH must be the MSK-keyed MAC over its
    /// signed octets (with the first request's IDi). Then our AUTH, the lease and the
    /// CHILD_SA, owned by the EAP identity.
    fn eap_radius_final_auth(
        &mut self,
        ctx: &mut Ctx,
        id: u32,
        payloads: &[Payload],
        from: SocketAddr,
        conn: &Arc<PeerConfig>,
        msk: Msk,
    ) {
        let user = self.radius_user();
        let Some(s) = self.eap_radius.take() else {
            return;
        };
        let source = format!("the MSK from RADIUS server '{}'", s.server);
        let opening = super::eap::EapOpening {
            peer_id: s.peer_id,
            idi_body: s.idi_body,
            idr_body: s.idr_body,
            first: s.first,
        };
        self.finish_eap(ctx, id, payloads, from, conn, opening, &msk, user, &source);
    }
}

/// An EAP packet of `code` whose length field is right.
fn is_eap(e: &[u8], code: Code) -> bool {
    e.len() >= 4 && e[0] == code as u8 && u16::from_be_bytes([e[2], e[3]]) as usize == e.len()
}
