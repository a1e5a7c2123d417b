//! The users of a local EAP-MSCHAPv2 connection: `name:NT-hash` lines, the hash as freeradius's
//! `NT-Password` and strongSwan's `ntlm` secrets store it (MD4 of the UTF-16LE password, 32 hex
//! digits). The hash is password-equivalent for MSCHAPv2: it is wiped on drop and never shown.
//!
//! ```text
//! # comment
//! alice:8846F7EAEE8FB117AD06BDD830B7586C
//! ```

use std::collections::HashMap;
use std::fmt;

use md4::{Digest, Md4};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// An NT password hash (RFC 2759 §8.3 `NtPasswordHash`). Zeroed on drop; `Debug` shows no
/// byte of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct NtHash([u8; 16]);

impl NtHash {
    pub fn from_bytes(b: [u8; 16]) -> NtHash {
        NtHash(b)
    }

    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// 32 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<NtHash> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return None;
        }
        let mut out = NtHash([0; 16]);
        for (i, pair) in s.chunks_exact(2).enumerate() {
            out.0[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(out)
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Constant time: a config reload comparing user sets leaks nothing through timing.
impl PartialEq for NtHash {
    fn eq(&self, other: &NtHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for NtHash {}

impl fmt::Debug for NtHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NtHash(<redacted>)")
    }
}

/// `NtPasswordHash(password)`: MD4 of the password in UTF-16 little-endian (RFC 2759 §8.3).
pub fn nthash(password: &str) -> NtHash {
    let utf16: Zeroizing<Vec<u8>> =
        Zeroizing::new(password.encode_utf16().flat_map(u16::to_le_bytes).collect());
    let mut md4 = Md4::new();
    md4.update(&utf16[..]);
    let mut h = md4.finalize();
    let out = NtHash(h.into());
    h.zeroize();
    out
}

/// What is wrong with a users file, and on which line (1-based). Never quotes the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsersError {
    pub line: usize,
    pub kind: UsersErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsersErrorKind {
    /// No `:` between name and hash.
    MissingColon,
    EmptyName,
    /// The name has whitespace, a control character or is longer than 255 bytes.
    BadName,
    /// Not 32 hex digits.
    BadHash,
    /// The name was already given on `first`.
    Duplicate {
        name: String,
        first: usize,
    },
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            UsersErrorKind::MissingColon => f.write_str("expected 'name:NT-hash'"),
            UsersErrorKind::EmptyName => f.write_str("empty user name"),
            UsersErrorKind::BadName => f.write_str(
                "user name with whitespace or control characters, or longer than 255 bytes",
            ),
            UsersErrorKind::BadHash => {
                f.write_str("the NT hash must be 32 hex digits (MD4 of the UTF-16LE password)")
            }
            UsersErrorKind::Duplicate { name, first } => write!(
                f,
                "user '{}' already defined on line {first}",
                name.escape_debug()
            ),
        }
    }
}

impl std::error::Error for UsersError {}

/// The users of a connection, by name (compared exactly, as strongSwan's secrets are).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Users {
    by_name: HashMap<String, NtHash>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Users(<{} users>)", self.by_name.len())
    }
}

impl Users {
    pub fn new() -> Users {
        Users::default()
    }

    /// Adds a user; false (and nothing changed) if the name is taken.
    pub fn insert(&mut self, name: &str, hash: NtHash) -> bool {
        if self.by_name.contains_key(name) {
            return false;
        }
        self.by_name.insert(name.to_string(), hash);
        true
    }

    /// Parses a users file: `name:hash` per line, `#` comments and blank lines ignored,
    /// whitespace around either field trimmed.
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let mut users = Users::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |kind| UsersError { line, kind };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let Some((name, hash)) = l.rsplit_once(':') else {
                return Err(err(UsersErrorKind::MissingColon));
            };
            let (name, hash) = (name.trim(), hash.trim());
            if name.is_empty() {
                return Err(err(UsersErrorKind::EmptyName));
            }
            if name.len() > crate::codec::MAX_NAME
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(err(UsersErrorKind::BadName));
            }
            let hash = NtHash::from_hex(hash).ok_or_else(|| err(UsersErrorKind::BadHash))?;
            if let Some(first) = first_line.get(name) {
                return Err(err(UsersErrorKind::Duplicate {
                    name: name.to_string(),
                    first: *first,
                }));
            }
            first_line.insert(name.to_string(), line);
            users.insert(name, hash);
        }
        Ok(users)
    }

    pub fn get(&self, name: &str) -> Option<&NtHash> {
        self.by_name.get(name)
    }

    /// The entry for a name as a client sends it: exactly, else without a `DOMAIN\` prefix.
    /// Returns the entry's own name.
    pub fn lookup(&self, name: &[u8]) -> Option<(&str, &NtHash)> {
        let exact = std::str::from_utf8(name).ok();
        let stripped = std::str::from_utf8(crate::mschapv2::strip_domain(name)).ok();
        [exact, stripped]
            .into_iter()
            .flatten()
            .find_map(|n| self.by_name.get_key_value(n))
            .map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The user names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}
