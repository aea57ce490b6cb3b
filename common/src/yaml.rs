//! YAML streams as text: where one document ends and the next begins,
//! without parsing (so the text of each document can be kept as written).

/// Cuts a YAML stream before every line that starts with `---` at column
/// 0: a document marker, since block scalars are indented and such a line
/// cannot be content. Every piece after the first begins with its marker
/// line; a piece may hold only white space or comments.
pub fn split_documents(input: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in input.split_inclusive('\n') {
        if line.starts_with("---") && offset > start {
            pieces.push(&input[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    if start < input.len() {
        pieces.push(&input[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_markers_only() {
        assert_eq!(
            split_documents("a: 1\n---\nb: |\n  ---\n  x\n--- # c\nc: '---'\n"),
            ["a: 1\n", "---\nb: |\n  ---\n  x\n", "--- # c\nc: '---'\n"]
        );
        assert_eq!(split_documents("---\na: 1"), ["---\na: 1"]);
        assert!(split_documents("").is_empty());
    }
}
