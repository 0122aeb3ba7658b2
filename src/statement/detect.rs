//! Recognising an input's format from its first bytes, never from its name: the one place that
//! decides which reader reads a file.

use super::csv;
use super::profile::{Profile, ProfileSet};

/// What a file is, as far as its head tells, with what its reader needs to know.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format<'p> {
    /// XML, read as camt (the camt reader tells other XML documents apart), in the encoding its
    /// declaration names, if it names one.
    Camt {
        encoding: Option<&'static encoding_rs::Encoding>,
    },
    /// A SWIFT MT940 statement.
    Mt940,
    /// A CSV export laid out as this profile says.
    Csv(&'p Profile),
}

impl Format<'_> {
    /// The format's family, as [`family`] names a file's format: `camt`, `mt940` or
    /// `csv (PROFILE)`.
    pub fn family(&self) -> String {
        match self {
            Format::Camt { .. } => "camt".to_string(),
            Format::Mt940 => "mt940".to_string(),
            Format::Csv(profile) => format!("csv ({})", profile.name),
        }
    }
}

/// The family of a file's format as the summary and the ledger name it (`camt.053.001.02`,
/// `mt940`, `csv (recon)`): every camt version is one family, each CSV profile is its own.
/// Two files of one family that carry the same transaction carry it alike.
pub fn family(format: &str) -> &str {
    if format.starts_with("camt") {
        "camt"
    } else {
        format
    }
}

/// Decides the format of a file from its head: XML, then MT940, then CSV with `forced` as its
/// profile, else with the profile whose header the head carries. The error says why none fits.
pub fn detect<'p>(
    head: &[u8],
    profiles: &'p ProfileSet,
    forced: Option<&'p Profile>,
) -> Result<Format<'p>, String> {
    let text = without_bom(head).trim_ascii_start();
    if text.starts_with(b"<") {
        return Ok(Format::Camt {
            encoding: declared_encoding(head),
        });
    }
    if is_mt940(text) {
        return Ok(Format::Mt940);
    }
    if head.contains(&0) {
        return Err(
            "the file is binary (expected camt XML, MT940 or a bank's CSV export)".to_string(),
        );
    }
    match forced {
        Some(profile) => Ok(Format::Csv(profile)),
        None => fitting_profile(head, profiles).map(Format::Csv),
    }
}

fn without_bom(head: &[u8]) -> &[u8] {
    head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head)
}

/// A SWIFT block header or a statement's first field at the start (byte-order mark, white
/// space and SOH framing skipped); or, past the header lines banks put before it (`ABNANL2A`,
/// `940 00`, ...), a statement's `:20:` and another of its fields starting lines of the head.
fn is_mt940(text: &[u8]) -> bool {
    let start = text.trim_ascii_start();
    let start = start.strip_prefix(b"\x01").unwrap_or(start);
    if [&b"{1:"[..], b"{4:", b":20:", b":940:"]
        .iter()
        .any(|p| start.starts_with(p))
    {
        return true;
    }
    let mut reference = false;
    let mut other = false;
    for line in text.split(|&b| b == b'\n') {
        let line = line.trim_ascii_start();
        let line = line.strip_prefix(b"\x01").unwrap_or(line);
        reference |= line.starts_with(b":20:");
        other |= [&b":25:"[..], b":28C:", b":60F:", b":60M:", b":61:"]
            .iter()
            .any(|p| line.starts_with(p));
    }
    reference && other
}

/// The encoding an XML declaration at the start names (`<?xml ... encoding="ISO-8859-1"?>`).
fn declared_encoding(head: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let head = without_bom(head);
    let decl_end = head.windows(2).position(|w| w == b"?>")?;
    let decl = head
        .get(..decl_end)?
        .trim_ascii_start()
        .strip_prefix(b"<?xml")?;
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let rest = decl[at + 8..]
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    let quote = *rest.first()?;
    let value = &rest[1..];
    let end = value.iter().position(|&b| b == quote)?;
    encoding_rs::Encoding::for_label(&value[..end])
}

/// How well a file's header fits a profile.
struct Fit<'p> {
    profile: &'p Profile,
    found: usize,
    missing: Vec<String>,
}

/// Finds the profile whose header signature the file's head carries; when several fit, the one
/// with the largest signature (the most specific) wins. The error names the closest ones.
fn fitting_profile<'p>(head: &[u8], profiles: &'p ProfileSet) -> Result<&'p Profile, String> {
    let mut fits: Vec<Fit<'p>> = Vec::new();
    for (profile, _) in profiles.iter() {
        let signature = profile.signature();
        if signature.is_empty() {
            continue;
        }
        let header = csv::header_in(head, profile);
        // A column known by several names is there when any of them is.
        let missing: Vec<String> = signature
            .iter()
            .filter(|names| !names.iter().any(|name| header.contains(name)))
            .map(|names| names.join(" or "))
            .collect();
        fits.push(Fit {
            profile,
            found: signature.len() - missing.len(),
            missing,
        });
    }
    let best = fits.iter().filter(|f| f.missing.is_empty()).max_by(|a, b| {
        a.found
            .cmp(&b.found)
            .then(b.profile.name.cmp(&a.profile.name))
    });
    match best {
        Some(fit) => Ok(fit.profile),
        None => Err(no_profile_fits(fits)),
    }
}

