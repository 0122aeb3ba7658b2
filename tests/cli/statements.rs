//! The bank's files as evidence: each statement file a run reads is kept once in the database,
//! compressed, and `recon statements export` gives its original bytes back.

use std::fs;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::env::*;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `recon statements list --format json`.
fn stored(env: &Env) -> Vec<Value> {
    let out = env.recon(&["statements", "list", "--db", &env.db(), "--format", "json"]);
    assert_ok(&out);
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn export(env: &Env, sha: &str) -> Vec<u8> {
    let out = env.recon(&["statements", "export", "--db", &env.db(), sha]);
    assert_ok(&out);
    out.stdout
}

#[test]
fn a_statement_read_is_exported_byte_for_byte() {
    let env = Env::new().with_demo_topups();
    let path = demo("2026-11-20.camt053.xml");
    assert_ok(&env.run("r", &[&path]));
    let original = fs::read(&path).unwrap();
    let sha = sha256_hex(&original);
    let files = stored(&env);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["sha256"], sha.as_str());
    assert_eq!(files[0]["format"], "camt.053.001.02");
    assert_eq!(files[0]["size"], original.len());
    assert_eq!(files[0]["statement_ids"][0], "STMT-2026-11-20-1");
    assert_eq!(files[0]["run_id"], env.summary("r")["run_id"]);
    assert!(files[0]["stored_size"].as_u64().unwrap() < original.len() as u64);
    // The whole SHA-256, or its first 8 digits in any case, to standard output or a file.
    assert_eq!(export(&env, &sha), original);
    assert_eq!(export(&env, &sha[..8].to_uppercase()), original);
    let target = env.path("copy.xml").display().to_string();
    let out = env.recon(&[
        "statements",
        "export",
        "--db",
        &env.db(),
        &sha,
        "--out",
        &target,
    ]);
    assert_ok(&out);
    assert_eq!(fs::read(&target).unwrap(), original);
    let again = env.recon(&[
        "statements",
        "export",
        "--db",
        &env.db(),
        &sha,
        "--out",
        &target,
    ]);
    assert_code(&again, 2);
    // The table and the CSV name it too.
    let table = env.recon(&["statements", "list", "--db", &env.db()]);
    assert_ok(&table);
    assert!(stdout(&table).contains(&sha[..16]), "{}", stdout(&table));
    assert!(
        stdout(&table).contains("\n1 file(s), "),
        "{}",
        stdout(&table)
    );
    let csv = env.recon(&["statements", "list", "--db", &env.db(), "--format", "csv"]);
    assert!(stdout(&csv).starts_with("sha256,format,size,stored_size,statement_ids,"));
    assert!(stdout(&csv).contains(&sha));
}

#[test]
fn the_same_file_read_again_stores_nothing_new() {
    let env = Env::new().with_demo_topups();
    let path = demo("2026-11-20.camt053.xml");
    let copy = env.write("copy/same.xml", fs::read(&path).unwrap());
    // Twice in one run (the copy has another name, the same bytes), then in another run.
    let out = env.run("r1", &[&path, copy.to_str().unwrap()]);
    assert_ok(&out);
    assert_eq!(stored(&env).len(), 1);
    let size =
        |env: &Env| env.sql_count("SELECT sum(length(compressed)) + count(*) FROM stored_files");
    let before = size(&env);
    env.run("r2", &[&path]);
    assert_eq!(stored(&env).len(), 1);
    assert_eq!(size(&env), before);
    assert_eq!(env.sql_count("SELECT count(*) FROM statement_files"), 3);
    // Every file row of every run names its stored bytes.
    assert_eq!(
        env.sql_count(
            "SELECT count(*) FROM statement_files f
             JOIN stored_files s ON s.sha256 = unhex(f.sha256)"
        ),
        3
    );
}

#[test]
fn a_dry_run_stores_nothing() {
    let env = Env::new().with_demo_topups();
    let out = env.run("r", &["--dry-run", &demo("2026-11-20.camt053.xml")]);
    assert_ok(&out);
    assert_eq!(env.sql_count("SELECT count(*) FROM stored_files"), 0);
}

#[test]
fn a_rejected_file_is_stored_as_the_bank_sent_it() {
    let env = Env::new().with_demo_topups();
    let broken = fs::read_to_string(demo("2026-11-20.camt053.xml")).unwrap();
    let broken = broken
        .replace("</Document>", "")
        .replace("</BkToCstmrStmt>", "<Ntry>");
    let path = env.write("broken.xml", &broken);
    let out = env.run("r", &[path.to_str().unwrap()]);
    assert_code(&out, 65);
    let files = stored(&env);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["format"], Value::Null);
    assert_eq!(files[0]["sha256"], sha256_hex(broken.as_bytes()).as_str());
    assert_eq!(
        export(&env, files[0]["sha256"].as_str().unwrap()),
        broken.as_bytes()
    );
}

