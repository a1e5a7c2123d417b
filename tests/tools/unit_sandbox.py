#!/usr/bin/python3
"""Runs a program under the sandbox of a systemd service unit, for tests/unit_sandbox.rs.

systemd is not PID 1 on the test machines, so the test reads systemd/ironsecd.service, turns
its [Service] sandbox settings into a JSON spec (syscall groups already expanded with
`systemd-analyze syscall-filter`) and runs ironsecd through this script:

    unit_sandbox.py SPEC.json -- PROGRAM ARGS...

What it applies, in the order systemd's exec_child does (src/core/execute.c), then execv:

  UMask=                      umask(2)
  LimitNOFILE=                setrlimit(RLIMIT_NOFILE), soft = hard = the value (at most
                              the current hard limit without CAP_SYS_RESOURCE)
  CapabilityBoundingSet=      PR_CAPBSET_DROP of every other capability
  AmbientCapabilities=        capset(2) inheritable = ambient (permitted and effective kept),
                              then PR_CAP_AMBIENT_RAISE of each
  NoNewPrivileges=            PR_SET_NO_NEW_PRIVS
  RestrictAddressFamilies=    socket(2) of another family -> EAFNOSUPPORT
  MemoryDenyWriteExecute=     mmap W+X, mprotect/pkey_mprotect +X, shmat SHM_EXEC -> EPERM
  RestrictNamespaces=yes      unshare/clone with a namespace flag -> EPERM, setns -> EPERM,
                              clone3 -> ENOSYS (as systemd: glibc then falls back to clone)
  SystemCallFilter=           allow list; any other syscall kills the process (SIGSYS), as
  SystemCallArchitectures=native   systemd does without SystemCallErrorNumber=; libseccomp's
                              filter is for the native architecture only, so a syscall of
                              another ABI is killed too.

Each setting is its own seccomp filter, stacked like systemd's: the kernel takes the most
severe verdict of all of them. Syscall names that this libseccomp does not know are skipped,
as systemd skips them. Needs Debian's python3-seccomp (libseccomp's own binding) and root.
"""

import ctypes
import json
import os
import resource
import socket
import sys

import seccomp

# linux/prctl.h
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
# linux/capability.h
LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
# mman.h, shm.h, sched.h
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
NAMESPACE_FLAGS = [
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
]
EPERM, ENOSYS, EAFNOSUPPORT = 1, 38, 97

libc = ctypes.CDLL(None, use_errno=True)


def check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        sys.exit(f"unit_sandbox: {what}: {os.strerror(err)}")


def cap_number(name):
    try:
        return CAPS.index(name)
    except ValueError:
        sys.exit(f"unit_sandbox: unknown capability {name}")


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def set_inheritable(caps):
    header = CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (CapData * 2)()
    check(libc.capget(ctypes.byref(header), data), "capget")
    mask = 0
    for c in caps:
        mask |= 1 << c
    data[0].inheritable = mask & 0xFFFFFFFF
    data[1].inheritable = mask >> 32
    check(libc.capset(ctypes.byref(header), data), "capset inheritable")


def add(f, action, name, *args):
    """Adds a rule. A syscall this libseccomp does not know, or that does not exist on this
    architecture (a negative pseudo-syscall number), is skipped, as systemd skips them."""
    try:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    except (ValueError, RuntimeError):
        return False
    if number < 0:
        return False
    f.add_rule(action, name, *args)
    return True


def address_family_filter(families):
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    allowed = sorted(getattr(socket, name) for name in families)
    deny = seccomp.ERRNO(EAFNOSUPPORT)
    add(f, deny, "socket", seccomp.Arg(0, seccomp.GT, allowed[-1]))
    for af in range(allowed[-1]):
        if af not in allowed:
            add(f, deny, "socket", seccomp.Arg(0, seccomp.EQ, af))
    return f


def mdwe_filter():
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    deny = seccomp.ERRNO(EPERM)
    wx = PROT_WRITE | PROT_EXEC
    add(f, deny, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
    add(f, deny, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
    add(f, deny, "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
    add(f, deny, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
    return f


def namespace_filter():
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    deny = seccomp.ERRNO(EPERM)
    add(f, deny, "setns")
    add(f, seccomp.ERRNO(ENOSYS), "clone3")
    for flag in NAMESPACE_FLAGS:
        add(f, deny, "unshare", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        add(f, deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    return f


def syscall_filter(allowed):
    f = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
    known = sum(add(f, seccomp.ALLOW, name) for name in allowed)
    if known == 0:
        sys.exit("unit_sandbox: empty syscall allow list")
    return f


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: unit_sandbox.py SPEC.json -- PROGRAM ARGS...")
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    argv = sys.argv[3:]

    if spec.get("umask") is not None:
        os.umask(int(spec["umask"], 8))
    if spec.get("limit_nofile") is not None:
        # Above the current hard limit only with CAP_SYS_RESOURCE, which systemd has and a
        # container's root may lack: then the hard limit is as far as it goes (the test
        # expects the same).
        n = int(spec["limit_nofile"])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), min(n, hard)))
    bounding = spec.get("capability_bounding_set")
    if bounding is not None:
        keep = {cap_number(c) for c in bounding}
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
        for cap in range(last + 1):
            if cap not in keep:
                check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop {cap} from bounding")
    ambient = [cap_number(c) for c in spec.get("ambient_capabilities", [])]
    if ambient:
        set_inheritable(ambient)
        for cap in ambient:
            check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0),
                  f"raise ambient {cap}")
    if spec.get("no_new_privileges"):
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")

    filters = []
    if spec.get("address_families"):
        filters.append(address_family_filter(spec["address_families"]))
    if spec.get("memory_deny_write_execute"):
        filters.append(mdwe_filter())
    if spec.get("restrict_namespaces"):
        filters.append(namespace_filter())
    if spec.get("syscall_allow") is not None:
        filters.append(syscall_filter(spec["syscall_allow"]))
    for f in filters:
        f.load()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
