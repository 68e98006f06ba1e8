//! Calls across a server restart (`saved.rs`): what a stopping hub keeps, and how a new
//! hub takes it back.

use tincan_protocol::{EndReason, InviteeOutcome};

use super::*;
use crate::hub::{NotResumed, SavedCall, SAVED_CALL_VERSION};

/// Alice calls bob, bob answers; returns the room.
fn answered_call(h: &mut H) -> String {
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    let room = h.invite(1, "bob");
    assert_eq!(h.req(2, "signalingAccept", action(&room))["errCode"], 0);
    h.events(1);
    h.events(2);
    room
}

/// The state the last open record update carried.
fn last_saved(h: &mut H) -> SavedCall {
    let updates = h.hub.take_records();
    let last = updates.last().expect("a record update");
    assert!(last.open, "{last:?}");
    *last
        .saved
        .clone()
        .expect("open updates carry the saved call")
}

#[test]
fn a_clean_stop_keeps_an_answered_call_and_a_new_hub_resumes_it_for_both_devices() {
    let mut h = H::new();
    let room = answered_call(&mut h);
    h.hub.take_records();
    h.hub.handle(h.now, Input::Shutdown);
    h.collect();
    assert_eq!(h.hub.call_count(), 1, "the answered call is not ended");
    let saved = last_saved(&mut h);
    assert_eq!(saved.room.as_str(), room);
    assert!(saved.was_connected);
    assert_eq!(saved.participants.len(), 2);
    let answered_at = saved.answer_time.expect("answered");

    // A new hub (the restarted server), a minute later.
    let mut h2 = H::new();
    h2.now.wall_ms = h.now.wall_ms + 60_000;
    let number = h2.hub.restore(h2.now, saved).expect("resumed");
    h2.hub.check_invariants().unwrap();
    let reopened = h2.hub.take_records();
    assert_eq!(reopened.len(), 1, "{reopened:?}");
    assert!(reopened[0].open && reopened[0].call == number);
    for (conn, user, device) in [(11, "alice", "a1"), (12, "bob", "b1")] {
        let r = h2.login(conn, user, device);
        assert_eq!(r["data"]["currentCall"]["roomID"], room.as_str(), "{r}");
        assert!(r["data"]["currentCall"]["token"].as_str().unwrap().len() > 10);
    }
    h2.hub.check_invariants().unwrap();
    // Signaling in the room works again, and hanging up tells the other side.
    let r = h2.req(
        11,
        "signalingSendCustomSignal",
        json!({"roomID": room, "customInfo": "hello again"}),
    );
    assert_eq!(r["errCode"], 0, "{r}");
    assert_eq!(h2.events(12), ["onReceiveCustomSignal"]);
    assert_eq!(h2.req(11, "signalingHungUp", action(&room))["errCode"], 0);
    assert_eq!(h2.events(12), ["onHangUp"]);
    let ended = h2.hub.take_records();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(!ended[0].open);
    assert_eq!(ended[0].call, number, "the same record, written once");
    assert_eq!(ended[0].record.end_reason, EndReason::HungUp);
    assert_eq!(
        ended[0].record.answer_time,
        Some(answered_at),
        "the duration counts from the answer before the restart"
    );
}

#[test]
fn a_resumed_call_nobody_comes_back_to_ends_after_the_grace_as_a_restart() {
    let mut h = H::new();
    answered_call(&mut h);
    h.hub.handle(h.now, Input::Shutdown);
    let saved = last_saved(&mut h);
    let mut h2 = H::new();
    let grace = HubConfig::default().participant_grace;
    h2.hub.restore(h2.now, saved).expect("resumed");
    h2.hub.take_records();
    h2.advance(grace - Duration::from_millis(1));
    assert_eq!(h2.hub.call_count(), 1, "still waiting within the grace");
    h2.advance(Duration::from_millis(1));
    assert_eq!(h2.hub.call_count(), 0);
    h2.hub.check_invariants().unwrap();
    let ended = h2.hub.take_records();
    let last = ended.last().expect("the call's last record");
    assert!(!last.open);
    assert_eq!(last.record.end_reason, EndReason::ServerRestart);
}

