//! The API's read-only connections: a small pool opened once, each read on the blocking pool
//! with one of them. In WAL mode a reader sees what was last committed and never waits for the
//! writer, nor for a nightly run.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::{Store, StoreError};

/// Read-only connections in the pool: two per core of the machine this was measured on.
pub const READERS: usize = 4;
/// How long a reader waits for SQLite's rare reader locks (a WAL recovery).
const READER_WAIT: Duration = Duration::from_secs(5);

pub struct Readers {
    idle: Arc<Mutex<Vec<Store>>>,
    turns: Arc<Semaphore>,
}

/// A read that did not run to its end: its thread panicked.
#[derive(Debug, thiserror::Error)]
#[error("a read failed: {0}")]
pub struct ReadFailed(tokio::task::JoinError);

impl Readers {
    pub fn open(path: &Path, count: usize) -> Result<Readers, StoreError> {
        let idle = (0..count)
            .map(|_| Store::open_read_only(path, READER_WAIT))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Readers {
            idle: Arc::new(Mutex::new(idle)),
            turns: Arc::new(Semaphore::new(count)),
        })
    }

    /// Waits for a free connection and runs `work` with it on the blocking pool.
    pub async fn read<T, F>(&self, work: F) -> Result<Result<T, StoreError>, ReadFailed>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let lent = Lent {
            store: lock(&self.idle).pop(),
            idle: self.idle.clone(),
            _turn: turn,
        };
        tokio::task::spawn_blocking(move || {
            let store = lent.store.as_ref().expect("a turn comes with a connection");
            work(store)
        })
        .await
        .map_err(ReadFailed)
    }
}

/// A connection lent to one read with its turn: both go back when the read ends, even by a
/// panic.
struct Lent {
    store: Option<Store>,
    idle: Arc<Mutex<Vec<Store>>>,
    _turn: OwnedSemaphorePermit,
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            lock(&self.idle).push(store);
        }
    }
}

fn lock(idle: &Mutex<Vec<Store>>) -> std::sync::MutexGuard<'_, Vec<Store>> {
    // A read that panicked cannot leave the list half changed: push and pop are whole.
    idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
