//! Planned maintenance: the drain and rejoin state machine (README "Planned maintenance").
//!
//! A drain takes a gateway out of service without losing traffic that something else can
//! carry: it writes the state file ("1": keepalived's `track_file` lowers the priority), runs
//! the `withdraw` commands (e.g. `birdc configure` with a config that marks the routes
//! GRACEFUL_SHUTDOWN, so the neighbours prefer the twin), waits until the tunnels carry
//! (almost) nothing, then closes every IKE SA as `terminate` does: DELETE to the peer, held
//! down. The TUN devices, routes and guards stay, so what still arrives is dropped, never sent
//! in clear. A rejoin undoes it in the order that disturbs nothing: state file "0", tunnels up,
//! and only then the `rejoin` commands that draw traffic back.
//!
//! This module decides; it does no I/O and reads no clock. [`Machine`] takes requests,
//! command outcomes and 100 ms samples (the fast path's packet totals, the tunnels that are
//! up) with a `now`, and answers with [`Effect`]s the daemon carries out (`daemon.rs`), so
//! its timing is a unit test with a fake clock.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Drain as Settings;

/// How often the daemon samples while waiting (its 100 ms timer).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The rate is the packets over (at most) this much of the latest samples: a 100 ms slice at
/// 30 packets/s holds 3 packets, too few to tell a trickle from a burst.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Which of the two operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Drain,
    Rejoin,
}

/// How one command ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// The program (argv[0]); the arguments are not repeated in reports or logs.
    pub program: String,
    pub ok: bool,
    /// "exit status 0", "timed out after 20 s", "cannot start: No such file or directory".
    pub status: String,
    pub secs: f64,
}

/// A list of commands as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CommandsReport {
    pub secs: f64,
    pub commands: usize,
    /// "program: status" of each command that failed (the next ones still ran).
    pub failed: Vec<String>,
}

impl CommandsReport {
    fn of(outcomes: &[CommandOutcome]) -> CommandsReport {
        CommandsReport {
            secs: outcomes.iter().map(|o| o.secs).sum(),
            commands: outcomes.len(),
            failed: outcomes
                .iter()
                .filter(|o| !o.ok)
                .map(|o| format!("{}: {}", o.program, o.status))
                .collect(),
        }
    }

    /// "withdraw 0.03 s (1 command)", "withdraw: no command".
    fn text(&self, what: &str) -> String {
        if self.commands == 0 {
            return format!("{what}: no command");
        }
        let mut s = format!(
            "{what} {:.2} s ({} command{}",
            self.secs,
            self.commands,
            plural(self.commands)
        );
        if !self.failed.is_empty() {
            s.push_str(&format!(
                ", {} failed: {}",
                self.failed.len(),
                self.failed.join("; ")
            ));
        }
        s.push(')');
        s
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// What a finished drain did (`ironsecctl drain` prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainReport {
    /// Who asked: "ironsecctl", "SIGTERM".
    pub origin: String,
    pub total_secs: f64,
    pub withdraw: CommandsReport,
    /// From the end of the withdraw commands to the decision to close.
    pub wait_secs: f64,
    pub idle_pps: u64,
    /// The rate (packets/s, all tunnels, both directions) when the wait ended.
    pub last_pps: f64,
    /// The wait ended by `timeout`, with traffic still above `idle_pps`.
    pub timed_out: bool,
    pub ike_sas_deleted: usize,
}

impl std::fmt::Display for DrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wait = if self.timed_out {
            format!(
                "traffic still at {:.0} pps after {:.2} s (timeout: closed anyway)",
                self.last_pps, self.wait_secs
            )
        } else {
            format!(
                "traffic under {} pps after {:.2} s (last {:.0} pps)",
                self.idle_pps, self.wait_secs, self.last_pps
            )
        };
        write!(
            f,
            "drained in {:.2} s: {}, {wait}, {} IKE SA{} deleted",
            self.total_secs,
            self.withdraw.text("withdraw"),
            self.ike_sas_deleted,
            plural(self.ike_sas_deleted)
        )
    }
}

