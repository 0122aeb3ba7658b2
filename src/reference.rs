//! Finding settlement references in remittance text as banks pass it on: upper-cased, hyphens
//! dropped, split over lines (possibly inside the UUID), glued to words, with or without the
//! `topup` keyword. The result is a ranked list of candidates; which one counts is decided
//! against the known top-ups by the matcher.

use std::sync::LazyLock;

use regex::Regex;
use uuid::Uuid;

use crate::ids::SettlementReference;

/// How sure we are that a candidate was meant as a reference, weakest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Strength {
    /// Glued to other letters or digits, or only digits: counts only if a top-up has it.
    Weak,
    /// 32 hex digits standing on their own (separators allowed inside).
    Clean,
    /// A clean candidate right after the `topup` keyword.
    AfterKeyword,
    /// The canonical `8-4-4-4-12` hyphenated form, standing on its own.
    Canonical,
}

/// One possible reference found in remittance text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Candidate {
    pub reference: SettlementReference,
    pub strength: Strength,
}

/// Most candidates kept per transaction: a hostile text cannot make the look-up large.
pub const MAX_CANDIDATES: usize = 16;

static KEYWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)top[\s_-]*up").expect("valid regex"));

/// German structured purpose tags (`SVWZ+`, `EREF:`) often arrive glued to the text around them.
static PURPOSE_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|IBAN|BIC|PURP|COAM|OAMT|SQTP|ENTG)[+:]",
    )
    .expect("valid regex")
});

/// Finds the candidates in the given text fields, best first, each reference once.
/// Fields are searched separately: a reference never spans two fields.
pub fn find_candidates<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<Candidate> {
    let mut found: Vec<(Strength, usize, Uuid)> = Vec::new();
    let mut order = 0usize;
    // One segment's buffers serve every field.
    let mut seg = Segment::default();
    for field in fields {
        scan_field(field, &mut seg, &mut |strength, uuid| {
            found.push((strength, order, uuid));
            order += 1;
        });
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out: Vec<Candidate> = Vec::new();
    for (strength, _, uuid) in found {
        let reference = SettlementReference::from_uuid(uuid);
        if out.iter().all(|c| c.reference != reference) {
            out.push(Candidate {
                reference,
                strength,
            });
            if out.len() == MAX_CANDIDATES {
                break;
            }
        }
    }
    out
}

/// A run of hex digits that only whitespace or hyphens interrupt.
#[derive(Default)]
struct Segment {
    digits: Vec<u8>,
    /// `boundary[k]`: a word boundary stands before digit `k` (`k == len`: after the last).
    boundary: Vec<bool>,
    /// `hyphen[k]`: exactly one hyphen, nothing else, stands before digit `k`.
    hyphen: Vec<bool>,
    /// `after_keyword[k]`: digit `k` is the first letter or digit after a `topup` keyword.
    after_keyword: Vec<bool>,
}

impl Segment {
    /// Makes room for a segment as long as `text`, so that its buffers never grow digit by
    /// digit: growing them cost more than the scan itself.
    fn reserve_for(&mut self, text: &str) {
        let digits = text.len();
        self.digits.reserve(digits);
        self.boundary.reserve(digits + 1);
        self.hyphen.reserve(digits);
        self.after_keyword.reserve(digits);
    }

    /// Empties the segment for the next, keeping its buffers: most segments are a stray hex
    /// letter or two (`thanks`).
    fn clear(&mut self) {
        self.digits.clear();
        self.boundary.clear();
        self.hyphen.clear();
        self.after_keyword.clear();
    }
}

fn scan_field(text: &str, seg: &mut Segment, emit: &mut impl FnMut(Strength, Uuid)) {
    if text.len() < 32 {
        return;
    }
    seg.clear();
    seg.reserve_for(text);
    let keyword_ends: Vec<usize> = KEYWORD.find_iter(text).map(|m| m.end()).collect();
    let tags: Vec<(usize, usize)> = if text.contains(['+', ':']) {
        PURPOSE_TAG
            .find_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect()
    } else {
        Vec::new()
    };
    let tag_starts_at = |i: usize| tags.iter().any(|t| t.0 == i);
    let tag_ends_at = |i: usize| tags.iter().any(|t| t.1 == i);

    let mut gap = String::new();
    let mut prev: Option<char> = None;
    let mut keyword_open = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if keyword_ends.contains(&i) {
            keyword_open = true;
        }
        if c.is_ascii_hexdigit() {
            let k = seg.digits.len();
            let starts_word = prev.is_none_or(|p| !p.is_alphanumeric())
                || tag_ends_at(i)
                || keyword_ends.contains(&i);
            if k == 0 {
                seg.boundary.push(starts_word);
                seg.hyphen.push(false);
            } else if !gap.is_empty() {
                seg.boundary.push(true);
                seg.hyphen.push(gap == "-");
            } else {
                seg.boundary.push(false);
                seg.hyphen.push(false);
            }
            seg.after_keyword.push(keyword_open);
            seg.digits.push(c.to_ascii_lowercase() as u8);
            gap.clear();
            keyword_open = false;
            let next = chars.peek().map(|&(j, n)| (j, n));
            let ends_word = next.is_none_or(|(j, n)| !n.is_alphanumeric() || tag_starts_at(j));
            if next.is_none_or(|(_, n)| !(n.is_ascii_hexdigit() || is_soft(n))) {
                // The segment ends here: close it with the boundary after its last digit.
                seg.boundary.push(ends_word);
                emit_windows(seg, emit);
                seg.clear();
            } else if ends_word && next.is_some_and(|(_, n)| n.is_ascii_hexdigit()) {
                // A purpose tag glued on: treat as a separator inside the segment.
                gap.push('|');
            }
        } else if is_soft(c) && !seg.digits.is_empty() {
            gap.push(c);
        } else {
            if !seg.digits.is_empty() {
                // Only a soft gap keeps a segment open up to here, so a boundary stands after it.
                seg.boundary.push(true);
                emit_windows(seg, emit);
                seg.clear();
            }
            gap.clear();
            if c.is_alphanumeric() {
                keyword_open = false;
            }
        }
        prev = Some(c);
    }
    if !seg.digits.is_empty() {
        seg.boundary.push(true);
        emit_windows(seg, emit);
    }
}

