//! Calls that involve more than two people: a busy far end, and a group call where one
//! member accepts and another declines.

use crate::harness::{self, with_password, within};

#[test]
fn busy_far_end_is_said_plainly() {
    harness::run_with("busy", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        let carol = s.server.peer("carol", "carol-sdk").await;
        // bob is in a call with carol.
        let room = carol.invite("bob").await.expect("carol calls").room_id;
        within(bob.expect("onReceiveNewInvitation")).await;
        bob.accept(room.as_str()).await.expect("bob accepts carol");
        s.sign_in("alice").await;

        s.app.click("call-audio-bob").await;
        s.app.wait_state("contacts").await;
        s.app
            .wait_attr("call-ended-reason", "data-kind", "busy")
            .await;
        let reason = s.app.text_of("call-ended-reason").await;
        assert_eq!(reason, "bob is busy on another call.");
    });
}

#[test]
fn group_call_with_one_accept_and_one_reject() {
    harness::run_with("group", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        let mut carol = s.server.peer("carol", "carol-sdk").await;
        s.sign_in("alice").await;

        s.app.click("group-call-team").await;
        s.app.wait_state("group-pick").await;
        s.app.click("pick-dave").await; // ring bob and carol only
        s.app.screenshot("group-pick").await;
        s.app.click("group-pick-audio").await;
        s.app.wait_state("outgoing").await;

        let inv = within(carol.expect_info("onReceiveNewInvitation")).await;
        assert_eq!(inv.invitation.group_id, "team");
        let room = inv.invitation.room_id.clone();
        within(bob.expect_info("onReceiveNewInvitation")).await;
        // As a person would: the window says it rings (it has the room) before anyone answers.
        s.app
            .wait_attr("outgoing-status", "data-state", "ringing")
            .await;

        carol.reject(&room).await.expect("carol declines");
        s.app
            .wait_text("outgoing-status", |t| t.contains("carol declined"))
            .await;
        bob.accept(&room).await.expect("bob accepts");
        s.app.wait_state("in-call").await;
        s.app.wait_testid("participant-bob").await;
        s.app.screenshot("group-in-call").await;

        s.app.click("hangup").await;
        within(bob.expect("onHangUp")).await;
        s.app.wait_state("contacts").await;
    });
}

#[test]
fn group_invitation_names_the_group_and_can_be_joined() {
    harness::run_with("group-incoming", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        bob.invite_group("team", &["alice", "carol"])
            .await
            .expect("bob calls the team");
        s.app.wait_state("incoming").await;
        assert_eq!(s.app.text_of("incoming-caller").await, "bob");
        let group = s.app.text_of("incoming-group").await;
        assert!(group.contains("Team"), "group shown as {group:?}");
        s.app.screenshot("group-incoming").await;

        s.app.click("incoming-accept").await;
        within(bob.expect("onInviteeAccepted")).await;
        s.app.wait_state("in-call").await;
        s.app.wait_testid("participant-bob").await;
    });
}