/// What a finished rejoin did (`ironsecctl rejoin` prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejoinReport {
    /// "ironsecctl", "start".
    pub origin: String,
    pub total_secs: f64,
    /// Until every `start_action = "start"` connection had a CHILD_SA (or the timeout).
    pub tunnels_secs: f64,
    pub connections_up: usize,
    pub connections_wanted: usize,
    pub timed_out: bool,
    pub rejoin: CommandsReport,
}

impl std::fmt::Display for RejoinReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rejoined in {:.2} s: {} of {} connection{} up after {:.2} s{}, {}",
            self.total_secs,
            self.connections_up,
            self.connections_wanted,
            plural(self.connections_wanted),
            self.tunnels_secs,
            if self.timed_out {
                " (timeout: rejoin commands run anyway)"
            } else {
                ""
            },
            self.rejoin.text("rejoin")
        )
    }
}

/// A finished operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Report {
    Drain(DrainReport),
    Rejoin(RejoinReport),
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Drain(r) => r.fmt(f),
            Report::Rejoin(r) => r.fmt(f),
        }
    }
}

/// An operation's end: its report, or why it was cut short.
pub type Outcome = Result<Report, String>;

/// What the daemon must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write "1" (`draining`) or "0" into the state file.
    WriteState { file: PathBuf, draining: bool },
    /// Run these commands one after the other, each within `limit`, then hand the outcomes to
    /// [`Machine::commands_done`].
    Run {
        kind: Kind,
        commands: Vec<Vec<String>>,
        limit: Duration,
    },
    /// Close every IKE SA and hold the connections down (`Plane::drain_close`), then tell
    /// [`Machine::closed`] how many IKE SAs were deleted.
    CloseAll,
    /// Let the connections the drain held come up again (`Plane::drain_release`).
    ReleaseHolds,
    /// Operation `op` ended.
    Finished { op: u64, outcome: Outcome },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("already drained ({0:.0} s ago); `ironsecctl rejoin` brings the gateway back")]
    AlreadyDrained(f64),
}

/// The state as `status` and metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// In service (a rejoin under way counts: its state file already says "0").
    Ready,
    Draining,
    Drained,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Draining => "draining",
            State::Drained => "drained",
        }
    }

    /// `ironsec_drain_state`.
    pub fn metric(self) -> u8 {
        match self {
            State::Ready => 0,
            State::Draining => 1,
            State::Drained => 2,
        }
    }
}

/// A drain or rejoin under way: its id, who asked and when.
#[derive(Debug, Clone)]
struct Running {
    op: u64,
    origin: String,
    started: Instant,
}

impl Running {
    /// The report of this rejoin, finished at `now`: the tunnels took `tunnels_secs`,
    /// `up` of `wanted` connections came up, then the rejoin commands did `rejoin`.
    fn rejoin_report(
        &self,
        now: Instant,
        tunnels_secs: f64,
        (up, wanted): (usize, usize),
        timed_out: bool,
        rejoin: CommandsReport,
    ) -> RejoinReport {
        RejoinReport {
            origin: self.origin.clone(),
            total_secs: secs(self.started, now),
            tunnels_secs,
            connections_up: up,
            connections_wanted: wanted,
            timed_out,
            rejoin,
        }
    }
}

#[derive(Debug, Clone)]
enum Phase {
    Ready,
    /// Withdraw commands running.
    Withdrawing(Running),
    Waiting {
        run: Running,
        withdraw: CommandsReport,
        from: Instant,
        /// (when, packet total) over the last [`RATE_WINDOW`].
        samples: VecDeque<(Instant, u64)>,
        /// Since when the rate has been under `idle_pps`.
        under_since: Option<Instant>,
        last_pps: f64,
    },
    /// `CloseAll` handed out; [`Machine::closed`] ends the drain.
    Closing {
        run: Running,
        withdraw: CommandsReport,
        wait_secs: f64,
        last_pps: f64,
        timed_out: bool,
    },
    Drained {
        since: Instant,
    },
    /// Waiting for the tunnels.
    RejoinWaiting {
        run: Running,
        from: Instant,
    },
    /// Rejoin commands running.
    Rejoining {
        run: Running,
        tunnels_secs: f64,
        up: usize,
        wanted: usize,
        timed_out: bool,
    },
}

