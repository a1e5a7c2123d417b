//! The plane without root: configs parsed from TOML, two planes' engines wired to each other
//! in memory, a fake clock (`base + Duration`).

use std::time::{Duration, Instant};

use super::failover::{decide, Decision, FailoverReason, Policy, TunnelFacts};
use super::probing::{check_silence, observe, SilenceCheck, Thresholds};
use super::*;
use crate::config::Mode;
use ironsec_dataplane::{Direction, SaActivity};

pub(super) use crate::testutil::ConfFile;

const PSK: &str = "0123456789abcdef0123456789abcdef";

fn gateway(port: u16) -> String {
    format!("[gateway]\ntun = \"ipsec0\"\nport = {port}\nike_port = 500\n")
}

/// An active-standby connection over two tunnels: ours .1 addresses, the peer's .2.
fn connection(name: &str, me: &str, peer: &str, extra: &str, flip: bool) -> String {
    let (l, r) = if flip { ("2", "1") } else { ("1", "2") };
    let (lts, rts) = if flip {
        ("10.2.0.0/24", "10.1.0.0/24")
    } else {
        ("10.1.0.0/24", "10.2.0.0/24")
    };
    format!(
        "[[connection]]\nname = \"{name}\"\nkeying = \"ike\"\nlocal_id = \"{me}\"\nremote_id = \"{peer}\"\n\
         psk = \"{PSK}\"\nlocal_ts = [\"{lts}\"]\nremote_ts = [\"{rts}\"]\n\
         ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]\nesp_proposals = [\"aes256gcm16\"]\n\
         mode = \"active-standby\"\nfailover_after = 3\n{extra}\n\
         tunnels = [\n  {{ local = \"192.0.2.{l}\", remote = \"192.0.2.{r}\", priority = 100 }},\n  \
         {{ local = \"198.51.100.{l}\", remote = \"198.51.100.{r}\", priority = 50 }},\n]\n"
    )
}

fn plane_of(tag: &str, body: &str) -> (Plane, ConfFile) {
    let f = ConfFile::new(tag, body);
    (Plane::new(f.load(), 1).unwrap(), f)
}

/// Gateway A ("site-b") and gateway B ("site-a"), wired to each other.
pub(super) struct Pair {
    pub(super) a: Plane,
    pub(super) b: Plane,
    _files: (ConfFile, ConfFile),
}

impl Pair {
    fn new(tag: &str, a_extra: &str, b_extra: &str) -> Pair {
        let (a, fa) = plane_of(
            &format!("{tag}-a"),
            &(gateway(4500)
                + &connection("site-b", "gw-a.example", "gw-b.example", a_extra, false)),
        );
        let (b, fb) = plane_of(
            &format!("{tag}-b"),
            &(gateway(4500) + &connection("site-a", "gw-b.example", "gw-a.example", b_extra, true)),
        );
        Pair {
            a,
            b,
            _files: (fa, fb),
        }
    }

    /// A pair whose initiator started its tunnels at `now`, with every exchange done.
    pub(super) fn up(tag: &str, a_extra: &str, b_extra: &str, now: Instant) -> Pair {
        let mut p = Pair::new(tag, a_extra, b_extra);
        p.a.start_tunnels(now);
        p.settle(now);
        p
    }

    /// Delivers every queued IKE message and applies every event, as the daemon's flush
    /// does, until both sides are quiet.
    pub(super) fn settle(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            for a_to_b in [true, false] {
                let (from, to) = if a_to_b {
                    (&mut self.a, &mut self.b)
                } else {
                    (&mut self.b, &mut self.a)
                };
                from.drain_events(now);
                while let Some(t) = from.poll_transmit() {
                    to.on_ike_datagram(now, t.remote, t.local, &t.payload);
                    moved = true;
                }
            }
            if !moved {
                self.a.drain_events(now);
                self.b.drain_events(now);
                // The IKE SA index agrees with a scan after every step.
                self.a.check_ike_index();
                self.b.check_ike_index();
                return;
            }
        }
    }
}

fn key(conn: &str, local: &str, remote: &str) -> TunnelKey {
    TunnelKey {
        conn: conn.into(),
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        client: None,
    }
}

pub(super) fn primary() -> TunnelKey {
    key("site-b", "192.0.2.1", "192.0.2.2")
}

pub(super) fn standby() -> TunnelKey {
    key("site-b", "198.51.100.1", "198.51.100.2")
}

#[test]
fn both_tunnels_come_up_and_the_primary_carries_the_traffic() {
    let base = Instant::now();
    let p = Pair::up("up", "", "", base);
    assert!(p.a.sas().is_sending(&primary()));
    assert!(p.a.sas().is_sending(&standby()));
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![primary()]);
    // Coming up is not a failover.
    assert_eq!(p.a.conn_stats("site-b").failovers, 0);
    assert_eq!(p.a.conn_stats("site-b").ike_up, 2);
    assert!(p.a.tables().is_ok());
}

#[test]
fn peer_deleting_its_sas_fails_over_and_restarts_after_the_delay() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = Pair::up("restart", "", "", base);
    let done = p.b.terminate("site-a", at(1000)).unwrap();
    assert_eq!(done.to_string(), "connection 'site-a': deleting 2 IKE SAs");
    p.settle(at(1000));
    // A: the peer deleted both IKE SAs (a peer fault): nothing is up, both restart in 5 s.
    assert!(!p.a.sas().is_sending(&primary()));
    assert_eq!(
        p.a.selection("site-b").unwrap().active,
        Vec::<TunnelKey>::new()
    );
    let (when, text) =
        p.a.selection("site-b")
            .unwrap()
            .last_failover
            .clone()
            .unwrap();
    assert_eq!(when, at(1000));
    assert_eq!(text, "192.0.2.2 -> none: no tunnel is up");
    assert_eq!(p.a.conn_stats("site-b").failovers, 1);
    assert_eq!(p.a.restarts.get(&primary()), Some(at(6000)));
    assert_eq!(p.a.restarts.get(&standby()), Some(at(6000)));
    assert!(p.a.next_deadline().is_some_and(|d| d <= at(6000)));
    assert!(p.a.tunnel(&primary()).unwrap().ike.is_none());
    // B: the operator's terminate holds its tunnels down, no restart.
    assert!(p.b.restarts.next().is_none());
    assert!(p.b.tunnels.values().all(|s| s.held));
    // The retired CHILD_SAs leave the tables after the grace period.
    assert!(p.a.sas().next_retirement() == Some(at(3000)));
    p.a.on_timeout(at(3000));
    assert!(p.a.sas().children_of(&primary()).next().is_none());
    assert!(p.a.drain_events(at(3000)));
    // At the restart time, A initiates both again, and B answers (a held tunnel still
    // answers a peer).
    p.a.on_timeout(at(6000));
    assert!(p.a.restarts.next().is_none());
    assert!(p.a.tunnel(&primary()).unwrap().ike.is_some());
    p.settle(at(6000));
    assert!(p.a.sas().is_sending(&primary()));
    // The primary failed and came back without preempt: traffic stays where the first
    // tunnel up put it, or on the primary if it came up first; either way it is up.
    assert_eq!(p.a.selection("site-b").unwrap().active.len(), 1);
}

#[test]
fn close_action_trap_traps_the_tunnel_instead_of_restarting() {
    let base = Instant::now();
    let mut p = Pair::up("trap", "close_action = \"trap\"", "", base);
    assert!(!p.a.tunnel(&primary()).unwrap().trapped);
    p.b.terminate("site-a", base).unwrap();
    // Settle by hand: the trap flag changes the tables.
    while let Some(t) = p.b.poll_transmit() {
        p.a.on_ike_datagram(base, t.remote, t.local, &t.payload);
    }
    assert!(p.a.drain_events(base));
    assert!(p.a.tunnel(&primary()).unwrap().trapped);
    assert!(p.a.restarts.next().is_none());
}

#[test]
fn operator_terminate_holds_and_initiate_releases() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = Pair::up("hold", "", "", base);
    let e = |r: Result<CommandDone, CommandError>| r.unwrap_err().to_string();
    assert_eq!(e(p.a.initiate("nope", base)), "no connection named 'nope'");
    assert_eq!(
        e(p.a.initiate("site-b", base)),
        "connection 'site-b': every tunnel already has an IKE SA"
    );
    assert_eq!(
        p.a.terminate("site-b", at(10)).unwrap().to_string(),
        "connection 'site-b': deleting 2 IKE SAs"
    );
    p.settle(at(10));
    assert!(p.a.tunnels.values().all(|s| s.held && s.ike.is_none()));
    assert!(
        p.a.restarts.next().is_none(),
        "a held tunnel does not restart"
    );
    assert_eq!(
        e(p.a.terminate("site-b", at(20))),
        "connection 'site-b' has no IKE SA"
    );
    assert_eq!(
        p.a.initiate("site-b", at(30)).unwrap().to_string(),
        "connection 'site-b': initiating 2 tunnels"
    );
    assert!(p.a.tunnels.values().all(|s| !s.held && s.ike.is_some()));
}

