//! Bandwidth sharing: one token bucket per connection while any cap is configured, its rate
//! set every round from the connections' measured demand (see `crate::share`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ironsec_dataplane::Bucket;

use crate::config::Config;

/// Demand below this (bits/s) is none: an idle connection's smoothed demand halves each
/// round and would otherwise take minutes of subnormal floats to reach zero.
const NO_DEMAND: f64 = 1.0;

/// A connection's bandwidth bucket and what the sharer measured of it.
#[derive(Debug)]
pub struct ShareState {
    bucket: Arc<Bucket>,
    last_offered: u64,
    last_at: Instant,
    /// Offered load, bits/s, smoothed over the last few rounds.
    demand: f64,
}

impl ShareState {
    /// The bucket the fast path shapes the connection's traffic with.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Offered load, bits/s, smoothed over the last few rounds.
    pub fn demand(&self) -> f64 {
        self.demand
    }
}

/// The buckets, by connection name.
#[derive(Debug, Default)]
pub(super) struct Shares {
    by_name: HashMap<Arc<str>, ShareState>,
    /// The rates set last round still follow from the demands (no demand changed since, and
    /// no bucket came or went): a round with nothing offered anywhere sets nothing.
    settled: bool,
    /// Rates computed (allocation rounds), for tests that count work.
    #[cfg(test)]
    pub(super) allocations: u64,
}

