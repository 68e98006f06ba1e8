//! Calls outlive a server restart (crates/server/src/hub/saved.rs): the real server as a
//! process of its own (tests/bin/file_server.rs) killed with SIGKILL or stopped with
//! SIGTERM mid-call and started again on the same database and port; the SDK clients
//! reconnect by themselves and find their call going on.

use std::time::Duration;

use tincan_protocol::{CustomSignalParams, EndReason, Event, InviteeOutcome, RoomId};
use tincan_sdk::{CallPhase, ConnectOptions, ConnectionState};
use tincan_server::store::test_postgres::TestPostgres;
use tincan_server::store::Database;
use tincan_server::TokenSigner;
use tincan_tests::*;

use crate::server_process::ServerProcess;

/// Signs in with automatic reconnects (quick ones: the server is back in moments).
async fn reconnecting(server: &ServerProcess, user: &str, device: &str) -> Peer {
    let mut options = ConnectOptions::default();
    options.backoff_initial = Duration::from_millis(20);
    options.backoff_max = Duration::from_millis(200);
    options.max_reconnect_attempts = Some(300);
    let token = TokenSigner::new(SECRET.as_bytes()).login_token(&uid(user), i64::MAX);
    server.peer_with(user, device, &token, options).await
}

fn wall_ms() -> i64 {
    tincan_server::switchboard::wall_ms()
}

/// Both sides sign in again: the call goes on where it was, signaling in the room works,
/// and hanging up ends it once, with the whole call's duration.
async fn call_resumes(server: ServerProcess, alice: &mut Peer, bob: &mut Peer, room: &RoomId) {
    let restarted_at = wall_ms();
    let (alice_login, _, _) = resynced(alice).await;
    let (bob_login, _, _) = resynced(bob).await;
    for (who, login) in [("alice", &alice_login), ("bob", &bob_login)] {
        let call = login
            .current_call
            .as_ref()
            .unwrap_or_else(|| panic!("{who} is still in the call: {login:?}"));
        assert_eq!(call.room_id, *room);
        assert!(!call.token.is_empty());
    }
    assert_eq!(alice.client.call_state().phase, CallPhase::InCall);
    assert_eq!(bob.client.call_state().phase, CallPhase::InCall);
    alice
        .client
        .signaling_send_custom_signal(
            &op("custom"),
            CustomSignalParams {
                room_id: room.clone(),
                custom_info: "still here".into(),
            },
        )
        .await
        .expect("signaling in the resumed room");
    let got = bob.expect("onReceiveCustomSignal").await;
    assert_eq!(got["customInfo"], "still here");
    alice.hang_up(room.as_str()).await.unwrap();
    bob.expect("onHangUp").await;
    assert_eq!(bob.client.call_state().phase, CallPhase::Ended);
    let records = records_of(bob, room).await;
    assert_eq!(records.len(), 1, "one record for the call: {records:?}");
    let r = &records[0];
    assert_eq!(r.end_reason, EndReason::HungUp);
    let answered = r.answer_time.expect("answered");
    assert!(
        answered < restarted_at && r.end_time >= restarted_at,
        "the duration spans the restart: {r:?}"
    );
    drop(server);
}

async fn resumes_after_kill_9(database: &str) {
    let server = ServerProcess::start(database, None).await;
    let mut alice = reconnecting(&server, "alice", "a1").await;
    let mut bob = reconnecting(&server, "bob", "b1").await;
    let room = answered_call(&mut alice, &mut bob).await;

    let (database, addr) = server.kill_9().await;
    // The link drops without a word from the server: "reconnecting", not "restarting".
    let (first, _) = alice.next_state().await;
    assert!(
        matches!(first, ConnectionState::Reconnecting { .. }),
        "{first:?}"
    );
    assert_eq!(alice.client.call_state().phase, CallPhase::InCall);
    let server = ServerProcess::start(&database, Some(addr)).await;
    call_resumes(server, &mut alice, &mut bob, &room).await;
}

#[tokio::test]
async fn a_call_resumes_after_kill_9_when_both_sides_reconnect() {
    let dir = TempDir::new("restart-kill");
    let db = dir.path().join("tincan.db");
    seed(&tincan_server::store::SqliteStore::open(&db).unwrap());
    resumes_after_kill_9(db.to_str().unwrap()).await;
}

