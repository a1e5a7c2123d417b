//! `ironsecctl genpsk`: a new pre-shared key in the form `psk_file` takes (`0x` and 64 hex
//! digits: 32 bytes from the system's CSPRNG, ring's `SystemRandom`), printed or written to a
//! new file that only its owner may read. Works without a daemon.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Bytes of key: 256 bits, beyond offline guessing from a captured handshake.
pub const PSK_BYTES: usize = 32;

/// A new PSK as one line of text (`0x...\n`), zeroed when dropped.
pub fn new_psk() -> Result<Zeroizing<String>, String> {
    let mut key = Zeroizing::new([0u8; PSK_BYTES]);
    SystemRandom::new()
        .fill(&mut key[..])
        .map_err(|_| "the system's random number generator failed".to_string())?;
    let mut line = Zeroizing::new(String::with_capacity(3 + 2 * PSK_BYTES));
    line.push_str("0x");
    for b in key.iter() {
        line.push_str(&format!("{b:02x}"));
    }
    line.push('\n');
    Ok(line)
}

/// Writes a new PSK to `path`, created with mode 0600 and `O_EXCL`: an existing file (a key
/// in use, or a symlink planted there) is never overwritten or followed.
pub fn write_new(path: &Path) -> Result<(), String> {
    let psk = new_psk()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{} exists; not overwriting it", path.display())
            }
            _ => format!("cannot create {}: {e}", path.display()),
        })?;
    f.write_all(psk.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_are_hex_of_32_random_bytes() {
        let a = new_psk().unwrap();
        let b = new_psk().unwrap();
        assert_ne!(*a, *b);
        assert_eq!(a.len(), 2 + 64 + 1);
        assert!(a.starts_with("0x") && a.ends_with('\n'));
        assert_eq!(hex::decode(a[2..66].as_bytes()).unwrap().len(), PSK_BYTES);
    }

    #[test]
    fn the_file_is_private_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("ironsec-genpsk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k.psk");
        // Created under a lax umask as well: the mode is set at creation.
        write_new(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read_to_string(&p).unwrap();
        let e = write_new(&p).unwrap_err();
        assert!(e.ends_with("exists; not overwriting it"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), first);
        // The config loader takes it as a psk_file.
        let cfg = dir.join("gw.toml");
        std::fs::write(
            &cfg,
            format!(
                "[gateway]\ntun = \"ipsec0\"\n[[connection]]\nname = \"a\"\nkeying = \"ike\"\n\
                 local_id = \"a\"\nremote_id = \"b\"\npsk_file = {:?}\nlocal_ts = [\"10.1.0.0/24\"]\n\
                 remote_ts = [\"10.2.0.0/24\"]\ntunnels = [ {{ local = \"192.0.2.1\", remote = \"192.0.2.2\" }} ]\n",
                p.to_str().unwrap()
            ),
        )
        .unwrap();
        let c = crate::config::Config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let crate::config::Keying::Ike(k) = &c.connections[0].keying else {
            panic!("ike")
        };
        assert_eq!(
            k.psk.as_ref().unwrap().bytes(),
            hex::decode(&first[2..66]).unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
