//! getContacts in pages: every user once, no reply frame near the frame limit.

use std::collections::BTreeMap;

use serde_json::json;

use tincan_server::store::Store;
use tincan_tests::*;

/// More users than fit in one 64 KiB frame, each with the longest nickname allowed.
const EXTRA_USERS: usize = 1500;

#[tokio::test]
async fn contacts_come_in_pages_with_every_user_once_and_small_frames() {
    let server = TestServer::start().await;
    let nickname = "n".repeat(64);
    for i in 0..EXTRA_USERS {
        server
            .store
            .add_user(&uid(&format!("user{i:05}")), &nickname, None)
            .unwrap();
    }
    let mut raw = RawClient::connect(&server, Some(("alice", "a1"))).await;
    let mut seen = BTreeMap::<String, usize>::new();
    let mut data = json!({});
    let mut pages = 0;
    let mut groups_seen = 0;
    loop {
        pages += 1;
        assert!(pages <= 1000, "paging ends");
        let reply = raw
            .request(json!({"requestID": pages, "method": "getContacts", "data": data}))
            .await;
        assert_eq!(reply["errCode"], 0, "{reply}");
        let bytes = reply.to_string().len();
        assert!(bytes < 64 * 1024, "page {pages} is {bytes} bytes");
        for u in reply["data"]["users"].as_array().expect("users") {
            *seen
                .entry(u["userID"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        groups_seen += reply["data"]["groups"].as_array().map_or(0, Vec::len);
        match reply["data"]["nextCursor"].as_str() {
            Some(cursor) => {
                assert_eq!(reply["data"]["hasMore"], true, "{}", reply["data"]);
                data = json!({"after": cursor});
            }
            None => {
                assert_eq!(reply["data"]["hasMore"], false);
                break;
            }
        }
    }
    assert!(pages > 1, "more users than one page holds");
    assert_eq!(
        seen.len(),
        EXTRA_USERS + USERS.len() - 1,
        "everyone but alice"
    );
    assert!(seen.values().all(|&n| n == 1), "nobody twice");
    assert!(!seen.contains_key("alice"), "not yourself");
    assert_eq!(groups_seen, 1, "alice's group, once (on the first page)");

    // A page size is honoured and bounded.
    let reply = raw
        .request(json!({"requestID": "small", "method": "getContacts", "data": {"count": 3}}))
        .await;
    assert_eq!(reply["data"]["users"].as_array().unwrap().len(), 3);
    let reply = raw
        .request(json!({"requestID": "zero", "method": "getContacts", "data": {"count": 0}}))
        .await;
    assert_eq!(reply["errCode"], 1001, "{reply}");

    // The SDK's get_contacts fetches every page.
    let alice = server.peer("alice", "a2").await;
    let all = alice.client.get_contacts(&op("contacts")).await.unwrap();
    assert_eq!(all.users.len(), EXTRA_USERS + USERS.len() - 1);
    assert_eq!(all.groups.len(), 1);
    assert!(!all.has_more && all.next_cursor.is_none());
    server.stop().await;
}

/// The `(userID, status)` of the next event, which must be `onPresenceChanged`.
async fn next_presence(peer: &mut Peer) -> (String, String) {
    let v = within_real(
        std::time::Duration::from_secs(10),
        "a presence event",
        peer.expect("onPresenceChanged"),
    )
    .await;
    (
        v["userID"].as_str().unwrap().to_owned(),
        v["status"].as_str().unwrap().to_owned(),
    )
}

fn pair(user: &str, status: &str) -> (String, String) {
    (user.to_owned(), status.to_owned())
}

#[tokio::test]
async fn presence_follows_contacts_signing_in_and_out_and_through_a_call() {
    let server = TestServer::start().await;
    let mut carol = server.peer("carol", "c1").await;
    let now = carol
        .client
        .subscribe_presence(&op("follow"), vec![uid("alice"), uid("bob"), uid("nobody")])
        .await
        .unwrap();
    let now: Vec<_> = now
        .presence
        .iter()
        .map(|p| {
            (
                p.user_id.to_string(),
                serde_json::to_value(p.status).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        now,
        [
            ("alice".to_owned(), json!("offline")),
            ("bob".to_owned(), json!("offline")),
            ("nobody".to_owned(), json!("offline")),
        ]
    );

    let alice = server.peer("alice", "a1").await;
    assert_eq!(next_presence(&mut carol).await, pair("alice", "online"));
    let mut bob = server.peer("bob", "b1").await;
    assert_eq!(next_presence(&mut carol).await, pair("bob", "online"));

    // A call: the caller is in a call from placing it, the callee from answering.
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    assert_eq!(next_presence(&mut carol).await, pair("alice", "inCall"));
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(&room).await.unwrap();
    assert_eq!(next_presence(&mut carol).await, pair("bob", "inCall"));
    alice.hang_up(&room).await.unwrap();
    assert_eq!(next_presence(&mut carol).await, pair("alice", "online"));
    assert_eq!(next_presence(&mut carol).await, pair("bob", "online"));

    // Signing out is seen; a user nobody follows (dave) tells carol nothing.
    alice.client.close().await;
    assert_eq!(next_presence(&mut carol).await, pair("alice", "offline"));
    let dave = server.peer("dave", "d1").await;
    dave.client.close().await;
    carol.quiet().await;

    // The list is per connection: a new list replaces it, an empty one ends it.
    carol
        .client
        .subscribe_presence(&op("refollow"), vec![uid("dave")])
        .await
        .unwrap();
    bob.client.close().await;
    let dave = server.peer("dave", "d1").await;
    assert_eq!(next_presence(&mut carol).await, pair("dave", "online"));
    carol
        .client
        .subscribe_presence(&op("unfollow"), vec![])
        .await
        .unwrap();
    dave.client.close().await;
    carol.quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn a_hostile_presence_subscription_gets_an_error_code_and_changes_nothing() {
    let server = TestServer::start().await;
    // Before sign-in.
    let mut anon = RawClient::connect(&server, None).await;
    let r = anon
        .request(json!({"requestID": 1, "method": "subscribePresence", "data": {"userIDList": ["alice"]}}))
        .await;
    assert_eq!(r["errCode"], 1007, "{r}");

    let mut raw = RawClient::connect(&server, Some(("carol", "c1"))).await;
    // One more user than a connection may follow.
    let many: Vec<String> = (0..=tincan_protocol::MAX_PRESENCE_WATCH)
        .map(|i| format!("u{i}"))
        .collect();
    let r = raw
        .request(
            json!({"requestID": 2, "method": "subscribePresence", "data": {"userIDList": many}}),
        )
        .await;
    assert_eq!(r["errCode"], 1001, "{r}");
    let msg = r["errMsg"].as_str().unwrap();
    assert!(
        msg.contains("data.userIDList") && msg.contains("500"),
        "{msg}"
    );
    // A malformed userID, a list that is not a list, data that is not an object.
    for (id, data) in [
        (3, json!({"userIDList": ["ok", "no spaces allowed"]})),
        (4, json!({"userIDList": "alice"})),
        (5, json!(["alice"])),
    ] {
        let r = raw
            .request(json!({"requestID": id, "method": "subscribePresence", "data": data}))
            .await;
        assert_eq!(r["errCode"], 1001, "{r}");
        assert!(r["errMsg"].as_str().unwrap().starts_with("data"), "{r}");
    }
    // None of that followed anyone: alice signing in sends carol nothing, and the
    // connection still answers.
    let alice = server.peer("alice", "a1").await;
    raw.send_text(json!({"requestID": 6, "method": "ping"}).to_string())
        .await;
    let r = raw.recv().await.expect("open");
    assert_eq!(
        r["type"], "response",
        "nothing before the ping's answer: {r}"
    );
    assert_eq!(r["errCode"], 0, "{r}");
    let r = raw
        .request(json!({"requestID": 7, "method": "subscribePresence", "data": {"userIDList": ["alice"]}}))
        .await;
    assert_eq!(
        r["data"]["presence"],
        json!([{"userID": "alice", "status": "online"}])
    );
    drop(alice);
    server.stop().await;
}
