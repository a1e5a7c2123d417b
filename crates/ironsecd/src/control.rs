//! The control socket: one JSON request per line in, one JSON response per line out. Only
//! root may connect (the socket is created 0600 in a 0700 directory).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::limits::{CONTROL_CONNECTIONS, CONTROL_REQUEST_LINE, READ_DEADLINE, WRITE_DEADLINE};
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

/// One request line read from a client.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line, without its newline.
    Request(Vec<u8>),
    /// [`CONTROL_REQUEST_LINE`] bytes without a newline.
    TooLong,
    /// The client hung up (or the read failed) before a newline.
    Gone,
}

/// Reads one line of at most [`CONTROL_REQUEST_LINE`] bytes, keeping what follows it in `buf`
/// for the next call. Never holds more than the limit plus one read.
async fn read_line<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Line {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = buf.drain(..=i).collect();
            line.pop();
            return Line::Request(line);
        }
        if buf.len() >= CONTROL_REQUEST_LINE {
            return Line::TooLong;
        }
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return Line::Gone,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn encode(resp: &Response) -> String {
    let mut out = serde_json::to_string(resp).unwrap_or_else(|e| {
        serde_json::to_string(&Response::Error(format!("cannot encode response: {e}")))
            .unwrap_or_default()
    });
    out.push('\n');
    out
}

/// What a client beyond [`CONTROL_CONNECTIONS`] is told before its connection is closed.
pub fn busy() -> String {
    encode(&Response::Error(format!(
        "too many control clients (at most {CONTROL_CONNECTIONS} at once); retry"
    )))
}

/// Serves one client connection with `handler` until it hangs up, sends a request longer than
/// [`CONTROL_REQUEST_LINE`] (answered with an error, then closed), is silent for
/// [`READ_DEADLINE`] or takes longer than [`WRITE_DEADLINE`] to read an answer.
pub async fn serve<F>(stream: UnixStream, handler: F)
where
    F: Fn(Request) -> Response,
{
    let (mut r, mut w) = stream.into_split();
    let mut buf = Vec::new();
    loop {
        let (resp, last) =
            match tokio::time::timeout(READ_DEADLINE, read_line(&mut r, &mut buf)).await {
                Ok(Line::Request(line)) => {
                    let resp = match serde_json::from_slice::<Request>(&line) {
                        Ok(req) => handler(req),
                        Err(e) => Response::Error(format!("bad request: {e}")),
                    };
                    (resp, false)
                }
                Ok(Line::TooLong) => (
                    Response::Error(format!(
                    "request longer than {CONTROL_REQUEST_LINE} bytes without a newline; closing"
                )),
                    true,
                ),
                Ok(Line::Gone) | Err(_) => return,
            };
        let out = encode(&resp);
        match tokio::time::timeout(WRITE_DEADLINE, w.write_all(out.as_bytes())).await {
            Ok(Ok(())) if !last => {}
            _ => return,
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
    // A daemon that refuses the connection (too many clients) answers and closes before
    // reading: the write then fails, and its answer is still there to read.
    let sent = s.write_all(line.as_bytes());
    let mut resp = String::new();
    let read = std::io::BufReader::new(s).read_line(&mut resp);
    if resp.is_empty() {
        sent.map_err(|e| format!("cannot send request: {e}"))?;
        read.map_err(|e| format!("cannot read response: {e}"))?;
    }
    serde_json::from_str(&resp).map_err(|e| format!("bad response from ironsecd: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn lines_are_split_and_the_rest_kept() {
        let mut input: &[u8] = b"{\"command\":\"status\"}\n{\"command\":\"reload\"}\n";
        let mut buf = Vec::new();
        let a = block_on(read_line(&mut input, &mut buf));
        assert_eq!(a, Line::Request(b"{\"command\":\"status\"}".to_vec()));
        let b = block_on(read_line(&mut input, &mut buf));
        assert_eq!(b, Line::Request(b"{\"command\":\"reload\"}".to_vec()));
        assert_eq!(block_on(read_line(&mut input, &mut buf)), Line::Gone);
    }

    #[test]
    fn a_line_without_newline_stops_at_the_limit() {
        let big = vec![b'x'; 10 * CONTROL_REQUEST_LINE];
        let mut input: &[u8] = &big;
        let mut buf = Vec::new();
        assert_eq!(block_on(read_line(&mut input, &mut buf)), Line::TooLong);
        assert!(
            buf.len() < CONTROL_REQUEST_LINE + 4096,
            "held {}",
            buf.len()
        );
        // A newline just past the limit does not make it a request either.
        let mut at_limit = vec![b'y'; CONTROL_REQUEST_LINE];
        at_limit.push(b'\n');
        let mut input: &[u8] = &at_limit;
        let mut buf = Vec::new();
        assert_eq!(block_on(read_line(&mut input, &mut buf)), Line::TooLong);
    }
}
