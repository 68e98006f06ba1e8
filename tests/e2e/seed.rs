//! The seed's OpenIM examples, pasted into the page through WebDriver's execute-script:
//! they reach the backend and their callbacks get `{errCode: 0, …}`.

use serde_json::{json, Value};
use tincan_tests::{invite_params, op};

use crate::harness::{self, with_password, within};

/// `signalingInvite` as in the seed, then `signalingCancel` with the invitation it got.
const INVITE_THEN_CANCEL: &str = r#"
const done = arguments[arguments.length - 1];
const operationID = 'e2e-seed-invite';
const options = {
  inviterUserID: "alice",
  inviteeUserIDList: ["bob"],
  groupID: "",
  roomID: "",
  timeout: 30,
  mediaType: "video",
  sessionType: SessionType.Single,
  platformID: 5,
};
openIM.signalingInvite(operationID, options, (invited) => {
  // As in the seed, `data` is a string: the AV config as JSON.
  const cancel = { opUserID: "alice", invitation: { ...options, roomID: invited.data && JSON.parse(invited.data).roomID } };
  openIM.signalingCancel('e2e-seed-cancel', cancel, (cancelled) => done({ invited, cancelled }));
});
"#;

#[test]
fn seed_examples_reach_the_backend_and_call_back_with_err_code_0() {
    harness::run_with("seed", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        let out: Value = s
            .app
            .client()
            .execute_async(INVITE_THEN_CANCEL, vec![])
            .await
            .expect("the seed's examples run");
        assert_eq!(out["invited"]["errCode"], json!(0), "{out}");
        assert_eq!(out["cancelled"]["errCode"], json!(0), "{out}");
        let inv = within(bob.expect_info("onReceiveNewInvitation")).await;
        assert_eq!(inv.invitation.inviter_user_id, "alice");
        let config: Value = serde_json::from_str(
            out["invited"]["data"]
                .as_str()
                .expect("the seed's data is a string"),
        )
        .expect("the AV config as JSON");
        assert_eq!(json!(inv.invitation.room_id), config["roomID"]);
        assert_eq!(out["cancelled"]["data"], json!("{}"), "{out}");
        within(bob.expect("onInvitationCancelled")).await;
    });
}

/// `signalingAccept`, then `signalingHungUp`, as in the seed, for the invitation passed in.
const ACCEPT_THEN_HANG_UP: &str = r#"
const [invitation] = arguments;
const done = arguments[arguments.length - 1];
const options = { opUserID: "alice", invitation };
openIM.signalingAccept('e2e-seed-accept', options, (accepted) => {
  openIM.signalingHungUp('e2e-seed-hangup', options, (hungUp) => done({ accepted, hungUp }));
});
"#;

#[test]
fn seed_accept_and_hang_up_examples_call_back_with_err_code_0() {
    harness::run_with("seed-accept", with_password("alice"), |s| async move {
        s.sign_in("alice").await;
        let (mut bob, invitation) = rings_alice(&s, "bob").await;

        let out: Value = s
            .app
            .client()
            .execute_async(ACCEPT_THEN_HANG_UP, vec![invitation])
            .await
            .expect("the seed's examples run");
        assert_eq!(out["accepted"]["errCode"], json!(0), "{out}");
        assert_eq!(out["hungUp"]["errCode"], json!(0), "{out}");
        within(bob.expect("onInviteeAccepted")).await;
        within(bob.expect("onHangUp")).await;
    });
}

/// `signalingInviteInGroup` as in the seed, then `signalingReject` for the invitation
/// passed in.
const GROUP_INVITE_AND_REJECT: &str = r#"
const [incoming] = arguments;
const done = arguments[arguments.length - 1];
const options = {
  inviterUserID: "alice",
  inviteeUserIDList: ["bob"],
  groupID: "team",
  roomID: "",
  timeout: 30,
  mediaType: "video",
  sessionType: SessionType.Group,
  platformID: 5,
};
openIM.signalingInviteInGroup('e2e-seed-group', options, (invited) => {
  openIM.signalingReject('e2e-seed-reject', { opUserID: "alice", invitation: incoming }, (rejected) =>
    done({ invited, rejected }));
});
"#;

#[test]
fn seed_group_invite_and_reject_examples_call_back_with_err_code_0() {
    harness::run_with("seed-group", with_password("alice"), |s| async move {
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        // carol rings alice; the seed's reject answers it.
        let (mut carol, incoming) = rings_alice(&s, "carol").await;
        let out: Value = s
            .app
            .client()
            .execute_async(GROUP_INVITE_AND_REJECT, vec![incoming])
            .await
            .expect("the seed's examples run");
        assert_eq!(out["invited"]["errCode"], json!(0), "{out}");
        assert_eq!(out["rejected"]["errCode"], json!(0), "{out}");
        let inv = within(bob.expect_info("onReceiveNewInvitation")).await;
        assert_eq!(inv.invitation.group_id, "team");
        within(carol.expect("onInviteeRejected")).await;
    });
}

/// `signalingAccept` through the facade, as a page embedding Tincan's API calls it.
const FACADE_ACCEPT: &str = r#"
const [invitation] = arguments;
const done = arguments[arguments.length - 1];
openIM.signalingAccept('e2e-facade-accept', { opUserID: "alice", invitation }, done);
"#;

/// `signalingHungUp` through the facade.
const FACADE_HANG_UP: &str = r#"
const [invitation] = arguments;
const done = arguments[arguments.length - 1];
openIM.signalingHungUp('e2e-facade-hangup', { opUserID: "alice", invitation }, done);
"#;

#[test]
fn a_call_answered_and_ended_through_the_facade_moves_the_window_with_it() {
    harness::run_with("facade-accept", with_password("alice"), |s| async move {
        s.sign_in("alice").await;
        let (mut bob, invitation) = rings_alice(&s, "bob").await;

        // Answered by the page's own code, not the dialog's button: the window follows
        // the SDK's call model into the call (it used to keep showing the dialog).
        let accepted: Value = s
            .app
            .client()
            .execute_async(FACADE_ACCEPT, vec![invitation.clone()])
            .await
            .expect("the facade answers");
        assert_eq!(accepted["errCode"], json!(0), "{accepted}");
        s.app.wait_state("in-call").await;
        within(bob.expect("onInviteeAccepted")).await;

        let hung_up: Value = s
            .app
            .client()
            .execute_async(FACADE_HANG_UP, vec![invitation])
            .await
            .expect("the facade hangs up");
        assert_eq!(hung_up["errCode"], json!(0), "{hung_up}");
        s.app
            .wait_attr("call-ended-reason", "data-kind", "hung-up")
            .await;
        s.app.wait_state("contacts").await;
        within(bob.expect("onHangUp")).await;
    });
}

/// `caller` (an SDK client) rings alice, whose window shows the incoming dialog; returns
/// the caller and the invitation as the window got it.
async fn rings_alice(s: &harness::Session, caller: &str) -> (tincan_tests::Peer, Value) {
    let peer = s.server.peer(caller, &format!("{caller}-sdk")).await;
    let mut params = invite_params(&["alice"], "", 1);
    let reply = peer
        .client
        .signaling_invite(&op("invite"), params.clone())
        .await
        .unwrap_or_else(|e| panic!("{caller} calls: {e}"));
    params.invitation.room_id = reply.room_id.to_string();
    params.invitation.inviter_user_id = caller.into();
    s.app.wait_state("incoming").await;
    (peer, serde_json::to_value(&params.invitation).unwrap())
}
