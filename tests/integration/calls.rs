//! One-to-one calls: accept and hang up, reject, cancel, busy, glare, custom signals,
//! media relay, and the records each leaves.

use tincan_protocol::{EndReason, InviteeOutcome, MediaSignalParams, RoomId, UserId};
use tincan_tests::*;

#[tokio::test]
async fn invite_accept_hang_up_tells_each_side_and_records_the_call() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let bob = s.peer("bob", "b1").await;
    accept_and_hang_up([alice, bob]).await;
}

/// The test above's flow, with alice and bob signed in wherever the caller put them
/// (cluster.rs runs it with each on another node).
pub(crate) async fn accept_and_hang_up([mut alice, mut bob]: [Peer; 2]) {
    let reply = alice.invite("bob").await.unwrap();
    assert!(!reply.room_id.as_str().is_empty());
    assert!(!reply.token.is_empty());
    assert!(reply.live_url.ends_with("/ws"), "{}", reply.live_url);
    assert!(reply.busy_line_user_id_list.is_empty());
    let room = reply.room_id.to_string();

    let inv = bob.expect_info("onReceiveNewInvitation").await;
    assert_eq!(inv.invitation.room_id, room);
    assert_eq!(inv.invitation.inviter_user_id, "alice");
    assert_eq!(inv.op_user_id, "alice");
    assert_eq!(inv.user_id, "alice");
    assert_eq!(inv.invitation.platform_id, 7);
    assert!(inv.invitation.initiate_time.is_some());

    let acc = bob.accept(&room).await.unwrap();
    assert_eq!(acc.room_id.as_str(), room);
    let accepted = alice.expect_info("onInviteeAccepted").await;
    assert_eq!(accepted.op_user_id, "bob");
    assert_eq!(accepted.op_user_platform_id, 7);

    bob.hang_up(&room).await.unwrap();
    let hung = alice.expect_info("onHangUp").await;
    assert_eq!(hung.op_user_id, "bob");
    alice.quiet().await;
    bob.quiet().await;
    assert_eq!(code(alice.hang_up(&room).await), 1602, "the call is over");

    let rec = &records_of(&alice, &room_id(&room)).await[0];
    assert_eq!(rec.room_id.as_str(), room);
    assert_eq!(rec.end_reason, EndReason::HungUp);
    assert_eq!(rec.invitees[0].outcome, InviteeOutcome::Accepted);
    assert!(rec.answer_time.is_some());
    assert!(rec.end_time >= rec.answer_time.unwrap());
    assert_eq!(records_of(&bob, &room_id(&room)).await[0], *rec);
    // The same record through the API.
    let h = bob
        .client
        .get_call_history(&op("history"), tincan_protocol::HistoryParams::default())
        .await
        .unwrap();
    assert_eq!(h.records, vec![rec.clone()]);
    assert_eq!(rec.participant_user_id_list, vec![uid("alice"), uid("bob")]);
}

#[tokio::test]
async fn reject_ends_a_one_to_one_call() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let bob = s.peer("bob", "b1").await;
    rejected([alice, bob]).await;
}

/// The test above's flow, with alice and bob signed in wherever the caller put them
/// (cluster.rs runs it with each on another node).
pub(crate) async fn rejected([mut alice, mut bob]: [Peer; 2]) {
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    bob.reject(&room).await.unwrap();
    let r = alice.expect_info("onInviteeRejected").await;
    assert_eq!(r.op_user_id, "bob");
    assert_eq!(code(bob.accept(&room).await), 1602);
    let rec = &records_of(&alice, &room_id(&room)).await[0];
    assert_eq!(rec.end_reason, EndReason::Rejected);
    assert_eq!(rec.invitees[0].outcome, InviteeOutcome::Rejected);
    assert_eq!(rec.answer_time, None);
}

#[tokio::test]
async fn cancel_stops_the_ringing_and_refuses_a_late_accept() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let bob = s.peer("bob", "b1").await;
    cancelled([alice, bob]).await;
}

