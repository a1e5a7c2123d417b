//! What the Debian package (and any other install) ships besides the binaries, generated from
//! the sources that define it, so none of it is written twice:
//!
//! - man pages (section 8) from the clap definitions in `ironsecd::cli` ([`man_pages`]): one
//!   per binary with the FILES, ENVIRONMENT, SIGNALS and EXIT STATUS sections `--help` prints
//!   too, and one per subcommand (`ironsecd-check.8`, `ironsecctl-status.8`, ...), which the
//!   binary's page lists as `ironsecd-check(8)` the way clap_mangen renders subcommands;
//! - bash, zsh and fish completions from the same definitions ([`completions`]);
//! - the packaged systemd unit from `systemd/ironsecd.service` ([`packaged_unit`]).
//!
//! A crate of its own rather than code in ironsecd: clap_mangen, clap_complete and roff are
//! then never linked into the daemon or ironsecctl, and generating needs no dev-dependencies
//! (ARCHITECTURE.md, "Packaging").

use std::io;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Inline, Roff};
use clap_mangen::Man;
use ironsecd::cli::{Section, CTL_SECTIONS, DAEMON_SECTIONS};

/// Where the binaries go in the package (and so what the packaged unit runs).
pub const PACKAGE_BIN_DIR: &str = "/usr/sbin";
/// Where the source install puts them (`cargo install --root /usr/local`): what
/// `systemd/ironsecd.service` runs.
pub const SOURCE_BIN_DIR: &str = "/usr/local/bin";
/// Man section: both are system administration tools (root only).
const MAN_SECTION: &str = "8";
/// The first line of the source unit's paragraph about installing from source: the header up
/// to the end of that paragraph is replaced in the package.
const SOURCE_INSTALL_PARAGRAPH: &str = "# Install (as root, from the source tree):";

/// The two command lines, with their man sections, as the binaries parse them.
fn commands() -> [(Command, &'static [Section]); 2] {
    [
        (ironsecd::cli::daemon::Cli::command(), DAEMON_SECTIONS),
        (ironsecd::cli::ctl::Cli::command(), CTL_SECTIONS),
    ]
}

/// Built the way the man pages see it: global options propagated to the subcommands, their
/// display names set (`ironsecd-check`), no `help` subcommand (it has no page).
fn built(cmd: Command) -> Command {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Text with `code` spans in bold, the rest roman (roff escapes both).
fn inline_text(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| if i % 2 == 1 { bold(s) } else { roman(s) })
        .collect()
}

fn render_sections(roff: &mut Roff, sections: &[Section]) {
    for s in sections {
        roff.control("SH", [s.title]);
        for it in s.items {
            roff.control("TP", []);
            roff.text([bold(it.name)]);
            roff.text(inline_text(it.text));
        }
    }
}

fn render_see_also(roff: &mut Roff, refs: &[String]) {
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        // "name(8)": the name bold, the section roman, as man pages cite each other.
        match r.split_once('(') {
            Some((name, sec)) => {
                line.push(bold(name.to_string()));
                line.push(roman(format!("({sec}")));
            }
            None => line.push(roman(r.clone())),
        }
    }
    roff.text(line);
}

/// One page: clap_mangen's title, name, synopsis, description, options and subcommands, then
/// `sections`, SEE ALSO and the version with its commit (subcommands have no version of their
/// own: the binaries' is on every page).
fn render_page(cmd: &Command, sections: &[Section], see_also: &[String]) -> io::Result<Vec<u8>> {
    let man = Man::new(cmd.clone())
        .section(MAN_SECTION)
        .source(format!("ironsec {}", ironsecd::cli::VERSION))
        .manual("ironsec");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    // No hyphenation: paths and names (/usr/share/doc/ironsec/) must stay whole to be copied.
    out.extend_from_slice(b".nh\n");
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    let mut roff = Roff::default();
    render_sections(&mut roff, sections);
    render_see_also(&mut roff, see_also);
    roff.control("SH", ["VERSION"]);
    roff.text([roman(ironsecd::cli::VERSION)]);
    roff.to_writer(&mut out)?;
    Ok(out)
}

