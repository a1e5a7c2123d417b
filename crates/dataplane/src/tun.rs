//! The TUN device: the site-facing side of the fast path. This is the one module that knows
//! how TUN devices are opened, so swapping `tun-tap` for an offload-capable implementation later
//! is a change in one place.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tun_tap::{Iface, Mode};

use crate::iproute::ip;
use crate::DataplaneError;

pub struct Tun {
    iface: Iface,
}

impl Tun {
    /// Creates (or attaches to) the device, then sets MTU and queue length and brings it up.
    /// The queue length matters: the kernel default (500) is where a busy userspace gateway
    /// loses packets first (DESIGN.md).
    pub fn create(name: &str, mtu: u16, txqueuelen: u32) -> Result<Tun, DataplaneError> {
        let iface =
            Iface::without_packet_info(name, Mode::Tun).map_err(|e| DataplaneError::Tun {
                name: name.to_string(),
                source: e,
            })?;
        iface.set_non_blocking().map_err(|e| DataplaneError::Tun {
            name: name.to_string(),
            source: e,
        })?;
        let dev = iface.name().to_string();
        // No IPv6 link-local address: the kernel would otherwise send router solicitations
        // and MLD reports into the tunnel, which match no policy and only add noise.
        ip(&["link", "set", "dev", &dev, "addrgenmode", "none"])?;
        ip(&[
            "link",
            "set",
            "dev",
            &dev,
            "mtu",
            &mtu.to_string(),
            "txqueuelen",
            &txqueuelen.to_string(),
            "up",
        ])?;
        Ok(Tun { iface })
    }

    pub fn name(&self) -> &str {
        self.iface.name()
    }

    /// Non-blocking read of one packet.
    #[inline]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.iface.recv(buf)
    }

    /// Writes one packet into the local stack.
    #[inline]
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        self.iface.send(pkt)
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.iface.as_raw_fd()
    }
}