#[test]
fn an_interrupted_run_stores_nothing() {
    let env = Env::new();
    let night = env.bench_night("night", "60000", "50000", &[]);
    env.import_night(&night);
    // A small file first, stored by the time the signal comes during the large one.
    let small = demo("2026-11-20.camt053.xml");
    let statement = format!("{night}/statement.xml");
    let after = std::time::Duration::from_millis(400);
    let Some(out) = env.run_terminated("r", &[&small, &statement], after) else {
        return;
    };
    assert_code(&out, 130);
    assert_eq!(env.sql_count("SELECT count(*) FROM runs"), 0);
    assert_eq!(env.sql_count("SELECT count(*) FROM stored_files"), 0);
}

#[test]
fn an_unknown_or_malformed_sha_is_refused_clearly() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r", &[&demo("2026-11-20.camt053.xml")]));
    let unknown = "0".repeat(64);
    let out = env.recon(&["statements", "export", "--db", &env.db(), &unknown]);
    assert_code(&out, 65);
    assert!(
        stderr(&out).contains("no stored statement file"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    for bad in ["01c6c7", "not-a-sha-at-all"] {
        let out = env.recon(&["statements", "export", "--db", &env.db(), bad]);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains("is not a SHA-256"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn check_finds_a_damaged_stored_file() {
    let env = Env::new().with_demo_topups();
    assert_ok(&env.run("r", &[&demo("2026-11-20.camt053.xml")]));
    assert_ok(&env.recon(&["check", "--db", &env.db(), "--deep"]));
    // One byte in the middle of the compressed bytes changed behind recon's back.
    let conn = env.conn();
    let mut bytes: Vec<u8> = conn
        .query_row("SELECT compressed FROM stored_files", [], |r| r.get(0))
        .unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    conn.execute("UPDATE stored_files SET compressed = ?1", [&bytes])
        .unwrap();
    let out = env.recon(&["check", "--db", &env.db(), "--deep"]);
    assert_code(&out, 65);
    assert!(
        stdout(&out).contains("BROKEN   each stored statement file decompresses"),
        "{}",
        stdout(&out)
    );
    // Without --deep only the start of each file is looked at: this damage passes.
    assert_ok(&env.recon(&["check", "--db", &env.db()]));
    let sha = stored(&env)[0]["sha256"].as_str().unwrap().to_string();
    let out = env.recon(&["statements", "export", "--db", &env.db(), &sha]);
    assert_code(&out, 70);
    assert!(stderr(&out).contains("recon check"), "{}", stderr(&out));
    // A file that is not zstd data at all fails the quick check too.
    env.conn()
        .execute("UPDATE stored_files SET compressed = x'00112233'", [])
        .unwrap();
    let out = env.recon(&["check", "--db", &env.db()]);
    assert_code(&out, 65);
    assert!(
        stdout(&out).contains("does not start as zstd data"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_backup_holds_the_stored_files() {
    let env = Env::new().with_demo_topups();
    let path = demo("2026-11-20.camt053.xml");
    assert_ok(&env.run("r", &[&path]));
    let copy = env.path("backup.sqlite").display().to_string();
    assert_ok(&env.recon(&["backup", "--db", &env.db(), "--out", &copy]));
    let sha = sha256_hex(&fs::read(&path).unwrap());
    let out = env.recon(&["statements", "export", "--db", &copy, &sha]);
    assert_ok(&out);
    assert_eq!(out.stdout, fs::read(&path).unwrap());
    assert_ok(&env.recon(&["check", "--db", &copy, "--deep"]));
}

#[test]
fn inbox_mode_stores_the_files_it_archives_and_quarantines() {
    let env = Env::new().with_demo_topups();
    let name = "2026-11-20.camt053.xml";
    env.write(&format!("inbox/{name}"), fs::read(demo(name)).unwrap());
    env.write("inbox/junk.txt", "not a statement");
    let out = env.inbox_run(&["-q", "--stable-secs", "0"]);
    assert_code(&out, 65);
    // Stored before the commit, while the files were still in the inbox; moved after it.
    let archived = fs::read(env.path(&format!("archive/{name}"))).unwrap();
    let quarantined = fs::read(env.path("quarantine/junk.txt")).unwrap();
    let files = stored(&env);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(export(&env, &sha256_hex(&archived)), archived);
    assert_eq!(export(&env, &sha256_hex(&quarantined)), quarantined);
}
