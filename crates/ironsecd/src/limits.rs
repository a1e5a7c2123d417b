//! What a client of the control socket or the metrics endpoint may hold, and how the daemon
//! survives running out of descriptors anyway.
//!
//! Every connection costs a descriptor and a task. Without bounds, idle TCP connections to the
//! metrics port (no authentication where the port is reachable) used up the daemon's descriptors;
//! the accept loops then failed with EMFILE in a tight loop, logging a line per failure, and the
//! watchdog keep-alive could not open its socket (issue 19). So: a cap on concurrent connections
//! per listener (beyond it a client is answered "busy" and closed at once, holding nothing), a
//! read deadline for the request and a write deadline for the answer, a cap on the request's
//! size, accept errors backed off with one warning per episode, and the soft descriptor limit
//! raised to the hard one at start. The values are README's "Limits" table.

use std::time::{Duration, Instant};

/// Concurrent metrics connections; a scrape takes milliseconds, so this is many scrapers.
pub const METRICS_CONNECTIONS: usize = 64;
/// Concurrent control-socket connections (ironsecctl: one request per connection).
pub const CONTROL_CONNECTIONS: usize = 16;
/// The longest HTTP request head (request line and headers) the metrics endpoint reads.
pub const METRICS_REQUEST_HEAD: usize = 8 * 1024;
/// The longest control request line (JSON); real requests are well under 1 KiB.
pub const CONTROL_REQUEST_LINE: usize = 64 * 1024;
/// How long a client may take to send its request (for the control socket: each request,
/// so an idle connection is closed after this long).
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How long a client may take to read the answer.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// The first pause after a failed accept, doubled per consecutive failure up to
/// [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// An episode of failures ends at the first accept this long after its last failure: under
/// sustained pressure accepts alternate between working (a descriptor was freed) and failing,
/// and that is one episode, not one per freed descriptor.
const ACCEPT_EPISODE_QUIET: Duration = Duration::from_secs(10);

/// Backs off a listener's failing `accept()` (EMFILE/ENFILE leave the connection queued, so
/// the listener stays readable and an immediate retry fails again) and logs one warning when
/// an episode of failures starts and one line with their count when it ends (the first accept
/// [`ACCEPT_EPISODE_QUIET`] after the last failure), never a line per failure.
#[derive(Debug)]
pub struct AcceptBackoff {
    what: &'static str,
    episode: Option<Episode>,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    started: Instant,
    last_failure: Instant,
    failures: u64,
    delay: Duration,
    /// An accept worked since the last failure: the next failure waits the least again.
    recovered: bool,
}

/// An episode of failed accepts that has just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpisodeEnd {
    pub failures: u64,
    /// From the first failure to the last.
    pub lasted: Duration,
}

impl AcceptBackoff {
    /// `what` names the listener in the log ("metrics", "control socket").
    pub fn new(what: &'static str) -> AcceptBackoff {
        AcceptBackoff {
            what,
            episode: None,
        }
    }

    /// An accept failed at `now`: how long to wait before the next one. Logs only the first
    /// failure of an episode.
    pub fn failed(&mut self, now: Instant, error: &std::io::Error) -> Duration {
        match &mut self.episode {
            Some(ep) => {
                ep.failures += 1;
                ep.last_failure = now;
                ep.delay = if ep.recovered {
                    ACCEPT_BACKOFF_MIN
                } else {
                    (ep.delay * 2).min(ACCEPT_BACKOFF_MAX)
                };
                ep.recovered = false;
                ep.delay
            }
            None => {
                tracing::warn!(
                    listener = %self.what,
                    error = %error,
                    "accept failed; backing off (one line with the count when it is over)"
                );
                self.episode = Some(Episode {
                    started: now,
                    last_failure: now,
                    failures: 1,
                    delay: ACCEPT_BACKOFF_MIN,
                    recovered: false,
                });
                ACCEPT_BACKOFF_MIN
            }
        }
    }

