//! The command lines of both binaries, in the library so that the man pages and shell
//! completions can be generated from the same clap definitions the binaries parse.
//!
//! What clap cannot derive from the arguments (the files, environment variables, signals and
//! exit codes an operator needs) is kept here once, as [`Section`]s: `--help` prints them as
//! its closing text ([`long_help`]) and the man page generator (`crates/gen-assets`) renders
//! the same ones as ENVIRONMENT, FILES, ... sections, so the two cannot drift apart.

pub mod ctl;
pub mod daemon;

/// `--version` of both binaries: the package version and the git commit they were built from
/// (`build.rs`: 12 hex digits, `-dirty` for uncommitted changes, or `unknown commit`).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("IRONSEC_COMMIT"), ")");

/// One entry of a help section: a name (a path, a variable, a signal) and what it means.
pub struct Item {
    pub name: &'static str,
    pub text: &'static str,
}

/// A titled list of [`Item`]s, e.g. ENVIRONMENT.
pub struct Section {
    /// Title as a man page writes it (upper case); `--help` capitalises only the first letter.
    pub title: &'static str,
    pub items: &'static [Item],
}

/// The daemon's own files (shared by both pages: ironsecctl talks to the same socket).
const SOCKET: Item = Item {
    name: "/run/ironsec/ironsecd.sock",
    text: "the control socket (gateway.control_socket), mode 0600 in the 0700 runtime \
           directory: ironsecctl must run as root",
};

/// ironsecd's sections, after its options.
pub const DAEMON_SECTIONS: &[Section] = &[
    Section {
        title: "FILES",
        items: &[
            Item {
                name: "/etc/ironsec/ironsecd.toml",
                text: "the main configuration (--config): [gateway] and connections",
            },
            Item {
                name: "/etc/ironsec/conf.d/*.toml",
                text: "fragments beside the main file: more [[connection]] tables, read in \
                       file-name order",
            },
            SOCKET,
            Item {
                name: "/etc/default/ironsecd",
                text: "optional, read by the systemd unit: VARIABLE=VALUE lines for the \
                       environment below",
            },
            Item {
                name: "/usr/share/doc/ironsec/",
                text: "from the Debian package: README.md (configuration reference, \
                       operation) and examples/",
            },
        ],
    },
    Section {
        title: "ENVIRONMENT",
        items: &[
            Item {
                name: "IRONSEC_LOG=FILTER",
                text: "log filter in tracing's syntax, default info; debug shows every \
                       exchange",
            },
            Item {
                name: "IRONSEC_GATEWAY__<KEY>=VALUE",
                text: "overrides one [gateway] key of the file, e.g. IRONSEC_GATEWAY__TUN=ipsec1 \
                       or IRONSEC_GATEWAY__METRICS=off; `check` lists those in use",
            },
            Item {
                name: "IRONSEC_LOG_FORMAT=FORMAT",
                text: "what --log-format says when it is not given: auto, text, json or \
                       journald",
            },
            Item {
                name: "JOURNAL_STREAM",
                text: "set by systemd; when it names stderr, --log-format auto logs to the \
                       journal natively (priorities, structured fields)",
            },
            Item {
                name: "NOTIFY_SOCKET, WATCHDOG_USEC",
                text: "set by systemd (Type=notify): readiness, reload and watchdog messages \
                       go there",
            },
        ],
    },
    Section {
        title: "SIGNALS",
        items: &[
            Item {
                name: "SIGHUP",
                text: "re-read the configuration and apply what changed; a bad one is refused \
                       and the running one stays (`ironsecctl reload` does the same and \
                       reports the verdict)",
            },
            Item {
                name: "SIGTERM, SIGINT",
                text: "stop: the TUN device and its routes go; the guard routes stay, so \
                       traffic for the remote sites is dropped, never sent in clear, until \
                       `ironsecd cleanup`. With [drain] on_stop = true, SIGTERM drains first \
                       (withdraw commands, wait for traffic, DELETE to every peer) and exits \
                       0 when drained; a second SIGTERM, or SIGINT, exits at once",
            },
        ],
    },
    Section {
        title: "EXIT STATUS",
        items: &[
            Item {
                name: "0",
                text: "stopped by a signal, or `check` found the configuration valid",
            },
            Item {
                name: "1",
                text: "configuration errors (one FILE: KEY: REASON line each) or a failure \
                       while running",
            },
            Item {
                name: "2",
                text: "bad command line",
            },
        ],
    },
];

