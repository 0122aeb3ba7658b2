//! The report page in a real headless Chromium: it renders, its script runs, and it shows the
//! run's totals. Skipped, with a message, where Chromium is not installed (`.ci/run` installs
//! it). `RECON_SCREENSHOT=docs/report.png cargo test --release --test cli browser::` refreshes
//! the picture in the README.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::{Env, assert_ok};

fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Chromium, or `None` after a notice that `test` was skipped; under `CI=true` a missing
/// browser fails the test (`.ci/run` installs it), so CI never passes without rendering.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: Chromium is not installed (apt-get install -y chromium; .ci/run does it): \
             under CI=true the report page must be rendered"
        );
        eprintln!(
            "SKIPPED {test}: Chromium is not installed (apt-get install -y chromium); the report page was not rendered"
        );
    }
    found
}

pub fn headless(browser: &Path, profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium starts")
}

#[test]
fn the_report_page_renders_in_chromium_and_shows_the_totals() {
    let Some(browser) = chromium_or_skip("browser") else {
        return;
    };
    let env = Env::new();
    assert_ok(&env.run_demo());
    let page = format!("file://{}", env.path("demo/report/report.html").display());
    let profile = env.path("profile");

    let dom = headless(&browser, &profile, &["--dump-dom", &page]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("<html lang=\"en\" class=\" js\">"),
        "the page's script ran"
    );
    assert!(
        dom.contains(
            "10 exception(s) worth 471.00 EUR in and 200.00 EUR out need a human · 5 matched"
        ),
        "status line"
    );
    assert!(dom.contains("<strong id=\"count-read\">18</strong>"));
    assert!(dom.contains("<strong id=\"count-matched\">5</strong>"));
    assert!(dom.contains(
        "<td>MATCHED</td><td>In</td><td>EUR</td><td class=\"num\">5</td><td class=\"num\">415.00</td>"
    ));
    assert!(dom.contains("all 4 passed"), "statement controls");
    assert!(
        dom.contains("Birthday money for Lena &lt;3"),
        "bank text stays text"
    );

    let shot = std::env::var_os("RECON_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| env.path("report.png"));
    let out = headless(
        &browser,
        &profile,
        &[
            "--window-size=1400,1500",
            &format!("--screenshot={}", shot.display()),
            &page,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real picture"
    );
}
