//! The responder's rotating cookie secret (RFC 7296 §2.6: "the responder should change the
//! value of <secret> frequently").
//!
//! A cookie is `<version> | HMAC(secret, Ni | IPi | SPIi)` ([`crate::crypto::cookie`]). The
//! secret is replaced every [`ROTATION`]; the one it replaces still verifies for [`GRACE`]
//! after that, so an initiator challenged just before a rotation is not challenged again when
//! it answers. The version byte advances with each secret (wrapping), so a cookie names the
//! secret that made it and verification tries only that one.
//!
//! Sans-IO: rotation happens when the endpoint asks for a secret at some `now` (lazily, on the
//! next IKE_SA_INIT that needs a cookie); nothing runs on a timer and an endpoint that never
//! challenges never rotates. Secrets are zeroed when replaced or dropped.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::crypto::Rng;

/// How long one secret makes cookies.
pub const ROTATION: Duration = Duration::from_secs(300);

/// How long a replaced secret still verifies the cookies it made: far longer than an
/// initiator's round trip and retransmission, far shorter than [`ROTATION`], so at most two
/// secrets are ever valid.
pub const GRACE: Duration = Duration::from_secs(60);

type Secret = Zeroizing<[u8; 32]>;

/// The current secret, its version and when it is replaced; the previous one while its grace
/// period runs.
pub(crate) struct CookieSecrets {
    current: Secret,
    version: u8,
    /// When `current` is replaced: set by the first use (the endpoint has no `now` when built).
    rotates_at: Option<Instant>,
    /// The replaced secret, its version, and until when it still verifies.
    previous: Option<(Secret, u8, Instant)>,
}

impl CookieSecrets {
    pub(crate) fn new(rng: &mut dyn Rng) -> CookieSecrets {
        CookieSecrets {
            current: fresh(rng),
            version: 1,
            rotates_at: None,
            previous: None,
        }
    }

    /// Rotates if due at `now`; after a gap of more than one period the old secret is not
    /// kept either (its grace period is long over).
    fn advance(&mut self, now: Instant, rng: &mut dyn Rng) {
        let due = *self.rotates_at.get_or_insert(now + ROTATION);
        if now < due {
            return;
        }
        let old = std::mem::replace(&mut self.current, fresh(rng));
        let old_version = self.version;
        self.version = self.version.wrapping_add(1);
        self.previous = (now < due + GRACE).then(|| (old, old_version, due + GRACE));
        self.rotates_at = Some(now + ROTATION);
    }

    /// The secret and version to make a cookie with at `now`.
    pub(crate) fn current(&mut self, now: Instant, rng: &mut dyn Rng) -> (&[u8; 32], u8) {
        self.advance(now, rng);
        (&self.current, self.version)
    }

    /// The secret that made a cookie of `version`, if it still verifies at `now`.
    pub(crate) fn for_version(
        &mut self,
        now: Instant,
        rng: &mut dyn Rng,
        version: u8,
    ) -> Option<&[u8; 32]> {
        self.advance(now, rng);
        if version == self.version {
            return Some(&self.current);
        }
        match &self.previous {
            Some((secret, v, until)) if *v == version && now < *until => Some(secret),
            _ => None,
        }
    }
}

fn fresh(rng: &mut dyn Rng) -> Secret {
    let mut s = Zeroizing::new([0u8; 32]);
    rng.fill(&mut s[..]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{cookie, verify_cookie, TestRng};
    use std::net::SocketAddr;

    fn peer() -> SocketAddr {
        "192.0.2.7:500".parse().unwrap()
    }

    fn make(s: &mut CookieSecrets, now: Instant, rng: &mut TestRng) -> Vec<u8> {
        let (secret, version) = s.current(now, rng);
        cookie(secret, version, b"nonce", 7, peer())
    }

    fn verifies(s: &mut CookieSecrets, now: Instant, rng: &mut TestRng, c: &[u8]) -> bool {
        s.for_version(now, rng, c[0])
            .is_some_and(|secret| verify_cookie(secret, c[0], b"nonce", 7, peer(), c))
    }

    #[test]
    fn a_cookie_from_the_previous_secret_verifies_during_the_grace_period_only() {
        let mut rng = TestRng::new(1);
        let mut s = CookieSecrets::new(&mut rng);
        let t0 = Instant::now();
        let old = make(&mut s, t0, &mut rng);
        assert!(verifies(
            &mut s,
            t0 + ROTATION - Duration::from_secs(1),
            &mut rng,
            &old
        ));
        // Rotated: new cookies differ (new secret, new version), the old one still verifies.
        let t1 = t0 + ROTATION;
        let new = make(&mut s, t1, &mut rng);
        assert_ne!(old[0], new[0], "the version byte changes with the secret");
        assert_ne!(old[1..], new[1..]);
        assert!(verifies(&mut s, t1, &mut rng, &new));
        assert!(verifies(
            &mut s,
            t1 + GRACE - Duration::from_millis(1),
            &mut rng,
            &old
        ));
        // Past the grace period it is refused; the new one still verifies.
        assert!(!verifies(&mut s, t1 + GRACE, &mut rng, &old));
        assert!(verifies(&mut s, t1 + GRACE, &mut rng, &new));
    }

    #[test]
    fn a_cookie_with_a_forged_version_byte_is_refused() {
        let mut rng = TestRng::new(2);
        let mut s = CookieSecrets::new(&mut rng);
        let t0 = Instant::now();
        let mut c = make(&mut s, t0, &mut rng);
        c[0] = c[0].wrapping_add(1);
        assert!(!verifies(&mut s, t0, &mut rng, &c));
    }

    #[test]
    fn after_a_long_quiet_spell_only_the_new_secret_verifies() {
        let mut rng = TestRng::new(3);
        let mut s = CookieSecrets::new(&mut rng);
        let t0 = Instant::now();
        let old = make(&mut s, t0, &mut rng);
        let later = t0 + 3 * ROTATION;
        assert!(!verifies(&mut s, later, &mut rng, &old));
        let new = make(&mut s, later, &mut rng);
        assert_eq!(
            new[0],
            old[0].wrapping_add(1),
            "one rotation, one version step"
        );
        assert!(verifies(&mut s, later, &mut rng, &new));
    }

    #[test]
    fn versions_advance_each_rotation_and_wrap() {
        let mut rng = TestRng::new(4);
        let mut s = CookieSecrets::new(&mut rng);
        let t0 = Instant::now();
        let mut seen = Vec::new();
        for i in 0..300u32 {
            seen.push(s.current(t0 + ROTATION * i, &mut rng).1);
        }
        for w in seen.windows(2) {
            assert_eq!(w[1], w[0].wrapping_add(1));
        }
    }
}
