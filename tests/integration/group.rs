//! Group calls: mixed answers, a late joiner, adding people mid-call, and the end rule
//! (fewer than two participants).

use tincan_protocol::{EndReason, GroupId, InviteeOutcome, RoomId, RoomParams};
use tincan_tests::*;

#[tokio::test]
async fn group_call_with_mixed_answers_and_a_late_joiner() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let bob = s.peer("bob", "b1").await;
    let carol = s.peer("carol", "c1").await;
    let dave = s.peer("dave", "d1").await;
    mixed_answers_and_a_late_joiner([alice, bob, carol, dave]).await;
}

/// The group call of the test above, with alice, bob, carol and dave signed in wherever
/// the caller put them (cluster.rs runs it with each on another node).
pub(crate) async fn mixed_answers_and_a_late_joiner(
    [mut alice, mut bob, mut carol, mut dave]: [Peer; 4],
) {
    let reply = alice.invite_group("team", &["bob", "carol"]).await.unwrap();
    let room = reply.room_id.to_string();
    let inv = bob.expect_info("onReceiveNewInvitation").await;
    assert_eq!(inv.invitation.group_id, "team");
    assert_eq!(inv.invitation.session_type, 2);
    assert_eq!(
        inv.participant.unwrap().group_info.unwrap().group_name,
        "Team"
    );
    carol.expect("onReceiveNewInvitation").await;
    dave.quiet().await; // members who were not invited do not ring

    bob.accept(&room).await.unwrap();
    alice.expect("onInviteeAccepted").await;
    let joined = alice.expect("onRoomParticipantConnected").await;
    assert_eq!(joined["opUserID"], "bob");
    assert_eq!(joined["participant"].as_array().unwrap().len(), 2);
    carol.reject(&room).await.unwrap();
    alice.expect("onInviteeRejected").await;
    bob.quiet().await;

    // Dave was not invited but may join the group's call in progress.
    let found = dave
        .client
        .signaling_get_room_by_group_id(
            &op("room"),
            tincan_protocol::GroupParams {
                group_id: GroupId::new("team").unwrap(),
            },
        )
        .await
        .unwrap();
    assert_eq!(found.room_id, room);
    assert_eq!(found.participant.len(), 2);
    let t = dave
        .client
        .signaling_get_token_by_room_id(
            &op("token"),
            RoomParams {
                room_id: RoomId::new(room.clone()).unwrap(),
            },
        )
        .await
        .unwrap();
    assert!(!t.token.is_empty());
    for p in [&mut alice, &mut bob] {
        let e = p.expect("onRoomParticipantConnected").await;
        assert_eq!(e["opUserID"], "dave");
        assert_eq!(e["participant"].as_array().unwrap().len(), 3);
    }

    // Three in the call: one leaving does not end it; the second does.
    bob.hang_up(&room).await.unwrap();
    for p in [&mut alice, &mut dave] {
        p.expect("onHangUp").await;
        p.expect("onRoomParticipantDisconnected").await;
    }
    dave.hang_up(&room).await.unwrap();
    alice.expect("onHangUp").await;
    alice.expect("onRoomParticipantDisconnected").await;
    alice.quiet().await;

    let rec = &records_of(&alice, &RoomId::new(room.clone()).unwrap()).await[0];
    assert_eq!(rec.group_id, "team");
    assert_eq!(rec.end_reason, EndReason::HungUp);
    let outcome = |u: &str| {
        rec.invitees
            .iter()
            .find(|i| i.user_id == u)
            .unwrap()
            .outcome
    };
    assert_eq!(outcome("bob"), InviteeOutcome::Accepted);
    assert_eq!(outcome("carol"), InviteeOutcome::Rejected);
    assert_eq!(
        rec.participant_user_id_list,
        vec![uid("alice"), uid("bob"), uid("dave")],
        "everyone who was in the call, in joining order"
    );
    assert_eq!(
        records_of(&dave, &rec.room_id).await[0],
        *rec,
        "a member who joined uninvited has the call too"
    );
}

#[tokio::test]
async fn a_group_call_that_drops_below_two_cancels_who_still_rings() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
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
    alice.hang_up(&room).await.unwrap();
    bob.expect("onHangUp").await;
    bob.expect("onRoomParticipantDisconnected").await;
    carol.expect("onInvitationCancelled").await;
    let rec = &s.history("carol")[0];
    assert_eq!(
        rec.invitees
            .iter()
            .find(|i| i.user_id == "carol")
            .unwrap()
            .outcome,
        InviteeOutcome::Cancelled
    );
}

#[tokio::test]
async fn participants_can_ring_more_members_mid_call() {
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let mut carol = s.peer("carol", "c1").await;
    let room = alice
        .invite_group("team", &["bob"])
        .await
        .unwrap()
        .room_id
        .to_string();
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(&room).await.unwrap();
    alice.expect("onInviteeAccepted").await;
    // Bob adds Carol by inviting into the same room.
    let mut params = invite_params(&["carol"], "team", 2);
    params.invitation.room_id = room.clone();
    let r = bob
        .client
        .signaling_invite_in_group(&op("add"), params)
        .await
        .unwrap();
    assert_eq!(r.room_id.as_str(), room);
    let inv = carol.expect_info("onReceiveNewInvitation").await;
    assert_eq!(inv.op_user_id, "bob");
    carol.accept(&room).await.unwrap();
    bob.expect("onInviteeAccepted").await;
    alice.expect("onRoomParticipantConnected").await;
}

#[tokio::test]
async fn group_rules_are_enforced() {
    let s = TestServer::start().await;
    let erin = s.peer("erin", "e1").await; // not a member of team
    let alice = s.peer("alice", "a1").await;
    assert_eq!(code(erin.invite_group("team", &["bob"]).await), 1002);
    assert_eq!(code(alice.invite_group("team", &["erin"]).await), 1002);
    assert_eq!(
        code(alice.invite_group("nosuchgroup", &["bob"]).await),
        1004
    );
    assert_eq!(code(alice.invite_group("", &["bob"]).await), 1001);
    let room = alice.invite_group("team", &["bob"]).await.unwrap().room_id;
    // A group already in a call: a second call in it is refused, pointing to the first.
    let bob = s.peer("bob", "b1").await;
    assert_eq!(code(bob.invite_group("team", &["carol"]).await), 1606);
    // Erin cannot join the team's call by room id.
    let r = erin
        .client
        .signaling_get_token_by_room_id(&op("t"), RoomParams { room_id: room })
        .await;
    assert_eq!(code(r), 1002);
}
