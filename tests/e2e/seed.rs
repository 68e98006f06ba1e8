//! The seed's OpenIM examples, pasted into the page through WebDriver's execute-script:
//! they reach the backend and their callbacks get `{errCode: 0, …}`.

use serde_json::{json, Value};

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
