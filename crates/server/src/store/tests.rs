//! What every store does, tested on each engine: SQLite in memory, and PostgreSQL on a
//! server of its own (`test_postgres`). Each behaviour is a function on `&dyn Store`;
//! `on_every_engine!` makes a `sqlite` and a `postgres` test of it.

use super::test_postgres::TestPostgres;
use super::*;
use tincan_protocol::{InviteeOutcome, InviteeRecord, MediaType};

/// One record at a time, as the tests write them (the server writes batches:
/// [`Store::put_calls`]).
trait OneWrite: Store {
    /// A record: a new row when `row` is `None`, else that row.
    fn put_call(
        &self,
        row: Option<CallRowId>,
        record: &CallRecord,
        open: bool,
        term: Term,
    ) -> Result<CallRowId, StoreError> {
        let write = CallWrite {
            row,
            record,
            open,
            live: None,
        };
        Ok(self.put_calls(&[write], term)?[0])
    }

    /// The record of a call in progress with its saved state.
    fn put_live_call(
        &self,
        row: Option<CallRowId>,
        record: &CallRecord,
        state: &str,
        term: Term,
    ) -> Result<CallRowId, StoreError> {
        let write = CallWrite {
            row,
            record,
            open: true,
            live: Some(state),
        };
        Ok(self.put_calls(&[write], term)?[0])
    }
}

impl<S: Store + ?Sized> OneWrite for S {}

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// A PostgreSQL store on a server of its own (dropped after the store).
struct Pg {
    store: PostgresStore,
    _server: TestPostgres,
}

fn postgres() -> Pg {
    let server = TestPostgres::start();
    let url = server.create_database("tincan");
    Pg {
        store: PostgresStore::connect(&url).expect("connect to the test server"),
        _server: server,
    }
}

macro_rules! on_every_engine {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::SqliteStore::open_in_memory().unwrap());
            }
            #[test]
            fn postgres() {
                let pg = super::postgres();
                super::$name(&pg.store);
            }
        }
    )* };
}

on_every_engine!(
    a_deleted_user_leaves_their_groups,
    users_groups_and_members,
    call_history_is_per_user_newest_first,
    open_calls_stay_out_of_history_until_closed_at_start_up,
    a_final_write_for_an_unknown_row_is_a_new_row,
    users_come_in_pages_after_a_cursor,
    saved_calls_are_read_back_until_closed,
    a_setting_is_inserted_once_and_then_kept,
    a_write_from_a_passed_term_is_refused
);

/// Once a later term is claimed, nothing from an earlier one is written: not an update
/// of a call in progress, not its end, not the closing of open calls.
fn a_write_from_a_passed_term_is_refused(s: &dyn Store) {
    let first = s.claim_term().unwrap();
    assert!(first > 0);
    let open = record("r1", 100, EndReason::ServerRestart);
    let row = s.put_live_call(None, &open, r#"{"v":1}"#, first).unwrap();
    let second = s.claim_term().unwrap();
    assert_eq!(second, first + 1);
    let fenced = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Fenced { ours, current }) if ours == first && current == second);
    assert!(fenced(s.put_live_call(
        Some(row),
        &open,
        r#"{"v":2}"#,
        first
    )));
    assert!(fenced(s.put_call(
        Some(row),
        &record("r1", 120, EndReason::HungUp),
        false,
        first
    )));
    assert!(fenced(s.put_call(
        None,
        &record("r2", 120, EndReason::HungUp),
        false,
        first
    )));
    assert!(fenced(
        s.close_open_calls(EndReason::ServerRestart, first)
            .map(|_| 0)
    ));
    assert_eq!(
        s.live_calls().unwrap(),
        [(row, r#"{"v":1}"#.to_owned())],
        "what the later term reads is what the earlier wrote before the claim"
    );
    assert!(s.call_history(&uid("bob"), 10, None).unwrap().is_empty());
    // The later term writes.
    s.put_live_call(Some(row), &open, r#"{"v":3}"#, second)
        .unwrap();
    assert_eq!(
        s.close_open_calls(EndReason::ServerRestart, second)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.call_history(&uid("bob"), 10, None).unwrap().len(), 1);
}

/// A hub keeps writing while another, on a connection (a process) of its own, claims
/// the next term and reads the calls: what the claimant reads is exactly the earlier
/// hub's last write that was accepted, and every write after it was refused.
fn a_claim_cuts_a_running_writer_cleanly(writer: &dyn Store, claimant: &dyn Store) {
    use std::sync::atomic::{AtomicU64, Ordering};
    const MOST: u64 = 20_000;
    let old = writer.claim_term().unwrap();
    let open = record("r1", 100, EndReason::ServerRestart);
    let row = writer.put_live_call(None, &open, "0", old).unwrap();
    let written = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let w = scope.spawn(|| {
            for v in 1..=MOST {
                match writer.put_live_call(Some(row), &open, &v.to_string(), old) {
                    Ok(_) => written.store(v, Ordering::SeqCst),
                    Err(StoreError::Fenced { .. }) => return Some(v),
                    Err(e) if e.is_busy() => {}
                    Err(e) => panic!("write failed: {e}"),
                }
            }
            None
        });
        // Claim while the writer is busy writing (or after it finished: the same holds).
        while written.load(Ordering::SeqCst) < 20 && !w.is_finished() {
            std::thread::yield_now();
        }
        let new = claimant.claim_term().unwrap();
        assert!(new > old);
        let read = claimant.live_calls().unwrap();
        let refused_at = w.join().unwrap();
        let last = written.load(Ordering::SeqCst);
        assert_eq!(
            read,
            [(row, last.to_string())],
            "the last accepted write is what the claimant reads"
        );
        if let Some(v) = refused_at {
            assert_eq!(v, last + 1, "nothing was accepted after the first refusal");
        }
        assert_eq!(
            claimant.live_calls().unwrap(),
            read,
            "nothing the earlier hub wrote landed after the claim"
        );
    });
}

