//! Every transition of the call model, the races among them, and reconnects.

use serde_json::{json, Value};
use tincan_protocol::{AcceptReply, ErrCode, Event, Invitation, InviteReply, LoginReply, UserId};

use super::*;

const R1: &str = "11111111111111111111111111111111";
const R2: &str = "22222222222222222222222222222222";

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn invitation(room: &str, inviter: &str, invitees: &[&str], group: &str) -> Value {
    json!({"inviterUserID": inviter, "inviteeUserIDList": invitees, "groupID": group,
           "roomID": room, "timeout": 30, "mediaType": "video",
           "sessionType": if group.is_empty() { 1 } else { 2 }, "platformID": 7})
}

/// A SignalingInfo event `name` for `room`, operator `op`.
fn event(name: &str, room: &str, inviter: &str, invitees: &[&str], group: &str, op: &str) -> Event {
    let data = json!({"invitation": invitation(room, inviter, invitees, group),
        "opUserID": op, "userID": op, "opUserPlatformID": 7, "eventTime": 1});
    Event::from_parts(name, &data.to_string()).unwrap()
}

/// A one-to-one event between alice (caller) and bob.
fn one(name: &str, room: &str, op: &str) -> Event {
    event(name, room, "alice", &["bob"], "", op)
}

fn participants(name: &str, room: &str, op: &str, list: &[&str]) -> Event {
    let data = json!({"invitation": invitation(room, "alice", &["bob", "carol"], "team"),
        "groupID": "team",
        "participant": list.iter().map(|u| json!({"userInfo": {"userID": u, "nickname": u}})).collect::<Vec<_>>(),
        "opUserID": op, "userID": op, "eventTime": 1});
    Event::from_parts(name, &data.to_string()).unwrap()
}

fn login(me: &str, current: Option<(&str, &[&str])>) -> LoginReply {
    let current = current.map(|(room, people)| {
        json!({"invitation": invitation(room, "alice", &["bob"], ""), "roomID": room,
               "token": "t", "liveURL": "ws://x/ws", "iceServers": [],
               "participant": people.iter().map(|u| json!({"userInfo": {"userID": u, "nickname": u}})).collect::<Vec<_>>()})
    });
    serde_json::from_value(json!({"userID": me, "deviceID": "d1", "protocolVersion": 1,
        "serverTime": 5, "currentCall": current, "pendingInvitations": []}))
    .unwrap()
}

fn sent(invitees: &[&str], group: &str) -> Invitation {
    serde_json::from_value(invitation("", "", invitees, group)).unwrap()
}

fn invite_reply(room: &str, busy: &[&str]) -> InviteReply {
    serde_json::from_value(json!({"roomID": room, "token": "t", "liveURL": "ws://x/ws",
        "busyLineUserIDList": busy, "iceServers": []}))
    .unwrap()
}

fn accept_reply(room: &str) -> AcceptReply {
    serde_json::from_value(
        json!({"roomID": room, "token": "t", "liveURL": "ws://x/ws", "iceServers": []}),
    )
    .unwrap()
}

fn model(me: &str) -> CallModel {
    CallModel::new(uid(me), &login(me, None))
}

/// The phases of the snapshots `changes` emitted.
fn phases(changes: Vec<CallState>) -> Vec<CallPhase> {
    changes.into_iter().map(|s| s.phase).collect()
}

fn ended(m: &CallModel) -> (EndReason, Option<String>) {
    assert_eq!(m.state().phase, CallPhase::Ended, "{:?}", m.state());
    let end = m.state().end.clone().unwrap();
    (end.reason, end.by.map(|u| u.to_string()))
}

