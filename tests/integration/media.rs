//! Media through the real server: two (or four) SDK clients with webrtc-rs peer
//! connections on loopback, negotiating through `signalingSendMediaSignal`, carrying the
//! synthetic camera's stamped pictures and the synthetic tone.

use tincan_media::{census, Census, MediaConfig};
use tincan_tests::media::{alive_tasks, loopback, open_sockets, settle, MediaSide};
use tincan_tests::{action, op, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_call_carries_pictures_and_sound_both_ways_then_leaves_nothing_behind() {
    let server = TestServer::start().await;
    let alice = server.peer("alice", "alice-desktop").await;
    let mut bob = server.peer("bob", "bob-desktop").await;
    let sockets_before = open_sockets();
    let tasks_before = alive_tasks();

    let invite = alice.invite("bob").await.expect("invite");
    let room = invite.room_id.to_string();
    bob.expect_info("onReceiveNewInvitation").await;
    let mut a = MediaSide::start(
        alice,
        &room,
        &invite.token,
        MediaConfig::new("alice", loopback(&invite.ice_servers, false)),
    );
    let accept = bob.accept(&room).await.expect("accept");
    let mut b = MediaSide::start(
        bob,
        &room,
        &accept.token,
        MediaConfig::new("bob", loopback(&accept.ice_servers, false)),
    );
    b.media.add_peer("alice");

    for (side, other) in [(&mut a, "bob"), (&mut b, "alice")] {
        let got = side
            .wait_for("30 pictures and 25 audio packets", |r| {
                let f = r.of(other);
                f.counters.len() >= 30 && f.audio_packets >= 25
            })
            .await
            .of(other);
        assert!(
            got.in_order(),
            "{}: pictures from {other} out of order: {:?}",
            side.user,
            got.counters
        );
        assert!(
            got.counters.last().unwrap() > got.counters.first().unwrap(),
            "the embedded counter advances"
        );
        assert_eq!(
            got.audio_samples,
            got.audio_packets * 960,
            "every audio packet decodes to 20 ms"
        );
        assert!(
            got.loudest > 0.05,
            "the tone is audible after decoding: level {}",
            got.loudest
        );
    }

    a.client
        .signaling_hung_up(&op("hangup"), action(&room))
        .await
        .expect("hang up");
    let _alice = a.close().await;
    let _bob = b.close().await;
    assert_eq!(
        census(),
        Census::default(),
        "no peer connection, media task or thread survives"
    );
    settle("sockets", || open_sockets() == sockets_before).await;
    settle("tasks", || alive_tasks() == tasks_before).await;
}
