//! The API's one writer: a thread that owns the write connection, takes the queued creates and
//! cancels, and commits them in groups: one transaction and one sync for every request waiting,
//! each request in a savepoint of its own (a refused one leaves the others alone), and each
//! answered only after its group's commit. While another process (a nightly run) holds the
//! database, the requests wait, each up to the server's `--wait`, then are refused unwritten.

use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::ids::TopUpId;
use crate::ops::exceptions;
use crate::ops::topups::{self, CreateError, Created};
use crate::store::{Doing, Store, StoreError};
use crate::topup::{TopUp, ValidTopUp};

/// Writes waiting for the writer at most; one more is refused at once with 503.
pub const MAX_QUEUED: usize = 1024;
/// Requests committed in one transaction at most.
pub const MAX_GROUP: usize = 128;
/// How long one attempt to take the write lock waits (SQLite's busy handler) before the writer
/// looks at its queue again: refuses the requests that waited long enough, takes new ones.
pub const LOCK_POLL: Duration = Duration::from_millis(50);

/// A change a request asks for.
pub enum Write {
    Create {
        request: ValidTopUp,
        key: Option<String>,
    },
    Cancel(TopUpId),
    /// A resolution of the worklist for exception `id`.
    Resolve {
        id: i64,
        request: exceptions::Resolve,
        key: Option<String>,
    },
}

/// What a committed (or refused by the lifecycle) write answered.
pub enum Written {
    Created(Result<Created, CreateError>),
    Cancelled(Result<TopUp, StoreError>),
    Resolved(Result<exceptions::Answer, StoreError>),
}

impl Written {
    fn succeeded(&self) -> bool {
        matches!(
            self,
            Written::Created(Ok(_))
                | Written::Cancelled(Ok(_))
                | Written::Resolved(Ok(
                    exceptions::Answer::New(_) | exceptions::Answer::Replayed { .. }
                ))
        )
    }

    fn failed(write: &Write, error: StoreError) -> Written {
        match write {
            Write::Create { .. } => Written::Created(Err(CreateError::Failed(Error::Store(error)))),
            Write::Cancel(_) => Written::Cancelled(Err(error)),
            Write::Resolve { .. } => Written::Resolved(Err(error)),
        }
    }
}

/// Why a write was not attempted; nothing of it was written.
#[derive(Debug)]
pub enum Refused {
    /// Another process held the database's write lock for the whole wait.
    Locked,
    /// [`MAX_QUEUED`] writes are already waiting.
    QueueFull,
    /// The server is stopping (or its writer stopped).
    Stopping,
}

struct Job {
    write: Write,
    deadline: Instant,
    reply: oneshot::Sender<Result<Written, Refused>>,
}

/// The handle requests queue their writes through.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    wait: Duration,
}

impl Writer {
    /// Starts the writer thread on `store` (opened with [`LOCK_POLL`] as its busy timeout);
    /// it stops when every handle is dropped, after answering what was queued.
    pub fn start(store: Store, wait: Duration) -> Result<(Writer, thread::JoinHandle<()>), Error> {
        let (queue, jobs) = mpsc::channel(MAX_QUEUED);
        let thread = thread::Builder::new()
            .name("recon-writer".to_string())
            .spawn(move || run(store, jobs))
            .map_err(|source| Error::Io {
                doing: "starting the API's writer thread".to_string(),
                source,
            })?;
        Ok((Writer { queue, wait }, thread))
    }

    /// Queues `write` and waits for its group's commit.
    pub async fn write(&self, write: Write) -> Result<Written, Refused> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            write,
            deadline: Instant::now() + self.wait,
            reply,
        };
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Refused::Stopping,
        })?;
        answer.await.unwrap_or(Err(Refused::Stopping))
    }
}

fn run(mut store: Store, mut jobs: mpsc::Receiver<Job>) {
    let mut group: Vec<Job> = Vec::new();
    loop {
        if group.is_empty() {
            match jobs.blocking_recv() {
                Some(job) => group.push(job),
                None => return,
            }
        }
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // A request whose client is gone (the request timed out, the connection closed) is not
        // written: nobody would learn that it was.
        group.retain(|job| !job.reply.is_closed());
        if group.is_empty() {
            continue;
        }
        match commit_group(&mut store, &group) {
            Ok(written) => answer(group.drain(..), written),
            Err(StoreError::Locked(_)) => {
                let now = Instant::now();
                let (late, waiting): (Vec<Job>, Vec<Job>) =
                    group.drain(..).partition(|job| job.deadline <= now);
                group = waiting;
                for job in late {
                    let _ = job.reply.send(Err(Refused::Locked));
                }
            }
            Err(error) if group.len() == 1 => {
                let job = group.remove(0);
                let written = Written::failed(&job.write, error);
                let _ = job.reply.send(Ok(written));
            }
            Err(error) => {
                // The group's commit failed (a sync, a constraint checked at commit): write each
                // request alone, so that one cannot fail the others.
                tracing::warn!(
                    "committing {} API writes together failed ({error}); writing each alone",
                    group.len()
                );
                for job in std::mem::take(&mut group) {
                    let written = match commit_group(&mut store, std::slice::from_ref(&job)) {
                        Ok(mut written) => written.pop().map(Ok),
                        Err(StoreError::Locked(_)) => Some(Err(Refused::Locked)),
                        Err(error) => Some(Ok(Written::failed(&job.write, error))),
                    };
                    if let Some(written) = written {
                        let _ = job.reply.send(written);
                    }
                }
            }
        }
    }
}

fn answer(jobs: impl Iterator<Item = Job>, written: Vec<Written>) {
    for (job, written) in jobs.zip(written) {
        let _ = job.reply.send(Ok(written));
    }
}

/// One transaction for the whole group, a savepoint for each request: a request the lifecycle
/// or a constraint refuses is rolled back to its savepoint and answered with its error, and the
/// others commit.
fn commit_group(store: &mut Store, group: &[Job]) -> Result<Vec<Written>, StoreError> {
    let mut tx = store.write()?;
    let mut written = Vec::with_capacity(group.len());
    for job in group {
        let savepoint = tx.savepoint().doing("starting a request's savepoint")?;
        let result =
            match &job.write {
                Write::Create { request, key } => {
                    Written::Created(topups::create_in(&savepoint, request, key.as_deref()))
                }
                Write::Cancel(id) => Written::Cancelled(topups::cancel_in(&savepoint, *id)),
                Write::Resolve { id, request, key } => Written::Resolved(
                    exceptions::resolve_keyed_in(&savepoint, *id, request, key.as_deref()),
                ),
            };
        if result.succeeded() {
            savepoint
                .commit()
                .doing("releasing a request's savepoint")?;
        }
        // Dropped without commit, a savepoint rolls back to where the request began.
        written.push(result);
    }
    crate::store::commit(tx, "committing a group of API writes")?;
    Ok(written)
}