/// Alice calls bob: connecting, then ringing out.
fn alice_calls_bob() -> CallModel {
    let mut m = model("alice");
    assert_eq!(
        phases(m.on_request(&CallRequest::Invite)),
        [CallPhase::Connecting]
    );
    let changes = m.on_invite_reply(&sent(&["bob"], ""), Ok(&invite_reply(R1, &[])));
    assert_eq!(phases(changes), [CallPhase::RingingOut]);
    assert_eq!(m.state().ringing, [uid("bob")]);
    assert_eq!(m.state().direction, Some(Direction::Outgoing));
    assert_eq!(m.state().room_id, R1);
    m
}

/// Bob's phone rings for alice's call.
fn bob_rung() -> CallModel {
    let mut m = model("bob");
    let changes = m.on_event(&one("onReceiveNewInvitation", R1, "alice"));
    assert_eq!(phases(changes), [CallPhase::RingingIn]);
    assert_eq!(m.state().direction, Some(Direction::Incoming));
    m
}

#[test]
fn a_new_client_is_idle_and_one_resuming_a_call_is_in_it() {
    assert_eq!(model("alice").state().phase, CallPhase::Idle);
    let m = CallModel::new(uid("bob"), &login("bob", Some((R1, &["alice", "bob"]))));
    assert_eq!(m.state().phase, CallPhase::InCall);
    assert_eq!(m.state().peers, [uid("alice")]);
    assert_eq!(m.state().direction, Some(Direction::Incoming));
}

#[test]
fn outgoing_answered_then_the_far_end_hangs_up() {
    let mut m = alice_calls_bob();
    assert_eq!(
        phases(m.on_event(&one("onInviteeAccepted", R1, "bob"))),
        [CallPhase::InCall]
    );
    assert_eq!(m.state().peers, [uid("bob")]);
    assert!(m.state().ringing.is_empty());
    assert_eq!(
        phases(m.on_event(&one("onHangUp", R1, "bob"))),
        [CallPhase::Ended]
    );
    assert_eq!(ended(&m), (EndReason::RemoteHungUp, Some("bob".into())));
}

#[test]
fn outgoing_declined_unanswered_cancelled_refused_or_everyone_busy() {
    let mut m = alice_calls_bob();
    m.on_event(&one("onInviteeRejected", R1, "bob"));
    assert_eq!(ended(&m), (EndReason::RemoteDeclined, Some("bob".into())));

    let mut m = alice_calls_bob();
    m.on_event(&one("onInvitationTimeout", R1, "bob"));
    assert_eq!(ended(&m).0, EndReason::NoAnswer);

    let mut m = alice_calls_bob();
    assert_eq!(
        phases(m.on_request(&CallRequest::Cancel(R1.into()))),
        [CallPhase::Ended]
    );
    assert_eq!(ended(&m), (EndReason::Cancelled, Some("alice".into())));
    // The server's answer and late events change nothing.
    assert!(m
        .on_event(&one("onInvitationTimeout", R1, "bob"))
        .is_empty());

    let mut m = model("alice");
    m.on_request(&CallRequest::Invite);
    m.on_invite_reply(
        &sent(&["bob"], ""),
        Err((ErrCode::Busy, "you are already in a call")),
    );
    assert_eq!(ended(&m).0, EndReason::Refused);
    let error = m.state().end.clone().unwrap().error.unwrap();
    assert_eq!(
        (error.err_code, error.err_msg.as_str()),
        (1603, "you are already in a call")
    );

    let mut m = model("alice");
    m.on_request(&CallRequest::Invite);
    m.on_invite_reply(&sent(&["bob"], ""), Ok(&invite_reply(R1, &["bob"])));
    assert_eq!(ended(&m).0, EndReason::Busy);
}

#[test]
fn hanging_up_ends_the_call_when_sent_whatever_the_server_says() {
    let mut m = alice_calls_bob();
    m.on_event(&one("onInviteeAccepted", R1, "bob"));
    assert_eq!(
        phases(m.on_request(&CallRequest::HangUp(R1.into()))),
        [CallPhase::Ended]
    );
    assert_eq!(ended(&m), (EndReason::HungUp, Some("alice".into())));
    // Hanging up a call that still rings out is cancelling it.
    let mut m = alice_calls_bob();
    m.on_request(&CallRequest::HangUp(R1.into()));
    assert_eq!(ended(&m).0, EndReason::Cancelled);
    // Requests for another room change nothing.
    let mut m = alice_calls_bob();
    assert!(m.on_request(&CallRequest::HangUp(R2.into())).is_empty());
}

