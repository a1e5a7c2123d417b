//! Bandwidth sharing: one token bucket per connection while any cap is configured, its rate
//! set every round from the connections' measured demand (see `crate::share`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ironsec_dataplane::Bucket;

use crate::config::Config;

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
pub(super) struct Shares(HashMap<Arc<str>, ShareState>);

impl Shares {
    pub fn get(&self, name: &str) -> Option<&ShareState> {
        self.0.get(name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The buckets for the fast path's tables.
    pub fn buckets(&self) -> HashMap<Arc<str>, Arc<Bucket>> {
        self.0
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
        self.0.retain(|n, _| names.iter().any(|(m, _)| m == n));
        let n = names.len().max(1) as u64;
        for (name, cap) in names {
            self.0.entry(name).or_insert_with(|| {
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
    pub fn reshare(&mut self, cfg: &Config, now: Instant) {
        if self.0.is_empty() {
            return;
        }
        let mut claims = Vec::new();
        let mut order = Vec::new();
        for c in &cfg.connections {
            let Some(st) = self.0.get_mut(c.name.as_str()) else {
                continue;
            };
            let (offered, _, _) = st.bucket.counters();
            let dt = now.saturating_duration_since(st.last_at).as_secs_f64();
            if dt > 0.0 {
                let bps = (offered - st.last_offered) as f64 * 8.0 / dt;
                // Quick to rise (a new flow needs room now), slower to fall.
                st.demand = if bps > st.demand {
                    bps
                } else {
                    0.5 * st.demand + 0.5 * bps
                };
                st.last_offered = offered;
                st.last_at = now;
            }
            claims.push(crate::share::Claim {
                weight: c.bandwidth_weight,
                demand: st.demand,
                cap: c.bandwidth.map(|b| b as f64),
            });
            order.push(c.name.clone());
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
        for (name, rate) in order.iter().zip(rates) {
            if let Some(st) = self.0.get(name.as_str()) {
                st.bucket.set_rate((rate / 8.0) as u64);
            }
        }
    }
}
