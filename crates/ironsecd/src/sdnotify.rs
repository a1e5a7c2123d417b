//! systemd's notify protocol (sd_notify(3)) without libsystemd: a datagram to $NOTIFY_SOCKET.
//! Outside systemd the variable is unset and every call is a no-op.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends `state` (e.g. "READY=1") if systemd asked for notifications.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    // Never block the event loop on a full notify queue: a lost WATCHDOG=1 costs less than a
    // stalled daemon, and the next one follows.
    let sent = addr.and_then(|a| {
        let s = UnixDatagram::unbound()?;
        s.set_nonblocking(true)?;
        s.send_to_addr(state.as_bytes(), &a)
    });
    match sent {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            tracing::debug!(socket = %path, state, "notify socket full; message dropped")
        }
        Err(e) => tracing::warn!(error = %e, socket = %path, "cannot notify systemd"),
    }
}

/// Tells systemd a reload started; READY=1 must follow when it is over. MONOTONIC_USEC lets
/// `Type=notify-reload` units (systemd 253+) match the two.
pub fn reloading() {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass, which lives across the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000;
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

/// How often to send WATCHDOG=1: half the interval systemd set, if it set one.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if pid != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_state_to_the_notify_socket() {
        let dir = std::env::temp_dir().join(format!("ironsec-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("notify");
        let rx = UnixDatagram::bind(&sock).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &sock);
        notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
