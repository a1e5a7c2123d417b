//! `ironsec-gen-assets OUT_DIR [--maintainer 'Name <email>' --date "$(date -R)"]`: writes the
//! man pages, shell completions, packaged systemd unit and (with the two options) the Debian
//! changelog under OUT_DIR (see the library's doc). `packaging/build-deb.sh` runs it before
//! `cargo deb`, whose asset list takes the files from there; a source install can take the man
//! pages and completions from it too.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ironsec_gen_assets::Changelog;

#[derive(Parser)]
#[command(
    name = "ironsec-gen-assets",
    version = ironsecd::cli::VERSION,
    about = "generate ironsec's man pages, shell completions, packaged systemd unit and changelog"
)]
struct Args {
    /// Directory to write man/, completions/, systemd/ and changelog into (created if missing).
    out_dir: PathBuf,
    /// The source tree's unit, from which the packaged one is made.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../systemd/ironsecd.service"))]
    unit: PathBuf,
    /// Package version for the changelog; must be what `cargo deb --deb-version` is given.
    #[arg(long, default_value = concat!(env!("CARGO_PKG_VERSION"), "-1"))]
    deb_version: String,
    /// Who builds the package, `Full Name <email>`: with --date, also writes the Debian
    /// changelog naming this maintainer (packaging/build-deb.sh passes both).
    #[arg(long, requires = "date")]
    maintainer: Option<String>,
    /// Changelog date, RFC 2822 (`date -R`).
    #[arg(long, requires = "maintainer")]
    date: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let changelog = match (args.maintainer, args.date) {
        (Some(maintainer), Some(date)) => Some(Changelog {
            deb_version: args.deb_version,
            maintainer,
            date,
        }),
        _ => None,
    };
    match ironsec_gen_assets::write_all(&args.out_dir, &args.unit, changelog.as_ref()) {
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
