//! MT940: the statements in `fixtures/mt940/` settle top-ups through the binary, with German
//! (`?20`..`?29`) and SWIFT purpose fields, in the shapes banks send (header lines, SWIFT
//! framing, loosely filled `:61:` lines, 30 February); a line that is not MT940 is named, and a
//! file cut off before its closing balance is rejected.

use crate::env::{Env, T1, T2, assert_code, assert_ok, fixture, outcome_count};

/// `fixtures/mt940/<name>`.
fn sta(name: &str) -> String {
    fixture(&format!("mt940/{name}"))
}

#[test]
fn mt940_statements_settle_with_german_and_swift_purpose_fields() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run(
        "r",
        &[&sta("2026-11-21-german.sta"), &sta("2026-11-21-swift.sta")],
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

#[test]
fn mt940_as_banks_send_it_with_header_lines_framing_and_loose_statement_lines_settles() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run(
        "r",
        &[
            &sta("2026-11-21-abn-headers.sta"),
            &sta("2026-11-21-ing-framed.sta"),
        ],
    ));
    let summary = env.summary("r");
    for input in summary["inputs"].as_array().unwrap() {
        assert_eq!(input["format"], "mt940", "{input}");
        assert_eq!(input["statements"].as_array().unwrap().len(), 2, "{input}");
    }
    assert_eq!(summary["counts"]["read"], 5);
    assert_eq!(outcome_count(&summary, "MATCHED"), 3, "{summary}");
    assert_eq!(outcome_count(&summary, "REVERSAL"), 1);
    assert_eq!(
        outcome_count(&summary, "DEBIT"),
        1,
        "the fee with `NIT NONREF`"
    );
    let controls = &summary["controls"];
    assert_eq!(controls["failed"], 0, "{controls}");
    assert!(controls["checked"].as_u64().unwrap() >= 4, "{controls}");
    let matched = env.csv("r", "matched.csv");
    let abn = matched.iter().find(|r| r["topup_id"] == T1).unwrap();
    assert_eq!(abn["amount"], "200.00", "C200: no decimal comma");
    assert_eq!(
        abn["entry_ref"], "NL02ABNA0123456789",
        "an IBAN as customer ref"
    );
    assert_eq!(abn["bank_ref"], "0000000012345678901234");
    let ing = matched.iter().find(|r| r["topup_id"] == T2).unwrap();
    assert_eq!(ing["entry_ref"], "DE75512108001245126199");
}

#[test]
fn a_fee_booked_on_30_february_is_kept_on_the_months_last_day_with_a_note() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r", &[&sta("2026-02-28-fee-on-30-february.sta")]));
    let ignored = env.csv("r", "ignored.csv");
    assert_eq!(ignored.len(), 1);
    let fee = &ignored[0];
    assert_eq!(fee["outcome"], "DEBIT");
    assert_eq!(fee["value_date"], "2026-02-28");
    assert_eq!(fee["booking_date"], "2026-02-28");
    assert!(
        fee["remittance"].contains(
            "[recon: the bank's value date 260230 is not a calendar date; 2026-02-28, the \
             month's last day, stands in for it]"
        ) && fee["remittance"].contains("the bank's entry date 0230"),
        "{}",
        fee["remittance"]
    );
}

#[test]
fn an_mt940_file_cut_off_before_its_closing_balance_is_rejected_with_its_line() {
    let env = Env::new().with_demo_topups();
    let whole = std::fs::read_to_string(sta("2026-11-21-german.sta")).unwrap();
    let cut = &whole[..whole.find(":62F:").unwrap()];
    let path = env.write("cut.sta", cut);
    assert_code(&env.run("r", &[path.to_str().unwrap()]), 65);
    let error = env.input_error("r");
    assert!(
        error.contains("line 11: the file ends inside the statement that starts at line 1")
            && error.contains("cut off"),
        "{error}"
    );
    assert_eq!(
        env.summary("r")["counts"]["read"],
        0,
        "nothing from it is settled"
    );
}

#[test]
fn an_mt940_file_behind_header_lines_is_never_taken_for_a_csv() {
    let env = Env::new().with_demo_topups();
    let path = env.write(
        "broken.sta",
        "ABNANL2A\n940\nABNANL2A\n:20:ABN AMRO BANK NV\n:25:517852257\n:60F:C261121EUR1,00\n\
         :61:2611211121Q1,00NTRFNONREF\n:62F:C261121EUR1,00\n-\n",
    );
    assert_code(&env.run("r", &[path.to_str().unwrap()]), 65);
    let error = env.input_error("r");
    assert!(
        error.contains("line 7") && error.contains("not a :61: statement line"),
        "{error}"
    );
}
