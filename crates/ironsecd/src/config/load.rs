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
use serde_path_to_error::Segment;
use zeroize::Zeroizing;

use super::error::ConfigError;
use super::schema::{
    keys_of, ConnectionSchema, DrainSchema, FileSchema, FragmentSchema, GatewaySchema,
    TunnelSchema, GATEWAY_KEYS,
};
use super::suggest;

/// What the `file` of an error about an environment variable says: there is no file to name.
pub const ENVIRONMENT: &str = "environment";
/// Prefix of the variables that override `[gateway]` keys; the rest of the name is the key.
pub const ENV_PREFIX: &str = "IRONSEC_GATEWAY__";
/// The fragments directory, beside the main file.
pub const FRAGMENT_DIR: &str = "conf.d";

/// A connection as written, with where it was written.
#[derive(Clone)]
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
    /// `[drain]` of the main file (None as `gateway`).
    pub drain: Option<DrainSchema>,
    pub connections: Vec<SourcedConnection>,
    /// The main file, then the fragments in name order.
    pub sources: Vec<PathBuf>,
    /// Gateway key -> the variable that set it, for errors and for `Config::env_overrides`.
    pub env: BTreeMap<String, String>,
    /// (file, key) of every entry refused while reading and set aside so the rest could be
    /// read. Validation sees those keys as absent (or defaulted), so what it would say about
    /// them ("missing", a range against a default) is not reported a second time.
    pub refused: Vec<(PathBuf, String)>,
    /// How many fragments were parsed this time: the others were read before with the
    /// same bytes ([`FRAGMENTS`]).
    pub fragments_parsed: usize,
}

/// A validated override: the variable, the gateway key it sets and the typed value.
struct EnvOverride {
    var: String,
    key: String,
    value: config::Value,
}

/// Errors found while reading, and the keys they set aside (see [`Loaded::refused`]).
#[derive(Default, Clone)]
struct Found {
    errs: Vec<ConfigError>,
    refused: Vec<(PathBuf, String)>,
}

impl Found {
    /// Reports `key` of `file` and marks it set aside.
    fn refuse(&mut self, file: &Path, key: String, reason: String) {
        self.refused.push((file.to_path_buf(), key.clone()));
        self.errs.push(ConfigError::new(file, key, reason));
    }
}

/// Reads the main file, its fragments and the overrides in `env`; problems go to `errs`, and
/// as much as could be read is returned so that validation can report the rest in one pass.
///
/// Every problem of a file is reported, not just the first serde meets: each table is checked
/// for unknown keys against its schema type's own key list ([`keys_of`]), then deserialized on
/// its own (`[gateway]`, each `[[connection]]`) so that one bad connection cannot hide another,
/// and each value serde refuses is reported and set aside before trying again.
pub(super) fn load(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    errs: &mut Vec<ConfigError>,
) -> Loaded {
    let overrides = env_overrides(env, errs);
    let mut found = Found::default();
    let mut sources = vec![path.to_path_buf()];
    let mut connections = Vec::new();
    let (gateway, drain) = match read_toml(path) {
        Ok((_, mut table)) => {
            top_level_keys(path, &mut table, None, &mut found);
            let gateway = read_gateway(path, table.remove("gateway"), &overrides, &mut found);
            let drain = read_drain(path, table.remove("drain"), &mut found);
            connections.extend(read_connections(
                path,
                table.remove("connection"),
                &mut found,
            ));
            (Some(gateway), Some(drain))
        }
        Err(e) => {
            found.errs.push(e);
            (None, None)
        }
    };
    let mut fragments_parsed = 0;
    match fragment_paths(path) {
        Ok(fragments) => {
            let mut cache = FRAGMENTS.lock().unwrap_or_else(|p| p.into_inner());
            for f in &fragments {
                match read_text(f) {
                    Ok((text, size, mtime)) => {
                        let stamp = Stamp {
                            main: path.to_path_buf(),
                            size,
                            mtime,
                            hash: ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
                                .as_ref()
                                .to_vec(),
                        };
                        let read = match cache.get(f) {
                            Some(c) if c.stamp == stamp => c.read.clone(),
                            _ => {
                                fragments_parsed += 1;
                                let read = read_fragment(path, f, &text);
                                cache.insert(
                                    f.clone(),
                                    CachedFragment {
                                        stamp,
                                        read: read.clone(),
                                    },
                                );
                                read
                            }
                        };
                        connections.extend(read.connections);
                        found.errs.extend(read.found.errs);
                        found.refused.extend(read.found.refused);
                    }
                    Err(e) => {
                        cache.remove(f);
                        found.errs.push(e);
                    }
                }
                sources.push(f.clone());
            }
            // Fragments gone from the directory are forgotten.
            let dir = path.parent().unwrap_or(Path::new("")).join(FRAGMENT_DIR);
            let present: std::collections::HashSet<&PathBuf> = fragments.iter().collect();
            cache.retain(|p, _| p.parent() != Some(dir.as_path()) || present.contains(p));
        }
        Err(e) => found.errs.push(e),
    }
    errs.extend(found.errs);
    Loaded {
        gateway,
        drain,
        connections,
        sources,
        env: overrides.into_iter().map(|o| (o.key, o.var)).collect(),
        refused: found.refused,
        fragments_parsed,
    }
}

