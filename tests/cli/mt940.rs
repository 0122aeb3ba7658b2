//! MT940: the statements in `fixtures/mt940/` settle top-ups through the binary, with German
//! (`?20`..`?29`) and SWIFT purpose fields, and a line that is not MT940 is named.

use crate::env::{Env, T1, T2, assert_code, assert_ok, fixture, outcome_count};

#[test]
fn mt940_statements_settle_with_german_and_swift_purpose_fields() {
    let env = Env::new().with_demo_topups();
    let dir = fixture("mt940");
    assert_ok(&env.run(
        "r",
        &[
            &format!("{dir}/2026-11-21-german.sta"),
            &format!("{dir}/2026-11-21-swift.sta"),
        ],
    ));
    let summary = env.summary("r");
    assert_eq!(summary["inputs"][0]["format"], "mt940");
    assert_eq!(summary["counts"]["read"], 5);
    assert_eq!(outcome_count(&summary, "MATCHED"), 3);
    assert_eq!(outcome_count(&summary, "REVERSAL"), 1);
    assert_eq!(outcome_count(&summary, "DEBIT"), 1);
    let matched = env.csv("r", "matched.csv");
    let split = matched.iter().find(|r| r["topup_id"] == T1).unwrap();
    assert_eq!(split["counterparty_name"], "Erika Mustermann");
    assert_eq!(split["counterparty_iban"], "DE02120300000000202051");
    let swift = matched.iter().find(|r| r["topup_id"] == T2).unwrap();
    assert_eq!(swift["counterparty_name"], "Max Muster");
    let bad = env.write(
        "bad.sta",
        ":20:X\n:25:DE1/2\n:60F:C261121EUR1,00\n:61:2611211121ZZ1,00NTRFNONREF\n",
    );
    let out = env.run("r2", &[bad.to_str().unwrap()]);
    assert_code(&out, 65);
    let error = env.input_error("r2");
    assert!(
        error.contains("line 4") && error.contains("not a :61: statement line"),
        "{error}"
    );
}
