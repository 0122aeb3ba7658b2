//! Money: amounts are `rust_decimal::Decimal`, currencies are three-letter codes whose minor units
//! come from ISO 4217 (the `iso_currency` crate's table).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// A three-letter currency code (`EUR`), validated for shape, not against a list:
/// banks send codes such as `XXX` that are legal but rare.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// Why a text is not a currency or an amount.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("{0:?} is not a currency code (expected three letters such as EUR)")]
    Currency(String),
    #[error("{0:?} is not an amount (expected digits with an optional '.' and up to {1} decimals)")]
    Amount(String, u32),
    #[error("{0} {1} has more decimals than {1} allows ({2})")]
    TooPrecise(String, Currency, u32),
    #[error("a top-up amount must be greater than zero, not {0}")]
    NotPositive(String),
    #[error(
        "{0:?} is not written the canonical way (digits, and a '.' only with decimals after it: \
         200, 200.5 or 0.50; no leading zeros)"
    )]
    NotCanonical(String),
    #[error("{0} is not an ISO 4217 currency code")]
    NotIso(String),
    #[error(
        "{0} has no minor unit in ISO 4217 (a metal, a test or a no-currency code); top-ups are in money"
    )]
    NotMoney(String),
}

/// What ISO 4217 says of a three-letter code: its minor unit, or that it has none.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Iso {
    MinorUnits(u8),
    NoMinorUnit,
    Unknown,
}

/// Every three-letter code's [`Iso`], indexed by the letters (26³ entries), built once from the
/// `iso_currency` crate: the report asks for minor units once per amount it shows.
fn iso(code: [u8; 3]) -> Iso {
    static TABLE: std::sync::OnceLock<Vec<Iso>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = vec![Iso::Unknown; 26 * 26 * 26];
        for (i, entry) in table.iter_mut().enumerate() {
            let letters = [
                (i / 676) as u8 + b'A',
                (i / 26 % 26) as u8 + b'A',
                (i % 26) as u8 + b'A',
            ];
            let text = std::str::from_utf8(&letters).expect("ASCII letters");
            if let Some(currency) = iso_currency::Currency::from_code(text) {
                *entry = match currency.exponent() {
                    Some(units) => Iso::MinorUnits(units as u8),
                    None => Iso::NoMinorUnit,
                };
            }
        }
        table
    });
    let index = |b: u8| usize::from(b.wrapping_sub(b'A'));
    let [a, b, c] = code;
    table
        .get(index(a) * 676 + index(b) * 26 + index(c))
        .filter(|_| code.iter().all(u8::is_ascii_uppercase))
        .copied()
        .unwrap_or(Iso::Unknown)
}

impl Currency {
    /// The code as text, always upper-case.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point in this currency's minor unit (ISO 4217); none for the
    /// codes ISO gives no minor unit (`XXX`, metals), two for a code ISO does not list.
    pub fn minor_units(&self) -> u32 {
        match iso(self.0) {
            Iso::MinorUnits(units) => u32::from(units),
            Iso::NoMinorUnit => 0,
            Iso::Unknown => 2,
        }
    }

    /// Parses a currency a top-up may be in: a code ISO 4217 lists, with a minor unit (banks may
    /// send any code, and [`FromStr`] keeps those; a new top-up is held to the standard).
    pub fn of_money(text: &str) -> Result<Currency, MoneyError> {
        let currency: Currency = text.parse()?;
        match iso(currency.0) {
            Iso::MinorUnits(_) => Ok(currency),
            Iso::NoMinorUnit => Err(MoneyError::NotMoney(currency.as_str().to_string())),
            Iso::Unknown => Err(MoneyError::NotIso(currency.as_str().to_string())),
        }
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    /// Accepts three ASCII letters in any case; stores them upper-case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.trim().as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_alphabetic) => Ok(Currency([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(MoneyError::Currency(clip(text))),
        }
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

/// Largest number of decimals a bank amount may carry (ISO 20022 allows five).
pub const MAX_BANK_DECIMALS: u32 = 5;

/// Parses a plain non-negative decimal (`200`, `200.5`, `0.00001`): no sign, no exponent,
/// no thousands separators, at most `max_decimals` decimals and 18 integer digits.
pub fn parse_amount(text: &str, max_decimals: u32) -> Result<Decimal, MoneyError> {
    let trimmed = text.trim();
    let bad = || MoneyError::Amount(clip(text), max_decimals);
    let (int, frac) = match trimmed.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (trimmed, ""),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || int.len() > 18
        || frac.len() > max_decimals as usize
        || !digits_ok(int)
        || !digits_ok(frac)
    {
        return Err(bad());
    }
    Decimal::from_str(trimmed).map_err(|_| bad())
}

/// Parses a top-up amount: written the canonical way (`200`, `200.5`, `0.50`; not `5.`, `.5`
/// or `0200`), positive, and no finer than the currency's minor unit.
pub fn parse_topup_amount(text: &str, currency: Currency) -> Result<Decimal, MoneyError> {
    let amount = parse_amount(text, 8)?;
    let trimmed = text.trim();
    let (int, frac) = match trimmed.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (trimmed, None),
    };
    if int.is_empty() || frac == Some("") || (int.len() > 1 && int.starts_with('0')) {
        return Err(MoneyError::NotCanonical(clip(text)));
    }
    if amount.is_zero() {
        return Err(MoneyError::NotPositive(clip(text)));
    }
    if amount.normalize().scale() > currency.minor_units() {
        return Err(MoneyError::TooPrecise(
            clip(text),
            currency,
            currency.minor_units(),
        ));
    }
    Ok(amount)
}

