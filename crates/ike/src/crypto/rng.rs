//! Where randomness comes from: passed in, so the engine stays deterministic
//! under test.

use ring::digest;
use ring::rand::SecureRandom;

/// A source of random bytes. Every nonce, SPI, IV seed and private key the
/// engine makes is drawn from one of these.
pub trait Rng {
    /// Fills `dest` entirely with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

/// The operating system's CSPRNG (`ring::rand::SystemRandom`): what the
/// daemon uses.
#[derive(Debug)]
pub struct SystemRng(ring::rand::SystemRandom);

impl SystemRng {
    /// A handle on the OS random number generator.
    pub fn new() -> SystemRng {
        SystemRng(ring::rand::SystemRandom::new())
    }
}

impl Default for SystemRng {
    fn default() -> Self {
        SystemRng::new()
    }
}

impl Rng for SystemRng {
    /// # Panics
    ///
    /// If the operating system cannot produce random bytes (`getrandom`
    /// failing, which on Linux only happens on kernels without it). Keys,
    /// nonces and SPIs made without randomness would be predictable, so there
    /// is no safe way to go on: the panic happens before `dest` is handed back.
    fn fill(&mut self, dest: &mut [u8]) {
        if self.0.fill(dest).is_err() {
            panic!(
                "the operating system's random number generator failed; \
                 refusing to continue without randomness, as keys and nonces would be predictable"
            );
        }
    }
}

/// A deterministic generator for tests: SHA-256 in counter mode over a seed,
/// so two runs with the same seed make the same keys, nonces and SPIs.
///
/// **Not for production**: anyone who knows (or guesses) the 64-bit seed knows
/// every "random" byte.
#[derive(Debug, Clone)]
pub struct TestRng {
    seed: u64,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl TestRng {
    /// A generator whose output is a fixed function of `seed`.
    pub fn new(seed: u64) -> TestRng {
        TestRng {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn refill(&mut self) {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"ironsec TestRng");
        ctx.update(&self.seed.to_be_bytes());
        ctx.update(&self.counter.to_be_bytes());
        self.block.copy_from_slice(ctx.finish().as_ref());
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl Rng for TestRng {
    fn fill(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.used == self.block.len() {
                self.refill();
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }
}
