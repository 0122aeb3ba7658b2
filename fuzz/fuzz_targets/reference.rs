//! Reference extraction on arbitrary text: never panics, finds each reference once, and a
//! UUID planted in the text with the keyword is always found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recon::reference::find_candidates;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let found = find_candidates([text]);
    for (i, a) in found.iter().enumerate() {
        assert!(found[i + 1..].iter().all(|b| b.reference != a.reference));
    }
    let planted = format!("{text} topup 1ab4fef9-a097-4c6f-9345-647025d5fde6 ");
    let found = find_candidates([planted.as_str()]);
    assert!(
        found.iter().any(|c| c.reference.to_string() == "1ab4fef9-a097-4c6f-9345-647025d5fde6"),
        "{planted:?}"
    );
});
