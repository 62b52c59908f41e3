//! Cedar's diagnostics as plain text: the message, where in the source it
//! points (line and column), and Cedar's help when it gives one.

use miette::Diagnostic;
use std::fmt::Write as _;

/// 1-based line and column (in characters) of byte `offset` in `src`.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset.min(src.len())).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// One diagnostic on one line: `message (at line L, column C); help: ...`.
/// `src` is the text the diagnostic's labels point into.
pub(crate) fn render(d: &dyn Diagnostic, src: &str) -> String {
    let mut out = d.to_string();
    if let Some(labels) = d.labels() {
        let mut at: Vec<String> = Vec::new();
        for l in labels {
            let (line, col) = line_col(src, l.offset());
            let mut s = format!("line {line}, column {col}");
            if let Some(label) = l.label() {
                let _ = write!(s, ": {label}");
            }
            if !at.contains(&s) {
                at.push(s);
            }
        }
        if !at.is_empty() {
            let _ = write!(out, " (at {})", at.join("; "));
        }
    }
    if let Some(help) = d.help() {
        let _ = write!(out, "; help: {help}");
    }
    if let Some(related) = d.related() {
        for r in related {
            let _ = write!(out, "\n{}", render(r, src));
        }
    }
    out
}

/// Several diagnostics, one per line.
pub(crate) fn render_all<'d, D: Diagnostic + 'd>(items: impl IntoIterator<Item = &'d D>, src: &str) -> String {
    items.into_iter().map(|d| render(d, src)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn lines_and_columns_are_one_based() {
        let src = "ab\ncdé\nf";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 1), (1, 2));
        assert_eq!(line_col(src, 3), (2, 1));
        assert_eq!(line_col(src, 8), (3, 1));
        assert_eq!(line_col(src, 999), (3, 2));
    }
}