/// Every man page as (file name, roff source): `ironsecd.8`, `ironsecd-check.8`, ...
pub fn man_pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = Vec::new();
    let all = commands().map(|(c, s)| (built(c), s));
    let binaries: Vec<String> = all.iter().map(|(c, _)| c.get_name().to_string()).collect();
    for (cmd, sections) in &all {
        let name = cmd.get_name();
        let subs: Vec<&Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
        let page_name = |sub: &Command| {
            sub.get_display_name()
                .unwrap_or_else(|| sub.get_name())
                .to_string()
        };
        let mut see_also: Vec<String> = binaries
            .iter()
            .filter(|b| *b != name)
            .map(|b| format!("{b}({MAN_SECTION})"))
            .collect();
        see_also.extend(
            subs.iter()
                .map(|s| format!("{}({MAN_SECTION})", page_name(s))),
        );
        see_also.push("/usr/share/doc/ironsec/README.md".to_string());
        pages.push((
            format!("{name}.{MAN_SECTION}"),
            render_page(cmd, sections, &see_also)?,
        ));
        for sub in subs {
            let see_also = vec![format!("{name}({MAN_SECTION})")];
            pages.push((
                format!("{}.{MAN_SECTION}", page_name(sub)),
                render_page(sub, &[], &see_also)?,
            ));
        }
    }
    Ok(pages)
}

/// The shells completions are generated for, with the file name each one's package directory
/// expects (`/usr/share/bash-completion/completions/ironsecd`, `.../vendor-completions/_ironsecd`,
/// `.../vendor_completions.d/ironsecd.fish`).
pub const SHELLS: &[(Shell, &str)] = &[
    (Shell::Bash, "bash"),
    (Shell::Zsh, "zsh"),
    (Shell::Fish, "fish"),
];

fn completion_file_name(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{bin}"),
        Shell::Fish => format!("{bin}.fish"),
        _ => bin.to_string(),
    }
}

/// Every completion script as (path relative to the output's `completions/`, script).
pub fn completions() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for (cmd, _) in commands() {
        let bin = cmd.get_name().to_string();
        for (shell, dir) in SHELLS {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd.clone(), &bin, &mut script);
            out.push((
                Path::new(dir).join(completion_file_name(*shell, &bin)),
                script,
            ));
        }
    }
    out
}

/// The unit as the package installs it, from the source tree's `systemd/ironsecd.service`:
/// the binaries in [`PACKAGE_BIN_DIR`] instead of [`SOURCE_BIN_DIR`], and the header up to the
/// end of its from-source install steps replaced by the package's. Everything else (the sandbox above all)
/// is the tested source unit, unchanged. Fails when the source unit no longer has the shape
/// this expects, rather than shipping a unit that runs binaries the package does not have.
pub fn packaged_unit(source: &str) -> Result<String, String> {
    let mut lines: Vec<&str> = source.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == SOURCE_INSTALL_PARAGRAPH)
        .ok_or_else(|| format!("the source unit has no line {SOURCE_INSTALL_PARAGRAPH:?}"))?;
    // The paragraph ends before the next "#" line that is empty.
    let end = lines[start..]
        .iter()
        .position(|l| l.trim_end() == "#")
        .map(|n| start + n)
        .ok_or("the source unit's install paragraph does not end with a '#' line")?;
    let package_header = [
        "# ironsecd as a systemd service, installed by the Debian package `ironsec` (made from",
        "# systemd/ironsecd.service of the source tree by crates/gen-assets).",
        "#",
        "# The package does not enable or start it: an unconfigured gateway must not run.",
        "# Configure, check, then enable:",
        "#   \"$EDITOR\" /etc/ironsec/ironsecd.toml    # examples: /usr/share/doc/ironsec/examples/",
        "#   ironsecd check --config /etc/ironsec/ironsecd.toml",
        "#   systemctl enable --now ironsecd",
        "# Change settings with `systemctl edit ironsecd` (a drop-in), not in this file: package",
        "# upgrades replace it.",
    ];
    // Everything up to the end of the install paragraph is about the source install.
    lines.splice(0..end, package_header);
    let mut unit = lines.join("\n");
    unit.push('\n');
    let from = format!("{SOURCE_BIN_DIR}/");
    if !unit.contains(&format!("ExecStart={from}ironsecd ")) {
        return Err(format!(
            "the source unit's ExecStart= does not run {from}ironsecd"
        ));
    }
    let unit = unit.replace(&from, &format!("{PACKAGE_BIN_DIR}/"));
    if unit.contains("/usr/local") {
        return Err("the packaged unit still names /usr/local".to_string());
    }
    Ok(unit)
}

