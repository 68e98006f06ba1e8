//! Calls between the window and a headless SDK client (the far end).

use crate::harness::{self, with_password, within};

#[test]
fn outgoing_call_accepted_then_hung_up_by_the_far_end() {
    harness::run_with("outgoing", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        s.app.click("call-audio-bob").await;
        s.app.wait_state("outgoing").await;
        assert_eq!(s.app.text_of("outgoing-callee").await, "bob");
        let inv = within(bob.expect_info("onReceiveNewInvitation")).await;
        assert_eq!(inv.invitation.inviter_user_id, "alice");
        let room = inv.invitation.room_id.clone();
        s.app
            .wait_attr("outgoing-status", "data-state", "ringing")
            .await;
        s.app.screenshot("outgoing").await;

        bob.accept(&room).await.expect("bob accepts");
        s.app.wait_state("in-call").await;
        s.app.wait_testid("participant-bob").await;
        s.app.screenshot("in-call").await;

        bob.hang_up(&room).await.expect("bob hangs up");
        s.app.wait_state("contacts").await;
        s.app
            .wait_attr("call-ended-reason", "data-kind", "remote-hung-up")
            .await;
        let reason = s.app.text_of("call-ended-reason").await;
        assert!(reason.contains("bob hung up"), "reason shown: {reason:?}");

        s.app.click("tab-history").await;
        s.app.wait_testid(&format!("history-{room}")).await;
        s.app.screenshot("history").await;
    });
}

#[test]
fn incoming_call_accepted_in_the_window() {
    harness::run_with("incoming", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        bob.invite("alice").await.expect("bob calls");
        s.app.wait_state("incoming").await;
        assert_eq!(s.app.text_of("incoming-caller").await, "bob");
        s.app.screenshot("incoming").await;

        s.app.click("incoming-accept").await;
        within(bob.expect("onInviteeAccepted")).await;
        s.app.wait_state("in-call").await;

        s.app.click("hangup").await;
        within(bob.expect("onHangUp")).await;
        s.app.wait_state("contacts").await;
    });
}

#[test]
fn incoming_call_rejected_in_the_window() {
    harness::run_with("incoming-reject", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        bob.invite("alice").await.expect("bob calls");
        s.app.wait_state("incoming").await;
        s.app.click("incoming-reject").await;
        within(bob.expect("onInviteeRejected")).await;
        s.app.wait_state("contacts").await;
        s.app.wait_gone("incoming-call").await;
    });
}
