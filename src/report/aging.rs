//! Open top-ups by age: the buckets a report shows all of them in, chosen around the stale
//! threshold, and the creation times that bound an age, so that the database can count and
//! list by them without recon reading every open top-up.

use chrono::{DateTime, TimeDelta, Utc};

use crate::topup::format_timestamp;

/// Ages in whole days that end a bucket, besides the stale threshold: a day, a week, a month.
const EDGES_DAYS: [i64; 3] = [1, 7, 30];

/// The buckets' age spans in whole days, youngest first, the last open-ended. The stale
/// threshold always ends a bucket, so the buckets after it hold exactly the stale top-ups
/// (older than `stale_after_days`): with the default 14, `0–1`, `2–7`, `8–14`, `15–30`,
/// `over 30` days.
pub fn spans(stale_after_days: i64) -> Vec<(i64, Option<i64>)> {
    let mut edges: Vec<i64> = EDGES_DAYS.to_vec();
    edges.push(stale_after_days.max(0));
    edges.sort_unstable();
    edges.dedup();
    let mut from = 0;
    let mut spans = Vec::with_capacity(edges.len() + 1);
    for to in edges {
        spans.push((from, Some(to)));
        from = to + 1;
    }
    spans.push((from, None));
    spans
}

/// The newest creation time, as the database spells it, of a top-up at least `days` whole
/// days old at `as_of` ([`crate::topup::TopUp::age_days`]). Creation times are whole seconds
/// in a fixed-width form, so comparing the texts compares the times.
pub fn created_by(as_of: DateTime<Utc>, days: i64) -> String {
    format_timestamp(created_by_time(as_of, days))
}

/// The newest creation time of a top-up at least `days` whole days old at `as_of`.
fn created_by_time(as_of: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    TimeDelta::try_days(days)
        .and_then(|span| as_of.checked_sub_signed(span))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The creation times of the top-ups whose age at `as_of` is within a span: after the first
/// (exclusive) and up to the second (inclusive); `None` leaves that side open.
pub fn created_span(
    as_of: DateTime<Utc>,
    (from_days, to_days): (i64, Option<i64>),
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let after = to_days.map(|to| created_by_time(as_of, to + 1));
    // Every top-up is at least 0 days old, even one created after `as_of`.
    let until = (from_days > 0).then(|| created_by_time(as_of, from_days));
    (after, until)
}

/// The newest creation time of a top-up that is stale at `as_of`: older than
/// `stale_after_days` whole days.
pub fn stale_until(as_of: DateTime<Utc>, stale_after_days: i64) -> String {
    created_by(as_of, stale_after_days.max(0) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topup::parse_timestamp;

    #[test]
    fn the_stale_threshold_ends_a_bucket() {
        let show = |n| {
            spans(n)
                .into_iter()
                .map(|(from, to)| match to {
                    Some(to) => format!("{from}-{to}"),
                    None => format!("{from}+"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(show(14), "0-1 2-7 8-14 15-30 31+");
        assert_eq!(show(7), "0-1 2-7 8-30 31+");
        assert_eq!(show(0), "0-0 1-1 2-7 8-30 31+");
        assert_eq!(show(3), "0-1 2-3 4-7 8-30 31+");
        assert_eq!(show(90), "0-1 2-7 8-30 31-90 91+");
    }

    /// The creation spans put each top-up in the bucket of its age in whole days, at every
    /// moment of the day around the edges (the database compares the texts).
    #[test]
    fn a_creation_span_holds_exactly_the_top_ups_of_its_ages() {
        let as_of: DateTime<Utc> = "2026-12-07T01:30:00.750Z".parse().unwrap();
        let second: DateTime<Utc> = "2026-12-07T01:30:00Z".parse().unwrap();
        let spans = spans(14);
        let around_each_day = (-2..=45).flat_map(|days| {
            (-1..=1).map(move |s| second - TimeDelta::days(days) + TimeDelta::seconds(s))
        });
        for created in around_each_day {
            let text = format_timestamp(created);
            let age = (as_of - parse_timestamp(&text).unwrap()).num_days();
            let holding: Vec<usize> = spans
                .iter()
                .enumerate()
                .filter(|(_, span)| {
                    let (after, until) = created_span(as_of, **span);
                    let (after, until) = (after.map(format_timestamp), until.map(format_timestamp));
                    after.is_none_or(|a| text > a) && until.is_none_or(|u| text <= u)
                })
                .map(|(i, _)| i)
                .collect();
            let expected = spans
                .iter()
                .position(|&(from, to)| age.max(0) >= from && to.is_none_or(|to| age <= to))
                .unwrap();
            assert_eq!(holding, [expected], "created {text}, {age} days old");
            assert_eq!(text <= stale_until(as_of, 14), age > 14, "{text}");
        }
    }
}