fn no_profile_fits(mut fits: Vec<Fit>) -> String {
    fits.sort_by(|a, b| {
        let score = |f: &Fit| f.found * 1000 / (f.found + f.missing.len()).max(1);
        score(b)
            .cmp(&score(a))
            .then(a.profile.name.cmp(&b.profile.name))
    });
    let closest: Vec<String> = fits
        .iter()
        .take(3)
        .filter(|f| f.found > 0)
        .map(|f| format!("{} (missing {})", f.profile.name, f.missing.join(", ")))
        .collect();
    format!(
        "no CSV profile fits this file's header{}; write a profile for it (start from `recon \
         profiles show recon`, put it under [profiles.NAME] in recon.toml) and pass --profile NAME",
        if closest.is_empty() {
            String::new()
        } else {
            format!("; closest: {}", closest.join("; "))
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(head: &[u8]) -> Result<Format<'static>, String> {
        static PROFILES: std::sync::LazyLock<ProfileSet> =
            std::sync::LazyLock::new(ProfileSet::built_in);
        detect(head, &PROFILES, None)
    }

    #[test]
    fn xml_with_bom_and_space_is_camt() {
        let camt = Ok(Format::Camt { encoding: None });
        assert_eq!(format(b"\xEF\xBB\xBF  \n<?xml"), camt);
        assert_eq!(format(b"<Document>"), camt);
    }

    #[test]
    fn reads_the_declared_encoding() {
        let latin1 = declared_encoding(b"<?xml version='1.0' encoding='ISO-8859-1' ?><a/>");
        assert_eq!(latin1.map(|e| e.name()), Some("windows-1252"));
        assert_eq!(declared_encoding(b"<?xml version=\"1.0\"?><a/>"), None);
        assert_eq!(declared_encoding(b"<a encoding='latin1'/>"), None);
        assert_eq!(
            format(b"<?xml version='1.0' encoding='ISO-8859-1' ?><a/>"),
            Ok(Format::Camt {
                encoding: Some(encoding_rs::WINDOWS_1252)
            })
        );
    }

    #[test]
    fn mt940_is_known_by_its_block_header_or_first_field() {
        for head in [
            &b":20:STARTUMSE\n"[..],
            b"\xEF\xBB\xBF\r\n:20:X",
            b"{1:F01BANKDEFFXXXX0000000000}{2:O940}{4:\n:20:X",
            b":940:\n:20:X",
            b"\x01{1:F01ABNANL2AXXXX0000000000}",
            b"ABNANL2A\r\n940\r\nABNANL2A\r\n:20:ABN AMRO BANK NV\r\n:25:517852257\r\n",
            b"0000 01INGBNL2AXXXX00001\n0000 01INGBNL2AXXXX00001\n940 00\n:20:P1\n:25:NL1\n",
        ] {
            assert_eq!(format(head), Ok(Format::Mt940), "{head:?}");
        }
        // A field tag alone in a CSV's text does not make it MT940.
        let csv = format!("{}\n:20:x,1\n", "booking_date,amount");
        assert_ne!(format(csv.as_bytes()), Ok(Format::Mt940));
    }

    #[test]
    fn csv_gets_the_profile_its_header_fits() {
        let head = b"booking_date,value_date,amount,currency,remittance,counterparty_name,\
                     counterparty_iban,bank_ref,status\n";
        match format(head) {
            Ok(Format::Csv(profile)) => assert_eq!(profile.name, "recon"),
            other => panic!("{other:?}"),
        }
        let unknown = format(b"Datum;Betrag;Text\n").unwrap_err();
        assert!(unknown.starts_with("no CSV profile fits"), "{unknown}");
    }

    #[test]
    fn binary_is_refused_before_any_profile_is_tried() {
        let profiles = ProfileSet::built_in();
        let forced = profiles.get("recon");
        for head in [&b"\x00\x01\x02"[..], b"booking_date\x00"] {
            let refused = detect(head, &profiles, forced).unwrap_err();
            assert!(refused.contains("binary"), "{refused}");
        }
        assert_eq!(
            detect(b"a,b\n", &profiles, forced),
            Ok(Format::Csv(forced.unwrap()))
        );
    }
}
