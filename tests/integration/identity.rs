//! The impersonation matrix: every way of acting as someone one is not is refused,
//! and nothing changes.

use tincan_protocol::{ActionParams, Invitation, RoomParams};
use tincan_tests::*;

fn as_user(room: &str, op_user: &str) -> ActionParams {
    ActionParams {
        op_user_id: op_user.into(),
        invitation: Invitation {
            room_id: room.into(),
            ..Invitation::default()
        },
    }
}

#[tokio::test]
async fn acting_as_someone_else_is_refused_everywhere() {
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let carol = s.peer("carol", "c1").await;

    // Inviting as someone else.
    let mut p = invite_params(&["carol"], "", 1);
    p.invitation.inviter_user_id = "bob".into();
    assert_eq!(code(alice.client.signaling_invite(&op("x"), p).await), 1002);

    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    let c = &carol.client;
    // Carol answering an invitation addressed to Bob, by name or as herself.
    assert_eq!(
        code(c.signaling_accept(&op("x"), as_user(&room, "bob")).await),
        1002
    );
    assert_eq!(
        code(c.signaling_accept(&op("x"), as_user(&room, "")).await),
        1002
    );
    assert_eq!(
        code(c.signaling_reject(&op("x"), as_user(&room, "")).await),
        1002
    );
    // Carol cancelling Alice's call, or Bob (the invitee) cancelling it.
    assert_eq!(
        code(c.signaling_cancel(&op("x"), as_user(&room, "alice")).await),
        1002
    );
    assert_eq!(
        code(c.signaling_cancel(&op("x"), as_user(&room, "")).await),
        1002
    );
    assert_eq!(code(bob.cancel(&room).await), 1002);
    // Hanging up a call one is not in.
    assert_eq!(
        code(c.signaling_hung_up(&op("x"), as_user(&room, "")).await),
        1002
    );
    assert_eq!(
        code(bob.hang_up(&room).await),
        1002,
        "ringing is not being in the call"
    );
    // Joining a one-to-one call by room id.
    let r = c
        .signaling_get_token_by_room_id(
            &op("x"),
            RoomParams {
                room_id: tincan_protocol::RoomId::new(room.clone()).unwrap(),
            },
        )
        .await;
    assert_eq!(code(r), 1002);
    // Bob acting as Alice.
    assert_eq!(
        code(
            bob.client
                .signaling_accept(&op("x"), as_user(&room, "alice"))
                .await
        ),
        1002
    );

    // None of it changed the call: Bob can still answer, Alice hears it.
    alice.quiet().await;
    bob.accept(&room).await.unwrap();
    alice.expect("onInviteeAccepted").await;

    // Another room's token does not open this room.
    let dave = s.peer("dave", "d1").await;
    let mut erin = s.peer("erin", "e1").await;
    let other = dave.invite("erin").await.unwrap();
    erin.expect("onReceiveNewInvitation").await;
    erin.accept(other.room_id.as_str()).await.unwrap();
    let wrong_room_token = tincan_protocol::MediaSignalParams {
        room_id: tincan_protocol::RoomId::new(room.clone()).unwrap(),
        token: other.token.clone(),
        to_user_id: uid("bob"),
        payload: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
    };
    assert_eq!(
        code(
            dave.client
                .signaling_send_media_signal(&op("x"), wrong_room_token)
                .await
        ),
        1604
    );
    bob.quiet().await;
}

#[tokio::test]
async fn actions_need_a_known_room() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    assert_eq!(
        code(alice.accept("").await),
        1001,
        "no silently invented rooms"
    );
    assert_eq!(code(alice.accept("no-such-room").await), 1004);
    assert_eq!(code(alice.hang_up("no-such-room").await), 1004);
    assert_eq!(code(alice.invite("nobody").await), 1004);
    assert_eq!(code(alice.invite("alice").await), 1001);
    // A room id that names someone else's call is refused on invite.
    let bob = s.peer("bob", "b1").await;
    let room = bob.invite("carol").await.unwrap().room_id;
    let mut p = invite_params(&["dave"], "", 1);
    p.invitation.room_id = room.to_string();
    assert_eq!(code(alice.client.signaling_invite(&op("x"), p).await), 1002);
}

/// An operator removes an account while it is signed in and in a call: its device is
/// signed out with the reason, the other side hears the hang-up at once, and its token
/// no longer signs in.
#[tokio::test]
async fn a_removed_account_is_signed_out_and_leaves_its_call() {
    use std::time::Duration;
    use tincan_sdk::{CloseReason, ConnectionState};
    use tincan_server::store::Store as _;
    let config = tincan_server::ServerConfig {
        account_check_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let s = TestServer::start_with(config).await;
    let mut alice = s.peer("alice", "a1").await;
    let mut erin = s.peer("erin", "e1").await;
    let room = alice.invite("erin").await.unwrap().room_id.to_string();
    erin.expect("onReceiveNewInvitation").await;
    erin.accept(&room).await.unwrap();
    alice.expect("onInviteeAccepted").await;

    s.store.delete_user(&uid("erin")).unwrap();

    let (state, _) = within_real(
        Duration::from_secs(10),
        "erin signed out",
        erin.next_state(),
    )
    .await;
    match state {
        ConnectionState::Closed {
            reason: CloseReason::KickedOffline(why),
        } => assert!(why.contains("removed"), "{why}"),
        other => panic!("erin is signed out, got {other:?}"),
    }
    let hung_up = alice.expect_info("onHangUp").await;
    assert_eq!(hung_up.op_user_id, "erin");
    let record = &s.history("alice")[0];
    assert_eq!(record.end_reason, tincan_protocol::EndReason::HungUp);

    let refused = tincan_sdk::connect_with(
        &s.url,
        &s.token("erin"),
        tincan_sdk::DeviceInfo::new(
            tincan_protocol::DeviceId::new("e2").unwrap(),
            tincan_protocol::PlatformId::LINUX,
        ),
        no_reconnect(),
    )
    .await;
    assert!(
        refused.is_err(),
        "a removed account's token no longer signs in"
    );
}