/// Renders an amount with at least the currency's minor-unit decimals (`200` EUR -> `200.00`),
/// keeping any finer precision the bank sent.
pub fn format_amount(amount: Decimal, currency: Currency) -> String {
    canonical_amount(amount, currency).to_string()
}

/// The amount as [`format_amount`] shows it (its `Display`), for writers that spell it into
/// a buffer of their own without a string each.
pub fn canonical_amount(amount: Decimal, currency: Currency) -> Decimal {
    let mut shown = amount.normalize();
    let scale = shown.scale().max(currency.minor_units());
    shown.rescale(scale);
    shown
}

/// Keeps error messages short when the offending text is huge.
fn clip(text: &str) -> String {
    crate::text::clip(text, 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        "EUR".parse().unwrap()
    }

    #[test]
    fn amounts_compare_as_decimals() {
        let a = parse_amount("200", 5).unwrap();
        let b = parse_amount("200.0", 5).unwrap();
        let c = parse_amount("200.00000", 5).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
    }

    #[test]
    fn rejects_malformed_amounts() {
        for bad in [
            "", ".", "-1", "+1", "1e3", "12,50", "12.5O", "1.234567", "1 000", "NaN",
        ] {
            assert!(parse_amount(bad, 5).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(parse_amount(".5", 5).unwrap().to_string(), "0.5");
    }

    #[test]
    fn topup_amounts_respect_minor_units() {
        assert!(parse_topup_amount("200.001", eur()).is_err());
        assert!(parse_topup_amount("0", eur()).is_err());
        assert!(parse_topup_amount("200.010", eur()).is_ok());
        let jpy: Currency = "jpy".parse().unwrap();
        assert!(parse_topup_amount("100.5", jpy).is_err());
        assert_eq!(format_amount(Decimal::from(100), jpy), "100");
    }

    #[test]
    fn formats_with_minor_units_and_keeps_bank_precision() {
        assert_eq!(
            format_amount(parse_amount("200", 5).unwrap(), eur()),
            "200.00"
        );
        assert_eq!(
            format_amount(parse_amount("1.23456", 5).unwrap(), eur()),
            "1.23456"
        );
    }

    #[test]
    fn topup_amounts_are_written_the_canonical_way() {
        for bad in ["5.", ".5", "05", "00.50", "0200.00"] {
            assert_eq!(
                parse_topup_amount(bad, eur()),
                Err(MoneyError::NotCanonical(bad.to_string())),
                "{bad:?}"
            );
        }
        for good in ["5", "5.5", "0.50", "200.00", "10"] {
            assert!(parse_topup_amount(good, eur()).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn minor_units_come_from_iso_4217() {
        for (code, units) in [
            ("EUR", 2),
            ("JPY", 0),
            ("KWD", 3),
            ("CLF", 4),
            ("XXX", 0),
            ("XAU", 0),
            ("ZZZ", 2),
        ] {
            assert_eq!(
                code.parse::<Currency>().unwrap().minor_units(),
                units,
                "{code}"
            );
        }
    }

    #[test]
    fn a_topup_currency_is_an_iso_4217_code_of_money() {
        assert_eq!(Currency::of_money("eur").unwrap().as_str(), "EUR");
        assert_eq!(
            Currency::of_money("ZZZ"),
            Err(MoneyError::NotIso("ZZZ".into()))
        );
        assert_eq!(
            Currency::of_money("XAU"),
            Err(MoneyError::NotMoney("XAU".into()))
        );
        assert!(matches!(
            Currency::of_money("EURO"),
            Err(MoneyError::Currency(_))
        ));
    }

    #[test]
    fn currency_shape() {
        assert_eq!("eur".parse::<Currency>().unwrap().as_str(), "EUR");
        for bad in ["EURO", "E1R", "", "€€€"] {
            assert!(bad.parse::<Currency>().is_err(), "{bad:?}");
        }
    }
}
