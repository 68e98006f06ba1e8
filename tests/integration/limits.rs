//! Stored and relayed fields are bounded, and no frame the server sends is larger than
//! a client accepts: one account cannot break contact lists or calls for everyone.

use serde_json::json;
use tincan_protocol::limits::{MAX_CUSTOM_DATA, MAX_NICKNAME_CHARS, MAX_SERVER_FRAME};
use tincan_server::store::Store as _;
use tincan_tests::*;

/// 1.9 MB, the nickname that broke getContacts for every user.
fn huge() -> String {
    "N".repeat(1_900_000)
}

#[tokio::test]
async fn a_huge_nickname_is_refused_at_registration() {
    let s = TestServer::start().await;
    let e = tincan_sdk::register(&s.url, "mallory", "password1", Some(&huge()))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Some(1001), "{e}");
    assert!(e.to_string().contains("nickname"), "{e}");
    let e = tincan_sdk::register(&s.url, "mallory", "password1", Some("two\nlines"))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Some(1001), "{e}");
    assert!(
        s.store.user(&uid("mallory")).unwrap().is_none(),
        "nothing stored"
    );
    tincan_sdk::register(&s.url, "mallory", "password1", Some("Mallory"))
        .await
        .expect("a normal nickname is fine");
}

/// A store written before the bounds (or edited by hand) may hold a huge name: contact
/// lists and invitations still reach everyone, with the name cut.
#[tokio::test]
async fn a_stored_oversized_nickname_breaks_neither_contacts_nor_calls() {
    let s = TestServer::start().await;
    s.store.add_user(&uid("mallory"), &huge(), None).unwrap();
    let mallory = s.peer("mallory", "m1").await;
    let mut bob = s.peer("bob", "b1").await;

    let contacts = bob
        .client
        .get_contacts(&op("contacts"))
        .await
        .expect("getContacts answers");
    let m = contacts
        .users
        .iter()
        .find(|u| u.user_id == "mallory")
        .expect("mallory listed");
    assert_eq!(m.nickname.chars().count(), MAX_NICKNAME_CHARS);

    mallory.invite("bob").await.expect("invite");
    let info = bob.expect_info("onReceiveNewInvitation").await;
    let name = &info.participant.expect("inviter").user_info.nickname;
    assert_eq!(name.chars().count(), MAX_NICKNAME_CHARS);
    // Bob's connection is still there.
    bob.client.ping(&op("ping")).await.expect("still connected");
}

#[tokio::test]
async fn relayed_fields_over_their_bound_are_refused_with_the_field_named() {
    let s = TestServer::start().await;
    let mut raw = RawClient::connect(&s, Some(("erin", "e1"))).await;
    let r = raw
        .request(
            json!({"requestID": 1, "operationID": "op-big", "method": "signalingInvite",
            "data": {"invitation": {"inviteeUserIDList": ["bob"], "sessionType": 1,
                "customData": "d".repeat(MAX_CUSTOM_DATA + 1)}}}),
        )
        .await;
    assert_eq!(r["errCode"], 1001, "{r}");
    let msg = r["errMsg"].as_str().unwrap();
    assert!(msg.contains("data.invitation.customData"), "{msg}");
    assert_eq!(r["operationID"], "op-big");

    // The connection goes on.
    let r = raw.request(json!({"requestID": 2, "method": "ping"})).await;
    assert_eq!(r["errCode"], 0, "{r}");
}

#[tokio::test]
async fn params_given_as_an_array_are_refused_and_place_no_call() {
    let s = TestServer::start().await;
    let mut bob = s.peer("bob", "b1").await;
    let mut raw = RawClient::connect(&s, Some(("erin", "e1"))).await;
    // Positional fields: serde would have read this as {invitation, offlinePushInfo}.
    let r = raw
        .request(json!({"requestID": 1, "method": "signalingInvite",
            "data": [{"inviteeUserIDList": ["bob"], "sessionType": 1}]}))
        .await;
    assert_eq!(r["errCode"], 1001, "{r}");
    assert!(r["errMsg"].as_str().unwrap().contains("JSON object"), "{r}");
    bob.quiet().await;
}

#[tokio::test]
async fn operation_ids_that_could_forge_a_log_line_are_refused() {
    let s = TestServer::start().await;
    let mut raw = RawClient::connect(&s, Some(("erin", "e1"))).await;
    let r = raw
        .request(
            json!({"requestID": 1, "operationID": "op\n2026-01-01T00:00:00Z INFO forged",
            "method": "ping"}),
        )
        .await;
    assert_eq!(r["errCode"], 1000, "{r}");
    assert!(r["errMsg"].as_str().unwrap().contains("operationID"), "{r}");
    assert_eq!(r["operationID"], "", "the refused id is not echoed");
    assert_eq!(r["requestID"], 1);
    let r = raw
        .request(json!({"requestID": 2, "operationID": "o".repeat(200), "method": "ping"}))
        .await;
    assert_eq!(r["errCode"], 1000, "{r}");
}

/// The largest frame the bounds allow a client to cause is far below what every client
/// must accept (docs/protocol.md).
#[tokio::test]
async fn the_largest_invitation_fits_well_inside_the_server_frame_limit() {
    let s = TestServer::start().await;
    let alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let mut params = invite_params(&["bob"], "", 1);
    params.invitation.custom_data = Some("c".repeat(MAX_CUSTOM_DATA));
    params.offline_push_info = Some(tincan_protocol::OfflinePushInfo {
        title: "t".repeat(tincan_protocol::limits::MAX_PUSH_TITLE),
        desc: "d".repeat(tincan_protocol::limits::MAX_PUSH_DESC),
        ex: "e".repeat(tincan_protocol::limits::MAX_PUSH_EX),
        ios_push_sound: "s".repeat(tincan_protocol::limits::MAX_PUSH_TITLE),
        ios_badge_count: true,
    });
    alice
        .client
        .signaling_invite(&op("big"), params)
        .await
        .expect("within bounds");
    let event = bob.expect("onReceiveNewInvitation").await;
    let size = event.to_string().len();
    assert!(size < MAX_SERVER_FRAME / 8, "{size} bytes");
}
