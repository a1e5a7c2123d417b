//! ironsecctl: asks a running ironsecd over its control socket. The daemon's own messages
//! (errors included) are printed as they come; the exit code says whether it agreed. With
//! `--json` every command prints one JSON document on stdout, and every failure is
//! `{"error": ...}` (plus what is known, e.g. an initiate's tunnels) with exit code 1.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ironsec_ike::PeerText;
use ironsecd::cli::ctl::{Cli, Command};
use ironsecd::control::{request, Request, Response};
use ironsecd::namefilter::NameFilter;
use ironsecd::status::{ChildRefusedStatus, Status, BRIEF_OVER};
use serde::Serialize;
use serde_json::{json, Value};

fn print_json(v: &impl Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(j) => println!("{j}"),
        Err(e) => eprintln!("ironsecctl: {e}"),
    }
}

/// The daemon's text with every control character but the line breaks escaped, line by line:
/// what a peer sent (an identity in an error) must not drive the operator's terminal, whatever
/// daemon version produced the text (README, "Peer-supplied text").
fn terminal_safe(text: &str) -> String {
    text.split('\n')
        .map(|l| PeerText::relayed(l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_text(text: &str) {
    let t = terminal_safe(text);
    if t.ends_with('\n') {
        print!("{t}");
    } else {
        println!("{t}");
    }
}

/// Why a command failed, and who said so.
enum Failure {
    /// The daemon refused: its message as it is.
    Daemon(String),
    /// ironsecctl's own finding (no connection, a timeout, a file it could not write).
    Ctl(String),
    /// ironsecctl's finding with more for `--json` than the message: `extra`'s fields are
    /// printed beside `error`.
    CtlWith(String, Value),
}

impl Failure {
    fn report(self, json: bool) {
        let (who, msg, extra) = match self {
            Failure::Daemon(m) => ("ironsecd", m, Value::Null),
            Failure::Ctl(m) => ("ironsecctl", m, Value::Null),
            Failure::CtlWith(m, x) => ("ironsecctl", m, x),
        };
        if json {
            let mut v = json!({ "error": msg });
            if let (Some(o), Value::Object(x)) = (v.as_object_mut(), extra) {
                o.extend(x);
            }
            print_json(&v);
        } else {
            eprintln!("{who}: {}", terminal_safe(&msg));
        }
    }
}

/// One request; a refusal or a transport error is a [`Failure`].
fn ask(cli: &Cli, req: &Request) -> Result<Response, Failure> {
    match request(&cli.socket, req) {
        Ok(Response::Error(e)) => Err(Failure::Daemon(e)),
        Ok(r) => Ok(r),
        Err(e) => Err(Failure::Ctl(e.to_string())),
    }
}

fn unexpected(r: &Response) -> Failure {
    let what = match r {
        Response::Status(_) => "a status",
        Response::Ok(_) => "a message",
        Response::Error(_) => "an error",
        Response::Rekeying(_) => "a rekey answer",
        Response::Connections(_) => "a connection list",
        Response::Certificates(_) => "a certificate list",
        Response::Leases(_) => "a lease list",
        Response::Maintenance(_) => "a drain report",
    };
    Failure::Ctl(format!(
        "unexpected answer from ironsecd ({what}); is it the same version as ironsecctl?"
    ))
}

/// The status of the connections `filter` matches (the daemon filters; one from before
/// the filter sends everything, filtered in [`show_status`]); `brief` asks for the summary
/// and, past `BRIEF_OVER` connections, only those not up.
fn status(cli: &Cli, filter: Option<&str>, brief: bool) -> Result<Status, Failure> {
    let req = Request::Status {
        filter: filter.map(str::to_string),
        brief,
    };
    match ask(cli, &req)? {
        Response::Status(s) => Ok(*s),
        r => Err(unexpected(&r)),
    }
}

/// A tunnel's state when `initiate` stopped waiting, for its outcome.
#[derive(Serialize)]
struct TunnelOutcome {
    local: String,
    remote: String,
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_refused: Option<ChildRefusedStatus>,
}

impl TunnelOutcome {
    fn line(&self) -> String {
        format!(
            "  tunnel {} -> {}: {}{}{}",
            self.local,
            self.remote,
            self.state,
            self.last_error
                .as_deref()
                .map(|e| format!(" (last error: {})", PeerText::relayed(e)))
                .unwrap_or_default(),
            self.child_refused
                .as_ref()
                .map(|r| format!(
                    " (child SA refused {} time(s): {}{})",
                    r.refusals,
                    r.notify,
                    r.next_try_in_secs
                        .map(|n| format!(", next try in {n}s"))
                        .unwrap_or_default()
                ))
                .unwrap_or_default()
        )
    }
}

/// Waits until every tunnel of `name` is up (Ok) or `timeout` passed (Err); both with each
/// tunnel's state at the end.
fn wait_up(
    cli: &Cli,
    name: &str,
    timeout: Duration,
) -> Result<Result<Vec<TunnelOutcome>, Vec<TunnelOutcome>>, Failure> {
    let deadline = Instant::now() + timeout;
    loop {
        // Only this connection: a poll every 100 ms costs the daemon one connection's
        // status, not the gateway's.
        let st = status(cli, Some(name), false)?;
        let conn = st
            .connections
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Failure::Ctl(format!("connection '{name}' is gone (reloaded away?)")))?;
        let tunnels = conn
            .tunnels
            .iter()
            .map(|t| TunnelOutcome {
                local: t.local.clone(),
                remote: t.remote.clone(),
                state: t.state.clone(),
                last_error: t.last_error.clone(),
                child_refused: t.child_refused.clone(),
            })
            .collect::<Vec<_>>();
        if !conn.tunnels.is_empty() && conn.tunnels.iter().all(|t| t.state == "up") {
            return Ok(Ok(tunnels));
        }
        if Instant::now() >= deadline {
            return Ok(Err(tunnels));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn initiate(cli: &Cli, connection: &str, timeout: u64) -> Result<(), Failure> {
    let req = Request::Initiate {
        connection: connection.into(),
    };
    let msg = match ask(cli, &req)? {
        Response::Ok(m) => m,
        r => return Err(unexpected(&r)),
    };
    if !cli.json {
        print_text(&msg);
    }
    if timeout == 0 {
        if cli.json {
            print_json(&json!({
                "command": "initiate",
                "connection": connection,
                "ok": msg,
                "outcome": "initiating",
            }));
        }
        return Ok(());
    }
    let wait = Duration::from_secs(timeout);
    match wait_up(cli, connection, wait)? {
        Ok(tunnels) => {
            if cli.json {
                print_json(&json!({
                    "command": "initiate",
                    "connection": connection,
                    "ok": msg,
                    "outcome": "up",
                    "tunnels": tunnels,
                }));
            } else {
                println!("connection '{connection}' is up");
            }
            Ok(())
        }
        Err(tunnels) => {
            let mut text = format!("connection '{connection}' is not up after {wait:?}");
            for t in &tunnels {
                text.push('\n');
                text.push_str(&t.line());
            }
            Err(Failure::CtlWith(
                text,
                json!({
                    "command": "initiate",
                    "connection": connection,
                    "ok": msg,
                    "outcome": "timeout",
                    "waited_secs": timeout,
                    "tunnels": tunnels,
                }),
            ))
        }
    }
}

/// A command the daemon answers with a line of text.
fn simple(cli: &Cli, req: Request, command: &str, connection: Option<&str>) -> Result<(), Failure> {
    let msg = match ask(cli, &req)? {
        Response::Ok(m) => m,
        r => return Err(unexpected(&r)),
    };
    if cli.json {
        let mut v = json!({ "command": command, "ok": msg });
        if let Some(c) = connection {
            v["connection"] = json!(c);
        }
        print_json(&v);
    } else {
        print_text(&msg);
    }
    Ok(())
}

fn show_status(cli: &Cli, filter: Option<&str>, all: bool, summary: bool) -> Result<(), Failure> {
    // Text without a filter is brief past BRIEF_OVER connections; --json is the document.
    let brief = summary || (!all && filter.is_none() && !cli.json);
    let mut st = status(cli, filter, brief)?;
    let mut note = None;
    if let Some(e) = st.no_match.take() {
        if e.is_error() {
            return Err(Failure::Ctl(e.to_string()));
        }
        note = Some(e.to_string());
    } else if let Some(f) = filter.map(NameFilter::new) {
        // A daemon from before the filter sent every connection.
        match f.select(std::mem::take(&mut st.connections), |c| &c.name) {
            Ok(v) => st.connections = v,
            Err(e) if e.is_error() => return Err(Failure::Ctl(e.to_string())),
            Err(e) => note = Some(e.to_string()),
        }
    }
    if brief && st.summary.is_none() {
        // A daemon from before `brief`: the same, here.
        st.make_brief();
    }
    let many = st
        .summary
        .as_ref()
        .is_some_and(|s| s.connections > BRIEF_OVER);
    if cli.json {
        if summary {
            print_json(&json!({ "summary": st.summary, "ike": st.ike }));
        } else {
            st.summary = None;
            print_json(&st);
        }
    } else {
        if summary {
            print_text(&st.summary_line());
        } else if many {
            print_text(&st.render_brief());
        } else {
            print_text(&st.render());
        }
        if let Some(n) = note {
            print_text(&n);
        }
    }
    Ok(())
}

fn list_conns(cli: &Cli, filter: Option<&str>) -> Result<(), Failure> {
    let mut conns = match ask(cli, &Request::ListConns)? {
        Response::Connections(v) => v,
        r => return Err(unexpected(&r)),
    };
    let mut note = None;
    if let Some(f) = filter.map(NameFilter::new) {
        match f.select(conns, |c| &c.name) {
            Ok(v) => conns = v,
            Err(e) if e.is_error() => return Err(Failure::Ctl(e.to_string())),
            Err(e) => {
                conns = Vec::new();
                note = Some(e.to_string());
            }
        }
    }
    if cli.json {
        print_json(&json!({ "connections": conns }));
    } else {
        if !conns.is_empty() {
            print_text(&ironsecd::conns::render(&conns));
        }
        if let Some(n) = note {
            print_text(&n);
        }
    }
    Ok(())
}

fn certs(cli: &Cli) -> Result<(), Failure> {
    let list = match ask(cli, &Request::Certs)? {
        Response::Certificates(l) => l,
        r => return Err(unexpected(&r)),
    };
    if cli.json {
        print_json(&list);
    } else {
        print_text(&ironsecd::certs::render(&list));
    }
    Ok(())
}

fn leases(cli: &Cli) -> Result<(), Failure> {
    let list = match ask(cli, &Request::Leases)? {
        Response::Leases(l) => l,
        r => return Err(unexpected(&r)),
    };
    if cli.json {
        print_json(&list);
    } else {
        print_text(&ironsecd::leases::render(&list));
    }
    Ok(())
}

fn rekey(cli: &Cli, connection: &str, ike: bool) -> Result<(), Failure> {
    let req = Request::Rekey {
        connection: connection.into(),
        ike,
    };
    let started = match ask(cli, &req)? {
        Response::Rekeying(r) => r,
        r => return Err(unexpected(&r)),
    };
    if cli.json {
        let mut v = json!(started);
        v["command"] = json!("rekey");
        print_json(&v);
    } else {
        print_text(&started.to_string());
    }
    Ok(())
}

/// `drain` and `rejoin`: the report once done, or the daemon's line with --no-wait.
fn maintenance(cli: &Cli, req: Request, command: &str) -> Result<(), Failure> {
    match ask(cli, &req)? {
        Response::Maintenance(r) => {
            if cli.json {
                let mut v = json!(r);
                v["command"] = json!(command);
                print_json(&v);
            } else {
                print_text(&r.to_string());
            }
            Ok(())
        }
        Response::Ok(m) => {
            if cli.json {
                print_json(&json!({ "command": command, "ok": m }));
            } else {
                print_text(&m);
            }
            Ok(())
        }
        r => Err(unexpected(&r)),
    }
}

fn genpsk(cli: &Cli, file: Option<&std::path::Path>) -> Result<(), Failure> {
    match file {
        Some(p) => {
            ironsecd::genpsk::write_new(p).map_err(Failure::Ctl)?;
            if cli.json {
                print_json(&json!({ "command": "genpsk", "file": p, "mode": "0600" }));
            } else {
                println!(
                    "wrote a new 32-byte PSK to {} (mode 0600); give both gateways the same \
                     file as psk_file",
                    p.display()
                );
            }
        }
        None => {
            let psk = ironsecd::genpsk::new_psk().map_err(Failure::Ctl)?;
            if cli.json {
                print_json(&json!({ "command": "genpsk", "psk": psk.trim_end() }));
            } else {
                print!("{}", psk.as_str());
            }
        }
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Status {
            connection,
            all,
            summary,
        } => show_status(cli, connection.as_deref(), *all, *summary),
        Command::ListConns { connection } => list_conns(cli, connection.as_deref()),
        Command::Certs => certs(cli),
        Command::Initiate {
            connection,
            timeout,
        } => initiate(cli, connection, *timeout),
        Command::Terminate { connection } => simple(
            cli,
            Request::Terminate {
                connection: connection.clone(),
            },
            "terminate",
            Some(connection),
        ),
        Command::Reload => simple(cli, Request::Reload, "reload", None),
        Command::Leases => leases(cli),
        Command::Disconnect { identity } => simple(
            cli,
            Request::Disconnect {
                identity: identity.clone(),
            },
            "disconnect",
            None,
        ),
        Command::Rekey { connection, ike } => rekey(cli, connection, *ike),
        Command::Genpsk { file } => genpsk(cli, file.as_deref()),
        Command::Drain { no_wait } => maintenance(cli, Request::Drain { wait: !no_wait }, "drain"),
        Command::Rejoin { no_wait } => {
            maintenance(cli, Request::Rejoin { wait: !no_wait }, "rejoin")
        }
        Command::Nthash { user } => {
            let pw = ironsecd::nthash::read_password().map_err(Failure::Ctl)?;
            let line = ironsecd::nthash::users_line(user, &pw).map_err(Failure::Ctl)?;
            if cli.json {
                print_json(&json!({ "command": "nthash", "line": line }));
            } else {
                println!("{line}");
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.report(cli.json);
            ExitCode::FAILURE
        }
    }
}
