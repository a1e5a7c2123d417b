//! rtnetlink requests for what is done once per TUN device: its link settings (IPv6 address
//! generation off, MTU, queue length, root qdisc, up) and its address. A route-based connection has a
//! device of its own, so a hub with a thousand of them did this a thousand times at start, and
//! through `ip` that was three thousand processes: 17.5 of the 25 s a 1,000-connection hub took
//! to start (netns-scripts/route-scale.sh). One request over a netlink socket takes
//! microseconds. The same for installing a route into a device and a guard route (`iproute`,
//! `guard`), which a start does once per static route; listing and removing routes, rare,
//! stay with `ip`.
//!
//! Each call opens a NETLINK_ROUTE socket, sends one request asking for an acknowledgement and
//! reads until the kernel's answer to it (bounded by a receive timeout), so an error comes
//! back as the errno the kernel chose, as `ip` would have reported it.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::{DataplaneError, Prefix};

// From linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h.
const NETLINK_ROUTE: libc::c_int = 0;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const RTM_NEWLINK: u16 = 16;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWQDISC: u16 = 36;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_METRICS: u16 = 8;
const RTAX_MTU: u16 = 2;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
const TCA_KIND: u16 = 1;
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
const IFLA_MTU: u16 = 4;
const IFLA_TXQLEN: u16 = 13;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
/// How long to wait for the kernel's answer: it answers at once; this only bounds a bug.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// One request being built: the netlink header, the family header, then attributes, each
/// padded to 4 bytes.
struct Msg(Vec<u8>);

impl Msg {
    fn new(ty: u16, flags: u16) -> Msg {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        b.extend_from_slice(&1u32.to_ne_bytes()); // sequence number (one request per socket)
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        Msg(b)
    }

    /// `struct ifinfomsg` for device `index`, changing the flags in `change` to `flags`.
    fn ifinfo(mut self, index: u32, flags: u32, change: u32) -> Msg {
        self.0.push(libc::AF_UNSPEC as u8);
        self.0.push(0);
        self.0.extend_from_slice(&0u16.to_ne_bytes()); // device type
        self.0.extend_from_slice(&index.to_ne_bytes());
        self.0.extend_from_slice(&flags.to_ne_bytes());
        self.0.extend_from_slice(&change.to_ne_bytes());
        self
    }

    /// `struct ifaddrmsg` for an address of `family` with `prefix_len` on device `index`.
    fn ifaddr(mut self, family: u8, prefix_len: u8, index: u32) -> Msg {
        self.0.extend_from_slice(&[family, prefix_len, 0, 0]); // flags 0, scope universe
        self.0.extend_from_slice(&index.to_ne_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    fn attr(mut self, ty: u16, payload: &[u8]) -> Msg {
        let len = u16::try_from(4 + payload.len()).expect("small attribute");
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.pad();
        self
    }

    /// A nested attribute holding what `inner` adds.
    fn nest(mut self, ty: u16, inner: impl FnOnce(Msg) -> Msg) -> Msg {
        let at = self.0.len();
        self.0.extend_from_slice(&0u16.to_ne_bytes());
        self.0.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        let mut m = inner(self);
        let len = u16::try_from(m.0.len() - at).expect("small attribute");
        m.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        m
    }

    fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.0.len()).expect("small message");
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// The messages of one datagram of netlink messages, in order, each as its type, sequence
/// number and payload (what follows the 16-byte header). A header whose length does not fit
/// the datagram ends the walk with `Err(())`: the rest cannot be framed. Shared by every
/// reader of NETLINK_ROUTE (the answers here, the address watch of ironsecd), so that framing
/// is written and checked once.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Result<(u16, u32, &[u8]), ()>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + NLMSG_HDRLEN > buf.len() {
            return None;
        }
        let word = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().expect("4 bytes"));
        let len = word(at) as usize;
        let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let seq = word(at + 8);
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            at = buf.len();
            return Some(Err(()));
        }
        let payload = &buf[at + NLMSG_HDRLEN..at + len];
        at += (len + 3) & !3;
        Some(Ok((ty, seq, payload)))
    })
}

/// The errno of the kernel's acknowledgement of sequence number 1 in `buf` (one datagram of
/// netlink messages): `Some(0)` for success, `None` if there is none in it.
fn ack_errno(buf: &[u8]) -> Option<i32> {
    for m in messages(buf) {
        let (ty, seq, payload) = m.ok()?;
        if ty == NLMSG_ERROR && seq == 1 && payload.len() >= 4 {
            let code = i32::from_ne_bytes(payload[..4].try_into().expect("4 bytes"));
            return Some(-code);
        }
    }
    None
}

