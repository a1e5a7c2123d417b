//! Carries out what the drain machine (`crate::drain`) decides: the state file, the withdraw
//! and rejoin commands (tokio::process, no shell, each within `drain.timeout`), closing and
//! releasing the plane's connections, and telling waiting clients and the stop path. Samples
//! come from the event loop's 100 ms timer, so the watchdog keep-alives go on meanwhile.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

use super::Running;
use crate::control::Response;
use crate::drain::{CommandOutcome, Effect, Kind, Machine, Outcome, Refused, Report, State};

/// Finished operations waiting clients may not have read yet (each waits for its own).
pub(super) const FINISHED_QUEUE: usize = 16;
/// The longest stderr line kept for the log.
const STDERR_LINE: usize = 200;

impl Running {
    fn machine(&self) -> MutexGuard<'_, Machine> {
        self.drain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The drain state for status and metrics: state, what is happening, the last report.
    pub(super) fn drain_status(&self) -> crate::status::DrainStatus {
        let refused = self.plane().drain_refused();
        let m = self.machine();
        crate::status::DrainStatus {
            state: m.state().name().into(),
            detail: m.detail(Instant::now()),
            last: m.last().map(String::from),
            last_drain_ms: m.last_drain_secs().map(|s| (s * 1000.0).round() as u64),
            ike_sa_init_refused: refused,
        }
    }

    pub(super) fn drain_state(&self) -> State {
        self.machine().state()
    }

    /// Starts a drain; answers the operation to wait for.
    pub(super) fn start_drain(self: &Arc<Self>, origin: &str) -> Result<u64, Refused> {
        let settings = self.plane().config().drain.clone();
        let (op, fx) = self.machine().drain(Instant::now(), &settings, origin)?;
        tracing::info!(origin, "drain: started");
        self.apply_drain(fx);
        Ok(op)
    }

    /// Starts a rejoin; answers the operation to wait for.
    pub(super) fn start_rejoin(self: &Arc<Self>, origin: &str) -> Result<u64, String> {
        if self.stop_after_drain.load(Ordering::Relaxed) {
            return Err("ironsecd is stopping (SIGTERM with drain.on_stop): no rejoin".into());
        }
        let settings = self.plane().config().drain.clone();
        let (op, fx) = self.machine().rejoin(Instant::now(), &settings, origin);
        tracing::info!(origin, "rejoin: started");
        self.apply_drain(fx);
        Ok(op)
    }

    /// The event loop's 100 ms timer: a sample for the machine while it waits.
    pub(super) fn drain_tick(self: &Arc<Self>) {
        if !self.machine().wants_samples() {
            return;
        }
        let (packets, ready) = {
            let p = self.plane();
            (p.traffic_packets(), p.drain_ready())
        };
        let fx = self.machine().tick(Instant::now(), packets, ready);
        self.apply_drain(fx);
    }

