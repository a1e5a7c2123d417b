//! The EAP methods the gateway and the client speak inside IKE_AUTH ([`super::eap`]):
//! EAP-MSCHAPv2 and EAP-TLS from `ironsec_eap`, behind one interface so that the IKE side of
//! the dialogue (response cache, half-open bound, final MSK-keyed AUTHs) is the same.

use ironsec_eap::codec::{Body, Code, Packet};
use ironsec_eap::mschapv2::{self, ClientError, ClientStep};
use ironsec_eap::{tls, Msk};

use super::Ctx;
use crate::config::{Identity, PeerConfig};
use crate::credentials::{LocalAuth, RemoteAuth};
use crate::peer_text::PeerText;
use crate::stats::EapFailure;

/// The gateway's side of one dialogue.
pub(crate) enum ServerMethod {
    MsChapV2(mschapv2::Server),
    Tls(Box<tls::Server>),
}

/// What the method says next, reasons already worded for a log line.
pub(crate) enum MethodStep {
    Continue(Vec<u8>),
    Success {
        packet: Vec<u8>,
        msk: Msk,
        user: String,
    },
    Failure {
        packet: Vec<u8>,
        detail: String,
        kind: EapFailure,
    },
}

impl ServerMethod {
    /// The method `conn` asks of its clients, its first request drawn from `ctx.rng`.
    pub(crate) fn new(ctx: &mut Ctx, conn: &PeerConfig) -> Result<ServerMethod, String> {
        let mut first_id = [0u8; 1];
        ctx.rng.fill(&mut first_id);
        match &conn.remote_auth {
            RemoteAuth::EapMschapv2(users) => {
                let mut challenge = [0u8; 16];
                ctx.rng.fill(&mut challenge);
                Ok(ServerMethod::MsChapV2(mschapv2::Server::new(
                    users.clone(),
                    challenge,
                    first_id[0],
                )))
            }
            RemoteAuth::EapTls(trust) => {
                let Some(now) = ctx.unix else {
                    return Err(
                        "no wall-clock time to check EAP-TLS client certificates against".into(),
                    );
                };
                let Some(cred) = conn.local_auth.credentials().map(|c| c.first().clone()) else {
                    return Err(format!(
                        "connection '{}' has no certificate of its own for EAP-TLS",
                        conn.name
                    ));
                };
                let setup = tls::ServerSetup {
                    trust: trust.store.clone(),
                    chain: cred.chain.clone(),
                    key: cred,
                };
                tls::Server::new(&setup, now, first_id[0])
                    .map(|s| ServerMethod::Tls(Box::new(s)))
                    .map_err(|e| format!("EAP-TLS cannot start: {e}"))
            }
            _ => Err(format!("connection '{}' does not use EAP", conn.name)),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            ServerMethod::MsChapV2(_) => "EAP-MSCHAPv2",
            ServerMethod::Tls(_) => "EAP-TLS",
        }
    }

    /// The first request (EAP-Request/Identity).
    pub(crate) fn start(&mut self) -> Vec<u8> {
        match self {
            ServerMethod::MsChapV2(s) => s.start(),
            ServerMethod::Tls(s) => s.start(),
        }
    }

    /// The client's next response. With EAP-TLS, the identity the certificate proved must
    /// also match the connection's `remote_id` (it chose the connection by its IDi alone).
    pub(crate) fn step(&mut self, conn: &PeerConfig, response: &[u8]) -> MethodStep {
        match self {
            ServerMethod::MsChapV2(s) => match s.step(response) {
                mschapv2::ServerStep::Continue(p) => MethodStep::Continue(p),
                mschapv2::ServerStep::Success { packet, msk, user } => {
                    MethodStep::Success { packet, msk, user }
                }
                mschapv2::ServerStep::Failure { packet, reason } => MethodStep::Failure {
                    packet,
                    kind: mschapv2_failure_kind(&reason),
                    detail: mschapv2_failure_detail(s, &reason),
                },
            },
            ServerMethod::Tls(s) => match s.step(response) {
                tls::ServerStep::Continue(p) => MethodStep::Continue(p),
                tls::ServerStep::Success { packet, msk, user } => {
                    if conn.remote_id.matches(&Identity::parse(&user)) {
                        return MethodStep::Success { packet, msk, user };
                    }
                    let id = packet.get(1).copied().unwrap_or_default();
                    MethodStep::Failure {
                        packet: Packet::new(Code::Failure, id, Body::Empty).encode(),
                        kind: EapFailure::Identity,
                        detail: format!(
                            "EAP-TLS authentication failed for '{}': the certificate's \
                             identity does not match remote_id '{}'",
                            PeerText::new(user.as_bytes()).limit(64),
                            conn.remote_id
                        ),
                    }
                }
                tls::ServerStep::Failure { packet, reason } => MethodStep::Failure {
                    packet,
                    kind: tls_failure_kind(&reason),
                    detail: tls_failure_detail(s, &reason),
                },
            },
        }
    }

