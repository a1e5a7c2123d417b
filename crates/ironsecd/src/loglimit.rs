//! [`LogLimiter`]: the one rate limit on log lines that unauthenticated datagrams cause (an
//! IKE_SA_INIT from an address no connection is configured for, NO_PROPOSAL_CHOSEN, a failed
//! IKE_AUTH, INVALID_SPI either way).
//!
//! Why: anyone can send those datagrams, from any (spoofed) source, and one warning each is
//! millions of lines a day from a trickle that stays under the cookie threshold (issue 19).
//! Counters still count every event; only the log lines are limited.
//!
//! How: time runs in windows of [`WINDOW`]. In each, a source (address and kind of line)
//! may log [`PER_SOURCE`] lines and all sources together [`TOTAL`]; what is over is counted.
//! When the window ends, one summary line per source that lost lines says how many
//! ("suppressed N similar messages from 192.0.2.77 in the last 10 s"), for at most
//! [`SUMMARIES`] sources, the others folded into one line ("... from other sources ...").
//! At most [`CAPACITY`] sources are tracked per window; beyond that a new source's lines are
//! suppressed and folded into that last line, so a flood of spoofed sources cannot grow the
//! table. So a window logs at most `TOTAL + SUMMARIES + 1` lines, whatever arrives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The length of a window; also the `N s` of the summary line.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Lines one source may log per window: enough to see what it is doing.
pub const PER_SOURCE: u32 = 3;
/// Lines all sources together may log per window.
pub const TOTAL: u32 = 20;
/// Sources named in summary lines per window; the rest get one line together.
pub const SUMMARIES: usize = 10;
/// Sources tracked per window.
pub const CAPACITY: usize = 4096;

/// What a limited line is about: lines of different kinds from one source are limited apart,
/// so a flood of one kind does not hide the first line of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogKind {
    /// An IKE negotiation refused or failed before the peer authenticated (includes
    /// IKE_SA_INIT from addresses no connection is configured for).
    NegotiationFailed,
    /// A peer's unprotected INVALID_SPI notification.
    InvalidSpiHint,
    /// ESP for an SA we do not have, answered with INVALID_SPI.
    InvalidSpiSent,
}

impl LogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::NegotiationFailed => "negotiation_failed",
            LogKind::InvalidSpiHint => "invalid_spi_hint",
            LogKind::InvalidSpiSent => "invalid_spi_sent",
        }
    }
}

/// A line the limiter held back, to be logged when its window ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Summary {
    /// `suppressed` lines of `kind` from `source`.
    Source {
        source: IpAddr,
        kind: LogKind,
        suppressed: u64,
        window: Duration,
    },
    /// `suppressed` lines from sources not named on a line of their own (beyond
    /// [`SUMMARIES`], or not tracked: how many sources those were is not known).
    Others { suppressed: u64, window: Duration },
}

impl Summary {
    /// Logs the summary (a warning: something sent a lot of unauthenticated traffic).
    pub fn log(&self) {
        match self {
            Summary::Source {
                source,
                kind,
                suppressed,
                window,
            } => tracing::warn!(
                kind = %kind.as_str(),
                remote = %source,
                "suppressed {suppressed} similar messages from {source} in the last {} s",
                window.as_secs()
            ),
            Summary::Others { suppressed, window } => tracing::warn!(
                "suppressed {suppressed} similar messages from other sources in the last {} s",
                window.as_secs()
            ),
        }
    }
}

#[derive(Default)]
struct Source {
    shown: u32,
    suppressed: u64,
}

/// Per-source and total line budgets per window (module doc). Time is a parameter.
pub struct LogLimiter {
    window: Duration,
    /// When the current window ends; None while no line has been asked for.
    ends: Option<Instant>,
    shown: u32,
    sources: HashMap<(IpAddr, LogKind), Source>,
    /// Suppressed lines of sources not tracked: the table was full.
    untracked: u64,
    /// Every line ever suppressed, for status and metrics.
    suppressed_total: u64,
}

impl Default for LogLimiter {
    fn default() -> LogLimiter {
        LogLimiter::new(WINDOW)
    }
}

impl LogLimiter {
    pub fn new(window: Duration) -> LogLimiter {
        LogLimiter {
            window,
            ends: None,
            shown: 0,
            sources: HashMap::new(),
            untracked: 0,
            suppressed_total: 0,
        }
    }

    /// Whether a line of `kind` caused by `source` may be logged now; counts it either way.
    /// Summaries of an ended window are logged first, so they come before the new window's
    /// lines.
    pub fn admit(&mut self, source: IpAddr, kind: LogKind, now: Instant) -> bool {
        for s in self.due(now) {
            s.log();
        }
        if self.ends.is_none() {
            self.ends = Some(now + self.window);
        }
        let full = self.sources.len() >= CAPACITY;
        let entry = match self.sources.get_mut(&(source, kind)) {
            Some(e) => e,
            None if full => {
                self.untracked += 1;
                self.suppressed_total += 1;
                return false;
            }
            None => self.sources.entry((source, kind)).or_default(),
        };
        if entry.shown < PER_SOURCE && self.shown < TOTAL {
            entry.shown += 1;
            self.shown += 1;
            true
        } else {
            entry.suppressed += 1;
            self.suppressed_total += 1;
            false
        }
    }

