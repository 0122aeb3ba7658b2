//! Helpers shared by the integration tests.

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
