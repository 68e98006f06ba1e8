//! A call between our peer connection and an independent WebRTC stack: aiortc (PyPI),
//! driven by tests/interop/aiortc_peer.py over stdin/stdout, host candidates on this
//! machine's non-loopback interfaces. Pictures must be decoded on both sides.
//!
//! Runs only when `TINCAN_AIORTC_PYTHON` names a Python with aiortc installed
//! (`python3 -m venv v && v/bin/pip install aiortc`, then
//! `TINCAN_AIORTC_PYTHON=v/bin/python cargo test -j2 -p tincan-media --test interop`);
//! without it, it says so and passes. `scripts/test` (so CI) sets it to the venv where
//! `scripts/deps` installs aiortc 1.16.0.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tincan_media::codec::{VideoDecoder, VideoEncoder};
use tincan_media::keyframe::DecoderLoss;
use tincan_media::pattern::{self, Stamp, I420};
use tincan_media::peer::{Inbound, Peer, PeerEvent, PeerSettings, PeerState};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_and_we_decode_each_others_pictures() {
    let Ok(python) = std::env::var("TINCAN_AIORTC_PYTHON") else {
        eprintln!("TINCAN_AIORTC_PYTHON not set: the aiortc interop test did not run");
        return;
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/interop/aiortc_peer.py"
    );
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
    let settings = PeerSettings {
        ice_servers: vec![],
        relay_only: false,
        // Every interface but loopback: aiortc gathers no loopback candidates.
        bind: vec!["0.0.0.0:0".to_owned()],
        ice_check_interval: Duration::from_millis(10),
        turn_tls: None,
    };
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
    let (mut connected, mut counter, mut ours, mut theirs, mut audio) = (false, 0u32, 0, 0, 0);
    let mut answer_sdp = String::new();
    let done = timeout(WAIT, async {
        while ours < 10 || theirs < 10 {
            tokio::select! {
                _ = tick.tick(), if connected => {
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
                    PeerEvent::State(PeerState::Connected) => connected = true,
                    _ => {}
                },
                Some(v) = from_aiortc.recv() => {
                    if let Some(sdp) = v["answer"].as_str() {
                        answer_sdp = sdp.to_owned();
                        peer.apply_answer(answer_sdp.clone()).await.expect("apply answer");
                    } else if let Some(n) = v["frames"].as_u64() {
                        theirs = n;
                    }
                }
                Some(m) = inbound.recv() => match m {
                    Inbound::Video(unit) => match decoder.decode(&unit) {
                        Ok(Some(_)) => ours += 1,
                        Ok(None) => {}
                        Err(_) => loss.raise(),
                    },
                    Inbound::Audio(_) => audio += 1,
                },
            }
        }
    })
    .await;
    println!(
        "aiortc decoded {theirs} of our pictures; we decoded {ours} of its, {audio} audio packets"
    );
    assert!(
        done.is_ok(),
        "within {WAIT:?}: connected {connected}, aiortc decoded {theirs}, we decoded {ours}\n{answer_sdp}"
    );
    drop(to_aiortc); // end of input: the aiortc side stops
    peer.close().await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
}
