//! "Did you mean": the closest valid key or word for a misspelt one, so an operator sees the
//! fix next to the error instead of reading a list of forty keys.

/// How alike two words must be (Jaro-Winkler, 0..=1) for one to be suggested for the other.
/// 0.8 catches a dropped, doubled or swapped letter and a suffix (`ikev2` for `ike`,
/// `esp_proposal` for `esp_proposals`) but not an unrelated word (`frobnicate`, `sometimes`).
const ALIKE: f64 = 0.8;

/// The candidate most like `word`, if one is alike enough. Case is ignored: `"IKE"` is a
/// misspelling of `"ike"` like any other.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&word, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= ALIKE)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// ` (did you mean "X"?)` when a candidate is close to `word`, else nothing: appended to a
/// reason that already says what is wrong.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates).map_or(String::new(), |c| format!(" (did you mean \"{c}\"?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_words_are_suggested_and_others_are_not() {
        let keyings = ["static", "ike"];
        assert_eq!(closest("ikev2", keyings), Some("ike"));
        assert_eq!(closest("IKE", keyings), Some("ike"));
        assert_eq!(closest("statc", keyings), Some("static"));
        assert_eq!(
            closest("esp_proposal", ["ike_proposals", "esp_proposals", "esp"]),
            Some("esp_proposals")
        );
        assert_eq!(closest("frobnicate", ["name", "keying", "local_ts"]), None);
        assert_eq!(closest("sometimes", ["start", "trap", "none"]), None);
        assert_eq!(
            did_you_mean("tunn", ["tun", "tun_mtu"]),
            " (did you mean \"tun\"?)"
        );
        assert_eq!(did_you_mean("zzz", ["tun", "tun_mtu"]), "");
    }
}
