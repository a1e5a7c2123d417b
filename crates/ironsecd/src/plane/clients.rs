//! Remote-access clients: each connected client is a tunnel of its connection, made when its
//! IKE SA comes up with a leased address and gone when that IKE SA goes. Its key carries the
//! client's virtual address (its first: IPv4 when it has one, else IPv6; each address is
//! no other client's), so clients behind one NAT (one outer address) are told apart.
//!
//! The engine leases the address (`ironsec_ike::pool`) and narrows the client's CHILD_SAs to
//! it; the plane only keeps which IKE SA is which client, for the tables (one policy per
//! client: the connection's local selectors to its address), status and `disconnect`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ironsec_ike::IkeSaId;

use crate::tables::{TunnelKey, TunnelSpec};

/// One connected client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its IKE SA now (it changes with IKE rekeys).
    pub ike: IkeSaId,
    /// Who it authenticated as (its IKE identity), as the engine escaped it.
    pub identity: String,
    /// Its virtual addresses: one per family, IPv4 first (a dual-stack client has two).
    pub vips: Vec<IpAddr>,
    /// Where it connected from (its NAT's address, if any).
    pub remote: SocketAddr,
    pub since: SystemTime,
    pub since_instant: Instant,
}

/// The connected clients of every remote-access connection.
#[derive(Default, Debug)]
pub struct Clients {
    /// Addresses leased on IKE SAs that are not up yet (the engine reports the lease just
    /// before the IKE SA), with the EAP user when the client used EAP.
    leased: HashMap<IkeSaId, (Vec<IpAddr>, Option<String>)>,
    by_ike: HashMap<IkeSaId, TunnelKey>,
    all: BTreeMap<TunnelKey, Client>,
}

impl Clients {
    /// The engine leased `vips` on IKE SA `ike` to a client that authenticated as EAP user
    /// `eap_identity` (None: by its IKE identity). No address: no client.
    pub fn leased(&mut self, ike: IkeSaId, vips: Vec<IpAddr>, eap_identity: Option<String>) {
        if !vips.is_empty() {
            self.leased.insert(ike, (vips, eap_identity));
        }
    }

    /// IKE SA `ike` of remote-access connection `conn` is up: its client's tunnel key, if the
    /// engine leased it an address (a client refused one has no tunnel). The client is named
    /// by its EAP user if it had one, else by `identity` (its IKE identity).
    pub fn connected(
        &mut self,
        conn: &Arc<str>,
        ike: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        identity: String,
        now: Instant,
    ) -> Option<TunnelKey> {
        let (vips, eap_identity) = self.leased.remove(&ike)?;
        let identity = eap_identity.unwrap_or(identity);
        let key = TunnelKey {
            conn: conn.clone(),
            local: local.ip(),
            remote: remote.ip(),
            client: vips.first().copied(),
        };
        self.by_ike.insert(ike, key.clone());
        self.all.insert(
            key.clone(),
            Client {
                ike,
                identity,
                vips,
                remote,
                since: SystemTime::now(),
                since_instant: now,
            },
        );
        Some(key)
    }

    /// The client tunnel of IKE SA `ike`, if it is a client's.
    pub fn key_of(&self, ike: IkeSaId) -> Option<&TunnelKey> {
        self.by_ike.get(&ike)
    }

    /// IKE SA `old` was rekeyed into `new`.
    pub fn rekeyed(&mut self, old: IkeSaId, new: IkeSaId) {
        if let Some(v) = self.leased.remove(&old) {
            self.leased.insert(new, v);
        }
        if let Some(key) = self.by_ike.remove(&old) {
            if let Some(c) = self.all.get_mut(&key) {
                c.ike = new;
            }
            self.by_ike.insert(new, key);
        }
    }

    /// IKE SA `ike` is gone: its client (if it had one) leaves.
    pub fn gone(&mut self, ike: IkeSaId) -> Option<(TunnelKey, Client)> {
        self.leased.remove(&ike);
        let key = self.by_ike.remove(&ike)?;
        let c = self.all.remove(&key)?;
        Some((key, c))
    }

