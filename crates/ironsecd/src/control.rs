//! The control socket: one JSON request per line in, one JSON response per line out. Only
//! root may connect (the socket is created 0600 in a 0700 directory).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::status::Status;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    Status,
    /// Negotiate the connection's tunnels now.
    Initiate {
        connection: String,
    },
    /// Delete the connection's IKE SAs and keep them down until `initiate`.
    Terminate {
        connection: String,
    },
    /// Re-read the config file (and conf.d, and the environment at the daemon's start).
    Reload,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// Boxed: a status is large and the other answers are a line of text.
    Status(Box<Status>),
    /// The command was applied; the text says what it did.
    Ok(String),
    /// Refused: the daemon's message, shown to the operator as it is.
    Error(String),
}

/// Binds the control socket, replacing a stale one left by a crashed daemon but refusing to
/// steal the socket of a daemon that is still running.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    // bind() creates the socket with mode 0777 & ~umask and create_dir_all() the directory with
    // 0777 & ~umask; the chmods below come after. Started with a lax umask (000, or 002 with an
    // existing directory others may enter), the socket was connectable by every local user
    // (terminate, reload) until the chmod, and the new directory writable by them. Create both
    // under umask 077 so they are never more open than owner-only. (The umask is per process;
    // no other thread creates files while the daemon binds its control socket.)
    // SAFETY: umask(2) only swaps the process's file mode mask; it touches no memory.
    let old = unsafe { libc::umask(0o077) };
    let r = bind_private(path);
    // SAFETY: as above, restoring the mask bind_private ran under.
    unsafe { libc::umask(old) };
    r
}

fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running ironsecd", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves one client connection with `handler` until it hangs up.
pub async fn serve<F>(stream: UnixStream, handler: F)
where
    F: Fn(Request) -> Response,
{
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) => handler(req),
            Err(e) => Response::Error(format!("bad request: {e}")),
        };
        let mut out = serde_json::to_string(&resp).unwrap_or_else(|e| {
            serde_json::to_string(&Response::Error(format!("cannot encode response: {e}")))
                .unwrap_or_default()
        });
        out.push('\n');
        if w.write_all(out.as_bytes()).await.is_err() {
            break;
        }
    }
}

/// Client side, for ironsecctl: one request, one response (blocking; no runtime needed).
pub fn request(path: &Path, req: &Request) -> Result<Response, String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot connect to {}: {e} (is ironsecd running?)",
            path.display()
        )
    })?;
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| format!("cannot send request: {e}"))?;
    let mut resp = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut resp)
        .map_err(|e| format!("cannot read response: {e}"))?;
    serde_json::from_str(&resp).map_err(|e| format!("bad response from ironsecd: {e}"))
}
