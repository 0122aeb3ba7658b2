//! SIGINT and SIGTERM during a run: the run notices at its next batch or before its commit and
//! abandons cleanly (nothing committed, no temporary file left); after the commit it finishes
//! publishing its report first. The command line installs the handler; the library only asks.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the running job to stop (called from the signal handler).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Installs the handler for SIGINT and SIGTERM (once per process; later calls do nothing).
pub fn install() {
    // An error means a handler is already installed: the first one serves.
    let _ = ctrlc::set_handler(request);
}