/// ironsecctl's sections, after its options.
pub const CTL_SECTIONS: &[Section] = &[
    Section {
        title: "FILES",
        items: &[SOCKET],
    },
    Section {
        title: "ENVIRONMENT",
        items: &[Item {
            name: "(none)",
            text: "ironsecctl reads no variable; the daemon's (IRONSEC_LOG, \
                   IRONSEC_GATEWAY__<KEY>) are in ironsecd --help",
        }],
    },
    Section {
        title: "SIGNALS",
        items: &[Item {
            name: "SIGHUP to ironsecd",
            text: "reloads as `reload` does, without waiting for the verdict; SIGTERM stops \
                   the daemon (systemctl stop ironsecd)",
        }],
    },
    Section {
        title: "EXIT STATUS",
        items: &[
            Item {
                name: "0",
                text: "the daemon agreed (and `initiate` saw every tunnel up)",
            },
            Item {
                name: "1",
                text: "the daemon refused, or could not be reached",
            },
            Item {
                name: "2",
                text: "bad command line",
            },
        ],
    },
];

/// Where `-h` points for what only `--help` and the man page show.
pub const DAEMON_SHORT_HELP: &str =
    "Files, environment variables, signals and exit status: --help, or man 8 ironsecd.";
pub const CTL_SHORT_HELP: &str = "Files, signals and exit status: --help, or man 8 ironsecctl.";

/// Text width `--help` wraps the sections to (clap's own default).
const WIDTH: usize = 100;

/// The sections as `--help`'s closing text: "Files:" and so on, names in one column, texts
/// wrapped beside them.
pub fn long_help(sections: &[Section]) -> String {
    let mut out = String::new();
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let title = s.title.to_lowercase();
        let mut chars = title.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
        out.push_str(":\n");
        let name_width = s.items.iter().map(|it| it.name.len()).max().unwrap_or(0);
        for it in s.items {
            let indent = 2 + name_width + 2;
            let mut line = format!("  {:<name_width$}  ", it.name);
            let mut col = indent;
            let mut first_word = true;
            for word in it.text.split_whitespace() {
                if !first_word && col + 1 + word.len() > WIDTH {
                    out.push_str(line.trim_end());
                    out.push('\n');
                    line = " ".repeat(indent);
                    col = indent;
                    first_word = true;
                }
                if !first_word {
                    line.push(' ');
                    col += 1;
                }
                line.push_str(word);
                col += word.len();
                first_word = false;
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_lines_are_consistent() {
        daemon::Cli::command().debug_assert();
        ctl::Cli::command().debug_assert();
    }

    #[test]
    fn version_names_the_commit() {
        let v = daemon::Cli::command().render_version();
        assert!(v.starts_with(&format!("ironsecd {}", env!("CARGO_PKG_VERSION"))));
        assert!(v.contains(env!("IRONSEC_COMMIT")), "{v}");
        assert_eq!(
            ctl::Cli::command().get_version(),
            daemon::Cli::command().get_version()
        );
    }

    /// The variables the code reads are all documented (the names are the code's own).
    #[test]
    fn help_names_the_variables_signals_and_files() {
        let mut cmd = daemon::Cli::command();
        let help = cmd.render_long_help().to_string();
        for needle in [
            "IRONSEC_LOG",
            crate::config::load::ENV_PREFIX,
            "NOTIFY_SOCKET",
            "IRONSEC_LOG_FORMAT",
            "JOURNAL_STREAM",
            "SIGHUP",
            "SIGTERM",
            "/etc/ironsec/ironsecd.toml",
            "/etc/ironsec/conf.d/",
            "/run/ironsec/ironsecd.sock",
        ] {
            assert!(
                help.contains(needle),
                "ironsecd --help lacks {needle}:\n{help}"
            );
        }
        let short = cmd.render_help().to_string();
        assert!(short.contains(DAEMON_SHORT_HELP), "{short}");
        let ctl = ctl::Cli::command().render_long_help().to_string();
        for needle in ["/run/ironsec/ironsecd.sock", "SIGHUP", "ironsecd --help"] {
            assert!(
                ctl.contains(needle),
                "ironsecctl --help lacks {needle}:\n{ctl}"
            );
        }
    }

    #[test]
    fn long_help_wraps_and_aligns() {
        const S: &[Section] = &[Section {
            title: "EXIT STATUS",
            items: &[
                Item {
                    name: "0",
                    text: "fine",
                },
                Item {
                    name: "12",
                    text: "word word word word word word word word word word word word word \
                           word word word word word word word word word word word word word",
                },
            ],
        }];
        let text = long_help(S);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Exit status:");
        assert_eq!(lines[1], "  0   fine");
        assert!(lines[2].starts_with("  12  word"));
        assert!(lines.len() > 3, "long text not wrapped: {text}");
        for l in &lines[3..] {
            assert!(
                l.starts_with("      word"),
                "continuation not aligned: {l:?}"
            );
        }
        assert!(lines.iter().all(|l| l.len() <= WIDTH), "{text}");
    }
}
