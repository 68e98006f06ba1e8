//! Server-clock rules, with tokio's clock paused and frozen: time moves only when a test
//! advances it (see `FrozenClock`), so timeouts and grace periods are exact. The
//! server runs in the test's runtime, so it shares that clock.

use std::time::Duration;

use tincan_protocol::{EndReason, InviteeOutcome, PlatformId};
use tincan_sdk::{ConnectOptions, ConnectionState};
use tincan_tests::*;

#[tokio::test(start_paused = true)]
async fn unanswered_invitation_times_out_on_both_sides() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob1 = s.peer("bob", "b1").await;
    let mut bob2 = s.peer("bob", "b2").await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob1.expect("onReceiveNewInvitation").await;
    bob2.expect("onReceiveNewInvitation").await;

    clock.advance(Duration::from_millis(29_900)).await;
    alice.quiet().await;
    bob1.quiet().await;
    clock.advance(Duration::from_millis(100)).await;
    let t = alice.expect_info("onInvitationTimeout").await;
    assert_eq!(t.op_user_id, "bob", "names the invitee who did not answer");
    for b in [&mut bob1, &mut bob2] {
        b.expect("onInvitationTimeout").await;
        assert!(b.client.ringing().is_empty());
    }
    alice.quiet().await;
    assert_eq!(code(bob1.accept(&room).await), 1602);
    let rec = &s.history("alice")[0];
    assert_eq!(rec.end_reason, EndReason::Timeout);
    assert_eq!(rec.invitees[0].outcome, InviteeOutcome::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn group_invitees_time_out_one_by_one_while_the_call_goes_on() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let mut carol = s.peer("carol", "c1").await;
    let room = alice
        .invite_group("team", &["bob", "carol"])
        .await
        .unwrap()
        .room_id
        .to_string();
    bob.expect("onReceiveNewInvitation").await;
    carol.expect("onReceiveNewInvitation").await;
    bob.accept(&room).await.unwrap();
    alice.expect("onInviteeAccepted").await;
    alice.expect("onRoomParticipantConnected").await;
    clock.advance(Duration::from_secs(30)).await;
    let t = alice.expect_info("onInvitationTimeout").await;
    assert_eq!(t.op_user_id, "carol");
    carol.expect("onInvitationTimeout").await;
    bob.quiet().await;
    bob.hang_up(&room).await.unwrap();
    alice.expect("onHangUp").await;
    let rec = &s.history("alice")[0];
    let carol_rec = rec.invitees.iter().find(|i| i.user_id == "carol").unwrap();
    assert_eq!(carol_rec.outcome, InviteeOutcome::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn inviter_gone_before_an_answer_cancels_after_the_grace_period() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    alice.invite("bob").await.unwrap();
    bob.expect("onReceiveNewInvitation").await;
    alice.client.close().await;
    clock.advance(Duration::from_secs(9)).await;
    bob.quiet().await;
    clock.advance(Duration::from_secs(1)).await;
    bob.expect("onInvitationCancelled").await;
    let rec = &s.history("bob")[0];
    assert_eq!(rec.end_reason, EndReason::Disconnected);
    assert_eq!(rec.invitees[0].outcome, InviteeOutcome::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn participant_that_reconnects_in_time_resumes_the_call() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let bob = s.peer("bob", "b1").await;
    let room = alice.invite("bob").await.unwrap().room_id;
    let mut bob = bob;
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(room.as_str()).await.unwrap();
    alice.expect("onInviteeAccepted").await;

    bob.client.close().await;
    clock.advance(Duration::from_secs(20)).await;
    let mut bob = s.peer("bob", "b1").await;
    let current = bob.client.session().current_call.expect("resumes its call");
    assert_eq!(current.room_id, room);
    assert_eq!(current.participant.len(), 2);
    clock.advance(Duration::from_secs(20)).await;
    alice.quiet().await;

    alice.hang_up(room.as_str()).await.unwrap();
    bob.expect("onHangUp").await;
    assert_eq!(s.history("alice")[0].end_reason, EndReason::HungUp);
}

#[tokio::test(start_paused = true)]
async fn participant_that_does_not_come_back_is_hung_up_for_the_others() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let room = alice.invite("bob").await.unwrap().room_id;
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(room.as_str()).await.unwrap();
    alice.expect("onInviteeAccepted").await;
    bob.client.close().await;
    clock.advance(Duration::from_secs(29)).await;
    alice.quiet().await;
    clock.advance(Duration::from_secs(1)).await;
    let h = alice.expect_info("onHangUp").await;
    assert_eq!(h.op_user_id, "bob");
    assert_eq!(s.history("alice")[0].end_reason, EndReason::Disconnected);
}

// Real time: the SDK's backoff and the proxy's extra hops are what is under test.
#[tokio::test]
async fn the_sdk_reconnects_by_itself_and_resumes_the_call() {
    let s = TestServer::start().await;
    let proxy = Proxy::start(s.addr).await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s
        .peer_with(
            &proxy.url,
            "bob",
            "b1",
            PlatformId::LINUX,
            ConnectOptions::default(),
        )
        .await;
    let room = alice.invite("bob").await.unwrap().room_id;
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(room.as_str()).await.unwrap();
    alice.expect("onInviteeAccepted").await;

    proxy.cut();
    let (state, _) = bob.next_state().await;
    assert!(
        matches!(state, ConnectionState::Reconnecting { .. }),
        "{state:?}"
    );
    let resumed = loop {
        match bob.next_state().await.0 {
            ConnectionState::Resynced { login } => break login,
            ConnectionState::Reconnecting { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        resumed.current_call.expect("still in the call").room_id,
        room
    );
    alice.quiet().await;
    alice.hang_up(room.as_str()).await.unwrap();
    bob.expect("onHangUp").await;
}

#[tokio::test]
async fn shutdown_keeps_an_answered_call_saved_for_the_next_start() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let room = alice.invite("bob").await.unwrap().room_id;
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(room.as_str()).await.unwrap();
    let store = s.store.clone();
    s.stop().await;
    let (state, _) = bob.next_state().await;
    assert!(matches!(state, ConnectionState::Closed { .. }), "{state:?}");
    use tincan_server::store::Store;
    assert!(
        store
            .call_history(&uid("alice"), 10, None)
            .unwrap()
            .is_empty(),
        "the call is not over: the next start resumes it (restart.rs)"
    );
    let saved = store.live_calls().unwrap();
    assert_eq!(saved.len(), 1);
    assert!(saved[0].1.contains(room.as_str()), "{saved:?}");
}
