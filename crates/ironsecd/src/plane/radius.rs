//! EAP via RADIUS (`remote_auth = "eap-radius"`, RFC 3579): the plane's bookkeeping between
//! the engine's [`Event::EapRadius`] and the daemon's RADIUS socket, sans-IO. One
//! [`radius::Client`] per connection (its server), created on first use from the connection's
//! config and replaced when a reload changes it; datagrams to send wait in an outbox the daemon
//! empties ([`Plane::poll_radius`]), answers come in by [`Plane::on_radius_datagram`], the
//! retransmission timers run with the plane's. Logs name the server address and the (escaped)
//! user, never the secret, an EAP message or a key.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ironsec_ike::crypto::{Rng, SystemRng};
use ironsec_ike::eap::radius::{self, Answer, ClientConfig};
use ironsec_ike::{IkeSaId, PeerText, RadiusAnswer};

use super::Plane;
use crate::config::pki::RemoteAuthConfig;
use crate::config::radius::RadiusConfig;
use crate::config::Keying;

/// The RADIUS side of the plane.
pub(super) struct Relay {
    servers: HashMap<Arc<str>, Server>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    rng: SystemRng,
}

impl Default for Relay {
    fn default() -> Relay {
        Relay {
            servers: HashMap::new(),
            outbox: VecDeque::new(),
            rng: SystemRng::new(),
        }
    }
}

struct Server {
    cfg: RadiusConfig,
    client: radius::Client,
}

/// What a connection's RADIUS client counted (no secret, no user names).
#[derive(Clone, Copy, Debug, Default)]
pub struct RadiusStats {
    pub server: Option<SocketAddr>,
    pub counts: radius::Stats,
}

impl Relay {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.servers
            .values()
            .filter_map(|s| s.client.poll_timeout())
            .min()
    }

    pub(super) fn forget(&mut self, ike: IkeSaId) {
        for s in self.servers.values_mut() {
            s.client.forget(ike);
        }
    }
}

impl Plane {
    fn radius_config(&self, conn: &str) -> Option<RadiusConfig> {
        let c = self.connection(conn)?;
        let Keying::Ike(k) = &c.keying else {
            return None;
        };
        match &k.auth.remote {
            RemoteAuthConfig::EapRadius(r) => Some(r.clone()),
            _ => None,
        }
    }

    /// The engine's EAP message of client `ike` for connection `conn`'s server.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_eap_radius(
        &mut self,
        now: Instant,
        conn: &str,
        ike: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        identity: Option<Vec<u8>>,
        eap: &[u8],
    ) {
        let Some(cfg) = self.radius_config(conn) else {
            let _ = self
                .ep
                .eap_radius_answer(now, ike, RadiusAnswer::Unreachable);
            return;
        };
        let relay = &mut self.radius;
        let server = relay
            .servers
            .entry(Arc::from(conn))
            .or_insert_with(|| Server {
                client: client_of(&cfg),
                cfg: cfg.clone(),
            });
        if server.cfg != cfg {
            // A reload changed the server: conversations in flight go on with the old one.
            if server.client.in_flight() == 0 {
                *server = Server {
                    client: client_of(&cfg),
                    cfg: cfg.clone(),
                };
            }
        }
        if let Some(user) = &identity {
            tracing::info!(
                connection = %conn,
                %remote,
                user = %PeerText::new(user).limit(64),
                radius_server = %server.cfg.server,
                "EAP client: relaying to the RADIUS server"
            );
            server
                .client
                .start(ike, user, local.to_string(), remote.to_string());
        }
        let mut authenticator = [0u8; 16];
        relay.rng.fill(&mut authenticator);
        match server.client.send(now, ike, eap, authenticator) {
            Ok(bytes) => relay.outbox.push_back((server.cfg.server, bytes)),
            Err(e) => {
                tracing::warn!(connection = %conn, %remote, error = %e, "cannot relay an EAP message to the RADIUS server");
                let _ = self.ep.eap_radius_answer(
                    now,
                    ike,
                    RadiusAnswer::Reject {
                        eap: None,
                        detail: e.to_string(),
                    },
                );
            }
        }
    }

    /// The next RADIUS datagram to send and where to.
    pub fn poll_radius(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.radius.outbox.pop_front()
    }

    /// A datagram on the RADIUS socket: an answer of one of our servers, or dropped.
    pub fn on_radius_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.saw(now);
        let Some((conn, server)) = self
            .radius
            .servers
            .iter_mut()
            .find(|(_, s)| s.cfg.server == from)
        else {
            tracing::debug!(%from, "RADIUS datagram from no server of ours: dropped");
            return;
        };
        let conn = conn.clone();
        let (ike, answer) = match server.client.receive(data) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(connection = %conn, %from, reason = %e, "RADIUS answer dropped");
                return;
            }
        };
        let answer = match answer {
            Answer::Challenge { eap, .. } => RadiusAnswer::Challenge(eap),
            Answer::Accept {
                eap,
                msk: Some(msk),
            } => RadiusAnswer::Accept { eap, msk },
            Answer::Accept { msk: None, .. } => {
                tracing::warn!(connection = %conn, radius_server = %from, "Access-Accept without MS-MPPE keys: the client is refused (the EAP method must give an MSK)");
                RadiusAnswer::Reject {
                    eap: None,
                    detail: "Access-Accept without MS-MPPE keys".into(),
                }
            }
            Answer::Reject { eap } => {
                tracing::info!(connection = %conn, radius_server = %from, "RADIUS Access-Reject");
                RadiusAnswer::Reject {
                    eap,
                    detail: String::new(),
                }
            }
        };
        let _ = self.ep.eap_radius_answer(now, ike, answer);
    }

    /// The RADIUS clients' timers: requests sent again, clients refused after the tries.
    pub(super) fn radius_timeouts(&mut self, now: Instant) {
        let mut gave_up = Vec::new();
        for (conn, s) in self.radius.servers.iter_mut() {
            if s.client.poll_timeout().is_none_or(|t| t > now) {
                continue;
            }
            let t = s.client.handle_timeout(now);
            for bytes in t.resend {
                self.radius.outbox.push_back((s.cfg.server, bytes));
            }
            for ike in t.gave_up {
                tracing::warn!(
                    connection = %conn,
                    radius_server = %s.cfg.server,
                    tries = s.cfg.tries,
                    "radius server unreachable: no answer after {} tries, the client is refused",
                    s.cfg.tries
                );
                gave_up.push(ike);
            }
        }
        for ike in gave_up {
            let _ = self
                .ep
                .eap_radius_answer(now, ike, RadiusAnswer::Unreachable);
        }
    }

    pub(super) fn radius_deadline(&self) -> Option<Instant> {
        self.radius.next_deadline()
    }

    /// Per connection: its RADIUS server and what its client counted.
    pub fn radius_stats(&self) -> Vec<(Arc<str>, RadiusStats)> {
        let mut v: Vec<_> = self
            .radius
            .servers
            .iter()
            .map(|(c, s)| {
                (
                    c.clone(),
                    RadiusStats {
                        server: Some(s.cfg.server),
                        counts: s.client.stats(),
                    },
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

fn client_of(cfg: &RadiusConfig) -> radius::Client {
    radius::Client::new(
        ClientConfig {
            nas_identifier: cfg.nas_identifier.clone(),
            nas_ip: None,
            timeout: cfg.timeout,
            tries: cfg.tries,
        },
        (*cfg.secret).clone(),
    )
}
