//! Which connections `ironsecctl status NAME|PATTERN` and `list-conns NAME|PATTERN` show: one
//! by name, or those a shell-style glob matches (`*` any run of characters, `?` one). The
//! daemon filters `status` (it builds only what matches; `Request::Status`'s `filter`) and
//! says when nothing matched; the CLI filters again what it got, so a daemon from before the
//! field (which sends everything) serves a filtered listing too.

/// A connection name, or a pattern when it holds `*` or `?` (which no sane connection name
/// does; a name with them is still found by the pattern, which matches itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameFilter {
    Name(String),
    Pattern(String),
}

/// Nothing matched: an unknown name is an error; a pattern matching nothing is only news.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoMatch {
    #[error("no connection named '{name}' (configured: {})", known(.configured))]
    UnknownName {
        name: String,
        configured: Vec<String>,
    },
    #[error("no connection matches '{pattern}' (configured: {})", known(.configured))]
    NothingMatches {
        pattern: String,
        configured: Vec<String>,
    },
}

/// The configured names an error lists at most: a typo among 10,000 connections gets a
/// line, not a page.
const KNOWN_SHOWN: usize = 20;

fn known(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else if names.len() > KNOWN_SHOWN {
        format!(
            "{}, ... and {} more",
            names[..KNOWN_SHOWN].join(", "),
            names.len() - KNOWN_SHOWN
        )
    } else {
        names.join(", ")
    }
}

impl NoMatch {
    /// Whether this is an error (an unknown name), not just an empty listing.
    pub fn is_error(&self) -> bool {
        matches!(self, NoMatch::UnknownName { .. })
    }
}

impl NameFilter {
    pub fn new(s: &str) -> NameFilter {
        if s.contains(['*', '?']) {
            NameFilter::Pattern(s.into())
        } else {
            NameFilter::Name(s.into())
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            NameFilter::Name(n) => n == name,
            NameFilter::Pattern(p) => glob(p.as_bytes(), name.as_bytes()),
        }
    }

    /// Keeps the items whose name matches; none is [`NoMatch`].
    pub fn select<T>(&self, items: Vec<T>, name: impl Fn(&T) -> &str) -> Result<Vec<T>, NoMatch> {
        let configured: Vec<String> = items.iter().map(|i| name(i).to_string()).collect();
        let kept: Vec<T> = items
            .into_iter()
            .filter(|i| self.matches(name(i)))
            .collect();
        if !kept.is_empty() {
            return Ok(kept);
        }
        Err(self.no_match(configured))
    }

    /// Why nothing of `configured` (every name there was to match) matched.
    pub fn no_match(&self, configured: Vec<String>) -> NoMatch {
        match self {
            NameFilter::Name(n) => NoMatch::UnknownName {
                name: n.clone(),
                configured,
            },
            NameFilter::Pattern(p) => NoMatch::NothingMatches {
                pattern: p.clone(),
                configured,
            },
        }
    }

    /// The text it was made from (what a request carries).
    pub fn as_str(&self) -> &str {
        match self {
            NameFilter::Name(s) | NameFilter::Pattern(s) => s,
        }
    }
}

/// `*` and `?` globbing over bytes, iterative with one backtrack point (linear-ish, no
/// recursion for a pattern of many stars).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_the_shell() {
        let m = |p: &str, s: &str| NameFilter::new(p).matches(s);
        assert!(m("site-*", "site-b"));
        assert!(m("site-*", "site-"));
        assert!(!m("site-*", "hub-site-b"));
        assert!(m("*-b", "site-b"));
        assert!(m("*", ""));
        assert!(m("s?te-?", "site-b"));
        assert!(!m("s?te-?", "site-bb"));
        assert!(m("*e*b*", "site-b"));
        assert!(m("a*b*c", "axxbyybzc"));
        assert!(!m("a*b*c", "axxbyybz"));
        assert!(m("**x", "x"));
        // A name is compared whole, never as a prefix or pattern.
        assert!(!m("site", "site-b"));
        assert!(m("site-b", "site-b"));
        assert_eq!(NameFilter::new("site-b"), NameFilter::Name("site-b".into()));
        assert_eq!(NameFilter::new("s*"), NameFilter::Pattern("s*".into()));
    }

    #[test]
    fn selecting_says_why_nothing_was_kept() {
        let names = || vec!["site-b".to_string(), "site-c".into(), "hub".into()];
        fn by(s: &String) -> &str {
            s
        }
        assert_eq!(
            NameFilter::new("site-*").select(names(), by).unwrap(),
            ["site-b", "site-c"]
        );
        assert_eq!(NameFilter::new("hub").select(names(), by).unwrap(), ["hub"]);
        let e = NameFilter::new("nope").select(names(), by).unwrap_err();
        assert!(e.is_error());
        assert_eq!(
            e.to_string(),
            "no connection named 'nope' (configured: site-b, site-c, hub)"
        );
        let e = NameFilter::new("x*").select(names(), by).unwrap_err();
        assert!(!e.is_error());
        assert_eq!(
            e.to_string(),
            "no connection matches 'x*' (configured: site-b, site-c, hub)"
        );
        let e = NameFilter::new("x*")
            .select(Vec::<String>::new(), by)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no connection matches 'x*' (configured: none)"
        );
    }

    #[test]
    fn a_long_list_of_names_is_cut_short() {
        let names: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
        let e = NameFilter::new("nope").no_match(names);
        let m = e.to_string();
        assert!(
            m.ends_with("s18, s19, ... and 9980 more)"),
            "{}",
            &m[m.len() - 60..]
        );
        assert!(m.len() < 200, "{m}");
        // It travels in a status answer and reads back the same.
        let back: NoMatch = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert!(back.is_error());
        assert_eq!(NameFilter::new("s*").as_str(), "s*");
    }
}
