//! The `[drain]` table: planned maintenance (`ironsecctl drain` / `rejoin`, the SIGTERM stop
//! path). What it holds is read when a drain or rejoin starts, so every key applies on reload
//! (`rejoin_on_start` at the next start); a drain under way keeps the settings it began with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::schema::DrainSchema;

/// Where `state_file` belongs: the unit's only writable directory (`ReadWritePaths=`).
pub const RUNTIME_DIR: &str = "/run/ironsec";

/// The validated `[drain]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Drain {
    /// Run in order at the start of a drain (argv lists, no shell).
    pub withdraw: Vec<Vec<String>>,
    /// Run in order at the end of a rejoin, once the tunnels are up.
    pub rejoin: Vec<Vec<String>>,
    /// "1" while draining or drained, "0" otherwise.
    pub state_file: Option<PathBuf>,
    /// Below this total rate (packets/s, both directions, all tunnels) traffic has moved.
    pub idle_pps: u64,
    /// How long the rate must stay below `idle_pps`.
    pub quiet: Duration,
    /// The longest wait for traffic (then the SAs are closed anyway) and for the tunnels at a
    /// rejoin; also each command's time limit.
    pub timeout: Duration,
    /// SIGTERM drains before the daemon exits.
    pub on_stop: bool,
    /// A start rejoins: state file "0", then the rejoin commands once the tunnels are up.
    pub rejoin_on_start: bool,
}

/// Defaults. `on_stop` and `rejoin_on_start` are off so that a config without `[drain]` stops
/// and starts as it always did: a drain waits for traffic to go, which only helps when
/// something (BIRD, keepalived) moves it; a stop that waited for nothing would only be slower.
/// 30 packets/s is above what BFD at 100 ms (about 10/s each way per tunnel) and BGP
/// keepalives add on a route-based tunnel, and far below any real traffic.
pub const DEFAULT_IDLE_PPS: u64 = 30;
pub const DEFAULT_QUIET: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

impl Default for Drain {
    fn default() -> Self {
        Drain {
            withdraw: Vec::new(),
            rejoin: Vec::new(),
            state_file: None,
            idle_pps: DEFAULT_IDLE_PPS,
            quiet: DEFAULT_QUIET,
            timeout: DEFAULT_TIMEOUT,
            on_stop: false,
            rejoin_on_start: false,
        }
    }
}

impl Drain {
    /// What is valid but worth an operator's look (`ironsecd check`, the start-up log).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.state_file {
            if !p.starts_with(RUNTIME_DIR) {
                out.push(format!(
                    "drain.state_file {} is not under {RUNTIME_DIR}: the systemd unit's sandbox \
                     (ProtectSystem=strict) lets ironsecd write only there",
                    p.display()
                ));
            }
        }
        out
    }
}

/// A seconds value in `lo..=hi`.
fn seconds(
    file: &Path,
    key: &str,
    v: Option<f64>,
    default: Duration,
    (lo, hi): (f64, f64),
    errs: &mut Vec<ConfigError>,
) -> Duration {
    match v {
        None => default,
        Some(s) if s.is_finite() && (lo..=hi).contains(&s) => Duration::from_secs_f64(s),
        Some(s) => {
            errs.push(ConfigError::new(
                file,
                format!("drain.{key}"),
                format!("{s} is outside {lo}..={hi} seconds"),
            ));
            default
        }
    }
}

/// Checks a list of commands: each a non-empty argv whose program is a bare name (looked up
/// in PATH) or an absolute path. A relative path with a '/' would depend on the daemon's
/// working directory, `/` under systemd.
fn commands(
    file: &Path,
    key: &str,
    v: Option<Vec<Vec<String>>>,
    errs: &mut Vec<ConfigError>,
) -> Vec<Vec<String>> {
    let v = v.unwrap_or_default();
    for (i, argv) in v.iter().enumerate() {
        let here = format!("drain.{key}[{i}]");
        match argv.first() {
            None => errs.push(ConfigError::new(
                file,
                &here,
                "an empty command: expected a program and its arguments, e.g. [\"birdc\", \"configure\"]",
            )),
            Some(p) if p.is_empty() => {
                errs.push(ConfigError::new(file, &here, "the program name is empty"))
            }
            Some(p) if p.contains('/') && !p.starts_with('/') => errs.push(ConfigError::new(
                file,
                &here,
                format!(
                    "'{p}' is a relative path: give the program's absolute path or a name \
                     looked up in PATH"
                ),
            )),
            Some(_) => {}
        }
        if argv.iter().any(|a| a.contains('\0')) {
            errs.push(ConfigError::new(
                file,
                here,
                "an argument holds a NUL byte, which no command line can carry",
            ));
        }
    }
    v
}

