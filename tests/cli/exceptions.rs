//! The worklist: exceptions stay open until someone settles, returns or dismisses them (each
//! audited, announced, refused when the state does not allow it), reopen undoes, returns are
//! exported as pain.001 and closed by the statement that shows them paid, and `recon check`
//! holds the worklist's invariants.

use serde_json::Value;

use crate::env::{Env, assert_code, assert_ok, stderr, stdout};

const OUR_IBAN: &str = "DE89370400440532013000";
const ANNA: &str = "DE02120300000000202051";
const BORIS: &str = "FR1420041010050500013M02606";

/// A camt.053 statement of `entries` on our account.
fn statement(id: &str, entries: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
<BkToCstmrStmt><GrpHdr><MsgId>{id}</MsgId><CreDtTm>2026-11-21T22:00:00</CreDtTm></GrpHdr>
<Stmt><Id>{id}</Id><Acct><Id><IBAN>{OUR_IBAN}</IBAN></Id></Acct>
{}
</Stmt></BkToCstmrStmt></Document>
"#,
        entries.join("\n")
    )
}

/// A booked incoming payment from `payer` (an IBAN, or none).
fn paid(amount: &str, remittance: &str, bank_ref: &str, payer: Option<&str>) -> String {
    let account = payer
        .map(|iban| format!("<DbtrAcct><Id><IBAN>{iban}</IBAN></Id></DbtrAcct>"))
        .unwrap_or_default();
    format!(
        r#"<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>2026-11-21</Dt></BookgDt><ValDt><Dt>2026-11-21</Dt></ValDt><AcctSvcrRef>{bank_ref}</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
<RltdPties><Dbtr><Nm>Anna Payer</Nm></Dbtr>{account}</RltdPties>
<RmtInf><Ustrd>{remittance}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"#
    )
}

/// A booked outgoing payment with this end-to-end id.
fn sent(amount: &str, end_to_end: &str, bank_ref: &str) -> String {
    format!(
        r#"<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>2026-11-24</Dt></BookgDt><ValDt><Dt>2026-11-24</Dt></ValDt><AcctSvcrRef>{bank_ref}</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><EndToEndId>{end_to_end}</EndToEndId></Refs>
<RltdPties><Cdtr><Nm>Anna Payer</Nm></Cdtr><CdtrAcct><Id><IBAN>{ANNA}</IBAN></Id></CdtrAcct></RltdPties>
<RmtInf><Ustrd>Return</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"#
    )
}

/// A new top-up: (id, reference).
fn topup(env: &Env, amount: &str) -> (String, String) {
    let out = env.recon(&[
        "topups",
        "create",
        "--db",
        &env.db(),
        "--account-group-id",
        crate::env::GROUP,
        "--amount",
        amount,
        "--currency",
        "EUR",
    ]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["id"].as_str().unwrap().to_string(),
        v["settlement_reference"].as_str().unwrap().to_string(),
    )
}

/// Runs a statement of these entries into the report directory `out`.
fn night(env: &Env, out: &str, entries: &[String]) {
    let file = env.write(&format!("{out}.xml"), statement(out, entries));
    assert_ok(&env.run(out, &[file.to_str().unwrap()]));
}

