//! An interface's offload features, read the way `ethtool -k` reads them (the SIOCETHTOOL
//! ioctl: the feature names, then their active bits). Used once at startup to tell the operator
//! when a LAN interface would hand the tunnel merged UDP datagrams if it were tuned; never on
//! the packet path. Reading needs no privilege.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
/// The string set of netdev feature names, by their kernel names ("rx-gro", which `ethtool -k`
/// shows as generic-receive-offload, "rx-udp-gro-forwarding", ...).
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// The kernel's `struct ifreq` as SIOCETHTOOL reads it: a name and a pointer to the command.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Every feature the kernel names, and which of them are active on one interface.
#[derive(Debug, Clone)]
pub struct Features {
    names: Vec<String>,
    /// Bit `i` of word `i / 32` is feature `names[i]`.
    active: Vec<u32>,
}

impl Features {
    /// Reads the features of interface `ifname` in this network namespace.
    pub fn read(ifname: &str) -> io::Result<Features> {
        if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {ifname:?}"),
            ));
        }
        // SAFETY: plain socket(2); the descriptor is owned by the OwnedFd from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let ioctl = |cmd: &mut [u32]| -> io::Result<()> {
            let mut req = IfReq {
                name: [0; libc::IFNAMSIZ],
                data: cmd.as_mut_ptr().cast(),
                _pad: [0; 16],
            };
            req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
            // SAFETY: req names the interface and points at a command buffer sized for what
            // the command writes back (each caller sizes it from the count the kernel gave).
            let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };

        // struct ethtool_sset_info: cmd, reserved, u64 sset_mask, then one u32 per set asked.
        let mut info = [ETHTOOL_GSSET_INFO, 0, 0, 0, 0];
        let mask = (1u64 << ETH_SS_FEATURES).to_ne_bytes();
        info[2] = u32::from_ne_bytes([mask[0], mask[1], mask[2], mask[3]]);
        info[3] = u32::from_ne_bytes([mask[4], mask[5], mask[6], mask[7]]);
        ioctl(&mut info)?;
        let count = info[4] as usize;
        if count == 0 || count > 4096 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("kernel reports {count} feature names"),
            ));
        }

        // struct ethtool_gstrings: cmd, string_set, len, then len names of 32 bytes.
        let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
        strings[..3].copy_from_slice(&[ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count as u32]);
        ioctl(&mut strings)?;
        let bytes: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        let names = parse_names(&bytes, count);

        // struct ethtool_gfeatures: cmd, size, then size blocks of available, requested,
        // active, never_changed.
        let blocks = count.div_ceil(32);
        let mut feats = vec![0u32; 2 + blocks * 4];
        feats[..2].copy_from_slice(&[ETHTOOL_GFEATURES, blocks as u32]);
        ioctl(&mut feats)?;
        let active = feats[2..].chunks_exact(4).map(|b| b[2]).collect();
        Ok(Features { names, active })
    }

    /// Whether feature `name` is active; `None` if this kernel has no feature of that name.
    pub fn active(&self, name: &str) -> Option<bool> {
        let i = self.names.iter().position(|n| n == name)?;
        Some(bit(&self.active, i))
    }
}

/// `count` NUL-padded names of ETH_GSTRING_LEN bytes each.
fn parse_names(bytes: &[u8], count: usize) -> Vec<String> {
    bytes
        .chunks_exact(ETH_GSTRING_LEN)
        .take(count)
        .map(|c| {
            let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
            String::from_utf8_lossy(&c[..end]).into_owned()
        })
        .collect()
}

fn bit(words: &[u32], i: usize) -> bool {
    words.get(i / 32).is_some_and(|w| w & (1 << (i % 32)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_split_at_their_padding() {
        let mut b = vec![0u8; 3 * ETH_GSTRING_LEN];
        b[..3].copy_from_slice(b"tso");
        b[ETH_GSTRING_LEN..ETH_GSTRING_LEN + 21].copy_from_slice(b"rx-udp-gro-forwarding");
        // A name that fills its 32 bytes has no NUL.
        b[2 * ETH_GSTRING_LEN..].copy_from_slice(&[b'x'; ETH_GSTRING_LEN]);
        let n = parse_names(&b, 3);
        assert_eq!(n[0], "tso");
        assert_eq!(n[1], "rx-udp-gro-forwarding");
        assert_eq!(n[2], "x".repeat(ETH_GSTRING_LEN));
    }

    #[test]
    fn active_bits_map_to_names_across_words() {
        let f = Features {
            names: (0..40).map(|i| format!("f{i}")).collect(),
            active: vec![1 << 3, 1 << (35 - 32)],
        };
        assert_eq!(f.active("f3"), Some(true));
        assert_eq!(f.active("f4"), Some(false));
        assert_eq!(f.active("f35"), Some(true));
        assert_eq!(f.active("f39"), Some(false));
        assert_eq!(f.active("nope"), None);
    }

    /// The real ioctl on loopback, which every namespace has: the kernel names the two
    /// features the startup hint reads (by their kernel names: `ethtool -k` shows "rx-gro" as
    /// generic-receive-offload; the second needs Linux 5.12+).
    #[test]
    fn loopback_features_are_read_from_the_kernel() {
        let f = Features::read("lo").expect("SIOCETHTOOL on lo");
        assert!(f.active("rx-gro").is_some(), "{f:?}");
        assert!(f.active("rx-udp-gro-forwarding").is_some(), "{f:?}");
        assert!(Features::read("no-such-if0").is_err());
        assert!(Features::read("").is_err());
    }
}
