//! "Did you mean": the closest valid key or word for a misspelt one, so an operator sees the
//! fix next to the error instead of reading a list of forty keys.

/// How alike two words must be (Jaro-Winkler, 0..=1) for one to be suggested for the other:
/// 0.8 catches a suffix or a doubled letter (`ikev2` for `ike`, `esp_proposal` for
/// `esp_proposals`) but not an unrelated word (`frobnicate`, `sometimes`).
const ALIKE: f64 = 0.8;

/// Whether `word` is a near miss of `candidate`: alike by Jaro-Winkler, or a few edits away
/// (Damerau-Levenshtein, a swap counting as one; at most one edit per three letters), which
/// catches the swapped letters of short words that Jaro-Winkler misses (`yse` for `yes`).
fn near(word: &str, candidate: &str) -> bool {
    let edits = strsim::damerau_levenshtein(word, candidate);
    strsim::jaro_winkler(word, candidate) >= ALIKE || edits <= (word.chars().count() / 3).max(1)
}

/// The candidate most like `word`, if one is a near miss. Case is ignored: `"IKE"` is a
/// misspelling of `"ike"` like any other.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| near(&word, &c.to_lowercase()))
        .map(|c| (strsim::jaro_winkler(&word, &c.to_lowercase()), c))
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
        assert_eq!(closest("strat", ["start", "trap", "none"]), Some("start"));
        assert_eq!(closest("yse", ["out", "in", "yes", "no"]), Some("yes"));
        assert_eq!(closest("nope", ["tun", "port", "workers"]), None);
        assert_eq!(closest("tun_mut", ["tun", "tun_mtu"]), Some("tun_mtu"));
        assert_eq!(
            did_you_mean("tunn", ["tun", "tun_mtu"]),
            " (did you mean \"tun\"?)"
        );
        assert_eq!(did_you_mean("zzz", ["tun", "tun_mtu"]), "");
    }
}