/// The test above's flow, with alice and bob signed in wherever the caller put them
/// (cluster.rs runs it with each on another node).
pub(crate) async fn cancelled([alice, mut bob]: [Peer; 2]) {
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    alice.cancel(&room).await.unwrap();
    let c = bob.expect_info("onInvitationCancelled").await;
    assert_eq!(c.op_user_id, "alice");
    assert_eq!(code(bob.accept(&room).await), 1602);
    assert_eq!(code(alice.cancel(&room).await), 1602);
    let rec = &records_of(&bob, &room_id(&room)).await[0];
    assert_eq!(rec.end_reason, EndReason::Cancelled);
    assert_eq!(rec.invitees[0].outcome, InviteeOutcome::Cancelled);
}

#[tokio::test]
async fn busy_invitee_is_returned_and_not_rung() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let carol = s.peer("carol", "c1").await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(&room).await.unwrap();

    let r = carol.invite("bob").await.unwrap();
    assert_eq!(r.busy_line_user_id_list, vec![uid("bob")]);
    bob.quiet().await;
    // Alice is in a call too: she may not start another.
    assert_eq!(code(alice.invite("carol").await), 1603);
    let rec = &s.history("carol")[0];
    assert_eq!(rec.end_reason, EndReason::Busy);
    assert_eq!(rec.invitees[0].outcome, InviteeOutcome::Busy);
}

#[tokio::test]
async fn crossing_invitations_become_one_call_and_nobody_is_left_ringing() {
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let room = alice.invite("bob").await.unwrap().room_id;
    bob.expect("onReceiveNewInvitation").await;
    // Bob calls Alice back before answering: the two calls merge into Alice's.
    let r = bob.invite("alice").await.unwrap();
    assert_eq!(r.room_id, room);
    assert!(!r.token.is_empty());
    let a = alice.expect_info("onInviteeAccepted").await;
    assert_eq!(a.op_user_id, "bob");
    alice.quiet().await;
    bob.quiet().await;
    bob.hang_up(room.as_str()).await.unwrap();
    alice.expect("onHangUp").await;
    assert_eq!(s.history("bob").len(), 1, "one call, one record");
}

#[tokio::test]
async fn custom_signal_reaches_the_other_participants_only() {
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let mut carol = s.peer("carol", "c1").await;
    let room = alice.invite("bob").await.unwrap().room_id;
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(room.as_str()).await.unwrap();
    alice.expect("onInviteeAccepted").await;

    let p = tincan_protocol::CustomSignalParams {
        room_id: room.clone(),
        custom_info: "{\"raiseHand\":true}".into(),
    };
    alice
        .client
        .signaling_send_custom_signal(&op("custom"), p.clone())
        .await
        .unwrap();
    let got = bob.expect("onReceiveCustomSignal").await;
    assert_eq!(got["customInfo"], "{\"raiseHand\":true}");
    assert_eq!(got["opUserID"], "alice");
    alice.quiet().await;
    // Carol is not in the call.
    assert_eq!(
        code(carol.client.signaling_send_custom_signal(&op("c"), p).await),
        1002
    );
    carol.quiet().await;
    bob.hang_up(room.as_str()).await.unwrap();
    assert!(
        s.history("carol").is_empty(),
        "carol was never part of the call"
    );
    assert_eq!(
        s.history("alice")[0].end_reason,
        tincan_protocol::EndReason::HungUp
    );
}

