//! One user on several devices: every device rings, the first answer wins, the others
//! hear "answered elsewhere", and a device that signs in while a call rings rings too.

use tincan_protocol::{InviteeOutcome, PlatformId};
use tincan_tests::*;

#[tokio::test]
async fn accept_on_one_device_stops_the_others_even_on_the_same_platform() {
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob1 = s.peer("bob", "b-laptop").await;
    let mut bob2 = s.peer("bob", "b-desktop").await; // same platform (Linux)
    let mut bob3 = s
        .peer_with(
            &s.url,
            "bob",
            "b-phone",
            PlatformId::ANDROID,
            no_reconnect(),
        )
        .await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    for b in [&mut bob1, &mut bob2, &mut bob3] {
        b.expect("onReceiveNewInvitation").await;
    }
    bob2.accept(&room).await.unwrap();
    for b in [&mut bob1, &mut bob3] {
        let e = b.expect_info("onInviteeAcceptedByOtherDevice").await;
        assert_eq!(e.op_user_id, "bob");
        assert!(b.client.ringing().is_empty(), "the SDK stopped ringing");
    }
    alice.expect("onInviteeAccepted").await;
    bob2.quiet().await;
    // A second answer from another device is refused and changes nothing.
    assert_eq!(code(bob1.accept(&room).await), 1601);
    assert_eq!(code(bob3.reject(&room).await), 1601);
    alice.quiet().await;
    bob2.hang_up(&room).await.unwrap();
    alice.expect("onHangUp").await;
    assert_eq!(
        s.history("bob")[0].invitees[0].outcome,
        InviteeOutcome::Accepted
    );
}

#[tokio::test]
async fn reject_on_one_device_stops_the_others() {
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob1 = s.peer("bob", "b1").await;
    let mut bob2 = s.peer("bob", "b2").await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob1.expect("onReceiveNewInvitation").await;
    bob2.expect("onReceiveNewInvitation").await;
    bob1.reject(&room).await.unwrap();
    bob2.expect("onInviteeRejectedByOtherDevice").await;
    alice.expect("onInviteeRejected").await;
}

#[tokio::test]
async fn a_device_signing_in_while_a_call_rings_rings_too() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let room = alice.invite("bob").await.unwrap().room_id;
    let mut bob = s.peer("bob", "b1").await;
    let pending = &bob.client.session().pending_invitations;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].invitation.room_id, room.as_str());
    let e = bob.expect_info("onReceiveNewInvitation").await;
    assert_eq!(e.invitation.room_id, room.as_str());
    let start = bob
        .client
        .get_signaling_invitation_info_start_app(&op("start"))
        .await
        .unwrap();
    assert_eq!(start.invitation.unwrap().room_id, room.as_str());
    bob.accept(room.as_str()).await.unwrap();
    let none = bob
        .client
        .get_signaling_invitation_info_start_app(&op("start"))
        .await
        .unwrap();
    assert!(none.invitation.is_none());
}

#[tokio::test]
async fn the_inviter_device_alone_hears_the_answer() {
    let s = TestServer::start().await;
    let mut alice1 = s.peer("alice", "a1").await;
    let mut alice2 = s.peer("alice", "a2").await;
    let mut bob = s.peer("bob", "b1").await;
    let room = alice1.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(&room).await.unwrap();
    alice1.expect("onInviteeAccepted").await;
    alice2.quiet().await;
}
