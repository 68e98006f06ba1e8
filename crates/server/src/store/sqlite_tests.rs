//! Tests of `SqliteStore` (in memory, and on files for modes and the key file).

use super::*;
use tincan_protocol::{InviteeOutcome, InviteeRecord, MediaType};

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

#[test]
fn users_groups_and_members() {
    let s = SqliteStore::open_in_memory().unwrap();
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

#[test]
fn call_history_is_per_user_newest_first() {
    let s = SqliteStore::open_in_memory().unwrap();
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
    s.save_call(&rec("r1", 100)).unwrap();
    s.save_call(&rec("r2", 200)).unwrap();
    s.save_call(&rec("r2", 300)).unwrap();
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

#[test]
fn open_calls_stay_out_of_history_until_closed_at_start_up() {
    let s = SqliteStore::open_in_memory().unwrap();
    let row = s
        .put_call(None, &record("r1", 100, EndReason::ServerRestart), true)
        .unwrap();
    assert!(s.call_history(&uid("bob"), 10, None).unwrap().is_empty());
    // Updated in place while it goes on: still one row.
    let row2 = s
        .put_call(
            Some(row),
            &record("r1", 150, EndReason::ServerRestart),
            true,
        )
        .unwrap();
    assert_eq!(row, row2);
    s.save_call(&record("r0", 50, EndReason::Rejected)).unwrap();
    assert_eq!(
        s.close_open_calls(EndReason::ServerRestart).unwrap(),
        [RoomId::new("r1").unwrap()]
    );
    let h = s.call_history(&uid("bob"), 10, None).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].end_reason, EndReason::ServerRestart);
    assert_eq!(h[0].end_time, 150, "the last time the server wrote it");
    assert!(s
        .close_open_calls(EndReason::ServerRestart)
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

#[test]
fn a_final_write_for_an_unknown_row_is_a_new_row() {
    let s = SqliteStore::open_in_memory().unwrap();
    s.put_call(Some(42), &record("r1", 100, EndReason::HungUp), false)
        .unwrap();
    assert_eq!(s.call_history(&uid("alice"), 10, None).unwrap().len(), 1);
}

#[test]
fn users_come_in_pages_after_a_cursor() {
    let s = SqliteStore::open_in_memory().unwrap();
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

/// A folder of its own for a file-backed store, removed afterwards.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tincan-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn database_files_are_private_whatever_the_umask() {
    let dir = Dir::new("modes");
    let db = dir.0.join("sub").join("tincan.db");
    let s = SqliteStore::open(&db).unwrap();
    s.add_user(&uid("alice"), "Alice", Some("hash")).unwrap();
    let [wal, shm] = super::super::files::companions(&db);
    assert_eq!(mode(&db), 0o600, "the database");
    assert_eq!(mode(&wal), 0o600, "its WAL, after a write");
    assert_eq!(mode(&shm), 0o600, "its shared memory file");
    assert_eq!(mode(db.parent().unwrap()), 0o700, "the folder it made");
}

#[cfg(unix)]
#[test]
fn open_files_left_by_an_older_version_are_tightened_at_start_up() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new("tighten");
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = dir.0.join("tincan.db");
    drop(SqliteStore::open(&db).unwrap());
    let [wal, shm] = super::super::files::companions(&db);
    for f in [&db, &wal, &shm] {
        if f.exists() {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let s = SqliteStore::open(&db).unwrap();
    s.add_user(&uid("alice"), "Alice", None).unwrap();
    for f in [&db, &wal, &shm] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}

#[test]
fn the_signing_key_lives_in_its_own_private_file_not_in_the_database() {
    let dir = Dir::new("key");
    let db = dir.0.join("tincan.db");
    let s = SqliteStore::open(&db).unwrap();
    let key = super::super::key::signing_key(&s).unwrap();
    let file = s.key_file().unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    assert_eq!(s.setting(super::super::key::KEY_SETTING).unwrap(), None);
    drop(s);
    let bytes = std::fs::read(&db).unwrap();
    assert!(
        !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
        "a copy of the database does not hold the key"
    );
    // The same key on the next start.
    let s = SqliteStore::open(&db).unwrap();
    assert_eq!(super::super::key::signing_key(&s).unwrap(), key);
}

#[test]
fn a_key_kept_in_the_database_by_an_older_version_moves_to_its_file() {
    let dir = Dir::new("legacy-key");
    let db = dir.0.join("tincan.db");
    let s = SqliteStore::open(&db).unwrap();
    s.set_setting(super::super::key::KEY_SETTING, "old-secret")
        .unwrap();
    assert_eq!(
        super::super::key::signing_key(&s).unwrap(),
        "old-secret",
        "tokens stay valid"
    );
    assert_eq!(s.setting(super::super::key::KEY_SETTING).unwrap(), None);
    drop(s);
    let mut all = std::fs::read(&db).unwrap();
    for f in super::super::files::companions(&db) {
        all.extend(std::fs::read(f).unwrap_or_default());
    }
    assert!(
        !all.windows(10).any(|w| w == b"old-secret"),
        "its bytes are gone from the database files"
    );
}