#[test]
fn incoming_accepted_then_we_hang_up() {
    let mut m = bob_rung();
    assert_eq!(
        phases(m.on_request(&CallRequest::Accept(R1.into()))),
        [CallPhase::Connecting]
    );
    assert_eq!(
        phases(m.on_accept_reply(R1, Ok(&accept_reply(R1)))),
        [CallPhase::InCall]
    );
    assert_eq!(m.state().peers, [uid("alice")]);
    m.on_request(&CallRequest::HangUp(R1.into()));
    assert_eq!(ended(&m), (EndReason::HungUp, Some("bob".into())));
}

#[test]
fn incoming_cancelled_missed_declined_or_settled_on_another_device() {
    let mut m = bob_rung();
    m.on_event(&one("onInvitationCancelled", R1, "alice"));
    assert_eq!(
        ended(&m),
        (EndReason::RemoteCancelled, Some("alice".into()))
    );

    let mut m = bob_rung();
    m.on_event(&one("onInvitationTimeout", R1, "bob"));
    assert_eq!(ended(&m).0, EndReason::Missed);

    let mut m = bob_rung();
    m.on_request(&CallRequest::Reject(R1.into()));
    assert_eq!(ended(&m), (EndReason::Declined, Some("bob".into())));

    let mut m = bob_rung();
    m.on_event(&one("onInviteeAcceptedByOtherDevice", R1, "bob"));
    assert_eq!(ended(&m).0, EndReason::AnsweredElsewhere);

    let mut m = bob_rung();
    m.on_event(&one("onInviteeRejectedByOtherDevice", R1, "bob"));
    assert_eq!(ended(&m).0, EndReason::DeclinedElsewhere);
}

#[test]
fn answered_elsewhere_while_we_accept_whichever_arrives_first() {
    // The other device's answer is announced before our accept's reply.
    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    m.on_event(&one("onInviteeAcceptedByOtherDevice", R1, "bob"));
    assert_eq!(ended(&m).0, EndReason::AnsweredElsewhere);
    let late = m.on_accept_reply(R1, Err((ErrCode::AlreadyAnswered, "already accepted")));
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(ended(&m).0, EndReason::AnsweredElsewhere);

    // Our accept's refusal comes first.
    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    m.on_accept_reply(R1, Err((ErrCode::AlreadyAnswered, "already accepted")));
    assert_eq!(ended(&m).0, EndReason::AnsweredElsewhere);
    assert!(m
        .on_event(&one("onInviteeAcceptedByOtherDevice", R1, "bob"))
        .is_empty());
}

#[test]
fn the_caller_gives_up_while_we_accept_whichever_arrives_first() {
    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    m.on_event(&one("onInvitationCancelled", R1, "alice"));
    assert_eq!(
        ended(&m),
        (EndReason::RemoteCancelled, Some("alice".into()))
    );
    assert!(m
        .on_accept_reply(R1, Err((ErrCode::NotRinging, "ended")))
        .is_empty());

    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    m.on_accept_reply(R1, Err((ErrCode::NotRinging, "the call has already ended")));
    assert_eq!(ended(&m).0, EndReason::RemoteCancelled);
    assert_eq!(m.state().end.clone().unwrap().error.unwrap().err_code, 1602);
    assert!(m
        .on_event(&one("onInvitationCancelled", R1, "alice"))
        .is_empty());
}