/// What a fragment's bytes were, to tell whether it must be parsed again: the main file
/// (named in its errors), its size and modification time, a SHA-256 of its text.
#[derive(PartialEq, Eq)]
struct Stamp {
    main: PathBuf,
    size: u64,
    mtime: Option<std::time::SystemTime>,
    hash: Vec<u8>,
}

/// What reading a fragment gave: its connections, its errors and the keys set aside.
#[derive(Clone, Default)]
struct ReadFragment {
    connections: Vec<SourcedConnection>,
    found: Found,
}

struct CachedFragment {
    stamp: Stamp,
    read: ReadFragment,
}

impl Drop for CachedFragment {
    /// An inline `psk` kept here does not outlive its entry in memory.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for c in &mut self.read.connections {
            if let Some(p) = &mut c.schema.psk {
                p.zeroize();
            }
        }
    }
}

/// Every fragment read, by path: a reload reads each fragment's bytes again (cheap) but
/// parses and checks only those whose bytes changed, so that editing one site's fragment
/// among 10,000 costs one parse. What a fragment gives depends on its path, its bytes and
/// the main file's path only (environment overrides concern `[gateway]`), so a cached
/// result is what parsing again would give. Secret files named in it are read by
/// validation, every time.
static FRAGMENTS: std::sync::Mutex<BTreeMap<PathBuf, CachedFragment>> =
    std::sync::Mutex::new(BTreeMap::new());

/// A fragment's connections and problems, from its text.
fn read_fragment(main: &Path, f: &Path, text: &str) -> ReadFragment {
    let mut found = Found::default();
    let mut connections = Vec::new();
    match parse_toml(f, text) {
        Ok(mut table) => {
            top_level_keys(f, &mut table, Some(main), &mut found);
            connections = read_connections(f, table.remove("connection"), &mut found);
        }
        Err(e) => found.errs.push(e),
    }
    ReadFragment { connections, found }
}

/// Refuses (and removes) the top-level keys a file may not have: anything but `[gateway]` and
/// `[[connection]]` in the main file, anything but `[[connection]]` in a fragment (`main` is
/// then the main file, named in the error so the operator knows where gateway keys go).
fn top_level_keys(file: &Path, table: &mut toml::Table, main: Option<&Path>, found: &mut Found) {
    let known = match main {
        None => keys_of::<FileSchema>(),
        Some(_) => keys_of::<FragmentSchema>(),
    };
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        table.remove(&key);
        let reason = match main {
            Some(main) if key == "gateway" => format!(
                "only the main file sets gateway keys (move them to {}); a {FRAGMENT_DIR} fragment holds [[connection]] tables only",
                main.display()
            ),
            Some(_) => format!(
                "unknown key{}; a {FRAGMENT_DIR} fragment holds [[connection]] tables only",
                suggest::did_you_mean(&key, known.iter().copied())
            ),
            None => unknown_key(&key, known, "the top-level keys are"),
        };
        found.refuse(file, key, reason);
    }
}

/// The reason for an unknown key: the closest known one if there is one, else the list.
fn unknown_key(key: &str, known: &[&str], list_intro: &str) -> String {
    match suggest::closest(key, known.iter().copied()) {
        Some(c) => format!("unknown key (did you mean \"{c}\"?)"),
        None => format!("unknown key; {list_intro} {}", known.join(", ")),
    }
}

/// Removes and reports the keys of `table` (at `key`) that are not in `known`.
fn drop_unknown_keys(
    file: &Path,
    key: &str,
    table: &mut toml::Table,
    known: &[&str],
    list_intro: &str,
    found: &mut Found,
) {
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in unknown {
        table.remove(&k);
        found.refuse(
            file,
            format!("{key}.{k}"),
            unknown_key(&k, known, list_intro),
        );
    }
}

