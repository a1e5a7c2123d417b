//! The floor of any userspace tunnel, for `netns-scripts/bench.sh --cases null`: a TUN device
//! and a connected UDP socket, one packet per system call each way, no encryption, no
//! batching, no offload. It is NOT a tunnel anyone should run: it carries the inner packets in
//! clear text to one fixed peer.
//!
//! What it is for: it does the least work a userspace gateway can do per packet, with the same
//! thread wake-ups per round trip as ironsecd (the sending gateway's reader, the receiving
//! gateway's reader, and back). Whatever latency it adds over the kernel forwarding on its own
//! is what the machine charges for leaving the kernel, which no userspace tunnel can beat; the
//! gap between it and ironsec is what ironsec's own work (and its batching) adds or saves.
//!
//! Usage: null_forwarder TUN LOCAL_ADDR:PORT PEER_ADDR:PORT MTU TXQUEUELEN
//! Prints "ready <device>" on stdout once the device is up; runs until killed.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use ironsec_dataplane::tun::{Queueing, Tun};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("null_forwarder: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, local, peer, mtu, qlen] = args.as_slice() else {
        return Err(
            "usage: null_forwarder TUN LOCAL_ADDR:PORT PEER_ADDR:PORT MTU TXQUEUELEN".into(),
        );
    };
    let addr = |what: &str, s: &str| {
        s.parse::<SocketAddr>()
            .map_err(|e| format!("{what} {s:?}: {e}"))
    };
    let (local, peer) = (addr("local address", local)?, addr("peer address", peer)?);
    let mtu: u16 = mtu.parse().map_err(|e| format!("MTU {mtu:?}: {e}"))?;
    let qlen: u32 = qlen
        .parse()
        .map_err(|e| format!("txqueuelen {qlen:?}: {e}"))?;

    // A plain device (no offload) with one queue: one packet per read and per write.
    let tun = Tun::create(name, mtu, qlen, false, 1, Queueing::KernelDefault)
        .map_err(|e| e.to_string())?;
    let sock = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
    sock.connect(peer)
        .map_err(|e| format!("connect {peer}: {e}"))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("non-blocking socket: {e}"))?;
    println!("ready {}", tun.name());

    let mut fds = [
        libc::pollfd {
            fd: tun.fd(0),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let mut buf = vec![0u8; 65_536];
    loop {
        // SAFETY: fds is a valid array of two pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        // The socket's POLLERR is a pending ICMP error (the peer was not listening yet), which
        // the next recv reports and clears; the device's is fatal (it was deleted).
        if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err(format!("TUN device {} failed", tun.name()));
        }
        // Drain both sides; a send that fails (full queue, no route) loses that packet, as
        // any gateway under overload would.
        while let Ok(n) = tun.recv(0, &mut buf) {
            let _ = sock.send(&buf[..n]);
        }
        while let Ok(n) = sock.recv(&mut buf) {
            let _ = tun.send(0, &buf[..n]);
        }
    }
}
