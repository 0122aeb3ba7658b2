//! The top-up and its lifecycle: `NEW -> CONFIRMED -> SETTLED`, `NEW | CONFIRMED -> CANCELLED`.
//! [`Status::check_transition`] is the one place that says which changes are allowed.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::ids::{AccountGroupId, SettlementReference, TopUpId};
use crate::money::{self, Currency};

/// Where a top-up is in its lifecycle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Status {
    New,
    Confirmed,
    Settled,
    Cancelled,
}

/// A lifecycle change that is not allowed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("top-up {id} is {from} and cannot become {to}: {hint}")]
pub struct LifecycleError {
    pub id: TopUpId,
    pub from: Status,
    pub to: Status,
    pub hint: &'static str,
}

/// A text that is not one of the four statuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a top-up status (expected NEW, CONFIRMED, SETTLED or CANCELLED)")]
pub struct BadStatus(pub String);

impl Status {
    /// All statuses, in lifecycle order.
    pub const ALL: [Status; 4] = [
        Status::New,
        Status::Confirmed,
        Status::Settled,
        Status::Cancelled,
    ];

    /// The name used in the API, the database and every file.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Confirmed => "CONFIRMED",
            Status::Settled => "SETTLED",
            Status::Cancelled => "CANCELLED",
        }
    }

    /// Open top-ups are still waiting for money.
    pub fn is_open(&self) -> bool {
        matches!(self, Status::New | Status::Confirmed)
    }

    /// Allows exactly the transitions of the lifecycle; everything else names the current status.
    pub fn check_transition(self, id: TopUpId, to: Status) -> Result<(), LifecycleError> {
        let allowed = matches!(
            (self, to),
            (Status::New, Status::Confirmed)
                | (Status::New | Status::Confirmed, Status::Settled)
                | (Status::New | Status::Confirmed, Status::Cancelled)
        );
        if allowed {
            return Ok(());
        }
        let hint = match self {
            Status::Settled => "settled is final (the money arrived; refund it instead)",
            Status::Cancelled => "cancelled is final",
            Status::New | Status::Confirmed => "only NEW may become CONFIRMED",
        };
        Err(LifecycleError {
            id,
            from: self,
            to,
            hint,
        })
    }
}

impl Status {
    /// Whether a settled top-up may be opened again as `to` (NEW or CONFIRMED, what it was):
    /// only to undo a settlement made by hand in the worklist, which its caller has checked.
    pub fn check_reopen(self, id: TopUpId, to: Status) -> Result<(), LifecycleError> {
        if self == Status::Settled && matches!(to, Status::New | Status::Confirmed) {
            return Ok(());
        }
        Err(LifecycleError {
            id,
            from: self,
            to,
            hint: "only a top-up settled by hand can be opened again, as it was before",
        })
    }
}

impl FromStr for Status {
    type Err = BadStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| BadStatus(crate::text::clip(text, 40)))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A top-up as the API returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopUp {
    pub id: TopUpId,
    pub created_at: DateTime<Utc>,
    pub account_group_id: AccountGroupId,
    pub cash_amount: Decimal,
    pub currency: Currency,
    pub status: Status,
    pub settlement_reference: SettlementReference,
}

impl TopUp {
    /// The API's field names, in its order (CSV headers use the same).
    pub const FIELDS: [&'static str; 7] = [
        "id",
        "created_at",
        "account_group_id",
        "cash_amount",
        "currency",
        "status",
        "settlement_reference",
    ];

    /// The amount as the API shows it (`200.00`).
    pub fn cash_amount_text(&self) -> String {
        money::format_amount(self.cash_amount, self.currency)
    }

    /// Whole days between the top-up's creation and `now`: how long it has waited for money.
    pub fn age_days(&self, now: DateTime<Utc>) -> i64 {
        (now - self.created_at).num_days()
    }
}

/// What a client asks for when it creates a top-up, as typed (API body or command line).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTopUp {
    pub account_group_id: String,
    pub cash_amount: String,
    pub currency: String,
}

