//! Where the configuration comes from, and how every piece keeps its origin.
//!
//! - The main file sets `[gateway]` and may hold connections.
//! - `conf.d/*.toml` beside it add connections only, so a config manager can drop in or remove
//!   one file per site without editing a shared file.
//! - `IRONSEC_GATEWAY__<KEY>` variables override single `[gateway]` keys, so one config file can
//!   serve several hosts (a different TUN name or metrics address per unit or container).
//!
//! Each file is parsed on its own instead of being merged by the config crate: its merge joins
//! arrays by index, so a fragment's `connection[0]` would overwrite the main file's first
//! connection field by field. Every connection carries its file and its index in that file, so
//! an error points at the table the operator wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::error::ConfigError;
use super::schema::{ConnectionSchema, FileSchema, FragmentSchema, GatewaySchema, GATEWAY_KEYS};

/// What the `file` of an error about an environment variable says: there is no file to name.
pub const ENVIRONMENT: &str = "environment";
/// Prefix of the variables that override `[gateway]` keys; the rest of the name is the key.
pub const ENV_PREFIX: &str = "IRONSEC_GATEWAY__";
/// The fragments directory, beside the main file.
pub const FRAGMENT_DIR: &str = "conf.d";

/// A connection as written, with where it was written.
pub(super) struct SourcedConnection {
    pub file: PathBuf,
    /// `connection[i]`, indexed within `file`.
    pub key: String,
    pub schema: ConnectionSchema,
}

/// Everything read, before validation.
pub(super) struct Loaded {
    /// None when the main file could not be read or parsed (its error is already reported).
    pub gateway: Option<GatewaySchema>,
    pub connections: Vec<SourcedConnection>,
    /// The main file, then the fragments in name order.
    pub sources: Vec<PathBuf>,
    /// Gateway key -> the variable that set it, for errors and for `Config::env_overrides`.
    pub env: BTreeMap<String, String>,
}

/// A validated override: the variable, the gateway key it sets and the typed value.
struct EnvOverride {
    var: String,
    key: String,
    value: config::Value,
}

/// Reads the main file, its fragments and the overrides in `env`; problems go to `errs`, and
/// as much as could be read is returned so that validation can report the rest in one pass.
pub(super) fn load(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    errs: &mut Vec<ConfigError>,
) -> Loaded {
    let overrides = env_overrides(env, errs);
    let mut sources = vec![path.to_path_buf()];
    let mut connections = Vec::new();
    let gateway = match read_toml(path)
        .and_then(|(text, _)| deserialize::<FileSchema>(path, &text, &overrides))
    {
        Ok(s) => {
            connections.extend(sourced(path, s.connection));
            Some(s.gateway)
        }
        Err(e) => {
            errs.push(e);
            None
        }
    };
    match fragment_paths(path) {
        Ok(fragments) => {
            for f in fragments {
                connections.extend(sourced(&f, read_fragment(&f, path, errs)));
                sources.push(f);
            }
        }
        Err(e) => errs.push(e),
    }
    Loaded {
        gateway,
        connections,
        sources,
        env: overrides.into_iter().map(|o| (o.key, o.var)).collect(),
    }
}

/// Tags a file's connections with their origin and resolves their relative secret file paths
/// against the file's directory: the operator wrote them next to that file, and the daemon's
/// working directory (`/` under systemd) is no place to look for them.
fn sourced(file: &Path, conns: Vec<ConnectionSchema>) -> Vec<SourcedConnection> {
    let base = file.parent().unwrap_or(Path::new(""));
    conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.psk_file = c.psk_file.map(|p| base.join(p));
            c.keys_file = c.keys_file.map(|p| base.join(p));
            SourcedConnection {
                file: file.to_path_buf(),
                key: format!("connection[{i}]"),
                schema: c,
            }
        })
        .collect()
}

/// `conf.d/*.toml` beside `main`, sorted by file name so the order of connections (and of
/// errors) does not depend on the directory's order. No `conf.d` is fine; hidden files (editor
/// swap and lock files) and other extensions are skipped.
pub fn fragment_paths(main: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let dir = main.parent().unwrap_or(Path::new("")).join(FRAGMENT_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError::new(&dir, "", format!("cannot list: {e}"))),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ConfigError::new(&dir, "", format!("cannot list: {e}")))?;
        let name = entry.file_name();
        let p = Path::new(&name);
        if !name.as_encoded_bytes().starts_with(b".") && p.extension().is_some_and(|x| x == "toml")
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// A fragment's connections. Any other top-level key is refused (all of them reported), yet
/// its connections are still checked so one run shows every problem.
fn read_fragment(path: &Path, main: &Path, errs: &mut Vec<ConfigError>) -> Vec<ConnectionSchema> {
    let (text, table) = match read_toml(path) {
        Ok(t) => t,
        Err(e) => {
            errs.push(e);
            return Vec::new();
        }
    };
    for key in table.keys().filter(|k| *k != "connection") {
        let reason = if key == "gateway" {
            format!(
                "only the main file sets gateway keys (move them to {}); a {FRAGMENT_DIR} fragment holds [[connection]] tables only",
                main.display()
            )
        } else {
            format!("unknown key; a {FRAGMENT_DIR} fragment holds [[connection]] tables only")
        };
        errs.push(ConfigError::new(path, key.as_str(), reason));
    }
    match deserialize::<FragmentSchema>(path, &text, &[]) {
        Ok(f) => f.connection,
        Err(e) => {
            errs.push(e);
            Vec::new()
        }
    }
}

