//! The operator's commands on a running connection: `ironsecctl initiate` and `terminate`.
//! Their results' texts are what the control socket answers.

use std::time::Instant;

use ironsec_ike::IkeSaId;

use super::Plane;
use crate::config::Keying;
use crate::tables::TunnelSpec;

/// A command that did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandDone {
    /// `initiate` started IKE SAs for this many tunnels.
    Initiating { connection: String, tunnels: usize },
    /// `terminate` deletes this many IKE SAs.
    Deleting { connection: String, ike_sas: usize },
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
    /// `terminate` found no IKE SA (the connection is held down all the same).
    #[error("connection '{0}' has no IKE SA")]
    NoIkeSa(String),
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

    /// `ironsecctl initiate`: brings up every tunnel of `name` that has no IKE SA.
    pub fn initiate(&mut self, name: &str, now: Instant) -> Result<CommandDone, CommandError> {
        self.saw(now);
        self.ike_connection(name, CommandError::StaticNothingToNegotiate)?;
        let specs: Vec<TunnelSpec> = self
            .specs
            .iter()
            .filter(|s| &*s.conn == name)
            .cloned()
            .collect();
        let mut started = 0;
        for s in &specs {
            let st = self.tunnels.entry(s.key()).or_default();
            st.held = false;
            if st.ike.is_none() {
                self.initiate_tunnel(s, now, "ironsecctl initiate");
                started += 1;
            }
        }
        if started == 0 {
            return Err(CommandError::AllInitiated(name.into()));
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
        if ids.is_empty() {
            return Err(CommandError::NoIkeSa(name.into()));
        }
        for id in &ids {
            if let Err(e) = self.ep.terminate(now, *id) {
                tracing::debug!(connection = name, error = %e, "terminate");
            }
        }
        tracing::info!(connection = name, "terminated by the operator");
        Ok(CommandDone::Deleting {
            connection: name.into(),
            ike_sas: ids.len(),
        })
    }
}