/// One field of a [`NewTopUp`] that is not valid.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// A create request whose fields are valid: what a new top-up is made of, in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidTopUp {
    pub account_group_id: AccountGroupId,
    pub cash_amount: Decimal,
    pub currency: Currency,
}

impl NewTopUp {
    /// Checks every field (the currency against ISO 4217, the amount in canonical form and no
    /// finer than the currency's minor unit); lists every field that is wrong.
    pub fn validate(&self) -> Result<ValidTopUp, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field, message: String| errors.push(FieldError { field, message });
        let group = self
            .account_group_id
            .parse::<AccountGroupId>()
            .map_err(|e| fail("account_group_id", e.to_string()))
            .ok();
        let currency = Currency::of_money(&self.currency)
            .map_err(|e| fail("currency", e.to_string()))
            .ok();
        let amount = match currency {
            Some(c) => money::parse_topup_amount(&self.cash_amount, c)
                .map_err(|e| fail("cash_amount", e.to_string()))
                .ok(),
            None => None,
        };
        match (group, currency, amount) {
            (Some(account_group_id), Some(currency), Some(cash_amount)) => Ok(ValidTopUp {
                account_group_id,
                cash_amount,
                currency,
            }),
            _ => Err(errors),
        }
    }
}

impl ValidTopUp {
    /// The `CONFIRMED` top-up (id and reference one new UUID), created at `now` to the second.
    pub fn confirm(&self, now: DateTime<Utc>) -> TopUp {
        let uuid = uuid::Uuid::new_v4();
        TopUp {
            id: TopUpId::from_uuid(uuid),
            created_at: chrono::Timelike::with_nanosecond(&now, 0).unwrap_or(now),
            account_group_id: self.account_group_id,
            cash_amount: self.cash_amount,
            currency: self.currency,
            status: Status::Confirmed,
            settlement_reference: SettlementReference::from_uuid(uuid),
        }
    }

    /// The request in one canonical text (group, amount as the API shows it, currency): `"30"`
    /// and `"30.00"` EUR are the same request. For a request written the canonical way it is
    /// the same text the raw fields made before.
    pub fn canonical_text(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.account_group_id,
            money::format_amount(self.cash_amount, self.currency),
            self.currency
        )
    }
}

/// Formats a timestamp the way the API does: `2020-08-24T14:15:22Z`.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Appends `at` spelled as [`format_timestamp`] spells it, without a string of its own (a
/// listing writes millions); years that form cannot hold go through it.
pub fn push_timestamp(out: &mut Vec<u8>, at: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = at.year();
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(format_timestamp(at).as_bytes());
        return;
    }
    let mut digits = |n: u32, width: usize, then: u8| {
        let mut place = 10u32.pow(width as u32 - 1);
        for _ in 0..width {
            out.push(b'0' + (n / place % 10) as u8);
            place /= 10;
        }
        out.push(then);
    };
    digits(year as u32, 4, b'-');
    digits(at.month(), 2, b'-');
    digits(at.day(), 2, b'T');
    digits(at.hour(), 2, b':');
    digits(at.minute(), 2, b':');
    // chrono keeps a leap second as second 59 with a second's more nanoseconds, and writes 60.
    let leap = u32::from(at.nanosecond() >= 1_000_000_000);
    digits(at.second() + leap, 2, b'Z');
}

/// Reads a stored timestamp: the form [`format_timestamp`] writes is read by hand (chrono's
/// general RFC 3339 parser cost more than the rest of a listed top-up), any other RFC 3339
/// form through chrono.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let written = b.len() == 20
        && [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'Z'),
        ]
        .iter()
        .all(|&(i, c)| b[i] == c);
    let fast = written
        .then(|| {
            let date = chrono::NaiveDate::from_ymd_opt(
                digits(0..4)? as i32,
                digits(5..7)?,
                digits(8..10)?,
            )?;
            date.and_hms_opt(digits(11..13)?, digits(14..16)?, digits(17..19)?)
        })
        .flatten();
    match fast {
        Some(at) => Ok(at.and_utc()),
        None => text.parse::<DateTime<Utc>>(),
    }
}