/// The one entry of the package's Debian changelog (`/usr/share/doc/ironsec/changelog.Debian.gz`):
/// which version and commit the package was built from, by whom and when.
#[derive(Clone)]
pub struct Changelog {
    /// The package version, e.g. `0.1.0-1` (what `cargo deb --deb-version` is given).
    pub deb_version: String,
    /// `Full Name <email>`: who built the package.
    pub maintainer: String,
    /// RFC 2822 date, as `date -R` prints it.
    pub date: String,
}

impl Changelog {
    /// The changelog in Debian's format (deb-changelog(5)). Fails on a maintainer without an
    /// address or a date that is not RFC 2822 shaped, which dpkg-parsechangelog would refuse.
    pub fn render(&self) -> Result<String, String> {
        let m = self.maintainer.trim();
        let addr_ok = m
            .split_once('<')
            .and_then(|(name, rest)| Some((name.trim(), rest.strip_suffix('>')?)))
            .is_some_and(|(name, addr)| !name.is_empty() && addr.contains('@'));
        if !addr_ok {
            return Err(format!("maintainer {m:?} is not 'Full Name <email>'"));
        }
        // "Mon, 07 Dec 2026 00:17:47 +0000"
        let d = self.date.trim();
        let date_ok = d.len() >= 29
            && d.as_bytes()[3] == b','
            && d.rsplit(' ').next().is_some_and(|z| {
                z.len() == 5
                    && z.starts_with(['+', '-'])
                    && z[1..].bytes().all(|b| b.is_ascii_digit())
            });
        if !date_ok {
            return Err(format!("date {d:?} is not an RFC 2822 date (date -R)"));
        }
        if self.deb_version.is_empty() || self.deb_version.contains(char::is_whitespace) {
            return Err(format!("bad package version {:?}", self.deb_version));
        }
        Ok(format!(
            "ironsec ({version}) unstable; urgency=medium\n\n  \
             * Built from ironsec {source}.\n    \
             `ironsecd --version` names the same commit. What changed: README.md,\n    \
             section \"Status\", and the git history.\n\n \
             -- {m}  {d}\n",
            version = self.deb_version,
            source = ironsecd::cli::VERSION,
        ))
    }
}

