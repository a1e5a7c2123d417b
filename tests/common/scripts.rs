//! The benchmark and measurement scripts of `netns-scripts/` run as tests: each prints a
//! human report on stderr/stdout and one JSON object as its last stdout line, and must leave no
//! namespace of its prefix behind. The lab scripts that build topologies for tests
//! (`up PREFIX --net-only`) are held by [`ScriptTopo`].

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{
    require_root, run_ok, run_timeout, unique_prefix, workspace_root, TempDir, IRONSECCTL, IRONSECD,
};

/// What a script printed: its JSON report (the last stdout line) and both streams.
pub struct ScriptReport {
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

/// Network namespaces whose names start with `PREFIX-`.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

/// Runs `cmd` (script `name`, namespaces named `PREFIX-...`), prints what it said, and
/// checks that it succeeded, left no namespace behind and ended with a JSON line.
pub fn run_json_script(name: &str, cmd: &mut Command, prefix: &str) -> ScriptReport {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        out.status.success(),
        "{name} failed ({}); see the output above",
        out.status
    );
    let left = namespaces_with(prefix);
    assert!(left.is_empty(), "{name} left namespaces behind: {left:?}");
    let json: Value = serde_json::from_str(stdout.lines().last().expect("a JSON last line"))
        .expect("the last line is JSON");
    ScriptReport {
        json,
        stdout,
        stderr,
    }
}

/// The namespaces a lab script of `netns-scripts/` builds (`SCRIPT up PREFIX ARGS...`, e.g.
/// route-based.sh or plink-lab.sh with `--net-only`) under guard: dropping it runs
/// `SCRIPT down PREFIX`, which stops what still runs inside (by PID) and removes them. Every
/// call runs with the environment `up` ran with (TMPDIR decides where the script keeps its
/// state).
pub struct ScriptTopo {
    /// The script's file name in `netns-scripts/`.
    name: String,
    pub prefix: String,
    env: Vec<(String, String)>,
}

impl ScriptTopo {
    /// Runs `NAME up PREFIX ARGS...` (bounded by `timeout`), panicking with its output if it
    /// fails; prints what it said on stderr.
    pub fn up(
        name: &str,
        prefix: &str,
        args: &[&str],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> ScriptTopo {
        require_root();
        // The guard exists first, so a half-built topology is removed too.
        let t = ScriptTopo {
            name: name.to_string(),
            prefix: prefix.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let out = run_timeout(t.command(&["up", prefix]).args(args), timeout);
        assert!(
            out.status.success(),
            "{name} up {prefix} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{}", String::from_utf8_lossy(&out.stderr).trim_end());
        t
    }

    /// `bash netns-scripts/NAME ARGS...` with the topology's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(workspace_root().join("netns-scripts").join(&self.name))
            .args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// The namespace of `role`: PREFIX-ROLE.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// `NAME VERB PREFIX ARGS...` (cut, heal, ...), which must succeed within 20 s.
    pub fn run(&self, verb: &str, args: &[&str]) -> Output {
        run_ok(
            self.command(&[verb, &self.prefix]).args(args),
            Duration::from_secs(20),
        )
    }
}

impl Drop for ScriptTopo {
    fn drop(&mut self) {
        let out = self
            .command(&["down", &self.prefix])
            .stdin(Stdio::null())
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!(
                    "{} down {}: {}",
                    self.name,
                    self.prefix,
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// A lab script run end to end: `NAME up PREFIX ARGS...` with the daemons (this build's
/// ironsecd and ironsecctl) and the state directory in a test directory of its own, as an
/// operator would run it. Fields drop in order: the topology (`down`), then the directory.
pub struct ScriptLab {
    pub topo: ScriptTopo,
    /// The script's state directory, ${TMPDIR}/ironsec-STATE_NAME-PREFIX.
    pub state: PathBuf,
    /// What `down` must stop: the PIDs in STATE/ROLE.ironsecd.pid and STATE/ROLE.bird.pid.
    pids: Vec<String>,
    tmp: TempDir,
}

impl ScriptLab {
    /// `up` of script `name` (state directory ironsec-`state_name`-PREFIX) with `args`, then
    /// the PIDs of ironsecd and BIRD in each of `roles`.
    pub fn up(name: &str, state_name: &str, args: &[&str], roles: &[&str]) -> ScriptLab {
        let prefix = unique_prefix();
        let tmp = TempDir::new(&format!("{state_name}-script-{prefix}"));
        let state = tmp.join(&format!("ironsec-{state_name}-{prefix}"));
        let env = [
            ("TMPDIR", tmp.path.to_str().unwrap()),
            ("IRONSECD", IRONSECD),
            ("IRONSECCTL", IRONSECCTL),
        ];
        let topo = ScriptTopo::up(name, &prefix, args, &env, Duration::from_secs(120));
        let pids = roles
            .iter()
            .flat_map(|g| {
                ["ironsecd", "bird"].map(|d| {
                    std::fs::read_to_string(state.join(format!("{g}.{d}.pid")))
                        .unwrap_or_else(|e| panic!("{g}.{d}.pid: {e}"))
                        .trim()
                        .to_string()
                })
            })
            .collect();
        ScriptLab {
            topo,
            state,
            pids,
            tmp,
        }
    }

    /// `NAME status PREFIX`'s output.
    pub fn status(&self) -> String {
        let out = run_ok(
            &mut self.topo.command(&["status", &self.topo.prefix]),
            Duration::from_secs(30),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `down` (the guard's) and checks that it left nothing behind: no namespace of the
    /// prefix, no state directory, none of the daemons running; then runs `down` once more,
    /// which must succeed too.
    pub fn down_and_check(self) {
        let ScriptLab {
            topo,
            state,
            pids,
            tmp,
        } = self;
        let prefix = topo.prefix.clone();
        let mut again = topo.command(&["down", &prefix]);
        drop(topo);
        let left = namespaces_with(&prefix);
        assert!(left.is_empty(), "{left:?}");
        assert!(!state.exists(), "{} left behind", state.display());
        for pid in pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                        .map_or(true, |c| !c.contains(&prefix)),
                "process {pid} still runs"
            );
        }
        // Twice is fine.
        run_ok(&mut again, Duration::from_secs(30));
        drop(tmp);
    }
}
