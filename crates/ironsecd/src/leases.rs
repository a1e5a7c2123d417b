//! `ironsecctl leases`: every address of the remote-access pools that is held by a client or
//! kept for one that left, with whose it is.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// One address handed out.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub connection: String,
    pub pool: String,
    pub address: String,
    /// The client identity it belongs to (escaped as the engine escapes peer text).
    pub identity: String,
    /// `online` (a connected client holds it) or `offline` (kept for the client that left).
    pub state: String,
    /// Online: seconds since the client took it. Offline: seconds since it left.
    pub secs: u64,
    /// Offline: seconds until the address is anyone's again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// The leases as `ironsecctl leases` prints them: one line each, grouped by connection.
pub fn render(leases: &[LeaseInfo]) -> String {
    if leases.is_empty() {
        return "no leases (no remote-access client has connected, or their addresses' grace \
                periods are over)\n"
            .into();
    }
    let mut s = String::new();
    let (mut conn, mut pool) = ("", "");
    for l in leases {
        if l.connection != conn || l.pool != pool {
            conn = &l.connection;
            pool = &l.pool;
            let _ = writeln!(s, "{} (pool {}):", l.connection, l.pool);
        }
        let when = match (l.state.as_str(), l.expires_in_secs) {
            ("online", _) => format!("connected for {}s", l.secs),
            (_, Some(e)) => format!("left {}s ago, kept {}s more", l.secs, e),
            _ => format!("left {}s ago", l.secs),
        };
        let _ = writeln!(
            s,
            "  {:<15} {:<7} {} ({when})",
            l.address,
            l.state,
            ironsec_ike::PeerText::new(l.identity.as_bytes())
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_online_and_offline_leases_escaped() {
        let l = |address: &str, identity: &str, state: &str, expires: Option<u64>| LeaseInfo {
            connection: "rw".into(),
            pool: "10.99.0.0/24".into(),
            address: address.into(),
            identity: identity.into(),
            state: state.into(),
            secs: 7,
            expires_in_secs: expires,
        };
        let text = render(&[
            l("10.99.0.1", "alice.example", "online", None),
            l("10.99.0.2", "evil\n\u{1b}[2J", "offline", Some(593)),
        ]);
        assert!(text.starts_with("rw (pool 10.99.0.0/24):\n"), "{text}");
        assert!(text.contains("10.99.0.1       online  alice.example (connected for 7s)"));
        assert!(text.contains("left 7s ago, kept 593s more"), "{text}");
        assert_eq!(
            text.lines().count(),
            3,
            "peer text cannot add a line: {text}"
        );
        assert!(!text.contains('\u{1b}'));
        assert!(render(&[]).starts_with("no leases"));
    }
}
