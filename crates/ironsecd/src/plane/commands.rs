//! The operator's commands on a running connection: `ironsecctl initiate`, `terminate` and
//! `rekey`. Their results' texts (and `rekey`'s typed answer) are what the control socket
//! answers.

use std::time::Instant;

use ironsec_ike::IkeSaId;

use super::Plane;
use crate::config::Keying;
use crate::rekey::{RekeyKind, RekeySkipped, RekeyStarted, RekeyTarget};
use crate::status::spi_string;
use crate::tables::TunnelSpec;

/// A command that did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandDone {
    /// `initiate` started IKE SAs for this many tunnels.
    Initiating { connection: String, tunnels: usize },
    /// `terminate` deletes this many IKE SAs.
    Deleting { connection: String, ike_sas: usize },
    /// `rekey` started these rekeys.
    Rekeying(RekeyStarted),
    /// `disconnect` deletes the IKE SAs of this many clients of that identity.
    Disconnecting { identity: String, clients: usize },
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl std::fmt::Display for CommandDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandDone::Initiating {
                connection,
                tunnels,
            } => write!(
                f,
                "connection '{connection}': initiating {tunnels} tunnel{}",
                plural(*tunnels)
            ),
            CommandDone::Deleting {
                connection,
                ike_sas,
            } => write!(
                f,
                "connection '{connection}': deleting {ike_sas} IKE SA{}",
                plural(*ike_sas)
            ),
            CommandDone::Rekeying(r) => r.fmt(f),
            CommandDone::Disconnecting { identity, clients } => write!(
                f,
                "client '{}': disconnecting {clients} session{}",
                ironsec_ike::PeerText::new(identity.as_bytes()),
                plural(*clients)
            ),
        }
    }
}

/// A command refused, or one that found nothing to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no connection named '{0}'")]
    NoConnection(String),
    /// `initiate` on a manually keyed connection.
    #[error("connection '{0}' uses static keys: there is nothing to negotiate")]
    StaticNothingToNegotiate(String),
    /// `terminate` on a manually keyed connection.
    #[error("connection '{0}' uses static keys: its SAs exist as long as its config does")]
    StaticSasFollowConfig(String),
    #[error("connection '{0}': every tunnel already has an IKE SA")]
    AllInitiated(String),
    /// `initiate` of a connection whose tunnels without an IKE SA are all dormant.
    #[error(
        "connection '{connection}': shared address {address} is not on this host (the other \
         gateway holds it); its tunnels initiate when the address arrives"
    )]
    AddressAbsent {
        connection: String,
        address: std::net::IpAddr,
    },
    /// `initiate` on a drained gateway.
    #[error("the gateway is drained: `ironsecctl rejoin` brings every connection back")]
    Drained,
    /// `terminate` found no IKE SA (the connection is held down all the same).
    #[error("connection '{0}' has no IKE SA")]
    NoIkeSa(String),
    /// `rekey` on a manually keyed connection.
    #[error(
        "connection '{0}' uses static keys: there is no IKE to rekey with (new keys mean a \
         new keys_file and a reload)"
    )]
    StaticNoRekey(String),
    /// `disconnect` found no connected client of that identity.
    #[error("no connected client '{}'", ironsec_ike::PeerText::new(.0.as_bytes()))]
    NoClient(String),
    /// `rekey` found no tunnel it could rekey; the text says each tunnel's reason.
    #[error("connection '{connection}': nothing to rekey: {}", .reasons.join("; "))]
    NothingToRekey {
        connection: String,
        reasons: Vec<String>,
    },
}

impl Plane {
    /// Whether `name` is a connection that negotiates; `static_keys` is the error for one
    /// that does not.
    fn ike_connection(
        &self,
        name: &str,
        static_keys: fn(String) -> CommandError,
    ) -> Result<(), CommandError> {
        let c = self
            .connection(name)
            .ok_or_else(|| CommandError::NoConnection(name.into()))?;
        match c.keying {
            Keying::Ike(_) => Ok(()),
            Keying::Static(_) => Err(static_keys(name.into())),
        }
    }

