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
  const cancel = { opUserID: "alice", invitation: { ...options, roomID: invited.data && invited.data.roomID } };
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
        assert_eq!(
            json!(inv.invitation.room_id),
            out["invited"]["data"]["roomID"]
        );
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
        let mut bob = s.server.peer("bob", "bob-sdk").await;
        s.sign_in("alice").await;

        let mut params = invite_params(&["alice"], "", 1);
        let reply = bob
            .client
            .signaling_invite(&op("invite"), params.clone())
            .await
            .expect("bob calls");
        params.invitation.room_id = reply.room_id.to_string();
        params.invitation.inviter_user_id = "bob".into();
        s.app.wait_state("incoming").await;

        let invitation = serde_json::to_value(&params.invitation).unwrap();
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
        let mut carol = s.server.peer("carol", "carol-sdk").await;
        s.sign_in("alice").await;

        // carol rings alice; the seed's reject answers it.
        let mut params = invite_params(&["alice"], "", 1);
        let reply = carol
            .client
            .signaling_invite(&op("invite"), params.clone())
            .await
            .expect("carol calls");
        params.invitation.room_id = reply.room_id.to_string();
        params.invitation.inviter_user_id = "carol".into();
        s.app.wait_state("incoming").await;

        let incoming = serde_json::to_value(&params.invitation).unwrap();
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
