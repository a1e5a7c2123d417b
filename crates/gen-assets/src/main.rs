//! `ironsec-gen-assets OUT_DIR`: writes the man pages, shell completions and packaged systemd
//! unit (see the library's doc) under OUT_DIR. `packaging/build-deb.sh` runs it before
//! `cargo deb`, whose asset list takes the files from there.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ironsec-gen-assets",
    version = ironsecd::cli::VERSION,
    about = "generate ironsec's man pages, shell completions and packaged systemd unit"
)]
struct Args {
    /// Directory to write man/, completions/ and systemd/ into (created if missing).
    out_dir: PathBuf,
    /// The source tree's unit, from which the packaged one is made.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../systemd/ironsecd.service"))]
    unit: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match ironsec_gen_assets::write_all(&args.out_dir, &args.unit) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ironsec-gen-assets: {e}");
            ExitCode::FAILURE
        }
    }
}
