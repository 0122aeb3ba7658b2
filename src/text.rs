//! Small helpers for untrusted text: clipping for messages, whitespace folding.

/// Shortens `text` to at most `max_chars` characters for an error message, marking the cut.
pub fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Collapses runs of whitespace (including line breaks) into single spaces and trims the ends.
pub fn fold_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_folded(&mut out, text);
    out
}

/// Appends `text` with its whitespace folded as [`fold_whitespace`] does, to a buffer that
/// can be used again.
pub fn push_folded(out: &mut String, text: &str) {
    let mut words = text.split_whitespace();
    if let Some(first) = words.next() {
        out.push_str(first);
    }
    for word in words {
        out.push(' ');
        out.push_str(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("äöüß", 2), "äö…");
        assert_eq!(clip("ab", 2), "ab");
    }

    #[test]
    fn fold_whitespace_joins_lines() {
        assert_eq!(fold_whitespace("  a\n b\t\tc "), "a b c");
    }
}
