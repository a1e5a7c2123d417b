//! The benchmark and measurement scripts of `netns-scripts/` run as tests: each prints a
//! human report on stderr/stdout and one JSON object as its last stdout line, and must leave no
//! namespace of its prefix behind.

use std::process::Command;

use serde_json::Value;

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