impl Shares {
    pub fn get(&self, name: &str) -> Option<&ShareState> {
        self.by_name.get(name)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// The buckets for the fast path's tables.
    pub fn buckets(&self) -> HashMap<Arc<str>, Arc<Bucket>> {
        self.by_name
            .iter()
            .map(|(n, s)| (n.clone(), s.bucket.clone()))
            .collect()
    }

    /// Creates (or drops) the connections' bandwidth buckets to match the config; existing
    /// buckets of unchanged connections keep their counters.
    pub fn sync(&mut self, cfg: &Config, now: Instant) {
        let any_cap = cfg.gateway.bandwidth.is_some()
            || cfg.connections.iter().any(|c| c.bandwidth.is_some());
        let names: Vec<(Arc<str>, Option<u64>)> = cfg
            .connections
            .iter()
            .filter(|c| any_cap && (cfg.gateway.bandwidth.is_some() || c.bandwidth.is_some()))
            .map(|c| (Arc::from(c.name.as_str()), c.bandwidth))
            .collect();
        let keep: std::collections::HashSet<&Arc<str>> = names.iter().map(|(m, _)| m).collect();
        self.by_name.retain(|n, _| keep.contains(n));
        self.settled = false;
        let n = names.len().max(1) as u64;
        for (name, cap) in names {
            self.by_name.entry(name).or_insert_with(|| {
                let start = cfg
                    .gateway
                    .bandwidth
                    .map(|t| t / n)
                    .into_iter()
                    .chain(cap)
                    .min()
                    .unwrap_or(u64::MAX / 16);
                ShareState {
                    bucket: Arc::new(Bucket::new(start / 8)),
                    last_offered: 0,
                    last_at: now,
                    demand: 0.0,
                }
            });
        }
    }

    /// Measures each connection's offered load and gives its bucket its share of the cap.
    ///
    /// Cost: one counter read per bucket every round; the shares are computed (over every
    /// connection, as fair shares depend on all the claims) and the buckets set only in a
    /// round where some connection's demand moved. An idle gateway's round is the reads
    /// alone: no hashing, no allocation, no rates set.
    pub fn reshare(&mut self, cfg: &Config, now: Instant) {
        if self.by_name.is_empty() {
            return;
        }
        let mut moved = false;
        for st in self.by_name.values_mut() {
            let (offered, _, _) = st.bucket.counters();
            if offered == st.last_offered && st.demand == 0.0 {
                // Idle and was idle: its demand stays none.
                st.last_at = now;
                continue;
            }
            let dt = now.saturating_duration_since(st.last_at).as_secs_f64();
            if dt > 0.0 {
                let bps = (offered - st.last_offered) as f64 * 8.0 / dt;
                // Quick to rise (a new flow needs room now), slower to fall.
                let demand = if bps > st.demand {
                    bps
                } else {
                    0.5 * st.demand + 0.5 * bps
                };
                st.demand = if demand < NO_DEMAND { 0.0 } else { demand };
                st.last_offered = offered;
                st.last_at = now;
                moved = true;
            }
        }
        if !moved && self.settled {
            return;
        }
        #[cfg(test)]
        {
            self.allocations += 1;
        }
        let mut claims = Vec::new();
        let mut order = Vec::new();
        for c in &cfg.connections {
            let Some(st) = self.by_name.get(c.name.as_str()) else {
                continue;
            };
            claims.push(crate::share::Claim {
                weight: c.bandwidth_weight,
                demand: st.demand,
                cap: c.bandwidth.map(|b| b as f64),
            });
            order.push(&st.bucket);
        }
        let total = match cfg.gateway.bandwidth {
            Some(t) => t as f64,
            // Per-connection caps only: each gets its cap.
            None => claims.iter().filter_map(|c| c.cap).sum(),
        };
        let rates = match cfg.gateway.bandwidth {
            Some(_) => crate::share::allocate(total, &claims),
            None => claims.iter().map(|c| c.cap.unwrap_or(total)).collect(),
        };
        for (bucket, rate) in order.into_iter().zip(rates) {
            bucket.set_rate((rate / 8.0) as u64);
        }
        self.settled = true;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testutil::ConfFile;

    fn config(n: usize) -> (Config, ConfFile) {
        let mut body =
            "[gateway]\ntun = \"ipsec0\"\nport = 4500\nike_port = 500\nbandwidth = \"100M\"\n"
                .to_string();
        for i in 0..n {
            body += &format!(
                "[[connection]]\nname = \"c{i}\"\nkeying = \"ike\"\nlocal_id = \"a.example\"\n\
                 remote_id = \"b{i}.example\"\npsk = \"0123456789abcdef0123456789abcdef\"\n\
                 local_ts = [\"10.1.{i}.0/24\"]\nremote_ts = [\"10.2.{i}.0/24\"]\n\
                 ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]\n\
                 esp_proposals = [\"aes256gcm16\"]\n\
                 tunnels = [ {{ local = \"192.0.2.1\", remote = \"198.51.100.{}\" }} ]\n",
                i + 2
            );
        }
        let f = ConfFile::new(&format!("share{n}"), &body);
        (f.load(), f)
    }

    #[test]
    fn idle_rounds_set_nothing_and_traffic_is_shared_again() {
        let (cfg, _f) = config(4);
        let t0 = Instant::now();
        let mut s = Shares::default();
        s.sync(&cfg, t0);
        assert_eq!(s.len(), 4);
        // The first round sets the rates; idle rounds after it compute nothing.
        s.reshare(&cfg, t0 + Duration::from_millis(100));
        assert_eq!(s.allocations, 1);
        for i in 2..50 {
            s.reshare(&cfg, t0 + Duration::from_millis(100) * i);
        }
        assert_eq!(s.allocations, 1, "idle rounds compute no shares");
        let idle_rate = s.get("c0").unwrap().bucket().rate();
        // c0 sends: its demand rises, the shares are computed again and c0 gets more.
        let at = t0 + Duration::from_millis(5000);
        for _ in 0..1000 {
            s.get("c0")
                .unwrap()
                .bucket()
                .admit(1000, ironsec_dataplane::shaper::now_ns());
        }
        s.reshare(&cfg, at);
        assert_eq!(s.allocations, 2);
        assert!(s.get("c0").unwrap().demand() > 0.0);
        assert!(s.get("c0").unwrap().bucket().rate() >= idle_rate);
        // It stops: the demand decays to none within a few dozen rounds, then nothing again.
        let mut t = at;
        for _ in 0..100 {
            t += Duration::from_millis(100);
            s.reshare(&cfg, t);
        }
        assert_eq!(s.get("c0").unwrap().demand(), 0.0);
        let settled = s.allocations;
        for _ in 0..10 {
            t += Duration::from_millis(100);
            s.reshare(&cfg, t);
        }
        assert_eq!(s.allocations, settled, "idle again: nothing computed");
    }
}
