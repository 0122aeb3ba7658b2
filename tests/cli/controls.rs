//! Statement controls: balances, the statement's own totals and the chain of statements per
//! account, reported, and failing the run only with --strict-controls.

use std::fs;

use crate::env::{Env, assert_code, assert_ok, demo, stdout};

#[test]
fn statement_controls_report_failures_and_strict_controls_exit_65() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r1", &[&demo("2026-11-20.camt053.xml")]));
    let summary = env.summary("r1");
    assert_eq!(summary["controls"]["failed"], 0);
    assert_eq!(summary["controls"]["checked"], 1);
    // The next statement, with a wrong closing balance and a gap in the sequence numbers.
    let text = fs::read_to_string(demo("2026-11-21.camt053.xml")).unwrap();
    let broken = text
        .replace(
            "<Amt Ccy=\"EUR\">486.00</Amt>",
            "<Amt Ccy=\"EUR\">487.00</Amt>",
        )
        .replace(
            "<ElctrncSeqNb>2</ElctrncSeqNb>",
            "<ElctrncSeqNb>3</ElctrncSeqNb>",
        );
    let path = env.write("next.xml", broken);
    let out = env.run("r2", &[path.to_str().unwrap()]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("2 statement control(s) failed"),
        "{}",
        stdout(&out)
    );
    let summary = env.summary("r2");
    let failed: Vec<&str> = summary["controls"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["balance", "chain_sequence"]);
    assert!(
        fs::read_to_string(env.path("r2/report.html"))
            .unwrap()
            .contains("control")
    );
    let strict = Env::new().with_demo_topups();
    let path = strict.write("next.xml", fs::read(&path).unwrap());
    let out = strict.run("r", &["--strict-controls", path.to_str().unwrap()]);
    assert_code(&out, 65);
    assert_eq!(
        strict.summary("r")["counts"]["matched"],
        3,
        "matching still happened"
    );
}