/// The drain/rejoin state machine (see the module's doc).
#[derive(Debug)]
pub struct Machine {
    phase: Phase,
    /// The settings the operation under way started with (a reload does not change it).
    settings: Settings,
    next_op: u64,
    /// Asked for while commands ran (they are never cut short): started once they finish.
    pending: Option<(Kind, u64, String)>,
    /// The last finished operation's line, for status.
    last: Option<String>,
    /// How long the last drain took, for `ironsec_drain_last_seconds`.
    last_drain_secs: Option<f64>,
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

impl Machine {
    pub fn new() -> Machine {
        Machine {
            phase: Phase::Ready,
            settings: Settings::default(),
            next_op: 1,
            pending: None,
            last: None,
            last_drain_secs: None,
        }
    }

    pub fn state(&self) -> State {
        match self.phase {
            Phase::Ready | Phase::RejoinWaiting { .. } | Phase::Rejoining { .. } => State::Ready,
            Phase::Withdrawing(_) | Phase::Waiting { .. } | Phase::Closing { .. } => {
                State::Draining
            }
            Phase::Drained { .. } => State::Drained,
        }
    }

    /// What is happening now, for status: "withdraw commands running", "waiting for
    /// traffic to stop (45 pps)", "rejoining: waiting for the tunnels", ...
    pub fn detail(&self, now: Instant) -> Option<String> {
        let since = |t: Instant| now.saturating_duration_since(t).as_secs_f64();
        match &self.phase {
            Phase::Ready => None,
            Phase::Withdrawing(r) => Some(format!(
                "withdraw commands running ({:.1} s)",
                since(r.started)
            )),
            Phase::Waiting { from, last_pps, .. } => Some(format!(
                "waiting for traffic under {} pps: {last_pps:.0} pps ({:.1} s of {} s)",
                self.settings.idle_pps,
                since(*from),
                self.settings.timeout.as_secs_f64()
            )),
            Phase::Closing { .. } => Some("closing the IKE SAs".into()),
            Phase::Drained { since: t } => Some(format!("since {:.0} s", since(*t))),
            Phase::RejoinWaiting { from, .. } => Some(format!(
                "rejoining: waiting for the tunnels ({:.1} s)",
                since(*from)
            )),
            Phase::Rejoining { .. } => Some("rejoining: rejoin commands running".into()),
        }
    }

    /// The last finished operation, as its one-line report.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    pub fn last_drain_secs(&self) -> Option<f64> {
        self.last_drain_secs
    }

    /// Whether [`Machine::tick`] has anything to look at (the daemon samples only then).
    pub fn wants_samples(&self) -> bool {
        matches!(
            self.phase,
            Phase::Waiting { .. } | Phase::RejoinWaiting { .. }
        )
    }

    fn new_op(&mut self, origin: &str, now: Instant) -> Running {
        let op = self.next_op;
        self.next_op += 1;
        Running {
            op,
            origin: origin.into(),
            started: now,
        }
    }

    fn state_file(&self, draining: bool) -> Option<Effect> {
        self.settings
            .state_file
            .clone()
            .map(|file| Effect::WriteState { file, draining })
    }

