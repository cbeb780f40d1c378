//! Parse errors of model files, with line:column and the offending text.

use std::path::{Path, PathBuf};

/// Why a model file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: cannot read the model file; check the path", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}{hint}\n{excerpt}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        /// A suggestion such as ` (did you mean `filters`?)`, or empty.
        hint: String,
        /// The offending line with a caret under the column.
        excerpt: String,
    },
}

impl ModelError {
    pub(crate) fn syntax(path: &Path, source: &str, e: &ron::error::SpannedError) -> Self {
        let line = e.span.start.line.max(1);
        let column = e.span.start.col.max(1);
        let hint = match &e.code {
            ron::Error::NoSuchStructField {
                expected, found, ..
            } => suggest(found, expected),
            ron::Error::NoSuchEnumVariant {
                expected, found, ..
            } => suggest(found, expected),
            _ => String::new(),
        };
        ModelError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.code.to_string(),
            hint,
            excerpt: excerpt(source, line, column),
        }
    }
}

/// The source line `line` (1-based) with a caret under `column`.
pub(crate) fn excerpt(source: &str, line: usize, column: usize) -> String {
    let text = source.lines().nth(line - 1).unwrap_or("");
    let gutter = format!("{line:>4} | ");
    let pad: String = text
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("{gutter}{text}\n{:width$}{pad}^", "", width = gutter.len())
}

/// ` (did you mean `x`?)` for the nearest candidate within a small edit distance.
pub fn suggest(found: &str, candidates: &[&str]) -> String {
    nearest(found, candidates.iter().copied())
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// The candidate nearest to `found` by case-insensitive edit distance, if any is close enough
/// to be a likely typo.
pub fn nearest<'a>(found: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let found_l = found.to_lowercase();
    candidates
        .map(|c| (levenshtein(&found_l, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(found.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestion_finds_a_one_letter_typo() {
        assert_eq!(
            suggest("filter", &["filters", "name"]),
            " (did you mean `filters`?)"
        );
        assert_eq!(
            suggest("Conv3D", &["Conv2D", "Dense"]),
            " (did you mean `Conv2D`?)"
        );
        assert_eq!(suggest("zzzzzz", &["Conv2D", "Dense"]), "");
    }

    #[test]
    fn excerpt_points_at_the_column() {
        let e = excerpt("a\n  bad here\n", 2, 3);
        assert_eq!(e, "   2 |   bad here\n         ^");
    }
}