#[test]
fn static_connections_refuse_commands_with_todays_text() {
    let body = gateway(4500)
        + "[[connection]]\nname = \"st\"\nkeying = \"static\"\nlocal_ts = [\"10.1.0.0/24\"]\n\
           remote_ts = [\"10.2.0.0/24\"]\nesp = \"aes128gcm16\"\n\
           tunnels = [ { local = \"192.0.2.1\", remote = \"192.0.2.2\", spi_in = \"0xc0000201\", \
           spi_out = \"0xc0000102\" } ]\nkeys_file = \"site.keys\"\n";
    let f = ConfFile::new("static", &body);
    let keys = f.0.with_file_name("site.keys");
    std::fs::write(
        &keys,
        "0xc0000102 = \"000102030405060708090a0b0c0d0e0f10111213\"\n\
         0xc0000201 = \"202122232425262728292a2b2c2d2e2f30313233\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut plane = Plane::new(f.load(), 1).unwrap();
    let now = Instant::now();
    assert_eq!(
        plane.initiate("st", now).unwrap_err().to_string(),
        "connection 'st' uses static keys: there is nothing to negotiate"
    );
    assert_eq!(
        plane.terminate("st", now).unwrap_err().to_string(),
        "connection 'st' uses static keys: its SAs exist as long as its config does"
    );
    assert_eq!(
        plane
            .rekey("st", crate::rekey::RekeyKind::Child, now)
            .unwrap_err()
            .to_string(),
        "connection 'st' uses static keys: there is no IKE to rekey with (new keys mean a \
         new keys_file and a reload)"
    );
}

#[test]
fn operator_rekey_replaces_child_and_ike_sas_make_before_break() {
    use crate::rekey::RekeyKind;
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = Pair::up("rekey", "", "", base);
    let e = |r: Result<CommandDone, CommandError>| r.unwrap_err().to_string();
    assert_eq!(
        e(p.a.rekey("nope", RekeyKind::Child, base)),
        "no connection named 'nope'"
    );
    let old_primary = sending_sa(&p.a);
    let old_standby = p.a.sas().active_out(&standby()).unwrap();
    let done = p.a.rekey("site-b", RekeyKind::Child, at(10)).unwrap();
    let CommandDone::Rekeying(r) = &done else {
        panic!("{done:?}")
    };
    assert_eq!(r.kind, RekeyKind::Child);
    assert_eq!(r.started.len(), 2, "{done}");
    assert!(r.skipped.is_empty());
    assert_eq!(
        r.started[0].child_spi_in.as_deref(),
        Some(crate::status::spi_string(old_primary).as_str())
    );
    assert!(done
        .to_string()
        .starts_with("connection 'site-b': rekeying 2 CHILD_SAs\n"));
    p.settle(at(10));
    // We initiated: the new SAs send at once, the old ones retire (packets in flight still
    // open), and both ends counted a rekey per tunnel.
    let new_primary = sending_sa(&p.a);
    assert_ne!(new_primary, old_primary);
    assert_ne!(p.a.sas().active_out(&standby()).unwrap(), old_standby);
    assert!(p
        .a
        .sas()
        .child(old_primary)
        .unwrap()
        .retiring_until
        .is_some());
    assert_eq!(p.a.conn_stats("site-b").child_rekeys, 2);
    assert_eq!(p.b.conn_stats("site-a").child_rekeys, 2);

    // The IKE SAs: new SPIs, the CHILD_SAs move along unchanged.
    let ike_before: Vec<u64> = p.a.ike_sas().iter().map(|s| s.spi_i).collect();
    let done = p.a.rekey("site-b", RekeyKind::Ike, at(20)).unwrap();
    assert!(
        done.to_string()
            .starts_with("connection 'site-b': rekeying 2 IKE SAs\n"),
        "{done}"
    );
    p.settle(at(20));
    assert_eq!(p.a.conn_stats("site-b").ike_rekeys, 2);
    let established: Vec<_> =
        p.a.ike_sas()
            .into_iter()
            .filter(|s| s.established)
            .collect();
    assert_eq!(established.len(), 2);
    assert!(established.iter().all(|s| !ike_before.contains(&s.spi_i)));
    assert_eq!(sending_sa(&p.a), new_primary);
    for key in [primary(), standby()] {
        let ike = p.a.tunnel(&key).unwrap().ike.unwrap();
        assert!(
            established.iter().any(|s| s.id == ike),
            "{key:?} follows its new IKE SA"
        );
    }

    // A tunnel without an IKE SA is skipped; none left is the error.
    p.a.terminate("site-b", at(30)).unwrap();
    p.settle(at(30));
    assert_eq!(
        e(p.a.rekey("site-b", RekeyKind::Child, at(40))),
        "connection 'site-b': nothing to rekey: 192.0.2.1 -> 192.0.2.2: no IKE SA (the tunnel \
         is down); 198.51.100.1 -> 198.51.100.2: no IKE SA (the tunnel is down)"
    );
}

#[test]
fn status_shows_a_static_sas_sequence_space() {
    let body = gateway(4500)
        + "[[connection]]\nname = \"st\"\nkeying = \"static\"\nlocal_ts = [\"10.1.0.0/24\"]\n\
           remote_ts = [\"10.2.0.0/24\"]\nesp = \"aes128gcm16\"\n\
           tunnels = [ { local = \"192.0.2.1\", remote = \"192.0.2.2\", spi_in = \"0xc0000201\", \
           spi_out = \"0xc0000102\" } ]\nkeys_file = \"site.keys\"\n";
    let f = ConfFile::new("static-seq", &body);
    let keys = f.0.with_file_name("site.keys");
    std::fs::write(
        &keys,
        "0xc0000102 = \"000102030405060708090a0b0c0d0e0f10111213\"\n\
         0xc0000201 = \"202122232425262728292a2b2c2d2e2f30313233\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut p = Plane::new(f.load(), 1).unwrap();
    let key = TunnelKey {
        conn: "st".into(),
        local: "192.0.2.1".parse().unwrap(),
        remote: "192.0.2.2".parse().unwrap(),
        client: None,
    };
    // Static SAs have ESN (the config requires it): the space is 2^64 - 1.
    let q = p.static_seq_space(&key).unwrap();
    assert_eq!((q.used, q.size, q.esn, q.percent()), (0, u64::MAX, true, 0));
    // Fake the fast path having sealed past the 32-bit space (4 billion packets cannot run in
    // a test): nothing runs out, status shows the count.
    let sas = p.store.static_mut(&key).unwrap();
    let sa = ironsec_esp::OutboundSa::new(
        sas.outbound.sa.suite(),
        sas.outbound.sa.spi(),
        &[7u8; 20],
        true,
    )
    .unwrap()
    .with_next_seq((1 << 33) + 1);
    sas.outbound = Arc::new(ironsec_dataplane::OutboundEntry {
        sa,
        counters: ironsec_dataplane::PerWorker::new(1),
        watch: None,
    });
    let q = p.static_seq_space(&key).unwrap();
    assert_eq!((q.used, q.percent()), (1 << 33, 0));
    // Negotiated tunnels have none: they rekey.
    let other = TunnelKey {
        conn: "st".into(),
        local: "192.0.2.1".parse().unwrap(),
        remote: "192.0.2.9".parse().unwrap(),
        client: None,
    };
    assert_eq!(p.static_seq_space(&other), None);
}

fn two_connections(port: u16, b_extra: &str, second: Option<&str>) -> String {
    let mut s =
        gateway(port) + &connection("site-b", "gw-a.example", "gw-b.example", b_extra, false);
    if let Some(name) = second {
        s += &connection(name, "gw-a.example", "gw-x.example", "", false)
            .replace("10.2.0.0/24", "10.9.0.0/24");
    }
    s
}

#[test]
fn reload_reports_added_changed_removed_and_unchanged() {
    let now = Instant::now();
    let (mut plane, _f) = plane_of("reload", &two_connections(4500, "", Some("site-c")));
    let same = ConfFile::new("reload-same", &two_connections(4500, "", Some("site-c")));
    let s = plane.reload(same.load(), now).unwrap();
    assert_eq!(
        s.to_string(),
        "added: none; changed: none; removed: none; unchanged: 2"
    );
    assert!(plane.drain_events(now), "a reload rebuilds the tables");
    let new = ConfFile::new(
        "reload-new",
        &two_connections(4500, "preempt = true", Some("site-d")),
    );
    let s = plane.reload(new.load(), now).unwrap();
    assert_eq!(s.changed, ["site-b"]);
    assert_eq!(s.removed, ["site-c"]);
    assert_eq!(s.added, ["site-d"]);
    assert_eq!(s.unchanged, 0);
    assert_eq!(
        s.to_string(),
        "added: site-d; changed: site-b; removed: site-c; unchanged: 0"
    );
    // The removed connection's state is gone; the new one has its tunnels.
    assert!(plane.tunnels.keys().all(|k| &*k.conn != "site-c"));
    assert!(plane
        .tunnel(&key("site-d", "192.0.2.1", "192.0.2.2"))
        .is_some());
    assert_eq!(plane.by_name.get("site-d"), Some(&1));
    assert_eq!(plane.specs_of(1)[0].conn.as_ref(), "site-d");
}

#[test]
fn reload_refuses_gateway_changes_and_new_addresses_with_todays_text() {
    let now = Instant::now();
    let (mut plane, _f) = plane_of("refuse", &two_connections(4500, "", None));
    let new = ConfFile::new("refuse-new", &two_connections(4501, "", None));
    let err = plane.reload(new.load(), now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "gateway.port: changed from 4500 to 4501; gateway settings apply at start (restart ironsecd)"
    );
    assert!(
        matches!(&err.0[..], [ReloadError::Gateway(n)] if n.key == crate::config::GatewayKey::Port)
    );
    let moved = two_connections(4500, "", None).replace("198.51.100.1", "198.51.100.7");
    let new = ConfFile::new("refuse-addr", &moved);
    let err = plane.reload(new.load(), now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "connection 'site-b': local address 198.51.100.7 is not one the running daemon listens on (restart ironsecd to add an address)"
    );
    // Nothing changed.
    assert_eq!(plane.config().gateway.port, 4500);
    assert!(plane.tunnel(&standby()).is_some());
}

// --- the failover policy as a pure function ---

fn facts(priority: u32, up: bool) -> TunnelFacts {
    TunnelFacts {
        priority,
        up,
        ..Default::default()
    }
}

fn standby_policy(preempt_hold: Option<Duration>) -> Policy {
    Policy {
        mode: Mode::ActiveStandby,
        probe_after: Duration::from_millis(500),
        preempt_hold,
    }
}

#[test]
fn decide_picks_the_best_up_tunnel_and_fails_over_when_it_goes() {
    let now = Instant::now();
    let p = standby_policy(None);
    let (a, b) = (primary(), standby());
    let both = [(a.clone(), facts(100, true)), (b.clone(), facts(50, true))];
    assert_eq!(
        decide(p, &both, &[], now),
        Decision {
            active: vec![a.clone()],
            reason: None
        }
    );
    // Equal priorities: config order.
    let tie = [(a.clone(), facts(7, true)), (b.clone(), facts(7, true))];
    assert_eq!(decide(p, &tie, &[], now).active, vec![a.clone()]);
    let down = [(a.clone(), facts(100, false)), (b.clone(), facts(50, true))];
    let d = decide(p, &down, std::slice::from_ref(&a), now);
    assert_eq!(d.active, vec![b.clone()]);
    assert_eq!(d.reason, Some(FailoverReason::Down(a.remote)));
    assert_eq!(d.reason.unwrap().to_string(), "192.0.2.2 is down");
    let none = [
        (a.clone(), facts(100, false)),
        (b.clone(), facts(50, false)),
    ];
    let d = decide(p, &none, std::slice::from_ref(&b), now);
    assert!(d.active.is_empty());
    assert_eq!(d.reason.unwrap().to_string(), "no tunnel is up");
    // Active-active: every up tunnel, no story.
    let aa = Policy {
        mode: Mode::ActiveActive,
        ..p
    };
    assert_eq!(decide(aa, &both, &[], now).active, vec![a, b]);
}

#[test]
fn decide_follows_the_peer_when_ours_is_silent_and_another_just_heard() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let p = standby_policy(None);
    let (a, b) = (primary(), standby());
    let tunnels = |a_rx: u64, b_rx: u64| {
        [
            (
                a.clone(),
                TunnelFacts {
                    rx_at: Some(at(a_rx)),
                    ..facts(100, true)
                },
            ),
            (
                b.clone(),
                TunnelFacts {
                    rx_at: Some(at(b_rx)),
                    ..facts(50, true)
                },
            ),
        ]
    };
    // Ours silent 500 ms, the other heard 100 ms ago: follow.
    let d = decide(p, &tunnels(1000, 1400), std::slice::from_ref(&a), at(1500));
    assert_eq!(d.active, vec![b.clone()]);
    assert_eq!(
        d.reason.unwrap().to_string(),
        "the peer moved to 198.51.100.2"
    );
    // Ours silent only 499 ms: stay.
    let d = decide(p, &tunnels(1001, 1400), std::slice::from_ref(&a), at(1500));
    assert_eq!(d.active, vec![a.clone()]);
    // The other last heard 300 ms ago: not recent enough, stay.
    let d = decide(p, &tunnels(1000, 1200), std::slice::from_ref(&a), at(1500));
    assert_eq!(
        d,
        Decision {
            active: vec![a],
            reason: None
        }
    );
}

#[test]
fn decide_moves_back_only_with_preempt_after_the_hold_on_a_newer_sa() {
    let base = Instant::now();
    let at = |s: u64| base + Duration::from_secs(s);
    let (a, b) = (primary(), standby());
    let hold = Some(Duration::from_secs(10));
    let primary_facts = |failed: Option<u64>, est: Option<u64>, probing| TunnelFacts {
        failed_at: failed.map(at),
        established_at: est.map(at),
        probing,
        ..facts(100, true)
    };
    let with = |f| [(a.clone(), f), (b.clone(), facts(50, true))];
    let on_b = std::slice::from_ref(&b);
    // Never failed (came up just after the standby): takes over at once, preempt or not.
    let d = decide(
        standby_policy(None),
        &with(primary_facts(None, Some(1), false)),
        on_b,
        at(1),
    );
    assert_eq!(d.active, vec![a.clone()]);
    assert_eq!(
        d.reason.unwrap().to_string(),
        "192.0.2.2 has a higher priority"
    );
    assert!(d.reason.unwrap().is_upgrade());
    // Failed at 5, SA up since 6: without preempt it never comes back.
    let back = with(primary_facts(Some(5), Some(6), false));
    assert_eq!(
        decide(standby_policy(None), &back, on_b, at(100)).active,
        vec![b.clone()]
    );
    // With preempt: not before the hold time...
    assert_eq!(
        decide(standby_policy(hold), &back, on_b, at(15)).active,
        vec![b.clone()]
    );
    // ...then back.
    let d = decide(standby_policy(hold), &back, on_b, at(16));
    assert_eq!(d.active, vec![a.clone()]);
    assert_eq!(d.reason, Some(FailoverReason::Preempt(a.remote)));
    assert_eq!(d.reason.unwrap().to_string(), "192.0.2.2 is back (preempt)");
    // An SA older than the failure is no proof the path works again.
    let stale = with(primary_facts(Some(5), Some(4), false));
    assert_eq!(
        decide(standby_policy(hold), &stale, on_b, at(100)).active,
        vec![b.clone()]
    );
    // A tunnel being probed is not better.
    let probing = with(primary_facts(None, Some(1), true));
    assert_eq!(
        decide(standby_policy(hold), &probing, on_b, at(100)).active,
        vec![b]
    );
}

#[test]
fn preempt_through_the_plane_marks_the_failed_tunnel_and_moves_back() {
    let base = Instant::now();
    let at = |s: u64| base + Duration::from_secs(s);
    let mut p = Pair::up("preempt", "preempt = true\npreempt_hold = 10", "", base);
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![primary()]);
    // The primary's IKE SA goes (the peer deletes just that one).
    let ike_b =
        p.b.tunnel(&key("site-a", "192.0.2.2", "192.0.2.1"))
            .unwrap()
            .ike
            .unwrap();
    p.b.ep.terminate(at(1), ike_b).unwrap();
    p.settle(at(1));
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![standby()]);
    assert_eq!(p.a.tunnel(&primary()).unwrap().failed_at, Some(at(1)));
    let (_, text) =
        p.a.selection("site-b")
            .unwrap()
            .last_failover
            .clone()
            .unwrap();
    assert_eq!(text, "192.0.2.2 -> 198.51.100.2: 192.0.2.2 is down");
    // It restarts 5 s later; traffic stays on the standby for the hold time.
    p.a.on_timeout(at(6));
    p.settle(at(6));
    assert!(p.a.sas().is_sending(&primary()));
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![standby()]);
    // The hold time is a deadline, not something a timer looks for.
    assert!(p.a.next_deadline().is_some_and(|d| d <= at(16)));
    p.a.on_timeout(at(15));
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![standby()]);
    p.a.on_timeout(at(16));
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![primary()]);
    assert!(p.a.drain_events(at(16)), "the move reaches the tables");
    // Moving back with preempt counts as a failover too, and is the story status tells.
    assert_eq!(p.a.conn_stats("site-b").failovers, 2);
    let (when, text) =
        p.a.selection("site-b")
            .unwrap()
            .last_failover
            .clone()
            .unwrap();
    assert_eq!(when, at(16));
    assert_eq!(
        text,
        "198.51.100.2 -> 192.0.2.2: 192.0.2.2 is back (preempt)"
    );
    // Moving back does not mark the standby as failed.
    assert_eq!(p.a.tunnel(&standby()).unwrap().failed_at, None);
    // On its best tunnel, the connection has nothing of the plane's own due any more.
    assert!(p.a.reselect.next().is_none() && p.a.follow.next().is_none());
    assert_eq!(p.a.next_deadline(), p.a.ep.poll_timeout());
}

