//! Virtual IPs in IKE_AUTH (RFC 7296 §3.15): a client's CFG_REQUEST, the gateway's CFG_REPLY
//! with an address from the connection's pool ([`crate::pool`]), and the CHILD_SAs narrowed to
//! that address. The lease lives as long as the client's IKE SA (moving to its rekeyed
//! successor) and is given back when it closes.

use std::net::{IpAddr, Ipv4Addr};

use super::{Ctx, IkeSa};
use crate::config::{PeerConfig, VipRole};
use crate::events::Event;
use crate::ts;
use crate::wire::{CpPayload, Payload, Payloads, TrafficSelector, CFG_REPLY, CFG_REQUEST};

/// Configuration attribute types (RFC 7296 §3.15.1).
pub const INTERNAL_IP4_ADDRESS: u16 = 1;
pub const INTERNAL_IP4_DNS: u16 = 3;
pub const INTERNAL_IP4_SUBNET: u16 = 13;

/// An IKE SA's virtual IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vip {
    pub address: Ipv4Addr,
    /// Leased from our pool (we are the gateway): given back when the SA closes.
    pub leased: bool,
}

/// The client's request: an IPv4 address and DNS servers, values empty ("any").
pub(crate) fn request() -> Payload {
    Payload::Cp(CpPayload {
        cfg_type: CFG_REQUEST,
        attributes: vec![
            (INTERNAL_IP4_ADDRESS, Vec::new()),
            (INTERNAL_IP4_DNS, Vec::new()),
        ],
    })
}

/// `ts` as address and netmask (INTERNAL_IP4_SUBNET) when it is an IPv4 prefix.
fn subnet_attribute(t: &TrafficSelector) -> Option<Vec<u8>> {
    let (IpAddr::V4(start), IpAddr::V4(end)) = (t.start, t.end) else {
        return None;
    };
    let host = u32::from(start) ^ u32::from(end);
    // A prefix: the host part is all ones and the start has none of it.
    if host.checked_add(1).is_some_and(|n| !n.is_power_of_two()) || u32::from(start) & host != 0 {
        return None;
    }
    let mask = !host;
    Some([start.octets(), mask.to_be_bytes()].concat())
}

impl IkeSa {
    /// Gateway: answers the client's CFG_REQUEST for an IPv4 address from `conn`'s pool.
    /// `Ok(None)`: nothing asked (or this is no remote-access connection); `Err`: no address
    /// (INTERNAL_ADDRESS_FAILURE, with the reason to log).
    pub(crate) fn assign_vip(
        &mut self,
        ctx: &mut Ctx,
        conn: &PeerConfig,
        payloads: &[Payload],
        owner: &str,
    ) -> Result<Option<Payload>, String> {
        let VipRole::Assign(cfg) = &conn.vip else {
            return Ok(None);
        };
        let Some(req) = payloads.cp().filter(|c| c.cfg_type == CFG_REQUEST) else {
            return Ok(None);
        };
        let Some((_, wanted)) = req
            .attributes
            .iter()
            .find(|(t, _)| *t == INTERNAL_IP4_ADDRESS)
        else {
            return Ok(None);
        };
        let requested = <[u8; 4]>::try_from(&wanted[..])
            .ok()
            .map(Ipv4Addr::from)
            .filter(|a| !a.is_unspecified());
        let pool = ctx.pools.get_mut(&conn.name).ok_or_else(|| {
            format!(
                "connection '{}' has no usable address pool ('{}')",
                conn.name, cfg.range
            )
        })?;
        let address = pool
            .acquire(owner, requested, ctx.now)
            .map_err(|e| e.to_string())?;
        self.vip = Some(Vip {
            address,
            leased: true,
        });
        let mut attributes = vec![(INTERNAL_IP4_ADDRESS, address.octets().to_vec())];
        attributes.extend(
            cfg.dns
                .iter()
                .map(|d| (INTERNAL_IP4_DNS, d.octets().to_vec())),
        );
        // Split tunnel: what the client should send through us (our selectors).
        attributes.extend(
            conn.local_ts
                .iter()
                .filter_map(subnet_attribute)
                .map(|v| (INTERNAL_IP4_SUBNET, v)),
        );
        ctx.events.push_back(Event::VirtualIp {
            conn: conn.name.clone(),
            ike: self.id,
            address,
            dns: cfg.dns.clone(),
            to_peer: true,
            eap_identity: self.eap_identity.clone(),
        });
        Ok(Some(Payload::Cp(CpPayload {
            cfg_type: CFG_REPLY,
            attributes,
        })))
    }

    /// Client: the gateway's CFG_REPLY, if we asked.
    pub(crate) fn read_vip(&mut self, ctx: &mut Ctx, conn: &PeerConfig, payloads: &[Payload]) {
        if conn.vip != VipRole::Request {
            return;
        }
        let Some(reply) = payloads.cp().filter(|c| c.cfg_type == CFG_REPLY) else {
            return;
        };
        let v4 = |t: u16| {
            reply
                .attributes
                .iter()
                .filter(move |(k, _)| *k == t)
                .filter_map(|(_, v)| <[u8; 4]>::try_from(&v[..]).ok().map(Ipv4Addr::from))
        };
        let Some(address) = v4(INTERNAL_IP4_ADDRESS).next() else {
            return;
        };
        self.vip = Some(Vip {
            address,
            leased: false,
        });
        ctx.events.push_back(Event::VirtualIp {
            conn: conn.name.clone(),
            ike: self.id,
            address,
            dns: v4(INTERNAL_IP4_DNS).collect(),
            to_peer: false,
            eap_identity: None,
        });
    }

    /// Gives a leased address back to its pool (the SA is closing; its owner keeps it for the
    /// pool's grace period).
    pub(crate) fn release_vip(&mut self, ctx: &mut Ctx) {
        let Some(Vip {
            address,
            leased: true,
        }) = self.vip
        else {
            return;
        };
        self.vip = None;
        if let Some(pool) = self.conn.as_ref().and_then(|c| ctx.pools.get_mut(&c.name)) {
            pool.release(address, ctx.now);
        }
    }

    /// What the peer's selectors (its TSi, our TSr as initiator... the peer's side) are
    /// narrowed to: its virtual IP when we leased it one, else the configured `remote_ts`.
    pub(crate) fn peer_selectors(&self, conn: &PeerConfig) -> Vec<TrafficSelector> {
        match self.vip {
            Some(Vip {
                address,
                leased: true,
            }) => vec![ts::from_prefix(IpAddr::V4(address), 32)],
            _ => conn.remote_ts.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_sent_for_prefixes_only() {
        let p = |s: &str, l: u8| ts::from_prefix(s.parse().unwrap(), l);
        assert_eq!(
            subnet_attribute(&p("10.2.0.0", 24)),
            Some(vec![10, 2, 0, 0, 255, 255, 255, 0])
        );
        assert_eq!(
            subnet_attribute(&p("0.0.0.0", 0)),
            Some(vec![0, 0, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(
            subnet_attribute(&p("10.2.0.7", 32)),
            Some(vec![10, 2, 0, 7, 255, 255, 255, 255])
        );
        let mut range = p("10.2.0.0", 24);
        range.end = "10.2.0.99".parse().unwrap();
        assert_eq!(subnet_attribute(&range), None);
        assert_eq!(subnet_attribute(&p("2001:db8::", 64)), None);
    }
}
