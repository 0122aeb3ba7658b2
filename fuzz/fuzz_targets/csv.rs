//! The CSV reader (every built-in profile, and detection) and the MT940 reader on arbitrary
//! bytes: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recon::statement::detect::{self, Format};
use recon::statement::profile::ProfileSet;
use recon::statement::{Limits, csv, mt940};

fuzz_target!(|data: &[u8]| {
    let profiles = ProfileSet::built_in();
    let limits = Limits {
        max_text_bytes: 4096,
        ..Limits::default()
    };
    if let Ok(Format::Csv(profile)) = detect::detect(data, &profiles, None) {
        let _ = csv::read(data, profile, &limits, true);
    }
    for (profile, _) in profiles.iter().take(3) {
        let _ = csv::read(data, profile, &limits, false);
    }
    let _ = mt940::read(data, &limits);
});