// --- sending without hearing back ---

#[test]
fn probe_is_due_after_a_sixth_of_failover_after_of_sending_into_silence() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let th = Thresholds::of(Duration::from_secs(3));
    assert_eq!(th.probe_after, Duration::from_millis(500));
    assert_eq!(th.give_up, Duration::from_millis(750));
    let check =
        |seen: &Liveness, ike: u64, now: u64| check_silence(seen, at(ike), th.probe_after, at(now));
    let mut seen = Liveness {
        rx_at: Some(at(0)),
        ..Default::default()
    };
    // Nothing sent: nothing to check.
    assert_eq!(check(&seen, 0, 5000), SilenceCheck::Heard);
    // It starts sending at 1000: silence counts from then, not from the last receive.
    observe(&mut seen, Direction::Outbound, at(1000));
    assert_eq!(seen.sending_since, Some(at(1000)));
    observe(&mut seen, Direction::Outbound, at(1400));
    assert_eq!(seen.sending_since, Some(at(1000)), "the same run");
    assert_eq!(check(&seen, 0, 1499), SilenceCheck::CheckAt(at(1500)));
    assert_eq!(
        check(&seen, 0, 1500),
        SilenceCheck::Probe {
            silent: Duration::from_millis(500)
        }
    );
    // Any IKE message is a sign of life too (an answered probe: checked again after the
    // next silence).
    assert_eq!(check(&seen, 1200, 1500), SilenceCheck::CheckAt(at(1700)));
    // ESP in ends it; the next packet out starts a new run.
    observe(&mut seen, Direction::Inbound, at(1500));
    assert_eq!(check(&seen, 0, 9000), SilenceCheck::Heard);
    observe(&mut seen, Direction::Outbound, at(2000));
    assert_eq!(seen.sending_since, Some(at(2000)));
    assert_eq!(check(&seen, 0, 2100), SilenceCheck::CheckAt(at(2500)));
}

/// What the fast path does for a packet through a tunnel's SAs: reports it if armed.
fn packet(plane: &Plane, key: &TunnelKey, d: Direction) -> Option<SaActivity> {
    plane.tunnel(key).unwrap().watch.as_ref().unwrap().packet(d)
}