/// Signals sent without waiting (`noReplyOnSuccess`) arrive in order, and only a failure
/// comes back: as an event with the signal's operation id.
#[tokio::test]
async fn signals_sent_unanswered_arrive_in_order_and_only_failures_come_back() {
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let room = answered_call(&mut alice, &mut bob).await;
    // Within the per-connection rate limit's burst (a refused one would come back).
    const SIGNALS: usize = 10;
    for i in 0..SIGNALS {
        let p = tincan_protocol::CustomSignalParams {
            room_id: room.clone(),
            custom_info: format!("cursor {i}").into(),
        };
        alice
            .client
            .signaling_send_custom_signal_unanswered(&op(&format!("cursor-{i}")), p)
            .await
            .unwrap();
    }
    for i in 0..SIGNALS {
        let got = bob.expect("onReceiveCustomSignal").await;
        assert_eq!(got["customInfo"], format!("cursor {i}"));
    }
    // A signal for a room that does not exist fails at the server.
    let elsewhere = tincan_protocol::CustomSignalParams {
        room_id: RoomId::new("no-such-room").unwrap(),
        custom_info: "lost".into(),
    };
    alice
        .client
        .signaling_send_custom_signal_unanswered("op-elsewhere", elsewhere)
        .await
        .unwrap();
    // A ping's answer comes after every answer to what was sent before it.
    alice.client.ping(&op("after")).await.unwrap();
    let mut failed = Vec::new();
    while let Ok(e) = alice.events.try_recv() {
        match e {
            tincan_sdk::SdkEvent::SignalFailed {
                operation_id,
                error,
            } => failed.push((operation_id, error.code)),
            tincan_sdk::SdkEvent::Signaling(e) => panic!("unexpected {e:?}"),
            _ => {}
        }
    }
    assert_eq!(
        failed,
        [(
            "op-elsewhere".to_owned(),
            tincan_protocol::ErrCode::NotFound
        )],
        "only the failure came back"
    );
    bob.quiet().await;
}

#[tokio::test]
async fn media_negotiation_is_relayed_between_participants_only() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let mut carol = s.peer("carol", "c1").await;
    let invite = alice.invite("bob").await.unwrap();
    let room = invite.room_id.clone();
    bob.expect("onReceiveNewInvitation").await;
    let bob_token = bob.accept(room.as_str()).await.unwrap().token;

    let offer = |token: &str, to: &str| MediaSignalParams {
        room_id: room.clone(),
        token: token.into(),
        to_user_id: UserId::new(to).unwrap(),
        payload: serde_json::value::RawValue::from_string(r#"{"type":"offer","sdp":"v=0"}"#.into())
            .unwrap(),
    };
    alice
        .client
        .signaling_send_media_signal(&op("offer"), offer(&invite.token, "bob"))
        .await
        .unwrap();
    let got = bob.expect("onReceiveMediaSignal").await;
    assert_eq!(got["fromUserID"], "alice");
    assert_eq!(got["payload"]["type"], "offer");
    bob.client
        .signaling_send_media_signal(&op("answer"), offer(&bob_token, "alice"))
        .await
        .unwrap();

    // Carol has no token for the room, and a participant's token does not make her one.
    assert_eq!(
        code(
            carol
                .client
                .signaling_send_media_signal(&op("x"), offer(&invite.token, "bob"))
                .await
        ),
        1604
    );
    assert_eq!(
        code(
            carol
                .client
                .signaling_send_media_signal(&op("x"), offer("forged.token", "bob"))
                .await
        ),
        1604
    );
    // A participant cannot address someone outside the room.
    assert_eq!(
        code(
            alice
                .client
                .signaling_send_media_signal(&op("x"), offer(&invite.token, "carol"))
                .await
        ),
        1004
    );
    carol.quiet().await;
    bob.quiet().await;
}

