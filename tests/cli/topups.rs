//! Top-ups on the command line: create, cancel, list and import (CSV and JSON lines), refused
//! whole with the line of a bad row, also for a large import.

use std::fs;

use crate::env::{Env, GROUP, T1, TOPUP_FIELDS, assert_code, assert_ok, demo, stderr, stdout};
use serde_json::Value;

#[test]
fn create_prints_the_topup_exactly_as_the_api_does() {
    let env = Env::new();
    let out = env.recon(&[
        "topups",
        "create",
        "--db",
        &env.db(),
        "--account-group-id",
        GROUP,
        "--amount",
        "200",
        "--currency",
        "eur",
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    let positions: Vec<usize> = TOPUP_FIELDS
        .iter()
        .map(|f| text.find(&format!("\"{f}\":")).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "fields in API order: {text}"
    );
    let topup: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(topup["cash_amount"], "200.00");
    assert_eq!(topup["currency"], "EUR");
    assert_eq!(topup["status"], "CONFIRMED");
    assert_eq!(topup["account_group_id"], GROUP);
    let created = topup["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    let id = topup["id"].as_str().unwrap();
    assert_eq!(
        env.topup(id)["settlement_reference"],
        topup["settlement_reference"]
    );
    let db = env.db();
    for bad in [
        ["--amount", "200.001"],
        ["--amount", "-5"],
        ["--currency", "EURO"],
    ] {
        let mut args = vec![
            "topups",
            "create",
            "--db",
            &db,
            "--account-group-id",
            GROUP,
            "--amount",
            "1",
            "--currency",
            "EUR",
        ];
        args.extend_from_slice(&bad);
        assert_code(&env.recon(&args), 2);
    }
}

#[test]
fn cancel_only_open_topups_and_name_the_status_otherwise() {
    let env = Env::new().with_demo_topups();
    let open = "9531985d-5d9d-49f8-9818-e811892f902b";
    let out = env.recon(&["topups", "cancel", "--db", &env.db(), open]);
    assert_ok(&out);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["status"],
        "CANCELLED"
    );
    let out = env.recon(&["topups", "cancel", "--db", &env.db(), open]);
    assert_code(&out, 65);
    assert!(stderr(&out).contains("is CANCELLED"), "{}", stderr(&out));
    let settled = "6b0d549b-6f03-475a-9600-a35a099950d8";
    let out = env.recon(&["topups", "cancel", "--db", &env.db(), settled]);
    assert_code(&out, 65);
    assert!(stderr(&out).contains("is SETTLED"), "{}", stderr(&out));
    let out = env.recon(&[
        "topups",
        "cancel",
        "--db",
        &env.db(),
        "00000000-0000-4000-8000-000000000000",
    ]);
    assert_code(&out, 65);
    assert!(
        stderr(&out).contains("no top-up with id"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn list_filters_by_status_and_writes_the_api_header_first() {
    let env = Env::new().with_demo_topups();
    let out = env.recon(&["topups", "list", "--db", &env.db(), "--format", "csv"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "id,created_at,account_group_id,cash_amount,currency,status,settlement_reference\n"
        ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 14);
    let out = env.topups_list("cancelled", "json");
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "CANCELLED");
    let out = env.recon(&["topups", "list", "--db", &env.db()]);
    assert!(stdout(&out).contains("13 top-up(s)"), "{}", stdout(&out));
    assert_code(
        &env.recon(&["topups", "list", "--db", &env.db(), "--status", "PAID"]),
        2,
    );
    // What list writes, import reads back.
    let other = Env::new();
    let exported = other.write("export.csv", text);
    assert_ok(&other.recon(&[
        "topups",
        "import",
        "--db",
        &other.db(),
        exported.to_str().unwrap(),
    ]));
    assert_eq!(other.sql_count("SELECT count(*) FROM topups"), 13);
}

#[test]
fn import_reads_json_lines() {
    let env = Env::new();
    let file = env.write(
        "t.jsonl",
        format!(
            "{{\"id\":\"{T1}\",\"created_at\":\"2020-08-24T14:15:22Z\",\"account_group_id\":\"{GROUP}\",\"cash_amount\":\"200.00\",\"currency\":\"EUR\",\"status\":\"CONFIRMED\",\"settlement_reference\":\"{T1}\"}}\n\n"
        ),
    );
    assert_ok(&env.recon(&[
        "topups",
        "import",
        "--db",
        &env.db(),
        file.to_str().unwrap(),
    ]));
    let topup = env.topup(T1);
    assert_eq!(topup["created_at"], "2020-08-24T14:15:22Z");
    assert_eq!(topup["cash_amount"], "200.00");
}

#[test]
fn a_bad_import_row_is_refused_with_its_line_and_nothing_is_written() {
    let header = "id,created_at,account_group_id,cash_amount,currency,status,settlement_reference";
    let good = format!("{T1},2020-08-24T14:15:22Z,{GROUP},200.00,EUR,CONFIRMED,{T1}");
    let second_id = "0b7c4e8a-55a1-4c2e-8d7f-2a9e1c3b4d5f";
    let row = |amount: &str, currency: &str, status: &str, id: &str, reference: &str| {
        format!("{id},2020-08-24T14:15:22Z,{GROUP},{amount},{currency},{status},{reference}")
    };
    let cases = [
        (
            row("10.00", "EUR", "NEW", "not-a-uuid", second_id),
            "id: \"not-a-uuid\" is not a UUID",
        ),
        (
            row("10.0O", "EUR", "NEW", second_id, second_id),
            "cash_amount",
        ),
        (row("10.00", "E1R", "NEW", second_id, second_id), "currency"),
        (row("10.00", "EUR", "PAID", second_id, second_id), "status"),
        (row("10.00", "EUR", "NEW", T1, second_id), "appears twice"),
        (row("10.00", "EUR", "NEW", second_id, T1), "appears twice"),
    ];
    for (bad, expected) in cases {
        let env = Env::new();
        let file = env.write("t.csv", format!("{header}\n{good}\n{bad}\n"));
        let out = env.recon(&[
            "topups",
            "import",
            "--db",
            &env.db(),
            file.to_str().unwrap(),
        ]);
        assert_code(&out, 65);
        let err = stderr(&out);
        assert!(
            err.contains("line 3")
                && err.contains(expected)
                && err.contains("nothing was imported"),
            "{bad}: {err}"
        );
        assert!(
            !env.path("recon.sqlite").exists() || env.sql_count("SELECT count(*) FROM topups") == 0
        );
    }
    // A duplicate of a top-up already in the database is refused too, with the line.
    let env = Env::new().with_demo_topups();
    let file = env.write(
        "t.csv",
        format!(
            "{header}\n{}\n{good}\n",
            row("1.00", "EUR", "NEW", second_id, second_id)
        ),
    );
    let out = env.recon(&[
        "topups",
        "import",
        "--db",
        &env.db(),
        file.to_str().unwrap(),
    ]);
    assert_code(&out, 65);
    assert!(
        stderr(&out).contains("line 3") && stderr(&out).contains("already exists"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM topups"), 13);
}

#[test]
fn a_large_import_builds_the_same_indexes_and_refuses_a_duplicate_with_nothing_imported() {
    // Large loads set the plain indexes aside and build them at the end, in the same transaction.
    let env = Env::new();
    let night = env.bench_night("night", "12000", "10", &[]);
    let indexes = |db: &str| -> Vec<String> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare("SELECT name || ':' || sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let small = env.path("small.sqlite").display().to_string();
    assert_ok(&env.recon(&["topups", "import", "--db", &small, &demo("topups.csv")]));

    // The big file plus a top-up the database already has: refused whole, at the database.
    let db = env.db();
    assert_ok(&env.recon(&["topups", "import", "--db", &db, &demo("topups.csv")]));
    let before = env.sql_count("SELECT count(*) FROM topups");
    let topups = fs::read_to_string(env.path("night/topups.csv")).unwrap();
    let demo_line = fs::read_to_string(demo("topups.csv"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let broken = env.write("broken.csv", format!("{topups}{demo_line}\n"));
    let out = env.recon(&["topups", "import", "--db", &db, broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 12002"), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing was imported"));
    assert_eq!(env.sql_count("SELECT count(*) FROM topups"), before);
    assert_eq!(
        indexes(&db),
        indexes(&small),
        "a refused load keeps every index"
    );

    let topups_csv = format!("{night}/topups.csv");
    assert_ok(&env.recon(&["topups", "import", "--db", &db, &topups_csv]));
    assert_eq!(env.sql_count("SELECT count(*) FROM topups"), before + 12000);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM events WHERE type = 'topup.confirmed'"),
        10 + 12000
    );
    assert_eq!(indexes(&db), indexes(&small));
    let check = env.recon(&["check", "--db", &db]);
    assert_ok(&check);
}

#[test]
fn a_rolling_export_imports_its_new_rows_skips_the_stored_ones_and_refuses_a_changed_one() {
    const NEW_A: &str = "5e0b1c1a-2f4d-4c3e-9a8b-7c6d5e4f3a2b";
    const NEW_B: &str = "c4a2e6f8-1b3d-4e5f-8a7b-9c0d1e2f3a4b";
    const NEW_C: &str = "e7f8a9b0-c1d2-4e3f-a4b5-c6d7e8f9a0b1";
    let env = Env::new().with_demo_topups();
    // T1 settles tonight; the platform's next export still shows it CONFIRMED.
    assert_ok(&env.run("night", &[&demo("2026-11-20.camt053.xml")]));
    assert_eq!(env.topup(T1)["status"], "SETTLED");
    let stored = fs::read_to_string(demo("topups.csv")).unwrap();
    let new = |id: &str, amount: &str| {
        format!("{id},2026-11-22T08:00:00Z,{GROUP},{amount},EUR,CONFIRMED,{id}\n")
    };
    let export = env.write(
        "export.csv",
        format!("{stored}{}{}", new(NEW_A, "20.00"), new(NEW_B, "7")),
    );
    let export = export.to_str().unwrap();
    let import = |file: &str, more: &[&str]| {
        let db = env.db();
        let mut args = vec!["topups", "import", "--db", &db];
        args.extend_from_slice(more);
        args.push(file);
        env.recon(&args)
    };

    // Without --skip-existing, a stored top-up refuses the file, saying how to import it.
    let out = import(export, &[]);
    assert_code(&out, 65);
    let err = stderr(&out);
    assert!(
        err.contains("line 2") && err.contains("already exists") && err.contains("--skip-existing"),
        "{err}"
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM topups"), 13);

    let out = import(export, &["--skip-existing"]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!("imported 2 top-up(s) from {export}, skipped 13 already stored\n")
    );
    assert_eq!(
        stderr(&out),
        "",
        "no progress bar when stderr is not a terminal"
    );
    assert_eq!(env.topup(NEW_B)["cash_amount"], "7.00");
    assert_eq!(
        env.topup(T1)["status"],
        "SETTLED",
        "a skipped row changes nothing"
    );
    let out = import(export, &["--skip-existing", "-q"]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!("imported 0 top-up(s) from {export}, skipped 15 already stored\n")
    );

    // A row whose id is stored with other fields is named with the stored top-up.
    let changed = stored.replace(",200.00,EUR,", ",250.00,EUR,");
    let conflicting = env.write("changed.csv", format!("{changed}{}", new(NEW_C, "5.00")));
    let out = import(conflicting.to_str().unwrap(), &["--skip-existing"]);
    assert_code(&out, 65);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "line 2: top-up {T1} differs from the stored one (created_at \
             2026-11-02T09:01:00Z, account_group_id {GROUP}, 200.00 EUR, SETTLED, \
             settlement_reference {T1}): cash_amount 250.00 here, 200.00 stored"
        )),
        "{err}"
    );
    assert!(
        err.contains("1 row(s) conflict") && err.contains("nothing was imported"),
        "{err}"
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM topups"), 15);
}
