//! ironsecctl: asks a running ironsecd over its control socket. The daemon's own messages
//! (errors included) are printed as they come; the exit code says whether it agreed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ironsec_ike::PeerText;
use ironsecd::cli::ctl::{Cli, Command};
use ironsecd::control::{request, Request, Response};
use ironsecd::status::Status;

fn print_json(v: &impl serde::Serialize) {
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

/// Prints the daemon's answer; true when it agreed.
fn report(resp: &Response, json: bool) -> bool {
    match resp {
        Response::Status(s) => {
            if json {
                print_json(s);
            } else {
                print_text(&s.render());
            }
            true
        }
        Response::Ok(m) => {
            if json {
                print_json(&serde_json::json!({ "ok": m }));
            } else {
                print_text(m);
            }
            true
        }
        Response::Error(e) => {
            if json {
                print_json(&serde_json::json!({ "error": e }));
            } else {
                eprintln!("ironsecd: {}", terminal_safe(e));
            }
            false
        }
    }
}

/// Waits until every tunnel of `name` is up; returns the tunnels' last errors otherwise.
fn wait_up(socket: &std::path::Path, name: &str, timeout: Duration) -> Result<Status, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let st = match request(socket, &Request::Status)? {
            Response::Status(s) => *s,
            Response::Error(e) => return Err(format!("ironsecd: {e}")),
            Response::Ok(m) => return Err(format!("unexpected answer: {m}")),
        };
        let conn = st
            .connections
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("connection '{name}' is gone (reloaded away?)"))?;
        if !conn.tunnels.is_empty() && conn.tunnels.iter().all(|t| t.state == "up") {
            return Ok(st);
        }
        if Instant::now() >= deadline {
            let mut msg = format!("connection '{name}' is not up after {timeout:?}");
            for t in &conn.tunnels {
                msg.push_str(&format!(
                    "\n  tunnel {} -> {}: {}{}{}",
                    t.local,
                    t.remote,
                    t.state,
                    t.last_error
                        .as_deref()
                        .map(|e| format!(" (last error: {})", PeerText::relayed(e)))
                        .unwrap_or_default(),
                    t.child_refused
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
                ));
            }
            return Err(msg);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (req, wait) = match &cli.command {
        Command::Status => (Request::Status, None),
        Command::Initiate {
            connection,
            timeout,
        } => (
            Request::Initiate {
                connection: connection.clone(),
            },
            (*timeout > 0).then(|| (connection.clone(), Duration::from_secs(*timeout))),
        ),
        Command::Terminate { connection } => (
            Request::Terminate {
                connection: connection.clone(),
            },
            None,
        ),
        Command::Reload => (Request::Reload, None),
    };
    let resp = match request(&cli.socket, &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ironsecctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !report(&resp, cli.json) {
        return ExitCode::FAILURE;
    }
    if let Some((name, timeout)) = wait {
        match wait_up(&cli.socket, &name, timeout) {
            Ok(_) => {
                if !cli.json {
                    println!("connection '{name}' is up");
                }
            }
            Err(e) => {
                eprintln!("ironsecctl: {}", terminal_safe(&e));
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
