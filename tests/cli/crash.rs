//! Crash safety, proven by killing: `recon run` on a generated night is killed with SIGKILL at
//! random moments, again and again. After every kill `recon check` must pass, nothing may be
//! half-settled (all of the night's settlements or none), and report files must be whole. Then
//! the run is finished and the database must equal that of an uninterrupted run. A kill that
//! lands between the commit and the report's publication must leave a report that `check`
//! publishes whole (the deterministic case is in `trust.rs`).
//!
//! Quick by default (8 kills); the long version:
//! `RECON_CRASH_ITERATIONS=200 cargo test --release --test cli crash:: -- --nocapture`
//! (`RECON_CRASH_SEED=N` repeats a sequence of kill times).

use std::process::Stdio;
use std::time::Instant;

use rand::{Rng, SeedableRng};

use crate::env::{Env, assert_ok, hidden_files, stdout};

/// Every top-up's id and status in the database `db`, as the state to compare.
fn state(env: &Env, db: &str) -> Vec<String> {
    let out = env.recon(&["topups", "list", "--db", db, "--format", "csv"]);
    assert_ok(&out);
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{},{}", f[0], f[5])
        })
        .collect();
    lines.sort();
    lines
}

fn settled(state: &[String]) -> usize {
    state.iter().filter(|l| l.ends_with(",SETTLED")).count()
}

#[test]
fn a_killed_run_settles_nothing_and_finishing_it_equals_an_uninterrupted_run() {
    let iterations: usize = std::env::var("RECON_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("RECON_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test: {iterations} kills, RECON_CRASH_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let env = Env::new();
    let night = env.bench_night("night", "3600", "3000", &["--seed", "7"]);
    let statement = format!("{night}/statement.xml");
    let topups = format!("{night}/topups.csv");

    // The uninterrupted run, and how long it takes.
    let reference_db = env.path("reference.sqlite").display().to_string();
    env.import_into(&reference_db, &topups);
    let started = Instant::now();
    let out_ref = env.path("ref-report").display().to_string();
    let out = env.recon(&["run", "--db", &reference_db, "--out", &out_ref, &statement]);
    assert_ok(&out);
    let duration = started.elapsed();
    let expected = state(&env, &reference_db);
    let full = settled(&expected);

    let db = env.db();
    env.import_into(&db, &topups);
    let before = settled(&state(&env, &db));
    let mut completed_early = 0;
    let mut published_by_check = 0;
    for i in 0..iterations {
        let runs_before = env.sql_count("SELECT count(*) FROM runs");
        let out_dir = env.path(&format!("killed-{i}"));
        let mut child = env
            .command()
            .args([
                "run",
                "--db",
                &db,
                "--out",
                out_dir.to_str().unwrap(),
                &statement,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = duration.mul_f64(rng.random_range(0.0..1.1));
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            completed_early += 1;
        }
        let check = env.recon(&["check", "--db", &db]);
        assert!(
            check.status.success(),
            "after kill {i} at {wait:?}:\n{}",
            String::from_utf8_lossy(&check.stdout)
        );
        // A kill between the commit and the publication leaves the report aside: `check`
        // publishes it, so a committed run always has its whole report and no temporary file.
        if stdout(&check).contains("published the report of run") {
            published_by_check += 1;
        }
        if env.sql_count("SELECT count(*) FROM runs") > runs_before {
            assert!(
                out_dir.join("summary.json").is_file(),
                "kill {i} at {wait:?}: committed without a published report"
            );
            assert_eq!(
                hidden_files(&out_dir),
                0,
                "kill {i} at {wait:?}: temporary files left"
            );
        }
        let now = settled(&state(&env, &db));
        assert!(
            now == before || now == full,
            "kill {i} at {wait:?}: {now} settled, expected {before} or {full}"
        );
        if out_dir.join("summary.json").exists() {
            let summary = env.summary(&format!("killed-{i}"));
            assert_eq!(summary["counts"]["conservation_holds"], true);
        }
        for entry in std::fs::read_dir(&out_dir).into_iter().flatten() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            assert!(
                name.starts_with('.') || recon::report::FILES.contains(&name.as_str()),
                "{name}"
            );
        }
    }
    eprintln!(
        "crash test: {completed_early} of {iterations} runs finished before their kill, \
         {published_by_check} killed between commit and publication"
    );
    assert_ok(&env.run("final", &[&statement]));
    assert_eq!(
        state(&env, &db),
        expected,
        "the finished run equals the uninterrupted one"
    );
    assert!(env.recon(&["check", "--db", &db]).status.success());
}
