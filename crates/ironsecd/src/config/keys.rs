//! Static SA key files. Keys never appear in errors, logs or `Debug` output: messages name the
//! file, the SPI and what is wrong, never the value.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zeroize::Zeroizing;

use super::error::ConfigError;
use super::schema::parse_spi;

/// Key material: an AEAD's key || salt, or AES-CBC's key || HMAC key. Zeroed when dropped;
/// `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Keymat(Zeroizing<Vec<u8>>);

impl Keymat {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Keymat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keymat(<{} bytes redacted>)", self.0.len())
    }
}

/// Refuses a secret file that anyone but its owner could read or change: a key that other
/// local users can read is no longer secret, and one they can write is no longer ours.
pub fn check_private(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::new(path, "", format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(ConfigError::new(path, "", "not a regular file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::new(
            path,
            "",
            format!(
                "permissions {mode:04o} let group or others access this secret file; run chmod 600 on it"
            ),
        ));
    }
    Ok(())
}

/// The text that marks a secret file as an example shipped with ironsec (under `conf/`), so
/// that every example config can be checked from a fresh clone: such a file is no secret
/// (everyone has it, and git cannot keep it 0600), so its permissions are not checked;
/// `ironsecd check` warns about it and the daemon refuses to run with it
/// ([`super::Config::load`]).
pub const EXAMPLE_MARK: &str = "ironsec-example-secret-not-for-use";

/// Whether the file at `path` is a shipped example secret: it holds [`EXAMPLE_MARK`].
pub fn is_example(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| {
        let bytes = Zeroizing::new(bytes);
        bytes
            .windows(EXAMPLE_MARK.len())
            .any(|w| w == EXAMPLE_MARK.as_bytes())
    })
}

/// Checks the secret file `path` that key `key` of config file `file` names, and reports a
/// problem against that config key (with the secret file's path in the reason), so the operator
/// sees both which file is wrong and which connection wants it.
///
/// Without `allow_readable` the file must be private to its owner, as [`check_private`] wants.
/// With it, group or others may *read* the file (some deployments hand secrets out through a
/// group-readable store) and a warning is logged; writing by others is still refused, since
/// whoever can change the key can impersonate the peer, which no setting should permit.
pub fn check_secret_file(
    file: &Path,
    key: &str,
    path: &Path,
    allow_readable: bool,
) -> Result<(), ConfigError> {
    let fail =
        |reason: String| ConfigError::new(file, key, format!("{}: {reason}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if is_example(path) {
        // Not a secret: the loader reports it as an example instead.
        return Ok(());
    }
    let mode = meta.mode() & 0o777;
    let who = |bits: u32| match (mode & bits & 0o070 != 0, mode & bits & 0o007 != 0) {
        (true, false) => "its group",
        (false, true) => "all local users",
        _ => "its group and all local users",
    };
    if mode & 0o022 != 0 {
        return Err(fail(format!(
            "permissions {mode:04o} let {} change this secret file; run chmod 600 on it{}",
            who(0o022),
            if allow_readable {
                " (allow_readable_secret_file permits reading by others, never writing)"
            } else {
                ""
            }
        )));
    }
    if mode & 0o077 != 0 {
        if !allow_readable {
            return Err(fail(format!(
                "permissions {mode:04o} let {} read this secret file; run chmod 600 on it, \
                 or set allow_readable_secret_file = true in this connection to accept that",
                who(0o077)
            )));
        }
        tracing::warn!(
            config = %file.display(),
            key = %key,
            secret_file = %path.display(),
            mode = format!("{mode:04o}"),
            "secret file is readable by {}; accepted because allow_readable_secret_file = true",
            who(0o077)
        );
    }
    Ok(())
}

/// Reads `0x<spi> = "<hex>"` lines (a TOML table) into keys by SPI, after [`check_private`].
pub fn load(path: &Path) -> Result<HashMap<u32, Keymat>, Vec<ConfigError>> {
    check_private(path).map_err(|e| vec![e])?;
    read_keys(path)
}

/// Reads a keys file without looking at its permissions: for callers that checked them with
/// [`check_secret_file`].
pub fn read_keys(path: &Path) -> Result<HashMap<u32, Keymat>, Vec<ConfigError>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| vec![ConfigError::new(path, "", format!("cannot read: {e}"))])?,
    );
    // toml's own messages quote the offending line, which may hold a key: report the line only.
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let at = line.map_or(String::new(), |l| format!(" at line {l}"));
        vec![ConfigError::new(
            path,
            "",
            format!("not valid TOML{at}: expected lines of the form 0x<spi> = \"<hex key>\""),
        )]
    })?;
    let mut keys = HashMap::new();
    let mut errors = Vec::new();
    for (name, value) in table.iter() {
        let spi = match parse_spi(name) {
            Ok(s) => s.0,
            Err(e) => {
                errors.push(ConfigError::new(path, name.as_str(), e));
                continue;
            }
        };
        let Some(hex_str) = value.as_str() else {
            errors.push(ConfigError::new(
                path,
                name.as_str(),
                "expected a quoted hex string",
            ));
            continue;
        };
        let hex_str: String = hex_str
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect();
        let hex_str = Zeroizing::new(hex_str);
        match hex::decode(hex_str.as_bytes()) {
            Ok(bytes) => {
                if keys.insert(spi, Keymat(Zeroizing::new(bytes))).is_some() {
                    errors.push(ConfigError::new(path, name.as_str(), "SPI given twice"));
                }
            }
            Err(_) => errors.push(ConfigError::new(
                path,
                name.as_str(),
                "key is not an even number of hex digits",
            )),
        }
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, body: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ironsec-keys-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn loads_keys_by_spi() {
        let d = tmpdir("ok");
        let p = write(
            &d,
            "k",
            "0xc0000102 = \"00 01 02 03\"\n0x1000 = \"aabb\"\n",
            0o600,
        );
        let k = load(&p).unwrap();
        assert_eq!(k[&0xc000_0102].bytes(), &[0, 1, 2, 3]);
        assert_eq!(k[&0x1000].bytes(), &[0xaa, 0xbb]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn refuses_readable_file_and_never_echoes_secrets() {
        let d = tmpdir("bad");
        let p = write(&d, "k", "0x1000 = \"aabb\"\n", 0o644);
        let e = load(&p).unwrap_err();
        assert!(e[0].reason.contains("chmod 600"), "{}", e[0]);

        let p = write(&d, "k2", "0x1000 = \"deadbeefzz\"\n", 0o600);
        let e = load(&p).unwrap_err();
        assert_eq!(e[0].key, "0x1000");
        assert!(!e[0].to_string().contains("deadbeef"));

        let p = write(&d, "k3", "0x1000 = \"deadbeef\n", 0o600);
        let e = load(&p).unwrap_err();
        assert!(!e[0].to_string().contains("deadbeef"), "{}", e[0]);
        assert!(e[0].reason.contains("line 1"), "{}", e[0]);
        assert!(format!("{:?}", Keymat(Zeroizing::new(vec![0xde, 0xad]))).contains("redacted"));
        std::fs::remove_dir_all(d).unwrap();
    }
}
