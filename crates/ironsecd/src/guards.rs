//! What status and metrics say about the guard routes (`ironsec_dataplane::guard`, README
//! "Fail closed: guard routes"): how many are installed, what the start found, and whether each
//! remote selector is guarded now. Read from the kernel at each status request, so a guard an
//! operator deleted by hand shows as missing rather than as what the daemon once installed.

use std::collections::HashSet;

use ironsec_dataplane::{guard, Prefix};

use crate::config::Config;
use crate::status::{GuardedSelector, GuardsStatus};

/// What the start did to the guards it found (`daemon::reconcile_guards`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStart {
    /// Guards already in place for configured selectors (left by a stop, crash or restart).
    pub adopted: usize,
    /// Guards of selectors no longer configured.
    pub removed: usize,
}

/// What is guarded in `cfg`, each prefix once, in config order: `[gateway] protect`, which
/// stays whatever connections come and go; a policy-based connection's remote selectors; a
/// route-based connection's static `routes` and its `protect` prefixes (its selectors,
/// 0.0.0.0/0 by default, are not routes).
pub fn wanted(cfg: &Config) -> Vec<Prefix> {
    // A set beside the list: this runs after every table change, and a thousand route-based
    // connections' routes made a quadratic search for duplicates show in a hub's profile.
    let mut seen: HashSet<Prefix> = HashSet::new();
    let mut out: Vec<Prefix> = Vec::new();
    for p in &cfg.gateway.protect {
        if seen.insert(*p) {
            out.push(*p);
        }
    }
    for c in &cfg.connections {
        let guarded: Vec<&Prefix> = match &c.route_based {
            None => c.remote_ts.iter().collect(),
            Some(rb) => rb.routes.iter().chain(&rb.protect).collect(),
        };
        for p in guarded {
            if seen.insert(*p) {
                out.push(*p);
            }
        }
    }
    out
}

/// The guards' status for the selectors `want`, reading the kernel's guard routes now.
pub fn status(want: &[Prefix], start: GuardStart) -> GuardsStatus {
    let have = guard::list().map_err(|e| e.to_string());
    build(want, have, start)
}

/// The guards' status from the selectors that want one and the guards the kernel has.
fn build(want: &[Prefix], have: Result<Vec<Prefix>, String>, start: GuardStart) -> GuardsStatus {
    let (have, error) = match have {
        Ok(h) => (h, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    GuardsStatus {
        installed: have.len(),
        adopted_at_start: start.adopted,
        removed_at_start: start.removed,
        selectors: want
            .iter()
            .map(|p| GuardedSelector {
                prefix: p.to_string(),
                guarded: have.contains(p),
            })
            .collect(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn each_selector_is_guarded_only_if_the_kernel_has_its_guard() {
        let start = GuardStart {
            adopted: 1,
            removed: 2,
        };
        let g = build(
            &[p("10.2.0.0/24"), p("fd00:2::/64")],
            Ok(vec![p("10.2.0.0/24"), p("10.9.0.0/24")]),
            start,
        );
        assert_eq!(g.installed, 2);
        assert_eq!((g.adopted_at_start, g.removed_at_start), (1, 2));
        assert_eq!(
            g.selectors,
            vec![
                GuardedSelector {
                    prefix: "10.2.0.0/24".into(),
                    guarded: true
                },
                GuardedSelector {
                    prefix: "fd00:2::/64".into(),
                    guarded: false
                },
            ]
        );
        assert_eq!(g.error, None);
    }

    #[test]
    fn unreadable_routes_guard_nothing_and_say_why() {
        let g = build(
            &[p("10.2.0.0/24")],
            Err("cannot run ip".into()),
            GuardStart::default(),
        );
        assert_eq!(g.installed, 0);
        assert!(!g.selectors[0].guarded);
        assert_eq!(g.error.as_deref(), Some("cannot run ip"));
    }
}