    /// Waits for operation `op` to finish (`rx` subscribed before it started).
    pub(super) async fn wait_drain(
        &self,
        mut rx: broadcast::Receiver<(u64, Outcome)>,
        op: u64,
    ) -> Response {
        loop {
            match rx.recv().await {
                Ok((id, outcome)) if id == op => {
                    return match outcome {
                        Ok(r) => Response::Maintenance(r),
                        Err(e) => Response::Error(e),
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Response::Error("ironsecd is exiting".into())
                }
            }
        }
    }

    fn apply_drain(self: &Arc<Self>, fx: Vec<Effect>) {
        if fx.is_empty() {
            return;
        }
        let mut queue: std::collections::VecDeque<Effect> = fx.into();
        while let Some(e) = queue.pop_front() {
            match e {
                Effect::WriteState { file, draining } => write_state(&file, draining),
                Effect::Run {
                    kind,
                    commands,
                    limit,
                } => {
                    let running = self.clone();
                    tokio::spawn(async move {
                        let outcomes = run_commands(kind, &commands, limit).await;
                        let fx = running.machine().commands_done(Instant::now(), &outcomes);
                        running.apply_drain(fx);
                    });
                }
                Effect::CloseAll => {
                    let deleted = self.act(|p, now| p.drain_close(now));
                    self.wake.notify_one();
                    queue.extend(self.machine().closed(Instant::now(), deleted));
                }
                Effect::ReleaseHolds => {
                    self.act(|p, now| p.drain_release(now));
                    self.wake.notify_one();
                }
                Effect::Finished { op, outcome } => {
                    match &outcome {
                        Ok(r @ Report::Drain(_)) => {
                            tracing::info!("{r}");
                            crate::sdnotify::notify("STATUS=drained");
                            if self.stop_after_drain.load(Ordering::Relaxed) {
                                self.stop.notify_one();
                            }
                        }
                        Ok(r @ Report::Rejoin(_)) => {
                            tracing::info!("{r}");
                            crate::sdnotify::notify("STATUS=ready");
                        }
                        Err(why) => tracing::info!(op, "drain/rejoin operation ended: {why}"),
                    }
                    let _ = self.drain_done.send((op, outcome));
                }
            }
        }
        if self.machine().state() == State::Draining {
            crate::sdnotify::notify("STATUS=draining");
        }
    }
}

/// Writes "1\n" or "0\n" into the state file through a temporary file and a rename, so a
/// reader (keepalived's track_file) never sees it empty. A failure is logged; the drain goes
/// on (traffic may then not move, and the wait ends by its timeout).
fn write_state(file: &Path, draining: bool) {
    let value = if draining { "1\n" } else { "0\n" };
    let tmp = file.with_extension("ironsec-tmp");
    let r = std::fs::write(&tmp, value).and_then(|()| std::fs::rename(&tmp, file));
    match r {
        Ok(()) => tracing::info!(
            state_file = %file.display(),
            value = value.trim_end(),
            "drain: state file written"
        ),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(state_file = %file.display(), error = %e, "drain: cannot write the state file")
        }
    }
}

/// Runs `commands` one after the other, each killed after `limit`. Logs each one's program
/// (never its arguments, which may hold anything), exit status and first stderr line.
async fn run_commands(
    kind: Kind,
    commands: &[Vec<String>],
    limit: Duration,
) -> Vec<CommandOutcome> {
    let what = match kind {
        Kind::Drain => "withdraw",
        Kind::Rejoin => "rejoin",
    };
    let mut out = Vec::new();
    for (i, argv) in commands.iter().enumerate() {
        let Some(program) = argv.first() else {
            continue;
        };
        let started = Instant::now();
        let (ok, status, stderr) = run_one(argv, limit).await;
        let secs = started.elapsed().as_secs_f64();
        let first = stderr.unwrap_or_default();
        if ok {
            tracing::info!(command = i, program = %program, status = %status, secs = format_args!("{secs:.3}"), stderr = %first, "drain: {what} command done");
        } else {
            tracing::warn!(command = i, program = %program, status = %status, secs = format_args!("{secs:.3}"), stderr = %first, "drain: {what} command failed");
        }
        out.push(CommandOutcome {
            program: program.clone(),
            ok,
            status,
            secs: (secs * 1000.0).round() / 1000.0,
        });
    }
    out
}

/// (ok, status, first stderr line) of one command.
async fn run_one(argv: &[String], limit: Duration) -> (bool, String, Option<String>) {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot start: {e}"), None),
    };
    let mut stderr = child.stderr.take();
    let run = async {
        // Read stderr while waiting, so a chatty command cannot block on a full pipe; keep
        // only a bounded prefix.
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let mut chunk = [0u8; 4096];
            loop {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) if buf.len() < 4096 => buf.extend_from_slice(&chunk[..n]),
                    Ok(_) => {}
                }
            }
        }
        (child.wait().await, buf)
    };
    match tokio::time::timeout(limit, run).await {
        Ok((Ok(st), buf)) => {
            let line = first_line(&buf);
            (st.success(), st.to_string(), line)
        }
        Ok((Err(e), _)) => (false, format!("cannot wait for it: {e}"), None),
        // Dropping the future dropped the child: kill_on_drop kills it.
        Err(_) => (
            false,
            format!("timed out after {} s (killed)", limit.as_secs_f64()),
            None,
        ),
    }
}

/// The first non-empty line of `buf`, control characters escaped, at most [`STDERR_LINE`]
/// characters.
fn first_line(buf: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(buf);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let short: String = line.chars().take(STDERR_LINE).collect();
    Some(ironsec_ike::PeerText::relayed(&short).to_string())
}