/// The exact JSON contract of the SPEC: field names, order and formats.
impl Serialize for TopUp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("TopUp", 7)?;
        s.serialize_field("id", &self.id.to_string())?;
        s.serialize_field("created_at", &format_timestamp(self.created_at))?;
        s.serialize_field("account_group_id", &self.account_group_id.to_string())?;
        s.serialize_field("cash_amount", &self.cash_amount_text())?;
        s.serialize_field("currency", self.currency.as_str())?;
        s.serialize_field("status", self.status.as_str())?;
        s.serialize_field(
            "settlement_reference",
            &self.settlement_reference.to_string(),
        )?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_timestamp_reads_back_the_same_by_hand_or_through_chrono() {
        let at: DateTime<Utc> = "2026-11-01T08:05:09Z".parse().unwrap();
        assert_eq!(parse_timestamp(&format_timestamp(at)).unwrap(), at);
        // Other RFC 3339 forms still read, through chrono.
        assert_eq!(parse_timestamp("2026-11-01T09:05:09+01:00").unwrap(), at);
        let fraction = parse_timestamp("2026-11-01T08:05:09.250Z").unwrap();
        assert_eq!(fraction.timestamp_subsec_millis(), 250);
        for bad in [
            "2026-13-01T08:05:09Z",
            "2026-02-30T08:05:09Z",
            "2026-11-01T24:05:09Z",
            "2026-11-0aT08:05:09Z",
            "",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_timestamp_spelled_by_hand_is_spelled_as_format_timestamp_spells_it() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        let mut cases: Vec<DateTime<Utc>> = [
            "2026-11-01T08:05:09Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2024-02-29T12:00:00.5Z",
            "1970-01-01T00:00:00Z",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        cases.extend([
            leap,
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::from_timestamp(-62_200_000_000, 0).unwrap(),
        ]);
        // A day's worth of seconds spread over centuries, every field through each digit.
        cases.extend(
            (0..5000).map(|i| DateTime::from_timestamp(i * 1_234_567 + i % 60, 0).unwrap()),
        );
        for at in cases {
            let mut by_hand = Vec::new();
            push_timestamp(&mut by_hand, at);
            assert_eq!(
                String::from_utf8(by_hand).unwrap(),
                format_timestamp(at),
                "{at:?}"
            );
        }
    }

    #[test]
    fn lifecycle_allows_only_documented_transitions() {
        let id: TopUpId = "1ab4fef9-a097-4c6f-9345-647025d5fde6".parse().unwrap();
        let mut allowed = Vec::new();
        for from in Status::ALL {
            for to in Status::ALL {
                if from.check_transition(id, to).is_ok() {
                    allowed.push((from, to));
                }
            }
        }
        use Status::*;
        assert_eq!(
            allowed,
            vec![
                (New, Confirmed),
                (New, Settled),
                (New, Cancelled),
                (Confirmed, Settled),
                (Confirmed, Cancelled)
            ]
        );
        let err = Settled.check_transition(id, Cancelled).unwrap_err();
        assert!(err.to_string().contains("is SETTLED"), "{err}");
    }

    #[test]
    fn serialises_exactly_as_the_api() {
        let topup = TopUp {
            id: "1ab4fef9-a097-4c6f-9345-647025d5fde6".parse().unwrap(),
            created_at: "2020-08-24T14:15:22Z".parse().unwrap(),
            account_group_id: "1ea60f56-b67b-61fc-829a-0242ac130003".parse().unwrap(),
            cash_amount: "200".parse().unwrap(),
            currency: "EUR".parse().unwrap(),
            status: Status::Confirmed,
            settlement_reference: "1ab4fef9-a097-4c6f-9345-647025d5fde6".parse().unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&topup).unwrap(),
            r#"{"id":"1ab4fef9-a097-4c6f-9345-647025d5fde6","created_at":"2020-08-24T14:15:22Z","account_group_id":"1ea60f56-b67b-61fc-829a-0242ac130003","cash_amount":"200.00","currency":"EUR","status":"CONFIRMED","settlement_reference":"1ab4fef9-a097-4c6f-9345-647025d5fde6"}"#
        );
    }
}