#[tokio::test]
async fn the_seeds_bare_options_object_rings_like_the_wrapped_invitation() {
    // The seed's `openIM.signalingInvite(operationID, options)` passes the RtcInvite
    // itself; a client that forwards it as `data` is understood, for one-to-one and group.
    let s = TestServer::start().await;
    let mut bob = s.peer("bob", "b1").await;
    let mut carol = s.peer("carol", "c1").await;
    let mut raw = RawClient::connect(&s, Some(("alice", "a1"))).await;
    let r = raw
        .request(serde_json::json!({"requestID": 1, "operationID": "op-bare", "method": "signalingInvite",
            "data": {"inviterUserID": "alice", "inviteeUserIDList": ["bob"], "groupID": "",
                     "roomID": "", "timeout": 30, "mediaType": "audio", "sessionType": 1,
                     "platformID": 5}}))
        .await;
    assert_eq!(r["errCode"], 0, "{r}");
    let inv = bob.expect_info("onReceiveNewInvitation").await;
    assert_eq!(
        inv.invitation.room_id,
        r["data"]["roomID"].as_str().unwrap()
    );
    assert_eq!(inv.invitation.media_type, tincan_protocol::MediaType::Audio);
    assert_eq!(inv.invitation.timeout, 30);
    let room = inv.invitation.room_id.clone();
    let r = raw
        .request(
            serde_json::json!({"requestID": 2, "method": "signalingCancel",
            "data": {"invitation": {"roomID": room}}}),
        )
        .await;
    assert_eq!(r["errCode"], 0, "{r}");
    bob.expect("onInvitationCancelled").await;

    let r = raw
        .request(
            serde_json::json!({"requestID": 3, "method": "signalingInviteInGroup",
            "data": {"inviterUserID": "alice", "inviteeUserIDList": ["carol"], "groupID": "team",
                     "roomID": "", "timeout": 30, "mediaType": "video", "sessionType": 2,
                     "platformID": 5}}),
        )
        .await;
    assert_eq!(r["errCode"], 0, "{r}");
    let inv = carol.expect_info("onReceiveNewInvitation").await;
    assert_eq!(inv.invitation.group_id, "team");
}

/// The call-state snapshots `peer` got since last asked (after a ping, so everything the
/// server sent before is on the channel); other events are dropped.
async fn call_phases(peer: &mut Peer) -> Vec<String> {
    peer.client.ping(&op("phases")).await.expect("ping");
    let mut out = Vec::new();
    while let Ok(e) = peer.events.try_recv() {
        if let tincan_sdk::SdkEvent::CallStateChanged(s) = e {
            let mut label = serde_json::to_value(s.phase)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            if let Some(end) = &s.end {
                label = format!(
                    "{label}:{}",
                    serde_json::to_value(end.reason).unwrap().as_str().unwrap()
                );
            }
            out.push(label);
        }
    }
    out
}

#[tokio::test]
async fn the_call_state_follows_a_call_on_both_sides_and_on_the_other_device() {
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let mut bob2 = s.peer("bob", "b2").await;

    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    assert_eq!(call_phases(&mut alice).await, ["connecting", "ringingOut"]);
    bob.expect("onReceiveNewInvitation").await;
    bob2.expect("onReceiveNewInvitation").await;
    for b in [&mut bob, &mut bob2] {
        assert_eq!(b.client.call_state().room_id, room);
        assert_eq!(call_phases(b).await, ["ringingIn"]);
    }

    bob.accept(&room).await.unwrap();
    assert_eq!(call_phases(&mut bob).await, ["connecting", "inCall"]);
    bob2.expect("onInviteeAcceptedByOtherDevice").await;
    assert_eq!(call_phases(&mut bob2).await, ["ended:answeredElsewhere"]);
    alice.expect("onInviteeAccepted").await;
    assert_eq!(call_phases(&mut alice).await, ["inCall"]);
    assert_eq!(alice.client.call_state().peers, [uid("bob")]);

    alice.hang_up(&room).await.unwrap();
    assert_eq!(call_phases(&mut alice).await, ["ended:hungUp"]);
    bob.expect("onHangUp").await;
    assert_eq!(call_phases(&mut bob).await, ["ended:remoteHungUp"]);
    assert_eq!(bob.client.call_state().end.unwrap().by, Some(uid("alice")));
}

#[tokio::test]
async fn an_accept_that_loses_the_race_to_another_device_ends_the_call_here() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let mut bob2 = s.peer("bob", "b2").await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    bob2.expect("onReceiveNewInvitation").await;
    bob.accept(&room).await.unwrap();
    // b2's accept was sent after b1's: refused, and the call is over on b2 whichever of
    // the refusal and onInviteeAcceptedByOtherDevice it saw first.
    assert_eq!(code(bob2.accept(&room).await), 1601);
    let state = bob2.client.call_state();
    assert_eq!(state.phase, tincan_sdk::CallPhase::Ended);
    assert_eq!(
        state.end.unwrap().reason,
        tincan_sdk::EndReason::AnsweredElsewhere
    );
}

fn room_id(room: &str) -> RoomId {
    RoomId::new(room).unwrap()
}