    /// Starts a drain (`origin` says who asked) with `settings`. Answers the id of the
    /// operation whose [`Effect::Finished`] ends it: a new one, or the drain already under
    /// way, or one that starts when running rejoin commands finish.
    pub fn drain(
        &mut self,
        now: Instant,
        settings: &Settings,
        origin: &str,
    ) -> Result<(u64, Vec<Effect>), Refused> {
        let mut fx = Vec::new();
        match &self.phase {
            Phase::Withdrawing(r)
            | Phase::Waiting { run: r, .. }
            | Phase::Closing { run: r, .. } => {
                // A rejoin asked for meanwhile is overtaken by this drain.
                if let Some((Kind::Rejoin, op, _)) = self.pending.take() {
                    fx.push(Effect::Finished {
                        op,
                        outcome: Err("overtaken by a drain".into()),
                    });
                }
                return Ok((r.op, fx));
            }
            Phase::Drained { since } => {
                return Err(Refused::AlreadyDrained(
                    now.saturating_duration_since(*since).as_secs_f64(),
                ))
            }
            Phase::Rejoining { .. } => {
                if let Some((Kind::Drain, op, _)) = &self.pending {
                    return Ok((*op, fx));
                }
                let op = self.next_op;
                self.next_op += 1;
                self.pending = Some((Kind::Drain, op, origin.into()));
                return Ok((op, fx));
            }
            Phase::RejoinWaiting { run, .. } => {
                fx.push(Effect::Finished {
                    op: run.op,
                    outcome: Err("cancelled by a drain".into()),
                });
            }
            Phase::Ready => {}
        }
        let run = self.new_op(origin, now);
        let op = run.op;
        fx.extend(self.begin_drain(run, settings, now));
        Ok((op, fx))
    }

    fn begin_drain(&mut self, run: Running, settings: &Settings, now: Instant) -> Vec<Effect> {
        self.settings = settings.clone();
        let mut fx: Vec<Effect> = self.state_file(true).into_iter().collect();
        if self.settings.withdraw.is_empty() {
            self.phase = waiting(run, CommandsReport::default(), now);
        } else {
            fx.push(Effect::Run {
                kind: Kind::Drain,
                commands: self.settings.withdraw.clone(),
                limit: self.settings.timeout,
            });
            self.phase = Phase::Withdrawing(run);
        }
        fx
    }

    /// Starts a rejoin: from ready (after a start, or to run the rejoin commands), from
    /// drained, or cancelling a drain that is waiting for traffic.
    pub fn rejoin(
        &mut self,
        now: Instant,
        settings: &Settings,
        origin: &str,
    ) -> (u64, Vec<Effect>) {
        let mut fx = Vec::new();
        match &self.phase {
            Phase::RejoinWaiting { run, .. } | Phase::Rejoining { run, .. } => {
                if let Some((Kind::Drain, op, _)) = self.pending.take() {
                    fx.push(Effect::Finished {
                        op,
                        outcome: Err("overtaken by a rejoin".into()),
                    });
                }
                return (run.op, fx);
            }
            Phase::Withdrawing(_) | Phase::Closing { .. } => {
                if let Some((Kind::Rejoin, op, _)) = &self.pending {
                    return (*op, fx);
                }
                let op = self.next_op;
                self.next_op += 1;
                self.pending = Some((Kind::Rejoin, op, origin.into()));
                return (op, fx);
            }
            Phase::Waiting { run, .. } => {
                fx.push(Effect::Finished {
                    op: run.op,
                    outcome: Err("cancelled by a rejoin".into()),
                });
            }
            Phase::Ready | Phase::Drained { .. } => {}
        }
        let run = self.new_op(origin, now);
        let op = run.op;
        fx.extend(self.begin_rejoin(run, settings, now));
        (op, fx)
    }

    fn begin_rejoin(&mut self, run: Running, settings: &Settings, now: Instant) -> Vec<Effect> {
        self.settings = settings.clone();
        let mut fx: Vec<Effect> = self.state_file(false).into_iter().collect();
        fx.push(Effect::ReleaseHolds);
        self.phase = Phase::RejoinWaiting { run, from: now };
        fx
    }

    /// Starts what was asked for while commands ran, now that they are done.
    fn start_pending(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let Some((kind, op, origin)) = self.pending.take() else {
            return;
        };
        let run = Running {
            op,
            origin,
            started: now,
        };
        let settings = self.settings.clone();
        fx.extend(match kind {
            Kind::Drain => self.begin_drain(run, &settings, now),
            Kind::Rejoin => self.begin_rejoin(run, &settings, now),
        });
    }

