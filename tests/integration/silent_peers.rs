//! Peers that fall silent without closing anything (a stopped process, a dead network
//! path): a proxy between the server and one client stops forwarding in both directions.
//! The server must notice by itself (WebSocket pings with a pong deadline) and the
//! documented grace must count from the peer's last frame, even while the server keeps
//! sending towards it. Paused, frozen clock: the test steps time one second at a time,
//! as a real clock would run, and the live peers talk at every step.

use std::time::Duration;

use tincan_protocol::{CustomSignalParams, EndReason, PlatformId, RoomId};
use tincan_sdk::ConnectOptions;
use tincan_server::ServerConfig;
use tincan_tests::*;

/// Real time a wait for an event may take before the test fails instead of hanging.
const REAL_LIMIT: Duration = Duration::from_secs(10);

/// A client that neither reconnects nor pings on its own, so only the server's
/// keepalive can find it silent.
fn passive() -> ConnectOptions {
    let mut o = no_reconnect();
    o.keepalive_interval = None;
    o
}

/// Signs `user` in through `proxy`.
async fn behind(s: &TestServer, proxy: &Proxy, user: &str, device: &str) -> Peer {
    s.peer_with(&proxy.url, user, device, PlatformId::LINUX, passive())
        .await
}

/// alice calls bob (behind `proxy`), bob accepts.
async fn call_with_silent_bob(s: &TestServer, proxy: &Proxy) -> (Peer, Peer, RoomId) {
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = behind(s, proxy, "bob", "b1").await;
    let room = alice.invite("bob").await.unwrap().room_id;
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(room.as_str()).await.unwrap();
    alice.expect("onInviteeAccepted").await;
    (alice, bob, room)
}

async fn custom(alice: &Peer, room: &RoomId, size: usize) {
    let p = CustomSignalParams {
        room_id: room.clone(),
        custom_info: "x".repeat(size).into(),
    };
    alice
        .client
        .signaling_send_custom_signal(&op("custom"), p)
        .await
        .expect("the signal is relayed");
}

/// Waits for `name` on `peer`, failing after [`REAL_LIMIT`] of real time.
async fn expect_soon(peer: &mut Peer, name: &str) -> serde_json::Value {
    within_real(REAL_LIMIT, name, peer.expect(name)).await
}

#[tokio::test(start_paused = true)]
async fn silent_participant_is_hung_up_within_the_grace_counted_from_its_last_frame() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    let proxy = Proxy::start(s.addr).await;
    let (mut alice, _bob, room) = call_with_silent_bob(&s, &proxy).await;
    // Now (t0) is bob's last frame: the clock has not moved since his accept.
    proxy.pause();
    for _ in 0..29 {
        clock.advance(Duration::from_secs(1)).await;
        alice.quiet().await;
    }
    clock.advance(Duration::from_secs(1)).await;
    let h = expect_soon(&mut alice, "onHangUp").await;
    assert_eq!(h["opUserID"], "bob", "{h}");
    assert_eq!(s.history("alice")[0].end_reason, EndReason::Disconnected);
    let _ = room;
}

#[tokio::test(start_paused = true)]
async fn silent_inviter_stops_the_ringing_within_the_inviter_grace() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    let proxy = Proxy::start(s.addr).await;
    let alice = behind(&s, &proxy, "alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    alice.invite("bob").await.unwrap();
    bob.expect("onReceiveNewInvitation").await;
    proxy.pause();
    for _ in 0..9 {
        clock.advance(Duration::from_secs(1)).await;
        bob.quiet().await;
    }
    clock.advance(Duration::from_secs(1)).await;
    expect_soon(&mut bob, "onInvitationCancelled").await;
    assert!(bob.client.ringing().is_empty());
    assert_eq!(s.history("bob")[0].end_reason, EndReason::Disconnected);
}

#[tokio::test(start_paused = true)]
async fn silent_participant_is_found_while_signals_keep_flowing_towards_it() {
    let clock = FrozenClock::hold();
    let s = TestServer::start().await;
    let proxy = Proxy::start(s.addr).await;
    let (mut alice, _bob, room) = call_with_silent_bob(&s, &proxy).await;
    proxy.pause();
    for _ in 0..29 {
        clock.advance(Duration::from_secs(1)).await;
        // Frames towards bob every second: they must not count as signs of life.
        custom(&alice, &room, 100).await;
        alice.quiet().await;
    }
    clock.advance(Duration::from_secs(1)).await;
    let h = expect_soon(&mut alice, "onHangUp").await;
    assert_eq!(h["opUserID"], "bob", "{h}");
}

#[tokio::test(start_paused = true)]
async fn silent_participant_is_found_while_its_socket_is_full_and_is_free_afterwards() {
    let clock = FrozenClock::hold();
    let mut config = ServerConfig::default();
    config.limits.rate_per_sec = 100_000.0;
    config.limits.rate_burst = 100_000.0;
    let s = TestServer::start_with(config).await;
    let proxy = Proxy::start(s.addr).await;
    let (mut alice, _bob, room) = call_with_silent_bob(&s, &proxy).await;
    proxy.pause();
    // More than the socket buffers on the way can hold: the server's write to bob
    // blocks, and only a write timeout ends it.
    for _ in 0..5_000 {
        custom(&alice, &room, 2_000).await;
    }
    for _ in 0..29 {
        clock.advance(Duration::from_secs(1)).await;
        alice.quiet().await;
    }
    clock.advance(Duration::from_secs(1)).await;
    let h = expect_soon(&mut alice, "onHangUp").await;
    assert_eq!(h["opUserID"], "bob", "{h}");

    // The hung user is no longer in a call: calling them rings, nobody sees a busy line,
    // and signing in again on a working connection finds no call to resume.
    let mut carol = s.peer("carol", "c1").await;
    let reply = carol.invite("bob").await.unwrap();
    assert!(reply.busy_line_user_id_list.is_empty(), "{reply:?}");
    let mut bob = s.peer("bob", "b2").await;
    assert!(bob.client.session().current_call.is_none());
    carol.quiet().await;
    bob.expect("onReceiveNewInvitation").await;
}

// Real clock, short limits: an idle SDK client with its own keepalive off stays
// connected only if it answers the server's WebSocket pings (tungstenite queues the
// pong when the SDK reads, and the SDK always reads).
#[tokio::test]
async fn an_idle_sdk_client_answers_the_server_pings_and_stays_connected() {
    let mut config = ServerConfig::default();
    config.limits.ping_after = Duration::from_millis(300);
    config.limits.pong_timeout = Duration::from_millis(700);
    let s = TestServer::start_with(config).await;
    let mut alice = s
        .peer_with(&s.url, "alice", "a1", PlatformId::LINUX, passive())
        .await;
    // The idle time under test (several ping rounds), not a synchronisation.
    tokio::time::sleep(Duration::from_secs(4)).await;
    alice.quiet().await;
    assert!(
        alice.events.try_recv().is_err(),
        "no connection-state change: the connection was never lost"
    );
}
