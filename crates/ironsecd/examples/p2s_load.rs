//! A remote-access load client (issue 24, slice S9): N EAP-MSCHAPv2 clients from one process,
//! one address and one pair of UDP ports (500 and 4500), as N laptops behind one NAT look to a
//! gateway. It is ironsec's own sans-IO IKE engine playing the clients (one `Endpoint` with a
//! `PeerConfig` per client: `vip = Request`, `LocalAuth::EapMschapv2`), because Debian's
//! strongSwan has no load-tester plugin. netns-scripts/p2s-scale.sh runs it against ironsecd.
//!
//! Client i (0-based, from --first) is EAP user `<prefix><i>` with IKE identity
//! `<prefix><i>@p2s.example`, and all share one password (read from --password-file, as
//! strongSwan's load-tester shares one `eap_password`). Each asks for a virtual IP and one
//! CHILD_SA (TSi 0.0.0.0/0, TSr --remote-ts) and checks the gateway's certificate against
//! --ca and --gateway-id.
//!
//! Phases, with progress on stderr and one JSON line per phase on stdout:
//!   setup  clients started at --rate a second (0: all at once); done when every client has
//!          its virtual IP and its CHILD_SA, or failed, or --timeout s passed. Reported: up,
//!          failed (and the first failure reasons), setup time and rate, each client's own
//!          setup time (median, 95th percentile, max), retransmissions, cookies met.
//!   hold   the clients stay up, the engine answering the gateway's DPD, until SIGTERM or
//!          SIGINT or --hold s; clients lost meanwhile are counted.
//!   done   every client's IKE SA deleted (INFORMATIONAL DELETE), bounded to 20 s: reported
//!          deleted, messages received during the hold.
//! Exit status: 0 when every client came up and none was lost, 1 otherwise, 2 on bad usage.
//!
//! Build: `cargo build --release --locked -p ironsecd --example p2s_load`.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ironsec_ike::config::VipRole;
use ironsec_ike::crypto::SystemRng;
use ironsec_ike::eap::nthash;
use ironsec_ike::pki::{Certificate, TrustStore};
use ironsec_ike::{
    CloseReason, Endpoint, EndpointConfig, Event, Identity, IkeSaId, LocalAuth, PeerConfig,
    PeerTrust, RemoteAuth,
};

const USAGE: &str = "usage: p2s_load --gateway IP --local IP --ca FILE --gateway-id ID \
--password-file FILE [--clients N] [--first K] [--user-prefix P] [--rate R] [--timeout S] \
[--hold S] [--remote-ts CIDR,...] [--ike PROPOSAL] [--esp PROPOSAL]";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Args {
    gateway: Ipv4Addr,
    local: Ipv4Addr,
    ca: String,
    gateway_id: String,
    password_file: String,
    clients: usize,
    first: usize,
    prefix: String,
    rate: f64,
    timeout: f64,
    hold: f64,
    remote_ts: Vec<String>,
    ike: String,
    esp: String,
}