#[test]
fn sending_into_silence_probes_by_deadline_and_idle_tunnels_cost_nothing() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = Pair::up("silence", "", "", base);
    let ep_deadline = p.a.ep.poll_timeout();
    // Idle: nothing of the plane's own is due, whatever the time.
    assert_eq!(p.a.next_deadline(), ep_deadline);
    assert!(p.a.silence.next().is_none() && p.a.rearm.next().is_none());
    // Both tunnels' SAs carry their tunnel's watch, armed both ways.
    let watch = p.a.tunnel(&primary()).unwrap().watch.clone().unwrap();
    assert!(p.a.sas().children_of(&primary()).all(|c| c
        .outbound
        .watch
        .as_ref()
        .is_some_and(|w| Arc::ptr_eq(w, &watch))));
    // The first packet out: one report, later ones none.
    let out = packet(&p.a, &primary(), Direction::Outbound).unwrap();
    assert!(packet(&p.a, &primary(), Direction::Outbound).is_none());
    p.a.on_activity(out, at(1000));
    // Silence deadline a sixth of failover_after (3 s) after the run started.
    assert_eq!(p.a.silence.get(&primary()), Some(at(1500)));
    assert_eq!(p.a.next_deadline().map(|d| d.min(at(1500))), Some(at(1500)));
    // Not yet due: no probe.
    p.a.on_timeout(at(1499));
    assert!(
        !p.a.ep
            .liveness(p.a.tunnel(&primary()).unwrap().ike.unwrap())
            .unwrap()
            .probing
    );
    // Due: the peer is probed, and looked at again after a quarter of failover_after.
    p.a.on_timeout(at(1500));
    let ike = p.a.tunnel(&primary()).unwrap().ike.unwrap();
    assert!(p.a.ep.liveness(ike).unwrap().probing);
    assert_eq!(p.a.silence.get(&primary()), Some(at(2250)));
    // The peer answers at 1600 (a sign of life). Still no ESP back: after another 500 ms of
    // silence since that answer, the next check probes again.
    p.settle(at(1600));
    assert!(!p.a.ep.liveness(ike).unwrap().probing);
    p.a.on_timeout(at(2250));
    assert!(p.a.ep.liveness(ike).unwrap().probing);
    assert_eq!(p.a.silence.get(&primary()), Some(at(3000)));
    p.settle(at(2260));
    // ESP in: the silence is over, the watch is armed again a moment later.
    let inb = packet(&p.a, &primary(), Direction::Inbound).unwrap();
    p.a.on_activity(inb, at(2300));
    assert!(p.a.silence.get(&primary()).is_none());
    assert_eq!(p.a.rearm.get(&primary()), Some(at(2400)));
    assert!(packet(&p.a, &primary(), Direction::Inbound).is_none());
    p.a.on_timeout(at(2400));
    assert!(watch.is_armed(Direction::Inbound) && watch.is_armed(Direction::Outbound));
    assert!(p.a.rearm.next().is_none());
}

#[test]
fn traffic_on_the_standby_while_the_active_is_silent_follows_the_peer() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = Pair::up("follow", "", "", base);
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![primary()]);
    // ESP arrives on the standby 300 ms in; at the look 100 ms later the primary has not
    // been silent long enough yet.
    let inb = packet(&p.a, &standby(), Direction::Inbound).unwrap();
    p.a.on_activity(inb, at(300));
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![primary()]);
    p.a.on_timeout(at(400));
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![primary()]);
    assert!(p.a.follow.next().is_none());
    // The standby's watch is armed again 100 ms after its packet.
    let w = p.a.tunnel(&standby()).unwrap().watch.clone().unwrap();
    assert!(w.is_armed(Direction::Inbound));
    // Again after the primary has been silent for half a second: follow, at the next look
    // (100 ms later).
    let inb = packet(&p.a, &standby(), Direction::Inbound).unwrap();
    p.a.on_activity(inb, at(600));
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![primary()]);
    assert_eq!(p.a.follow.get(&Arc::from("site-b")), Some(at(700)));
    p.a.on_timeout(at(700));
    assert_eq!(p.a.selection("site-b").unwrap().active, vec![standby()]);
    assert_eq!(p.a.conn_stats("site-b").follows, 1);
    assert!(p.a.drain_events(at(700)), "the move reaches the tables");
}

/// Gateway B's config accepting only `esp` (A offers aes256gcm16).
fn b_with_esp(tag: &str, esp: &str) -> (Plane, ConfFile) {
    let conn = connection("site-a", "gw-b.example", "gw-a.example", "", true).replace(
        "esp_proposals = [\"aes256gcm16\"]",
        &format!("esp_proposals = [\"{esp}\"]"),
    );
    plane_of(tag, &(gateway(4500) + &conn))
}

#[test]
fn a_refused_child_sa_is_retried_with_a_new_ike_sa_and_backoff_until_accepted() {
    use ironsec_ike::wire::NotifyType;
    let t0 = Instant::now();
    let (a, fa) = plane_of(
        "refused-a",
        &(gateway(4500) + &connection("site-b", "gw-a.example", "gw-b.example", "", false)),
    );
    let (b, fb) = b_with_esp("refused-b", "chacha20poly1305");
    let mut p = Pair {
        a,
        b,
        _files: (fa, fb),
    };
    p.a.start_tunnels(t0);
    p.settle(t0);

    // The IKE SA is up, its CHILD_SA refused: recorded, with the first retry in 5 s.
    let st = p.a.tunnel(&primary()).unwrap().clone();
    let r = st.child_refused.clone().expect("the refusal is recorded");
    assert_eq!(r.notify, NotifyType::NoProposalChosen);
    assert_eq!(r.refusals, 1);
    let next_try =
        p.a.child_retry_at(&primary())
            .expect("a retry is scheduled");
    assert_eq!(next_try, t0 + Duration::from_secs(5));
    assert_eq!(r.rekey_retry_at, None);
    assert!(!p.a.is_up(&primary()));
    assert!(p.a.next_deadline().is_some_and(|d| d <= next_try));
    let first_ike = st.ike.expect("an IKE SA serves the tunnel");

    // Not due yet: nothing changes.
    let t = t0 + Duration::from_secs(4);
    p.a.on_timeout(t);
    p.settle(t);
    assert_eq!(p.a.tunnel(&primary()).unwrap().ike, Some(first_ike));

    // Due: a new IKE SA replaces the old one, is refused again, and the delay doubles.
    let t1 = t0 + Duration::from_secs(5);
    p.a.on_timeout(t1);
    p.settle(t1);
    let st = p.a.tunnel(&primary()).unwrap().clone();
    assert_ne!(st.ike, Some(first_ike), "the retry starts a new IKE SA");
    assert!(
        !p.a.ike_sas().iter().any(|s| s.id == first_ike),
        "the IKE SA without a CHILD_SA is deleted"
    );
    let r = st.child_refused.clone().unwrap();
    assert_eq!(r.refusals, 2);
    let next_try = p.a.child_retry_at(&primary()).unwrap();
    assert_eq!(next_try, t1 + Duration::from_secs(10));

    // The peer's config is fixed (a new B that accepts aes256gcm16): the next retry brings
    // the tunnel up by itself, and the refusal is forgotten.
    let (b, fb) = b_with_esp("refused-b2", "aes256gcm16");
    p.b = b;
    p._files.1 = fb;
    let t2 = next_try;
    p.a.on_timeout(t2);
    p.settle(t2);
    assert!(p.a.is_up(&primary()), "tunnel up after the retry");
    assert!(p.a.tunnel(&primary()).unwrap().child_refused.is_none());
    assert_eq!(p.a.child_retry_at(&primary()), None);
}

#[test]
fn terminate_stops_the_retries_of_a_refused_child_sa() {
    let t0 = Instant::now();
    let (a, fa) = plane_of(
        "refused-held-a",
        &(gateway(4500) + &connection("site-b", "gw-a.example", "gw-b.example", "", false)),
    );
    let (b, fb) = b_with_esp("refused-held-b", "chacha20poly1305");
    let mut p = Pair {
        a,
        b,
        _files: (fa, fb),
    };
    p.a.start_tunnels(t0);
    p.settle(t0);
    assert!(p.a.child_retry_at(&primary()).is_some());
    p.a.terminate("site-b", t0).unwrap();
    p.settle(t0);
    assert_eq!(p.a.child_retry_at(&primary()), None);
    let t = t0 + Duration::from_secs(60);
    p.a.on_timeout(t);
    p.settle(t);
    assert!(p.a.ike_sas().is_empty(), "no new IKE SA after terminate");
}

/// Runs both planes' timers, deadline by deadline, up to `end`.
fn run_until(p: &mut Pair, end: Instant) {
    loop {
        let next = [p.a.next_deadline(), p.b.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= end => {
                p.a.on_timeout(t);
                p.b.on_timeout(t);
                p.settle(t);
            }
            _ => return,
        }
    }
}

#[test]
fn a_child_sa_whose_rekeys_are_refused_expires_and_a_new_ike_sa_brings_it_back() {
    let t0 = Instant::now();
    // The first CHILD_SA takes no DH (IKE_AUTH), so a PFS group mismatch shows only at the
    // rekey: A offers x25519, B wants ecp384.
    let a_conn = connection(
        "site-b",
        "gw-a.example",
        "gw-b.example",
        "rekey_time = 10",
        false,
    )
    .replace(
        "esp_proposals = [\"aes256gcm16\"]",
        "esp_proposals = [\"aes256gcm16-x25519\"]",
    );
    let (a, fa) = plane_of("rekey-refused-a", &(gateway(4500) + &a_conn));
    let (b, fb) = b_with_esp("rekey-refused-b", "aes256gcm16-ecp384");
    let mut p = Pair {
        a,
        b,
        _files: (fa, fb),
    };
    p.a.start_tunnels(t0);
    p.settle(t0);
    assert!(p.a.is_up(&primary()));
    let first_ike = p.a.tunnel(&primary()).unwrap().ike.unwrap();

    // Rekey due at 9-10 s (jitter), refused; the old SA carries on until its hard lifetime
    // (12 s), the engine retrying the rekey meanwhile.
    run_until(&mut p, t0 + Duration::from_millis(11_500));
    let r = p.a.tunnel(&primary()).unwrap().child_refused.clone();
    let r = r.expect("the refused rekey is recorded");
    assert!(r.rekey_retry_at.is_some(), "{r:?}");
    assert!(
        p.a.is_up(&primary()),
        "the old SA still carries the traffic"
    );
    assert_eq!(p.a.child_retry_at(&primary()), None);

    // Hard lifetime: the SA is gone, the IKE SA useless: a new IKE SA is due at once.
    // (Stepped to just after the expiry, before the plane's own deadline runs.)
    let expiry = t0 + Duration::from_secs(12);
    p.a.on_timeout(expiry);
    p.b.on_timeout(expiry);
    p.settle(expiry);
    assert!(!p.a.is_up(&primary()));
    let retry =
        p.a.child_retry_at(&primary())
            .expect("a new IKE SA is scheduled");
    let r =
        p.a.tunnel(&primary())
            .unwrap()
            .child_refused
            .clone()
            .unwrap();
    assert_eq!(r.rekey_retry_at, None);
    assert_eq!(retry, expiry, "the new IKE SA starts at once");

    // The new IKE SA's first CHILD_SA (no DH) is accepted: the tunnel is back.
    run_until(&mut p, retry);
    assert!(p.a.is_up(&primary()), "tunnel back after the new IKE SA");
    assert_ne!(p.a.tunnel(&primary()).unwrap().ike, Some(first_ike));
    assert!(p.a.tunnel(&primary()).unwrap().child_refused.is_none());
}