/// `[gateway]` with the environment's overrides: every bad key reported, and left at its
/// default so that the rest is still validated.
fn read_gateway(
    file: &Path,
    value: Option<toml::Value>,
    overrides: &[EnvOverride],
    found: &mut Found,
) -> GatewaySchema {
    let mut table = match value {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            found.refuse(
                file,
                "gateway".into(),
                "expected a table: [gateway] and key = value lines below it".into(),
            );
            toml::Table::new()
        }
    };
    drop_unknown_keys(
        file,
        "gateway",
        &mut table,
        &GATEWAY_KEYS,
        "gateway keys are",
        found,
    );
    deserialize_all(file, "gateway", table, overrides, found).unwrap_or_default()
}

/// `[drain]`: every bad key reported and left at its default, as for `[gateway]`.
fn read_drain(file: &Path, value: Option<toml::Value>, found: &mut Found) -> DrainSchema {
    let mut table = match value {
        None => return DrainSchema::default(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            found.refuse(
                file,
                "drain".into(),
                "expected a table: [drain] and key = value lines below it".into(),
            );
            return DrainSchema::default();
        }
    };
    drop_unknown_keys(
        file,
        "drain",
        &mut table,
        keys_of::<DrainSchema>(),
        "drain keys are",
        found,
    );
    deserialize_all(file, "drain", table, &[], found).unwrap_or_default()
}

/// A file's `[[connection]]` tables, each checked on its own, tagged with its origin.
fn read_connections(
    file: &Path,
    value: Option<toml::Value>,
    found: &mut Found,
) -> Vec<SourcedConnection> {
    let items = match value {
        None => return Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            found.refuse(
                file,
                "connection".into(),
                "expected [[connection]] tables".into(),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("connection[{i}]");
        let toml::Value::Table(mut table) = item else {
            found.refuse(file, key, "expected a [[connection]] table".into());
            continue;
        };
        drop_unknown_keys(
            file,
            &key,
            &mut table,
            keys_of::<ConnectionSchema>(),
            "connection keys are",
            found,
        );
        if let Some(toml::Value::Array(tunnels)) = table.get_mut("tunnels") {
            let mut bad_tunnel = false;
            for (j, t) in tunnels.iter_mut().enumerate() {
                let tk = format!("{key}.tunnels[{j}]");
                match t {
                    toml::Value::Table(t) => drop_unknown_keys(
                        file,
                        &tk,
                        t,
                        keys_of::<TunnelSchema>(),
                        "tunnel keys are",
                        found,
                    ),
                    _ => {
                        bad_tunnel = true;
                        found.refuse(
                            file,
                            tk,
                            "expected a table such as { local = \"192.0.2.1\", remote = \"198.51.100.1\" }".into(),
                        );
                    }
                }
            }
            if bad_tunnel {
                // Removing the entry would renumber the tunnels after it in later errors.
                table.remove("tunnels");
            }
        }
        if let Some(schema) = deserialize_all::<ConnectionSchema>(file, &key, table, &[], found) {
            out.push(SourcedConnection {
                file: file.to_path_buf(),
                key,
                schema: with_resolved_paths(file, schema),
            });
        }
    }
    out
}

/// Resolves a connection's relative secret file paths against the directory of the file that
/// names them: the operator wrote them next to that file, and the daemon's working directory
/// (`/` under systemd) is no place to look for them.
fn with_resolved_paths(file: &Path, mut c: ConnectionSchema) -> ConnectionSchema {
    let base = file.parent().unwrap_or(Path::new(""));
    c.psk_file = c.psk_file.map(|p| base.join(p));
    c.keys_file = c.keys_file.map(|p| base.join(p));
    c.local_cert = c.local_cert.map(|p| base.join(p));
    c.local_key = c.local_key.map(|p| base.join(p));
    if let Some(v) = &mut c.local_certs {
        for e in v {
            e.cert = e.cert.take().map(|p| base.join(p));
            e.key = e.key.take().map(|p| base.join(p));
        }
    }
    c.remote_cert = c.remote_cert.map(|p| base.join(p));
    c.eap_users_file = c.eap_users_file.map(|p| base.join(p));
    c.radius_secret_file = c.radius_secret_file.map(|p| base.join(p));
    c
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

/// A file's text, checked to be TOML. The parser's own message quotes the offending line,
/// which may hold an inline `psk`: report its position and reason only.
fn read_toml(path: &Path) -> Result<(Zeroizing<String>, toml::Table), ConfigError> {
    let (text, _, _) = read_text(path)?;
    let table = parse_toml(path, &text)?;
    Ok((text, table))
}

/// A file's text, with its size and modification time.
fn read_text(
    path: &Path,
) -> Result<(Zeroizing<String>, u64, Option<std::time::SystemTime>), ConfigError> {
    let cannot = |e: std::io::Error| ConfigError::new(path, "", format!("cannot read: {e}"));
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(cannot)?);
    let meta = std::fs::metadata(path).map_err(cannot)?;
    Ok((text, meta.len(), meta.modified().ok()))
}

/// `text` (of file `path`) as a TOML table; an error gives the position only (see
/// [`read_toml`]).
fn parse_toml(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
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
    })
}

