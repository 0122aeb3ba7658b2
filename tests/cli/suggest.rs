//! What the report tells a person to do about an exception: a near-miss reference, the payer's
//! open top-up of the same amount, never a top-up the same run settled.

use crate::env::{Env, assert_ok, camt, credit, demo, stdout};

#[test]
fn unknown_and_missing_references_get_suggestions_from_open_topups() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r1", &[&demo("2026-11-20.camt053.xml")]));
    let unmatched = env.csv("r1", "unmatched.csv");
    let unknown = unmatched
        .iter()
        .find(|r| r["outcome"] == "UNKNOWN_REFERENCE")
        .unwrap();
    assert!(
        unknown["suggestion"]
            .starts_with("did you mean top-up 92276658-1e27-41c0-8a6a-63ec24ede6a4"),
        "{unknown:?}"
    );
    // Two substituted digits are still found; three are not.
    let t13 = "92276658-1e27-41c0-8a6a-63ec24ede6a4";
    let two = "92276658-1e27-41c0-8a6a-63ec24ede600";
    let three = "92276658-1e27-41c0-8a6a-63ec24ed0000";
    let stmt = env.write(
        "typos.xml",
        camt(
            "S9",
            &[
                credit("12.00", "EUR", &format!("topup {two}"), "X1"),
                credit("12.00", "EUR", &format!("topup {three}"), "X2"),
            ],
        ),
    );
    assert_ok(&env.run("r2", &[stmt.to_str().unwrap()]));
    let rows = env.csv("r2", "unmatched.csv");
    assert!(
        rows[0]["suggestion"].contains(&format!("did you mean top-up {t13}")),
        "{:?}",
        rows[0]
    );
    assert!(
        rows[1]["suggestion"].starts_with("no top-up has reference"),
        "{:?}",
        rows[1]
    );
    // Erika's payment settled a top-up of account group GROUP: her next payment without a
    // reference points at that group's open top-up of the same amount first.
    let stmt = env.write(
        "noref.xml",
        camt("S10", &[credit("10.00", "EUR", "thanks", "X3")]),
    );
    assert_ok(&env.run("r3", &[stmt.to_str().unwrap()]));
    let row = &env.csv("r3", "unmatched.csv")[0];
    assert!(
        row["suggestion"]
            .contains("0fd630f1-f29d-4da9-953f-48f1a09f76b5 (10.00 EUR, same payer and amount)"),
        "{row:?}"
    );
}

#[test]
fn a_topup_settled_in_the_run_is_not_suggested_for_another_payment_of_the_run() {
    // The typo comes first in the statement, the exact payment of the same top-up after it:
    // by the end of the run that top-up is settled, so the report must not offer it.
    let env = Env::new().with_demo_topups();
    let t13 = "92276658-1e27-41c0-8a6a-63ec24ede6a4";
    let typo = "92276658-1e27-41c0-8a6a-63ec24ede600";
    let stmt = env.write(
        "late.xml",
        camt(
            "S11",
            &[
                credit("12.00", "EUR", &format!("topup {typo}"), "Y1"),
                credit("12.00", "EUR", &format!("topup {t13}"), "Y2"),
            ],
        ),
    );
    assert_ok(&env.run("r1", &[stmt.to_str().unwrap()]));
    let matched = env.csv("r1", "matched.csv");
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0]["topup_id"], t13);
    let unmatched = env.csv("r1", "unmatched.csv");
    assert_eq!(unmatched.len(), 1);
    assert!(
        !unmatched[0]["suggestion"].contains(t13),
        "{:?}",
        unmatched[0]
    );
}

#[test]
fn a_payment_matched_later_in_the_run_names_the_payers_account_group() {
    // The payment without a reference comes first; the same payer's matched payment after it
    // tells which account group the payer tops up, as it would in the next night's run.
    let env = Env::new().with_demo_topups();
    let stmt = env.write(
        "payer.xml",
        camt(
            "S12",
            &[
                credit("10.00", "EUR", "thanks", "Z1"),
                credit(
                    "200.00",
                    "EUR",
                    "topup 1ab4fef9-a097-4c6f-9345-647025d5fde6",
                    "Z2",
                ),
            ],
        ),
    );
    assert_ok(&env.run("r1", &[stmt.to_str().unwrap()]));
    assert_eq!(env.csv("r1", "matched.csv").len(), 1);
    let row = &env.csv("r1", "unmatched.csv")[0];
    assert_eq!(row["outcome"], "NO_REFERENCE");
    assert!(
        row["suggestion"]
            .contains("0fd630f1-f29d-4da9-953f-48f1a09f76b5 (10.00 EUR, same payer and amount)"),
        "{row:?}"
    );
}

/// The indexes the release before migration 10 kept on `topups` for suggestions.
const OLD_SUGGESTION_INDEXES: [&str; 6] = [
    "topups_open_amount",
    "topups_open_group",
    "topups_ref0",
    "topups_ref1",
    "topups_ref2",
    "topups_ref3",
];

#[test]
fn a_database_with_the_old_suggestion_indexes_migrates_checks_clean_and_still_suggests() {
    // The database as the release before migration 10 left it (fixtures/releases).
    let env = Env::new();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/releases/2026-12-06-schema-8/recon.sqlite"
        ),
        env.db(),
    )
    .unwrap();
    let old = |name: &str| {
        env.sql_count(&format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '{name}'"
        ))
    };
    assert!(OLD_SUGGESTION_INDEXES.iter().all(|name| old(name) == 1));
    let out = env.recon(&["check", "--db", &env.db()]);
    assert_ok(&out);
    assert!(stdout(&out).contains("checks hold"), "{}", stdout(&out));
    assert!(
        OLD_SUGGESTION_INDEXES.iter().all(|name| old(name) == 0),
        "migration 10 dropped them"
    );
    assert_eq!(
        env.sql_count("PRAGMA user_version"),
        recon::store::SCHEMA_VERSION as i64
    );
    // A near miss (one digit swapped for another, one pair transposed) and a payment without
    // reference still find their open top-ups.
    let t13 = "92276658-1e27-41c0-8a6a-63ec24ede6a4";
    let near = "92276658-1e27-41c0-8a6a-63ec24eed6a5";
    let stmt = env.write(
        "later.xml",
        camt(
            "S11",
            &[
                credit("12.00", "EUR", &format!("topup {near}"), "Y1"),
                credit("10.00", "EUR", "thanks", "Y2"),
            ],
        ),
    );
    assert_ok(&env.run("r2", &[stmt.to_str().unwrap()]));
    let rows = env.csv("r2", "unmatched.csv");
    assert!(
        rows[0]["suggestion"].contains(&format!("did you mean top-up {t13}")),
        "{:?}",
        rows[0]
    );
    assert!(
        rows[1]["suggestion"].contains("(10.00 EUR, same payer and amount)"),
        "{:?}",
        rows[1]
    );
    assert_ok(&env.recon(&["check", "--db", &env.db()]));
}
