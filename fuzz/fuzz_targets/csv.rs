//! The CSV reader (every built-in profile, and detection) and the MT940 reader on arbitrary
//! bytes: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recon::statement::csv::CsvReader;
use recon::statement::detect::{self, Format};
use recon::statement::mt940::Mt940Reader;
use recon::statement::profile::ProfileSet;
use recon::statement::{Limits, StatementReader};

fuzz_target!(|data: &[u8]| {
    let profiles = ProfileSet::built_in();
    let limits = Limits {
        max_text_bytes: 4096,
        ..Limits::default()
    };
    if let Ok(Format::Csv(profile)) = detect::detect(data, &profiles, None) {
        let reader = CsvReader {
            profile,
            skip_bad_rows: true,
        };
        let _ = reader.read_all(data, &limits);
    }
    for (profile, _) in profiles.iter().take(3) {
        let reader = CsvReader {
            profile,
            skip_bad_rows: false,
        };
        let _ = reader.read_all(data, &limits);
    }
    let _ = Mt940Reader.read_all(data, &limits);
});
