//! Bandwidth adaptation in a real call through the real server, on loopback: the
//! congestion controller hears the far end's TWCC feedback and says what it allows.
//! Thin links (a rate cap, audio only) need the network lab: see netlab.rs.

use tincan_media::MediaConfig;
use tincan_tests::media::{exclusive, loopback, one_to_one};
use tincan_tests::TestServer;

/// The estimator starts from a guess (the configured video bitrate and audio, ~1.2
/// Mbit/s). On loopback nothing is lost and no queue builds, so with feedback arriving
/// it never goes below that, and it moves as the acknowledged rate does (it may not
/// climb past 1.5 times what arrives: a test pattern's encoder sends far less than the
/// guess, so the target moves by a few per cent, not more). A target that never moves
/// means no feedback reached it (transport-cc not negotiated, or the interceptors not
/// in the chain): congestion control would be on paper only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_congestion_controller_hears_feedback_and_reports_its_target() {
    let _turn = exclusive().await;
    let server = TestServer::start().await;
    let alice = server.peer("alice", "alice-desktop").await;
    let bob = server.peer("bob", "bob-desktop").await;
    let (mut a, mut b, _room) = one_to_one(alice, bob, |me, ice| {
        MediaConfig::new(me, loopback(ice, false))
    })
    .await;

    for (side, other) in [(&mut a, "bob"), (&mut b, "alice")] {
        let got = side
            .wait_for("a target moved by feedback, with pictures", |r| {
                let f = r.of(other);
                let first = f.target_kbps.first().copied().unwrap_or(0.0);
                f.target_kbps.iter().any(|t| *t > first) && f.counters.len() >= 30
            })
            .await;
        let f = got.of(other);
        let first = f.target_kbps[0];
        assert!(
            f.target_kbps.iter().all(|t| *t >= first * 0.95),
            "{}: a clean link is never cut: targets {:?}",
            side.user,
            f.target_kbps
        );
        assert!(
            got.audio_only.is_empty(),
            "{}: a good link never goes audio only: {:?}",
            side.user,
            got.audio_only
        );
        assert!(f.in_order(), "{}: pictures in order", side.user);
    }
    let _ = a.close().await;
    let _ = b.close().await;
}
