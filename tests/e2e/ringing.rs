//! An invitation ringing in the window that ends without the window answering: the far
//! end cancels, nobody answers in time, or the user answers on another device. Each
//! time the dialog closes and the window says why.

use tincan_tests::{invite_params, op};

use crate::harness::{self, with_password, within};

#[test]
fn call_cancelled_by_the_far_end_while_ringing_closes_the_dialog() {
    harness::run_with("cancelled", with_password("alice"), |s| async move {
        let bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        let room = bob.invite("alice").await.expect("bob calls").room_id;
        s.app.wait_state("incoming").await;
        bob.cancel(room.as_str()).await.expect("bob cancels");
        s.app.wait_state("contacts").await;
        s.app.wait_gone("incoming-call").await;
        s.app
            .wait_text("call-ended-reason", |t| t == "Missed call from bob.")
            .await;
    });
}

#[test]
fn unanswered_call_times_out_on_both_sides() {
    harness::run_with("timeout", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        let mut params = invite_params(&["alice"], "", 1);
        params.invitation.timeout = 2;
        bob.client
            .signaling_invite(&op("invite-2s"), params)
            .await
            .expect("bob calls with a 2 s timeout");
        s.app.wait_state("incoming").await;
        // Nobody touches the window.
        within(bob.expect("onInvitationTimeout")).await;
        s.app.wait_state("contacts").await;
        s.app.wait_gone("incoming-call").await;
        s.app
            .wait_text("call-ended-reason", |t| t == "Missed call.")
            .await;
    });
}

#[test]
fn outgoing_call_nobody_answers_times_out_on_both_sides() {
    harness::run_with("outgoing-timeout", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        s.app.click("tab-settings").await;
        s.app.type_into("settings-ring-timeout", "2").await;
        s.app.click("tab-contacts").await;
        s.app.click("call-video-bob").await;
        s.app.wait_state("outgoing").await;
        let inv = within(bob.expect_info("onReceiveNewInvitation")).await;
        assert_eq!(inv.invitation.timeout, 2);
        // bob lets it ring.
        within(bob.expect("onInvitationTimeout")).await;
        s.app.wait_state("contacts").await;
        s.app
            .wait_attr("call-ended-reason", "data-kind", "timeout")
            .await;
        assert_eq!(
            s.app.text_of("call-ended-reason").await,
            "bob did not answer."
        );
    });
}

#[test]
fn answered_on_another_device_closes_the_dialog() {
    harness::run_with("other-device", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        // The same user as the window, on a second device.
        let mut phone = s.server.peer("alice", "alice-phone").await;
        s.sign_in("alice").await;

        bob.invite("alice").await.expect("bob calls");
        let inv = within(phone.expect_info("onReceiveNewInvitation")).await;
        s.app.wait_state("incoming").await;
        phone
            .accept(&inv.invitation.room_id)
            .await
            .expect("alice answers on the phone");
        within(bob.expect("onInviteeAccepted")).await;
        s.app.wait_state("contacts").await;
        s.app.wait_gone("incoming-call").await;
        s.app
            .wait_text("call-ended-reason", |t| t == "Answered on another device.")
            .await;
        s.app.screenshot("answered-elsewhere").await;
    });
}
