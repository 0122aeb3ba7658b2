//! CSV profiles: how one bank's CSV export is laid out. Built-in profiles are TOML compiled into
//! the binary (`profiles.toml`); users add their own in the same form under `[profiles.NAME]`.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

const BUILT_IN: &str = include_str!("profiles.toml");

/// A column by header name (`"Betrag"`), by alternative header names (`["IBAN Kontoinhaber",
/// "IBAN Auftraggeberkonto"]`: the same bank's exports of different years; the first the
/// header has is taken), or by 1-based position (`9`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Col {
    Position(usize),
    Name(String),
    Names(Vec<String>),
}

impl Col {
    /// The header names that stand for this column (none for a position).
    pub fn names(&self) -> &[String] {
        match self {
            Col::Position(_) => &[],
            Col::Name(name) => std::slice::from_ref(name),
            Col::Names(names) => names,
        }
    }
}

impl std::fmt::Display for Col {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Col::Position(p) => write!(f, "column {p}"),
            Col::Name(n) => write!(f, "column {n}"),
            Col::Names(names) => write!(f, "column {}", names.join(" or ")),
        }
    }
}

/// Which columns hold what.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub booking_date: Option<Col>,
    pub value_date: Option<Col>,
    /// The amount, signed or not (see `direction`).
    pub amount: Option<Col>,
    /// Unsigned debit amounts, when debits and credits have separate columns.
    pub debit: Option<Col>,
    /// Unsigned credit amounts, when debits and credits have separate columns.
    pub credit: Option<Col>,
    pub currency: Option<Col>,
    /// Purpose text, possibly spread over several columns, joined in order.
    #[serde(default)]
    pub remittance: Vec<Col>,
    pub counterparty_name: Option<Col>,
    /// The payer's name, for exports with separate payer and payee columns (used for credits).
    pub payer_name: Option<Col>,
    /// The payee's name, for exports with separate payer and payee columns (used for debits).
    pub payee_name: Option<Col>,
    pub counterparty_iban: Option<Col>,
    pub bank_ref: Option<Col>,
    /// Our own account (IBAN or number).
    pub account: Option<Col>,
}

/// How a row shows whether money came in or went out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "by", rename_all = "lowercase", deny_unknown_fields)]
pub enum DirectionRule {
    /// A negative amount is a debit.
    #[default]
    Sign,
    /// A column says which, e.g. `Transaction Type` = `CREDIT` / `DEBIT`.
    Indicator {
        column: Col,
        credit: Vec<String>,
        debit: Vec<String>,
    },
    /// Separate unsigned `debit` and `credit` columns; one of them is filled.
    Columns,
}

/// A status column and which of its values mean booked or pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRule {
    pub column: Col,
    pub booked: Vec<String>,
    pub pending: Vec<String>,
    /// The column may be missing from the file (then every row is booked).
    #[serde(default)]
    pub optional: bool,
}

/// A CSV export format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    #[serde(default = "default_quote")]
    pub quote: String,
    /// `utf-8`, `windows-1252`, `iso-8859-1`, `iso-8859-15`, ... (any WHATWG label).
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Physical lines before the header row.
    #[serde(default)]
    pub skip_lines: usize,
    /// The header row is the first row whose first field is this text (after any preamble).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_marker: Option<String>,
    /// Whether the file has a header row (without one, columns are positions).
    #[serde(default = "yes")]
    pub has_header: bool,
    #[serde(default = "default_decimal")]
    pub decimal_separator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thousands_separator: Option<String>,
    /// Date formats tried in order: `dd.MM.yy`, `dd/MM/yyyy`, `yyyy-MM-dd HH:mm:ss`, ...
    #[serde(default = "default_dates")]
    pub date_format: Vec<String>,
    /// The currency of every row, for files without a currency column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Trim spaces around every field (for space-padded exports).
    #[serde(default = "yes")]
    pub trim: bool,
    /// Columns some rows leave out entirely: a row short by N fields gets empty fields where
    /// the first N of these stand in the header.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted_in_short_rows: Vec<String>,
    /// Header names that identify the format; default: every column named in `columns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect: Option<Vec<String>>,
    pub columns: Columns,
    #[serde(default)]
    pub direction: DirectionRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusRule>,
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_quote() -> String {
    "\"".into()
}
fn default_encoding() -> String {
    "utf-8".into()
}
fn default_decimal() -> String {
    ".".into()
}
fn default_dates() -> Vec<String> {
    vec!["yyyy-MM-dd".into()]
}
fn yes() -> bool {
    true
}