/// A UDP-or-TCP IPv4 packet from 10.1.0.2:40000 to 10.2.0.2:`dport`, at HEADROOM of a
/// buffer with room for the ESP trailer.
fn inner_packet(proto: u8, dport: u16) -> (Vec<u8>, usize) {
    use ironsec_esp::{HEADROOM, MAX_TRAILER};
    let mut p = vec![0u8; 60];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&60u16.to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&[10, 1, 0, 2]);
    p[16..20].copy_from_slice(&[10, 2, 0, 2]);
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    let mut buf = vec![0u8; HEADROOM + p.len() + MAX_TRAILER];
    buf[HEADROOM..HEADROOM + p.len()].copy_from_slice(&p);
    (buf, p.len())
}

#[test]
fn a_responder_narrowed_to_a_port_reaches_both_fast_paths() {
    use ironsec_dataplane::counters::GatewayCounters;
    use ironsec_dataplane::{account_sealed, open_one, seal_one, Inbound};
    let now = Instant::now();
    // B allows only TCP/443 on its side; A proposes the whole subnets and accepts B's answer.
    let (a, fa) = plane_of(
        "ports-a",
        &(gateway(4500) + &connection("site-b", "gw-a.example", "gw-b.example", "", false)),
    );
    let (b, fb) = plane_of(
        "ports-b",
        &(gateway(4500)
            + &connection("site-a", "gw-b.example", "gw-a.example", "", true).replace(
                "local_ts = [\"10.2.0.0/24\"]",
                "local_ts = [\"10.2.0.0/24[tcp/443]\"]",
            )),
    );
    let mut p = Pair {
        a,
        b,
        _files: (fa, fb),
    };
    p.a.start_tunnels(now);
    p.settle(now);
    let (ta, tb) = (p.a.tables().unwrap(), p.b.tables().unwrap());
    let gw = GatewayCounters::default();
    let mut sent = 0;
    for (proto, dport, crosses) in [(6, 443, true), (6, 80, false), (17, 443, false)] {
        let (mut buf, n) = inner_packet(proto, dport);
        let out = account_sealed(0, seal_one(&ta, &mut buf, n), &gw, None);
        assert_eq!(out.is_some(), crosses, "proto {proto} port {dport}");
        if let Some(s) = out {
            sent += 1;
            let v = open_one(&tb, &mut buf[s.start..s.start + s.len]);
            assert!(matches!(v, Inbound::Deliver(..)), "B delivers what A sent");
        }
    }
    assert_eq!(sent, 1);
}

/// The CHILD_SA the primary tunnel sends with.
fn sending_sa(plane: &Plane) -> u32 {
    plane.sas().active_out(&primary()).unwrap()
}

/// Drives A's timers and the exchanges they start until `until`, every 10 ms of fake time.
fn run_between(p: &mut Pair, from: Instant, until: Instant) {
    let mut t = from;
    while t <= until {
        p.a.on_timeout(t);
        p.b.on_timeout(t);
        p.settle(t);
        t += Duration::from_millis(10);
    }
}

#[test]
fn a_volume_limit_crossed_in_the_fast_path_rekeys_before_the_hard_limit() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let limits = "rekey_bytes = \"4MB\"\nlife_bytes = \"40MB\"";
    let mut p = Pair::up("volume", limits, "", base);
    let old = sending_sa(&p.a);
    // A small limit is looked at every MIN_CHECK, a sent-nothing SA without effect.
    assert_eq!(p.a.volume.get(&old), Some(base + volume::MIN_CHECK));
    run_between(&mut p, base, at(500));
    assert_eq!(sending_sa(&p.a), old);
    assert_eq!(p.a.conn_stats("site-b").child_rekeys, 0);
    // The fast path seals 5 MB (in one worker's counters), past rekey_bytes.
    let c = p.a.sas().child(old).unwrap();
    for _ in 0..5 {
        c.outbound.counters.get(0).packet(1_000_000);
    }
    run_between(&mut p, at(510), at(800));
    // Rekeyed (make-before-break: we initiated, so the new SA sends at once), the old SA
    // retired, not deleted for its hard limit; the new one is watched from zero.
    assert_eq!(p.a.conn_stats("site-b").child_rekeys, 1);
    let new = sending_sa(&p.a);
    assert_ne!(new, old);
    assert!(p.a.sas().child(old).unwrap().retiring_until.is_some());
    assert!(p.a.volume.get(&old).is_none());
    assert!(p.a.volume.get(&new).is_some());
    assert_eq!(p.b.conn_stats("site-a").child_rekeys, 1);
    // Nothing more happens while the new SA carries little.
    run_between(&mut p, at(810), at(2000));
    assert_eq!(p.a.conn_stats("site-b").child_rekeys, 1);
}

#[test]
fn status_sees_a_child_sas_volume_against_its_limits() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let limits = "rekey_bytes = \"4MB\"\nlife_bytes = \"40MB\"\nrekey_packets = \"10000\"";
    let mut p = Pair::up("volume-status", limits, "", base);
    let spi = sending_sa(&p.a);
    let v = p.a.child_volume(spi).unwrap();
    assert_eq!(v.used, volume::Usage::default());
    assert_eq!(v.limits.rekey_bytes, Some(4_000_000));
    assert_eq!(v.limits.life_bytes, Some(40_000_000));
    // Only rekey_packets: life 10% later, as strongSwan reads it.
    assert_eq!(v.limits.rekey_packets, Some(10_000));
    assert_eq!(v.limits.life_packets, Some(11_000));
    // The sequence space of an SA without ESN is a limit of its own.
    assert_eq!(v.seq_rekey_at, Some(volume::SEQ_REKEY_AT));
    assert_eq!(v.next_check, Some(base + volume::MIN_CHECK));
    // The fast path seals 3 MB in 3 packets: status sees it at once (live counters), with
    // 1 MB left before the rekey; the next look is still the planned one.
    let c = p.a.sas().child(spi).unwrap();
    for _ in 0..3 {
        c.outbound.counters.get(0).packet(1_000_000);
    }
    let v = p.a.child_volume(spi).unwrap();
    assert_eq!((v.used.bytes, v.used.packets), (3_000_000, 3));
    assert_eq!(
        volume::left(v.limits.rekey_bytes, v.used.bytes),
        Some(1_000_000)
    );
    assert_eq!(
        volume::left(v.limits.rekey_packets, v.used.packets),
        Some(9_997)
    );
    // Past rekey_bytes the rekey happens and the new SA starts from nothing.
    c.outbound.counters.get(0).packet(2_000_000);
    run_between(&mut p, at(100), at(400));
    let new = sending_sa(&p.a);
    assert_ne!(new, spi);
    let v = p.a.child_volume(new).unwrap();
    assert_eq!((v.used.bytes, v.used.packets), (0, 0));
    assert!(v.next_check.is_some_and(|t| t > at(400)));
    // A retired SA has no volume watch, but status can still read what it carried.
    let old = p.a.child_volume(spi).unwrap();
    assert_eq!(old.used.bytes, 5_000_000);
    assert_eq!(old.next_check, None);
}

#[test]
fn an_sa_near_the_end_of_its_sequence_numbers_is_rekeyed() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = Pair::up("seq", "", "", base);
    let old = sending_sa(&p.a);
    // Without ESN and with no configured limit, the sequence space alone is watched, from
    // afar: the first look at MAX_CHECK.
    assert!(!p.a.sas().child(old).unwrap().info.algorithms.esn);
    assert_eq!(p.a.volume.get(&old), Some(base + volume::MAX_CHECK));
    // Fake an SA that has sent up to just below SEQ_REKEY_AT (4 billion packets cannot run
    // in a test): the next look at the assumed rate comes within a second.
    let c = p.a.store.child_mut(old).unwrap();
    let a = c.info.algorithms;
    let sa = ironsec_esp::OutboundSa::new(a.encr, c.info.spi_out, c.info.key_out.bytes(), false)
        .unwrap()
        .with_next_seq(volume::SEQ_REKEY_AT - 1_000_000);
    c.outbound = Arc::new(ironsec_dataplane::OutboundEntry {
        sa,
        counters: ironsec_dataplane::PerWorker::new(1),
        watch: None,
    });
    p.a.volume.set(old, at(100));
    run_between(&mut p, at(100), at(110));
    assert_eq!(p.a.conn_stats("site-b").child_rekeys, 0, "not yet");
    let next = p.a.volume.get(&old).unwrap();
    assert!(
        next <= at(110) + Duration::from_millis(250),
        "{:?}",
        next - base
    );
    // The SA seals past SEQ_REKEY_AT: the next look rekeys it, once.
    let c = p.a.store.child_mut(old).unwrap();
    let sa = ironsec_esp::OutboundSa::new(a.encr, c.info.spi_out, c.info.key_out.bytes(), false)
        .unwrap()
        .with_next_seq(volume::SEQ_REKEY_AT + 5);
    c.outbound = Arc::new(ironsec_dataplane::OutboundEntry {
        sa,
        counters: ironsec_dataplane::PerWorker::new(1),
        watch: None,
    });
    run_between(&mut p, at(120), next + Duration::from_millis(50));
    assert_eq!(p.a.conn_stats("site-b").child_rekeys, 1);
    assert_ne!(sending_sa(&p.a), old);
    assert_eq!(
        p.a.sas()
            .child(sending_sa(&p.a))
            .unwrap()
            .outbound
            .sa
            .next_seq(),
        1,
        "the new SA starts its sequence numbers afresh"
    );
    run_between(&mut p, next + Duration::from_millis(60), at(3000));
    assert_eq!(p.a.conn_stats("site-b").child_rekeys, 1, "rekeyed once");
}

