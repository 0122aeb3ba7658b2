//! Inbox mode for cron: files are archived or quarantined only after the commit.

use std::fs;

use crate::env::{Env, assert_code, assert_ok, demo, stdout};
use serde_json::Value;

#[test]
fn inbox_mode_archives_after_the_commit_and_a_file_read_before_is_archived_without_a_new_run() {
    let env = Env::new().with_demo_topups();
    let inbox = env.path("inbox");
    fs::create_dir_all(&inbox).unwrap();
    for name in ["2026-11-20.camt053.xml", "2026-11-21.camt053.xml"] {
        fs::copy(demo(name), inbox.join(name)).unwrap();
    }
    env.write("inbox/junk.txt", "not a statement");
    let dirs = |name: &str| env.path(name).display().to_string();
    let run = || env.inbox_run(&["-q", "--stable-secs", "0"]);
    let out = run();
    assert_code(&out, 65);
    assert!(env.path("archive/2026-11-20.camt053.xml").is_file());
    assert!(env.path("archive/2026-11-21.camt053.xml").is_file());
    assert!(env.path("quarantine/junk.txt").is_file());
    let note = fs::read_to_string(env.path("quarantine/junk.txt.error.txt")).unwrap();
    assert!(note.contains("not a statement format"), "{note}");
    assert_eq!(fs::read_dir(&inbox).unwrap().count(), 0);
    let latest = env.path("reports/latest");
    let summary: Value =
        serde_json::from_slice(&fs::read(latest.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["counts"]["matched"], 5);
    let settled = env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'");
    let first_report = fs::read_link(&latest).unwrap();
    // A crash after the commit but before archiving leaves a file in the inbox: the next run
    // knows it was read, archives it without a new run, and `latest` stays on the report that
    // holds that night's exceptions.
    fs::copy(
        demo("2026-11-20.camt053.xml"),
        inbox.join("2026-11-20.camt053.xml"),
    )
    .unwrap();
    let out = run();
    assert_ok(&out);
    assert_eq!(fs::read_link(&latest).unwrap(), first_report);
    assert_eq!(
        fs::read_dir(env.path("reports")).unwrap().count(),
        2,
        "the first report and `latest`: no new report"
    );
    let summary: Value =
        serde_json::from_slice(&fs::read(latest.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["counts"]["matched"], 5);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        settled
    );
    assert_eq!(fs::read_dir(&inbox).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(env.path("archive")).unwrap().count(),
        3,
        "kept beside the first copy"
    );
    let out = run();
    assert_ok(&out);
    assert_eq!(stdout(&out), "", "an empty inbox is silent under -q");
    // Without -q it says what it did with a file read before.
    fs::copy(
        demo("2026-11-21.camt053.xml"),
        inbox.join("2026-11-21.camt053.xml"),
    )
    .unwrap();
    let out = env.inbox_run(&["--stable-secs", "0"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("without reading it: run "),
        "{}",
        stdout(&out)
    );
    // --out and --inbox exclude each other.
    assert_code(
        &env.recon(&[
            "run",
            "--db",
            &env.db(),
            "--inbox",
            &dirs("inbox"),
            "--out",
            "x",
        ]),
        2,
    );
}

#[test]
fn a_failure_filing_away_after_the_commit_says_the_run_was_committed_and_exits_74() {
    let env = Env::new().with_demo_topups();
    let inbox = env.path("inbox");
    fs::create_dir_all(&inbox).unwrap();
    fs::copy(
        demo("2026-11-20.camt053.xml"),
        inbox.join("2026-11-20.camt053.xml"),
    )
    .unwrap();
    // `reports/latest` is a folder where recon keeps a link: replacing it fails, even as root,
    // and only after the commit.
    env.write("reports/latest/keep.txt", "someone's folder");
    let settled = || env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'");
    let before = settled();
    let out = env.inbox_run(&["--stable-secs", "0"]);
    assert_code(&out, 74);
    let message = crate::env::stderr(&out);
    assert!(message.contains("was committed"), "{message}");
    assert!(message.contains("nothing needs to run again"), "{message}");
    assert!(!message.contains("nothing was committed"), "{message}");
    assert!(!message.contains("then run again"), "{message}");
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 1);
    assert_eq!(settled() - before, 4, "the night's payments settled");
    // The report named in the message is published whole, the file was archived whole.
    let report = fs::read_dir(env.path("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "latest")
        .collect::<Vec<_>>();
    assert_eq!(
        report.len(),
        1,
        "the report and no temporary link: {report:?}"
    );
    let report = &report[0];
    assert!(message.contains(&report.display().to_string()), "{message}");
    assert!(report.join("summary.json").is_file());
    assert_eq!(
        fs::read(env.path("archive/2026-11-20.camt053.xml")).unwrap(),
        fs::read(demo("2026-11-20.camt053.xml")).unwrap()
    );
    assert_eq!(fs::read_dir(&inbox).unwrap().count(), 0);
    // Once the folder is out of the way, the next night runs as usual and settles nothing twice.
    fs::remove_dir_all(env.path("reports/latest")).unwrap();
    fs::copy(
        demo("2026-11-21.camt053.xml"),
        inbox.join("2026-11-21.camt053.xml"),
    )
    .unwrap();
    assert_ok(&env.inbox_run(&["-q", "--stable-secs", "0"]));
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 2);
    assert!(env.path("reports/latest/summary.json").is_file());
}