/// A new NETLINK_ROUTE socket (close-on-exec) whose reads give up after `timeout`
/// (SO_RCVTIMEO), so that no reader can hang on the kernel.
pub fn route_socket(timeout: Duration) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes plain integers; a non-negative result is a new descriptor.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: SO_RCVTIMEO reads a timeval of the size passed.
    if unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Sends `msg` to the kernel and waits for its acknowledgement.
fn request(msg: Vec<u8>) -> io::Result<()> {
    let fd = route_socket(ANSWER_TIMEOUT)?;
    // SAFETY: an all-zero sockaddr_nl is valid; the family is set below. Port 0 is the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `msg` is readable for its length; `kernel` is a sockaddr_nl of the size passed.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        match ack_errno(&buf[..n as usize]) {
            Some(0) => return Ok(()),
            Some(errno) => return Err(io::Error::from_raw_os_error(errno)),
            None => continue,
        }
    }
}

/// The index of device `name` in this network namespace.
fn index(name: &str) -> io::Result<u32> {
    let c =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// `ip link set dev NAME addrgenmode none`, `ip link set dev NAME mtu MTU txqueuelen
/// TXQUEUELEN`, with `single_qdisc` `tc qdisc replace dev NAME root pfifo_fast`, then `ip link
/// set dev NAME up`. No IPv6 link-local address: the kernel would otherwise send router
/// solicitations and MLD reports into the tunnel (a device without IPv6, on a kernel without
/// it or with an MTU below IPv6's 1280, has nothing to generate). The root qdisc before the
/// device comes up: see [`crate::tun::Queueing::Single`].
pub fn link_setup(
    name: &str,
    mtu: u16,
    txqueuelen: u32,
    single_qdisc: bool,
) -> Result<(), DataplaneError> {
    let err = |what: &str, source| DataplaneError::Netlink {
        what: format!("{what} on device {name}"),
        source,
    };
    let index = index(name).map_err(|e| err("looking up the device", e))?;
    let genmode = Msg::new(RTM_NEWLINK, 0)
        .ifinfo(index, 0, 0)
        .nest(IFLA_AF_SPEC, |m| {
            m.nest(libc::AF_INET6 as u16, |m| {
                m.attr(IFLA_INET6_ADDR_GEN_MODE, &[IN6_ADDR_GEN_MODE_NONE])
            })
        })
        .finish();
    match request(genmode) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
        Err(e) => return Err(err("turning IPv6 address generation off", e)),
    }
    let size = Msg::new(RTM_NEWLINK, 0)
        .ifinfo(index, 0, 0)
        .attr(IFLA_MTU, &u32::from(mtu).to_ne_bytes())
        .attr(IFLA_TXQLEN, &txqueuelen.to_ne_bytes())
        .finish();
    request(size).map_err(|e| err(&format!("setting mtu {mtu} and txqueuelen {txqueuelen}"), e))?;
    if single_qdisc {
        request(root_qdisc_msg(index, b"pfifo_fast\0"))
            .map_err(|e| err("setting the root qdisc pfifo_fast", e))?;
    }
    let up = libc::IFF_UP as u32;
    request(Msg::new(RTM_NEWLINK, 0).ifinfo(index, up, up).finish())
        .map_err(|e| err("bringing the device up", e))
}

/// `tc qdisc replace dev INDEX root KIND` (KIND NUL-terminated, a qdisc without options).
fn root_qdisc_msg(index: u32, kind: &[u8]) -> Vec<u8> {
    let mut m = Msg::new(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE);
    m.0.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]); // family, padding
    m.0.extend_from_slice(&index.to_ne_bytes());
    m.0.extend_from_slice(&0u32.to_ne_bytes()); // handle: the kernel picks one
    m.0.extend_from_slice(&TC_H_ROOT.to_ne_bytes()); // parent
    m.0.extend_from_slice(&0u32.to_ne_bytes()); // info
    m.attr(TCA_KIND, kind).finish()
}

fn addr_msg(ty: u16, flags: u16, index: u32, addr: IpAddr, prefix_len: u8) -> Vec<u8> {
    let (family, bytes) = match addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    Msg::new(ty, flags)
        .ifaddr(family, prefix_len, index)
        .attr(IFA_LOCAL, &bytes)
        .attr(IFA_ADDRESS, &bytes)
        .finish()
}