    /// The tunnels of connection `name` (a copy of `specs_of`'s: the commands change the
    /// plane while they walk them).
    fn specs_named(&self, name: &str) -> Vec<TunnelSpec> {
        self.by_name
            .get(name)
            .map(|&i| self.specs_of(i).to_vec())
            .unwrap_or_default()
    }

    /// `ironsecctl initiate`: brings up every tunnel of `name` that has no IKE SA.
    pub fn initiate(&mut self, name: &str, now: Instant) -> Result<CommandDone, CommandError> {
        self.saw(now);
        self.ike_connection(name, CommandError::StaticNothingToNegotiate)?;
        if self.drain.holding() {
            return Err(CommandError::Drained);
        }
        let specs = self.specs_named(name);
        let mut started = 0;
        let mut dormant = None;
        for s in &specs {
            let st = self.tunnels.entry(s.key()).or_default();
            st.held = false;
            if st.ike.is_none() {
                if self.is_dormant(s.local) {
                    dormant.get_or_insert(s.local);
                    continue;
                }
                self.initiate_tunnel(s, now, "ironsecctl initiate");
                started += 1;
            }
        }
        if started == 0 {
            return Err(match dormant {
                Some(address) => CommandError::AddressAbsent {
                    connection: name.into(),
                    address,
                },
                None => CommandError::AllInitiated(name.into()),
            });
        }
        Ok(CommandDone::Initiating {
            connection: name.into(),
            tunnels: started,
        })
    }

    /// `ironsecctl terminate`: deletes the connection's IKE SAs (and with them its CHILD_SAs)
    /// and keeps them down until `initiate`. A trapped connection stays trapped.
    pub fn terminate(&mut self, name: &str, now: Instant) -> Result<CommandDone, CommandError> {
        self.saw(now);
        self.ike_connection(name, CommandError::StaticSasFollowConfig)?;
        let deleted = self.hold_and_delete(name, now);
        if deleted == 0 {
            return Err(CommandError::NoIkeSa(name.into()));
        }
        tracing::info!(connection = %name, "terminated by the operator");
        Ok(CommandDone::Deleting {
            connection: name.into(),
            ike_sas: deleted,
        })
    }

    /// What `terminate` does to connection `name` (and a drain to every connection): holds
    /// its tunnels down and deletes its IKE SAs (DELETE to the peer). Answers how many.
    pub(super) fn hold_and_delete(&mut self, name: &str, now: Instant) -> usize {
        let ids: Vec<IkeSaId> = self
            .ep
            .ike_sas()
            .into_iter()
            .filter(|s| s.conn.as_deref() == Some(name))
            .map(|s| s.id)
            .collect();
        for (k, st) in self.tunnels.iter_mut() {
            if &*k.conn == name {
                st.held = true;
                st.ike = None;
                self.restarts.clear(k);
                self.child_retries.clear(k);
            }
        }
        for id in &ids {
            if let Err(e) = self.ep.terminate(now, *id) {
                tracing::debug!(connection = %name, error = %e, "terminate");
            }
        }
        ids.len()
    }