#[test]
fn both_ends_reaching_a_volume_limit_at_once_keep_one_matching_sa_pair() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let limits = "rekey_bytes = \"4MB\"\nlife_bytes = \"40MB\"";
    let mut p = Pair::up("volume-collide", limits, limits, base);
    let b_primary = key("site-a", "192.0.2.2", "192.0.2.1");
    for round in 0..4u64 {
        // Both ends count the same traffic and look at the same moment: both rekey, the
        // requests cross (a collision), one new SA pair survives.
        let t = at(1000 * round + 100);
        let a_old = p.a.sas().active_out(&primary()).unwrap();
        let b_old = p.b.sas().active_out(&b_primary).unwrap();
        for (plane, spi) in [(&p.a, a_old), (&p.b, b_old)] {
            plane
                .sas()
                .child(spi)
                .unwrap()
                .outbound
                .counters
                .get(0)
                .packet(5_000_000);
        }
        p.a.on_timeout(t);
        p.b.on_timeout(t);
        p.settle(t);
        run_between(&mut p, t, t + Duration::from_millis(500));
        let a_new = p.a.sas().active_out(&primary());
        let b_new = p.b.sas().active_out(&b_primary);
        let (Some(a_new), Some(b_new)) = (a_new, b_new) else {
            panic!("round {round}: a side has no SA to send with: A {a_new:?} B {b_new:?}");
        };
        assert_ne!(a_new, a_old, "round {round}");
        let (ca, cb) = (
            p.a.sas().child(a_new).unwrap(),
            p.b.sas().child(b_new).unwrap(),
        );
        assert!(ca.retiring_until.is_none() && cb.retiring_until.is_none());
        assert_eq!(
            ca.info.spi_out, cb.info.spi_in,
            "round {round}: A sends to B's SA"
        );
        assert_eq!(
            cb.info.spi_out, ca.info.spi_in,
            "round {round}: B sends to A's SA"
        );
    }
}

#[test]
fn reauth_time_replaces_the_ike_sa_before_the_old_one_goes() {
    let base = Instant::now();
    let at = |s: u64| base + Duration::from_secs(s);
    // reauth_time 120 s (60 s of jitter): a fresh IKE SA between 60 and 120 s.
    let mut p = Pair::up("reauth", "reauth_time = 120", "", base);
    let ike0 = p.a.tunnel(&primary()).unwrap().ike.unwrap();
    let sa0 = sending_sa(&p.a);
    let mut t = base;
    while t <= at(125) {
        p.a.on_timeout(t);
        p.b.on_timeout(t);
        p.settle(t);
        // Make-before-break: the tunnel always has an SA to send with.
        assert!(p.a.sas().is_sending(&primary()), "{:?}", t - base);
        t += Duration::from_millis(100);
    }
    let ike1 = p.a.tunnel(&primary()).unwrap().ike.unwrap();
    assert_ne!(ike1, ike0, "the IKE SA was replaced");
    assert_ne!(sending_sa(&p.a), sa0, "with new CHILD_SAs");
    // Two tunnels, each up once and reauthenticated once.
    assert_eq!(p.a.conn_stats("site-b").ike_up, 4);
    assert!(
        p.a.restarts.next().is_none(),
        "nothing restarts: no failure"
    );
    assert_eq!(p.a.conn_stats("site-b").failovers, 0);
}

#[test]
fn engine_settings_reach_the_engine_at_start_and_on_reload() {
    let now = Instant::now();
    let (mut plane, _f) = plane_of("engine-settings", &two_connections(4500, "", None));
    let c = plane.ep.config();
    assert_eq!(
        (c.cookie_threshold, c.max_half_open, c.fragment_size),
        (10, 1000, 1280 - 48),
        "defaults; the fragment size is the IP datagram less IPv6 and UDP headers"
    );
    let body = two_connections(4500, "", None).replace(
        "ike_port = 500\n",
        "ike_port = 500\ncookie_threshold = 0\nhalf_open_limit = 50\nike_fragment_size = 576\n",
    );
    let new = ConfFile::new("engine-settings-new", &body);
    plane
        .reload(new.load(), now)
        .expect("engine settings apply on reload");
    let c = plane.ep.config();
    assert_eq!(
        (c.cookie_threshold, c.max_half_open, c.fragment_size),
        (0, 50, 576 - 48)
    );
    assert_eq!((c.ike_port, c.natt_port), (500, 4500), "ports as bound");
}

#[test]
fn an_sa_past_its_hard_volume_limit_is_deleted() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let limits = "rekey_bytes = \"4MB\"\nlife_bytes = \"8MB\"";
    let mut p = Pair::up("volume-hard", limits, "", base);
    let old = sending_sa(&p.a);
    // More than life_bytes between two looks (a rekey that could not happen in time): the
    // SA is deleted, not kept past its limit.
    p.a.sas()
        .child(old)
        .unwrap()
        .inbound
        .counters
        .get(0)
        .packet(9_000_000);
    run_between(&mut p, at(100), at(400));
    assert!(p.a.sas().child(old).unwrap().retiring_until.is_some());
    assert_ne!(p.a.sas().active_out(&primary()), Some(old));
    assert_eq!(p.a.conn_stats("site-b").child_rekeys, 0);
}

/// The NAT in front of gateway A's primary address in [`Pair::settle_nat`]: A's
/// 192.0.2.1:port is seen by B as 203.0.113.1:(port + 10000).
fn nat_out(a: SocketAddr) -> SocketAddr {
    match a.ip().to_string().as_str() {
        "192.0.2.1" => SocketAddr::new("203.0.113.1".parse().unwrap(), a.port() + 10000),
        _ => a,
    }
}

fn nat_back(a: SocketAddr) -> SocketAddr {
    match a.ip().to_string().as_str() {
        "203.0.113.1" => SocketAddr::new("192.0.2.1".parse().unwrap(), a.port() - 10000),
        _ => a,
    }
}