    /// The commands of the last [`Effect::Run`] finished.
    pub fn commands_done(&mut self, now: Instant, outcomes: &[CommandOutcome]) -> Vec<Effect> {
        let report = CommandsReport::of(outcomes);
        let mut fx = Vec::new();
        match std::mem::replace(&mut self.phase, Phase::Ready) {
            Phase::Withdrawing(run) => {
                if matches!(self.pending, Some((Kind::Rejoin, ..))) {
                    fx.push(Effect::Finished {
                        op: run.op,
                        outcome: Err("cancelled by a rejoin".into()),
                    });
                    self.start_pending(now, &mut fx);
                } else {
                    self.phase = waiting(run, report, now);
                }
            }
            Phase::Rejoining {
                run,
                tunnels_secs,
                up,
                wanted,
                timed_out,
            } => {
                let r = run.rejoin_report(now, tunnels_secs, (up, wanted), timed_out, report);
                fx.push(self.finish(run.op, Report::Rejoin(r)));
                self.start_pending(now, &mut fx);
            }
            other => self.phase = other,
        }
        fx
    }

    fn finish(&mut self, op: u64, report: Report) -> Effect {
        if let Report::Drain(d) = &report {
            self.last_drain_secs = Some(d.total_secs);
        }
        self.last = Some(report.to_string());
        Effect::Finished {
            op,
            outcome: Ok(report),
        }
    }

    /// A 100 ms sample: `packets` is the total every tunnel has carried both ways since
    /// start (it only grows), `up`/`wanted` the `start_action = "start"` connections with a
    /// CHILD_SA and all of them.
    pub fn tick(
        &mut self,
        now: Instant,
        packets: u64,
        (up, wanted): (usize, usize),
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        match &mut self.phase {
            Phase::Waiting {
                run,
                withdraw,
                from,
                samples,
                under_since,
                last_pps,
            } => {
                samples.push_back((now, packets));
                while samples.len() > 2 && samples[1].0 + RATE_WINDOW <= now {
                    samples.pop_front();
                }
                let (t0, p0) = samples[0];
                let dt = now.saturating_duration_since(t0);
                // Some(timed_out) once the traffic has been quiet long enough, or the
                // timeout has passed.
                let mut close = None;
                if dt >= SAMPLE_EVERY {
                    *last_pps = packets.saturating_sub(p0) as f64 / dt.as_secs_f64();
                    if *last_pps < self.settings.idle_pps as f64 {
                        let since = *under_since.get_or_insert(now);
                        if now.saturating_duration_since(since) >= self.settings.quiet {
                            close = Some(false);
                        }
                    } else {
                        *under_since = None;
                    }
                }
                if close.is_none() && now.saturating_duration_since(*from) >= self.settings.timeout
                {
                    close = Some(true);
                }
                if let Some(timed_out) = close {
                    let (run, withdraw, from, last) =
                        (run.clone(), withdraw.clone(), *from, *last_pps);
                    self.phase = closing(run, withdraw, from, now, last, timed_out);
                    fx.push(Effect::CloseAll);
                }
            }
            Phase::RejoinWaiting { run, from } => {
                let all_up = up >= wanted;
                let timed_out =
                    !all_up && now.saturating_duration_since(*from) >= self.settings.timeout;
                if all_up || timed_out {
                    let run = run.clone();
                    let tunnels_secs = secs(*from, now);
                    if self.settings.rejoin.is_empty() {
                        let r = run.rejoin_report(
                            now,
                            tunnels_secs,
                            (up, wanted),
                            timed_out,
                            CommandsReport::default(),
                        );
                        self.phase = Phase::Ready;
                        fx.push(self.finish(run.op, Report::Rejoin(r)));
                        self.start_pending(now, &mut fx);
                    } else {
                        fx.push(Effect::Run {
                            kind: Kind::Rejoin,
                            commands: self.settings.rejoin.clone(),
                            limit: self.settings.timeout,
                        });
                        self.phase = Phase::Rejoining {
                            run,
                            tunnels_secs,
                            up,
                            wanted,
                            timed_out,
                        };
                    }
                }
            }
            _ => {}
        }
        fx
    }