#[test]
fn an_accept_that_fails_for_a_passing_reason_rings_again() {
    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    assert_eq!(
        phases(m.on_accept_reply(R1, Err((ErrCode::RateLimited, "slow down")))),
        [CallPhase::RingingIn]
    );
    m.on_request(&CallRequest::Accept(R1.into()));
    m.on_accept_reply(R1, Ok(&accept_reply(R1)));
    assert_eq!(m.state().phase, CallPhase::InCall);
}

#[test]
fn calling_back_the_caller_who_rings_us_joins_their_call() {
    let mut m = bob_rung();
    // Bob calls alice back; the server answers alice's invitation (same room).
    assert!(m.on_request(&CallRequest::Invite).is_empty());
    m.on_invite_reply(&sent(&["alice"], ""), Ok(&invite_reply(R1, &[])));
    assert_eq!(m.state().phase, CallPhase::InCall);
    assert_eq!(m.state().peers, [uid("alice")]);
}

#[test]
fn a_second_invitation_waits_and_rings_when_the_first_ends() {
    let mut m = bob_rung();
    let second = event("onReceiveNewInvitation", R2, "carol", &["bob"], "", "carol");
    assert!(
        m.on_event(&second).is_empty(),
        "the first call stays current"
    );
    let changes = m.on_event(&one("onInvitationCancelled", R1, "alice"));
    assert_eq!(phases(changes), [CallPhase::Ended, CallPhase::RingingIn]);
    assert_eq!(m.state().room_id, R2);
    // A waiting invitation that stops ringing meanwhile is forgotten.
    let mut m = bob_rung();
    m.on_event(&second);
    m.on_event(&event(
        "onInvitationCancelled",
        R2,
        "carol",
        &["bob"],
        "",
        "carol",
    ));
    assert_eq!(
        phases(m.on_event(&one("onInvitationCancelled", R1, "alice"))),
        [CallPhase::Ended]
    );
}

#[test]
fn events_of_other_rooms_change_nothing() {
    let mut m = alice_calls_bob();
    for name in [
        "onInviteeAccepted",
        "onInviteeRejected",
        "onHangUp",
        "onInvitationTimeout",
    ] {
        assert!(m.on_event(&one(name, R2, "bob")).is_empty(), "{name}");
    }
    assert_eq!(m.state().phase, CallPhase::RingingOut);
}

#[test]
fn a_group_call_goes_on_until_only_we_are_left() {
    let mut m = model("alice");
    m.on_request(&CallRequest::Invite);
    m.on_invite_reply(&sent(&["bob", "carol"], "team"), Ok(&invite_reply(R1, &[])));
    assert_eq!(m.state().ringing, [uid("bob"), uid("carol")]);
    let group = |name: &str, op: &str| event(name, R1, "alice", &["bob", "carol"], "team", op);
    // One declines: the other still rings.
    m.on_event(&group("onInviteeRejected", "bob"));
    assert_eq!(m.state().phase, CallPhase::RingingOut);
    assert_eq!(m.state().ringing, [uid("carol")]);
    m.on_event(&group("onInviteeAccepted", "carol"));
    m.on_event(&participants(
        "onRoomParticipantConnected",
        R1,
        "carol",
        &["alice", "carol"],
    ));
    assert_eq!(m.state().phase, CallPhase::InCall);
    // Dave joins by room id (no onInviteeAccepted for him).
    m.on_event(&participants(
        "onRoomParticipantConnected",
        R1,
        "dave",
        &["alice", "carol", "dave"],
    ));
    assert_eq!(m.state().peers, [uid("carol"), uid("dave")]);
    // Carol leaves: the call goes on.
    m.on_event(&group("onHangUp", "carol"));
    m.on_event(&participants(
        "onRoomParticipantDisconnected",
        R1,
        "carol",
        &["alice", "dave"],
    ));
    assert_eq!(m.state().phase, CallPhase::InCall);
    assert_eq!(m.state().peers, [uid("dave")]);
    // Dave leaves: only alice is left, the call is over.
    m.on_event(&group("onHangUp", "dave"));
    assert_eq!(
        m.state().phase,
        CallPhase::InCall,
        "onHangUp alone does not end a group call"
    );
    m.on_event(&participants(
        "onRoomParticipantDisconnected",
        R1,
        "dave",
        &["alice"],
    ));
    assert_eq!(ended(&m), (EndReason::RemoteHungUp, Some("dave".into())));
}

