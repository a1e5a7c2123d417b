//! `remote_auth = "eap-radius"`: remote-access clients' EAP relayed to a RADIUS server
//! (RFC 3579), one server per connection: `radius_server` ("ip:port", port 1812 by default),
//! `radius_secret_file` (the shared secret, mode 0600 like a PSK file; never logged),
//! `radius_timeout` (seconds before a request is sent again, default 3), `radius_tries`
//! (sends in all, default 3) and `radius_nas_identifier` (default "ironsec").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ironsec_ike::eap::radius::Secret;

use super::error::ConfigError;
use super::schema::ConnectionSchema;

/// A connection's RADIUS server as loaded. Equal when the same settings and secret file are
/// named (a changed secret in the same file is read by the next reload of the connection).
#[derive(Debug, Clone)]
pub struct RadiusConfig {
    pub server: SocketAddr,
    pub secret_file: PathBuf,
    pub secret: Arc<Secret>,
    pub timeout: Duration,
    pub tries: u32,
    pub nas_identifier: String,
}

impl PartialEq for RadiusConfig {
    fn eq(&self, o: &Self) -> bool {
        self.server == o.server
            && self.secret_file == o.secret_file
            && self.timeout == o.timeout
            && self.tries == o.tries
            && self.nas_identifier == o.nas_identifier
    }
}

/// The `radius_*` keys of a connection that does not use them.
pub fn unused_keys(file: &Path, key: &str, c: &ConnectionSchema, errs: &mut Vec<ConfigError>) {
    let set = [
        ("radius_server", c.radius_server.is_some()),
        ("radius_secret_file", c.radius_secret_file.is_some()),
        ("radius_timeout", c.radius_timeout.is_some()),
        ("radius_tries", c.radius_tries.is_some()),
        ("radius_nas_identifier", c.radius_nas_identifier.is_some()),
    ];
    for (name, given) in set {
        if given {
            errs.push(ConfigError::new(
                file,
                format!("{key}.{name}"),
                "set, but remote_auth is not \"eap-radius\": we would not use it",
            ));
        }
    }
}

/// Reads and checks the `radius_*` keys of an `eap-radius` connection.
pub fn validate(
    file: &Path,
    key: &str,
    c: &ConnectionSchema,
    errs: &mut Vec<ConfigError>,
) -> Option<RadiusConfig> {
    let before = errs.len();
    let k = |n: &str| format!("{key}.{n}");
    let server = match c.radius_server.as_deref() {
        None => {
            errs.push(ConfigError::new(
                file,
                k("radius_server"),
                "required with remote_auth = \"eap-radius\": the RADIUS server's address, \
                 \"ip:port\" (or \"ip\" for port 1812)",
            ));
            None
        }
        Some(s) => {
            match s.parse::<SocketAddr>().or_else(|_| {
                s.parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 1812))
            }) {
                Ok(a) if a.is_ipv4() && !a.ip().is_unspecified() && a.port() != 0 => Some(a),
                _ => {
                    errs.push(ConfigError::new(
                    file,
                    k("radius_server"),
                    format!("'{s}' is not an IPv4 address with an optional port (\"10.1.0.5:1812\")"),
                ));
                    None
                }
            }
        }
    };
    let secret = match &c.radius_secret_file {
        None => {
            errs.push(ConfigError::new(
                file,
                k("radius_secret_file"),
                "required with remote_auth = \"eap-radius\": a file (mode 0600) holding the \
                 secret shared with the RADIUS server",
            ));
            None
        }
        Some(p) => read_secret(file, &k("radius_secret_file"), p, c, errs),
    };
    let timeout = c.radius_timeout.unwrap_or(3);
    if !(1..=60).contains(&timeout) {
        errs.push(ConfigError::new(
            file,
            k("radius_timeout"),
            format!("{timeout} is not between 1 and 60 (seconds)"),
        ));
    }
    let tries = c.radius_tries.unwrap_or(3);
    if !(1..=10).contains(&tries) {
        errs.push(ConfigError::new(
            file,
            k("radius_tries"),
            format!("{tries} is not between 1 and 10"),
        ));
    }
    let nas_identifier = c
        .radius_nas_identifier
        .clone()
        .unwrap_or_else(|| "ironsec".into());
    if nas_identifier.is_empty() || nas_identifier.len() > 253 {
        errs.push(ConfigError::new(
            file,
            k("radius_nas_identifier"),
            "empty or longer than 253 bytes",
        ));
    }
    if errs.len() != before {
        return None;
    }
    Some(RadiusConfig {
        server: server?,
        secret_file: c.radius_secret_file.clone()?,
        secret: Arc::new(secret?),
        timeout: Duration::from_secs(timeout),
        tries,
        nas_identifier,
    })
}

/// The secret: the file's first line, private like a PSK file.
fn read_secret(
    file: &Path,
    k: &str,
    path: &Path,
    c: &ConnectionSchema,
    errs: &mut Vec<ConfigError>,
) -> Option<Secret> {
    let allow = c.allow_readable_secret_file.unwrap_or(false);
    let r = super::keys::check_secret_file(file, k, path, allow).and_then(|()| {
        let fail =
            |reason: String| ConfigError::new(file, k, format!("{}: {reason}", path.display()));
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?,
        );
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        Secret::new(line.as_bytes().to_vec()).ok_or_else(|| fail("empty secret".into()))
    });
    match r {
        Ok(s) => Some(s),
        Err(e) => {
            errs.push(e);
            None
        }
    }
}
