//! Call records, written by one thread of their own, outside the hub's lock.
//!
//! The hub decides what a call's record says (when it starts ringing, as it changes,
//! when it ends) and the switchboard hands each [`RecordUpdate`] to [`Records::push`],
//! under the hub's lock, so updates arrive here in the order the hub made them. This
//! thread writes them in that order, those queued together in one transaction (at most
//! [`WRITE_BATCH`]; of several updates of one call in a batch only the last is written,
//! as the others would be overwritten in the same transaction). When the database is busy (another process holds its
//! write lock) or full, it waits and tries again with backoff, for as long as it takes:
//! a record is never dropped for being late, and nobody else waits for it.
//!
//! `getCallHistory` is answered through the same queue, after every update queued
//! before it, so a call that just ended is in the history asked for next.
//!
//! Fencing: each write carries the [`Term`] of the hub that decided it (set by
//! [`Records::fence`] when a hub takes over, before its first update). Once another hub
//! has claimed a later term, the store refuses the write and it is dropped: it is stale,
//! and the hub that replaced this one wrote (or will write) that call's record from what
//! it restored.
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

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use tincan_protocol::{CallRecord, UserId};

use crate::hub::RecordUpdate;
use crate::store::{CallRowId, CallWrite, Store, StoreError, Term};

/// Updates waiting to be written above which new invitations are refused.
pub const RECORD_BACKLOG_LIMIT: usize = 10_000;

/// First wait before writing again after the database said "busy"; it doubles up to
/// [`RETRY_MAX`]. (Each attempt itself already waited the store's busy timeout.)
const RETRY_FIRST: Duration = Duration::from_millis(20);
/// Longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Most updates written in one transaction. Under load the queue holds many (thousands
/// of call set-ups a second, a few updates each); one transaction for the lot costs
/// little more than one for a single record.
const WRITE_BATCH: usize = 256;

/// How long the writer, woken by an update, lets more gather before it writes: records
/// reach the database this much later, and a busy server writes at most one
/// transaction per this period instead of one per update.
const GATHER: Duration = Duration::from_millis(2);

enum Job {
    Write(RecordUpdate),
    /// Updates queued from now on are the hub's of term `Term`.
    Term(Term),
    /// The hub's call `call` continues the stored row `row` (a call resumed at start-up).
    Adopt {
        call: u64,
        row: CallRowId,
    },
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
    /// Shared with the writer, which observes each write's duration.
    write_seconds: Histogram,
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
        let write_seconds = crate::metrics::Metrics::store_write_histogram();
        let timer = write_seconds.clone();
        std::thread::Builder::new()
            .name("tincan-records".into())
            .spawn(move || {
                Writer {
                    store,
                    term: 0,
                    fenced: None,
                    rows: HashMap::new(),
                    backlog: b,
                    write_seconds: timer,
                }
                .run(rx);
                let _ = done_tx.send(());
            })
            .expect("the record writer thread starts");
        (
            Records {
                tx,
                backlog,
                write_seconds,
            },
            Finished(done_rx),
        )
    }

    /// Queues one update. Never blocks, never refuses (see the module docs).
    pub fn push(&self, update: RecordUpdate) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(Job::Write(u))) = self.tx.send(Job::Write(update)) {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            error!(room = %u.record.room_id, "call record arrived after the writer stopped; not saved");
        }
    }

    /// Tells the writer that the hub's call `call` is stored in `row` (a call resumed at
    /// start-up, `Hub::restore`): its updates overwrite that row. Queued before the
    /// call's first update, it arrives first.
    pub fn adopt(&self, call: u64, row: CallRowId) {
        let _ = self.tx.send(Job::Adopt { call, row });
    }

    /// The updates queued after this one come from a hub that claimed `term`
    /// ([`Store::claim_term`]); those queued before keep the term they had.
    pub fn fence(&self, term: Term) {
        let _ = self.tx.send(Job::Term(term));
    }

    /// Whether so many updates wait that new calls should be refused for now.
    pub fn is_backlogged(&self) -> bool {
        self.backlog.load(Ordering::Relaxed) >= RECORD_BACKLOG_LIMIT
    }

    /// The time each record took to write (for the metrics).
    pub(crate) fn write_seconds(&self) -> Histogram {
        self.write_seconds.clone()
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
    /// The term of the hub whose updates are being written.
    term: Term,
    /// The term whose writes the store refused, once it did (logged once per term).
    fenced: Option<Term>,
    /// The store's row of each call in progress, by the hub's number for it.
    rows: HashMap<u64, CallRowId>,
    backlog: Arc<AtomicUsize>,
    write_seconds: Histogram,
}

