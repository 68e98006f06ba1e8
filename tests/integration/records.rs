//! Call records and the database: a write lock held by another process stalls no one
//! and loses no record; a call cut by a crash is recorded when the server comes back.

use serde_json::Value;

use tincan_protocol::HistoryParams;
use tincan_server::ServerConfig;
use tincan_tests::*;

use crate::server_process::ServerProcess;

/// The record of `room` in `records` (as JSON, to read its wire names).
fn record_of(records: &[tincan_protocol::CallRecord], room: &str) -> Option<Value> {
    records
        .iter()
        .find(|r| r.room_id.as_str() == room)
        .map(|r| serde_json::to_value(r).unwrap())
}

/// Holds SQLite's write lock on `db` from a connection of its own (as another process
/// would) until told to let go.
struct WriteLock {
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl WriteLock {
    async fn take(db: &std::path::Path) -> WriteLock {
        let db = db.to_owned();
        let (taken_tx, taken_rx) = tokio::sync::oneshot::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let c = rusqlite::Connection::open(&db).expect("open the server's database");
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            // In WAL mode EXCLUSIVE is the write lock: other writers wait, readers don't.
            c.execute_batch("BEGIN EXCLUSIVE")
                .expect("take the write lock");
            taken_tx.send(()).expect("test waits");
            let _ = release_rx.recv();
            c.execute_batch("COMMIT").expect("let go");
        });
        taken_rx.await.expect("lock taken");
        WriteLock { release, thread }
    }

    fn is_held(&self) -> bool {
        !self.thread.is_finished()
    }

    fn release(self) {
        self.release.send(()).expect("locker waits");
        self.thread.join().expect("locker thread");
    }
}

#[tokio::test]
async fn held_write_lock_stalls_no_ping_and_loses_no_call_record() {
    let dir = TempDir::new("contention");
    let db = dir.path().join("tincan.db");
    let server = TestServer::start_on_file(&db, ServerConfig::default()).await;
    let mut alice = server.peer("alice", "a1").await;
    let mut bob = server.peer("bob", "b1").await;
    let carol = server.peer("carol", "c1").await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(&room).await.unwrap();
    alice.expect("onInviteeAccepted").await;

    let lock = WriteLock::take(&db).await;
    // The call ends while nobody can write to the database…
    alice.hang_up(&room).await.unwrap();
    bob.expect("onHangUp").await;
    // …and another user's ping is answered at once, not after the store gives up.
    carol.client.ping(&op("ping")).await.unwrap();
    assert!(
        lock.is_held(),
        "the ping was answered while the write lock was held"
    );
    lock.release();

    // The record was kept and written once the lock was gone.
    let history = bob
        .client
        .get_call_history(&op("history"), HistoryParams::default())
        .await
        .unwrap();
    let record = record_of(&history.records, &room).expect("the call's record is kept");
    assert_eq!(record["endReason"], "hungUp", "{record}");
    server.stop().await;
}

#[tokio::test]
async fn call_cut_by_a_crash_is_recorded_after_restart_and_late_answers_hear_not_ringing() {
    let dir = TempDir::new("crash");
    let db = dir.path().join("tincan.db");
    seed(&tincan_server::store::SqliteStore::open(&db).unwrap());

    let server = ServerProcess::start(db.to_str().unwrap(), None).await;
    let alice = server.peer("alice", "a1").await;
    let mut bob = server.peer("bob", "b1").await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    // A request after the invitation; the record of a ringing call is written by now
    // (history is answered after every record queued before it).
    alice
        .client
        .get_call_history(&op("sync"), HistoryParams::default())
        .await
        .unwrap();
    server.kill_9().await;

    let server = ServerProcess::start(db.to_str().unwrap(), None).await;
    let alice = server.peer("alice", "a1").await;
    let bob = server.peer("bob", "b1").await;
    let history = bob
        .client
        .get_call_history(&op("history"), HistoryParams::default())
        .await
        .unwrap();
    let record = record_of(&history.records, &room).expect("the missed call is in bob's history");
    assert_eq!(record["endReason"], "serverRestart", "{record}");
    assert_eq!(record["invitees"][0]["userID"], "bob", "{record}");
    assert!(
        record_of(
            &alice
                .client
                .get_call_history(&op("history"), HistoryParams::default())
                .await
                .unwrap()
                .records,
            &room
        )
        .is_some(),
        "and in alice's"
    );
    assert_eq!(code(bob.accept(&room).await), 1602, "answering a cut call");
    assert_eq!(
        code(alice.hang_up(&room).await),
        1602,
        "hanging up a cut call"
    );
    server.kill_9().await;
}
