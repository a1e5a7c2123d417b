//! The control socket: one JSON request per line in, one JSON response per line out. Only
//! root may connect (the socket is created 0600 in a 0700 directory).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::certs::CertList;
use crate::conns::ConnConfig;
use crate::limits::{CONTROL_CONNECTIONS, CONTROL_REQUEST_LINE, READ_DEADLINE, WRITE_DEADLINE};
use crate::rekey::RekeyStarted;
use crate::status::Status;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// The status document. Both fields came later: a client from before sends neither (and
    /// gets everything, as it did), a daemon from before ignores them (and sends everything,
    /// which ironsecctl then filters and summarises itself).
    Status {
        /// Only the connections this name or glob pattern matches (`namefilter`): the daemon
        /// builds only those. Nothing matching is said in the answer's `no_match`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<String>,
        /// With the `summary`; past [`crate::status::BRIEF_OVER`] matching connections, only
        /// the connections that are not up are listed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        brief: bool,
    },
    /// Negotiate the connection's tunnels now.
    Initiate { connection: String },
    /// Delete the connection's IKE SAs and keep them down until `initiate`.
    Terminate { connection: String },
    /// Re-read the config file (and conf.d, and the environment at the daemon's start).
    Reload,
    /// Rekey the connection's CHILD_SAs (or, with `ike`, its IKE SAs) now. Answered with
    /// [`Response::Rekeying`].
    Rekey {
        connection: String,
        #[serde(default)]
        ike: bool,
    },
    /// The running config's connections. Answered with [`Response::Connections`].
    #[serde(rename = "list-conns")]
    ListConns,
    /// The certificates and CRLs the running config loaded. Answered with
    /// [`Response::Certificates`].
    Certs,
    /// The remote-access pools' leases. Answered with [`Response::Leases`].
    Leases,
    /// Delete the IKE SAs of the remote-access clients that authenticated as `identity`.
    Disconnect { identity: String },
    /// Take the gateway out of service (README "Planned maintenance"): withdraw commands,
    /// wait for traffic to move, close every IKE SA. With `wait`, answered with
    /// [`Response::Maintenance`] once drained; without, with [`Response::Ok`] at once.
    Drain {
        #[serde(default = "yes")]
        wait: bool,
    },
    /// Back into service: tunnels up, then the rejoin commands. Answered as `Drain`.
    Rejoin {
        #[serde(default = "yes")]
        wait: bool,
    },
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// Boxed: a status is large and the other answers are a line of text.
    Status(Box<Status>),
    /// The command was applied; the text says what it did.
    Ok(String),
    /// Refused: the daemon's message, shown to the operator as it is.
    Error(String),
    /// The rekeys a `rekey` started (only that request gets it, so older clients never see
    /// it).
    Rekeying(RekeyStarted),
    /// The answer to `list-conns`.
    Connections(Vec<ConnConfig>),
    /// The answer to `certs`.
    Certificates(CertList),
    /// The answer to `leases`.
    Leases(Vec<crate::leases::LeaseInfo>),
    /// What a finished `drain` or `rejoin` did.
    Maintenance(crate::drain::Report),
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

/// How much of an answer is handed to the socket at once: [`WRITE_DEADLINE`] applies to each
/// chunk, so a 40 MB status (10,000 tunnels) is not held to the time a line of text gets.
const CHUNK: usize = 64 * 1024;
/// Chunks serialised ahead of the socket: the encoder waits for a slow reader, and never
/// holds more than this many chunks of the answer.
const CHUNKS_AHEAD: usize = 4;
/// The most a client may take to read one answer in all, however steadily it reads: a
/// client reading a chunk every few seconds would otherwise keep a control slot and an
/// encoder thread for an hour.
const ANSWER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// An [`std::io::Write`] that hands what is written to the socket's task in [`CHUNK`]s; it
/// fails once the task stopped taking them (the client is gone or too slow).
struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Vec<u8>>,
    chunk: usize,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
        self.tx
            .blocking_send(full)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "control client gone"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= self.chunk {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

/// Writes `resp` and a newline to `w`, serialised on a blocking thread straight into
/// [`CHUNK`]-sized writes (never one string of the whole answer), each under
/// [`WRITE_DEADLINE`], all under [`ANSWER_DEADLINE`]. False if the client did not take it
/// (the encoder then stops at its next chunk).
async fn write_answer<W: AsyncWrite + Unpin>(
    w: &mut W,
    resp: Response,
    chunk: usize,
    write_deadline: std::time::Duration,
) -> bool {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CHUNKS_AHEAD);
    let encoder = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(
            chunk,
            ChunkWriter {
                buf: Vec::with_capacity(chunk),
                tx,
                chunk,
            },
        );
        serde_json::to_writer(&mut out, &resp)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .and_then(|()| out.get_mut().flush())
            .is_ok()
    });
    let all = tokio::time::Instant::now() + ANSWER_DEADLINE;
    while let Some(c) = rx.recv().await {
        let deadline = all.min(tokio::time::Instant::now() + write_deadline);
        match tokio::time::timeout_at(deadline, w.write_all(&c)).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
    }
    encoder.await.unwrap_or(false)
}