fn usage(msg: &str) -> ! {
    eprintln!("p2s_load: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        gateway: Ipv4Addr::UNSPECIFIED,
        local: Ipv4Addr::UNSPECIFIED,
        ca: String::new(),
        gateway_id: String::new(),
        password_file: String::new(),
        clients: 1000,
        first: 0,
        prefix: "user".into(),
        rate: 0.0,
        timeout: 300.0,
        hold: 3600.0,
        remote_ts: vec!["0.0.0.0/0".into()],
        ike: "aes128gcm16-prfsha256-x25519".into(),
        esp: "aes128gcm16".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "-h" || k == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it
            .next()
            .unwrap_or_else(|| usage(&format!("{k} needs a value")));
        let bad = |what: &str| -> ! { usage(&format!("{k}: '{v}' is not {what}")) };
        match k.as_str() {
            "--gateway" => a.gateway = v.parse().unwrap_or_else(|_| bad("an IPv4 address")),
            "--local" => a.local = v.parse().unwrap_or_else(|_| bad("an IPv4 address")),
            "--ca" => a.ca = v,
            "--gateway-id" => a.gateway_id = v,
            "--password-file" => a.password_file = v,
            "--clients" => {
                a.clients = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=65536).contains(n))
                    .unwrap_or_else(|| bad("1..65536"))
            }
            "--first" => a.first = v.parse().unwrap_or_else(|_| bad("a number")),
            "--user-prefix" => a.prefix = v,
            "--rate" => {
                a.rate = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| *r >= 0.0)
                    .unwrap_or_else(|| bad("a rate >= 0"))
            }
            "--timeout" => {
                a.timeout = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| *r > 0.0)
                    .unwrap_or_else(|| bad("seconds > 0"))
            }
            "--hold" => {
                a.hold = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| *r >= 0.0)
                    .unwrap_or_else(|| bad("seconds >= 0"))
            }
            "--remote-ts" => a.remote_ts = v.split(',').map(str::to_string).collect(),
            "--ike" => a.ike = v,
            "--esp" => a.esp = v,
            _ => usage(&format!("unknown option '{k}'")),
        }
    }
    if a.gateway.is_unspecified() || a.local.is_unspecified() {
        usage("--gateway and --local are required");
    }
    if a.ca.is_empty() || a.gateway_id.is_empty() || a.password_file.is_empty() {
        usage("--ca, --gateway-id and --password-file are required");
    }
    a
}

fn selector(s: &str) -> ironsec_ike::wire::TrafficSelector {
    let (a, l) = s
        .split_once('/')
        .unwrap_or_else(|| usage(&format!("'{s}' is not a prefix (a.b.c.d/len)")));
    let a: IpAddr = a
        .parse()
        .unwrap_or_else(|_| usage(&format!("'{s}' is not a prefix")));
    let l: u8 = l
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .unwrap_or_else(|| usage(&format!("'{s}' is not a prefix")));
    ironsec_ike::ts::from_prefix(a, l)
}

/// One client's progress.
#[derive(Default, Clone)]
struct Client {
    started: Option<Instant>,
    vip: Option<Ipv4Addr>,
    child: bool,
    up_at: Option<Instant>,
    failed: bool,
    lost: bool,
    deleted: bool,
}

impl Client {
    fn up(&self) -> bool {
        self.up_at.is_some() && !self.lost && !self.failed
    }
}

struct Load {
    ep: Endpoint,
    s500: UdpSocket,
    s4500: UdpSocket,
    clients: Vec<Client>,
    by_ike: HashMap<IkeSaId, usize>,
    up: usize,
    failed: usize,
    lost: usize,
    deleted: usize,
    reasons: HashMap<String, usize>,
    esp_ignored: u64,
    send_errors: u64,
    deleting: bool,
}

fn bind(ip: Ipv4Addr, port: u16) -> UdpSocket {
    let s = UdpSocket::bind((ip, port)).unwrap_or_else(|e| {
        eprintln!("p2s_load: cannot bind {ip}:{port}: {e}");
        std::process::exit(1)
    });
    s.set_nonblocking(true).expect("nonblocking");
    // Room for a burst of answers to every client at once.
    let size: libc::c_int = 8 << 20;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a valid socket and a pointer to an int of the size given.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    s
}

impl Load {
    fn reason(&mut self, r: String) {
        *self.reasons.entry(r).or_default() += 1;
    }

    fn flush(&mut self, now: Instant) {
        while let Some(t) = self.ep.poll_transmit() {
            let s = if t.local.port() == 4500 {
                &self.s4500
            } else {
                &self.s500
            };
            if s.send_to(&t.payload, t.remote).is_err() {
                // The engine retransmits requests; a lost answer is asked for again.
                self.send_errors += 1;
            }
        }
        while let Some(e) = self.ep.poll_event() {
            self.event(now, e);
        }
    }

