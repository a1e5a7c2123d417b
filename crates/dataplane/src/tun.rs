//! The TUN device: the site-facing side of the fast path. This is the one module that knows
//! how TUN devices are opened. Two ways: with offload (our own ioctls: IFF_VNET_HDR and
//! TUNSETOFFLOAD with checksum, TSO and USO, so the kernel hands over 64 KiB TCP super-packets
//! and merged runs of UDP datagrams, see [`crate::offload`]), or plainly through `tun-tap` when
//! the kernel refuses offload or it is turned off.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use tun_tap::{Iface, Mode};

use crate::DataplaneError;

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

enum Dev {
    Plain(Iface),
    /// Opened with a virtio-net header before every packet, TSO and checksum offload on; one
    /// queue per worker when there are several (IFF_MULTI_QUEUE: the kernel spreads flows).
    Vnet {
        files: Vec<File>,
        name: String,
        /// The kernel also hands over UDP super-packets (USO, Linux 6.2+).
        uso: bool,
    },
}

pub struct Tun {
    dev: Dev,
}

/// How a device queues what the kernel sends into it: its root qdisc.
///
/// A multi-queue TUN device has 256 possible queues however many are open, and the
/// kernel's default for a multi-queue device is `mq` with a default qdisc (`pfifo_fast`, three
/// rings of txqueuelen entries) for each of the 256: measured here, bringing 500 such devices
/// up took 2.95 s and 3.2 GiB of kernel memory (6.5 MiB each), 0.16 s and 135 MiB with one
/// root qdisc. The TUN driver drops at its own ring (txqueuelen packets per queue) rather than
/// stopping the queue, so the qdisc never holds a packet either way (`tc -s qdisc`: backlog 0,
/// the device's TX dropped counts the overflow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queueing {
    /// The kernel's default (the gateway's one shared device).
    KernelDefault,
    /// One `pfifo_fast` at the root for all queues, set before the device comes up (a
    /// route-based connection's device: there may be thousands).
    Single,
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens one queue of the device; returns it, the device's name and whether USO is on.
fn open_vnet(name: &str, multi: bool) -> io::Result<(File, String, bool)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | if multi { IFF_MULTI_QUEUE } else { 0 },
        _pad: [0; 22],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is laid out as.
    if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let set_offload = |flags: libc::c_uint| {
        // SAFETY: TUNSETOFFLOAD takes the flags as an integer argument.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_ulong) } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    let tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    // UDP segmentation too (Linux 6.2+), so that datagrams the LAN interface's GRO merged stay
    // merged up to our read; older kernels refuse the unknown flags with EINVAL.
    let uso = match set_offload(tso | TUN_F_USO4 | TUN_F_USO6) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            set_offload(tso)?;
            false
        }
        Err(e) => return Err(e),
    };
    let end = req
        .name
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(libc::IFNAMSIZ);
    Ok((
        file,
        String::from_utf8_lossy(&req.name[..end]).into_owned(),
        uso,
    ))
}

impl Tun {
    /// Creates (or attaches to) the device, then sets MTU, queue length and `queueing` and
    /// brings it up.
    /// The queue length matters: the kernel default (500) is where a busy userspace gateway
    /// loses packets first (ARCHITECTURE.md). With `offload`, asks for TSO, USO and checksum offload
    /// (TSO only where the kernel predates USO) and falls back to a plain device if the kernel
    /// refuses.
    pub fn create(
        name: &str,
        mtu: u16,
        txqueuelen: u32,
        offload: bool,
        queues: usize,
        queueing: Queueing,
    ) -> Result<Tun, DataplaneError> {
        let err = |e| DataplaneError::Tun {
            name: name.to_string(),
            source: e,
        };
        let multi = queues > 1;
        let open_all = || -> io::Result<(Vec<File>, String, bool)> {
            let (first, dev, uso) = open_vnet(name, multi)?;
            let mut files = vec![first];
            for _ in 1..queues {
                files.push(open_vnet(&dev, multi)?.0);
            }
            Ok((files, dev, uso))
        };
        let vnet = if offload {
            match open_all() {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(tun = %name, error = %e, "TUN offload refused; plain TUN device");
                    None
                }
            }
        } else {
            None
        };
        let dev = match vnet {
            Some((files, name, uso)) => Dev::Vnet { files, name, uso },
            None => {
                let iface = Iface::without_packet_info(name, Mode::Tun).map_err(err)?;
                iface.set_non_blocking().map_err(err)?;
                Dev::Plain(iface)
            }
        };
        let t = Tun { dev };
        // No IPv6 link-local address first (the kernel would otherwise send router
        // solicitations and MLD reports into the tunnel, which match no policy and only add
        // noise), then MTU, queue length and up: one netlink request each, not an `ip`
        // process, since a route-based connection makes a device of its own.
        crate::netlink::link_setup(t.name(), mtu, txqueuelen, queueing == Queueing::Single)?;
        Ok(t)
    }

    pub fn name(&self) -> &str {
        match &self.dev {
            Dev::Plain(i) => i.name(),
            Dev::Vnet { name, .. } => name,
        }
    }

    /// Whether reads start with a virtio-net header and writes must too.
    pub fn vnet(&self) -> bool {
        matches!(self.dev, Dev::Vnet { .. })
    }

    /// Whether reads may bring UDP super-packets too (see [`crate::offload`]).
    pub fn uso(&self) -> bool {
        matches!(self.dev, Dev::Vnet { uso: true, .. })
    }

    /// How many queues (file descriptors) the device has; worker `w` uses queue
    /// `w % queues()`.
    pub fn queues(&self) -> usize {
        match &self.dev {
            Dev::Plain(_) => 1,
            Dev::Vnet { files, .. } => files.len(),
        }
    }

    /// Non-blocking read of one packet from queue `q` (with offload: the header, then a
    /// packet or a TSO super-packet).
    #[inline]
    pub fn recv(&self, q: usize, buf: &mut [u8]) -> io::Result<usize> {
        match &self.dev {
            Dev::Plain(i) => i.recv(buf),
            Dev::Vnet { files, .. } => (&files[q % files.len()]).read(buf),
        }
    }

    /// Writes one packet into the local stack through queue `q`. With offload, `pkt` must
    /// start with a virtio-net header (all zeros: a plain packet with its checksums done).
    #[inline]
    pub fn send(&self, q: usize, pkt: &[u8]) -> io::Result<usize> {
        match &self.dev {
            Dev::Plain(i) => i.send(pkt),
            Dev::Vnet { files, .. } => (&files[q % files.len()]).write(pkt),
        }
    }

    /// The file descriptor of queue `q`, to poll.
    pub fn fd(&self, q: usize) -> RawFd {
        match &self.dev {
            Dev::Plain(i) => i.as_raw_fd(),
            Dev::Vnet { files, .. } => files[q % files.len()].as_raw_fd(),
        }
    }
}
