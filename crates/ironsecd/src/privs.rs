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
    #[error("cannot turn off core dumps ({what}): {source}")]
    CoreDumps {
        what: &'static str,
        source: std::io::Error,
    },
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

/// Makes sure no core dump of this process is ever written: the daemon holds PSKs and IKE
/// and ESP keys, and a core of an aborted ironsecd once held three raw copies of the PSK.
///
/// Two independent locks, both set before the config (and so any key file) is read:
/// - `RLIMIT_CORE` 0 (soft and hard, so no later code can raise it again): the kernel writes
///   no core file for a limit of 0. Set with prlimit(2), not setrlimit(2): the unit's syscall
///   filter denies `@resources`, which holds setrlimit, while prlimit64 is allowed.
/// - `PR_SET_DUMPABLE` 0: the kernel dumps no core of a non-dumpable process whatever the
///   limit, even to a `core_pattern` pipe handler (systemd-coredump, apport), which ignores
///   `RLIMIT_CORE`; it also keeps other processes of the same user from ptrace-attaching
///   (gdb, gcore) or reading its memory through /proc. Side effect: /proc/PID files become
///   root-owned, which nothing in ironsec reads as another user. Capability changes made
///   afterwards ([`drop_to_network_caps`] only shrinks the sets) do not reset the flag; an
///   exec does, so the `ip` children are dumpable again, but they hold no keys.
pub fn forbid_core_dumps() -> Result<(), PrivError> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit on our own process (pid 0) with a valid rlimit to read and no old value
    // wanted (null is allowed).
    let r = unsafe { libc::prlimit(0, libc::RLIMIT_CORE, &zero, std::ptr::null_mut()) };
    if r != 0 {
        return Err(PrivError::CoreDumps {
            what: "RLIMIT_CORE 0",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: prctl with PR_SET_DUMPABLE takes integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if r != 0 {
        return Err(PrivError::CoreDumps {
            what: "PR_SET_DUMPABLE 0",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// `CAP_NET_ADMIN,CAP_NET_BIND_SERVICE` style, for log fields.
pub fn names(caps: &[Capability]) -> String {
    caps.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in a child process (fork), so the test binary itself stays dumpable.
    #[test]
    fn core_dumps_are_forbidden_for_good() {
        // SAFETY: fork in a test; the child only makes syscalls and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = forbid_core_dumps().is_ok();
            // SAFETY: prctl(PR_GET_DUMPABLE) takes no pointers.
            let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
            let mut lim = libc::rlimit {
                rlim_cur: 1,
                rlim_max: 1,
            };
            // SAFETY: getrlimit writes into a valid rlimit.
            unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) };
            // The soft limit may not exceed the hard limit of 0 now.
            let raise = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: 0,
            };
            // SAFETY: prlimit on our own process with a valid rlimit.
            let raised =
                unsafe { libc::prlimit(0, libc::RLIMIT_CORE, &raise, std::ptr::null_mut()) } == 0;
            let code = if ok && dumpable == 0 && lim.rlim_cur == 0 && lim.rlim_max == 0 && !raised {
                0
            } else {
                1
            };
            // SAFETY: _exit ends the forked child without running the test harness's code.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
