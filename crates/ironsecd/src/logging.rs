//! Log setup: tracing to stderr (journald picks it up under systemd). The level comes from
//! `IRONSEC_LOG` (tracing's filter syntax), default `info`.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IRONSEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