/// A file's text, checked to be TOML. The parser's own message quotes the offending line,
/// which may hold an inline `psk`: report its position and reason only.
fn read_toml(path: &Path) -> Result<(Zeroizing<String>, toml::Table), ConfigError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, "", format!("cannot read: {e}")))?,
    );
    let table = text.parse::<toml::Table>().map_err(|e| {
        let at = e.span().map_or(String::new(), |s| {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!(" at line {line}, column {column}")
        });
        let msg: Vec<&str> = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        ConfigError::new(path, "", format!("not valid TOML{at}: {}", msg.join("; ")))
    })?;
    Ok((text, table))
}

/// Deserializes one file's text (with `overrides` applied to its `[gateway]`) through the
/// config crate, keeping the key path of the first problem.
fn deserialize<T: DeserializeOwned>(
    path: &Path,
    text: &str,
    overrides: &[EnvOverride],
) -> Result<T, ConfigError> {
    let mut b = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml));
    for o in overrides {
        b = b
            .set_override(format!("gateway.{}", o.key), o.value.clone())
            .map_err(|e| ConfigError::new(Path::new(ENVIRONMENT), &o.var, e.to_string()))?;
    }
    let raw = b
        .build()
        .map_err(|e| ConfigError::new(path, "", without_source_lines(&e.to_string())))?;
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let reason = super::strip_location(&e.into_inner().to_string());
        // A mistyped secret must not be echoed back ("invalid type: integer `1234`").
        let reason = if key == "psk" || key.ends_with(".psk") {
            "expected a quoted string (the value is not shown: it is a secret)".to_string()
        } else {
            reason
        };
        match overrides
            .iter()
            .find(|o| key == format!("gateway.{}", o.key))
        {
            Some(o) => ConfigError::new(Path::new(ENVIRONMENT), &o.var, reason),
            None => ConfigError::new(path, key, reason),
        }
    })
}

/// Drops the source excerpt (`12 | psk = "..."`, `  |     ^`) a TOML parser puts in its
/// messages: the line may hold a secret, and our error already names file and position.
fn without_source_lines(msg: &str) -> String {
    let kept: Vec<&str> = msg
        .lines()
        .filter(|l| {
            !l.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ')
                .starts_with('|')
        })
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    super::strip_location(&kept.join("; "))
}

/// `IRONSEC_GATEWAY__<KEY>` variables from `env`, each checked on its own against the gateway
/// schema so an error names the variable, not a line of the file. Every other variable is
/// ignored: `IRONSEC_LOG`, `IRONSEC_NS_PREFIX` and the like are not config.
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
    errs: &mut Vec<ConfigError>,
) -> Vec<EnvOverride> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.to_ascii_uppercase().starts_with("IRONSEC_GATEWAY_"))
        .collect();
    vars.sort();
    let mut out: Vec<EnvOverride> = Vec::new();
    for (var, text) in vars {
        let err = |reason: String| ConfigError::new(Path::new(ENVIRONMENT), &var, reason);
        // ASCII upper-casing keeps byte offsets, so the key keeps the spelling it was given.
        if !var.to_ascii_uppercase().starts_with(ENV_PREFIX) {
            errs.push(err(format!(
                "not a gateway override: they are named {ENV_PREFIX}<KEY>, with two underscores before the key"
            )));
            continue;
        }
        let key = var[ENV_PREFIX.len()..].to_ascii_lowercase();
        if !GATEWAY_KEYS.contains(&key.as_str()) {
            errs.push(err(format!(
                "unknown key '{key}'; gateway keys are {}",
                GATEWAY_KEYS.join(", ")
            )));
            continue;
        }
        if let Some(prev) = out.iter().find(|o| o.key == key) {
            errs.push(err(format!("gateway.{key} is already set by {}", prev.var)));
            continue;
        }
        let value = env_value(&text);
        // The key alone, with defaults for the rest: the schema says whether the value fits.
        let checked = config::Config::builder()
            .set_override(format!("gateway.{key}"), value.clone())
            .and_then(|b| b.build())
            .map_err(|e| e.to_string())
            .and_then(|raw| {
                serde_path_to_error::deserialize::<_, FileSchema>(raw)
                    .map(|_| ())
                    .map_err(|e| super::strip_location(&e.into_inner().to_string()))
            });
        match checked {
            Ok(()) => out.push(EnvOverride { var, key, value }),
            Err(reason) => errs.push(err(format!("'{text}': {reason}"))),
        }
    }
    out
}

/// An environment value is text; it is an integer or a bool when it looks like one, so that
/// `IRONSEC_GATEWAY__WORKERS=2` fills an integer key. (The config crate still turns `1234`
/// into text for a string key such as `tun`.)
fn env_value(text: &str) -> config::Value {
    if let Ok(i) = text.parse::<i64>() {
        i.into()
    } else if text.eq_ignore_ascii_case("true") {
        true.into()
    } else if text.eq_ignore_ascii_case("false") {
        false.into()
    } else {
        text.to_string().into()
    }
}
