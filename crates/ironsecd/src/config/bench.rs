//! What loading and validating a config of many `conf.d` fragments costs (what `ironsecd
//! check` and every reload do). Measure with
//! `IRONSEC_CONFIG_BENCH_SIZES=1000,5000,10000 cargo test -p ironsecd --release --lib
//! config::bench -- --nocapture`; it prints times and asserts only that every connection
//! loaded. The suite runs it at 100 connections. The first load parses every fragment (what
//! `ironsecd check` and a start do); the second finds them unchanged (what a reload does).

use std::time::Instant;

use super::fixtures::{hub, sizes, TempDir};
use super::{load, validate, Config, Examples};

#[test]
fn load_cost() {
    for n in sizes("IRONSEC_CONFIG_BENCH_SIZES", &[100]) {
        let d = TempDir::new("config-bench");
        let main = hub(&d.0, n);
        let t = Instant::now();
        let mut errs = Vec::new();
        let loaded = load::load(&main, Vec::new(), &mut errs);
        let read = t.elapsed();
        let t = Instant::now();
        let cfg = validate(&main, loaded, errs, Examples::Accept).unwrap_or_else(|e| panic!("{e}"));
        let validated = t.elapsed();
        assert_eq!(cfg.connections.len(), n);
        let t = Instant::now();
        let again = Config::load_for_check_with_env(&main, Vec::new()).unwrap();
        let whole = t.elapsed();
        assert_eq!(again.connections.len(), n);
        // What the fragment cache keeps per connection, besides the heap its strings use.
        let kept = std::mem::size_of::<super::load::SourcedConnection>();
        println!("{n:>6} connections: {kept} bytes kept per connection by the fragment cache (inline part)");
        println!(
            "{n:>6} connections in {n} fragments: read+parse {read:>10.1?}  validate {validated:>10.1?}  load again, every fragment unchanged {whole:>10.1?}"
        );
    }
}
