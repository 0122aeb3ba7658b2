//! Open top-ups in the report: `open_topups.csv` lists only those that became stale since the
//! previous run, every open top-up is counted by age in the summary, the page and the workbook,
//! and the full listing is `recon topups list --status open --format csv`. A report stored by
//! summary version 1 (every open top-up listed) is written again as it was.

use std::fs;

use calamine::{Reader, Xlsx, open_workbook};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::env::{Env, assert_ok, camt, credit};

const GROUP: &str = "1ea60f56-b67b-61fc-829a-0242ac130003";

/// A top-up id (also its settlement reference) from a small number.
fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Imports top-ups `(n, age, amount, currency)`, each created `age` before `now`.
fn import(env: &Env, now: DateTime<Utc>, topups: &[(u32, Duration, &str, &str)]) {
    let mut csv =
        "id,created_at,account_group_id,cash_amount,currency,status,settlement_reference\n"
            .to_string();
    for (n, age, amount, currency) in topups {
        let created = (now - *age).format("%Y-%m-%dT%H:%M:%SZ");
        let id = id(*n);
        csv.push_str(&format!(
            "{id},{created},{GROUP},{amount},{currency},CONFIRMED,{id}\n"
        ));
    }
    let file = env.write("topups.csv", csv);
    env.import_into(&env.db(), file.to_str().unwrap());
}

/// A statement with one credit paying `remittance`.
fn statement(env: &Env, name: &str, amount: &str, remittance: &str) -> String {
    let xml = camt(name, &[credit(amount, "EUR", remittance, name)]);
    env.write(&format!("{name}.xml"), xml).display().to_string()
}

fn listed(env: &Env, report: &str) -> Vec<(String, String)> {
    env.csv(report, "open_topups.csv")
        .into_iter()
        .map(|row| (row["id"].clone(), row["age_days"].clone()))
        .collect()
}

fn days(d: i64, hours: i64) -> Duration {
    Duration::days(d) + Duration::hours(hours)
}

/// (label, count, "sum CUR" per currency) of each bucket in a summary.
fn buckets(summary: &Value) -> Vec<(String, u64, Vec<String>)> {
    summary["open_topup_ages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let to = b["to_days"].as_i64();
            let from = b["from_days"].as_i64().unwrap();
            let label = match to {
                Some(to) => format!("{from}-{to}"),
                None => format!("{from}+"),
            };
            let sums = b["by_currency"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(c, t)| format!("{} {} {c}", t["count"], t["sum"].as_str().unwrap()))
                .collect();
            (label, b["count"].as_u64().unwrap(), sums)
        })
        .collect()
}