impl Pair {
    /// Like [`Pair::settle`], with a NAT in front of A's primary address.
    fn settle_nat(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            self.a.drain_events(now);
            while let Some(t) = self.a.poll_transmit() {
                self.b
                    .on_ike_datagram(now, t.remote, nat_out(t.local), &t.payload);
                moved = true;
            }
            self.b.drain_events(now);
            while let Some(t) = self.b.poll_transmit() {
                self.a
                    .on_ike_datagram(now, nat_back(t.remote), t.local, &t.payload);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }
}

/// A behind a NAT on its primary tunnel (keepalives every 20 s, no DPD), B in front of it,
/// both tunnels up at `base`.
fn nat_pair(base: Instant) -> Pair {
    // B knows A's primary tunnel by the NAT's public address, as an operator configures it.
    let (a, fa) = plane_of(
        "nat-a",
        &(gateway(4500)
            + &connection(
                "site-b",
                "gw-a.example",
                "gw-b.example",
                "nat_keepalive = 20\ndpd_interval = 0",
                false,
            )),
    );
    let b_conf = gateway(4500)
        + &connection(
            "site-a",
            "gw-b.example",
            "gw-a.example",
            "dpd_interval = 0",
            true,
        )
        .replace("remote = \"192.0.2.1\"", "remote = \"203.0.113.1\"");
    let (b, fb) = plane_of("nat-b", &b_conf);
    let mut p = Pair {
        a,
        b,
        _files: (fa, fb),
    };
    p.a.start_tunnels(base);
    p.settle_nat(base);
    p
}

#[test]
fn behind_a_nat_idle_tunnels_send_keepalives_and_the_peer_follows_a_new_port() {
    let base = Instant::now();
    let at = |s: u64| base + Duration::from_secs(s);
    let mut p = nat_pair(base);
    assert!(p.a.sas().is_sending(&primary()));
    assert!(p.a.sas().is_sending(&standby()));
    // A learned that it is behind the NAT on the primary tunnel only; B that A is.
    let nat_a = p.a.tunnel(&primary()).unwrap().nat.unwrap();
    assert!(nat_a.nat.local, "{nat_a:?}");
    assert!(!p.a.tunnel(&standby()).unwrap().nat.unwrap().nat.local);
    let b_primary = key("site-a", "192.0.2.2", "203.0.113.1");
    let nat_b = p.b.tunnel(&b_primary).unwrap().nat.unwrap();
    assert!(nat_b.nat.remote && !nat_b.nat.local, "{nat_b:?}");
    assert_eq!(nat_b.remote, "203.0.113.1:14500".parse().unwrap());
    // Only the tunnel behind the NAT has a keepalive deadline, and B (not behind one) none.
    assert_eq!(p.a.keepalives.get(&primary()), Some(at(20)));
    assert_eq!(p.a.keepalives.get(&standby()), None);
    assert_eq!(p.b.keepalives.next(), None);

    // Idle for 20 s: one keepalive, from A's NAT-T socket to B's.
    p.a.on_timeout(at(20));
    let sent: Vec<Transmit> = std::iter::from_fn(|| p.a.poll_transmit()).collect();
    let keepalives: Vec<&Transmit> = sent.iter().filter(|t| t.payload == [0xFF]).collect();
    assert_eq!(keepalives.len(), 1, "{sent:?}");
    assert_eq!(keepalives[0].local, "192.0.2.1:4500".parse().unwrap());
    assert_eq!(keepalives[0].remote, "192.0.2.2:4500".parse().unwrap());
    assert_eq!(p.a.conn_stats("site-b").nat_keepalives, 1);
    assert_eq!(p.a.keepalives.get(&primary()), Some(at(40)));

    // Busy: ESP went out during the interval, so no keepalive is needed.
    let spi = p.a.sas().active_out(&primary()).unwrap();
    p.a.sas()
        .child(spi)
        .unwrap()
        .outbound
        .counters
        .get(0)
        .packet(100);
    p.a.on_timeout(at(40));
    assert!(std::iter::from_fn(|| p.a.poll_transmit()).all(|t| t.payload != [0xFF]));
    assert_eq!(p.a.conn_stats("site-b").nat_keepalives, 1);
    // Idle again: the next one goes.
    p.a.on_timeout(at(60));
    assert!(std::iter::from_fn(|| p.a.poll_transmit()).any(|t| t.payload == [0xFF]));
    assert_eq!(p.a.conn_stats("site-b").nat_keepalives, 2);

    // The NAT gives A another port; B's fast path reports ESP from it and B follows.
    let b_spi = p.b.sas().active_out(&b_primary).unwrap();
    let moved: SocketAddr = "203.0.113.1:24500".parse().unwrap();
    p.b.on_peer_moved(at(61), b_spi, moved);
    assert!(p.b.drain_events(at(61)), "the tables must be rebuilt");
    assert_eq!(p.b.sas().child(b_spi).unwrap().info.remote, moved);
    assert_eq!(p.b.conn_stats("site-a").peer_moves, 1);
    let tables = p.b.tables().unwrap();
    let (_, followed) = tables.inbound_followed(b_spi).unwrap();
    assert_eq!(followed, Some(&moved));
    assert!(tables.tunnels().iter().any(|t| t.remote == moved));
    // The same report again changes nothing.
    p.b.on_peer_moved(at(62), b_spi, moved);
    assert!(!p.b.drain_events(at(62)));
    assert_eq!(p.b.conn_stats("site-a").peer_moves, 1);

    // An authenticated IKE request (A's liveness probe) from yet another port moves B too
    // (RFC 7296 2.23), and the fast path's destination with it.
    let ike_a = p.a.tunnel(&primary()).unwrap().ike.unwrap();
    assert!(p.a.ep.probe(at(63), ike_a, Duration::from_secs(5)).unwrap());
    let again: SocketAddr = "203.0.113.1:34500".parse().unwrap();
    let mut requests = 0;
    while let Some(t) = p.a.poll_transmit() {
        p.b.on_ike_datagram(at(63), t.remote, again, &t.payload);
        requests += 1;
    }
    assert_eq!(requests, 1);
    assert!(p.b.drain_events(at(63)));
    assert_eq!(p.b.sas().child(b_spi).unwrap().info.remote, again);
    assert_eq!(p.b.conn_stats("site-a").peer_moves, 2);
    let reply = p.b.poll_transmit().expect("B answers the probe");
    assert_eq!(
        reply.remote, again,
        "the answer goes where the request came from"
    );
    // A datagram from elsewhere that does not authenticate (B's answer with its ICV
    // broken, sent back as if it came from A) moves nothing.
    let forged: SocketAddr = "198.51.100.66:4500".parse().unwrap();
    let mut junk = reply.payload.clone();
    *junk.last_mut().unwrap() ^= 1;
    p.b.on_ike_datagram(at(64), "192.0.2.2:4500".parse().unwrap(), forged, &junk);
    assert!(!p.b.drain_events(at(64)));
    assert_eq!(p.b.sas().child(b_spi).unwrap().info.remote, again);
}

/// Drives A of a [`nat_pair`] in 100 ms steps over `from..to` (ms after `base`), one
/// outbound ESP packet on the primary tunnel at each step in `busy`, and returns when (ms
/// after `base`) keepalives went out.
fn keepalive_times(
    p: &mut Pair,
    base: Instant,
    from: u64,
    to: u64,
    busy: std::ops::Range<u64>,
) -> Vec<u64> {
    let spi = p.a.sas().active_out(&primary()).unwrap();
    let mut times = Vec::new();
    for ms in (from..to).step_by(100) {
        let now = base + Duration::from_millis(ms);
        if busy.contains(&ms) {
            let sas = p.a.sas();
            sas.child(spi).unwrap().outbound.counters.get(0).packet(100);
        }
        p.a.on_timeout(now);
        while let Some(t) = p.a.poll_transmit() {
            if t.payload == [0xFF] {
                times.push(ms);
            }
        }
    }
    times
}

#[test]
fn behind_a_nat_the_first_keepalive_goes_one_interval_after_the_last_send() {
    let base = Instant::now();
    let mut p = nat_pair(base);
    // ESP every 100 ms from 3 s to 47.3 s, then silence until 120 s.
    let times = keepalive_times(&mut p, base, 100, 120_000, 3_000..47_400);
    let last_esp = 47_300;
    // None while ESP flows; the first one interval after the last packet, up to a tenth of
    // an interval (the busy look's step, 2 s) earlier and never later: the old look, once
    // per interval, sent it at 80 s, 32.7 s after the last packet, past a 30 s NAT timeout.
    let first = times[0];
    assert!(first > last_esp, "{times:?}");
    assert!(
        (last_esp + 20_000 - 2_000..=last_esp + 20_000).contains(&first),
        "first keepalive {first} ms, last ESP {last_esp} ms: {times:?}"
    );
    // Then one every interval while idle.
    assert_eq!(
        times,
        vec![first, first + 20_000, first + 40_000],
        "{times:?}"
    );
    assert_eq!(p.a.conn_stats("site-b").nat_keepalives, 3);

    // An IKE message A sends (a liveness probe, answered by B) counts as a send: the next
    // keepalive goes one interval after it, not at the idle tunnel's usual time.
    let probe_at = 121_000;
    assert!(
        probe_at < first + 60_000,
        "the probe comes before the next keepalive"
    );
    let now = base + Duration::from_millis(probe_at);
    p.a.on_timeout(now);
    assert!(std::iter::from_fn(|| p.a.poll_transmit()).all(|t| t.payload != [0xFF]));
    let ike_a = p.a.tunnel(&primary()).unwrap().ike.unwrap();
    assert!(p.a.ep.probe(now, ike_a, Duration::from_secs(5)).unwrap());
    p.settle_nat(now);
    let times = keepalive_times(&mut p, base, probe_at + 100, probe_at + 30_000, 0..0);
    assert_eq!(times, vec![probe_at + 20_000], "probe at {probe_at} ms");
}

// ---- Shared addresses (active-standby with keepalived): dormant tunnels ----

/// The shared address of gateway A's single tunnel.
const SHARED: &str = "192.0.2.1";

/// One tunnel 192.0.2.1 <-> 192.0.2.2 (A's side shares 192.0.2.1 when `shared`).
fn single(name: &str, me: &str, peer: &str, extra: &str, flip: bool, shared: bool) -> String {
    let (l, r) = if flip { ("2", "1") } else { ("1", "2") };
    let (lts, rts) = if flip {
        ("10.2.0.0/24", "10.1.0.0/24")
    } else {
        ("10.1.0.0/24", "10.2.0.0/24")
    };
    let gw = if shared {
        format!("{}shared_addresses = [\"{SHARED}\"]\n", gateway(4500))
    } else {
        gateway(4500)
    };
    format!(
        "{gw}[[connection]]\nname = \"{name}\"\nkeying = \"ike\"\nlocal_id = \"{me}\"\nremote_id = \"{peer}\"\n\
         psk = \"{PSK}\"\nlocal_ts = [\"{lts}\"]\nremote_ts = [\"{rts}\"]\n\
         ike_proposals = [\"aes256gcm16-prfsha256-x25519\"]\nesp_proposals = [\"aes256gcm16\"]\n{extra}\n\
         tunnels = [ {{ local = \"192.0.2.{l}\", remote = \"192.0.2.{r}\" }} ]\n"
    )
}

/// A (192.0.2.1 shared, absent until told) and B, one tunnel between them.
fn shared_pair(tag: &str, a_extra: &str) -> Pair {
    let (a, fa) = plane_of(
        &format!("{tag}-a"),
        &single(
            "site-b",
            "gw-a.example",
            "gw-b.example",
            a_extra,
            false,
            true,
        ),
    );
    let (b, fb) = plane_of(
        &format!("{tag}-b"),
        &single("site-a", "gw-b.example", "gw-a.example", "", true, false),
    );
    Pair {
        a,
        b,
        _files: (fa, fb),
    }
}

fn shared_ip() -> std::net::IpAddr {
    SHARED.parse().unwrap()
}

/// Datagrams a plane has queued, taken (they go nowhere).
fn outbox(p: &mut Plane) -> usize {
    std::iter::from_fn(|| p.poll_transmit()).count()
}

#[test]
fn dormant_tunnel_never_initiates() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = shared_pair("dormant", "close_action = \"restart\"\ndpd_interval = 2");
    let a = &mut p.a;
    // The address watch has not said the address is here: it counts as absent.
    assert!(a.is_dormant(shared_ip()));
    assert_eq!(
        a.shared_addresses(),
        [shared::SharedAddress {
            address: shared_ip(),
            present: false,
            changes: 0
        }]
    );
    a.start_tunnels(base);
    a.drain_events(base);
    assert_eq!(outbox(a), 0, "start_action start from an absent address");
    assert!(a.tunnel(&primary()).unwrap().ike.is_none());
    // The operator is told why.
    assert_eq!(
        a.initiate("site-b", at(10)).unwrap_err().to_string(),
        "connection 'site-b': shared address 192.0.2.1 is not on this host (the other gateway \
         holds it); its tunnels initiate when the address arrives"
    );
    assert_eq!(outbox(a), 0);
    // A restart that was due (as after a loss) neither initiates nor stays due.
    a.restarts.set(primary(), at(5000));
    a.on_timeout(at(5000));
    assert_eq!(outbox(a), 0);
    assert!(a.restarts.next().is_none());
    // Long after: still nothing, and nothing due.
    a.on_timeout(at(600_000));
    a.drain_events(at(600_000));
    assert_eq!(outbox(a), 0);
    assert!(a.tunnel(&primary()).unwrap().ike.is_none());
    // A rejoin on the standby does not wait for what only the master can bring up.
    assert_eq!(a.drain_ready(), (0, 0));
    // Another address is not dormant, shared or not.
    assert!(!a.is_dormant("192.0.2.2".parse().unwrap()));
    // News of an address that is not shared changes nothing.
    assert!(!a.set_address_present("192.0.2.2".parse().unwrap(), true, at(600_001)));
    assert_eq!(outbox(a), 0);
}

