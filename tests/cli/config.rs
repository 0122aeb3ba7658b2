//! Settings: flags, then the environment, then recon.toml, then defaults, as `recon config show`
//! tells; limits from the configuration are enforced.

use std::path::Path;

use crate::env::{Env, assert_code, assert_ok, demo, stderr, stdout};

#[test]
fn settings_come_from_flags_then_environment_then_recon_toml_then_defaults() {
    let env = Env::new().with_demo_topups();
    env.write(
        "recon.toml",
        "db = \"recon.sqlite\"\nwait = 5\n[run]\nstale_after_days = 7\n[limits]\nmax_depth = 40\n",
    );
    let config = env.path("recon.toml").display().to_string();
    let out = env.recon(&["config", "show", "--config", &config, "--wait", "9"]);
    assert_ok(&out);
    let text = stdout(&out);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .to_string()
    };
    assert!(
        line("wait").starts_with("wait = 9 ") && line("wait").ends_with("# flag --wait"),
        "{text}"
    );
    assert!(
        line("limits.max_depth").starts_with("limits.max_depth = 40 ")
            && line("limits.max_depth").contains("recon.toml"),
        "{text}"
    );
    assert!(
        line("limits.max_text_bytes").ends_with("# default"),
        "{text}"
    );
    assert!(
        line("run.stale_after_days").starts_with("run.stale_after_days = 7 "),
        "{text}"
    );
    assert!(
        line("db").contains("recon.sqlite") && line("db").contains("recon.toml"),
        "{text}"
    );
    // The database from the file: no --db needed.
    let out = env.recon(&["topups", "list", "--config", &config]);
    assert_ok(&out);
    assert!(stdout(&out).contains("13 top-up(s)"));
    // The environment names the database too, and a flag beats it.
    let out = env
        .command()
        .args(["config", "show"])
        .env("RECON_DB", env.db())
        .current_dir(env.path("."))
        .output()
        .unwrap();
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("db =") && l.ends_with("# environment RECON_DB")),
        "{}",
        stdout(&out)
    );
    // A limit from the configuration is enforced: the demo statement nests deeper than 3.
    env.write("strict.toml", "[limits]\nmax_depth = 3\n");
    let strict = env.path("strict.toml").display().to_string();
    let out_dir = env.path("r").display().to_string();
    let out = env.recon(&[
        "run",
        "--db",
        &env.db(),
        "--config",
        &strict,
        "--out",
        &out_dir,
        &demo("2026-11-20.camt053.xml"),
    ]);
    assert_code(&out, 65);
    assert!(
        env.input_error("r")
            .contains("nested deeper than the limit of 3")
    );
    // An unknown key is a configuration error, not silently ignored.
    env.write("typo.toml", "[limits]\nmax_dept = 3\n");
    let typo = env.path("typo.toml").display().to_string();
    let out = env.recon(&["config", "show", "--config", &typo]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("max_dept"), "{}", stderr(&out));
    let out = env
        .command()
        .args(["runs", "list"])
        .env_remove("RECON_DB")
        .env_remove("RECON_CONFIG")
        .current_dir(env.path("r"))
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("no database given"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_show_prints_a_recon_toml_that_recon_reads_back_with_the_same_settings() {
    // Issue #23, item 15: `wait = "30"` and the `config =` line were refused when read back.
    let env = Env::new().with_demo_topups();
    let first = env.write(
        "recon.toml",
        "db = \"recon.sqlite\"\nwait = 30\n\
         [limits]\nmax_file_bytes = 1000000\nmax_transactions = 500\nmax_text_bytes = 4096\n\
         max_depth = 20\n\
         [run]\nstale_after_days = 3\nstrict_controls = true\nskip_bad_rows = true\n\
         profile = \"dkb\"\n\
         [serve]\nlisten = \"0.0.0.0:9090\"\n\
         [webhooks]\nurl = \"https://platform.example/hooks\"\n",
    );
    let show = |config: &Path| {
        let out = env.recon(&["config", "show", "--config", config.to_str().unwrap()]);
        assert_ok(&out);
        stdout(&out)
    };
    let printed = show(&first);
    let second = env.write("printed.toml", &printed);
    let reprinted = show(&second);
    // The same settings, apart from the source column and the file named in the first line.
    let settings = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with("# config = "))
            .map(|l| l.rsplit_once(" # ").unwrap().0.trim_end().to_string())
            .collect()
    };
    assert_eq!(settings(&printed), settings(&reprinted));
    let values = |text: &str| text.parse::<toml::Table>().unwrap();
    assert_eq!(values(&printed), values(&reprinted));
    for setting in [
        "wait = 30",
        "limits.max_file_bytes = 1000000",
        "limits.max_transactions = 500",
        "limits.max_text_bytes = 4096",
        "limits.max_depth = 20",
        "run.stale_after_days = 3",
        "run.strict_controls = true",
        "run.skip_bad_rows = true",
        "run.profile = \"dkb\"",
        "serve.listen = \"0.0.0.0:9090\"",
        "webhooks.url = \"https://platform.example/hooks\"",
    ] {
        assert!(
            settings(&printed).iter().any(|s| s == setting),
            "{setting} in {printed}"
        );
    }
    // Every setting now comes from the printed file, and recon works from it.
    let from_second = format!("# {}", second.display());
    assert!(
        reprinted
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.ends_with(&from_second)),
        "{reprinted}"
    );
    let out = env.recon(&["topups", "list", "--config", second.to_str().unwrap()]);
    assert_ok(&out);
    assert!(stdout(&out).contains("13 top-up(s)"), "{}", stdout(&out));
}

#[test]
fn the_report_time_zone_comes_from_the_flag_or_recon_toml_and_a_past_run_keeps_its_own() {
    let env = Env::new().with_demo_topups();
    env.write("recon.toml", "[report]\ntimezone = \"America/New_York\"\n");
    let config = env.path("recon.toml").display().to_string();
    let night = demo("2026-11-20.camt053.xml");
    // An unknown zone is refused before anything runs.
    let out = env.run(
        "bad",
        &["--config", &config, "--timezone", "Mars/Olympus", &night],
    );
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("unknown time zone \"Mars/Olympus\": give an IANA name"),
        "{}",
        stderr(&out)
    );
    assert!(!env.path("bad").exists());
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 0);

    let out = env.run("r", &["--config", &config, &night]);
    assert_ok(&out);
    assert_eq!(env.summary("r")["timezone"], "America/New_York");
    let page = std::fs::read_to_string(env.path("r/report.html")).unwrap();
    assert!(page.contains("Times in America&#x2f;New_York, with UTC in brackets."));
    assert!(page.contains(" EST ("), "New York's winter time beside UTC");

    // `recon report` renders the run again in the zone it recorded, whatever is set now.
    let run = env.summary("r")["run_id"].as_str().unwrap().to_string();
    let out = env.recon(&[
        "report",
        "--db",
        &env.db(),
        &run,
        "--out",
        &env.path("again").display().to_string(),
    ]);
    assert_ok(&out);
    let again = std::fs::read_to_string(env.path("again/report.html")).unwrap();
    let strip = |page: &str| page.split("report generated").next().unwrap().to_string();
    assert_eq!(strip(&page), strip(&again));

    // A flag beats the file.
    let out = env.run(
        "utc",
        &[
            "--config",
            &config,
            "--timezone",
            "UTC",
            &demo("2026-11-21.camt053.xml"),
        ],
    );
    assert_ok(&out);
    assert_eq!(env.summary("utc")["timezone"], "UTC");
}
