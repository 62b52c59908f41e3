//! A line diff of two texts (policy versions, in `castellan policy diff` and the admin console).

/// A line diff: unchanged lines with two spaces, removed with `-`, added with
/// `+` (longest common subsequence; for very large inputs, removed then added).
pub fn diff_lines(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > 4_000_000 {
        return a
            .iter()
            .filter(|l| !b.contains(l))
            .map(|l| format!("-{l}"))
            .chain(b.iter().filter(|l| !a.contains(l)).map(|l| format!("+{l}")))
            .collect();
    }
    // lcs[i][j]: length of the LCS of a[i..] and b[j..], as one flat table.
    let w = m + 1;
    let mut lcs = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let v = if a.get(i) == b.get(j) {
                lcs.get((i + 1) * w + j + 1).copied().unwrap_or(0) + 1
            } else {
                let down = lcs.get((i + 1) * w + j).copied().unwrap_or(0);
                let right = lcs.get(i * w + j + 1).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(cell) = lcs.get_mut(i * w + j) {
                *cell = v;
            }
        }
    }
    let at = |i: usize, j: usize| lcs.get(i * w + j).copied().unwrap_or(0);
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(n + m));
    while i < n || j < m {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                out.push(format!("  {x}"));
                i += 1;
                j += 1;
            }
            (Some(x), Some(_)) if at(i + 1, j) >= at(i, j + 1) => {
                out.push(format!("-{x}"));
                i += 1;
            }
            (_, Some(y)) => {
                out.push(format!("+{y}"));
                j += 1;
            }
            (Some(x), None) => {
                out.push(format!("-{x}"));
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::diff_lines;

    #[test]
    fn diff_keeps_common_lines_and_marks_changes() {
        assert_eq!(diff_lines("a\nb\nc", "a\nc\nd"), vec!["  a", "-b", "  c", "+d"]);
        assert_eq!(diff_lines("", "x"), vec!["+x"]);
        assert_eq!(diff_lines("x", ""), vec!["-x"]);
        assert!(diff_lines("same\n", "same\n").iter().all(|l| l.starts_with("  ")));
    }
}