#[test]
fn a_group_call_nobody_answers_ends_when_the_last_invitee_stops_ringing() {
    let mut m = model("alice");
    m.on_request(&CallRequest::Invite);
    m.on_invite_reply(
        &sent(&["bob", "carol"], "team"),
        Ok(&invite_reply(R1, &["carol"])),
    );
    assert_eq!(m.state().ringing, [uid("bob")], "busy carol is not rung");
    m.on_event(&event(
        "onInvitationTimeout",
        R1,
        "alice",
        &["bob", "carol"],
        "team",
        "bob",
    ));
    assert_eq!(ended(&m).0, EndReason::NoAnswer);
}

#[test]
fn a_reconnect_without_our_call_ends_it_and_one_with_it_keeps_it() {
    let mut m = alice_calls_bob();
    m.on_event(&one("onInviteeAccepted", R1, "bob"));
    assert!(m
        .on_resync(&login("alice", Some((R1, &["alice", "bob"]))))
        .is_empty());
    assert_eq!(
        phases(m.on_resync(&login("alice", None))),
        [CallPhase::Ended]
    );
    assert_eq!(ended(&m).0, EndReason::ConnectionLost);

    // Ringing out: the call ended while we were away (our grace ran out).
    let mut m = alice_calls_bob();
    m.on_resync(&login("alice", None));
    assert_eq!(ended(&m).0, EndReason::ConnectionLost);

    // Ringing in is settled by the ringing view's catch-up events, not by the resync.
    let mut m = bob_rung();
    assert!(m.on_resync(&login("bob", None)).is_empty());
    // An accept lost with the connection: it rings again.
    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    assert_eq!(
        phases(m.on_resync(&login("bob", None))),
        [CallPhase::RingingIn]
    );
    // One that reached the server: we are in the call.
    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    m.on_resync(&login("bob", Some((R1, &["alice", "bob"]))));
    assert_eq!(m.state().phase, CallPhase::InCall);
    assert_eq!(m.state().peers, [uid("alice")]);
}

