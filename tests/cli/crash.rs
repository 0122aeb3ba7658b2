//! Crash safety, proven by killing: `recon run` on a generated night is killed with SIGKILL at
//! random moments, again and again. After every kill `recon check` must pass, nothing may be
//! half-settled (all of the night's settlements or none), and report files must be whole. Then
//! the run is finished and the database must equal that of an uninterrupted run.
//!
//! Quick by default (8 kills); the long version:
//! `RECON_CRASH_ITERATIONS=200 cargo test --release --test cli crash:: -- --nocapture`
//! (`RECON_CRASH_SEED=N` repeats a sequence of kill times).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use rand::{Rng, SeedableRng};

fn recon(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recon"))
        .args(args)
        .output()
        .unwrap()
}

fn import(db: &str, topups: &Path) {
    let out = recon(&["topups", "import", "--db", db, topups.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every top-up's id and status, as the state to compare.
fn state(db: &str) -> Vec<String> {
    let out = recon(&["topups", "list", "--db", db, "--format", "csv"]);
    assert!(out.status.success());
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
    let dir = tempfile::tempdir().unwrap();
    let night = dir.path().join("night");
    let spec = recon::benchdata::Spec {
        topups: 3600,
        transactions: 3000,
        seed: 7,
        created_at: None,
    };
    recon::benchdata::generate(&spec, &night).unwrap();
    let statement = night.join("statement.xml");
    let topups = night.join("topups.csv");

    // The uninterrupted run, and how long it takes.
    let reference_db = dir.path().join("reference.sqlite").display().to_string();
    import(&reference_db, &topups);
    let started = Instant::now();
    let out_ref = dir.path().join("ref-report").display().to_string();
    let out = recon(&[
        "run",
        "--db",
        &reference_db,
        "--out",
        &out_ref,
        statement.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let duration = started.elapsed();
    let expected = state(&reference_db);
    let full = settled(&expected);

    let db = dir.path().join("crash.sqlite").display().to_string();
    import(&db, &topups);
    let before = settled(&state(&db));
    let mut completed_early = 0;
    for i in 0..iterations {
        let out_dir = dir.path().join(format!("killed-{i}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_recon"))
            .args([
                "run",
                "--db",
                &db,
                "--out",
                out_dir.to_str().unwrap(),
                statement.to_str().unwrap(),
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
        let check = recon(&["check", "--db", &db]);
        assert!(
            check.status.success(),
            "after kill {i} at {wait:?}:\n{}",
            String::from_utf8_lossy(&check.stdout)
        );
        let now = settled(&state(&db));
        assert!(
            now == before || now == full,
            "kill {i} at {wait:?}: {now} settled, expected {before} or {full}"
        );
        if out_dir.join("summary.json").exists() {
            let summary: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap())
                    .unwrap();
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
    eprintln!("crash test: {completed_early} of {iterations} runs finished before their kill");
    let out_final = dir.path().join("final").display().to_string();
    let out = recon(&[
        "run",
        "--db",
        &db,
        "--out",
        &out_final,
        statement.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        state(&db),
        expected,
        "the finished run equals the uninterrupted one"
    );
    assert!(recon(&["check", "--db", &db]).status.success());
}