    /// `ironsecctl disconnect`: deletes the IKE SAs of every connected remote-access client
    /// that authenticated as `identity` (the identity `status` and `leases` show). The client
    /// may connect again (and gets its address back within the pool's grace period).
    pub fn disconnect(
        &mut self,
        identity: &str,
        now: Instant,
    ) -> Result<CommandDone, CommandError> {
        self.saw(now);
        let ids: Vec<IkeSaId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.identity == identity)
            .map(|(_, c)| c.ike)
            .collect();
        if ids.is_empty() {
            return Err(CommandError::NoClient(identity.into()));
        }
        for id in &ids {
            if let Err(e) = self.ep.terminate(now, *id) {
                tracing::debug!(error = %e, "disconnect");
            }
        }
        tracing::info!(identity = %ironsec_ike::PeerText::new(identity.as_bytes()), sessions = ids.len(), "client disconnected by the operator");
        Ok(CommandDone::Disconnecting {
            identity: identity.into(),
            clients: ids.len(),
        })
    }

    /// `ironsecctl rekey`: starts a rekey of every CHILD_SA each established tunnel of `name`
    /// sends with (or, with `kind` [`RekeyKind::Ike`], of each tunnel's IKE SA), through the
    /// engine's own rekey (the one lifetimes start), so the new SAs are installed before the
    /// old ones go and no packet is lost. Tunnels that cannot be rekeyed now are skipped with
    /// their reason; when none can, that is the error.
    pub fn rekey(
        &mut self,
        name: &str,
        kind: RekeyKind,
        now: Instant,
    ) -> Result<CommandDone, CommandError> {
        self.saw(now);
        self.ike_connection(name, CommandError::StaticNoRekey)?;
        let summaries = self.ep.ike_sas();
        let specs = self.specs_named(name);
        let mut started = Vec::new();
        let mut skipped = Vec::new();
        for s in &specs {
            let key = s.key();
            let (local, remote) = (s.local.to_string(), s.remote.to_string());
            let skip = |reason: &str| RekeySkipped {
                local: local.clone(),
                remote: remote.clone(),
                reason: reason.into(),
            };
            let ike = self.tunnels.get(&key).and_then(|t| t.ike);
            let Some(sa) = ike.and_then(|id| summaries.iter().find(|x| x.id == id)) else {
                skipped.push(skip("no IKE SA (the tunnel is down)"));
                continue;
            };
            if !sa.established {
                skipped.push(skip("its IKE SA is not established yet"));
                continue;
            }
            let target = |child: Option<u32>| RekeyTarget {
                local: local.clone(),
                remote: remote.clone(),
                ike_spi_i: format!("0x{:016x}", sa.spi_i),
                ike_spi_r: format!("0x{:016x}", sa.spi_r),
                child_spi_in: child.map(spi_string),
            };
            match kind {
                RekeyKind::Ike => match self.ep.rekey_ike(now, sa.id) {
                    Ok(()) => started.push(target(None)),
                    Err(e) => skipped.push(skip(&e.to_string())),
                },
                RekeyKind::Child => {
                    let sending = self.store.sending_of(&key).to_vec();
                    let children: Vec<_> = sa
                        .children
                        .iter()
                        .filter(|c| sending.contains(&c.spi_in))
                        .collect();
                    if children.is_empty() {
                        skipped.push(skip("no CHILD_SA (its IKE SA is up without one)"));
                        continue;
                    }
                    for c in children {
                        if c.rekeying {
                            skipped.push(skip(&format!(
                                "CHILD_SA {} is being rekeyed already",
                                spi_string(c.spi_in)
                            )));
                            continue;
                        }
                        match self.ep.rekey_child(now, sa.id, c.spi_in) {
                            Ok(()) => started.push(target(Some(c.spi_in))),
                            Err(e) => skipped.push(skip(&e.to_string())),
                        }
                    }
                }
            }
        }
        if started.is_empty() {
            return Err(CommandError::NothingToRekey {
                connection: name.into(),
                reasons: skipped
                    .iter()
                    .map(|s| format!("{} -> {}: {}", s.local, s.remote, s.reason))
                    .collect(),
            });
        }
        tracing::info!(
            connection = %name,
            sas = started.len(),
            kind = match kind {
                RekeyKind::Child => "child",
                RekeyKind::Ike => "ike",
            },
            "rekey started by the operator"
        );
        Ok(CommandDone::Rekeying(RekeyStarted {
            connection: name.into(),
            kind,
            started,
            skipped,
        }))
    }
}