    /// The IKE SAs are closed ([`Effect::CloseAll`] done): the drain is over.
    pub fn closed(&mut self, now: Instant, ike_sas_deleted: usize) -> Vec<Effect> {
        let mut fx = Vec::new();
        if let Phase::Closing {
            run,
            withdraw,
            wait_secs,
            last_pps,
            timed_out,
        } = std::mem::replace(&mut self.phase, Phase::Drained { since: now })
        {
            let r = DrainReport {
                origin: run.origin.clone(),
                total_secs: secs(run.started, now),
                withdraw,
                wait_secs,
                idle_pps: self.settings.idle_pps,
                last_pps: (last_pps * 10.0).round() / 10.0,
                timed_out,
                ike_sas_deleted,
            };
            fx.push(self.finish(run.op, Report::Drain(r)));
            self.start_pending(now, &mut fx);
        }
        fx
    }
}

fn secs(from: Instant, to: Instant) -> f64 {
    (to.saturating_duration_since(from).as_secs_f64() * 1000.0).round() / 1000.0
}

fn waiting(run: Running, withdraw: CommandsReport, now: Instant) -> Phase {
    Phase::Waiting {
        run,
        withdraw,
        from: now,
        samples: VecDeque::new(),
        under_since: None,
        last_pps: 0.0,
    }
}

