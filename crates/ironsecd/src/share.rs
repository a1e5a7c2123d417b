//! Weighted fair sharing of the gateway's bandwidth among connections (max-min fairness by
//! weight, "water-filling"): a connection that wants less than its weighted share gets what it
//! wants, and what it leaves is split among the others by weight. Whatever nobody wants is
//! handed out by weight too, so the rates always add up to the cap and a connection that starts
//! sending finds room at once; the next round (100 ms later) gives it its fair share.

/// One connection as the sharer sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Claim {
    pub weight: u32,
    /// Measured offered load, bits/s.
    pub demand: f64,
    /// The connection's own cap, bits/s.
    pub cap: Option<f64>,
}

/// How much more than its measured load a connection may take this round: room to grow, so a
/// TCP flow held at its rate can show that it wants more (its offered load then rises).
pub const HEADROOM: f64 = 1.25;

/// Rates in bits/s, one per claim, summing to at most `total`.
pub fn allocate(total: f64, claims: &[Claim]) -> Vec<f64> {
    let want: Vec<f64> = claims
        .iter()
        .map(|c| {
            let w = c.demand * HEADROOM;
            c.cap.map_or(w, |cap| w.min(cap))
        })
        .collect();
    let mut rate = vec![0.0; claims.len()];
    let mut open: Vec<usize> = (0..claims.len()).collect();
    let mut left = total;
    // Water-filling: each round, the connections wanting less than their weighted share of
    // what is left are satisfied; the rest share what remains.
    while !open.is_empty() && left > 0.0 {
        let weights: f64 = open.iter().map(|&i| f64::from(claims[i].weight)).sum();
        let share = |i: usize| left * f64::from(claims[i].weight) / weights;
        let satisfied: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| want[i] <= share(i))
            .collect();
        if satisfied.is_empty() {
            for &i in &open {
                rate[i] = share(i);
            }
            left = 0.0;
            break;
        }
        let mut done = vec![false; claims.len()];
        for &i in &satisfied {
            rate[i] = want[i];
            left -= want[i];
            done[i] = true;
        }
        // (A mark per claim, not a search of `satisfied`: O(claims) a round, not quadratic.)
        open.retain(|&i| !done[i]);
    }
    // Hand out what nobody wanted, by weight, within each connection's own cap.
    if left > 0.0 {
        let room: Vec<usize> = (0..claims.len())
            .filter(|&i| claims[i].cap.is_none_or(|c| rate[i] < c))
            .collect();
        let weights: f64 = room.iter().map(|&i| f64::from(claims[i].weight)).sum();
        for &i in &room {
            let extra = left * f64::from(claims[i].weight) / weights;
            rate[i] = claims[i]
                .cap
                .map_or(rate[i] + extra, |c| (rate[i] + extra).min(c));
        }
    }
    rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(weight: u32, demand: f64) -> Claim {
        Claim {
            weight,
            demand,
            cap: None,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.max(1.0)
    }

    #[test]
    fn equal_weights_both_saturating_get_half_each() {
        let r = allocate(200e6, &[c(1, 300e6), c(1, 300e6)]);
        assert!(close(r[0], 100e6) && close(r[1], 100e6), "{r:?}");
    }

    #[test]
    fn weights_three_to_one() {
        let r = allocate(200e6, &[c(3, 300e6), c(1, 300e6)]);
        assert!(close(r[0], 150e6) && close(r[1], 50e6), "{r:?}");
    }

    #[test]
    fn an_idle_connections_share_goes_to_the_busy_one() {
        let r = allocate(200e6, &[c(1, 300e6), c(1, 0.0)]);
        assert!(close(r[0], 200e6), "{r:?}");
        // A light user gets its load (with headroom); the heavy one the rest.
        let r = allocate(200e6, &[c(1, 300e6), c(1, 20e6)]);
        assert!(close(r[1], 25e6) && close(r[0], 175e6), "{r:?}");
    }

    #[test]
    fn leftover_is_shared_and_caps_hold() {
        let r = allocate(
            200e6,
            &[
                Claim {
                    weight: 1,
                    demand: 300e6,
                    cap: Some(50e6),
                },
                c(1, 10e6),
            ],
        );
        assert!(close(r[0], 50e6), "{r:?}");
        // Nobody wants the rest: the uncapped one holds it, ready to grow.
        assert!(close(r[1], 150e6), "{r:?}");
        assert!(r.iter().sum::<f64>() <= 200e6 + 1.0);
        assert!(allocate(100.0, &[]).is_empty());
    }
}