    fn event(&mut self, now: Instant, e: Event) {
        match e {
            Event::VirtualIp {
                ike,
                addresses,
                to_peer: false,
                ..
            } => {
                let v4 = addresses.iter().find_map(|a| match a {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                });
                if let (Some(&i), Some(v4)) = (self.by_ike.get(&ike), v4) {
                    self.clients[i].vip = Some(v4);
                    self.check_up(i, now);
                }
            }
            Event::ChildSaUp { ike, .. } => {
                if let Some(&i) = self.by_ike.get(&ike) {
                    self.clients[i].child = true;
                    self.check_up(i, now);
                }
            }
            Event::IkeSaRekeyed { old, new, .. } => {
                if let Some(i) = self.by_ike.remove(&old) {
                    self.by_ike.insert(new, i);
                }
            }
            Event::ChildSaRefused { ike, notify, .. } => {
                if let Some(&i) = self.by_ike.get(&ike) {
                    if !self.clients[i].failed && self.clients[i].up_at.is_none() {
                        self.clients[i].failed = true;
                        self.failed += 1;
                        self.reason(format!("CHILD_SA refused: {notify}"));
                    }
                }
            }
            Event::Failure { notify, detail, .. } => {
                let mut d = detail;
                d.truncate(120);
                self.reason(format!("{notify}: {d}"));
            }
            Event::IkeSaDown { ike, reason, .. } => {
                let Some(i) = self.by_ike.remove(&ike) else {
                    return;
                };
                let c = &mut self.clients[i];
                if self.deleting && matches!(reason, CloseReason::Local) {
                    c.deleted = true;
                    self.deleted += 1;
                } else if c.up_at.is_some() && !c.lost {
                    c.lost = true;
                    self.lost += 1;
                    self.up -= 1;
                    self.reason(format!("lost after setup: {reason}"));
                } else if !c.failed && c.up_at.is_none() {
                    c.failed = true;
                    self.failed += 1;
                    self.reason(format!("IKE SA down before setup: {reason}"));
                }
            }
            _ => {}
        }
    }

    fn check_up(&mut self, i: usize, now: Instant) {
        let c = &mut self.clients[i];
        if c.vip.is_some() && c.child && c.up_at.is_none() && !c.failed {
            c.up_at = Some(now);
            self.up += 1;
        }
    }