fn is_soft(c: char) -> bool {
    c.is_whitespace() || c == '-'
}

fn emit_windows(seg: &Segment, emit: &mut impl FnMut(Strength, Uuid)) {
    let len = seg.digits.len();
    if len < 32 {
        return;
    }
    for start in 0..=len - 32 {
        let end = start + 32;
        let window = &seg.digits[start..end];
        let Ok(uuid) = Uuid::try_parse_ascii(window) else {
            continue;
        };
        let clean = seg.boundary[start] && seg.boundary[end];
        let inner_breaks = (start + 1..end).filter(|&k| seg.boundary[k]).count();
        let canonical =
            clean && inner_breaks == 4 && [8, 12, 16, 20].iter().all(|&k| seg.hyphen[start + k]);
        let mixed =
            window.iter().any(u8::is_ascii_digit) && window.iter().any(u8::is_ascii_alphabetic);
        let strength = if canonical {
            Strength::Canonical
        } else if clean && seg.after_keyword[start] {
            Strength::AfterKeyword
        } else if clean && mixed {
            Strength::Clean
        } else {
            Strength::Weak
        };
        emit(strength, uuid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REF: &str = "1ab4fef9-a097-4c6f-9345-647025d5fde6";

    fn best(text: &str) -> Option<(String, Strength)> {
        find_candidates([text])
            .first()
            .map(|c| (c.reference.to_string(), c.strength))
    }

    #[test]
    fn finds_the_reference_however_the_bank_mangled_it() {
        let mangled = [
            "topup 1ab4fef9-a097-4c6f-9345-647025d5fde6",
            "TOPUP 1AB4FEF9-A097-4C6F-9345-647025D5FDE6",
            "TOPUP 1AB4FEF9A0974C6F9345647025D5FDE6",
            "Top-Up: 1ab4fef9a0974c6f9345647025d5fde6 thanks",
            "1ab4fef9-a097-4c6f-9345-647025d5fde6",
            "topup 1ab4fef9-a097-4c6f-93\n45-647025d5fde6",
            "TOPUP 1AB4FEF9A0974C6F9345647 025D5FDE6",
            "TOPUP1AB4FEF9A0974C6F9345647025D5FDE6",
            "SVWZ+TOPUP 1AB4FEF9A0974C6F9345647025D5FDE6ABWA+ACME GMBH",
            "EREF+NOTPROVIDEDSVWZ+1AB4FEF9A0974C6F9345647025D5FDE6",
            "payment for order 42 topup 1ab4 fef9 a097 4c6f 9345 6470 25d5 fde6 regards",
            "SVWZ: topup 1ab4fef9-a097-4c6f-9345-647025d5fde6 EREF: 123",
        ];
        for text in mangled {
            let (found, _) = best(text).unwrap_or_else(|| panic!("nothing found in {text:?}"));
            assert_eq!(found, REF, "in {text:?}");
        }
    }

    #[test]
    fn ranks_structure_and_keyword_above_loose_hex() {
        assert_eq!(best(REF).unwrap().1, Strength::Canonical);
        assert_eq!(
            best("TOPUP 1AB4FEF9A0974C6F9345647025D5FDE6").unwrap().1,
            Strength::AfterKeyword
        );
        assert_eq!(
            best("ref 1AB4FEF9A0974C6F9345647025D5FDE6").unwrap().1,
            Strength::Clean
        );
        // A date right after the reference makes a second, worse window; the real one wins.
        let (found, _) = best("topup 1ab4fef9 a097 4c6f 9345 647025d5fde6 20201114").unwrap();
        assert_eq!(found, REF);
    }

    #[test]
    fn glued_hex_is_only_a_weak_candidate() {
        let candidates = find_candidates(["DEADBEEF1AB4FEF9A0974C6F9345647025D5FDE6"]);
        assert!(candidates.iter().all(|c| c.strength == Strength::Weak));
        assert!(candidates.iter().any(|c| c.reference.to_string() == REF));
    }

    #[test]
    fn ordinary_text_has_no_candidates() {
        for text in [
            "",
            "Invoice 2020-11-14 order 12345",
            "DE89370400440532013000 EREF+NOTPROVIDED",
            "12345678901234567890123456789012",
        ] {
            assert!(
                find_candidates([text])
                    .iter()
                    .all(|c| c.strength == Strength::Weak),
                "{text:?}"
            );
        }
    }

    #[test]
    fn several_references_are_all_reported_once() {
        let other = "0b7c4e8a-55a1-4c2e-8d7f-2a9e1c3b4d5f";
        let text = format!("topup {REF} and topup {other} and again {REF}");
        let found: Vec<String> = find_candidates([text.as_str()])
            .iter()
            .filter(|c| c.strength > Strength::Weak)
            .map(|c| c.reference.to_string())
            .collect();
        assert_eq!(found, vec![REF.to_string(), other.to_string()]);
    }

    #[test]
    fn fields_are_searched_separately() {
        assert!(find_candidates(["1ab4fef9a0974c6f", "9345647025d5fde6"]).is_empty());
    }
}
