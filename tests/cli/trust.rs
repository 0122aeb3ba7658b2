//! What cron, scripts and an operator rely on when things go wrong: quiet nights, machine-
//! readable summaries, errors that name their cause with a sysexits status.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use crate::env::{Env, assert_code, assert_ok, demo, stderr, stdout};

/// The demo's first statement cut to its first entry, which pays a demo top-up exactly:
/// a night that needs nobody.
fn a_night_with_nothing_wrong(env: &Env) -> String {
    let demo = fs::read_to_string(demo("2026-11-20.camt053.xml")).unwrap();
    let first_end = demo.find("</Ntry>").unwrap() + "</Ntry>".len();
    let last_end = demo.rfind("</Ntry>").unwrap() + "</Ntry>".len();
    let cut = format!("{}{}", &demo[..first_end], &demo[last_end..]).replace(
        "<Amt Ccy=\"EUR\">484.00</Amt>",
        "<Amt Ccy=\"EUR\">1200.00</Amt>",
    );
    env.write("quiet-night.xml", cut).display().to_string()
}

#[test]
fn quiet_prints_nothing_on_a_night_that_needs_nobody_and_the_summary_when_one_does() {
    let env = Env::new().with_demo_topups();
    let night = a_night_with_nothing_wrong(&env);
    let out = env.run("quiet", &["-q", &night]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "", "nothing for cron to mail");
    assert_eq!(stderr(&out), "");
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(env.path("quiet/summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["counts"]["matched"], 1,
        "the night did run: {summary}"
    );
    assert_eq!(summary["counts"]["unmatched"], 0);

    let out = env.run("busy", &["-q", &demo("2026-11-21.camt053.xml")]);
    assert_ok(&out);
    assert!(stdout(&out).contains("need a human"), "{}", stdout(&out));
}

#[test]
fn the_last_line_of_a_runs_output_is_the_counts_even_when_an_input_is_rejected() {
    let env = Env::new().with_demo_topups();
    let junk = env.path("junk.xml");
    fs::write(&junk, "<Document><Stmt>").unwrap();
    let out = env.run(
        "r",
        &[&demo("2026-11-20.camt053.xml"), junk.to_str().unwrap()],
    );
    assert_code(&out, 65);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "{text}");
    assert!(lines[0].starts_with("rejected "), "{text}");
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("run ") && last.contains(": read "),
        "{text}"
    );
}

#[test]
fn run_format_json_prints_the_runs_summary_as_one_json_document() {
    let env = Env::new().with_demo_topups();
    let out = env.run("j", &["--format", "json", &demo("2026-11-20.camt053.xml")]);
    assert_ok(&out);
    let printed: serde_json::Value =
        serde_json::from_str(&stdout(&out)).expect("one JSON document");
    let file: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(env.path("j/summary.json")).unwrap()).unwrap();
    assert_eq!(printed, file, "the same summary as summary.json");
    assert!(printed["counts"]["read"].as_u64().unwrap() > 0);
}

#[test]
fn a_closed_pipe_ends_the_listing_quietly_with_status_0() {
    let env = Env::new().with_demo_topups();
    let night = env.path("night");
    let out = env.recon(&[
        "bench-data",
        "--topups",
        "3000",
        "--transactions",
        "10",
        "--out",
        night.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let topups = night.join("topups.csv").display().to_string();
    assert_ok(&env.recon(&["topups", "import", "--db", &env.db(), &topups]));
    // `recon topups list | head -1`: the reader takes one line and goes away.
    let mut child = env
        .command()
        .args(["topups", "list", "--db", &env.db()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("ID"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no error for a closed pipe");
}

#[test]
fn a_report_folder_that_cannot_be_created_exits_73_naming_it_and_settles_nothing() {
    let env = Env::new().with_demo_topups();
    let file = env.path("a-file");
    fs::write(&file, "not a folder").unwrap();
    let out = env.run("a-file/report", &[&demo("2026-11-20.camt053.xml")]);
    assert_code(&out, 73);
    let err = stderr(&out);
    assert!(err.contains("a-file"), "names the path: {err}");
    assert!(err.contains("create it first"), "says what to do: {err}");
    let runs = env.recon(&["runs", "list", "--db", &env.db(), "--format", "json"]);
    assert_eq!(stdout(&runs).trim(), "[]", "nothing committed");
}

#[test]
fn a_read_only_report_folder_exits_77() {
    let env = Env::new().with_demo_topups();
    let locked = env.path("locked");
    fs::create_dir(&locked).unwrap();
    set_mode(&locked, 0o555);
    if fs::write(locked.join("probe"), "x").is_ok() {
        eprintln!("SKIPPED: permissions do not stop this user (root); nothing to test");
        return;
    }
    let out = env.run("locked/report", &[&demo("2026-11-20.camt053.xml")]);
    set_mode(&locked, 0o755);
    assert_code(&out, 77);
    assert!(stderr(&out).contains("permissions"), "{}", stderr(&out));
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn check_on_a_damaged_database_fails_its_integrity_check_and_points_to_a_backup() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r", &[&demo("2026-11-20.camt053.xml")]));
    let db = env.path("recon.sqlite");
    let mut bytes = fs::read(&db).unwrap();
    let len = bytes.len();
    // Every page after the first: the schema's and the tables' pages are all garbage now.
    bytes[4096..len].iter_mut().for_each(|b| *b = 0xA5);
    fs::write(&db, bytes).unwrap();
    let out = env.recon(&["check", "--db", &env.db()]);
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("BROKEN"), "{text}");
    assert!(text.contains("restore from a backup"), "{text}");
    assert!(!text.contains("internal error"), "{text}");
}