/// A profile that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("profile {name}: {message}")]
pub struct ProfileError {
    pub name: String,
    pub message: String,
}

#[derive(Deserialize)]
struct ProfilesFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

impl Profile {
    /// The delimiter byte.
    pub fn delimiter_byte(&self) -> u8 {
        self.delimiter.as_bytes().first().copied().unwrap_or(b',')
    }

    /// The quote byte.
    pub fn quote_byte(&self) -> u8 {
        self.quote.as_bytes().first().copied().unwrap_or(b'"')
    }

    /// The encoding (validated when the profile is loaded).
    pub fn encoding(&self) -> &'static encoding_rs::Encoding {
        encoding_rs::Encoding::for_label(self.encoding.as_bytes()).unwrap_or(encoding_rs::UTF_8)
    }

    /// The columns that must all be in a header for detection, each as the names that stand
    /// for it (one, or the alternatives of a column named several ways).
    pub fn signature(&self) -> Vec<Vec<String>> {
        if let Some(names) = &self.detect {
            return names.iter().map(|n| vec![n.clone()]).collect();
        }
        let optional_status = self
            .status
            .as_ref()
            .filter(|s| s.optional)
            .map(|s| &s.column);
        let mut names: Vec<Vec<String>> = self
            .columns_used()
            .into_iter()
            .filter(|c| !optional_status.is_some_and(|s| std::ptr::eq(*c, s)))
            .map(|c| c.names().to_vec())
            .filter(|names| !names.is_empty())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every column the profile reads: `columns`, the direction's indicator and the status.
    fn columns_used(&self) -> Vec<&Col> {
        let c = &self.columns;
        let mut cols: Vec<&Col> = [
            &c.booking_date,
            &c.value_date,
            &c.amount,
            &c.debit,
            &c.credit,
            &c.currency,
            &c.counterparty_name,
            &c.payer_name,
            &c.payee_name,
            &c.counterparty_iban,
            &c.bank_ref,
            &c.account,
        ]
        .into_iter()
        .flatten()
        .collect();
        cols.extend(&c.remittance);
        if let DirectionRule::Indicator { column, .. } = &self.direction {
            cols.push(column);
        }
        if let Some(status) = &self.status {
            cols.push(&status.column);
        }
        cols
    }

    /// Checks what serde cannot: one-character separators, a known encoding, the columns the
    /// direction rule needs, date formats.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let fail = |message: String| ProfileError {
            name: self.name.clone(),
            message,
        };
        for (what, value) in [("delimiter", &self.delimiter), ("quote", &self.quote)] {
            if value.len() != 1 {
                return Err(fail(format!(
                    "{what} must be one ASCII character, not {value:?}"
                )));
            }
        }
        if encoding_rs::Encoding::for_label(self.encoding.as_bytes()).is_none() {
            return Err(fail(format!("unknown encoding {:?}", self.encoding)));
        }
        if let Some(cur) = &self.currency {
            cur.parse::<crate::money::Currency>()
                .map_err(|e| fail(format!("currency: {e}")))?;
        }
        let c = &self.columns;
        match &self.direction {
            DirectionRule::Columns if c.debit.is_none() || c.credit.is_none() => {
                return Err(fail(
                    "direction by columns needs columns.debit and columns.credit".into(),
                ));
            }
            DirectionRule::Sign | DirectionRule::Indicator { .. } if c.amount.is_none() => {
                return Err(fail("columns.amount is missing".into()));
            }
            _ => {}
        }
        if self
            .columns_used()
            .iter()
            .any(|c| matches!(c, Col::Names(names) if names.is_empty()))
        {
            return Err(fail(
                "a column given as a list of header names needs at least one".into(),
            ));
        }
        if c.currency.is_none() && self.currency.is_none() {
            return Err(fail("give columns.currency or a fixed currency".into()));
        }
        if !self.has_header {
            let named = self.signature();
            if self.detect.is_none() && !named.is_empty() {
                return Err(fail(
                    "without a header row, columns must be positions".into(),
                ));
            }
        }
        for format in &self.date_format {
            chrono_format(format).map_err(fail)?;
        }
        Ok(())
    }

    /// Parses a date with the profile's formats; an empty text is no date.
    pub fn parse_date(&self, text: &str) -> Result<Option<NaiveDate>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        for format in &self.date_format {
            let Ok(pattern) = chrono_format(format) else {
                continue;
            };
            let date = if pattern.contains("%H") {
                NaiveDateTime::parse_from_str(text, &pattern).map(|at| at.date())
            } else {
                NaiveDate::parse_from_str(text, &pattern)
            };
            // chrono reads year 0000 (and signed years); no bank books on them.
            if let Ok(date) = date
                && (1..=9999).contains(&date.year())
            {
                return Ok(Some(date));
            }
        }
        Err(format!(
            "{:?} is not a date (expected {})",
            crate::text::clip(text, 30),
            self.date_format.join(" or ")
        ))
    }

    /// Parses a signed amount with the profile's separators (`-1.234,56`, `+50,00`).
    pub fn parse_amount(&self, text: &str) -> Result<Decimal, String> {
        let raw = text.trim();
        let bad = || {
            let example = if self.decimal_separator == "," {
                "-1234,56"
            } else {
                "-1234.56"
            };
            format!(
                "{:?} is not an amount (expected e.g. {example})",
                crate::text::clip(raw, 30)
            )
        };
        let (negative, digits) = match raw.as_bytes().first() {
            Some(b'-') => (true, &raw[1..]),
            Some(b'+') => (false, &raw[1..]),
            _ => (false, raw),
        };
        let mut plain = String::with_capacity(digits.len());
        let mut seen_decimal = false;
        for c in digits.trim().chars() {
            if self
                .thousands_separator
                .as_deref()
                .is_some_and(|t| t.starts_with(c))
                && !seen_decimal
            {
                continue;
            }
            if self.decimal_separator.starts_with(c) && !seen_decimal {
                plain.push('.');
                seen_decimal = true;
            } else if c.is_ascii_digit() {
                plain.push(c);
            } else {
                return Err(bad());
            }
        }
        let value = crate::money::parse_amount(&plain, crate::money::MAX_BANK_DECIMALS)
            .map_err(|_| bad())?;
        Ok(if negative { -value } else { value })
    }
}

