//! Line diff (longest common subsequence) for `--check` reports. Goldens are a few hundred
//! lines, so the quadratic table is fine.

const CONTEXT: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// A unified-style diff: `-` lines only in `old`, `+` lines only in `new`, with context.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(Op, &str, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((Op::Same, a[i], i + 1));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push((Op::Removed, a[i], i + 1));
            i += 1;
        } else {
            ops.push((Op::Added, b[j], j + 1));
            j += 1;
        }
    }

    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (op, _, _))| *op != Op::Same)
        .map(|(k, _)| k)
        .collect();
    let mut last_printed: Option<usize> = None;
    for &k in &changed {
        let from = k.saturating_sub(CONTEXT);
        let to = (k + CONTEXT).min(ops.len() - 1);
        let start = match last_printed {
            Some(p) if p + 1 >= from => p + 1,
            Some(_) | None => {
                let (_, _, line) = ops[from];
                out.push_str(&format!("@@ near line {line} @@\n"));
                from
            }
        };
        for &(op, text, _) in ops.iter().take(to + 1).skip(start) {
            let sign = match op {
                Op::Same => ' ',
                Op::Removed => '-',
                Op::Added => '+',
            };
            out.push_str(&format!("{sign}{text}\n"));
        }
        last_printed = Some(last_printed.map_or(to, |p| p.max(to)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_changed_line_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\n";
        let new = "a\nb\nc\nX\ne\nf\ng\n";
        let diff = unified(old, new, "old", "new");
        assert!(diff.contains("-d\n+X\n"), "{diff}");
        assert!(diff.contains(" c\n") && diff.contains(" e\n"), "{diff}");
        assert!(!diff.contains(" a\n"), "{diff}");
    }
}