/// What a client beyond [`CONTROL_CONNECTIONS`] is told before its connection is closed.
pub fn busy() -> String {
    encode(&Response::Error(format!(
        "too many control clients (at most {CONTROL_CONNECTIONS} at once); retry"
    )))
}

/// Serves one client connection with `handler` until it hangs up, sends a request longer than
/// [`CONTROL_REQUEST_LINE`] (answered with an error, then closed), is silent for
/// [`READ_DEADLINE`] or takes longer than [`WRITE_DEADLINE`] to read a chunk of an answer.
/// The handler may take its time (a waiting `drain`): the client just waits for the answer.
pub async fn serve<F, Fut>(stream: UnixStream, handler: F)
where
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let (mut r, mut w) = stream.into_split();
    let mut buf = Vec::new();
    loop {
        let (resp, last) =
            match tokio::time::timeout(READ_DEADLINE, read_line(&mut r, &mut buf)).await {
                Ok(Line::Request(line)) => {
                    let resp = match serde_json::from_slice::<Request>(&line) {
                        Ok(req) => handler(req).await,
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
        if !write_answer(&mut w, resp, CHUNK, WRITE_DEADLINE).await || last {
            return;
        }
    }
}

/// Why ironsecctl got no answer. Connecting names the two causes an operator meets daily
/// apart: no permission on the socket (run as root) and no daemon behind it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("permission denied on {}: {hint}", .socket.display())]
    PermissionDenied { socket: PathBuf, hint: String },
    #[error("ironsecd is not running on {} ({source})", .socket.display())]
    NotRunning {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to {}: {source}", .socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot send request: {0}")]
    Send(std::io::Error),
    #[error("cannot read response: {0}")]
    Read(std::io::Error),
    #[error("bad response from ironsecd: {0}")]
    BadResponse(String),
}

/// Who may connect, for the "permission denied" hint: the owner of the socket or, when even
/// that cannot be looked at (its directory is 0700), of its directory. The socket is 0600,
/// so its owner and root are the only ones.
fn access_hint(owner: Option<u32>) -> String {
    match owner {
        None | Some(0) => "run as root".into(),
        Some(uid) => format!("run as root or as uid {uid} (the socket's owner)"),
    }
}

/// The error for a failed connect to `socket`; `owner` is who owns the socket (or its
/// directory), if that could be read.
pub fn connect_error(socket: &Path, e: std::io::Error, owner: Option<u32>) -> ClientError {
    let socket = socket.to_path_buf();
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => ClientError::PermissionDenied {
            socket,
            hint: access_hint(owner),
        },
        Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => {
            ClientError::NotRunning { socket, source: e }
        }
        _ => ClientError::Connect { socket, source: e },
    }
}

fn owner_of(socket: &Path) -> Option<u32> {
    std::fs::metadata(socket)
        .ok()
        .or_else(|| std::fs::metadata(socket.parent()?).ok())
        .map(|m| m.uid())
}