    /// An accept succeeded at `now`: ends the episode of failures if the last one is
    /// [`ACCEPT_EPISODE_QUIET`] old.
    pub fn succeeded(&mut self, now: Instant) -> Option<EpisodeEnd> {
        let ep = self.episode.as_mut()?;
        if now.saturating_duration_since(ep.last_failure) < ACCEPT_EPISODE_QUIET {
            ep.recovered = true;
            return None;
        }
        let end = EpisodeEnd {
            failures: ep.failures,
            lasted: ep.last_failure.saturating_duration_since(ep.started),
        };
        self.episode = None;
        tracing::info!(
            listener = %self.what,
            failures = end.failures,
            lasted_ms = end.lasted.as_millis() as u64,
            "accept works again"
        );
        Some(end)
    }
}

/// The process's descriptor limit after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
    /// The soft limit before, if it was raised.
    pub raised_from: Option<u64>,
}

/// Raises RLIMIT_NOFILE's soft limit to the hard one. The soft default (1024) is a guard for
/// old select(2) programs; ironsecd polls, and every tunnel, worker queue and client costs
/// descriptors. Under the unit `LimitNOFILE=` sets both, so this changes nothing there (and
/// makes no syscall the unit's filter forbids: prlimit64 is in @default).
pub fn raise_nofile_limit() -> std::io::Result<NofileLimit> {
    let mut cur = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit64 on our own process (pid 0) with no new limit only writes the old one
    // into `cur`, which lives across the call.
    if unsafe { libc::prlimit64(0, libc::RLIMIT_NOFILE, std::ptr::null(), &mut cur) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if cur.rlim_cur >= cur.rlim_max {
        return Ok(NofileLimit {
            soft: cur.rlim_cur,
            hard: cur.rlim_max,
            raised_from: None,
        });
    }
    let new = libc::rlimit64 {
        rlim_cur: cur.rlim_max,
        rlim_max: cur.rlim_max,
    };
    // SAFETY: prlimit64 on our own process reads `new`, which lives across the call, and
    // writes nothing (old limit pointer is null).
    if unsafe { libc::prlimit64(0, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(NofileLimit {
        soft: new.rlim_cur,
        hard: new.rlim_max,
        raised_from: Some(cur.rlim_cur),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_counts_the_episode() {
        let base = Instant::now();
        let ms = |n: u64| base + Duration::from_millis(n);
        let mut b = AcceptBackoff::new("test");
        assert_eq!(b.succeeded(base), None, "no episode, nothing to end");
        let delays: Vec<Duration> = (0..10u64).map(|i| b.failed(ms(i), &emfile())).collect();
        assert_eq!(delays[0], ACCEPT_BACKOFF_MIN);
        assert_eq!(delays[1], ACCEPT_BACKOFF_MIN * 2);
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*delays.last().unwrap(), ACCEPT_BACKOFF_MAX);
        // A freed descriptor lets one accept through: same episode, and the next failure
        // waits the least again.
        assert_eq!(b.succeeded(ms(100)), None);
        assert_eq!(b.failed(ms(200), &emfile()), ACCEPT_BACKOFF_MIN);
        assert_eq!(b.failed(ms(210), &emfile()), ACCEPT_BACKOFF_MIN * 2);
        // Quiet for long enough: the episode ends with its count.
        assert_eq!(b.succeeded(ms(5_000)), None);
        let end = b.succeeded(ms(210) + ACCEPT_EPISODE_QUIET).unwrap();
        assert_eq!(
            end,
            EpisodeEnd {
                failures: 12,
                lasted: Duration::from_millis(210)
            }
        );
        assert_eq!(b.succeeded(ms(60_000)), None, "ended once");
        // A new episode starts from the bottom again.
        assert_eq!(b.failed(ms(70_000), &emfile()), ACCEPT_BACKOFF_MIN);
    }

    #[test]
    fn nofile_soft_limit_reaches_the_hard_one() {
        let l = raise_nofile_limit().unwrap();
        assert_eq!(l.soft, l.hard);
    }
}