#[test]
fn open_topups_csv_lists_only_the_topups_that_became_stale_since_the_previous_run() {
    let env = Env::new();
    let now = Utc::now();
    import(
        &env,
        now,
        &[
            (1, days(20, 0), "10.00", "EUR"),   // stale long ago
            (2, days(15, 12), "25.50", "EUR"),  // stale since yesterday
            (3, days(15, 20), "100.00", "USD"), // stale since yesterday
            (4, days(3, 0), "5.00", "EUR"),
            (5, days(0, 2), "1500", "JPY"),
            (6, days(45, 0), "7.00", "USD"),   // stale long ago
            (7, days(15, 12), "99.00", "EUR"), // stale since yesterday, but cancelled
            (8, days(15, 6), "30.00", "EUR"),  // stale since yesterday, but paid tonight
        ],
    );
    let first = statement(&env, "S1", "1.00", "no reference");
    assert_ok(&env.run("first", &[&first]));
    // The first run on a database lists every stale top-up.
    let stale_ids =
        |report| -> Vec<String> { listed(&env, report).into_iter().map(|(id, _)| id).collect() };
    assert_eq!(
        stale_ids("first"),
        [id(6), id(1), id(3), id(2), id(7), id(8)]
    );
    let summary = env.summary("first");
    assert_eq!(summary["newly_stale"]["previous_run"], Value::Null);
    assert_eq!(summary["newly_stale"]["created_after"], Value::Null);
    assert_eq!(summary["newly_stale"]["count"], 6);

    // The clock cannot be set: the first run is moved a day back instead, as if it ran
    // yesterday.
    let started: DateTime<Utc> = summary["started_at"].as_str().unwrap().parse().unwrap();
    let yesterday = (started - Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    env.conn()
        .execute("UPDATE runs SET started_at = ?1", [&yesterday])
        .unwrap();
    let out = env.recon(&["topups", "cancel", "--db", &env.db(), &id(7)]);
    assert_ok(&out);
    let second = statement(&env, "S2", "30.00", &id(8));

    // A dry run leaves no trace: the real run after it measures from the same previous run.
    assert_ok(&env.run("dry", &["--dry-run", &second]));
    assert_ok(&env.run("second", &[&second]));
    for report in ["dry", "second"] {
        assert_eq!(
            listed(&env, report),
            [(id(3), "15".to_string()), (id(2), "15".to_string())],
            "{report}"
        );
    }
    let summary = env.summary("second");
    let first_id = env.summary("first")["run_id"].clone();
    assert_eq!(summary["newly_stale"]["previous_run"], first_id);
    assert_eq!(summary["newly_stale"]["count"], 2);
    assert_eq!(summary["open_topups"], 6);
    let s = |items: &[&str]| items.iter().map(|i| i.to_string()).collect::<Vec<_>>();
    assert_eq!(
        buckets(&summary),
        [
            ("0-1".to_string(), 1, s(&["1 1500 JPY"])),
            ("2-7".to_string(), 1, s(&["1 5.00 EUR"])),
            ("8-14".to_string(), 0, s(&[])),
            ("15-30".to_string(), 3, s(&["2 35.50 EUR", "1 100.00 USD"])),
            ("31+".to_string(), 1, s(&["1 7.00 USD"])),
        ]
    );
    let stale: Vec<bool> = summary["open_topup_ages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["stale"].as_bool().unwrap())
        .collect();
    assert_eq!(stale, [false, false, false, true, true]);

    // The page: the buckets, and the newly stale listed, not the others.
    let page = fs::read_to_string(env.path("second/report.html")).unwrap();
    assert!(page.contains("<h2>Open top-ups (6)</h2>"), "{page}");
    assert!(
        page.contains("Older than 14 days: <strong>4</strong>"),
        "{page}"
    );
    assert!(
        page.contains("<th class=\"num\">15–30 days</th><th class=\"num\">over 30 days</th>"),
        "{page}"
    );
    assert!(
        page.contains(
            "<td class=\"num\" title=\"35.50 EUR, 100.00 USD\">35.50 EUR, 100.00 USD</td>"
        ),
        "{page}"
    );
    assert!(page.contains("Stale since the previous run (2)"), "{page}");
    assert!(page.contains(&id(2)) && page.contains(&id(3)));
    assert!(!page.contains(&id(1)) && !page.contains(&id(6)));

    // The workbook: the buckets per currency, and the newly stale.
    let mut book: Xlsx<_> = open_workbook(env.path("second/report.xlsx")).unwrap();
    let ages = book.worksheet_range("Open top-ups").unwrap();
    let rows: Vec<String> = ages
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    assert_eq!(
        rows,
        [
            "age|currency|count|sum|stale",
            "0–1 days|JPY|1|1500|false",
            "2–7 days|EUR|1|5|false",
            "8–14 days||0||false",
            "15–30 days|EUR|2|35.5|true",
            "15–30 days|USD|1|100|true",
            "over 30 days|USD|1|7|true",
        ]
    );
    let newly = book.worksheet_range("Newly stale").unwrap();
    assert_eq!(newly.height(), 1 + 2);
    assert_eq!(newly.get((1, 0)).unwrap().to_string(), id(3));

    // The same day again: nothing crossed the threshold since, so the file is only its header.
    assert_ok(&env.run("third", &[&statement(&env, "S3", "1.00", "none")]));
    assert_eq!(listed(&env, "third"), []);
    assert_eq!(env.summary("third")["newly_stale"]["count"], 0);
    // A top-up imported late, already stale (a rolling export): listed by the next run, once.
    import(&env, now, &[(9, days(20, 0), "9.00", "EUR")]);
    assert_ok(&env.run("fourth", &[&statement(&env, "S4", "1.00", "none")]));
    assert_eq!(listed(&env, "fourth"), [(id(9), "20".to_string())]);
    assert_ok(&env.run("fifth", &[&statement(&env, "S5", "1.00", "none")]));
    assert_eq!(listed(&env, "fifth"), []);

    // The full listing is a command: every open top-up.
    let out = env.topups_list("open", "csv");
    assert_ok(&out);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listing.lines().count(), 1 + 7, "{listing}");

    // A past run of this version is written again as it was.
    let second_id = summary["run_id"].as_str().unwrap();
    let again = env.path("again").display().to_string();
    assert_ok(&env.recon(&["report", second_id, "--db", &env.db(), "--out", &again]));
    for file in ["open_topups.csv", "summary.json"] {
        assert_eq!(
            fs::read_to_string(env.path("second").join(file)).unwrap(),
            fs::read_to_string(env.path("again").join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn a_lower_threshold_lists_the_topups_the_previous_run_did_not_count_as_stale() {
    let env = Env::new();
    let now = Utc::now();
    import(
        &env,
        now,
        &[
            (1, days(20, 0), "10.00", "EUR"),
            (2, days(10, 0), "20.00", "EUR"),
            (3, days(5, 0), "30.00", "EUR"),
        ],
    );
    let night = statement(&env, "S1", "1.00", "none");
    assert_ok(&env.run("first", &[&night]));
    assert_eq!(listed(&env, "first").len(), 1);
    let night = statement(&env, "S2", "1.00", "none");
    assert_ok(&env.run("second", &["--stale-after-days", "7", &night]));
    assert_eq!(listed(&env, "second"), [(id(2), "10".to_string())]);
    let ages = buckets(&env.summary("second"));
    let labels: Vec<&str> = ages.iter().map(|(l, _, _)| l.as_str()).collect();
    assert_eq!(labels, ["0-1", "2-7", "8-30", "31+"]);
}