#[test]
fn a_claim_cuts_a_running_writer_cleanly_on_one_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("tincan-store-fence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("shared.db");
    let (a, b) = (
        SqliteStore::open(&db).unwrap(),
        SqliteStore::open(&db).unwrap(),
    );
    a_claim_cuts_a_running_writer_cleanly(&a, &b);
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_claim_cuts_a_running_writer_cleanly_on_one_postgres_database() {
    let pg = postgres();
    let url = format!("postgres://postgres@127.0.0.1:{}/tincan", pg._server.port());
    let other = PostgresStore::connect(&url).unwrap();
    a_claim_cuts_a_running_writer_cleanly(&pg.store, &other);
}

/// Servers starting together on one database agree on the signing key: the first value
/// written is the one every later caller gets.
fn a_setting_is_inserted_once_and_then_kept(s: &dyn Store) {
    assert_eq!(s.setting_or_insert("k", "first").unwrap(), "first");
    assert_eq!(s.setting_or_insert("k", "second").unwrap(), "first");
    assert_eq!(s.setting("k").unwrap().as_deref(), Some("first"));
}

fn users_groups_and_members(s: &dyn Store) {
    s.add_user(&uid("alice"), "Alice", Some("h")).unwrap();
    s.add_user(&uid("bob"), "Bob", None).unwrap();
    assert!(matches!(
        s.add_user(&uid("bob"), "B", None),
        Err(StoreError::Conflict(_))
    ));
    let g = GroupId::new("g1").unwrap();
    s.create_group(&g, "Team").unwrap();
    s.add_member(&g, &uid("alice")).unwrap();
    s.add_member(&g, &uid("bob")).unwrap();
    s.add_member(&g, &uid("bob")).unwrap();
    assert!(matches!(
        s.add_member(&g, &uid("carol")),
        Err(StoreError::Missing(_))
    ));
    assert_eq!(
        s.group(&g).unwrap().unwrap().members,
        vec![uid("alice"), uid("bob")]
    );
    s.remove_member(&g, &uid("bob")).unwrap();
    assert!(s.groups_of(&uid("bob")).unwrap().is_empty());
    assert_eq!(s.groups_of(&uid("alice")).unwrap().len(), 1);
    assert_eq!(s.users().unwrap().len(), 2);
}

fn call_history_is_per_user_newest_first(s: &dyn Store) {
    let rec = |room: &str, end: i64| CallRecord {
        room_id: RoomId::new(room).unwrap(),
        inviter_user_id: uid("alice"),
        group_id: String::new(),
        media_type: MediaType::Audio,
        session_type: 1,
        invitees: vec![InviteeRecord {
            user_id: uid("bob"),
            outcome: InviteeOutcome::Rejected,
            answer_time: None,
        }],
        participant_user_id_list: vec![uid("alice")],
        initiate_time: end - 10,
        answer_time: None,
        end_time: end,
        end_reason: EndReason::Rejected,
    };
    s.put_call(None, &rec("r1", 100), false, 0).unwrap();
    s.put_call(None, &rec("r2", 200), false, 0).unwrap();
    s.put_call(None, &rec("r2", 300), false, 0).unwrap();
    assert_eq!(
        s.call_history(&uid("bob"), 10, None).unwrap().len(),
        3,
        "a reused room id keeps both calls"
    );
    let h = s.call_history(&uid("bob"), 10, None).unwrap();
    assert_eq!(
        h.iter().map(|r| r.end_time).collect::<Vec<_>>(),
        [300, 200, 100]
    );
    assert_eq!(s.call_history(&uid("bob"), 10, Some(200)).unwrap().len(), 1);
    assert!(s.call_history(&uid("carol"), 10, None).unwrap().is_empty());
}

fn record(room: &str, end: i64, reason: EndReason) -> CallRecord {
    CallRecord {
        room_id: RoomId::new(room).unwrap(),
        inviter_user_id: uid("alice"),
        group_id: String::new(),
        media_type: MediaType::Audio,
        session_type: 1,
        invitees: vec![InviteeRecord {
            user_id: uid("bob"),
            outcome: InviteeOutcome::Cancelled,
            answer_time: None,
        }],
        participant_user_id_list: vec![uid("alice")],
        initiate_time: end - 10,
        answer_time: None,
        end_time: end,
        end_reason: reason,
    }
}

fn open_calls_stay_out_of_history_until_closed_at_start_up(s: &dyn Store) {
    let row = s
        .put_call(None, &record("r1", 100, EndReason::ServerRestart), true, 0)
        .unwrap();
    assert!(s.call_history(&uid("bob"), 10, None).unwrap().is_empty());
    // Updated in place while it goes on: still one row.
    let row2 = s
        .put_call(
            Some(row),
            &record("r1", 150, EndReason::ServerRestart),
            true,
            0,
        )
        .unwrap();
    assert_eq!(row, row2);
    s.put_call(None, &record("r0", 50, EndReason::Rejected), false, 0)
        .unwrap();
    assert_eq!(
        s.close_open_calls(EndReason::ServerRestart, 0).unwrap(),
        [RoomId::new("r1").unwrap()]
    );
    let h = s.call_history(&uid("bob"), 10, None).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].end_reason, EndReason::ServerRestart);
    assert_eq!(h[0].end_time, 150, "the last time the server wrote it");
    assert!(s
        .close_open_calls(EndReason::ServerRestart, 0)
        .unwrap()
        .is_empty());
    assert_eq!(
        s.recent_ended_rooms(10).unwrap(),
        [
            (RoomId::new("r0").unwrap(), EndReason::Rejected),
            (RoomId::new("r1").unwrap(), EndReason::ServerRestart)
        ],
        "oldest first"
    );
    assert_eq!(s.recent_ended_rooms(1).unwrap().len(), 1);
}

