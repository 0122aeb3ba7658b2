//! A database written by an earlier release (`fixtures/releases/`, made by
//! `scripts/make_release_fixture.sh`) opens in this one, migrates in place, passes `recon check`,
//! and re-renders each of its past runs as that release published it: every file the same, the
//! page but for its generation time, the workbook but for its Summary sheet.

use std::fs;
use std::path::{Path, PathBuf};

use crate::env::{Env, assert_ok, demo};

fn releases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/releases");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("recon.sqlite").is_file())
        .collect();
    found.sort();
    found
}

/// The page says when it was generated; everything else must be as published.
fn without_generation_time(page: &str) -> String {
    let re = regex::Regex::new(r"report generated \S+").unwrap();
    re.replace_all(page, "report generated TIME").into_owned()
}

/// A workbook's sheets and their cells, but for the Summary sheet, which says when it was
/// generated (and a workbook, a zip, is stamped with that time).
fn sheets(path: &Path) -> Vec<(String, calamine::Range<calamine::Data>)> {
    use calamine::{Reader, Xlsx, open_workbook};
    let mut book: Xlsx<_> = open_workbook(path).unwrap();
    book.sheet_names()
        .into_iter()
        .filter(|name| name != "Summary")
        .map(|name| (name.clone(), book.worksheet_range(&name).unwrap()))
        .collect()
}

#[test]
fn a_database_of_an_earlier_release_migrates_passes_check_and_re_renders_its_runs_unchanged() {
    let releases = releases();
    assert!(!releases.is_empty(), "fixtures/releases holds no database");
    for release in releases {
        let env = Env::new();
        fs::copy(release.join("recon.sqlite"), env.db()).unwrap();
        let check = env.recon(&["check", "--db", &env.db()]);
        assert_ok(&check);
        let version: i64 = env
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            version,
            recon::store::SCHEMA_VERSION as i64,
            "{}: migrated to this release's schema",
            release.display()
        );
        let runs: Vec<String> = {
            let conn = env.conn();
            let mut stmt = conn
                .prepare("SELECT id FROM runs ORDER BY started_at, id")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert!(!runs.is_empty());
        for (n, run) in runs.iter().enumerate() {
            let published = release.join(format!("reports/{}", n + 1));
            let out = format!("again-{}", n + 1);
            assert_ok(&env.recon(&["report", "--db", &env.db(), run, "--out", &out]));
            for entry in fs::read_dir(&published).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if name == "report.xlsx" {
                    assert_eq!(
                        sheets(&published.join(&name)),
                        sheets(&env.path(&out).join(&name)),
                        "{}: run {run}'s workbook re-rendered differently",
                        release.display()
                    );
                    continue;
                }
                let was = fs::read_to_string(published.join(&name)).unwrap();
                let now = fs::read_to_string(env.path(&out).join(&name)).unwrap();
                assert!(
                    without_generation_time(&was) == without_generation_time(&now),
                    "{}: run {run}'s {name} re-rendered differently",
                    release.display()
                );
            }
        }
        // Every unmatched transaction of those runs is an open exception of the worklist,
        // and the next night's report carries them over.
        let unmatched: i64 = runs
            .iter()
            .enumerate()
            .map(|(n, _)| {
                let summary: serde_json::Value = serde_json::from_str(
                    &fs::read_to_string(release.join(format!("reports/{}/summary.json", n + 1)))
                        .unwrap(),
                )
                .unwrap();
                summary["counts"]["unmatched"].as_i64().unwrap()
            })
            .sum();
        assert!(unmatched > 0);
        let open = env.recon(&["exceptions", "list", "--db", &env.db(), "--format", "json"]);
        assert_ok(&open);
        let open: serde_json::Value = serde_json::from_slice(&open.stdout).unwrap();
        assert_eq!(open.as_array().unwrap().len() as i64, unmatched);
        // The migrated database goes on: a night read before settles nothing twice.
        let settled = env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'");
        assert_ok(&env.run("next", &[&demo("2026-11-20.camt053.xml")]));
        assert_eq!(env.summary("next")["counts"]["matched"], 0);
        let carried: i64 = env.summary("next")["worklist"]["carried_over"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_i64().unwrap())
            .sum();
        assert_eq!(carried, unmatched);
        assert_eq!(
            env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
            settled
        );
        assert_ok(&env.recon(&["check", "--db", &env.db()]));
    }
}
