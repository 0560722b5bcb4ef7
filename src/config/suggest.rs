//! "did you mean `latency_ms`?" for misspelt keys and words.

/// The candidate closest to `word` by edit distance (insertions, deletions,
/// substitutions and swaps of adjacent characters), if it is close enough to
/// be a typo: at most one edit for short words, a third of the length for
/// longer ones. Ties go to the earlier candidate.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word_len = word.chars().count();
    let limit = (word_len / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let d = distance(&word.to_ascii_lowercase(), &candidate.to_ascii_lowercase());
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal string alignment distance (Damerau–Levenshtein without
/// repeated edits of one substring), over characters.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    // Two rows back (for swaps) and the previous row of the DP table.
    let mut before: Vec<usize> = vec![0; width];
    let mut previous: Vec<usize> = (0..width).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut row = Vec::with_capacity(width);
        row.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let left = row.last().copied().unwrap_or(usize::MAX - 1);
            let up = previous.get(j + 1).copied().unwrap_or(usize::MAX - 1);
            let diagonal = previous.get(j).copied().unwrap_or(usize::MAX - 1);
            let mut d = (left + 1).min(up + 1).min(diagonal + cost);
            let swapped = i > 0 && j > 0 && a.get(i - 1) == Some(&cb) && b.get(j - 1) == Some(&ca);
            if swapped {
                d = d.min(before.get(j - 1).copied().unwrap_or(usize::MAX - 1) + 1);
            }
            row.push(d);
        }
        before = std::mem::replace(&mut previous, row);
    }
    previous.last().copied().unwrap_or(0)
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("latency_ms", "latency_ms"), 0);
        assert_eq!(distance("latncy_ms", "latency_ms"), 1);
        assert_eq!(
            distance("latnecy_ms", "latency_ms"),
            1,
            "adjacent swap is one edit"
        );
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let keys = ["listen", "latency_ms", "recv_buffer", "max_connections"];
        assert_eq!(
            closest("latency", keys),
            None,
            "three edits is too far for 7 letters"
        );
        assert_eq!(closest("latencyms", keys), Some("latency_ms"));
        assert_eq!(closest("Listen", keys), Some("listen"));
        assert_eq!(closest("lisen", keys), Some("listen"));
        assert_eq!(closest("max_conections", keys), Some("max_connections"));
        assert_eq!(closest("zzz", keys), None);
        assert_eq!(closest("", keys), None);
        assert_eq!(closest("udpp", ["udp", "rtp"]), Some("udp"));
    }
}
