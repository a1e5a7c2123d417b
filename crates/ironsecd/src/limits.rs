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

/// Backs off a listener's failing `accept()` (EMFILE/ENFILE leave the connection queued, so
/// the listener stays readable and an immediate retry fails again) and logs one warning per
/// episode of failures, then one (info) line with their count when an accept succeeds again.
#[derive(Debug)]
pub struct AcceptBackoff {
    what: &'static str,
    episode: Option<Episode>,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    started: Instant,
    failures: u64,
    delay: Duration,
}

/// An episode of failed accepts that has just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpisodeEnd {
    pub failures: u64,
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
                ep.delay = (ep.delay * 2).min(ACCEPT_BACKOFF_MAX);
                ep.delay
            }
            None => {
                tracing::warn!(
                    listener = self.what,
                    %error,
                    "accept failed; backing off (one line when it recovers)"
                );
                self.episode = Some(Episode {
                    started: now,
                    failures: 1,
                    delay: ACCEPT_BACKOFF_MIN,
                });
                ACCEPT_BACKOFF_MIN
            }
        }
    }

    /// An accept succeeded at `now`: ends the episode of failures, if one was running.
    pub fn succeeded(&mut self, now: Instant) -> Option<EpisodeEnd> {
        let ep = self.episode.take()?;
        let end = EpisodeEnd {
            failures: ep.failures,
            lasted: now.saturating_duration_since(ep.started),
        };
        tracing::info!(
            listener = self.what,
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
        let mut b = AcceptBackoff::new("test");
        assert_eq!(b.succeeded(base), None, "no episode, nothing to end");
        let mut delays = Vec::new();
        for i in 0..10u64 {
            delays.push(b.failed(base + Duration::from_millis(i), &emfile()));
        }
        assert_eq!(delays[0], ACCEPT_BACKOFF_MIN);
        assert_eq!(delays[1], ACCEPT_BACKOFF_MIN * 2);
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*delays.last().unwrap(), ACCEPT_BACKOFF_MAX);
        let end = b.succeeded(base + Duration::from_secs(3)).unwrap();
        assert_eq!(
            end,
            EpisodeEnd {
                failures: 10,
                lasted: Duration::from_secs(3)
            }
        );
        // A new episode starts from the bottom again.
        assert_eq!(
            b.failed(base + Duration::from_secs(4), &emfile()),
            ACCEPT_BACKOFF_MIN
        );
    }

    #[test]
    fn nofile_soft_limit_reaches_the_hard_one() {
        let l = raise_nofile_limit().unwrap();
        assert_eq!(l.soft, l.hard);
    }
}