fn saved_calls_are_read_back_until_closed(s: &dyn Store) {
    let open = record("r1", 100, EndReason::ServerRestart);
    let row = s.put_live_call(None, &open, r#"{"v":1}"#, 0).unwrap();
    let other = s.put_live_call(None, &open, r#"{"v":2}"#, 0).unwrap();
    let row2 = s.put_live_call(Some(row), &open, r#"{"v":3}"#, 0).unwrap();
    assert_eq!(row, row2, "updated in place");
    s.put_call(Some(other), &record("r1", 120, EndReason::HungUp), false, 0)
        .unwrap();
    assert_eq!(
        s.live_calls().unwrap(),
        [(row, r#"{"v":3}"#.to_owned())],
        "a closed call's state is gone"
    );
    assert!(
        s.call_history(&uid("bob"), 10, None).unwrap().len() == 1,
        "the open call stays out of history"
    );
    // Read at start-up, then closed with every open call: nothing to resume twice.
    s.close_open_calls(EndReason::ServerRestart, 0).unwrap();
    assert!(s.live_calls().unwrap().is_empty());
    // Taken back by the new run: the same row, open again with its state.
    s.put_live_call(Some(row), &open, r#"{"v":4}"#, 0).unwrap();
    assert_eq!(s.live_calls().unwrap(), [(row, r#"{"v":4}"#.to_owned())]);
    assert_eq!(s.call_history(&uid("bob"), 10, None).unwrap().len(), 1);
}

fn a_final_write_for_an_unknown_row_is_a_new_row(s: &dyn Store) {
    s.put_call(Some(42), &record("r1", 100, EndReason::HungUp), false, 0)
        .unwrap();
    assert_eq!(s.call_history(&uid("alice"), 10, None).unwrap().len(), 1);
}

fn users_come_in_pages_after_a_cursor(s: &dyn Store) {
    for u in ["a", "b", "c", "d", "e"] {
        s.add_user(&uid(u), u, None).unwrap();
    }
    let ids = |rows: Vec<UserRow>| {
        rows.into_iter()
            .map(|r| r.user_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(s.users_page(None, 2).unwrap()), ["a", "b"]);
    assert_eq!(ids(s.users_page(Some(&uid("b")), 2).unwrap()), ["c", "d"]);
    assert_eq!(ids(s.users_page(Some(&uid("d")), 2).unwrap()), ["e"]);
    assert!(s.users_page(Some(&uid("e")), 2).unwrap().is_empty());
}

fn a_deleted_user_leaves_their_groups(s: &dyn Store) {
    let g = GroupId::new("g1").unwrap();
    s.add_user(&uid("alice"), "Alice", None).unwrap();
    s.add_user(&uid("bob"), "Bob", None).unwrap();
    s.create_group(&g, "Team").unwrap();
    s.add_member(&g, &uid("alice")).unwrap();
    s.add_member(&g, &uid("bob")).unwrap();
    s.delete_user(&uid("bob")).unwrap();
    assert_eq!(s.user(&uid("bob")).unwrap(), None);
    assert_eq!(s.group(&g).unwrap().unwrap().members, vec![uid("alice")]);
    assert!(matches!(
        s.delete_user(&uid("bob")),
        Err(StoreError::Missing(_))
    ));
    s.set_password(&uid("alice"), "h2").unwrap();
    assert_eq!(
        s.user(&uid("alice"))
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("h2"),
        "a write is read back at once"
    );
}

/// How long another server's change may take to arrive (a loopback notification).
const CHANGE_ARRIVES: std::time::Duration = std::time::Duration::from_secs(10);

#[test]
fn users_and_groups_written_by_another_server_are_seen_without_a_restart() {
    let pg = postgres();
    let url = pg._server.create_database("shared");
    let ours = PostgresStore::connect(&url).unwrap();
    let theirs = PostgresStore::connect(&url).unwrap();
    let g = GroupId::new("g1").unwrap();
    theirs.add_user(&uid("alice"), "Alice", None).unwrap();
    theirs.create_group(&g, "Team").unwrap();
    theirs.add_member(&g, &uid("alice")).unwrap();
    assert!(
        ours.wait_for_mirror(CHANGE_ARRIVES, |s| {
            s.user(&uid("alice")).unwrap().is_some()
                && s.group(&g)
                    .unwrap()
                    .is_some_and(|g| g.members == [uid("alice")])
        }),
        "the other server's user and group never arrived"
    );
    theirs.delete_user(&uid("alice")).unwrap();
    assert!(
        ours.wait_for_mirror(CHANGE_ARRIVES, |s| {
            s.user(&uid("alice")).unwrap().is_none()
                && s.group(&g).unwrap().is_some_and(|g| g.members.is_empty())
        }),
        "the deletion never arrived"
    );
}

#[test]
fn reads_by_key_never_wait_for_the_database() {
    let Pg { store, _server } = postgres();
    let g = GroupId::new("g1").unwrap();
    store.add_user(&uid("alice"), "Alice", None).unwrap();
    store.create_group(&g, "Team").unwrap();
    // The database goes away; what the hub reads under its lock is still answered.
    drop(_server);
    assert_eq!(
        store.user(&uid("alice")).unwrap().unwrap().nickname,
        "Alice"
    );
    assert_eq!(store.group(&g).unwrap().unwrap().name, "Team");
    assert!(store.users().is_err(), "other reads do go to the database");
}

#[test]
fn a_postgres_database_from_a_newer_version_is_refused() {
    let pg = postgres();
    let url = pg._server.create_database("newer");
    drop(PostgresStore::connect(&url).unwrap());
    {
        let s = PostgresStore::connect(&url).unwrap();
        s.writing(|c| {
            futures_executor::block_on(
                c.batch_execute("INSERT INTO schema_migrations (version) VALUES (99)"),
            )?;
            Ok(())
        })
        .unwrap();
    }
    let e = PostgresStore::connect(&url).err().expect("refused");
    assert!(e.to_string().contains("schema version 99"), "{e}");
}

#[test]
fn a_sqlite_file_made_before_versions_is_migrated_and_a_newer_one_refused() {
    let dir = std::env::temp_dir().join(format!("tincan-store-versions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("old.db");
    {
        // The schema before call records had `open`, and before user_version was kept.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE users (user_id TEXT PRIMARY KEY, nickname TEXT NOT NULL, password_hash TEXT);
             CREATE TABLE calls (call_id INTEGER PRIMARY KEY, room_id TEXT NOT NULL,
                                 end_ms INTEGER NOT NULL, record TEXT NOT NULL);
             INSERT INTO users VALUES ('alice', 'Alice', NULL);",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&db).unwrap();
    assert!(s.user(&uid("alice")).unwrap().is_some(), "rows are kept");
    s.put_call(None, &record("r1", 100, EndReason::HungUp), true, 0)
        .unwrap();
    drop(s);
    let version = |db: &std::path::Path| -> i32 {
        rusqlite::Connection::open(db)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&db), sqlite::SCHEMA_VERSION);
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let e = SqliteStore::open(&db).err().expect("refused");
    assert!(e.to_string().contains("schema version 99"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_database_setting_names_its_engine_and_is_described_without_its_password() {
    let pg = Database::parse("postgres://tincan:s3cret-pw@db.example.org:5433/calls");
    assert!(matches!(pg, Database::Postgres(_)));
    assert!(pg.has_password());
    let shown = format!("{} {:?}", pg.describe(), pg);
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(
        shown.contains("tincan@db.example.org:5433/calls"),
        "{shown}"
    );
    assert!(matches!(
        Database::parse("postgresql://localhost/calls"),
        Database::Postgres(_)
    ));
    assert!(!Database::parse("postgresql://localhost/calls").has_password());
    for (setting, path) in [
        ("tincan.db", "tincan.db"),
        ("/var/lib/tincan/tincan.db", "/var/lib/tincan/tincan.db"),
        ("sqlite:tincan.db", "tincan.db"),
        (
            "sqlite:///var/lib/tincan/tincan.db",
            "/var/lib/tincan/tincan.db",
        ),
    ] {
        assert_eq!(
            Database::parse(setting),
            Database::Sqlite(path.into()),
            "{setting}"
        );
    }
    let bad = Database::parse("postgres://u:pw-in-a-bad-url@host:notaport/db");
    assert!(!bad.describe().contains("pw-in-a-bad-url"));
    let e = PostgresStore::connect("postgres://u:pw-in-a-bad-url@host:notaport/db")
        .err()
        .expect("refused");
    assert!(!e.to_string().contains("pw-in-a-bad-url"), "{e}");
    let e = PostgresStore::connect("postgres://u@127.0.0.1/db?sslmode=require")
        .err()
        .expect("refused");
    assert!(e.to_string().contains("sslmode=require"), "{e}");
}

/// Runs `op` again while it fails with a retryable error, as the record writer does:
/// the first use after a restart may meet the old, cut connection.
fn retried<T>(mut op: impl FnMut() -> Result<T, StoreError>) -> T {
    for _ in 0..3 {
        match op() {
            Ok(v) => return v,
            Err(e) if e.is_busy() => continue,
            Err(e) => panic!("not retryable: {e}"),
        }
    }
    panic!("still failing after 3 attempts")
}

#[test]
fn the_store_rides_out_a_postgres_restart() {
    let Pg { store, mut _server } = postgres();
    store.add_user(&uid("alice"), "Alice", None).unwrap();
    _server.restart();
    // Reads, writes and records work again on new connections.
    assert_eq!(retried(|| store.users()).len(), 1);
    retried(|| store.add_user(&uid("bob"), "Bob", None));
    retried(|| store.put_call(None, &record("r1", 100, EndReason::HungUp), false, 0));
    assert_eq!(store.call_history(&uid("bob"), 10, None).unwrap().len(), 1);
    // And the mirror follows the database's notifications again.
    let url = format!("postgres://postgres@127.0.0.1:{}/tincan", _server.port());
    let theirs = PostgresStore::connect(&url).unwrap();
    theirs.add_user(&uid("carol"), "Carol", None).unwrap();
    assert!(
        store.wait_for_mirror(CHANGE_ARRIVES, |s| s.user(&uid("carol")).unwrap().is_some()),
        "a user added after the restart never reached the mirror"
    );
}