/// Turns `dd.MM.yyyy HH:mm:ss` into chrono's `%d.%m.%Y %H:%M:%S`.
fn chrono_format(format: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = format;
    const TOKENS: [(&str, &str); 8] = [
        ("yyyy", "%Y"),
        ("yy", "%y"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("SSS", "%3f"),
    ];
    'outer: while !rest.is_empty() {
        for (token, chrono) in TOKENS {
            if let Some(after) = rest.strip_prefix(token) {
                out.push_str(chrono);
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().expect("not empty");
        if c.is_ascii_alphabetic() {
            return Err(format!(
                "date format {format:?}: unknown letter {c:?} (use yyyy, yy, MM, dd, HH, mm, ss, SSS)"
            ));
        }
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// The profiles in force: built-in ones plus the user's (which may replace a built-in by name).
#[derive(Clone, Debug)]
pub struct ProfileSet {
    profiles: BTreeMap<String, (Profile, Origin)>,
}

/// Where a profile was defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    File(String),
}

impl ProfileSet {
    /// No profiles at all.
    pub fn empty() -> ProfileSet {
        ProfileSet {
            profiles: BTreeMap::new(),
        }
    }

    /// The built-in profiles.
    pub fn built_in() -> ProfileSet {
        let mut set = ProfileSet {
            profiles: BTreeMap::new(),
        };
        set.add_toml(BUILT_IN, Origin::BuiltIn)
            .expect("built-in profiles are valid");
        set
    }

    /// Adds the `[profiles.*]` of a TOML text.
    pub fn add_toml(&mut self, text: &str, origin: Origin) -> Result<(), ProfileError> {
        let where_ = match &origin {
            Origin::BuiltIn => "built-in".to_string(),
            Origin::File(path) => path.clone(),
        };
        let file: ProfilesFile = toml::from_str(text).map_err(|e| ProfileError {
            name: where_.clone(),
            message: e.to_string(),
        })?;
        for (name, mut profile) in file.profiles {
            profile.name = name.clone();
            profile.validate()?;
            self.profiles.insert(name, (profile, origin.clone()));
        }
        Ok(())
    }

    /// A profile by name.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name).map(|(p, _)| p)
    }

    /// Every profile with where it came from, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&Profile, &Origin)> {
        self.profiles.values().map(|(p, o)| (p, o))
    }

    /// A profile as TOML, ready to copy into a `recon.toml`.
    pub fn to_toml(profile: &Profile) -> String {
        let mut wrapper = BTreeMap::new();
        let mut inner = BTreeMap::new();
        inner.insert(profile.name.clone(), profile.clone());
        wrapper.insert("profiles", inner);
        toml::to_string_pretty(&wrapper).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_profiles_load_and_print_back_the_same() {
        let set = ProfileSet::built_in();
        assert!(set.iter().count() >= 13);
        for (profile, _) in set.iter() {
            let text = ProfileSet::to_toml(profile);
            let mut again = ProfileSet {
                profiles: BTreeMap::new(),
            };
            again.add_toml(&text, Origin::BuiltIn).unwrap();
            assert_eq!(again.get(&profile.name), Some(profile), "{text}");
        }
    }

    #[test]
    fn dates_and_amounts_follow_the_profile() {
        let mut p = ProfileSet::built_in().get("dkb").unwrap().clone();
        assert_eq!(
            p.parse_date("08.12.25").unwrap().unwrap().to_string(),
            "2025-12-08"
        );
        assert_eq!(p.parse_amount("-1.234,5").unwrap().to_string(), "-1234.5");
        assert_eq!(p.parse_amount("+50,00").unwrap().to_string(), "50.00");
        assert!(
            p.parse_amount("12,5O")
                .unwrap_err()
                .contains("\"12,5O\" is not an amount")
        );
        p.date_format = vec!["yyyy-MM-dd HH:mm:ss".into()];
        assert_eq!(
            p.parse_date("2022-01-02 12:16:55")
                .unwrap()
                .unwrap()
                .to_string(),
            "2022-01-02"
        );
        assert!(p.parse_date("2022-13-02 12:16:55").is_err());
        p.date_format = vec!["yyyy-MM-dd".into(), "yyyy-MM-dd HH:mm".into()];
        for bad in [
            "2026-11-21garbage",
            "2026-11-21T25:99",
            "2026-11-21 25:99",
            "0000-01-01",
        ] {
            let err = p.parse_date(bad).unwrap_err();
            assert!(err.contains("is not a date"), "{bad}: {err}");
        }
        assert_eq!(p.parse_date("  ").unwrap(), None);
    }

    #[test]
    fn bad_profiles_are_refused_with_a_reason() {
        let mut set = ProfileSet {
            profiles: BTreeMap::new(),
        };
        let err = set
            .add_toml(
                "[profiles.x]\ndelimiter=';;'\n[profiles.x.columns]\namount='A'\ncurrency='C'\n",
                Origin::BuiltIn,
            )
            .unwrap_err();
        assert!(err.to_string().contains("delimiter"), "{err}");
        let err = set
            .add_toml("[profiles.x]\ndate_format=['dd.QQ']\n[profiles.x.columns]\namount='A'\ncurrency='C'\n", Origin::BuiltIn)
            .unwrap_err();
        assert!(err.to_string().contains("unknown letter"), "{err}");
        let err = set
            .add_toml(
                "[profiles.x]\n[profiles.x.columns]\namount='A'\n",
                Origin::BuiltIn,
            )
            .unwrap_err();
        assert!(err.to_string().contains("currency"), "{err}");
        let err = set
            .add_toml(
                "[profiles.x]\n[profiles.x.columns]\namount='A'\ncurrency=[]\n",
                Origin::BuiltIn,
            )
            .unwrap_err();
        assert!(err.to_string().contains("needs at least one"), "{err}");
    }

    #[test]
    fn a_column_with_alternative_names_is_one_entry_of_the_signature() {
        let set = ProfileSet::built_in();
        let commerzbank = set.get("commerzbank").unwrap();
        let account = vec![
            "IBAN Kontoinhaber".to_string(),
            "IBAN Auftraggeberkonto".to_string(),
        ];
        assert_eq!(
            commerzbank.columns.account,
            Some(Col::Names(account.clone()))
        );
        assert!(commerzbank.signature().contains(&account));
        assert!(
            commerzbank
                .signature()
                .contains(&vec!["Betrag".to_string()])
        );
    }
}