/// Client side, for ironsecctl: one request, one response (blocking; no runtime needed).
pub fn request(path: &Path, req: &Request) -> Result<Response, ClientError> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| connect_error(path, e, owner_of(path)))?;
    let mut line =
        serde_json::to_string(req).map_err(|e| ClientError::BadResponse(e.to_string()))?;
    line.push('\n');
    // A daemon that refuses the connection (too many clients) answers and closes before
    // reading: the write then fails, and its answer is still there to read.
    let sent = s.write_all(line.as_bytes());
    let mut resp = String::new();
    let read = std::io::BufReader::new(s).read_line(&mut resp);
    if resp.is_empty() {
        sent.map_err(ClientError::Send)?;
        read.map_err(ClientError::Read)?;
    }
    serde_json::from_str(&resp).map_err(|e| ClientError::BadResponse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
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

    fn errno(n: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(n)
    }

    #[test]
    fn connect_errors_say_what_to_do() {
        let p = Path::new("/run/ironsec/ironsecd.sock");
        for n in [libc::EACCES, libc::EPERM] {
            assert_eq!(
                connect_error(p, errno(n), Some(0)).to_string(),
                "permission denied on /run/ironsec/ironsecd.sock: run as root"
            );
        }
        assert_eq!(
            connect_error(p, errno(libc::EACCES), None).to_string(),
            "permission denied on /run/ironsec/ironsecd.sock: run as root"
        );
        assert_eq!(
            connect_error(p, errno(libc::EACCES), Some(998)).to_string(),
            "permission denied on /run/ironsec/ironsecd.sock: run as root or as uid 998 \
             (the socket's owner)"
        );
        for n in [libc::ENOENT, libc::ECONNREFUSED] {
            let m = connect_error(p, errno(n), Some(0)).to_string();
            assert!(
                m.starts_with("ironsecd is not running on /run/ironsec/ironsecd.sock ("),
                "{m}"
            );
            assert!(!m.contains("root"), "{m}");
        }
        let m = connect_error(p, errno(libc::ENOTSOCK), Some(0)).to_string();
        assert!(
            m.starts_with("cannot connect to /run/ironsec/ironsecd.sock: "),
            "{m}"
        );
        assert!(!m.contains("running") && !m.contains("root"), "{m}");
    }

    #[test]
    fn new_requests_keep_the_wire_form() {
        let r: Request = serde_json::from_str(r#"{"command":"rekey","connection":"a"}"#).unwrap();
        assert_eq!(
            r,
            Request::Rekey {
                connection: "a".into(),
                ike: false
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::ListConns).unwrap(),
            r#"{"command":"list-conns"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Certs).unwrap(),
            r#"{"command":"certs"}"#
        );
        let r: Request = serde_json::from_str(r#"{"command":"drain"}"#).unwrap();
        assert_eq!(r, Request::Drain { wait: true });
        assert_eq!(
            serde_json::to_string(&Request::Rejoin { wait: false }).unwrap(),
            r#"{"command":"rejoin","wait":false}"#
        );
        // What older clients send is read as before, and a plain status is sent as before.
        let r: Request = serde_json::from_str(r#"{"command":"status"}"#).unwrap();
        let plain = Request::Status {
            filter: None,
            brief: false,
        };
        assert_eq!(r, plain);
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"command":"status"}"#
        );
        let asked = Request::Status {
            filter: Some("site-*".into()),
            brief: true,
        };
        let line = serde_json::to_string(&asked).unwrap();
        assert_eq!(
            line,
            r#"{"command":"status","filter":"site-*","brief":true}"#
        );
        // A daemon from before (a unit `status`) reads it as a plain status.
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(tag = "command", rename_all = "lowercase")]
        enum Before {
            Status,
            Reload,
        }
        assert_eq!(
            serde_json::from_str::<Before>(&line).unwrap(),
            Before::Status
        );
        assert_eq!(
            serde_json::from_str::<Before>(r#"{"command":"reload"}"#).unwrap(),
            Before::Reload
        );
    }

    #[test]
    fn an_answer_is_written_in_chunks_and_reads_back_whole() {
        let text = "x".repeat(100_000);
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let ok = block_on(write_answer(
            &mut a,
            Response::Ok(text.clone()),
            4096,
            WRITE_DEADLINE,
        ));
        assert!(ok);
        drop(a);
        let got = block_on(async move {
            let mut b = b;
            let mut v = Vec::new();
            b.read_to_end(&mut v).await.unwrap();
            v
        });
        assert_eq!(got.last(), Some(&b'\n'));
        assert_eq!(got.iter().filter(|&&c| c == b'\n').count(), 1);
        let back: Response = serde_json::from_slice(&got).unwrap();
        assert_eq!(back, Response::Ok(text));
    }

    #[test]
    fn a_client_that_stops_reading_stops_the_encoder() {
        // A pipe that holds 8 KiB and is never read: the writer gives up after its deadline
        // for that chunk, and the encoder, blocked on the full queue, ends too.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (mut a, _b) = tokio::io::duplex(8192);
        let big = Response::Ok("y".repeat(1 << 20));
        let wait = std::time::Duration::from_millis(50);
        assert!(!rt.block_on(write_answer(&mut a, big, 4096, wait)));
    }
}
