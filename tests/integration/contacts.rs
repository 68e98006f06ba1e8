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