/// Errors worth waiting out: someone holds the lock, the disk is full, an IO error.
fn is_transient(e: &StoreError) -> bool {
    e.is_busy()
        || matches!(e, StoreError::Db(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure))
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut batch = Vec::new();
        while let Some(mut job) = rx.blocking_recv() {
            // Woken by an update, wait a moment for the ones right behind it (an invitation
            // is answered or declined within milliseconds), so that under load many are
            // written in one transaction instead of each in its own.
            if matches!(job, Job::Write(_)) {
                std::thread::sleep(GATHER);
            }
            // The updates queued behind this one are written with it, in one
            // transaction; any other job first has the updates before it written.
            loop {
                match job {
                    Job::Write(u) => batch.push(u),
                    other => {
                        self.write_all(&mut batch);
                        self.handle(other, &mut rx);
                    }
                }
                if batch.len() >= WRITE_BATCH {
                    self.write_all(&mut batch);
                }
                match rx.try_recv() {
                    Ok(next) => job = next,
                    Err(_) => break,
                }
            }
            self.write_all(&mut batch);
        }
        debug!("record writer ends");
    }

    /// Every job but a write.
    fn handle(&mut self, job: Job, rx: &mut mpsc::UnboundedReceiver<Job>) {
        match job {
            Job::Write(_) => unreachable!("writes are batched by run"),
            Job::Term(term) => {
                self.term = term;
                self.rows.clear();
            }
            Job::Adopt { call, row } => {
                self.rows.insert(call, row);
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

    /// Writes the queued updates `batch` (emptying it) in one transaction.
    fn write_all(&mut self, batch: &mut Vec<RecordUpdate>) {
        if batch.is_empty() {
            return;
        }
        let queued = batch.len();
        let started = std::time::Instant::now();
        self.write(&latest_per_call(std::mem::take(batch)));
        self.write_seconds.observe(started.elapsed().as_secs_f64());
        self.backlog.fetch_sub(queued, Ordering::Relaxed);
    }

    fn write(&mut self, updates: &[RecordUpdate]) {
        let mut delay = RETRY_FIRST;
        let mut waited = false;
        // Serialised here, on the writer's thread: the hub's lock is not held for it.
        let states: Vec<Option<String>> = updates
            .iter()
            .map(|u| match (&u.saved, u.open) {
                (Some(s), true) => Some(serde_json::to_string(s).expect("saved calls serialize")),
                _ => None,
            })
            .collect();
        let first = &updates[0].record.room_id;
        loop {
            let writes: Vec<CallWrite<'_>> = updates
                .iter()
                .zip(&states)
                .map(|(u, state)| CallWrite {
                    row: self.rows.get(&u.call).copied(),
                    record: &u.record,
                    open: u.open,
                    live: state.as_deref(),
                })
                .collect();
            match self.store.put_calls(&writes, self.term) {
                Ok(rows) => {
                    for (u, id) in updates.iter().zip(rows) {
                        if u.open {
                            self.rows.insert(u.call, id);
                        } else {
                            self.rows.remove(&u.call);
                        }
                    }
                    if waited {
                        info!(room = %first, records = updates.len(), "call records saved after waiting for the database");
                    }
                    return;
                }
                Err(StoreError::Fenced { ours, current }) => {
                    if self.fenced != Some(ours) {
                        warn!(room = %first, term = ours, current,
                            "call records from this node's turn at running the calls are no longer written: another node took the calls over");
                        self.fenced = Some(ours);
                    }
                    return;
                }
                Err(e) if is_transient(&e) => {
                    if !waited {
                        warn!(room = %first, error = %e, backlog = self.backlog.load(Ordering::Relaxed),
                            "cannot save call records yet; retrying until the database lets us");
                    }
                    waited = true;
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(RETRY_MAX);
                }
                Err(e) if updates.len() > 1 => {
                    // One record the database refuses must not cost the others.
                    warn!(error = %e, records = updates.len(), "a batch of call records was refused; writing them one at a time");
                    for u in updates {
                        self.write(std::slice::from_ref(u));
                    }
                    return;
                }
                Err(e) => {
                    error!(room = %first, error = %e, "could not save the call record");
                    return;
                }
            }
        }
    }
}

/// The last update of each call in `batch`, in the order of those last updates. The
/// batch is written in one transaction, so an earlier update of the same call could
/// never be read: a call that rang and was declined within one batch is written once.
fn latest_per_call(batch: Vec<RecordUpdate>) -> Vec<RecordUpdate> {
    let mut last = HashMap::with_capacity(batch.len());
    for (i, u) in batch.iter().enumerate() {
        last.insert(u.call, i);
    }
    batch
        .into_iter()
        .enumerate()
        .filter(|(i, u)| last[&u.call] == *i)
        .map(|(_, u)| u)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::{GroupRow, SqliteStore, UserRow};
    use tincan_protocol::{EndReason, GroupId, InviteeOutcome, InviteeRecord, MediaType, RoomId};

    /// An in-memory store whose call writes fail "database is locked" while `locked`.
    /// An in-memory store whose call writes fail "database is locked" while `locked`,
    /// and for good when they hold a record of room `poison`.
    struct Flaky {
        inner: SqliteStore,
        locked: Mutex<bool>,
        refused: AtomicUsize,
        poison: Option<&'static str>,
    }

    impl Flaky {
        /// Locked until the test unlocks it.
        fn locked(poison: Option<&'static str>) -> Arc<Flaky> {
            Arc::new(Flaky {
                inner: SqliteStore::open_in_memory().unwrap(),
                locked: Mutex::new(true),
                refused: AtomicUsize::new(0),
                poison,
            })
        }
    }

    fn busy() -> StoreError {
        StoreError::Db(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ))
    }

    impl Store for Flaky {
        fn add_user(&self, u: &UserId, n: &str, h: Option<&str>) -> Result<(), StoreError> {
            self.inner.add_user(u, n, h)
        }
        fn set_password(&self, u: &UserId, h: &str) -> Result<(), StoreError> {
            self.inner.set_password(u, h)
        }
        fn delete_user(&self, u: &UserId) -> Result<(), StoreError> {
            self.inner.delete_user(u)
        }
        fn user(&self, u: &UserId) -> Result<Option<UserRow>, StoreError> {
            self.inner.user(u)
        }
        fn users(&self) -> Result<Vec<UserRow>, StoreError> {
            self.inner.users()
        }
        fn users_page(&self, a: Option<&UserId>, l: u32) -> Result<Vec<UserRow>, StoreError> {
            self.inner.users_page(a, l)
        }
        fn create_group(&self, g: &GroupId, n: &str) -> Result<(), StoreError> {
            self.inner.create_group(g, n)
        }
        fn add_member(&self, g: &GroupId, u: &UserId) -> Result<(), StoreError> {
            self.inner.add_member(g, u)
        }
        fn remove_member(&self, g: &GroupId, u: &UserId) -> Result<(), StoreError> {
            self.inner.remove_member(g, u)
        }
        fn group(&self, g: &GroupId) -> Result<Option<GroupRow>, StoreError> {
            self.inner.group(g)
        }
        fn groups(&self) -> Result<Vec<GroupRow>, StoreError> {
            self.inner.groups()
        }
        fn groups_of(&self, u: &UserId) -> Result<Vec<GroupRow>, StoreError> {
            self.inner.groups_of(u)
        }
        fn claim_term(&self) -> Result<Term, StoreError> {
            self.inner.claim_term()
        }
        fn put_calls(
            &self,
            writes: &[CallWrite<'_>],
            term: Term,
        ) -> Result<Vec<CallRowId>, StoreError> {
            if *self.locked.lock().unwrap() {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(busy());
            }
            if writes
                .iter()
                .any(|w| Some(w.record.room_id.as_str()) == self.poison)
            {
                return Err(StoreError::Corrupt("a record the database refuses".into()));
            }
            self.inner.put_calls(writes, term)
        }
        fn live_calls(&self) -> Result<Vec<(CallRowId, String)>, StoreError> {
            self.inner.live_calls()
        }
        fn close_open_calls(&self, r: EndReason, t: Term) -> Result<Vec<RoomId>, StoreError> {
            self.inner.close_open_calls(r, t)
        }
        fn recent_ended_rooms(&self, l: usize) -> Result<Vec<(RoomId, EndReason)>, StoreError> {
            self.inner.recent_ended_rooms(l)
        }
        fn call_history(
            &self,
            u: &UserId,
            l: u32,
            b: Option<i64>,
        ) -> Result<Vec<CallRecord>, StoreError> {
            self.inner.call_history(u, l, b)
        }
        fn setting(&self, k: &str) -> Result<Option<String>, StoreError> {
            self.inner.setting(k)
        }
        fn set_setting(&self, k: &str, v: &str) -> Result<(), StoreError> {
            self.inner.set_setting(k, v)
        }
        fn delete_setting(&self, k: &str) -> Result<(), StoreError> {
            self.inner.delete_setting(k)
        }
    }

    fn update(call: u64, open: bool) -> RecordUpdate {
        RecordUpdate {
            call,
            open,
            saved: None,
            record: CallRecord {
                room_id: RoomId::new(format!("room{call}")).unwrap(),
                inviter_user_id: UserId::new("alice").unwrap(),
                group_id: String::new(),
                media_type: MediaType::Audio,
                session_type: 1,
                invitees: vec![InviteeRecord {
                    user_id: UserId::new("bob").unwrap(),
                    outcome: InviteeOutcome::Cancelled,
                    answer_time: None,
                }],
                participant_user_id_list: vec![UserId::new("alice").unwrap()],
                initiate_time: 1,
                answer_time: None,
                end_time: 2,
                end_reason: if open {
                    EndReason::ServerRestart
                } else {
                    EndReason::Cancelled
                },
            },
        }
    }

    #[test]
    fn records_wait_out_a_locked_database_and_none_is_lost() {
        let store = Flaky::locked(None);
        let (records, _finished) = Records::start(store.clone());
        for call in 0..RECORD_BACKLOG_LIMIT as u64 {
            records.push(update(call, true));
        }
        assert!(records.is_backlogged(), "new calls are refused now");
        const CLOSED: u64 = 300;
        for call in 0..CLOSED {
            records.push(update(call, false));
        }
        // The writer has tried and been refused at least once before the lock goes.
        while store.refused.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        *store.locked.lock().unwrap() = false;
        records.flush_blocking();
        assert_eq!(records.backlog(), 0);
        assert!(!records.is_backlogged());
        let history = store
            .inner
            .call_history(&UserId::new("bob").unwrap(), 200, None)
            .unwrap();
        assert_eq!(history.len(), 200, "closed records are in the history");
        assert!(history.iter().all(|r| r.end_reason == EndReason::Cancelled));
        assert_eq!(
            store
                .inner
                .close_open_calls(EndReason::ServerRestart, 0)
                .unwrap()
                .len(),
            RECORD_BACKLOG_LIMIT - CLOSED as usize,
            "the calls never closed are still there, open; the others were closed in place"
        );
        assert_eq!(
            store.inner.recent_ended_rooms(usize::MAX).unwrap().len(),
            RECORD_BACKLOG_LIMIT
        );
    }

    /// A writer whose term has passed drops its updates (they are stale) without
    /// waiting or retrying, and a writer told its new term writes again.
    #[test]
    fn updates_from_a_passed_term_are_dropped_and_the_queue_moves_on() {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        let (records, _finished) = Records::start(store.clone());
        let mine = store.claim_term().unwrap();
        records.fence(mine);
        records.push(update(1, true));
        records.flush_blocking();
        let theirs = store.claim_term().unwrap();
        for _ in 0..100 {
            records.push(update(1, false));
        }
        records.push(update(2, false));
        records.flush_blocking();
        assert_eq!(records.backlog(), 0, "the queue moved on");
        let bob = UserId::new("bob").unwrap();
        assert!(
            store.call_history(&bob, 10, None).unwrap().is_empty(),
            "no stale write landed"
        );
        // The call is still open, as the later term found it.
        assert_eq!(
            store
                .close_open_calls(EndReason::ServerRestart, theirs)
                .unwrap()
                .len(),
            1
        );
        records.fence(store.claim_term().unwrap());
        records.push(update(3, false));
        records.flush_blocking();
        assert_eq!(store.call_history(&bob, 10, None).unwrap().len(), 2);
    }

    /// A record the database refuses costs only itself, not the others written in the
    /// same batch.
    #[test]
    fn a_refused_record_does_not_take_its_batch_with_it() {
        let store = Flaky::locked(Some("room3"));
        let (records, _finished) = Records::start(store.clone());
        // Held back by the lock so that they are written as one batch.
        for call in 0..10 {
            records.push(update(call, false));
        }
        while store.refused.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        *store.locked.lock().unwrap() = false;
        records.flush_blocking();
        let history = store
            .inner
            .call_history(&UserId::new("bob").unwrap(), 100, None)
            .unwrap();
        assert_eq!(history.len(), 9);
        assert!(history.iter().all(|r| r.room_id.as_str() != "room3"));
        assert_eq!(records.backlog(), 0);
    }

    #[test]
    fn of_several_updates_of_a_call_in_a_batch_the_last_is_kept() {
        let batch = vec![
            update(1, true),
            update(2, true),
            update(1, false),
            update(3, true),
            update(2, false),
        ];
        let kept: Vec<(u64, bool)> = latest_per_call(batch)
            .iter()
            .map(|u| (u.call, u.open))
            .collect();
        assert_eq!(kept, [(1, false), (3, true), (2, false)]);
    }
}