#[test]
fn one_side_back_hears_the_other_hang_up_when_its_grace_runs_out() {
    let mut h = H::new();
    let room = answered_call(&mut h);
    h.hub.handle(h.now, Input::Shutdown);
    let saved = last_saved(&mut h);
    let mut h2 = H::new();
    h2.hub.restore(h2.now, saved).expect("resumed");
    let r = h2.login(12, "bob", "b1");
    assert_eq!(r["data"]["currentCall"]["roomID"], room.as_str());
    h2.advance(HubConfig::default().participant_grace);
    assert_eq!(h2.events(12), ["onHangUp"]);
    let ended = h2.hub.take_records();
    assert_eq!(
        ended.last().unwrap().record.end_reason,
        EndReason::Disconnected
    );
}

#[test]
fn a_clean_stop_cancels_ringing_invitations_and_ends_unanswered_calls() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    let rung = h.invite(1, "bob");
    h.events(2);
    h.hub.handle(h.now, Input::Shutdown);
    h.collect();
    assert_eq!(h.events(2), ["onInvitationCancelled"], "nobody rings on");
    assert_eq!(h.hub.call_count(), 0);
    let updates = h.hub.take_records();
    let last = updates.last().unwrap();
    assert_eq!(last.record.room_id.as_str(), rung);
    assert!(!last.open);
    assert_eq!(last.record.end_reason, EndReason::ServerShutdown);
    assert_eq!(last.record.invitees[0].outcome, InviteeOutcome::Cancelled);
}

#[test]
fn a_group_call_in_progress_is_kept_but_its_ringing_invitee_is_told_it_is_over() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    h.login(3, "carol", "c1");
    let r = h.req(
        1,
        "signalingInviteInGroup",
        json!({"invitation": {"inviteeUserIDList": ["bob", "carol"], "groupID": "team", "sessionType": 2}}),
    );
    let room = r["data"]["roomID"].as_str().unwrap().to_owned();
    assert_eq!(h.req(2, "signalingAccept", action(&room))["errCode"], 0);
    h.events(3);
    h.hub.handle(h.now, Input::Shutdown);
    h.collect();
    assert_eq!(h.events(3), ["onInvitationCancelled"]);
    assert_eq!(h.hub.call_count(), 1);
    let saved = last_saved(&mut h);
    let mut h2 = H::new();
    h2.hub.restore(h2.now, saved).expect("resumed");
    let r = h2.login(13, "carol", "c1");
    assert_eq!(
        r["data"]["pendingInvitations"],
        json!([]),
        "a dead invitation never rings again: {r}"
    );
    let r = h2.login(11, "alice", "a1");
    assert_eq!(r["data"]["currentCall"]["roomID"], room.as_str());
    h2.hub.check_invariants().unwrap();
    let r = h2.req(11, "signalingGetRoomByGroupID", json!({"groupID": "team"}));
    assert_eq!(
        r["data"]["roomID"],
        room.as_str(),
        "the group's call is back: {r}"
    );
}

#[test]
fn saved_calls_that_cannot_resume_say_why() {
    let mut h = H::new();
    h.login(1, "alice", "a1");
    h.login(2, "bob", "b1");
    h.invite(1, "bob");
    let ringing = last_saved(&mut h);
    let mut h2 = H::new();
    assert_eq!(
        h2.hub.restore(h2.now, ringing.clone()),
        Err(NotResumed::Unanswered)
    );
    let mut other = ringing;
    other.version = SAVED_CALL_VERSION + 1;
    other.was_connected = true;
    assert_eq!(h2.hub.restore(h2.now, other), Err(NotResumed::Version));
    assert_eq!(h2.hub.call_count(), 0);
    assert!(h2.hub.take_records().is_empty());
    // The same call twice (say, a room id reused): the people are busy the second time.
    let mut h = H::new();
    answered_call(&mut h);
    h.hub.handle(h.now, Input::Shutdown);
    let saved = last_saved(&mut h);
    h2.hub.restore(h2.now, saved.clone()).expect("resumed");
    assert_eq!(
        h2.hub.restore(h2.now, saved.clone()),
        Err(NotResumed::Participants)
    );
    // Other people in a room id already taken.
    let mut other = saved;
    for p in &mut other.participants {
        p.user = uid(if p.user == uid("alice") {
            "carol"
        } else {
            "dave"
        });
    }
    assert_eq!(h2.hub.restore(h2.now, other), Err(NotResumed::RoomTaken));
    assert_eq!(h2.hub.call_count(), 1);
    h2.hub.check_invariants().unwrap();
}