#[test]
fn address_arrival_initiates_with_initial_contact() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = shared_pair("arrival", "");
    // This host becomes master: the tunnel initiates at once.
    assert!(p.a.set_address_present(shared_ip(), true, base));
    assert!(!p.a.is_dormant(shared_ip()));
    assert!(p.a.tunnel(&primary()).unwrap().ike.is_some());
    p.settle(base);
    assert!(p.a.sas().is_sending(&primary()));
    assert_eq!(p.b.ike_sas().len(), 1);
    let first_on_b = p.b.ike_sas()[0].id;
    // It loses the address (abandoning its SAs in silence: B keeps its side, stale), and
    // gets it back, as a gateway that was master, then standby, then master again would. The
    // new IKE SA's INITIAL_CONTACT makes B drop the stale one: B has exactly one IKE SA, the
    // new one (without INITIAL_CONTACT it would keep both, `unique = "no"`).
    assert!(p.a.set_address_present(shared_ip(), false, at(1000)));
    p.settle(at(1000));
    assert_eq!(p.b.ike_sas().len(), 1);
    assert_eq!(p.b.ike_sas()[0].id, first_on_b, "B heard of the loss");
    assert!(p.a.set_address_present(shared_ip(), true, at(2000)));
    p.settle(at(2000));
    assert!(p.a.sas().is_sending(&primary()));
    let on_b = p.b.ike_sas();
    assert_eq!(on_b.len(), 1, "B kept the stale IKE SA: no INITIAL_CONTACT");
    assert_ne!(on_b[0].id, first_on_b);
    assert!(on_b[0].established);
    assert_eq!(
        p.a.shared_addresses()[0],
        shared::SharedAddress {
            address: shared_ip(),
            present: true,
            changes: 3
        }
    );
    // The same news twice is no news.
    assert!(!p.a.set_address_present(shared_ip(), true, at(3000)));
    assert_eq!(outbox(&mut p.a), 0);
}

#[test]
fn address_loss_abandons_without_sending() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = shared_pair("loss", "close_action = \"restart\"\ndpd_interval = 2");
    p.a.set_address_present(shared_ip(), true, base);
    p.settle(base);
    assert!(p.a.sas().is_sending(&primary()));
    assert_eq!(p.a.ike_sas().len(), 1);
    // The address goes (keepalived moved it): the SAs are forgotten, the tunnel is dormant.
    assert!(p.a.set_address_present(shared_ip(), false, at(1000)));
    assert!(p.a.drain_events(at(1000)), "the tables must lose the SA");
    assert_eq!(
        outbox(&mut p.a),
        0,
        "a DELETE (or anything) left after the loss"
    );
    assert!(p.a.ike_sas().is_empty());
    assert!(!p.a.sas().is_sending(&primary()));
    let st = p.a.tunnel(&primary()).unwrap();
    assert!(st.ike.is_none() && st.established_at.is_none() && !st.held);
    // The CHILD_SA retires at once, not after the usual grace.
    assert_eq!(p.a.sas().next_retirement(), Some(at(1000)));
    p.a.on_timeout(at(1000));
    assert!(p.a.sas().children_of(&primary()).next().is_none());
    // Not the peer's fault: no restart, despite close_action = "restart"; no DPD, no
    // retransmission, for as long as the address is away.
    assert!(p.a.restarts.next().is_none());
    for s in [2, 5, 10, 60, 600] {
        p.a.on_timeout(at(1000 + s * 1000));
        p.a.drain_events(at(1000 + s * 1000));
        assert_eq!(outbox(&mut p.a), 0, "sent {s} s after the loss");
    }
    // B heard nothing.
    assert_eq!(p.b.ike_sas().len(), 1);
}

#[test]
fn trap_on_dormant_tunnel_is_dropped_and_counted() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = shared_pair("trap-dormant", "start_action = \"trap\"");
    let a = &mut p.a;
    assert!(a.tunnel(&primary()).unwrap().trapped);
    // Dormant: the fast path's tables carry no trap, so its packets are dropped as `no_sa`
    // without reporting to the control plane.
    let t = a.tables().unwrap();
    assert_eq!(t.tunnels().len(), 1);
    assert!(t.tunnels()[0].outbound.is_none());
    assert!(t.tunnels()[0].trap.is_none());
    // A report that raced the tables is dropped and counted, never an initiation.
    a.on_acquire(0, base);
    a.on_acquire(0, at(300));
    assert_eq!(outbox(a), 0);
    assert!(a.tunnel(&primary()).unwrap().ike.is_none());
    assert_eq!(a.ignored_acquires(), 2);
    // The address arrives: the trap is back in the tables, and the next packet initiates.
    assert!(a.set_address_present(shared_ip(), true, at(1000)));
    assert!(a.drain_events(at(1000)));
    assert_eq!(outbox(a), 0, "a trapped tunnel waits for traffic");
    assert!(a.tables().unwrap().tunnels()[0].trap.is_some());
    a.on_acquire(0, at(1100));
    assert_eq!(outbox(a), 1, "IKE_SA_INIT");
    assert_eq!(a.ignored_acquires(), 2);
}

/// Visits of `select` (connections whose traffic was decided) while `f` runs.
fn visits(p: &mut Plane, f: impl FnOnce(&mut Plane)) -> u64 {
    let before = p.select_visits;
    f(p);
    p.select_visits - before
}

/// One connection among `n` goes down (its peer deletes its IKE SA) and comes back after the
/// restart delay: how many connections A decided again, and A's plane checked against scans.
fn one_down_and_up_again(n: usize) -> (u64, u64) {
    let mut now = Instant::now();
    let (mut a, mut b, _fa, _fb) = super::bench::all_up(n, &format!("dirty{n}"), &mut now);
    a.check_ike_index();
    let i = n / 2;
    let key = a.specs()[i].key();
    let name = format!("s{i}");
    b.terminate(&format!("h{i}"), now).unwrap();
    let down = visits(&mut a, |a| {
        // A hears the deletes and drains their events.
        crate::testutil::settle(a, &mut b, now);
    });
    assert!(!a.sas().is_sending(&key));
    assert_eq!(a.selection(&name).unwrap().active, Vec::<TunnelKey>::new());
    assert!(a.tunnel(&key).unwrap().ike.is_none());
    a.check_ike_index();
    now += super::tunnels::RESTART_DELAY;
    let up = visits(&mut a, |a| {
        a.on_timeout(now);
        crate::testutil::settle(a, &mut b, now);
    });
    assert!(a.sas().is_sending(&key), "{name} is up again");
    assert_eq!(a.selection(&name).unwrap().active, vec![key]);
    a.check_ike_index();
    // Every other connection kept its tunnel.
    for s in a.specs() {
        assert!(a.sas().is_sending(&s.key()));
        assert_eq!(a.selection(&s.conn).unwrap().active, vec![s.key()]);
    }
    (down, up)
}

#[test]
fn an_event_decides_only_its_own_connections_traffic_again() {
    // The same work among 4 connections as among 60: only the one that changed is decided
    // again, never every connection.
    let small = one_down_and_up_again(4);
    let large = one_down_and_up_again(60);
    assert_eq!(
        small, large,
        "work per event does not grow with the connections"
    );
    let (down, up) = large;
    assert!((1..=2).contains(&down), "down: {down} connections decided");
    assert!((1..=2).contains(&up), "up: {up} connections decided");
}

#[test]
fn start_and_rejoin_decide_every_connection_again() {
    let n = 6;
    let mut now = Instant::now();
    let (mut a, mut b, _fa, _fb) = super::bench::all_up(n, "dirtyall", &mut now);
    // A drain and a rejoin: every connection starts again and is decided again, once each
    // batch of changes.
    a.drain_close(now);
    crate::testutil::settle(&mut a, &mut b, now);
    assert!(a.specs().iter().all(|s| !a.sas().is_sending(&s.key())));
    now += Duration::from_secs(1);
    a.drain_release(now);
    assert!(a.dirty_all, "a rejoin decides every connection again");
    let v = visits(&mut a, |a| crate::testutil::settle(a, &mut b, now));
    assert!(!a.dirty_all && a.dirty.is_empty());
    assert!(
        v >= n as u64,
        "every connection decided after the rejoin: {v}"
    );
    for s in a.specs() {
        assert!(a.sas().is_sending(&s.key()));
        assert_eq!(a.selection(&s.conn).unwrap().active, vec![s.key()]);
    }
    // Nothing changed since: a quiet drain decides nothing.
    assert_eq!(visits(&mut a, |a| assert!(!a.drain_events(now))), 0);
}

#[test]
fn due_restarts_start_only_their_own_tunnels() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let mut p = Pair::up("due", "", "", base);
    p.b.terminate("site-a", at(1000)).unwrap();
    p.settle(at(1000));
    assert_eq!(p.a.restarts.get(&primary()), Some(at(6000)));
    // The primary's restart moved later: only the standby is due at 6 s.
    p.a.restarts.set(primary(), at(9000));
    p.a.on_timeout(at(6000));
    assert!(p.a.tunnel(&standby()).unwrap().ike.is_some());
    assert!(p.a.tunnel(&primary()).unwrap().ike.is_none());
    assert_eq!(p.a.restarts.get(&primary()), Some(at(9000)));
    assert!(p.a.restarts.get(&standby()).is_none());
    p.settle(at(6000));
    assert!(p.a.sas().is_sending(&standby()));
    p.a.on_timeout(at(9000));
    assert!(p.a.restarts.next().is_none());
    p.settle(at(9000));
    assert!(p.a.sas().is_sending(&primary()));
}
