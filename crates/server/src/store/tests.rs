//! What every store does, tested on each engine: SQLite in memory, and PostgreSQL on a
//! server of its own (`test_postgres`). Each behaviour is a function on `&dyn Store`;
//! `on_every_engine!` makes a `sqlite` and a `postgres` test of it.

use super::test_postgres::TestPostgres;
use super::*;
use tincan_protocol::{InviteeOutcome, InviteeRecord, MediaType};

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
    users_groups_and_members,
    call_history_is_per_user_newest_first,
    open_calls_stay_out_of_history_until_closed_at_start_up,
    a_final_write_for_an_unknown_row_is_a_new_row,
    users_come_in_pages_after_a_cursor
);

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

fn open_calls_stay_out_of_history_until_closed_at_start_up(s: &dyn Store) {
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

fn a_final_write_for_an_unknown_row_is_a_new_row(s: &dyn Store) {
    s.put_call(Some(42), &record("r1", 100, EndReason::HungUp), false)
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