    /// Reads what both sockets hold and hands the IKE messages to the engine.
    fn receive(&mut self, now: Instant) {
        let mut buf = vec![0u8; 65536];
        for natt in [false, true] {
            loop {
                let (s, port) = if natt {
                    (&self.s4500, 4500)
                } else {
                    (&self.s500, 500)
                };
                let (n, from) = match s.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(_) => break,
                };
                let d = &buf[..n];
                // On 4500 only IKE (the non-ESP marker) goes to the engine: ESP and NAT
                // keepalives from the gateway are counted and dropped.
                if natt && (n < 4 || d[..4] != [0, 0, 0, 0]) {
                    self.esp_ignored += 1;
                    continue;
                }
                let local = SocketAddr::new(IpAddr::V4(self.local_ip()), port);
                self.ep.handle(now, local, from, d);
                self.flush(now);
            }
        }
    }

    fn local_ip(&self) -> Ipv4Addr {
        match self.s500.local_addr() {
            Ok(SocketAddr::V4(a)) => *a.ip(),
            _ => Ipv4Addr::UNSPECIFIED,
        }
    }

    /// Waits for a datagram or until `deadline` (at most 50 ms), then does what is due.
    fn step(&mut self, deadline: Option<Instant>) {
        let now = Instant::now();
        let mut wait = Duration::from_millis(50);
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(now));
        }
        if let Some(t) = self.ep.poll_timeout() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        let mut fds = [
            libc::pollfd {
                fd: self.s500.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.s4500.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = wait.as_millis().min(50) as libc::c_int;
        // SAFETY: two valid pollfds in a live array of that length.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        let now = Instant::now();
        self.receive(now);
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
            self.flush(now);
        }
    }

    fn active(&self) -> usize {
        self.by_ike.len()
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn main() {
    let a = parse_args();
    let password = std::fs::read_to_string(&a.password_file)
        .unwrap_or_else(|e| usage(&format!("{}: {e}", a.password_file)));
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        usage("the password file is empty");
    }
    let hash = nthash(password);
    let ca = std::fs::read(&a.ca)
        .ok()
        .and_then(|b| Certificate::all_from_pem_or_der(&b).ok())
        .unwrap_or_else(|| usage(&format!("{}: no certificate", a.ca)));
    let trust = Arc::new(PeerTrust {
        store: Arc::new(TrustStore::new(ca, Vec::new())),
        pinned: None,
    });
    let ike: Vec<_> = a
        .ike
        .split(',')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| usage(&format!("bad IKE proposal '{p}'")))
        })
        .collect();
    let esp: Vec<_> = a
        .esp
        .split(',')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| usage(&format!("bad ESP proposal '{p}'")))
        })
        .collect();
    let remote_ts: Vec<_> = a.remote_ts.iter().map(|s| selector(s)).collect();
    let peers: Vec<PeerConfig> = (0..a.clients)
        .map(|k| {
            let user = format!("{}{}", a.prefix, a.first + k);
            PeerConfig {
                name: format!("c{k}").into(),
                local_id: Identity::parse(&format!("{user}@p2s.example")),
                remote_id: Identity::parse(&a.gateway_id),
                local_auth: LocalAuth::EapMschapv2 {
                    user,
                    hash: hash.clone(),
                },
                remote_auth: RemoteAuth::Pubkey(trust.clone()),
                ike_proposals: ike.clone(),
                esp_proposals: esp.clone(),
                local_ts: vec![selector("0.0.0.0/0")],
                remote_ts: remote_ts.clone(),
                remote_addrs: Vec::new(),
                retransmit: Default::default(),
                lifetimes: Default::default(),
                // The gateway checks liveness; the clients only answer.
                dpd_interval: None,
                force_encap: true,
                vip: VipRole::Request(ironsec_ike::config::VipRequest::V4),
                unique: Default::default(),
            }
        })
        .collect();
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let ep = Endpoint::new(EndpointConfig::default(), peers, Box::new(SystemRng::new()));
    let mut l = Load {
        ep,
        s500: bind(a.local, 500),
        s4500: bind(a.local, 4500),
        clients: vec![Client::default(); a.clients],
        by_ike: HashMap::new(),
        up: 0,
        failed: 0,
        lost: 0,
        deleted: 0,
        reasons: HashMap::new(),
        esp_ignored: 0,
        send_errors: 0,
        deleting: false,
    };
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let t0 = Instant::now();
    l.ep.set_wall_clock(t0, unix);
    let local500 = SocketAddr::new(IpAddr::V4(a.local), 500);
    let remote500 = SocketAddr::new(IpAddr::V4(a.gateway), 500);
    eprintln!(
        "p2s_load: {} clients ({}{}..) from {} to {} at {}",
        a.clients,
        a.prefix,
        a.first,
        a.local,
        a.gateway,
        if a.rate > 0.0 {
            format!("{} a second", a.rate)
        } else {
            "once".into()
        }
    );

    // Setup.
    let deadline = t0 + Duration::from_secs_f64(a.timeout);
    let mut next = 0usize;
    let mut last_report = t0;
    while l.up + l.failed < a.clients && !STOP.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        // Start every client whose turn has come.
        while next < a.clients {
            let at = if a.rate > 0.0 {
                t0 + Duration::from_secs_f64(next as f64 / a.rate)
            } else {
                t0
            };
            if at > now {
                break;
            }
            match l.ep.initiate(now, &format!("c{next}"), local500, remote500) {
                Ok(id) => {
                    l.by_ike.insert(id, next);
                    l.clients[next].started = Some(now);
                }
                Err(e) => {
                    l.clients[next].failed = true;
                    l.failed += 1;
                    l.reason(format!("initiate: {e}"));
                }
            }
            next += 1;
            // Answers to the first ones are read while the rest start.
            if next.is_multiple_of(64) {
                l.flush(now);
                l.receive(Instant::now());
            }
        }
        l.flush(now);
        let next_start = (next < a.clients && a.rate > 0.0)
            .then(|| t0 + Duration::from_secs_f64(next as f64 / a.rate));
        l.step(next_start.map_or(Some(deadline), |n| Some(n.min(deadline))));
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "p2s_load: {:.1} s: started {next}, up {}, failed {}",
                t0.elapsed().as_secs_f64(),
                l.up,
                l.failed
            );
        }
    }
    let setup_end = l.clients.iter().filter_map(|c| c.up_at).max().unwrap_or(t0);
    let setup = setup_end.saturating_duration_since(t0);
    let mut each: Vec<f64> = l
        .clients
        .iter()
        .filter_map(|c| Some(c.up_at?.saturating_duration_since(c.started?).as_secs_f64()))
        .collect();
    each.sort_by(f64::total_cmp);
    let stats = l.ep.stats();
    let rate = if setup.as_secs_f64() > 0.0 {
        l.up as f64 / setup.as_secs_f64()
    } else {
        0.0
    };
    let mut reasons: Vec<_> = l.reasons.iter().collect();
    reasons.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
    let reasons_json = reasons
        .iter()
        .take(5)
        .map(|(r, n)| format!("{{\"reason\":{},\"count\":{n}}}", json_str(r)))
        .collect::<Vec<_>>()
        .join(",");
    let first_vip = l.clients.first().and_then(|c| c.vip);
    let last_vip = l.clients.last().and_then(|c| c.vip);
    let vip_json = |v: Option<Ipv4Addr>| v.map_or("null".to_string(), |v| json_str(&v.to_string()));
    println!(
        "{{\"phase\":\"setup\",\"clients\":{},\"started\":{next},\"up\":{},\"failed\":{},\"setup_secs\":{},\"setup_per_sec\":{:.1},\"client_setup_median_secs\":{:.3},\"client_setup_p95_secs\":{:.3},\"client_setup_max_secs\":{:.3},\"requests_sent\":{},\"retransmits_sent\":{},\"received\":{},\"send_errors\":{},\"first_vip\":{},\"last_vip\":{},\"reasons\":[{reasons_json}]}}",
        a.clients,
        l.up,
        l.failed,
        secs(setup),
        rate,
        percentile(&each, 0.5),
        percentile(&each, 0.95),
        percentile(&each, 1.0),
        stats.requests_sent,
        stats.retransmits_sent,
        stats.received,
        l.send_errors,
        vip_json(first_vip),
        vip_json(last_vip),
    );
    let _ = std::io::stdout().flush();
    eprintln!(
        "p2s_load: setup: {} of {} up in {:.3} s ({rate:.1}/s), {} failed",
        l.up,
        a.clients,
        setup.as_secs_f64(),
        l.failed
    );
    let setup_ok = l.up == a.clients;

    // Hold: answer the gateway (DPD) until told to stop.
    let hold_start = Instant::now();
    let received0 = l.ep.stats().received;
    let hold_until = hold_start + Duration::from_secs_f64(a.hold);
    while !STOP.load(Ordering::SeqCst) && Instant::now() < hold_until {
        l.step(Some(hold_until));
    }
    let hold = hold_start.elapsed();
    let received_hold = l.ep.stats().received - received0;
    let still_up = l.clients.iter().filter(|c| c.up()).count();

    // Delete every IKE SA.
    l.deleting = true;
    let now = Instant::now();
    let ids: Vec<IkeSaId> = l.by_ike.keys().copied().collect();
    for id in ids {
        let _ = l.ep.terminate(now, id);
    }
    l.flush(now);
    let del_deadline = Instant::now() + Duration::from_secs(20);
    while l.active() > 0 && Instant::now() < del_deadline {
        l.step(Some(del_deadline));
    }
    let del = now.elapsed();
    println!(
        "{{\"phase\":\"done\",\"hold_secs\":{},\"up_at_end_of_hold\":{still_up},\"lost\":{},\"received_during_hold\":{received_hold},\"esp_ignored\":{},\"deleted\":{},\"delete_secs\":{},\"not_deleted\":{}}}",
        secs(hold),
        l.lost,
        l.esp_ignored,
        l.deleted,
        secs(del),
        l.active(),
    );
    let _ = std::io::stdout().flush();
    eprintln!(
        "p2s_load: held {:.1} s ({} still up, {} lost, {received_hold} messages received); deleted {} in {:.3} s",
        hold.as_secs_f64(),
        still_up,
        l.lost,
        l.deleted,
        del.as_secs_f64()
    );
    std::process::exit(if setup_ok && l.lost == 0 { 0 } else { 1 });
}
