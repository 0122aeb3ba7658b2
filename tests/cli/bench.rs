//! `recon bench-data`'s generated nights and the `sqlite_floor` example the performance targets
//! are measured against.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::{Env, assert_ok, outcome_count, stderr, stdout};

#[test]
fn a_second_generated_night_finds_its_expected_outcomes_among_the_first_nights_topups() {
    let env = Env::new();
    let db = env.db();
    let mut open_before = 0;
    // The first night books on the default day, the second on a day of its own.
    for (night, seed, created_at, booked_on) in [
        ("first", "1", "2026-11-01T08:00:00Z", None),
        ("second", "2", "2026-11-02T08:00:00Z", Some("2026-11-22")),
    ] {
        let mut flags = vec!["--seed", seed, "--created-at", created_at];
        flags.extend(booked_on.iter().flat_map(|day| ["--booked-on", *day]));
        let dir = env.bench_night(night, "1200", "1000", &flags);
        let csv = fs::read_to_string(format!("{dir}/topups.csv")).unwrap();
        assert!(
            csv.lines().skip(1).all(|l| l.contains(created_at)),
            "{night}"
        );
        let day = booked_on.unwrap_or("2026-11-21");
        let camt = fs::read_to_string(format!("{dir}/statement.xml")).unwrap();
        assert_eq!(
            camt.matches("<BookgDt>").count(),
            camt.matches(&format!("<BookgDt><Dt>{day}</Dt></BookgDt>"))
                .count(),
            "{night}"
        );
        let csv = fs::read_to_string(format!("{dir}/statement.csv")).unwrap();
        assert!(
            csv.lines()
                .skip(1)
                .all(|l| l.starts_with(&format!("{day},{day},"))),
            "{night}"
        );
        env.import_night(&dir);
        let report = format!("{night}-report");
        assert_ok(&env.run(&report, &[&format!("{dir}/statement.xml")]));
        let expected: BTreeMap<String, u64> =
            serde_json::from_str(&fs::read_to_string(format!("{dir}/expected.json")).unwrap())
                .unwrap();
        let summary = env.summary(&report);
        for (outcome, count) in &expected {
            assert_eq!(
                outcome_count(&summary, outcome),
                *count,
                "{night}: {outcome}"
            );
        }
        // The second night's statement pays none of the first night's top-ups.
        let open = summary["open_topups"].as_u64().unwrap();
        assert_eq!(open, open_before + 1200 - expected["MATCHED"], "{night}");
        open_before = open;
    }
    // Both nights' top-ups are weeks old: the first night's were listed as stale by the first
    // run; the second night's, imported after it, are listed (once) by the second.
    let stale = env.csv("second-report", "open_topups.csv");
    let newer = stale
        .iter()
        .filter(|r| r["created_at"] == "2026-11-02T08:00:00Z")
        .count();
    assert!(
        newer > 0 && newer == stale.len(),
        "{newer} of {}",
        stale.len()
    );
    assert_eq!(
        env.sql_count("SELECT count(DISTINCT booking_day) FROM journal"),
        2
    );
    assert_ok(&env.recon(&["check", "--db", &db]));
}

#[test]
fn the_floor_example_replays_a_nights_rows_into_a_copy_and_leaves_both_databases_alone() {
    let env = Env::new();
    let night = env.bench_night("night", "1200", "1000", &[]);
    env.import_night(&night);
    let db = env.db();
    let before = env.path("before.sqlite");
    fs::copy(&db, &before).unwrap();
    let settled_sql = "SELECT count(*) FROM topups WHERE status = 'SETTLED'";
    let settled_before = env.sql_count(settled_sql);
    let history_before = env.sql_count("SELECT count(*) FROM topup_history");
    assert_ok(&env.run("report", &[&format!("{night}/statement.xml")]));
    let settled = env.sql_count(settled_sql) - settled_before;
    assert!(
        settled > 500,
        "most of the night's payments settle: {settled}"
    );
    let (before_bytes, after_bytes) = (fs::read(&before).unwrap(), fs::read(&db).unwrap());

    let floor = |args: &[&Path]| Command::new(floor_example()).args(args).output().unwrap();
    let out = floor(&[&before, Path::new(&db)]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "replaying 0 new top-ups, 1000 ledger rows, 0 history rows, 0 events and {} told \
             from the journal",
            2 * settled
        )),
        "two events per settlement, told from the journal: {text}"
    );
    for phase in ["settling the top-ups", "journal rows", "commit", "all"] {
        assert!(
            text.lines().any(|l| l.starts_with(phase)),
            "{phase}: {text}"
        );
    }
    // The import's floor: the database as the import left it, replayed into a new one.
    let out = floor(&[Path::new("--from-empty"), &before]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&format!(
            "replaying 1200 new top-ups, 0 ledger rows, {history_before} history rows"
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        fs::read(&before).unwrap(),
        before_bytes,
        "BEFORE is only read"
    );
    assert_eq!(fs::read(&db).unwrap(), after_bytes, "AFTER is only read");
    let leftovers: Vec<_> = fs::read_dir(env.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "the copy is removed: {leftovers:?}");

    // A database is not its own night: nothing to replay is an error, not a floor of zero.
    let out = floor(&[Path::new(&db), Path::new(&db)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("AFTER holds no rows BEFORE does not"),
        "{}",
        stderr(&out)
    );
}

/// The `sqlite_floor` example, which `cargo test` builds beside this test's own binary.
fn floor_example() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().unwrap().parent().unwrap();
    let example = profile
        .join("examples")
        .join(format!("sqlite_floor{}", std::env::consts::EXE_SUFFIX));
    assert!(
        example.exists(),
        "{} is missing: `cargo test` builds the examples, `cargo test --test cli` alone does not",
        example.display()
    );
    example
}
