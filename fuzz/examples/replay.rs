//! Replays one `ike_responder` input outside libFuzzer and prints what the responder did:
//! `cargo run --example replay -- FILE` (for reading crash inputs).

use ironsec_fuzz::{frames, Responder, FINAL_TIMEOUTS};

fn main() {
    let path = std::env::args().nth(1).expect("usage: replay FILE");
    let data = std::fs::read(path).unwrap();
    let mut r = Responder::new();
    let start = r.now;
    let show = |r: &mut Responder, label: String| {
        println!("{label}");
        while let Some(t) = r.ep.poll_transmit() {
            println!(
                "  send {} -> {}: {} bytes {:02x?}",
                t.local,
                t.remote,
                t.payload.len(),
                &t.payload[..t.payload.len().min(40)]
            );
        }
        while let Some(e) = r.ep.poll_event() {
            println!("  event {e:?}");
        }
    };
    for (i, (ctl, d)) in frames(&data).enumerate() {
        r.now += ironsec_fuzz::advance(ctl);
        if !d.is_empty() {
            let (l, rem) = Responder::addrs(ctl);
            r.ep.handle(r.now, l, rem, d);
        }
        let label = format!(
            "frame {i}: ctl {ctl:#04x}, {} bytes, t+{:?} handled",
            d.len(),
            r.now - start
        );
        show(&mut r, label);
        r.ep.handle_timeout(r.now);
        let label = format!(
            "frame {i}: after handle_timeout; stats {:?}; SAs {:?}",
            r.ep.stats(),
            r.ep.ike_sas()
                .iter()
                .map(|s| (s.id, s.local, s.remote, s.established))
                .collect::<Vec<_>>()
        );
        show(&mut r, label);
    }
    for _ in 0..FINAL_TIMEOUTS {
        let Some(t) = r.ep.poll_timeout() else { break };
        r.now = r.now.max(t);
        r.ep.handle_timeout(r.now);
        let label = format!("timeout at t+{:?}", r.now - start);
        show(&mut r, label);
    }
}