fn json(env: &Env, args: &[&str]) -> Value {
    let db = env.db();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--db", &db]);
    let out = env.recon(&all);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn open_ids(env: &Env, extra: &[&str]) -> Vec<i64> {
    let mut args = vec!["exceptions", "list", "--format", "json"];
    args.extend_from_slice(extra);
    json(env, &args)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

/// Every event of the outbox: (type, payload).
fn events(env: &Env) -> Vec<(String, Value)> {
    env.outbox_events()
        .iter()
        .map(|e| {
            let payload = e["payload"].as_str().unwrap();
            let kind = e["type"].as_str().unwrap().to_string();
            (kind, serde_json::from_str(payload).unwrap())
        })
        .collect()
}

/// Everything a refusal must leave as it was.
fn state(env: &Env) -> (i64, i64, i64, i64, String) {
    let balances: String = env
        .conn()
        .query_row(
            "SELECT coalesce(group_concat(settled), '') FROM cash_balances",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (
        env.sql_count("SELECT count(*) FROM resolutions"),
        env.sql_count("SELECT count(*) FROM events"),
        env.sql_count("SELECT count(*) FROM exceptions WHERE resolution IS NULL"),
        env.sql_count("SELECT count(*) FROM topups WHERE status = 'SETTLED'"),
        balances,
    )
}

fn check_ok(env: &Env) {
    assert_ok(&env.recon(&["check", "--db", &env.db()]));
}

#[test]
fn exceptions_stay_open_across_nights_and_list_with_filters_and_formats() {
    let env = Env::new();
    let (t1, r1) = topup(&env, "100.00");
    night(
        &env,
        "n1",
        &[
            paid("95.00", &format!("topup {r1}"), "A1", Some(ANNA)),
            paid("12.00", "thanks", "A2", Some(BORIS)),
        ],
    );
    night(&env, "n2", &[paid("500.00", "no idea", "A3", None)]);
    let all = json(&env, &["exceptions", "list", "--format", "json"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3, "yesterday's exceptions are still listed");
    assert_eq!(all[0]["reason"], "AMOUNT_MISMATCH");
    assert_eq!(all[0]["topup_id"], t1.as_str());
    assert_eq!(all[0]["status"], "open");
    assert_eq!(all[0]["payer_iban"], ANNA);
    assert_eq!(all[0]["age_days"], 0);
    let mismatch = all[0]["id"].as_i64().unwrap();
    assert_eq!(open_ids(&env, &["--reason", "no_reference"]).len(), 2);
    assert_eq!(open_ids(&env, &["--min-amount", "100"]).len(), 1);
    assert_eq!(open_ids(&env, &["--max-amount", "95.00"]).len(), 2);
    assert_eq!(
        open_ids(&env, &["--account-group", crate::env::GROUP]),
        vec![mismatch]
    );
    assert_eq!(open_ids(&env, &["--currency", "USD"]).len(), 0);
    assert_eq!(open_ids(&env, &["--min-age-days", "3"]).len(), 0);
    // Three days later (the first night's opening moved back by hand).
    env.conn()
        .execute(
            "UPDATE exceptions SET opened_at = '2020-01-01T00:00:00Z' WHERE run_id =
                 (SELECT run_id FROM exceptions ORDER BY tx LIMIT 1)",
            [],
        )
        .unwrap();
    assert_eq!(open_ids(&env, &["--min-age-days", "3"]).len(), 2);
    assert_eq!(open_ids(&env, &["--max-age-days", "2"]).len(), 1);
    let csv = env.recon(&["exceptions", "list", "--db", &env.db(), "--format", "csv"]);
    assert_ok(&csv);
    let text = stdout(&csv);
    assert!(
        text.starts_with("id,status,reason,opened_at,age_days,amount,currency"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4, "{text}");
    let table = env.recon(&["exceptions", "list", "--db", &env.db()]);
    assert!(
        stdout(&table).ends_with("3 exception(s)\n"),
        "{}",
        stdout(&table)
    );
    let bad = env.recon(&[
        "exceptions",
        "list",
        "--db",
        &env.db(),
        "--status",
        "closed",
    ]);
    assert_code(&bad, 2);
    // Show: the transaction, the top-up its reference names and why it fits, no history yet.
    let shown = json(&env, &["exceptions", "show", &mismatch.to_string()]);
    assert_eq!(shown["amount"], "95.00");
    assert_eq!(shown["candidates"][0]["topup"]["id"], t1.as_str());
    assert_eq!(shown["candidates"][0]["fits"], true);
    assert!(
        shown["candidates"][0]["why"]
            .as_str()
            .unwrap()
            .contains("underpayment of 5.00"),
        "{shown}"
    );
    assert_eq!(shown["history"], serde_json::json!([]));
    let missing = env.recon(&["exceptions", "show", "--db", &env.db(), "999"]);
    assert_code(&missing, 65);
    assert!(
        stderr(&missing).contains("no exception with id 999"),
        "{}",
        stderr(&missing)
    );
    check_ok(&env);
}

#[test]
fn an_underpayment_settled_by_hand_is_audited_and_announced_like_a_run_settlement() {
    let env = Env::new();
    let (t1, r1) = topup(&env, "100.00");
    night(
        &env,
        "n1",
        &[paid("95.00", &format!("topup {r1}"), "A1", Some(ANNA))],
    );
    let id = open_ids(&env, &[])[0].to_string();
    let before = events(&env).len();
    let resolved = json(
        &env,
        &[
            "exceptions",
            "settle",
            &id,
            "--topup",
            &t1,
            "--note",
            "customer confirmed by phone",
            "--by",
            "erika",
        ],
    );
    assert_eq!(resolved["topup"]["status"], "SETTLED");
    let r = &resolved["resolution"];
    assert_eq!(r["kind"], "settle");
    assert_eq!(r["by"], "erika");
    assert_eq!(r["note"], "customer confirmed by phone");
    assert_eq!(r["changes"]["payment"], "underpayment");
    assert_eq!(r["changes"]["difference"], "-5.00");
    assert_eq!(r["changes"]["cash_balance"]["to"], "100.00");
    let new: Vec<(String, Value)> = events(&env).split_off(before);
    let kinds: Vec<&str> = new.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["topup.settled", "cash_balance.updated"]);
    assert_eq!(new[1].1["change"], "100.00");
    assert_eq!(new[1].1["received"], "95.00");
    assert_eq!(new[1].1["difference"], "-5.00");
    assert_eq!(
        env.topup(&t1)["settlement"]["amount"],
        "95.00",
        "topups show links the payment"
    );
    assert!(open_ids(&env, &[]).is_empty());
    let resolved_list = json(
        &env,
        &[
            "exceptions",
            "list",
            "--status",
            "resolved",
            "--format",
            "json",
        ],
    );
    assert_eq!(resolved_list[0]["status"], "settled");
    check_ok(&env);
    // Reopen: the top-up is open again as it was, the balance back, both audited.
    let reopened = json(
        &env,
        &[
            "exceptions",
            "reopen",
            &id,
            "--note",
            "wrong top-up",
            "--by",
            "max",
        ],
    );
    assert_eq!(reopened["topup"]["status"], "CONFIRMED");
    assert_eq!(reopened["resolution"]["reopened_by"], "max");
    assert_eq!(reopened["resolution"]["reopen_note"], "wrong top-up");
    let last: Vec<(String, Value)> = events(&env).into_iter().rev().take(2).collect();
    assert_eq!(last[1].0, "cash_balance.updated");
    assert_eq!(last[1].1["change"], "-100.00");
    assert_eq!(last[1].1["cash_balance"], "0.00");
    assert_eq!(last[0].0, "exception.reopened");
    assert_eq!(open_ids(&env, &[]).len(), 1);
    let shown = json(&env, &["exceptions", "show", &id]);
    assert_eq!(shown["history"].as_array().unwrap().len(), 1);
    assert_eq!(shown["history"][0]["reopened_by"], "max");
    check_ok(&env);
    // And settled again, by the OS user by default.
    let again = env
        .command()
        .args([
            "exceptions",
            "settle",
            &id,
            "--topup",
            &t1,
            "--note",
            "right after all",
        ])
        .args(["--db", &env.db()])
        .env("USER", "osuser")
        .output()
        .unwrap();
    assert_ok(&again);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["resolution"]["by"], "osuser");
    check_ok(&env);
}

#[test]
fn two_payments_of_one_payer_are_suggested_and_settle_one_topup_together() {
    let env = Env::new();
    let (t1, r1) = topup(&env, "100.00");
    night(
        &env,
        "n1",
        &[
            paid("60.00", &format!("topup {r1}"), "A1", Some(ANNA)),
            paid("40.00", &format!("topup {r1} rest"), "A2", Some(ANNA)),
            paid("40.00", &format!("topup {r1}"), "A3", Some(BORIS)),
        ],
    );
    let list = json(&env, &["exceptions", "list", "--format", "json"]);
    let (a, b, c) = (
        list[0]["id"].as_i64().unwrap(),
        list[1]["id"].as_i64().unwrap(),
        list[2]["id"].as_i64().unwrap(),
    );
    assert_eq!(list[0]["settles_with"]["topup_id"], t1.as_str());
    assert_eq!(
        list[0]["settles_with"]["transactions"],
        serde_json::json!([a, b])
    );
    assert_eq!(
        list[2]["settles_with"],
        Value::Null,
        "another payer's payment is not added"
    );
    let shown = json(&env, &["exceptions", "show", &b.to_string()]);
    assert_eq!(
        shown["settles_with"]["transactions"],
        serde_json::json!([a, b])
    );
    // Another payer's payment is refused with nothing changed.
    let before = state(&env);
    let mixed = env.recon(&[
        "exceptions",
        "settle",
        &a.to_string(),
        &c.to_string(),
        "--topup",
        &t1,
        "--note",
        "x",
        "--db",
        &env.db(),
    ]);
    assert_code(&mixed, 65);
    assert!(stderr(&mixed).contains("same payer"), "{}", stderr(&mixed));
    assert_eq!(state(&env), before);
    let resolved = json(
        &env,
        &[
            "exceptions",
            "settle",
            &a.to_string(),
            &b.to_string(),
            "--topup",
            &t1,
            "--note",
            "paid in two transfers",
        ],
    );
    assert_eq!(
        resolved["resolution"]["transactions"],
        serde_json::json!([a, b])
    );
    assert_eq!(resolved["resolution"]["changes"]["payment"], "exact");
    assert_eq!(open_ids(&env, &[]), vec![c]);
    check_ok(&env);
}

#[test]
fn refusals_say_why_and_change_nothing() {
    let env = Env::new();
    let (t1, r1) = topup(&env, "100.00");
    let (t2, _) = topup(&env, "7.00");
    night(
        &env,
        "n1",
        &[
            paid("95.00", &format!("topup {r1}"), "A1", Some(ANNA)),
            paid("8.00", "no reference", "A2", None),
            sent("3.00", "NOTPROVIDED", "A3"),
            paid("9.00", "no reference", "A4", Some("DE00123456789012345678")),
        ],
    );
    let ids = open_ids(&env, &[]);
    let (first, no_iban) = (ids[0].to_string(), ids[1].to_string());
    let bad_iban = ids[2].to_string();
    let cancel = env.recon(&["topups", "cancel", "--db", &env.db(), &t2]);
    assert_ok(&cancel);
    let db = env.db();
    let before = state(&env);
    for (args, says) in [
        (
            vec!["settle", &first, "--topup", &t2, "--note", "n"],
            "is CANCELLED",
        ),
        (
            vec!["settle", &first, "--topup", &t1, "--note", "  "],
            "needs a note",
        ),
        (vec!["return", &no_iban, "--note", "n"], "has no payer IBAN"),
        (
            vec!["return", &bad_iban, "--note", "n"],
            "is not a valid IBAN",
        ),
        (
            vec!["reopen", &first, "--note", "n"],
            "there is no resolution to reopen",
        ),
        (
            vec!["dismiss", "4242", "--note", "n"],
            "no exception with id 4242",
        ),
    ] {
        let mut all = vec!["exceptions"];
        all.extend(args.iter().copied());
        all.extend(["--db", &db]);
        let out = env.recon(&all);
        assert_code(&out, 65);
        assert!(stderr(&out).contains(says), "{all:?}: {}", stderr(&out));
        assert_eq!(state(&env), before, "{all:?}");
    }
    assert_ok(&env.recon(&[
        "exceptions",
        "dismiss",
        &first,
        "--note",
        "handled by support",
        "--db",
        &db,
    ]));
    let before = state(&env);
    let twice = env.recon(&[
        "exceptions",
        "settle",
        &first,
        "--topup",
        &t1,
        "--note",
        "n",
        "--db",
        &db,
    ]);
    assert_code(&twice, 65);
    assert!(
        stderr(&twice).contains("already dismissed"),
        "{}",
        stderr(&twice)
    );
    assert_eq!(state(&env), before);
    let dismissed = events(&env).pop().unwrap();
    assert_eq!(dismissed.0, "exception.dismissed");
    assert_eq!(dismissed.1["note"], "handled by support");
    assert_eq!(dismissed.1["account_group_id"], crate::env::GROUP);
    check_ok(&env);
}

#[test]
fn a_return_is_exported_as_pain001_and_closed_by_the_statement_that_shows_it_paid() {
    let env = Env::new();
    topup(&env, "1.00");
    night(&env, "n1", &[paid("30.50", "unknown", "A1", Some(ANNA))]);
    let id = open_ids(&env, &[])[0].to_string();
    let returned = json(
        &env,
        &[
            "exceptions",
            "return",
            &id,
            "--note",
            "no such customer",
            "--by",
            "erika",
        ],
    );
    let e2e = returned["return"]["end_to_end_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(e2e.starts_with("RECON-RET-"), "{returned}");
    assert_eq!(returned["return"]["status"], "PENDING");
    assert_eq!(returned["return"]["creditor_iban"], ANNA);
    assert_eq!(returned["return"]["debtor_account"], OUR_IBAN);
    let (kind, payload) = events(&env).pop().unwrap();
    assert_eq!(kind, "exception.returned");
    assert_eq!(payload["details"]["end_to_end_id"], e2e.as_str());
    // A return is not also settled, and a pending one can be reopened (cancelled) and made
    // again; the new one has an end-to-end id of its own.
    let out = env.path("returns.xml");
    let no_name = env.recon(&[
        "returns",
        "export",
        "--db",
        &env.db(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_code(&no_name, 2);
    assert!(!out.exists());
    env.write(
        "recon.toml",
        "[returns]\ndebtor_name = \"Recon Test GmbH\"\n",
    );
    let exported = env.recon(&[
        "returns",
        "export",
        "--db",
        &env.db(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&exported);
    assert!(
        stdout(&exported).starts_with("exported 1 return(s)"),
        "{}",
        stdout(&exported)
    );
    let xml = std::fs::read_to_string(&out).unwrap();
    assert!(
        xml.contains(&format!("<EndToEndId>{e2e}</EndToEndId>")),
        "{xml}"
    );
    assert!(
        xml.contains("<InstdAmt Ccy=\"EUR\">30.50</InstdAmt>"),
        "{xml}"
    );
    assert!(xml.contains(ANNA) && xml.contains(OUR_IBAN) && xml.contains("Recon Test GmbH"));
    let listed = json(&env, &["returns", "list", "--format", "json"]);
    assert_eq!(listed[0]["status"], "EXPORTED");
    assert!(
        listed[0]["message_id"]
            .as_str()
            .unwrap()
            .starts_with("RECON-")
    );
    assert_eq!(events(&env).pop().unwrap().0, "return.exported");
    // Exported: a reopen is refused unless the bank confirmed it did not pay.
    let refused = env.recon(&[
        "exceptions",
        "reopen",
        &id,
        "--note",
        "n",
        "--db",
        &env.db(),
    ]);
    assert_code(&refused, 65);
    assert!(
        stderr(&refused).contains("--cancel-exported"),
        "{}",
        stderr(&refused)
    );
    // Nothing pending: no file.
    let again = env.recon(&[
        "returns",
        "export",
        "--db",
        &env.db(),
        "--out",
        env.path("none.xml").to_str().unwrap(),
    ]);
    assert_ok(&again);
    assert!(!env.path("none.xml").exists());
    // The bank's next statement shows the money going out: the return is DONE.
    night(&env, "n2", &[sent("30.50", &e2e, "D1")]);
    let ignored = env.csv("n2", "ignored.csv");
    assert!(
        ignored[0]["suggestion"].contains(&format!("return {e2e}: it closes that return")),
        "{ignored:?}"
    );
    let done = json(&env, &["returns", "list", "--format", "json"]);
    assert_eq!(done[0]["status"], "DONE");
    assert!(done[0]["closed_by_transaction"].as_i64().is_some());
    let (kind, payload) = events(&env).pop().unwrap();
    assert_eq!(kind, "return.completed");
    assert_eq!(payload["end_to_end_id"], e2e.as_str());
    let shown = json(&env, &["exceptions", "show", &id]);
    assert_eq!(shown["status"], "returned");
    assert_eq!(shown["returns"][0]["status"], "DONE");
    check_ok(&env);
    let closed = env.recon(&[
        "exceptions",
        "reopen",
        &id,
        "--note",
        "n",
        "--cancel-exported",
        "--db",
        &env.db(),
    ]);
    assert_code(&closed, 65);
    assert!(stderr(&closed).contains("is DONE"), "{}", stderr(&closed));
}

#[test]
fn a_pending_return_reopened_is_cancelled() {
    let env = Env::new();
    topup(&env, "1.00");
    night(&env, "n1", &[paid("9.00", "unknown", "A1", Some(ANNA))]);
    let id = open_ids(&env, &[])[0].to_string();
    assert_ok(&env.recon(&[
        "exceptions",
        "return",
        &id,
        "--note",
        "n",
        "--db",
        &env.db(),
    ]));
    let reopened = json(
        &env,
        &[
            "exceptions",
            "reopen",
            &id,
            "--note",
            "the customer found it",
        ],
    );
    assert_eq!(reopened["return"]["status"], "CANCELLED");
    assert_eq!(open_ids(&env, &[]).len(), 1);
    check_ok(&env);
    // Returned again and exported; the bank did not execute it: cancelled on the analyst's word,
    // and a later debit with its end-to-end id no longer closes it.
    let again = json(&env, &["exceptions", "return", &id, "--note", "after all"]);
    let e2e = again["return"]["end_to_end_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(e2e, "RECON-RET-2");
    let out = env.path("r.xml");
    let export = env.recon(&[
        "returns",
        "export",
        "--db",
        &env.db(),
        "--out",
        out.to_str().unwrap(),
        "--debtor-name",
        "Us",
    ]);
    assert_ok(&export);
    let cancelled = json(
        &env,
        &[
            "exceptions",
            "reopen",
            &id,
            "--note",
            "bank rejected the file",
            "--cancel-exported",
        ],
    );
    assert_eq!(cancelled["return"]["status"], "CANCELLED");
    night(&env, "n2", &[sent("9.00", &e2e, "D1")]);
    let listed = json(
        &env,
        &[
            "returns",
            "list",
            "--status",
            "cancelled",
            "--format",
            "json",
        ],
    );
    assert_eq!(listed.as_array().unwrap().len(), 2);
    check_ok(&env);
}

#[test]
fn recon_check_finds_a_broken_worklist() {
    let env = Env::new();
    let (t1, r1) = topup(&env, "100.00");
    night(
        &env,
        "n1",
        &[
            paid("95.00", &format!("topup {r1}"), "A1", Some(ANNA)),
            paid("9.00", "unknown", "A2", Some(ANNA)),
        ],
    );
    let ids = open_ids(&env, &[]);
    let (a, b) = (ids[0].to_string(), ids[1].to_string());
    assert_ok(&env.recon(&[
        "exceptions",
        "settle",
        &a,
        "--topup",
        &t1,
        "--note",
        "n",
        "--db",
        &env.db(),
    ]));
    assert_ok(&env.recon(&["exceptions", "return", &b, "--note", "n", "--db", &env.db()]));
    check_ok(&env);
    // By hand: the returned payment also settles the top-up, and the settled exception
    // forgets its resolution.
    let conn = env.conn();
    conn.execute_batch(&format!(
        "INSERT INTO resolved_transactions (resolution, tx, in_force)
             SELECT id, {b}, 0 FROM resolutions WHERE kind = 'SETTLE';
         UPDATE topups SET settled_by_transaction = {b};
         UPDATE exceptions SET resolution = NULL WHERE tx = {a};"
    ))
    .unwrap();
    let out = env.recon(&["check", "--db", &env.db()]);
    assert_code(&out, 65);
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains(&format!("transaction {b} is returned")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "exception {a} has 1 resolution(s) in force but is open"
        )),
        "{text}"
    );
}

/// `recon serve` on `env`'s database, killed when dropped.
struct Serve {
    child: std::process::Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TOKEN: &str = "worklist-token-0123456789abcdef-0123456789";

impl Serve {
    fn start(env: &Env) -> Serve {
        let (child, base) = crate::env::start_serve(env, TOKEN, &[], std::process::Stdio::null());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Serve { child, base, agent }
    }

    /// (status, JSON body, whether the answer was replayed)
    fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, bool) {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = match body {
            Some(body) => self.agent.run(
                request
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .unwrap(),
            ),
            None => self.agent.run(request.body(()).unwrap()),
        }
        .unwrap();
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("Idempotent-Replayed");
        let text = response.into_body().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            replayed,
        )
    }
}

#[test]
fn the_api_lists_shows_and_resolves_exceptions_with_idempotency_keys() {
    let env = Env::new();
    let (t1, r1) = topup(&env, "100.00");
    night(
        &env,
        "n1",
        &[
            paid("95.00", &format!("topup {r1}"), "A1", Some(ANNA)),
            paid("12.00", "thanks", "A2", Some(BORIS)),
        ],
    );
    let server = Serve::start(&env);
    let unauthorised = server
        .agent
        .get(format!("{}/exceptions", server.base))
        .call()
        .unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);
    let (status, all, _) = server.call("GET", "/exceptions", None, None);
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (a, b) = (
        all["items"][0]["id"].as_i64().unwrap(),
        all["items"][1]["id"].as_i64().unwrap(),
    );
    let (_, noref, _) = server.call("GET", "/exceptions?reason=no_reference", None, None);
    assert_eq!(noref["items"][0]["id"], b);
    let (_, page, _) = server.call("GET", "/exceptions?limit=1", None, None);
    assert_eq!(page["next_cursor"], a);
    let (_, next, _) = server.call(
        "GET",
        &format!("/exceptions?limit=1&cursor={a}"),
        None,
        None,
    );
    assert_eq!(next["items"][0]["id"], b);
    assert_eq!(next["next_cursor"], Value::Null);
    let (status, shown, _) = server.call("GET", &format!("/exceptions/{a}"), None, None);
    assert_eq!(status, 200);
    assert_eq!(shown["candidates"][0]["topup"]["id"], t1.as_str());
    assert_eq!(server.call("GET", "/exceptions/999", None, None).0, 404);
    assert_eq!(server.call("GET", "/exceptions/abc", None, None).0, 400);
    let settle = serde_json::json!({"kind": "settle", "topup_id": t1, "note": "by phone", "by": "backoffice"});
    let path = format!("/exceptions/{a}/resolution");
    let (status, first, replayed) = server.call("POST", &path, Some("k1"), Some(settle.clone()));
    assert_eq!((status, replayed), (200, false), "{first}");
    assert_eq!(first["resolution"]["by"], "backoffice");
    assert_eq!(first["topup"]["status"], "SETTLED");
    let (status, again, replayed) = server.call("POST", &path, Some("k1"), Some(settle));
    assert_eq!((status, replayed), (200, true));
    assert_eq!(again, first);
    assert_eq!(env.sql_count("SELECT count(*) FROM resolutions"), 1);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM events WHERE type = 'topup.settled'"),
        1
    );
    let dismiss = serde_json::json!({"kind": "dismiss", "note": "x"});
    let (status, _, _) = server.call("POST", &path, Some("k1"), Some(dismiss.clone()));
    assert_eq!(status, 422, "a key used for another request");
    let (status, conflict, _) = server.call("POST", &path, None, Some(dismiss));
    assert_eq!(status, 409);
    assert!(
        conflict["detail"]
            .as_str()
            .unwrap()
            .contains("already settled"),
        "{conflict}"
    );
    let (status, _, _) = server.call(
        "POST",
        &path,
        None,
        Some(serde_json::json!({"kind": "pay", "note": "x"})),
    );
    assert_eq!(status, 400);
    let (status, dismissed, _) = server.call(
        "POST",
        &format!("/exceptions/{b}/resolution"),
        None,
        Some(serde_json::json!({"kind": "dismiss", "note": "a gift"})),
    );
    assert_eq!(status, 200, "{dismissed}");
    assert_eq!(dismissed["resolution"]["by"], "api");
    let (_, open, _) = server.call("GET", "/exceptions", None, None);
    assert_eq!(open["items"], serde_json::json!([]));
    drop(server);
    check_ok(&env);
}

#[test]
fn a_week_of_nights_and_resolutions_leaves_store_reports_and_events_consistent() {
    let env = Env::new();
    env.write(
        "recon.toml",
        "[returns]\ndebtor_name = \"Recon Test GmbH\"\n",
    );
    let (t1, r1) = topup(&env, "100.00");
    let (t2, r2) = topup(&env, "50.00");
    let (_, r3) = topup(&env, "20.00");
    let db = env.db();
    let resolve = |args: &[&str]| {
        let mut all = vec!["exceptions"];
        all.extend_from_slice(args);
        all.extend(["--db", &db, "--by", "erika"]);
        assert_ok(&env.recon(&all));
    };
    // Monday: an underpayment, a top-up paid in two transfers, an exact one, one without reference.
    night(
        &env,
        "mon",
        &[
            paid("95.00", &format!("topup {r1}"), "M1", Some(ANNA)),
            paid("30.00", &format!("topup {r2}"), "M2", Some(BORIS)),
            paid("20.00", &format!("topup {r2} rest"), "M3", Some(BORIS)),
            paid("20.00", &format!("topup {r3}"), "M4", Some(ANNA)),
            paid("15.00", "for nothing", "M5", Some(ANNA)),
        ],
    );
    let mon = open_ids(&env, &[]);
    assert_eq!(mon.len(), 4);
    assert_eq!(
        crate::env::outcome_count(&env.summary("mon"), "AMOUNT_MISMATCH"),
        3
    );
    resolve(&[
        "settle",
        &mon[0].to_string(),
        "--topup",
        &t1,
        "--note",
        "accepted short",
    ]);
    resolve(&["return", &mon[3].to_string(), "--note", "unknown payer"]);
    // Tuesday: a payment nobody can be found for, without an IBAN: dismissed.
    night(&env, "tue", &[paid("7.00", "?", "T1", None)]);
    // Tuesday's report carries the worklist: its new exception, Monday's two still open (by
    // age), and Monday's two resolutions with who made them; the page leads with it.
    let worklist = &env.summary("tue")["worklist"];
    assert_eq!(worklist["new"]["count"], 1);
    assert_eq!(worklist["new"]["money_in"]["EUR"]["sum"], "7.00");
    assert_eq!(worklist["carried_over"][0]["count"], 2, "{worklist}");
    assert_eq!(worklist["carried_over"][0]["to_days"], 1);
    let carried: Vec<i64> = worklist["oldest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(carried, vec![mon[1], mon[2]]);
    assert_eq!(worklist["since_run"], env.summary("mon")["run_id"]);
    let resolved = worklist["resolved"].as_array().unwrap();
    assert_eq!(resolved.len(), 2);
    assert_eq!(resolved[0]["kind"], "SETTLE");
    assert_eq!(resolved[0]["by"], "erika");
    assert_eq!(resolved[0]["note"], "accepted short");
    assert_eq!(resolved[1]["kind"], "RETURN");
    let page = std::fs::read_to_string(env.path("tue/report.html")).unwrap();
    let (action, totals) = (
        page.find("Needs action today").unwrap(),
        page.find("<h2>Totals</h2>").unwrap(),
    );
    assert!(action < totals, "the page leads with the worklist");
    assert!(page.contains("accepted short") && page.contains("erika"));
    // The workbook too: the open exceptions' money by age, and the resolutions.
    use calamine::{Reader, Xlsx, open_workbook};
    let mut book: Xlsx<_> = open_workbook(env.path("tue/report.xlsx")).unwrap();
    let mut text = |sheet: &str| -> Vec<String> {
        let range = book.worksheet_range(sheet).unwrap();
        range
            .rows()
            .map(|r| {
                r.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    };
    let ages = text("Worklist");
    assert!(
        ages.contains(&"new tonight|in|EUR|1|7".to_string()),
        "{ages:?}"
    );
    assert!(
        ages.iter()
            .any(|r| r.starts_with("carried over, 0–1 days|in|EUR|2|")),
        "{ages:?}"
    );
    let resolved = text("Resolved");
    assert!(
        resolved
            .iter()
            .any(|r| r.contains("|SETTLE|erika|") && r.contains("accepted short")),
        "{resolved:?}"
    );
    let tue = open_ids(&env, &["--max-amount", "7"]);
    resolve(&[
        "dismiss",
        &tue[0].to_string(),
        "--note",
        "booked as a fee by accounting",
    ]);
    let out = env.path("returns-wed.xml");
    assert_ok(&env.recon(&[
        "returns",
        "export",
        "--db",
        &db,
        "--out",
        out.to_str().unwrap(),
    ]));
    // Wednesday: the bank executed the return; Boris's two transfers settle his top-up.
    night(&env, "wed", &[sent("15.00", "RECON-RET-1", "W1")]);
    let boris: Vec<String> = open_ids(&env, &[]).iter().map(|i| i.to_string()).collect();
    assert_eq!(boris.len(), 2);
    resolve(&[
        "settle",
        &boris[0],
        &boris[1],
        "--topup",
        &t2,
        "--note",
        "two transfers",
    ]);
    // Thursday: Anna pays the rest of the first top-up, already settled by hand.
    night(
        &env,
        "thu",
        &[paid("5.00", &format!("topup {r1}"), "H1", Some(ANNA))],
    );
    let thu = json(&env, &["exceptions", "list", "--format", "json"]);
    assert_eq!(thu.as_array().unwrap().len(), 1);
    assert_eq!(thu[0]["reason"], "ALREADY_SETTLED");
    // The store: every exception opened by its night's run, resolved ones have one resolution.
    for (night, opened) in [("mon", 4), ("tue", 1), ("wed", 0), ("thu", 1)] {
        let run = env.summary(night)["run_id"].as_str().unwrap().to_string();
        let n = env.sql_count(&format!(
            "SELECT count(*) FROM exceptions WHERE run_id = '{run}'"
        ));
        assert_eq!(n, opened, "{night}");
    }
    let returns = json(&env, &["returns", "list", "--format", "json"]);
    assert_eq!(returns[0]["status"], "DONE");
    // The events: one settlement event per settled top-up, the balance their sum.
    let events = events(&env);
    let settled = events.iter().filter(|(k, _)| k == "topup.settled").count();
    assert_eq!(settled, 3);
    let changes: rust_decimal::Decimal = events
        .iter()
        .filter(|(k, _)| k == "cash_balance.updated")
        .map(|(_, p)| {
            p["change"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(changes.to_string(), "170.00");
    let last_balance = events
        .iter()
        .rev()
        .find(|(k, _)| k == "cash_balance.updated")
        .unwrap();
    assert_eq!(last_balance.1["cash_balance"], "170.00");
    for kind in [
        "exception.returned",
        "exception.dismissed",
        "return.exported",
        "return.completed",
    ] {
        assert_eq!(
            events.iter().filter(|(k, _)| k == kind).count(),
            1,
            "{kind}"
        );
    }
    let history = json(
        &env,
        &[
            "exceptions",
            "list",
            "--status",
            "resolved",
            "--format",
            "json",
        ],
    );
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["settled", "settled", "settled", "returned", "dismissed"]
    );
    check_ok(&env);
}

#[test]
fn a_resolution_waits_for_the_write_lock_and_a_dry_run_opens_no_exception() {
    let env = Env::new();
    topup(&env, "1.00");
    let file = env.write(
        "dry.xml",
        statement("dry", &[paid("4.00", "?", "X1", Some(ANNA))]),
    );
    assert_ok(&env.run("dry", &["--dry-run", file.to_str().unwrap()]));
    assert_eq!(env.sql_count("SELECT count(*) FROM exceptions"), 0);
    night(&env, "n1", &[paid("4.00", "?", "X1", Some(ANNA))]);
    let id = open_ids(&env, &[])[0].to_string();
    let holder = env.conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = env.recon(&[
        "exceptions",
        "dismiss",
        &id,
        "--note",
        "n",
        "--db",
        &env.db(),
    ]);
    assert_code(&out, 75);
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(open_ids(&env, &[]).len(), 1, "nothing was resolved");
    assert_ok(&env.recon(&[
        "exceptions",
        "dismiss",
        &id,
        "--note",
        "n",
        "--db",
        &env.db(),
    ]));
}