    /// When the current window ends (its summaries are due then), if one is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.ends
    }

    /// Ends the window if it is over: its summaries, biggest first, and a fresh table.
    pub fn due(&mut self, now: Instant) -> Vec<Summary> {
        if self.ends.is_none_or(|e| now < e) {
            return Vec::new();
        }
        self.ends = None;
        self.shown = 0;
        let mut lost: Vec<((IpAddr, LogKind), u64)> = self
            .sources
            .drain()
            .filter(|(_, s)| s.suppressed > 0)
            .map(|(k, s)| (k, s.suppressed))
            .collect();
        lost.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let window = self.window;
        let mut out: Vec<Summary> = lost
            .iter()
            .take(SUMMARIES)
            .map(|&((source, kind), suppressed)| Summary::Source {
                source,
                kind,
                suppressed,
                window,
            })
            .collect();
        let rest = lost.get(SUMMARIES..).unwrap_or(&[]);
        let suppressed =
            rest.iter().map(|r| r.1).sum::<u64>() + std::mem::take(&mut self.untracked);
        if suppressed > 0 {
            out.push(Summary::Others { suppressed, window });
        }
        out
    }

    /// Lines suppressed since start.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0xac10_0000 + n))
    }

    #[test]
    fn a_source_logs_a_few_lines_per_window_then_one_summary() {
        let t0 = Instant::now();
        let mut l = LogLimiter::default();
        let kind = LogKind::NegotiationFailed;
        let shown = (0..100)
            .filter(|i| l.admit(ip(1), kind, t0 + Duration::from_millis(i * 50)))
            .count();
        assert_eq!(shown, PER_SOURCE as usize);
        assert_eq!(l.next_deadline(), Some(t0 + WINDOW));
        assert!(l.due(t0 + WINDOW - Duration::from_millis(1)).is_empty());
        assert_eq!(
            l.due(t0 + WINDOW),
            vec![Summary::Source {
                source: ip(1),
                kind,
                suppressed: 97,
                window: WINDOW
            }]
        );
        assert_eq!(l.next_deadline(), None);
        assert_eq!(l.suppressed_total(), 97);
        // A new window: the source may log again.
        assert!(l.admit(ip(1), kind, t0 + WINDOW * 2));
        assert!(
            l.due(t0 + WINDOW * 3).is_empty(),
            "nothing suppressed, nothing to say"
        );
    }

    #[test]
    fn kinds_are_limited_apart() {
        let t0 = Instant::now();
        let mut l = LogLimiter::default();
        for _ in 0..10 {
            l.admit(ip(1), LogKind::NegotiationFailed, t0);
        }
        assert!(l.admit(ip(1), LogKind::InvalidSpiSent, t0));
    }

    #[test]
    fn many_sources_share_one_total_and_summaries_are_bounded() {
        let t0 = Instant::now();
        let mut l = LogLimiter::default();
        // 10,000 sources (more than CAPACITY), 3 lines each.
        let mut shown = 0;
        for round in 0..3 {
            for n in 0..10_000 {
                let at = t0 + Duration::from_micros(round * 10_000 + n as u64);
                shown += l.admit(ip(n), LogKind::NegotiationFailed, at) as u32;
            }
        }
        assert_eq!(shown, TOTAL);
        assert!(l.sources.len() <= CAPACITY);
        let sums = l.due(t0 + WINDOW);
        assert_eq!(sums.len(), SUMMARIES + 1);
        let named: u64 = sums
            .iter()
            .map(|s| match s {
                Summary::Source { suppressed, .. } | Summary::Others { suppressed, .. } => {
                    *suppressed
                }
            })
            .sum();
        assert_eq!(named + u64::from(TOTAL), 30_000, "every line counted once");
        assert_eq!(l.suppressed_total(), 30_000 - u64::from(TOTAL));
        assert!(l.sources.is_empty());
    }

    #[test]
    fn summaries_of_an_ended_window_come_before_the_next_line() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(1));
        for _ in 0..5 {
            l.admit(ip(7), LogKind::InvalidSpiHint, t0);
        }
        // The next line, after the window, starts a new one (its summary was logged by admit).
        assert!(l.admit(ip(7), LogKind::InvalidSpiHint, t0 + Duration::from_secs(2)));
        assert_eq!(l.next_deadline(), Some(t0 + Duration::from_secs(3)));
        assert!(l.due(t0 + Duration::from_secs(3)).is_empty());
    }
}
