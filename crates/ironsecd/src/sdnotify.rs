//! systemd's notify protocol (sd_notify(3)) without libsystemd: a datagram to $NOTIFY_SOCKET.
//! Outside systemd the variable is unset and every call is a no-op.
//!
//! One socket, opened by [`init`] when the daemon starts and reused for every message: a
//! socket per message needs a free descriptor each time, and when a flood of clients had used
//! them up the WATCHDOG=1 keep-alives stopped and systemd would have killed the daemon (issue 19).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

/// The socket and where its messages go.
#[derive(Debug)]
struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    path: String,
}

impl Notifier {
    /// For `$NOTIFY_SOCKET`'s value: a path, or `@name` for an abstract socket.
    fn open(path: &str) -> std::io::Result<Notifier> {
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None => SocketAddr::from_pathname(path)?,
        };
        let sock = UnixDatagram::unbound()?;
        // Never block the event loop on a full notify queue: a lost WATCHDOG=1 costs less than
        // a stalled daemon, and the next one follows.
        sock.set_nonblocking(true)?;
        Ok(Notifier {
            sock,
            addr,
            path: path.to_string(),
        })
    }

    fn send(&self, state: &str) {
        match self.sock.send_to_addr(state.as_bytes(), &self.addr) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tracing::debug!(socket = %self.path, state, "notify socket full; message dropped")
            }
            Err(e) => tracing::warn!(error = %e, socket = %self.path, "cannot notify systemd"),
        }
    }
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

fn notifier() -> Option<&'static Notifier> {
    NOTIFIER
        .get_or_init(|| {
            let path = std::env::var_os("NOTIFY_SOCKET")?;
            let path = path.to_string_lossy().into_owned();
            Notifier::open(&path)
                .map_err(
                    |e| tracing::warn!(error = %e, socket = %path, "cannot open the notify socket"),
                )
                .ok()
        })
        .as_ref()
}

/// Opens the notify socket now if systemd asked for notifications (the first [`notify`] would
/// otherwise). Call it at start, before descriptors can run short.
pub fn init() {
    notifier();
}

/// Sends `state` (e.g. "READY=1") if systemd asked for notifications.
pub fn notify(state: &str) {
    if let Some(n) = notifier() {
        n.send(state);
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
    fn one_socket_sends_every_state() {
        let dir = std::env::temp_dir().join(format!("ironsec-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("notify");
        let rx = UnixDatagram::bind(&sock).unwrap();
        let n = Notifier::open(sock.to_str().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        for state in ["READY=1", "WATCHDOG=1", "WATCHDOG=1"] {
            n.send(state);
            let len = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..len], state.as_bytes());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
