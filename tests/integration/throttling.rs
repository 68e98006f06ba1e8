//! Sign-in backoff, registration limits and the bounded password-hashing pool, over
//! real HTTP.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tincan_server::store::Store;
use tincan_server::ServerConfig;
use tincan_tests::*;

/// One raw HTTP/1.1 POST: (status, Retry-After header if any, JSON body).
async fn post(s: &TestServer, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let body = body.to_string();
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        s.addr,
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete reply");
    let status = head[9..12].parse().expect("status");
    let retry = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("retry-after:")
            .map(|v| v.trim().to_owned())
    });
    (
        status,
        retry,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn with_password(s: &TestServer, user: &str, password: &str) {
    let hash = tincan_server::auth::hash_password(password);
    s.store
        .add_user(&uid(user), user, Some(&hash))
        .expect("user");
}

// Paused, frozen clock: the lockout cannot run out while the test works.
#[tokio::test(start_paused = true)]
async fn after_many_wrong_passwords_the_right_one_is_refused_with_a_wait() {
    let _clock = FrozenClock::hold();
    let s = TestServer::start().await;
    with_password(&s, "zed", "the right password");
    let mut codes = std::collections::BTreeMap::<u64, u32>::new();
    for _ in 0..150 {
        let (_, _, v) = post(
            &s,
            "/api/login",
            &json!({"userID": "zed", "password": "wrong guess"}),
        )
        .await;
        *codes.entry(v["errCode"].as_u64().unwrap()).or_default() += 1;
    }
    // 5 free failures; the 6th is checked, fails and locks the account.
    assert_eq!(codes.get(&1002), Some(&6), "{codes:?}");
    assert_eq!(codes.get(&1011), Some(&144), "{codes:?}");
    let (status, retry, v) = post(
        &s,
        "/api/login",
        &json!({"userID": "zed", "password": "the right password"}),
    )
    .await;
    assert_eq!(v["errCode"], 1011, "{v}");
    assert_eq!(status, 429);
    let msg = v["errMsg"].as_str().unwrap();
    assert!(
        msg.contains("too many failed sign-ins") && msg.contains("retry after"),
        "{msg}"
    );
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
}

#[tokio::test(start_paused = true)]
async fn the_right_password_works_again_after_the_lockout() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    with_password(&s, "zed", "the right password");
    for _ in 0..6 {
        post(
            &s,
            "/api/login",
            &json!({"userID": "zed", "password": "wrong guess"}),
        )
        .await;
    }
    let right = json!({"userID": "zed", "password": "the right password"});
    assert_eq!(post(&s, "/api/login", &right).await.2["errCode"], 1011);
    clock.advance(Duration::from_secs(1)).await;
    let (status, _, v) = post(&s, "/api/login", &right).await;
    assert_eq!((status, v["errCode"].as_u64()), (200, Some(0)), "{v}");
}

#[tokio::test(start_paused = true)]
async fn registrations_beyond_the_limit_are_refused_until_the_allowance_refills() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    let reg = |n: usize| json!({"userID": format!("new{n}"), "password": "a long password"});
    for n in 0..10 {
        let (_, _, v) = post(&s, "/api/register", &reg(n)).await;
        assert_eq!(v["errCode"], 0, "{v}");
    }
    let (status, retry, v) = post(&s, "/api/register", &reg(10)).await;
    assert_eq!((status, v["errCode"].as_u64()), (429, Some(1006)), "{v}");
    assert!(
        v["errMsg"].as_str().unwrap().contains("retry after 120 s"),
        "{v}"
    );
    assert_eq!(retry.as_deref(), Some("120"));
    clock.advance(Duration::from_secs(120)).await;
    assert_eq!(post(&s, "/api/register", &reg(10)).await.2["errCode"], 0);
}

#[tokio::test]
async fn a_full_hashing_pool_answers_busy_at_once_and_serves_the_rest() {
    let config = ServerConfig {
        hash_threads: 1,
        hash_queue: 2,
        ..ServerConfig::default()
    };
    let s = TestServer::start_with(config).await;
    with_password(&s, "zed", "the right password");
    let tries = 12;
    let mut all = Vec::new();
    for _ in 0..tries {
        let s = &s;
        all.push(async move {
            post(
                s,
                "/api/login",
                &json!({"userID": "zed", "password": "the right password"}),
            )
            .await
        });
    }
    let results = within_real(
        Duration::from_secs(120),
        "concurrent sign-ins",
        futures_util::future::join_all(all),
    )
    .await;
    let ok = results.iter().filter(|r| r.2["errCode"] == 0).count();
    let busy: Vec<_> = results.iter().filter(|r| r.2["errCode"] == 1012).collect();
    assert_eq!(ok + busy.len(), tries, "{results:?}");
    assert!(ok >= 1 && !busy.is_empty(), "ok {ok}, busy {}", busy.len());
    for (status, retry, v) in busy {
        assert_eq!(*status, 503);
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(v["errMsg"].as_str().unwrap().contains("busy"), "{v}");
    }
}