#[test]
fn closing_or_being_replaced_ends_a_call_in_progress() {
    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    m.on_accept_reply(R1, Ok(&accept_reply(R1)));
    m.on_event(&Event::from_parts("onKickedOffline", r#"{"reason":"replaced"}"#).unwrap());
    assert_eq!(ended(&m).0, EndReason::SignedInElsewhere);

    let mut m = alice_calls_bob();
    assert_eq!(
        phases(m.on_closed(EndReason::ClientClosed)),
        [CallPhase::Ended]
    );
    let mut idle = model("alice");
    assert!(idle.on_closed(EndReason::ClientClosed).is_empty());
}

#[test]
fn the_next_call_starts_from_an_ended_one() {
    let mut m = bob_rung();
    m.on_event(&one("onInvitationCancelled", R1, "alice"));
    let changes = m.on_event(&one("onReceiveNewInvitation", R2, "alice"));
    assert_eq!(phases(changes), [CallPhase::RingingIn]);
    assert_eq!(m.state().end, None);
    assert!(m.state().peers.is_empty());
}

#[test]
fn the_snapshot_serializes_for_the_page() {
    let mut m = alice_calls_bob();
    m.on_event(&one("onInviteeRejected", R1, "bob"));
    let v = serde_json::to_value(m.state()).unwrap();
    assert_eq!(v["phase"], "ended");
    assert_eq!(v["direction"], "outgoing");
    assert_eq!(v["roomID"], R1);
    assert_eq!(v["end"]["reason"], "remoteDeclined");
    assert_eq!(v["end"]["byUserID"], "bob");
    assert_eq!(v["peerUserIDs"], json!([]));
}

#[test]
fn joining_a_group_call_by_room_id_and_leaving_when_everyone_else_has() {
    let mut m = model("dave");
    assert_eq!(
        phases(m.on_request(&CallRequest::Join(R1.into()))),
        [CallPhase::Connecting]
    );
    assert_eq!(
        phases(m.on_accept_reply(R1, Ok(&accept_reply(R1)))),
        [CallPhase::InCall]
    );
    assert!(
        m.state().peers.is_empty(),
        "a joiner learns of the others as they come and go"
    );
    let group = |name: &str, op: &str| event(name, R1, "alice", &["bob", "carol"], "team", op);
    // Alice leaves: a group call goes on although dave knew of nobody else.
    m.on_event(&group("onHangUp", "alice"));
    assert_eq!(m.state().phase, CallPhase::InCall);
    m.on_event(&participants(
        "onRoomParticipantDisconnected",
        R1,
        "alice",
        &["bob", "dave"],
    ));
    assert_eq!(m.state().peers, [uid("bob")]);
    assert!(m.state().invitation.is_some(), "learnt from the event");
    m.on_event(&participants(
        "onRoomParticipantDisconnected",
        R1,
        "bob",
        &["dave"],
    ));
    assert_eq!(ended(&m), (EndReason::RemoteHungUp, Some("bob".into())));
    // A token for the call we are in is no join.
    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    m.on_accept_reply(R1, Ok(&accept_reply(R1)));
    assert!(m.on_request(&CallRequest::Join(R1.into())).is_empty());
    assert!(m.on_accept_reply(R1, Ok(&accept_reply(R1))).is_empty());
}

#[test]
fn a_refused_join_ends_and_one_while_ringing_answers() {
    let mut m = model("dave");
    m.on_request(&CallRequest::Join(R1.into()));
    m.on_accept_reply(R1, Err((ErrCode::RoomFull, "room is full (2 people)")));
    assert_eq!(ended(&m).0, EndReason::Refused);
    // Even a passing failure ends a join that never rang here: nothing would ring.
    let mut m = model("dave");
    m.on_request(&CallRequest::Join(R1.into()));
    m.on_accept_reply(R1, Err((ErrCode::RateLimited, "slow down")));
    assert_eq!(ended(&m).0, EndReason::Refused);
    // Joining the call that rings here is answering it.
    let mut m = bob_rung();
    m.on_request(&CallRequest::Join(R1.into()));
    m.on_accept_reply(R1, Ok(&accept_reply(R1)));
    assert_eq!(m.state().phase, CallPhase::InCall);
    assert_eq!(m.state().peers, [uid("alice")]);
}

#[test]
fn a_call_a_restarted_server_resumed_stays_in_call_without_a_flicker() {
    // Alice's side: the server went away (restart notice or a dropped link: the model is
    // not told, the call goes on peer to peer), then the login reply still has the call.
    let mut m = alice_calls_bob();
    m.on_event(&one("onInviteeAccepted", R1, "bob"));
    let before = m.state().clone();
    assert!(
        m.on_resync(&login("alice", Some((R1, &["alice", "bob"]))))
            .is_empty(),
        "no snapshot: nothing changed for the screens"
    );
    assert_eq!(*m.state(), before);
    // Bob's side, and after it the call works as before: alice hangs up.
    let mut m = bob_rung();
    m.on_request(&CallRequest::Accept(R1.into()));
    m.on_accept_reply(R1, Ok(&accept_reply(R1)));
    assert_eq!(m.state().phase, CallPhase::InCall);
    assert!(m
        .on_resync(&login("bob", Some((R1, &["alice", "bob"]))))
        .is_empty());
    assert_eq!(
        phases(m.on_event(&one("onHangUp", R1, "alice"))),
        [CallPhase::Ended]
    );
    assert_eq!(
        ended(&m),
        (EndReason::RemoteHungUp, Some("alice".to_owned()))
    );
}
