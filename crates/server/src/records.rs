//! Call records, written by one thread of their own, outside the hub's lock.
//!
//! The hub decides what a call's record says (when it starts ringing, as it changes,
//! when it ends) and the switchboard hands each [`RecordUpdate`] to [`Records::push`],
//! under the hub's lock, so updates arrive here in the order the hub made them. This
//! thread writes them one by one. When the database is busy (another process holds its
//! write lock) or full, it waits and tries again with backoff, for as long as it takes:
//! a record is never dropped for being late, and nobody else waits for it.
//!
//! `getCallHistory` is answered through the same queue, after every update queued
//! before it, so a call that just ended is in the history asked for next.
//!
//! Backpressure: [`Records::push`] never blocks (its caller holds the hub's lock) and
//! never refuses. The queue is bounded instead where new work enters: once
//! [`RECORD_BACKLOG_LIMIT`] updates wait, new invitations are refused ("try again") until
//! the backlog shrinks, so the queue holds at most that many plus what the calls already
//! in progress can still produce (a few updates each).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use tincan_protocol::{CallRecord, UserId};

use crate::hub::RecordUpdate;
use crate::store::{CallRowId, Store, StoreError};

/// Updates waiting to be written above which new invitations are refused.
pub const RECORD_BACKLOG_LIMIT: usize = 10_000;

/// First wait before writing again after the database said "busy"; it doubles up to
/// [`RETRY_MAX`]. (Each attempt itself already waited the store's busy timeout.)
const RETRY_FIRST: Duration = Duration::from_millis(20);
/// Longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(2);

enum Job {
    Write(RecordUpdate),
    History {
        user: UserId,
        limit: u32,
        before: Option<i64>,
        reply: oneshot::Sender<Result<Vec<CallRecord>, StoreError>>,
    },
    /// Answer once everything queued before is written.
    Flush(std::sync::mpsc::SyncSender<()>),
    /// Write what is queued, then end.
    Stop,
}

/// The handle: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Records {
    tx: mpsc::UnboundedSender<Job>,
    backlog: Arc<AtomicUsize>,
}

/// Resolves when the writer thread has written everything and ended.
pub struct Finished(oneshot::Receiver<()>);

/// A started writer: its handle, and what resolves when it has ended.
pub struct RecordWriter {
    /// The handle.
    pub records: Records,
    /// Resolves when the writer has ended.
    pub finished: Finished,
}

impl RecordWriter {
    /// Starts the writer thread on `store`.
    pub fn start(store: Arc<dyn Store>) -> RecordWriter {
        let (records, finished) = Records::start(store);
        RecordWriter { records, finished }
    }
}

impl Finished {
    /// Waits at most `limit` for the writer to finish; `false` if it had not.
    pub async fn wait(self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.0).await.is_ok()
    }
}

impl Records {
    /// Starts the writer thread on `store`.
    pub fn start(store: Arc<dyn Store>) -> (Records, Finished) {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = oneshot::channel();
        let b = backlog.clone();
        std::thread::Builder::new()
            .name("tincan-records".into())
            .spawn(move || {
                Writer {
                    store,
                    rows: HashMap::new(),
                    backlog: b,
                }
                .run(rx);
                let _ = done_tx.send(());
            })
            .expect("the record writer thread starts");
        (Records { tx, backlog }, Finished(done_rx))
    }

    /// Queues one update. Never blocks, never refuses (see the module docs).
    pub fn push(&self, update: RecordUpdate) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(Job::Write(u))) = self.tx.send(Job::Write(update)) {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            error!(room = %u.record.room_id, "call record arrived after the writer stopped; not saved");
        }
    }

    /// Whether so many updates wait that new calls should be refused for now.
    pub fn is_backlogged(&self) -> bool {
        self.backlog.load(Ordering::Relaxed) >= RECORD_BACKLOG_LIMIT
    }

    /// Updates queued and not yet written.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// `user`'s finished calls, newest first, read after every update queued before.
    pub async fn history(
        &self,
        user: UserId,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<CallRecord>, HistoryError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::History {
                user,
                limit,
                before,
                reply,
            })
            .map_err(|_| HistoryError::Stopped)?;
        rx.await
            .map_err(|_| HistoryError::Stopped)?
            .map_err(HistoryError::Store)
    }

    /// Blocks the calling thread until every update queued before this call is written
    /// (for tests and tools that read the store directly; the server never waits so).
    pub fn flush_blocking(&self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.tx.send(Job::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Asks the writer to finish what is queued and end.
    pub fn stop(&self) {
        let _ = self.tx.send(Job::Stop);
    }
}

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The server is stopping. Retryable (after reconnecting).
    #[error("the server is stopping")]
    Stopped,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

struct Writer {
    store: Arc<dyn Store>,
    /// The store's row of each call in progress, by the hub's number for it.
    rows: HashMap<u64, CallRowId>,
    backlog: Arc<AtomicUsize>,
}

/// Errors worth waiting out: someone holds the lock, the disk is full, an IO error.
fn is_transient(e: &StoreError) -> bool {
    e.is_busy()
        || matches!(e, StoreError::Db(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure))
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = rx.blocking_recv() {
            match job {
                Job::Write(u) => {
                    self.write(u);
                    self.backlog.fetch_sub(1, Ordering::Relaxed);
                }
                Job::History {
                    user,
                    limit,
                    before,
                    reply,
                } => {
                    let _ = reply.send(self.store.call_history(&user, limit, before));
                }
                Job::Flush(done) => {
                    let _ = done.send(());
                }
                Job::Stop => {
                    // Whatever is queued still arrives; nothing new can be queued.
                    rx.close();
                }
            }
        }
        debug!("record writer ends");
    }

    fn write(&mut self, u: RecordUpdate) {
        let mut delay = RETRY_FIRST;
        let mut waited = false;
        loop {
            let row = self.rows.get(&u.call).copied();
            match self.store.put_call(row, &u.record, u.open) {
                Ok(id) => {
                    if u.open {
                        self.rows.insert(u.call, id);
                    } else {
                        self.rows.remove(&u.call);
                    }
                    if waited {
                        info!(room = %u.record.room_id, "call record saved after waiting for the database");
                    }
                    return;
                }
                Err(e) if is_transient(&e) => {
                    if !waited {
                        warn!(room = %u.record.room_id, error = %e, backlog = self.backlog.load(Ordering::Relaxed),
                            "cannot save the call record yet; retrying until the database lets us");
                    }
                    waited = true;
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(RETRY_MAX);
                }
                Err(e) => {
                    error!(room = %u.record.room_id, error = %e, "could not save the call record");
                    return;
                }
            }
        }
    }
}