    /// The EAP identity the client gave (raw peer bytes: escape before showing), once it came.
    pub(crate) fn identity(&self) -> Option<&[u8]> {
        match self {
            ServerMethod::MsChapV2(s) => s.identity(),
            ServerMethod::Tls(s) => s.identity(),
        }
    }

    /// EAP-MSCHAPv2: the client's answer did not verify and the Failure request is out (see
    /// [`mschapv2::Server::refused`]): the detail and why.
    pub(crate) fn refused(&self) -> Option<(String, EapFailure)> {
        match self {
            ServerMethod::MsChapV2(s) => s
                .refused()
                .map(|r| (mschapv2_failure_detail(s, r), mschapv2_failure_kind(r))),
            ServerMethod::Tls(_) => None,
        }
    }
}

/// What a failed EAP-MSCHAPv2 login says: the user name as the client gave it (escaped and
/// cut short) and why, never anything derived from the password.
fn mschapv2_failure_detail(server: &mschapv2::Server, reason: &mschapv2::FailReason) -> String {
    let user = server.peer_name().unwrap_or_default();
    format!(
        "EAP-MSCHAPv2 authentication failed for user '{}': {reason}",
        PeerText::new(user).limit(64)
    )
}

/// What a failed EAP-TLS login says: the EAP identity and the certificate's subject as the
/// client gave them (escaped) and why; never TLS bytes or keys.
fn tls_failure_detail(server: &tls::Server, reason: &tls::FailReason) -> String {
    let user = server.identity().unwrap_or_default();
    let subject = server
        .peer_subject()
        .map(|s| {
            format!(
                " (certificate '{}')",
                PeerText::new(s.as_bytes()).limit(200)
            )
        })
        .unwrap_or_default();
    let reason = reason.to_string();
    format!(
        "EAP-TLS authentication failed for '{}'{subject}: {}",
        PeerText::new(user).limit(64),
        PeerText::new(reason.as_bytes()).limit(400)
    )
}

/// The client's side.
pub(crate) enum ClientMethod {
    MsChapV2(mschapv2::Client),
    Tls(Box<tls::Client>),
}

impl ClientMethod {
    /// The method of our `local_auth`, with the name we go by; None when it is not EAP (or
    /// EAP-TLS cannot start: no clock).
    pub(crate) fn new(ctx: &mut Ctx, conn: &PeerConfig) -> Option<(ClientMethod, String)> {
        match &conn.local_auth {
            LocalAuth::EapMschapv2 { user, hash } => {
                let mut peer_challenge = [0u8; 16];
                ctx.rng.fill(&mut peer_challenge);
                let c = mschapv2::Client::new(user, hash.clone(), peer_challenge);
                Some((ClientMethod::MsChapV2(c), user.clone()))
            }
            LocalAuth::EapTls { identity, cred } => {
                let now = ctx.unix?;
                let store = conn
                    .remote_auth
                    .trust()
                    .map(|t| t.store.clone())
                    .unwrap_or_default();
                let key: tls::KeyRef = cred.clone();
                let c = tls::Client::new(identity, &cred.chain, key, store, now).ok()?;
                Some((ClientMethod::Tls(Box::new(c)), identity.clone()))
            }
            _ => None,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            ClientMethod::MsChapV2(_) => "EAP-MSCHAPv2",
            ClientMethod::Tls(_) => "EAP-TLS",
        }
    }

    pub(crate) fn step(&mut self, request: &[u8]) -> Result<ClientStep, ClientError> {
        match self {
            ClientMethod::MsChapV2(c) => c.step(request),
            ClientMethod::Tls(c) => c.step(request),
        }
    }
}

fn mschapv2_failure_kind(r: &mschapv2::FailReason) -> EapFailure {
    match r {
        mschapv2::FailReason::Nak { .. } => EapFailure::RefusedMethod,
        mschapv2::FailReason::UnknownUser => EapFailure::UnknownUser,
        mschapv2::FailReason::WrongPassword => EapFailure::WrongPassword,
        mschapv2::FailReason::Malformed(_) => EapFailure::Protocol { malformed: true },
        mschapv2::FailReason::Unexpected(_) => EapFailure::Protocol { malformed: false },
    }
}

fn tls_failure_kind(r: &tls::FailReason) -> EapFailure {
    match r {
        tls::FailReason::Nak { .. } => EapFailure::RefusedMethod,
        tls::FailReason::Malformed(_) => EapFailure::Protocol { malformed: true },
        tls::FailReason::Certificate(_) => EapFailure::Certificate,
        tls::FailReason::IdentityMismatch => EapFailure::Identity,
        tls::FailReason::Unexpected(_)
        | tls::FailReason::Tls(_)
        | tls::FailReason::TooLarge
        | tls::FailReason::TooManyRounds => EapFailure::Protocol { malformed: false },
    }
}