/// Writes everything the package takes from the build under `out`: `man/*.8`,
/// `completions/{bash,zsh,fish}/*`, `systemd/ironsecd.service` (from `source_unit`) and, for
/// a package, `changelog`. Returns the files written.
pub fn write_all(
    out: &Path,
    source_unit: &Path,
    changelog: Option<&Changelog>,
) -> Result<Vec<PathBuf>, String> {
    let write = |rel: &Path, bytes: &[u8]| -> Result<PathBuf, String> {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    };
    let mut written = Vec::new();
    let pages = man_pages().map_err(|e| format!("cannot render the man pages: {e}"))?;
    for (name, page) in pages {
        written.push(write(&Path::new("man").join(name), &page)?);
    }
    for (rel, script) in completions() {
        written.push(write(&Path::new("completions").join(rel), &script)?);
    }
    let source = std::fs::read_to_string(source_unit)
        .map_err(|e| format!("cannot read {}: {e}", source_unit.display()))?;
    let unit = packaged_unit(&source).map_err(|e| format!("{}: {e}", source_unit.display()))?;
    written.push(write(
        Path::new("systemd/ironsecd.service"),
        unit.as_bytes(),
    )?);
    if let Some(c) = changelog {
        written.push(write(Path::new("changelog"), c.render()?.as_bytes())?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE_UNIT: &str = include_str!("../../../systemd/ironsecd.service");

    fn page(name: &str) -> String {
        let pages = man_pages().expect("render");
        let (_, p) = pages
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no page {name}"));
        String::from_utf8(p.clone()).expect("UTF-8 roff")
    }

    #[test]
    fn a_page_per_binary_and_subcommand() {
        let names: Vec<String> = man_pages()
            .expect("render")
            .into_iter()
            .map(|p| p.0)
            .collect();
        for (cmd, _) in commands() {
            let bin = cmd.get_name().to_string();
            assert!(names.contains(&format!("{bin}.8")), "{names:?}");
            for sub in cmd.get_subcommands() {
                let want = format!("{bin}-{}.8", sub.get_name());
                assert!(names.contains(&want), "no {want} in {names:?}");
            }
        }
        assert!(!names.iter().any(|n| n.contains("-help.")), "{names:?}");
    }

    #[test]
    fn the_binary_pages_carry_the_help_sections() {
        let d = page("ironsecd.8");
        assert!(d.contains("\n.TH ironsecd 8 "), "{d}");
        assert!(d.contains("\n.nh\n"), "hyphenation stays off: {d}");
        for s in DAEMON_SECTIONS {
            assert!(
                d.contains(&format!(".SH \"{}\"", s.title))
                    || d.contains(&format!(".SH {}", s.title)),
                "no {}",
                s.title
            );
        }
        assert!(d.contains("IRONSEC_GATEWAY__<KEY>"), "{d}");
        assert!(d.contains("ironsecd\\-check(8)"), "subcommand list: {d}");
        assert!(d.contains(ironsecd::cli::VERSION), "version: {d}");
        let c = page("ironsecctl.8");
        assert!(c.contains("/run/ironsec/ironsecd.sock"), "{c}");
        // A subcommand page has the global options too.
        let check = page("ironsecd-check.8");
        assert!(check.contains("\\-\\-config"), "{check}");
    }

    #[test]
    fn code_spans_are_bold() {
        let parts = inline_text("run `ironsecd cleanup` now");
        let mut roff = Roff::default();
        roff.text(parts);
        assert_eq!(roff.to_roff(), "run \\fBironsecd cleanup\\fR now\n");
    }

    #[test]
    fn completions_for_every_shell_and_binary() {
        let all = completions();
        assert_eq!(all.len(), 6);
        for (path, script) in &all {
            let s = String::from_utf8_lossy(script);
            assert!(
                s.contains("initiate") || s.contains("cleanup"),
                "{}",
                path.display()
            );
        }
        let names: Vec<String> = all.iter().map(|(p, _)| p.display().to_string()).collect();
        for want in ["bash/ironsecd", "zsh/_ironsecctl", "fish/ironsecctl.fish"] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
    }

    #[test]
    fn packaged_unit_runs_the_package_binaries() {
        let unit = packaged_unit(SOURCE_UNIT).expect("packaged unit");
        assert!(unit.contains("ExecStart=/usr/sbin/ironsecd --config /etc/ironsec/ironsecd.toml"));
        assert!(unit.contains("ExecReload=/usr/sbin/ironsecctl "));
        assert!(!unit.contains("/usr/local"));
        assert!(
            !unit.contains("cargo install"),
            "source install steps left: {unit}"
        );
        assert!(unit.contains("does not enable or start it"));
        assert!(!unit.contains("for an install from source"), "{unit}");
        // Only the header and the binaries' directory differ.
        let strip = |u: &str| -> Vec<String> {
            u.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.replace(SOURCE_BIN_DIR, PACKAGE_BIN_DIR))
                .collect()
        };
        assert_eq!(strip(&unit), strip(SOURCE_UNIT));
    }

    #[test]
    fn packaged_unit_refuses_an_unexpected_source() {
        assert!(packaged_unit("[Service]\nExecStart=/usr/local/bin/ironsecd\n").is_err());
        let moved = SOURCE_UNIT.replace("ExecStart=/usr/local/bin/", "ExecStart=/opt/bin/");
        assert!(packaged_unit(&moved).is_err());
    }

    #[test]
    fn changelog_entry() {
        let c = Changelog {
            deb_version: "0.1.0-1".into(),
            maintainer: "Ada Operator <ada@example.org>".into(),
            date: "Mon, 07 Dec 2026 00:17:47 +0000".into(),
        };
        let text = c.render().expect("valid");
        assert!(text.starts_with("ironsec (0.1.0-1) unstable; urgency=medium\n\n  * Built from"));
        assert!(text.contains(ironsecd::cli::VERSION));
        // Debian's limit (lintian: debian-changelog-line-too-long); a -dirty commit is longest.
        assert!(
            text.lines().all(|l| l.len() + "-dirty".len() <= 80),
            "{text}"
        );
        assert!(text
            .ends_with("\n -- Ada Operator <ada@example.org>  Mon, 07 Dec 2026 00:17:47 +0000\n"));
        for bad in [
            Changelog {
                maintainer: "root".into(),
                ..c.clone()
            },
            Changelog {
                maintainer: "<a@b>".into(),
                ..c.clone()
            },
            Changelog {
                date: "2026-12-07".into(),
                ..c.clone()
            },
            Changelog {
                deb_version: "0.1 0".into(),
                ..c.clone()
            },
        ] {
            assert!(
                bad.render().is_err(),
                "{} / {} / {}",
                bad.maintainer,
                bad.date,
                bad.deb_version
            );
        }
    }

    /// The config the package installs as /etc/ironsec/ironsecd.toml loads as shipped (no
    /// connection, nothing to start); tests/package.rs checks it installed, with the binary.
    #[test]
    fn shipped_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/ironsecd.toml");
        match ironsecd::config::Config::load_with_env(&path, []) {
            Ok(cfg) => assert!(cfg.connections.is_empty(), "{}", cfg.describe()),
            Err(errs) => panic!(
                "packaging/ironsecd.toml does not load:\n{}",
                errs.0
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    /// The commented `[drain]` table at the end of the shipped config loads once its lines
    /// are uncommented, with the values it shows.
    #[test]
    fn shipped_config_drain_example_loads_when_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/ironsecd.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let at = text.find("# [drain]").expect("no commented [drain] table");
        let table: Vec<&str> = text[at..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect();
        let dir =
            std::env::temp_dir().join(format!("ironsec-gen-assets-drain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ironsecd.toml");
        std::fs::write(&file, format!("{}{}\n", &text[..at], table.join("\n"))).unwrap();
        let loaded = ironsecd::config::Config::load_with_env(&file, []);
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = loaded.unwrap_or_else(|e| panic!("the [drain] example does not load:\n{e}"));
        let d = &cfg.drain;
        assert_eq!(d.withdraw.len(), 1);
        assert_eq!(d.rejoin.len(), 1);
        assert_eq!(
            d.state_file.as_deref(),
            Some(Path::new("/run/ironsec/drain"))
        );
        assert!(d.on_stop && d.rejoin_on_start);
        assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    }
}
