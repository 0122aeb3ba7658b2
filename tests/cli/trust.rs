//! What cron, scripts and an operator rely on when things go wrong: quiet nights, machine-
//! readable summaries, errors that name their cause with a sysexits status.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::env::{Env, assert_code, assert_ok, demo, hidden_files, stderr, stdout};

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

#[test]
fn junk_beside_the_statements_is_skipped_with_a_notice_not_rejected() {
    let env = Env::new().with_demo_topups();
    let dir = env.path("statements");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(demo("2026-11-20.camt053.xml"), dir.join("2026-11-20.xml")).unwrap();
    env.write("statements/README.md", "# what the bank sends");
    env.write("statements/2026-11-21.xml.part", "<Document><BkToCs");
    env.write("statements/.DS_Store", "\0\0\0\x01Bud1");
    fs::copy(demo("topups.csv"), dir.join("topups.csv")).unwrap();
    let statements = dir.display().to_string();
    let out = env.run("r", &[&statements]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("skipped") && text.contains("README.md"),
        "{text}"
    );
    assert!(text.contains("2026-11-21.xml.part"), "{text}");
    assert!(
        text.contains("recon topups import"),
        "a top-ups file named as such: {text}"
    );
    assert!(
        !text.contains(".DS_Store"),
        "hidden files pass quietly: {text}"
    );
    let summary = env.summary("r");
    assert_eq!(summary["inputs"].as_array().unwrap().len(), 1, "{summary}");
    assert_eq!(summary["inputs_rejected"], 0);
    // An include pattern reads only what it names.
    env.write("statements/notes.txt", "not a statement");
    let out = env.run("r2", &["--include", "*.xml", &statements]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("not matched by --include"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_inbox_file_still_being_written_waits_and_folders_and_links_are_not_passed_over_silently() {
    let env = Env::new().with_demo_topups();
    let inbox = env.path("inbox");
    fs::create_dir_all(inbox.join("subfolder")).unwrap();
    // Just written: by default it waits for the next run.
    fs::copy(demo("2026-11-20.camt053.xml"), inbox.join("fresh.xml")).unwrap();
    let out = env.inbox_run(&[]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("fresh.xml") && text.contains("still being written"),
        "{text}"
    );
    assert!(
        text.contains("subfolder") && text.contains("a folder"),
        "{text}"
    );
    assert!(inbox.join("fresh.xml").is_file(), "left for the next run");
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 0);
    // A linked file is read, and its content (not the link) is archived.
    let elsewhere = env.write(
        "elsewhere/2026-11-21.xml",
        fs::read(demo("2026-11-21.camt053.xml")).unwrap(),
    );
    std::os::unix::fs::symlink(&elsewhere, inbox.join("linked.xml")).unwrap();
    let out = env.inbox_run(&["--stable-secs", "0"]);
    assert_ok(&out);
    let archived = env.path("archive/linked.xml");
    assert!(
        !fs::symlink_metadata(&archived)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&archived).unwrap(), fs::read(&elsewhere).unwrap());
    assert!(!inbox.join("linked.xml").exists());
    assert!(
        inbox.join("subfolder").is_dir(),
        "folders stay where they are"
    );
}

#[test]
fn a_run_killed_between_its_commit_and_its_report_is_published_by_the_next_command() {
    let env = Env::new().with_demo_topups();
    let out = env
        .command()
        .env("RECON_CRASH_AFTER_COMMIT", "1")
        .args([
            "run",
            "--db",
            &env.db(),
            "--out",
            "r",
            &demo("2026-11-20.camt053.xml"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "aborted after the commit");
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 1, "committed");
    let report = env.path("r");
    assert!(!report.join("summary.json").exists(), "not published yet");
    assert!(
        hidden_files(&report) > 0,
        "the report's files were left aside"
    );
    // The next command publishes it, says so, and leaves no temporary file.
    let out = env.recon(&["check", "--db", &env.db()]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("published the report of run"),
        "{}",
        stdout(&out)
    );
    assert_eq!(hidden_files(&report), 0);
    let summary = env.summary("r");
    assert_eq!(summary["counts"]["matched"], 4, "{summary}");
    let out = env.recon(&["check", "--db", &env.db()]);
    assert!(!stdout(&out).contains("published the report"), "only once");
    // A re-run into the same folder does not write over the night's report.
    let out = env.run("r", &[&demo("2026-11-20.camt053.xml")]);
    assert_code(&out, 2);
}

#[test]
fn sigterm_during_a_run_commits_nothing_and_leaves_no_temporary_file() {
    let env = Env::new();
    let night = env.bench_night("night", "60000", "50000", &[]);
    env.import_night(&night);
    let statement = format!("{night}/statement.xml");
    let Some(out) = env.run_terminated("r", &[&statement], Duration::from_millis(300)) else {
        return;
    };
    assert_code(&out, 130);
    assert!(
        stderr(&out).contains("nothing was committed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 0);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        0
    );
    let report = env.path("r");
    let left: Vec<_> = match fs::read_dir(&report) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name()).collect(),
        Err(_) => Vec::new(),
    };
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

#[test]
fn a_statement_read_before_says_so_on_the_terminal_in_the_summary_and_the_report_instead_of_all_good()
 {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let env = Env::new().with_demo_topups();
    let night = a_night_with_nothing_wrong(&env);
    let out = env.run("first", &[&night]);
    assert_ok(&out);
    let first = env.summary("first");
    assert!(
        first["inputs"][0].get("read_before").is_none(),
        "an ordinary run's summary has no read_before: {first}"
    );
    let (run, started) = (
        first["run_id"].as_str().unwrap(),
        first["started_at"].as_str().unwrap(),
    );

    // The same file again: its transaction is ALREADY_PROCESSED, and the night says why.
    let out = env.run("again", &["-q", &night]);
    assert_ok(&out);
    let line =
        format!("{night}: already read in run {run} on {started} (the same file by SHA-256)");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "-q still tells: {text}");
    assert_eq!(lines[0], line);
    assert!(lines[1].contains("matched 0"), "the counts last: {text}");
    let summary = env.summary("again");
    assert_eq!(
        summary["inputs"][0]["read_before"],
        serde_json::json!({"run_id": run, "started_at": started, "by": "sha256", "path": night})
    );
    assert_eq!(summary["outcomes"]["ALREADY_PROCESSED"]["count"], 1);
    let page = fs::read_to_string(env.path("again/report.html")).unwrap();
    assert!(!page.contains("All good"), "not all good");
    assert!(page.contains("1 input file(s) read before"));
    assert!(
        page.contains(&format!("<li>{}</li>", line.replace('/', "&#x2f;"))),
        "{page}"
    );
    let mut book: Xlsx<_> = open_workbook(env.path("again/report.xlsx")).unwrap();
    let sheet = book.worksheet_range("Summary").unwrap();
    let first_row: Vec<Data> = sheet.rows().nth(1).unwrap().to_vec();
    assert_eq!(first_row[0], Data::String("read before".into()));
    assert_eq!(first_row[1], Data::String(line.clone()));

    // Another file with the same statement id and account (the bank sent it again, changed).
    let resent = env.write(
        "resent.xml",
        fs::read_to_string(&night)
            .unwrap()
            .replace("1200.00", "1300.00"),
    );
    let resent = resent.to_str().unwrap();
    let out = env.run("resent", &[resent]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&format!(
            "{resent}: already read in run {run} on {started} (statement STMT-2026-11-20-1 of \
             account DE89370400440532013000, then as {night})\n"
        )),
        "{}",
        stdout(&out)
    );
    let before = &env.summary("resent")["inputs"][0]["read_before"];
    assert_eq!(before["by"], "statement id and account");
    assert_eq!(before["statement_id"], "STMT-2026-11-20-1");
    assert_eq!(before["account"], "DE89370400440532013000");
}
