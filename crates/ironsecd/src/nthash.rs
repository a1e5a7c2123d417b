//! `ironsecctl nthash USER`: the `eap_users_file` line for a user, from a password read from
//! the terminal (without echo) or from stdin. The password is never an argument (it would
//! show in `ps` and the shell's history) and never written anywhere; only its NT hash is,
//! which is what the gateway needs for EAP-MSCHAPv2 (and what freeradius's NT-Password and
//! strongSwan's NTLM secrets hold). The hash is as good as the password for MSCHAPv2: keep
//! the users file 0600.

use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsRawFd;

use zeroize::Zeroizing;

/// The users-file line for `user` with `password`.
pub fn users_line(user: &str, password: &str) -> Result<String, String> {
    if user.is_empty()
        || user.len() > 255
        || user.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "'{}' cannot be a user name: 1 to 255 bytes without whitespace or control characters",
            user.escape_debug()
        ));
    }
    if password.is_empty() {
        return Err("empty password".into());
    }
    let h = ironsec_ike::eap::nthash(password);
    Ok(format!("{user}:{}", hex::encode(h.bytes())))
}

/// Turns the terminal's echo off until dropped.
struct NoEcho {
    fd: i32,
    saved: libc::termios,
}

impl NoEcho {
    fn new(fd: i32) -> Option<NoEcho> {
        // SAFETY: termios is plain old data; tcgetattr fills it or fails (checked), and `fd`
        // is an open descriptor (stdin) for the whole call.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `t` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        // SAFETY: `t` is the terminal's own settings with ECHO cleared.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &t) } != 0 {
            return None;
        }
        Some(NoEcho { fd, saved })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restores the settings tcgetattr gave for the same descriptor.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSAFLUSH, &self.saved);
        }
    }
}

/// One line from stdin: asked for (twice, echo off) on a terminal, read as it is otherwise.
pub fn read_password() -> Result<Zeroizing<String>, String> {
    let stdin = std::io::stdin();
    let read = || -> Result<Zeroizing<String>, String> {
        let mut line = Zeroizing::new(String::new());
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
        Ok(trimmed)
    };
    if !stdin.is_terminal() {
        return read();
    }
    let _quiet = NoEcho::new(stdin.as_raw_fd());
    let ask = |prompt: &str| -> Result<Zeroizing<String>, String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let p = read();
        eprintln!();
        p
    };
    let first = ask("password: ")?;
    let again = ask("again: ")?;
    if *first != *again {
        return Err("the passwords differ".into());
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_name_and_rfc2759_nt_hash() {
        // RFC 2759 9.2: "clientPass" hashes to 44EBBA8D5312B8D611474411F56989AE.
        assert_eq!(
            users_line("User", "clientPass").unwrap(),
            "User:44ebba8d5312b8d611474411f56989ae"
        );
        let parsed = ironsec_ike::eap::Users::parse(&users_line("alice", "pw").unwrap()).unwrap();
        assert_eq!(parsed.len(), 1);
        assert!(users_line("a b", "pw").is_err());
        assert!(users_line("", "pw").is_err());
        assert!(users_line("alice", "").is_err());
    }
}
