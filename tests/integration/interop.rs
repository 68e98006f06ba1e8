//! The relay case with a third-party peer (issue 10): our peer connection, relay-only
//! through coturn, against aiortc (PyPI, tests/interop/aiortc_peer.py) on its host
//! candidates. Pictures and audio are decoded both ways over a relay pair. Where the
//! relay loses a track's first packets (docs/decisions.md), the key frame among them, our
//! key-frame request is what brings a picture.
//!
//! Runs only when `TINCAN_AIORTC_PYTHON` names a Python with aiortc installed (see
//! crates/media/tests/interop.rs); without it, it says so and passes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tincan_media::codec::{VideoDecoder, VideoEncoder};
use tincan_media::keyframe::DecoderLoss;
use tincan_media::pattern::{self, Stamp, I420};
use tincan_media::peer::{Inbound, Peer, PeerEvent, PeerState};
use tincan_protocol::UserId;
use tincan_server::IceConfig;
use tincan_tests::media::{exclusive, loopback};
use tincan_tests::turn::Coturn;
use tokio::sync::mpsc;
use tokio::time::timeout;
// `bytes::Bytes`, through a dependency this crate already has.
use tokio_tungstenite::tungstenite::Bytes;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_relay_we_decode_aiortcs_video_and_audio_and_it_decodes_ours() {
    let Ok(python) = std::env::var("TINCAN_AIORTC_PYTHON") else {
        eprintln!("TINCAN_AIORTC_PYTHON not set: the aiortc relay test did not run");
        return;
    };
    let _udp = exclusive().await;
    let turn = Coturn::start();
    let ice = IceConfig {
        turn_urls: vec![turn.url()],
        turn_secret: Some(turn.secret.clone()),
        turn_ttl_secs: 600,
        ..IceConfig::default()
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let servers = ice.servers_for(&UserId::new("alice").expect("user id"), now_ms);
    let settings = loopback(&servers, true);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/aiortc_peer.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("aiortc peer");
    let mut to_aiortc = child.stdin.take().expect("stdin");
    let (line_tx, mut from_aiortc) = mpsc::unbounded_channel::<Value>();
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                if line_tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    let mut send = |v: Value| {
        writeln!(to_aiortc, "{v}").expect("write to aiortc");
        to_aiortc.flush().expect("flush");
    };

    let (event_tx, mut events) = mpsc::unbounded_channel();
    let (inbound_tx, mut inbound) = mpsc::unbounded_channel();
    let loss = Arc::new(DecoderLoss::default());
    let mut peer = Peer::new(
        &settings,
        Arc::new(move |e| {
            let _ = event_tx.send(e);
        }),
        Arc::new(move |m| {
            let _ = inbound_tx.send(m);
        }),
        7,
        loss.clone(),
    )
    .await
    .expect("peer connection");
    let offer = peer.offer(false).await.expect("offer");
    send(json!({ "offer": offer }));

    let mut encoder = VideoEncoder::new(30, 1_000_000).expect("encoder");
    let mut frame = I420::new(320, 240);
    let mut decoder = VideoDecoder::new(0).expect("decoder");
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    let (mut connected_at, mut first_at) = (None::<Instant>, None::<Instant>);
    let (mut counter, mut ours, mut theirs, mut audio) = (0u32, 0, 0, 0);
    let done = timeout(WAIT, async {
        while ours < 10 || theirs < 10 || audio < 10 {
            tokio::select! {
                _ = tick.tick(), if connected_at.is_some() => {
                    pattern::draw(&mut frame, Stamp { counter, captured_us: 0 });
                    counter += 1;
                    let unit = Bytes::from(encoder.encode(&frame).expect("encode"));
                    if !unit.is_empty() {
                        peer.send_video(unit, Duration::from_millis(33)).await.expect("send");
                    }
                }
                Some(e) = events.recv() => match e {
                    PeerEvent::Candidate(c) => send(json!({
                        "candidate": c.candidate,
                        "sdpMid": c.sdp_mid,
                        "sdpMLineIndex": c.sdp_mline_index,
                    })),
                    PeerEvent::State(PeerState::Connected) => {
                        connected_at.get_or_insert_with(Instant::now);
                    }
                    _ => {}
                },
                Some(v) = from_aiortc.recv() => {
                    if let Some(sdp) = v["answer"].as_str() {
                        peer.apply_answer(sdp.to_owned()).await.expect("apply answer");
                    } else if let Some(n) = v["frames"].as_u64() {
                        theirs = n;
                    }
                }
                Some(m) = inbound.recv() => match m {
                    Inbound::Video(unit) => match decoder.decode(&unit) {
                        Ok(Some(_)) => {
                            ours += 1;
                            first_at.get_or_insert_with(Instant::now);
                        }
                        Ok(None) => {}
                        Err(_) => loss.raise(),
                    },
                    Inbound::Audio(_) => audio += 1,
                },
            }
        }
    })
    .await;
    let path = peer.counters().await.path;
    if let (Some(up), Some(first)) = (connected_at, first_at) {
        println!(
            "aiortc through the relay: first picture {} ms after connected",
            first.saturating_duration_since(up).as_millis()
        );
    }
    assert!(
        done.is_ok(),
        "within {WAIT:?}: connected {}, aiortc decoded {theirs} of ours, we decoded {ours} \
         pictures and {audio} audio packets of its",
        connected_at.is_some()
    );
    assert_eq!(path, "relay", "the selected pair is a relay pair");
    drop(to_aiortc); // end of input: the aiortc side stops
    peer.close().await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
}