#[tokio::test]
async fn a_call_resumes_after_kill_9_on_postgres() {
    let pg = TestPostgres::start();
    let url = pg.create_database("tincan");
    seed(Database::parse(&url).open().expect("open").as_ref());
    resumes_after_kill_9(&url).await;
}

#[tokio::test]
async fn a_call_resumes_after_sigterm_and_ringing_invitations_are_cancelled() {
    let dir = TempDir::new("restart-term");
    let db = dir.path().join("tincan.db");
    seed(&tincan_server::store::SqliteStore::open(&db).unwrap());
    let server = ServerProcess::start(db.to_str().unwrap(), None).await;
    let mut alice = reconnecting(&server, "alice", "a1").await;
    let mut bob = reconnecting(&server, "bob", "b1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    // Meanwhile carol's call rings dave.
    let carol = reconnecting(&server, "carol", "c1").await;
    let mut dave = reconnecting(&server, "dave", "d1").await;
    let rung = carol.invite("dave").await.unwrap().room_id;
    dave.expect("onReceiveNewInvitation").await;

    let (database, addr) = server.sigterm(RESYNC_LIMIT).await;
    // The server said it is restarting: the clients say so, and keep the call.
    let (first, _) = alice.next_state().await;
    assert_eq!(first, ConnectionState::ServerRestarting);
    assert_eq!(alice.client.call_state().phase, CallPhase::InCall);
    let (first, _) = bob.next_state().await;
    assert_eq!(first, ConnectionState::ServerRestarting);
    // Nobody rings for an invitation the restarted server will not know.
    let (first, seen) = dave.next_state().await;
    assert_eq!(first, ConnectionState::ServerRestarting);
    assert!(
        seen.iter().any(
            |e| matches!(e, Event::InvitationCancelled(i) if i.invitation.room_id == rung.as_str())
        ),
        "dave is told the invitation is over: {seen:?}"
    );

    let server = ServerProcess::start(&database, Some(addr)).await;
    let (dave_login, _, _) = resynced(&mut dave).await;
    assert!(dave_login.pending_invitations.is_empty(), "{dave_login:?}");
    assert!(dave.client.ringing().is_empty());
    let records = records_of(&dave, &rung).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].end_reason, EndReason::ServerShutdown);
    assert_eq!(records[0].invitees[0].outcome, InviteeOutcome::Cancelled);
    call_resumes(server, &mut alice, &mut bob, &room).await;
}

/// The server in the test's runtime with tokio's clock paused (timers.rs): stopped
/// cleanly mid-call and started again on the same database; nobody comes back.
#[tokio::test(start_paused = true)]
async fn a_resumed_call_nobody_comes_back_to_ends_after_the_grace() {
    let clock = FrozenClock::hold();
    let dir = TempDir::new("restart-grace");
    let db = dir.path().join("tincan.db");
    let config = tincan_server::ServerConfig::default();
    let grace = config.hub.participant_grace;
    let s = TestServer::start_on_file(&db, config.clone()).await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    s.stop().await;
    drop((alice, bob));

    let s = TestServer::start_on_file(&db, config).await;
    // Carol watches them: the resumed call shows them in a call, though offline.
    let mut carol = s.peer("carol", "c1").await;
    let now = carol
        .client
        .subscribe_presence(&op("follow"), vec![uid("alice"), uid("bob")])
        .await
        .unwrap();
    assert!(
        now.presence
            .iter()
            .all(|p| p.status == tincan_protocol::PresenceStatus::InCall),
        "{now:?}"
    );
    clock.advance(grace - Duration::from_millis(1)).await;
    carol.quiet().await;
    clock.advance(Duration::from_millis(1)).await;
    for _ in 0..2 {
        let changed = carol.expect("onPresenceChanged").await;
        assert_eq!(changed["status"], "offline", "{changed}");
    }
    let history = s.history("alice");
    let rec = history
        .iter()
        .find(|r| r.room_id == room)
        .expect("the call's record");
    assert_eq!(rec.end_reason, EndReason::ServerRestart);
    assert!(rec.answer_time.is_some());
    s.stop().await;
}