/// Deserializes `table` (at `key`; with `overrides` set in it) as a `T`, reporting every
/// value serde refuses: each is reported, set aside and the rest tried again, until what is
/// left deserializes (every schema key is optional or defaulted, so it does). None if an error
/// names no key that could be set aside.
///
/// The values go through the config crate, as they always have, so its conversions (`"1400"`
/// for an integer key, `"yes"` for a bool) keep working and environment values behave alike.
fn deserialize_all<T: DeserializeOwned>(
    file: &Path,
    key: &str,
    table: toml::Table,
    overrides: &[EnvOverride],
    found: &mut Found,
) -> Option<T> {
    let mut value = toml::Value::Table(table);
    let mut overrides: Vec<&EnvOverride> = overrides.iter().collect();
    let mut errs = Vec::new();
    let result = loop {
        let mut raw = to_config(&value);
        if let config::ValueKind::Table(t) = &mut raw.kind {
            for o in &overrides {
                t.insert(o.key.clone(), o.value.clone());
            }
        }
        let e = match serde_path_to_error::deserialize::<_, T>(raw) {
            Ok(t) => break Some(t),
            Err(e) => e,
        };
        let path: Vec<Segment> = e.path().iter().cloned().collect();
        let rel = e.path().to_string();
        let rel = if rel == "." { String::new() } else { rel };
        let reason = super::strip_location(&e.into_inner().to_string());
        // A mistyped secret must not be echoed back ("invalid type: integer `1234`").
        let reason = if rel == "psk" {
            "expected a quoted string (the value is not shown: it is a secret)".to_string()
        } else {
            reason
        };
        if let Some(i) = overrides.iter().position(|o| o.key == rel) {
            errs.push(ConfigError::new(
                Path::new(ENVIRONMENT),
                &overrides[i].var,
                reason,
            ));
            overrides.remove(i);
            continue;
        }
        let full = if rel.is_empty() {
            key.to_string()
        } else {
            format!("{key}.{rel}")
        };
        found.refused.push((file.to_path_buf(), full.clone()));
        errs.push(ConfigError::new(file, full, reason));
        if !set_aside(&mut value, &path) {
            break None;
        }
    };
    // serde meets the keys in no fixed order (the config crate's tables are hash maps).
    errs.sort_by(|a, b| a.key.cmp(&b.key));
    found.errs.extend(errs);
    result
}

/// Removes the entry an error's `path` names: the innermost table key on it (an array element
/// goes with its whole array, so that later errors keep their indices). False if there is none.
fn set_aside(value: &mut toml::Value, path: &[Segment]) -> bool {
    let Some(last) = path.iter().rposition(|s| matches!(s, Segment::Map { .. })) else {
        return false;
    };
    let mut cur = value;
    for s in &path[..last] {
        cur = match (s, cur) {
            (Segment::Map { key }, toml::Value::Table(t)) => match t.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, toml::Value::Array(a)) => match a.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (&path[last], cur) {
        (Segment::Map { key }, toml::Value::Table(t)) => t.remove(key).is_some(),
        _ => false,
    }
}

/// A TOML value as the config crate's, to deserialize through it.
fn to_config(v: &toml::Value) -> config::Value {
    use config::ValueKind as K;
    let kind = match v {
        toml::Value::String(s) => K::String(s.clone()),
        toml::Value::Integer(i) => K::I64(*i),
        toml::Value::Float(f) => K::Float(*f),
        toml::Value::Boolean(b) => K::Boolean(*b),
        toml::Value::Datetime(d) => K::String(d.to_string()),
        toml::Value::Array(a) => K::Array(a.iter().map(to_config).collect()),
        toml::Value::Table(t) => {
            K::Table(t.iter().map(|(k, v)| (k.clone(), to_config(v))).collect())
        }
    };
    config::Value::new(None, kind)
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
            errs.push(err(
                match suggest::closest(&key, GATEWAY_KEYS.iter().copied()) {
                    Some(c) => format!(
                        "unknown key '{key}' (did you mean {ENV_PREFIX}{}?)",
                        c.to_ascii_uppercase()
                    ),
                    None => format!(
                        "unknown key '{key}'; gateway keys are {}",
                        GATEWAY_KEYS.join(", ")
                    ),
                },
            ));
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
