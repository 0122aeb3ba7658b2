//! The camt reader on arbitrary bytes: it must return a statement or an error, never panic,
//! and every transaction it returns must be well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recon::statement::{Limits, camt};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_text_bytes: 4096,
        max_depth: 32,
        ..Limits::default()
    };
    if let Ok(file) = camt::read(data, &limits, |_, _| Ok(())) {
        for tx in &file.transactions {
            assert!(!tx.amount.is_sign_negative(), "amounts are unsigned");
        }
    }
});