fn closing(
    run: Running,
    withdraw: CommandsReport,
    from: Instant,
    now: Instant,
    last_pps: f64,
    timed_out: bool,
) -> Phase {
    Phase::Closing {
        run,
        withdraw,
        wait_secs: secs(from, now),
        last_pps,
        timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            withdraw: vec![vec!["birdc".into(), "configure".into()]],
            rejoin: vec![vec!["birdc".into(), "configure".into()]],
            state_file: Some("/run/ironsec/drain".into()),
            idle_pps: 30,
            quiet: Duration::from_secs(1),
            timeout: Duration::from_secs(20),
            on_stop: true,
            rejoin_on_start: true,
        }
    }

    fn ok(program: &str, secs: f64) -> CommandOutcome {
        CommandOutcome {
            program: program.into(),
            ok: true,
            status: "exit status 0".into(),
            secs,
        }
    }

    fn finished(fx: &[Effect]) -> Vec<(u64, Outcome)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Finished { op, outcome } => Some((*op, outcome.clone())),
                _ => None,
            })
            .collect()
    }

    /// Ticks every 100 ms from `from` (exclusive) to `to` (inclusive) with `pps` of traffic
    /// on top of `total`; stops at the first tick that hands out effects.
    fn run_ticks(
        m: &mut Machine,
        from: Instant,
        to: Instant,
        pps: u64,
        total: &mut u64,
    ) -> Option<(Instant, Vec<Effect>)> {
        let mut t = from;
        while t < to {
            t += SAMPLE_EVERY;
            *total += pps / 10;
            let fx = m.tick(t, *total, (1, 1));
            if !fx.is_empty() {
                return Some((t, fx));
            }
        }
        None
    }

    #[test]
    fn drain_waits_for_quiet_then_terminates() {
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let mut m = Machine::new();
        let (op, fx) = m.drain(base, &settings(), "ironsecctl").unwrap();
        assert_eq!(
            fx,
            vec![
                Effect::WriteState {
                    file: "/run/ironsec/drain".into(),
                    draining: true
                },
                Effect::Run {
                    kind: Kind::Drain,
                    commands: settings().withdraw,
                    limit: Duration::from_secs(20)
                }
            ]
        );
        assert_eq!(m.state(), State::Draining);
        // Ticks while the commands run change nothing.
        assert!(m.tick(at(20), 0, (1, 1)).is_empty());
        assert!(m.commands_done(at(30), &[ok("birdc", 0.03)]).is_empty());
        assert!(m.wants_samples());
        // 100 packets/s for 2 s: never closes.
        let mut total = 0;
        assert_eq!(run_ticks(&mut m, at(30), at(2030), 100, &mut total), None);
        // Then 10 packets/s (BFD): the 1 s rate falls under 30 within a second, and quiet
        // lasts 1 s more.
        let (t, fx) = run_ticks(&mut m, at(2030), at(6030), 10, &mut total).unwrap();
        assert_eq!(fx, vec![Effect::CloseAll]);
        let waited = t.duration_since(at(2030));
        assert!(
            waited >= Duration::from_millis(1000) && waited <= Duration::from_millis(2100),
            "{waited:?}"
        );
        assert_eq!(m.state(), State::Draining);
        let fx = m.closed(t, 2);
        let done = finished(&fx);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, op);
        let Ok(Report::Drain(r)) = &done[0].1 else {
            panic!("{fx:?}")
        };
        assert!(!r.timed_out);
        assert_eq!(r.ike_sas_deleted, 2);
        assert!(r.last_pps < 30.0, "{r:?}");
        assert_eq!(m.state(), State::Drained);
        let line = r.to_string();
        assert!(
            line.starts_with("drained in ")
                && line.contains(": withdraw 0.03 s (1 command), traffic under 30 pps after ")
                && line.ends_with(", 2 IKE SAs deleted"),
            "{line}"
        );
        assert_eq!(m.last(), Some(line.as_str()));
        // A second drain is refused; the state stays.
        assert!(matches!(
            m.drain(t, &settings(), "ironsecctl"),
            Err(Refused::AlreadyDrained(_))
        ));
    }

    #[test]
    fn drain_times_out_and_closes_anyway() {
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let mut s = settings();
        s.withdraw.clear();
        s.timeout = Duration::from_secs(3);
        let mut m = Machine::new();
        let (op, fx) = m.drain(base, &s, "SIGTERM").unwrap();
        // No command: straight to waiting.
        assert_eq!(fx.len(), 1, "{fx:?}");
        assert!(m.wants_samples());
        let mut total = 1000;
        let (t, fx) = run_ticks(&mut m, base, at(10_000), 200, &mut total).unwrap();
        assert_eq!(t, at(3000));
        assert_eq!(fx, vec![Effect::CloseAll]);
        let fx = m.closed(t, 1);
        let Some((got, Ok(Report::Drain(r)))) = finished(&fx).pop() else {
            panic!("{fx:?}")
        };
        assert_eq!(got, op);
        assert!(r.timed_out);
        assert!((r.last_pps - 200.0).abs() < 1.0, "{r:?}");
        assert_eq!(r.withdraw.commands, 0);
        assert_eq!(
            r.to_string(),
            "drained in 3.00 s: withdraw: no command, traffic still at 200 pps after 3.00 s \
             (timeout: closed anyway), 1 IKE SA deleted"
        );
    }

    #[test]
    fn rejoin_runs_commands_after_tunnels_up() {
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let mut m = Machine::new();
        let (_, _) = m.drain(base, &settings(), "ironsecctl").unwrap();
        m.commands_done(at(10), &[ok("birdc", 0.01)]);
        let mut total = 0;
        let (t, _) = run_ticks(&mut m, at(10), at(5000), 0, &mut total).unwrap();
        m.closed(t, 1);
        assert_eq!(m.state(), State::Drained);
        let (op, fx) = m.rejoin(at(6000), &settings(), "ironsecctl");
        assert_eq!(
            fx,
            vec![
                Effect::WriteState {
                    file: "/run/ironsec/drain".into(),
                    draining: false
                },
                Effect::ReleaseHolds
            ]
        );
        assert_eq!(m.state(), State::Ready);
        // Tunnels coming up: no command yet.
        assert!(m.tick(at(6100), 0, (0, 2)).is_empty());
        assert!(m.tick(at(6200), 0, (1, 2)).is_empty());
        let fx = m.tick(at(6300), 0, (2, 2));
        assert_eq!(
            fx,
            vec![Effect::Run {
                kind: Kind::Rejoin,
                commands: settings().rejoin,
                limit: Duration::from_secs(20)
            }]
        );
        let fx = m.commands_done(at(6350), &[ok("birdc", 0.05)]);
        let Some((got, Ok(Report::Rejoin(r)))) = finished(&fx).pop() else {
            panic!("{fx:?}")
        };
        assert_eq!(got, op);
        assert_eq!((r.connections_up, r.connections_wanted), (2, 2));
        assert_eq!(
            r.to_string(),
            "rejoined in 0.35 s: 2 of 2 connections up after 0.30 s, rejoin 0.05 s (1 command)"
        );
        assert_eq!(m.state(), State::Ready);
        assert!(!m.wants_samples());
    }

    #[test]
    fn rejoin_runs_commands_anyway_when_the_tunnels_time_out() {
        let base = Instant::now();
        let mut s = settings();
        s.timeout = Duration::from_secs(2);
        let mut m = Machine::new();
        m.rejoin(base, &s, "start");
        let mut fx = Vec::new();
        let mut t = base;
        while fx.is_empty() {
            t += SAMPLE_EVERY;
            fx = m.tick(t, 0, (1, 2));
        }
        assert_eq!(t, base + Duration::from_secs(2));
        assert!(matches!(
            fx[0],
            Effect::Run {
                kind: Kind::Rejoin,
                ..
            }
        ));
        let fx = m.commands_done(t, &[ok("birdc", 0.0)]);
        let Some((_, Ok(Report::Rejoin(r)))) = finished(&fx).pop() else {
            panic!("{fx:?}")
        };
        assert!(r.timed_out);
        assert!(r
            .to_string()
            .contains("1 of 2 connections up after 2.00 s (timeout"));
    }

    #[test]
    fn requests_during_commands_wait_for_them_and_the_last_wins() {
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let mut m = Machine::new();
        let (drain_op, _) = m.drain(base, &settings(), "ironsecctl").unwrap();
        // A second drain joins the first.
        assert_eq!(m.drain(at(1), &settings(), "SIGTERM").unwrap().0, drain_op);
        // A rejoin while the withdraw commands run: queued, never cutting them short.
        let (rejoin_op, fx) = m.rejoin(at(2), &settings(), "ironsecctl");
        assert!(fx.is_empty());
        assert_ne!(rejoin_op, drain_op);
        let fx = m.commands_done(at(50), &[ok("birdc", 0.05)]);
        assert_eq!(
            finished(&fx),
            vec![(drain_op, Err("cancelled by a rejoin".to_string()))]
        );
        assert!(fx.contains(&Effect::ReleaseHolds));
        assert_eq!(m.state(), State::Ready);
        // A drain while the rejoin waits for tunnels cancels the rejoin.
        let (op3, fx) = m.drain(at(60), &settings(), "SIGTERM").unwrap();
        assert_eq!(
            finished(&fx),
            vec![(rejoin_op, Err("cancelled by a drain".to_string()))]
        );
        assert!(op3 > rejoin_op);
        assert_eq!(m.state(), State::Draining);
        // A failed withdraw command is reported, and the drain goes on.
        let fx = m.commands_done(
            at(70),
            &[CommandOutcome {
                program: "birdc".into(),
                ok: false,
                status: "exit status 1".into(),
                secs: 0.01,
            }],
        );
        assert!(fx.is_empty());
        let mut total = 0;
        let (t, _) = run_ticks(&mut m, at(70), at(5000), 0, &mut total).unwrap();
        let fx = m.closed(t, 0);
        let Some((_, Ok(r))) = finished(&fx).pop() else {
            panic!("{fx:?}")
        };
        assert!(
            r.to_string()
                .contains("withdraw 0.01 s (1 command, 1 failed: birdc: exit status 1)"),
            "{r}"
        );
    }

    #[test]
    fn no_state_file_means_no_write() {
        let mut s = settings();
        s.state_file = None;
        s.withdraw.clear();
        let mut m = Machine::new();
        let (_, fx) = m.drain(Instant::now(), &s, "ironsecctl").unwrap();
        assert!(fx.is_empty(), "{fx:?}");
    }
}
