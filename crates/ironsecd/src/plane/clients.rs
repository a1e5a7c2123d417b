//! Remote-access clients: each connected client is a tunnel of its connection, made when its
//! IKE SA comes up with a leased address and gone when that IKE SA goes. Its key carries the
//! client's virtual address, so clients behind one NAT (one outer address) are told apart.
//!
//! The engine leases the address (`ironsec_ike::pool`) and narrows the client's CHILD_SAs to
//! it; the plane only keeps which IKE SA is which client, for the tables (one policy per
//! client: the connection's local selectors to its address), status and `disconnect`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    pub vip: Ipv4Addr,
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
    leased: HashMap<IkeSaId, (Ipv4Addr, Option<String>)>,
    by_ike: HashMap<IkeSaId, TunnelKey>,
    all: BTreeMap<TunnelKey, Client>,
}

impl Clients {
    /// The engine leased `vip` on IKE SA `ike` to a client that authenticated as EAP user
    /// `eap_identity` (None: by its IKE identity).
    pub fn leased(&mut self, ike: IkeSaId, vip: Ipv4Addr, eap_identity: Option<String>) {
        self.leased.insert(ike, (vip, eap_identity));
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
        let (vip, eap_identity) = self.leased.remove(&ike)?;
        let identity = eap_identity.unwrap_or(identity);
        let key = TunnelKey {
            conn: conn.clone(),
            local: local.ip(),
            remote: remote.ip(),
            client: Some(IpAddr::V4(vip)),
        };
        self.by_ike.insert(ike, key.clone());
        self.all.insert(
            key.clone(),
            Client {
                ike,
                identity,
                vip,
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
        c.leased(sa(1), "10.99.0.2".parse().unwrap(), None);
        c.leased(sa(2), "10.99.0.3".parse().unwrap(), Some("bob".into()));
        let a = c
            .connected(&conn, sa(1), gw, nat, "alice".into(), now)
            .unwrap();
        let b = c
            .connected(&conn, sa(2), gw, nat2, "bob".into(), now)
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(a.remote, b.remote, "one NAT address");
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
