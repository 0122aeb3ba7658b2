//! The camt reader on arbitrary bytes: it must return a statement or an error, never panic,
//! and every transaction it returns must be well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recon::statement::camt::CamtReader;
use recon::statement::detect::{self, Format};
use recon::statement::profile::ProfileSet;
use recon::statement::{Limits, StatementReader};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_text_bytes: 4096,
        max_depth: 32,
        ..Limits::default()
    };
    // With the encoding detection finds, so a declared one is transcoded as in a run.
    let reader = match detect::detect(data, &ProfileSet::empty(), None) {
        Ok(Format::Camt { encoding }) => CamtReader { encoding },
        _ => CamtReader::default(),
    };
    if let Ok((_, transactions)) = reader.read_all(data, &limits) {
        for tx in &transactions {
            assert!(!tx.amount.is_sign_negative(), "amounts are unsigned");
        }
    }
});