/// Validates `[drain]` of `file`, every problem into `errs`.
pub(super) fn validate(file: &Path, d: DrainSchema, errs: &mut Vec<ConfigError>) -> Drain {
    let withdraw = commands(file, "withdraw", d.withdraw, errs);
    let rejoin = commands(file, "rejoin", d.rejoin, errs);
    let state_file = match d.state_file {
        Some(p) if p.as_os_str().is_empty() || !p.is_absolute() => {
            errs.push(ConfigError::new(
                file,
                "drain.state_file",
                format!(
                    "'{}' is not an absolute path (e.g. \"{RUNTIME_DIR}/drain\")",
                    p.display()
                ),
            ));
            None
        }
        other => other,
    };
    let idle_pps = d.idle_pps.unwrap_or(DEFAULT_IDLE_PPS);
    if !(1..=10_000_000).contains(&idle_pps) {
        errs.push(ConfigError::new(
            file,
            "drain.idle_pps",
            format!(
                "{idle_pps} is outside 1..=10000000 packets/s (0 could never be reached: \
                 every drain would end by timeout)"
            ),
        ));
    }
    // The rate is sampled every 100 ms: a shorter quiet time could not be seen.
    let quiet = seconds(file, "quiet", d.quiet, DEFAULT_QUIET, (0.1, 60.0), errs);
    let timeout = seconds(
        file,
        "timeout",
        d.timeout,
        DEFAULT_TIMEOUT,
        (1.0, 600.0),
        errs,
    );
    if quiet >= timeout {
        errs.push(ConfigError::new(
            file,
            "drain.quiet",
            format!(
                "{} s is not shorter than drain.timeout ({} s): every drain would end by timeout",
                quiet.as_secs_f64(),
                timeout.as_secs_f64()
            ),
        ));
    }
    Drain {
        withdraw,
        rejoin,
        state_file,
        idle_pps,
        quiet,
        timeout,
        on_stop: d.on_stop.unwrap_or(false),
        rejoin_on_start: d.rejoin_on_start.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;
    use crate::testutil::ConfFile;

    #[test]
    fn defaults_without_the_table_and_values_as_written() {
        let f = ConfFile::new("none", "[gateway]\n");
        let c = Config::load_with_env(&f.0, Vec::new()).unwrap();
        assert_eq!(c.drain, super::Drain::default());
        assert!(!c.drain.on_stop && !c.drain.rejoin_on_start);
        let f = ConfFile::new(
            "set",
            "[gateway]\n[drain]\nwithdraw = [[\"birdc\", \"-s\", \"/run/bird/bird.ctl\", \"configure\", \"\\\"/etc/bird/bird-drain.conf\\\"\"]]\n\
             rejoin = [[\"/usr/sbin/birdc\", \"configure\"], [\"true\"]]\nstate_file = \"/run/ironsec/drain\"\n\
             idle_pps = 50\nquiet = 1.5\ntimeout = 30\non_stop = true\nrejoin_on_start = true\n",
        );
        let c = Config::load_with_env(&f.0, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        let d = &c.drain;
        assert_eq!(d.withdraw[0][4], "\"/etc/bird/bird-drain.conf\"");
        assert_eq!(d.rejoin.len(), 2);
        assert_eq!(
            d.state_file.as_deref(),
            Some(std::path::Path::new("/run/ironsec/drain"))
        );
        assert_eq!(d.idle_pps, 50);
        assert_eq!(d.quiet, Duration::from_millis(1500));
        assert_eq!(d.timeout, Duration::from_secs(30));
        assert!(d.on_stop && d.rejoin_on_start);
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn every_drain_error_at_once_with_file_and_key() {
        let f = ConfFile::new(
            "bad",
            "[gateway]\n[drain]\nwithdraw = [[], [\"\"], [\"bin/birdc\"]]\nrejoin = \"birdc configure\"\n\
             state_file = \"drain\"\nidle_pps = 0\nquiet = 0.05\ntimeout = 1000\non_stop = \"yes please\"\nwait = 3\n",
        );
        let e = Config::load_with_env(&f.0, Vec::new()).unwrap_err();
        let file = f.0.display().to_string();
        let lines: Vec<String> =
            e.0.iter()
                .map(|x| {
                    assert_eq!(x.file.display().to_string(), file);
                    format!("{}: {}", x.key, x.reason)
                })
                .collect();
        let want = [
            "drain.wait: unknown key",
            "drain.on_stop: ",
            "drain.rejoin: ",
            "drain.withdraw[0]: an empty command",
            "drain.withdraw[1]: the program name is empty",
            "drain.withdraw[2]: 'bin/birdc' is a relative path",
            "drain.state_file: 'drain' is not an absolute path",
            "drain.idle_pps: 0 is outside 1..=10000000",
            "drain.quiet: 0.05 is outside 0.1..=60 seconds",
            "drain.timeout: 1000 is outside 1..=600 seconds",
        ];
        for w in want {
            assert!(
                lines.iter().any(|l| l.starts_with(w)),
                "no error starting {w:?} in\n{}",
                lines.join("\n")
            );
        }
        assert_eq!(lines.len(), want.len(), "{}", lines.join("\n"));
    }

    #[test]
    fn a_state_file_outside_the_runtime_directory_is_a_warning() {
        let f = ConfFile::new(
            "warn",
            "[gateway]\n[drain]\nstate_file = \"/var/lib/ironsec/drain\"\nquiet = 2\ntimeout = 2\n",
        );
        let e = Config::load_with_env(&f.0, Vec::new()).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].key, "drain.quiet");
        let f = ConfFile::new(
            "warn2",
            "[gateway]\n[drain]\nstate_file = \"/var/lib/ironsec/drain\"\n",
        );
        let c = Config::load_with_env(&f.0, Vec::new()).unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("drain.state_file /var/lib/ironsec/drain is not under /run/ironsec"),
            "{w:?}"
        );
    }
}
