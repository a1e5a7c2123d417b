//! Capabilities: a gateway parses hostile datagrams all day, so a bug there must not hand
//! an attacker more than the two capabilities the daemon needs to do its job.
//!
//! Everything ironsecd does needs only CAP_NET_ADMIN (the TUN device and its queues, routes,
//! socket buffers above the sysctl limits) and CAP_NET_BIND_SERVICE (UDP/500, a low metrics
//! port); files are reached as their owner (root). So the capabilities are dropped first
//! thing, before any thread exists: Linux capabilities are per thread, and threads started
//! later (the fast-path workers) inherit the reduced sets. `ip`, which route changes run,
//! gets the bounding set on exec, so it too holds at most the two.
//!
//! Dropping the sets takes capset(2), which systemd's `@privileged` syscall group holds:
//! `systemd/ironsecd.service` re-allows it after removing that group (its comment says why
//! that, and not skipping this drop, is the safer fix), and `tests/unit_sandbox.rs` runs the
//! daemon under the unit's own filter so the two cannot drift apart again.

use caps::{CapSet, Capability, CapsHashSet};

/// What the daemon keeps.
pub const KEPT: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_NET_BIND_SERVICE];

#[derive(thiserror::Error, Debug)]
pub enum PrivError {
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("cannot {what}: {source}")]
    Caps {
        what: &'static str,
        source: caps::errors::CapsError,
    },
}

fn caps_err(what: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivError {
    move |source| PrivError::Caps { what, source }
}

/// What [`drop_to_network_caps`] left the process with, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub effective: Vec<Capability>,
    /// Capabilities left in the bounding set because the process could not drop them (no
    /// CAP_SETPCAP, e.g. an unprivileged run): harmless under no_new_privs, but worth a line.
    pub bounding_extra: Vec<Capability>,
}

/// Sets no_new_privs and reduces the permitted, effective, inheritable, ambient and (when
/// allowed) bounding sets to [`KEPT`] (or less, if the process did not have them).
pub fn drop_to_network_caps() -> Result<Kept, PrivError> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r != 0 {
        return Err(PrivError::NoNewPrivs(std::io::Error::last_os_error()));
    }
    let kept: CapsHashSet = KEPT.into_iter().collect();
    let permitted = caps::read(None, CapSet::Permitted).map_err(caps_err("read permitted"))?;
    let keep: CapsHashSet = permitted.intersection(&kept).copied().collect();

    caps::clear(None, CapSet::Ambient).map_err(caps_err("clear the ambient set"))?;
    // Bounding first: dropping from it needs CAP_SETPCAP, which goes with the effective set.
    let can_setpcap = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(caps_err("read effective"))?;
    let mut bounding_extra = Vec::new();
    for cap in caps::read(None, CapSet::Bounding).map_err(caps_err("read bounding"))? {
        if kept.contains(&cap) {
            continue;
        }
        if can_setpcap {
            caps::drop(None, CapSet::Bounding, cap).map_err(caps_err("drop from bounding"))?;
        } else {
            bounding_extra.push(cap);
        }
    }
    caps::clear(None, CapSet::Inheritable).map_err(caps_err("clear the inheritable set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(caps_err("set effective"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(caps_err("set permitted"))?;
    let mut effective: Vec<Capability> = keep.into_iter().collect();
    effective.sort_by_key(|c| c.index());
    bounding_extra.sort_by_key(|c| c.index());
    Ok(Kept {
        effective,
        bounding_extra,
    })
}

/// `CAP_NET_ADMIN,CAP_NET_BIND_SERVICE` style, for log fields.
pub fn names(caps: &[Capability]) -> String {
    caps.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
