//! Helpers shared by the integration tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `../shared/samples/<kind>` beside this checkout, or `None` with a visible SKIPPED message.
pub fn shared_samples(kind: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/samples")
        .join(kind);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} does not exist; the shared samples are not beside this checkout",
            dir.display()
        );
        None
    }
}

/// The fields of a top-up as the API shows it, in the SPEC's order.
pub const TOPUP_FIELDS: [&str; 7] = [
    "id",
    "created_at",
    "account_group_id",
    "cash_amount",
    "currency",
    "status",
    "settlement_reference",
];

/// Asserts that a JSON value is an object with exactly the top-up's fields, in order.
pub fn assert_topup_fields(value: &serde_json::Value) {
    let keys: Vec<&str> = value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, TOPUP_FIELDS, "{value}");
}

/// Asserts a command exited 0, showing its output when it did not.
pub fn assert_ok(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