    /// Every client of connection `conn` leaves (a reload changed or removed it).
    pub fn forget_connection(&mut self, conn: &str) {
        self.all.retain(|k, _| *k.conn != *conn);
        self.by_ike.retain(|_, k| *k.conn != *conn);
    }

    /// The client of a tunnel.
    pub fn get(&self, key: &TunnelKey) -> Option<&Client> {
        self.all.get(key)
    }

    /// Its virtual addresses as status and logs write them: "10.99.0.2, 2001:db8:99::2".
    pub fn vips_text(c: &Client) -> String {
        c.vips
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every connected client, by tunnel key (connection, then addresses).
    pub fn iter(&self) -> impl Iterator<Item = (&TunnelKey, &Client)> {
        self.all.iter()
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The clients' tunnels, to follow the config's (connection indexes from `index_of`; a
    /// client of a connection that no longer exists has none and is left out).
    pub fn specs(&self, index_of: impl Fn(&str) -> Option<usize>) -> Vec<TunnelSpec> {
        self.all
            .keys()
            .filter_map(|k| {
                Some(TunnelSpec {
                    conn: k.conn.clone(),
                    conn_index: index_of(&k.conn)?,
                    local: k.local,
                    remote: k.remote,
                    ike: true,
                    remote_name: None,
                    client: k.client,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(n: u64) -> IkeSaId {
        n
    }

    #[test]
    fn clients_behind_one_nat_are_two_tunnels_and_follow_rekeys() {
        let mut c = Clients::default();
        let conn: Arc<str> = "rw".into();
        let gw: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let nat: SocketAddr = "198.51.100.7:4500".parse().unwrap();
        let nat2: SocketAddr = "198.51.100.7:4501".parse().unwrap();
        let now = Instant::now();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        c.leased(sa(1), vec![ip("10.99.0.2")], None);
        // A dual-stack client: its tunnel is keyed by its IPv4 address.
        c.leased(
            sa(2),
            vec![ip("10.99.0.3"), ip("2001:db8:99::3")],
            Some("bob".into()),
        );
        // An IPv6-only client: by its IPv6 address.
        c.leased(sa(4), vec![ip("2001:db8:99::4")], None);
        // Nothing leased: nothing to remember.
        c.leased(sa(5), vec![], None);
        let a = c
            .connected(&conn, sa(1), gw, nat, "alice".into(), now)
            .unwrap();
        let b = c
            .connected(&conn, sa(2), gw, nat2, "bob".into(), now)
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(a.remote, b.remote, "one NAT address");
        assert_eq!(b.client, Some(ip("10.99.0.3")));
        assert_eq!(
            Clients::vips_text(c.get(&b).unwrap()),
            "10.99.0.3, 2001:db8:99::3"
        );
        let v6 = c
            .connected(&conn, sa(4), gw, nat, "dave".into(), now)
            .unwrap();
        assert_eq!(v6.client, Some(ip("2001:db8:99::4")));
        assert!(c
            .connected(&conn, sa(5), gw, nat, "erin".into(), now)
            .is_none());
        c.gone(sa(4));
        // No lease (the pool was full): no tunnel.
        assert!(c
            .connected(&conn, sa(3), gw, nat, "carol".into(), now)
            .is_none());
        c.rekeyed(sa(1), sa(11));
        assert_eq!(c.key_of(sa(11)), Some(&a));
        assert_eq!(c.get(&a).unwrap().ike, sa(11));
        assert!(c.key_of(sa(1)).is_none());
        let specs = c.specs(|n| (n == "rw").then_some(4));
        assert_eq!(specs.len(), 2);
        assert!(specs.iter().all(|s| s.conn_index == 4 && s.ike));
        let (k, gone) = c.gone(sa(11)).unwrap();
        assert_eq!((k, gone.identity.as_str()), (a, "alice"));
        assert_eq!(c.len(), 1);
        c.forget_connection("rw");
        assert_eq!(c.len(), 0);
        assert!(c.key_of(sa(2)).is_none());
    }
}
