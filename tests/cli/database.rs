//! The database: refused when it is not recon's or newer, one writer at a time, backups, and
//! `recon check`'s invariants.

use std::fs;

use crate::env::{Env, T1, assert_code, assert_ok, demo, stderr, stdout};

#[test]
fn a_foreign_or_newer_database_is_refused_and_not_changed() {
    let env = Env::new();
    let stmt = demo("2026-11-20.camt053.xml");
    let foreign = env.path("foreign.sqlite");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE accounts (id INTEGER); INSERT INTO accounts VALUES (1);")
            .unwrap();
    }
    let text = env.write("notes.sqlite", "just some text, not a database at all....................................................................................");
    for path in [&foreign, &text] {
        let before = fs::read(path).unwrap();
        let out = env.recon(&["run", "--db", path.to_str().unwrap(), "--out", "r", &stmt]);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains("is not a recon database"),
            "{}",
            stderr(&out)
        );
        assert_eq!(fs::read(path).unwrap(), before);
    }
    let env = env.with_demo_topups();
    rusqlite::Connection::open(env.db())
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let out = env.run("r", &[&stmt]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("newer recon (schema version 99"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        1
    );
}

#[test]
fn a_second_writer_exits_75_and_settles_nothing() {
    let env = Env::new().with_demo_topups();
    let holder = rusqlite::Connection::open(env.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = env.run("r", &[&demo("2026-11-20.camt053.xml")]);
    assert_code(&out, 75);
    assert!(
        stderr(&out).contains("another recon process"),
        "{}",
        stderr(&out)
    );
    let out = env.recon(&["topups", "cancel", "--db", &env.db(), T1]);
    assert_code(&out, 75);
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        1
    );
    assert!(!env.path("r/summary.json").exists());
}

#[test]
fn a_backup_is_a_complete_database_that_checks_clean() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r", &[&demo("2026-11-20.camt053.xml")]));
    let copy = env.path("backup.sqlite").display().to_string();
    assert_ok(&env.recon(&["backup", "--db", &env.db(), "--out", &copy]));
    assert_code(
        &env.recon(&["backup", "--db", &env.db(), "--out", &copy]),
        2,
    );
    let out = env.recon(&["check", "--db", &copy]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("all 21 checks hold"),
        "{}",
        stdout(&out)
    );
    let list = |db: &str| stdout(&env.recon(&["topups", "list", "--db", db, "--format", "csv"]));
    assert_eq!(list(&copy), list(&env.db()));
    assert!(
        !env.path("backup.sqlite-wal").exists(),
        "a single self-contained file"
    );
}

#[test]
fn check_passes_after_runs_and_imports() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run(
        "r1",
        &[
            &demo("2026-11-20.camt053.xml"),
            &demo("2026-11-21.camt053.xml"),
        ],
    ));
    assert_ok(&env.recon(&[
        "topups",
        "cancel",
        "--db",
        &env.db(),
        "9531985d-5d9d-49f8-9818-e811892f902b",
    ]));
    let out = env.recon(&["check", "--db", &env.db()]);
    assert_ok(&out);
    // Break an invariant behind recon's back: check names it and exits 65.
    let conn = rusqlite::Connection::open(env.db()).unwrap();
    conn.execute(
        "UPDATE topups SET status = 'SETTLED' WHERE id = '0fd630f1-f29d-4da9-953f-48f1a09f76b5'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = env.recon(&["check", "--db", &env.db()]);
    assert_code(&out, 65);
    assert!(
        stdout(&out).contains(
            "top-up 0fd630f1-f29d-4da9-953f-48f1a09f76b5 is SETTLED but no transaction settled it"
        ),
        "{}",
        stdout(&out)
    );
}