/// `ip addr replace ADDR/PREFIX_LEN dev NAME`.
pub fn addr_replace(name: &str, addr: IpAddr, prefix_len: u8) -> Result<(), DataplaneError> {
    let err = |source| DataplaneError::Netlink {
        what: format!("putting address {addr}/{prefix_len} on device {name}"),
        source,
    };
    let index = index(name).map_err(err)?;
    request(addr_msg(
        RTM_NEWADDR,
        NLM_F_CREATE | NLM_F_REPLACE,
        index,
        addr,
        prefix_len,
    ))
    .map_err(err)
}

/// `ip addr del ADDR/PREFIX_LEN dev NAME`.
pub fn addr_del(name: &str, addr: IpAddr, prefix_len: u8) -> Result<(), DataplaneError> {
    let err = |source| DataplaneError::Netlink {
        what: format!("removing address {addr}/{prefix_len} from device {name}"),
        source,
    };
    let index = index(name).map_err(err)?;
    request(addr_msg(RTM_DELADDR, 0, index, addr, prefix_len)).map_err(err)
}

/// `ip route replace PREFIX dev DEV [src SRC] [mtu MTU]` (`dev` `None`: `ip route replace
/// blackhole PREFIX`), with `proto` and `metric` where given, in the main table.
fn route_msg(
    prefix: &Prefix,
    dev: Option<u32>,
    src: Option<IpAddr>,
    mtu: Option<u16>,
    proto: Option<u8>,
    metric: Option<u32>,
) -> Vec<u8> {
    let (family, dst) = match prefix.addr() {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    // As `ip` chooses: a route through a device without a gateway is link-scoped in IPv4,
    // anything else universe.
    let scope = if dev.is_some() && prefix.is_v4() {
        RT_SCOPE_LINK
    } else {
        RT_SCOPE_UNIVERSE
    };
    let kind = if dev.is_some() {
        RTN_UNICAST
    } else {
        RTN_BLACKHOLE
    };
    let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    m.0.extend_from_slice(&[
        family,
        prefix.len(),
        0,
        0,
        RT_TABLE_MAIN,
        proto.unwrap_or(RTPROT_BOOT),
        scope,
        kind,
    ]);
    m.0.extend_from_slice(&0u32.to_ne_bytes());
    let mut m = m.attr(RTA_DST, &dst);
    if let Some(index) = dev {
        m = m.attr(RTA_OIF, &index.to_ne_bytes());
    }
    if let Some(src) = src {
        m = match src {
            IpAddr::V4(a) => m.attr(RTA_PREFSRC, &a.octets()),
            IpAddr::V6(a) => m.attr(RTA_PREFSRC, &a.octets()),
        };
    }
    if let Some(metric) = metric {
        m = m.attr(RTA_PRIORITY, &metric.to_ne_bytes());
    }
    if let Some(mtu) = mtu {
        m = m.nest(RTA_METRICS, |m| {
            m.attr(RTAX_MTU, &u32::from(mtu).to_ne_bytes())
        });
    }
    m.finish()
}

/// `ip route replace PREFIX dev DEV [src SRC] [mtu MTU]` (see [`crate::iproute::route_via`]).
pub fn route_replace(
    prefix: &Prefix,
    dev: &str,
    src: Option<IpAddr>,
    mtu: Option<u16>,
) -> Result<(), DataplaneError> {
    let err = |source| DataplaneError::Netlink {
        what: format!("installing the route {prefix} into device {dev}"),
        source,
    };
    let index = index(dev).map_err(err)?;
    request(route_msg(prefix, Some(index), src, mtu, None, None)).map_err(err)
}

/// `ip route replace blackhole PREFIX proto PROTO metric METRIC` (see [`crate::guard`]).
pub fn blackhole_replace(prefix: &Prefix, proto: u8, metric: u32) -> Result<(), DataplaneError> {
    request(route_msg(
        prefix,
        None,
        None,
        None,
        Some(proto),
        Some(metric),
    ))
    .map_err(|source| DataplaneError::Netlink {
        what: format!("installing the guard route for {prefix}"),
        source,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn u16_at(b: &[u8], o: usize) -> u16 {
        u16::from_ne_bytes([b[o], b[o + 1]])
    }

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_ne_bytes(b[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn link_request_is_laid_out_as_the_kernel_reads_it() {
        let m = Msg::new(RTM_NEWLINK, 0)
            .ifinfo(7, 1, 1)
            .attr(IFLA_MTU, &1400u32.to_ne_bytes())
            .nest(IFLA_AF_SPEC, |m| {
                m.nest(10, |m| m.attr(IFLA_INET6_ADDR_GEN_MODE, &[1]))
            })
            .finish();
        // nlmsghdr 16 + ifinfomsg 16 + mtu 8 + (4 + (4 + (5 -> 8))) = 56
        assert_eq!(m.len(), 56);
        assert_eq!(u32_at(&m, 0), 56, "length");
        assert_eq!(u16_at(&m, 4), RTM_NEWLINK);
        assert_eq!(u16_at(&m, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32_at(&m, 8), 1, "sequence number");
        assert_eq!(u32_at(&m, 20), 7, "ifi_index");
        assert_eq!(u32_at(&m, 24), 1, "ifi_flags");
        assert_eq!(u32_at(&m, 28), 1, "ifi_change");
        assert_eq!((u16_at(&m, 32), u16_at(&m, 34)), (8, IFLA_MTU));
        assert_eq!(u32_at(&m, 36), 1400);
        assert_eq!(
            (u16_at(&m, 40), u16_at(&m, 42)),
            (16, IFLA_AF_SPEC | NLA_F_NESTED)
        );
        assert_eq!((u16_at(&m, 44), u16_at(&m, 46)), (12, 10 | NLA_F_NESTED));
        assert_eq!(
            (u16_at(&m, 48), u16_at(&m, 50)),
            (5, IFLA_INET6_ADDR_GEN_MODE)
        );
        assert_eq!(&m[52..56], &[1, 0, 0, 0], "the mode, padded");
    }

    #[test]
    fn address_request_carries_local_and_address() {
        let m = addr_msg(
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_REPLACE,
            3,
            "169.254.0.1".parse().unwrap(),
            30,
        );
        assert_eq!(m.len(), 16 + 8 + 8 + 8);
        assert_eq!(
            u16_at(&m, 6),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        );
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 30, 0, 0]);
        assert_eq!(u32_at(&m, 20), 3);
        assert_eq!((u16_at(&m, 24), u16_at(&m, 26)), (8, IFA_LOCAL));
        assert_eq!(&m[28..32], &[169, 254, 0, 1]);
        assert_eq!((u16_at(&m, 32), u16_at(&m, 34)), (8, IFA_ADDRESS));
        let v6 = addr_msg(RTM_DELADDR, 0, 3, "fd00::1".parse().unwrap(), 64);
        assert_eq!(v6.len(), 16 + 8 + 20 + 20);
        assert_eq!(v6[16], libc::AF_INET6 as u8);
    }

    #[test]
    fn root_qdisc_request_names_the_kind() {
        let m = root_qdisc_msg(9, b"pfifo_fast\0");
        assert_eq!(u16_at(&m, 4), RTM_NEWQDISC);
        assert_eq!(u32_at(&m, 20), 9, "tcm_ifindex");
        assert_eq!(u32_at(&m, 28), TC_H_ROOT, "tcm_parent");
        assert_eq!((u16_at(&m, 36), u16_at(&m, 38)), (15, TCA_KIND));
        assert_eq!(&m[40..51], b"pfifo_fast\0");
        assert_eq!(m.len(), 52, "padded");
    }

    #[test]
    fn route_requests_follow_ip_defaults() {
        let p: Prefix = "10.9.0.0/24".parse().unwrap();
        let m = route_msg(&p, Some(5), None, Some(1300), None, None);
        assert_eq!(u16_at(&m, 4), RTM_NEWROUTE);
        // rtmsg: AF_INET, /24, main table, proto boot, scope link, unicast.
        assert_eq!(&m[16..24], &[libc::AF_INET as u8, 24, 0, 0, 254, 3, 253, 1]);
        assert_eq!((u16_at(&m, 28), u16_at(&m, 30)), (8, RTA_DST));
        assert_eq!(&m[32..36], &[10, 9, 0, 0]);
        assert_eq!((u16_at(&m, 36), u16_at(&m, 38)), (8, RTA_OIF));
        assert_eq!(u32_at(&m, 40), 5);
        assert_eq!(
            (u16_at(&m, 44), u16_at(&m, 46)),
            (12, RTA_METRICS | NLA_F_NESTED)
        );
        assert_eq!((u16_at(&m, 48), u16_at(&m, 50)), (8, RTAX_MTU));
        assert_eq!(u32_at(&m, 52), 1300);
        let g = route_msg(&p, None, None, None, Some(147), Some(4242));
        // Blackhole: proto 147, scope universe, no device, the metric.
        assert_eq!(&g[16..24], &[libc::AF_INET as u8, 24, 0, 0, 254, 147, 0, 6]);
        assert_eq!((u16_at(&g, 36), u16_at(&g, 38)), (8, RTA_PRIORITY));
        assert_eq!(u32_at(&g, 40), 4242);
        let v6 = route_msg(
            &"fd00::/64".parse().unwrap(),
            Some(5),
            None,
            None,
            None,
            None,
        );
        assert_eq!(v6[16], libc::AF_INET6 as u8);
        assert_eq!(v6[22], 0, "IPv6 routes are universe-scoped");
    }

    #[test]
    fn acknowledgements_are_found_and_read() {
        let ack = |seq: u32, code: i32| {
            let mut b = Vec::new();
            b.extend_from_slice(&36u32.to_ne_bytes());
            b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            b.extend_from_slice(&0u16.to_ne_bytes());
            b.extend_from_slice(&seq.to_ne_bytes());
            b.extend_from_slice(&0u32.to_ne_bytes());
            b.extend_from_slice(&code.to_ne_bytes());
            b.extend_from_slice(&[0u8; 16]); // the request's header, echoed
            b
        };
        assert_eq!(ack_errno(&ack(1, 0)), Some(0));
        assert_eq!(ack_errno(&ack(1, -libc::EEXIST)), Some(libc::EEXIST));
        assert_eq!(ack_errno(&ack(2, 0)), None, "another request's answer");
        let mut two = ack(2, -1);
        two.extend(ack(1, -libc::ENODEV));
        assert_eq!(ack_errno(&two), Some(libc::ENODEV));
        assert_eq!(ack_errno(&[0u8; 10]), None, "truncated");
        assert_eq!(ack_errno(&ack(1, 0)[..20]), None, "shorter than it says");
    }

    /// Runs `f` on a thread of its own in a new network namespace (a thread's namespace is its
    /// own: the test process and its other threads stay where they are), with `lo` only.
    pub(crate) fn in_new_netns(f: impl FnOnce() + Send + 'static) {
        assert_eq!(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() },
            0,
            "this test needs root (a network namespace, TUN devices)"
        );
        std::thread::spawn(move || {
            // SAFETY: unshare takes flags only; CLONE_NEWNET moves this thread alone.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            f();
        })
        .join()
        .expect("the test thread");
    }

    /// `PROG ARGS` in the calling thread's namespace (a child inherits it), its stdout.
    pub(crate) fn ip_cmd(prog: &str, args: &[&str]) -> String {
        let out = std::process::Command::new(prog)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{prog} {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn ip_out(args: &[&str]) -> String {
        ip_cmd("ip", args)
    }

    #[test]
    #[ignore = "needs root"]
    fn a_tun_device_is_set_up_and_addressed_through_netlink() {
        in_new_netns(|| {
            let tun = crate::tun::Tun::create(
                "nltest0",
                1400,
                1000,
                true,
                2,
                crate::tun::Queueing::Single,
            )
            .unwrap();
            assert_eq!(tun.queues(), 2);
            let link = ip_out(&["-d", "link", "show", "dev", "nltest0"]);
            for want in ["mtu 1400", "qlen 1000", ",UP", "addrgenmode none"] {
                assert!(link.contains(want), "no '{want}' in {link}");
            }
            let qdiscs = ip_cmd("tc", &["qdisc", "show", "dev", "nltest0"]);
            assert_eq!(qdiscs.lines().count(), 1, "one root qdisc, no mq: {qdiscs}");
            assert!(
                qdiscs.contains("qdisc pfifo_fast") && qdiscs.contains(" root "),
                "{qdiscs}"
            );
            // The shared device keeps the kernel's default (mq, a child per queue).
            let shared = crate::tun::Tun::create(
                "nltest1",
                1400,
                1000,
                true,
                2,
                crate::tun::Queueing::KernelDefault,
            )
            .unwrap();
            let qdiscs = ip_cmd("tc", &["qdisc", "show", "dev", "nltest1"]);
            assert!(qdiscs.contains("qdisc mq"), "{qdiscs}");
            drop(shared);
            let v4: IpAddr = "169.254.0.1".parse().unwrap();
            addr_replace("nltest0", v4, 30).unwrap();
            addr_replace("nltest0", v4, 30).expect("replacing is idempotent");
            addr_replace("nltest0", "fd00:1::1".parse().unwrap(), 64).unwrap();
            let addrs = ip_out(&["addr", "show", "dev", "nltest0"]);
            assert!(addrs.contains("inet 169.254.0.1/30"), "{addrs}");
            assert!(addrs.contains("inet6 fd00:1::1/64"), "{addrs}");
            assert!(
                !addrs.contains("fe80:"),
                "a link-local address despite addrgenmode none: {addrs}"
            );
            let routes = ip_out(&["route", "show", "dev", "nltest0"]);
            assert!(routes.contains("169.254.0.0/30"), "prefix route: {routes}");
            addr_del("nltest0", v4, 30).unwrap();
            let addrs = ip_out(&["addr", "show", "dev", "nltest0"]);
            assert!(!addrs.contains("169.254.0.1"), "{addrs}");
            let e = addr_del("nltest0", v4, 30).unwrap_err();
            assert!(
                e.to_string()
                    .contains("removing address 169.254.0.1/30 from device nltest0"),
                "{e}"
            );
            let e = addr_replace("nosuchdev0", v4, 30).unwrap_err();
            assert!(e.to_string().contains("nosuchdev0"), "{e}");
            // Routes read back exactly as the same ones `ip` makes.
            addr_replace("nltest0", "10.1.0.1".parse().unwrap(), 24).unwrap();
            let p = |s: &str| -> Prefix { s.parse().unwrap() };
            let same = |ours: &str, theirs: &str, family: &str| {
                let show = |pfx: &str| ip_out(&[family, "route", "show", "table", "main", pfx]);
                let (a, b) = (show(ours), show(theirs));
                let ours_host = ours.split('/').next().unwrap();
                let theirs_host = theirs.split('/').next().unwrap();
                assert!(!a.is_empty(), "no route {ours}");
                assert_eq!(a.replace(ours_host, "P"), b.replace(theirs_host, "P"));
            };
            route_replace(&p("10.9.0.0/24"), "nltest0", None, None).unwrap();
            ip_out(&["route", "replace", "10.8.0.0/24", "dev", "nltest0"]);
            same("10.9.0.0/24", "10.8.0.0/24", "-4");
            let src = Some("10.1.0.1".parse().unwrap());
            route_replace(&p("10.9.1.0/24"), "nltest0", src, Some(1300)).unwrap();
            ip_out(&[
                "route",
                "replace",
                "10.8.1.0/24",
                "dev",
                "nltest0",
                "src",
                "10.1.0.1",
                "mtu",
                "1300",
            ]);
            same("10.9.1.0/24", "10.8.1.0/24", "-4");
            route_replace(&p("10.9.1.0/24"), "nltest0", src, Some(1280)).unwrap();
            let r = ip_out(&["route", "show", "10.9.1.0/24"]);
            assert!(
                r.contains("mtu 1280") && !r.contains("1300"),
                "replaced: {r}"
            );
            route_replace(&p("fd00:9::/64"), "nltest0", None, Some(1300)).unwrap();
            ip_out(&[
                "-6",
                "route",
                "replace",
                "fd00:8::/64",
                "dev",
                "nltest0",
                "mtu",
                "1300",
            ]);
            same("fd00:9::/64", "fd00:8::/64", "-6");
            // A guard beside the route for the same prefix: another metric, both stay.
            blackhole_replace(&p("10.9.0.0/24"), 147, 4242).unwrap();
            blackhole_replace(&p("10.9.0.0/24"), 147, 4242).expect("idempotent");
            ip_out(&[
                "route",
                "replace",
                "blackhole",
                "10.8.0.0/24",
                "proto",
                "147",
                "metric",
                "4242",
            ]);
            same("10.9.0.0/24", "10.8.0.0/24", "-4");
            blackhole_replace(&p("fd00:9::/64"), 147, 4242).unwrap();
            ip_out(&[
                "-6",
                "route",
                "replace",
                "blackhole",
                "fd00:8::/64",
                "proto",
                "147",
                "metric",
                "4242",
            ]);
            same("fd00:9::/64", "fd00:8::/64", "-6");
            assert_eq!(
                crate::guard::list().unwrap(),
                [
                    p("10.8.0.0/24"),
                    p("10.9.0.0/24"),
                    p("fd00:8::/64"),
                    p("fd00:9::/64")
                ]
            );
            let e = route_replace(&p("10.9.2.0/24"), "nosuchdev0", None, None).unwrap_err();
            assert!(
                e.to_string().contains("10.9.2.0/24 into device nosuchdev0"),
                "{e}"
            );
            drop(tun);
        });
    }
}
