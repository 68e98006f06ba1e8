//! What two peer connections say to each other, on loopback, without a server: the SDP
//! we offer and answer, the candidates we trickle, and key-frame requests (RTCP PLI)
//! both ways.
//!
//! Every wait is bounded and wakes on an event, never on a sleep.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tincan_media::codec::{VideoDecoder, VideoEncoder};
use tincan_media::keyframe::{is_key_frame, DecoderLoss};
use tincan_media::negotiation::Candidate;
use tincan_media::pattern::{self, Stamp, I420};
use tincan_media::peer::{Inbound, Peer, PeerEvent, PeerSettings, PeerState};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> PeerSettings {
    PeerSettings {
        ice_servers: vec![],
        relay_only: false,
        bind: vec!["127.0.0.1:0".to_owned()],
        ice_check_interval: Duration::from_millis(10),
        turn_tls: None,
    }
}

/// One peer connection with its events and inbound media on channels.
struct Side {
    peer: Peer,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    inbound: mpsc::UnboundedReceiver<Inbound>,
    /// What this side's decoder raises when it cannot decode.
    loss: Arc<DecoderLoss>,
}

async fn side(seed: u32) -> Side {
    let (event_tx, events) = mpsc::unbounded_channel();
    let (inbound_tx, inbound) = mpsc::unbounded_channel();
    let loss = Arc::new(DecoderLoss::default());
    let peer = Peer::new(
        &loopback(),
        Arc::new(move |e| {
            let _ = event_tx.send(e);
        }),
        Arc::new(move |m| {
            let _ = inbound_tx.send(m);
        }),
        seed,
        loss.clone(),
    )
    .await
    .expect("peer connection");
    Side {
        peer,
        events,
        inbound,
        loss,
    }
}

/// The attribute lines (`a=…`) of each m-section, in order; the session part is index 0.
fn sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut out = vec![vec![]];
    for line in sdp.lines() {
        if line.starts_with("m=") {
            out.push(vec![]);
        }
        out.last_mut().expect("one section").push(line);
    }
    out
}

fn without_line(sdp: &str, line: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| l.trim_end() != line)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_leaves_out_rtcp_rsize_when_the_offer_lacks_it() {
    let a = side(1).await;
    let b = side(2).await;
    let offer = a.peer.offer(false).await.expect("offer");
    assert!(offer.contains("a=rtcp-rsize"), "we offer reduced-size RTCP");
    let answer = b
        .peer
        .answer(without_line(&offer, "a=rtcp-rsize"))
        .await
        .expect("answer");
    assert!(
        !answer.contains("a=rtcp-rsize"),
        "RFC 5506: no rtcp-rsize in an answer to an offer without it:\n{answer}"
    );

    // And it stays where the offer has it.
    let c = side(3).await;
    let answer = c.peer.answer(offer).await.expect("answer");
    for media in &sections(&answer)[1..] {
        assert!(media.contains(&"a=rtcp-rsize"), "{answer}");
    }
    for s in [a, b, c] {
        s.peer.close().await;
    }
}

const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_and_answers_negotiate_mid_and_transport_wide_congestion_control() {
    let a = side(1).await;
    let b = side(2).await;
    let offer = a.peer.offer(false).await.expect("offer");
    let answer = b.peer.answer(offer.clone()).await.expect("answer");
    for (what, sdp) in [("offer", &offer), ("answer", &answer)] {
        let media = &sections(sdp)[1..];
        assert_eq!(media.len(), 2, "{what}: audio and video\n{sdp}");
        for section in media {
            let has = |needle: &str| section.iter().any(|l| l.contains(needle));
            assert!(has("a=extmap:") && has(MID), "{what}: MID extension\n{sdp}");
            assert!(has(TWCC), "{what}: TWCC extension\n{sdp}");
            assert!(has(" transport-cc"), "{what}: transport-cc feedback\n{sdp}");
        }
        let video = media
            .iter()
            .find(|s| s[0].starts_with("m=video"))
            .expect("video section");
        for fb in [" nack", " nack pli", " ccm fir"] {
            assert!(
                video
                    .iter()
                    .any(|l| l.starts_with("a=rtcp-fb:") && l.ends_with(fb)),
                "{what}: video feedback{fb}\n{sdp}"
            );
        }
    }
    a.peer.close().await;
    b.peer.close().await;
}

/// Takes events until `pick` returns something, within [`WAIT`].
async fn next<T>(
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
    what: &str,
    mut pick: impl FnMut(&PeerEvent) -> Option<T>,
) -> T {
    let found = timeout(WAIT, async {
        while let Some(e) = events.recv().await {
            if let Some(t) = pick(&e) {
                return Some(t);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(t)) => t,
        Ok(None) => panic!("events ended before {what}"),
        Err(_) => panic!("no {what} within {WAIT:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_trickle_with_the_mid_announce_trickle_and_send_end_of_candidates() {
    let mut a = side(1).await;
    let b = side(2).await;
    let offer = a.peer.offer(false).await.expect("offer");
    let session = &sections(&offer)[0];
    assert!(
        session.contains(&"a=ice-options:trickle"),
        "the offer says we trickle:\n{offer}"
    );
    let answer = b.peer.answer(offer.clone()).await.expect("answer");
    assert!(
        sections(&answer)[0].contains(&"a=ice-options:trickle"),
        "the answer says we trickle:\n{answer}"
    );
    let mids: Vec<String> = offer
        .lines()
        .filter_map(|l| l.strip_prefix("a=mid:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(mids, ["0", "1"], "{offer}");

    let mut candidates: Vec<Candidate> = Vec::new();
    let end = next(&mut a.events, "end of candidates", |e| match e {
        PeerEvent::Candidate(c) if c.candidate.is_empty() => Some(c.clone()),
        PeerEvent::Candidate(c) => {
            candidates.push(c.clone());
            None
        }
        _ => None,
    })
    .await;
    assert!(!candidates.is_empty(), "at least one host candidate");
    for c in candidates.iter().chain([&end]) {
        assert_eq!(c.sdp_mid.as_deref(), Some("0"), "{c:?}");
        assert_eq!(c.sdp_mline_index, Some(0), "{c:?}");
    }
    // The far end takes the end-of-candidates marker like any other.
    a.peer.apply_answer(answer).await.expect("apply answer");
    b.peer
        .add_candidate(end)
        .await
        .expect("end of candidates taken");
    a.peer.close().await;
    b.peer.close().await;
}

/// Connects `a` (offering) and `b` over loopback: candidates both ways until both say
/// connected. Events other than candidates and states are left for later.
async fn connect(a: &mut Side, b: &mut Side) {
    let offer = a.peer.offer(false).await.expect("offer");
    let answer = b.peer.answer(offer).await.expect("answer");
    a.peer.apply_answer(answer).await.expect("apply answer");
    let (mut a_up, mut b_up) = (false, false);
    let done = timeout(WAIT, async {
        while !(a_up && b_up) {
            tokio::select! {
                Some(e) = a.events.recv() => match e {
                    PeerEvent::Candidate(c) => b.peer.add_candidate(c).await.expect("candidate"),
                    PeerEvent::State(PeerState::Connected) => a_up = true,
                    _ => {}
                },
                Some(e) = b.events.recv() => match e {
                    PeerEvent::Candidate(c) => a.peer.add_candidate(c).await.expect("candidate"),
                    PeerEvent::State(PeerState::Connected) => b_up = true,
                    _ => {}
                },
            }
        }
    })
    .await;
    assert!(done.is_ok(), "not connected within {WAIT:?}");
}

/// A sender's encoder whose own key frames are 20 s apart (600 pictures at the 30 a
/// second sent here), so only a requested one can come sooner.
fn sparse_key_frames() -> (VideoEncoder, I420) {
    let encoder = VideoEncoder::new(300, 10_000_000).expect("encoder");
    (encoder, I420::new(320, 240))
}

fn encode(encoder: &mut VideoEncoder, frame: &mut I420, counter: u32) -> Bytes {
    pattern::draw(
        frame,
        Stamp {
            counter,
            captured_us: counter.wrapping_mul(33_333),
        },
    );
    Bytes::from(encoder.encode(frame).expect("encode"))
}

/// One direction of video in a test call: a sender that loses its first key frame,
/// makes a key frame when asked, and the far end's decoder.
struct Direction {
    encoder: VideoEncoder,
    frame: I420,
    counter: u32,
    dropped_key: bool,
    force: bool,
    requests: usize,
    decoder: VideoDecoder,
    shown: Option<u32>,
}

impl Direction {
    fn new() -> Direction {
        let (encoder, frame) = sparse_key_frames();
        Direction {
            encoder,
            frame,
            counter: 0,
            dropped_key: false,
            force: false,
            requests: 0,
            decoder: VideoDecoder::new(0).expect("decoder"),
            shown: None,
        }
    }

    /// The next picture to send, if any.
    fn next(&mut self) -> Option<Bytes> {
        if std::mem::take(&mut self.force) {
            self.encoder.force_key_frame();
        }
        let unit = encode(&mut self.encoder, &mut self.frame, self.counter);
        self.counter += 1;
        if unit.is_empty() {
            return None;
        }
        if !self.dropped_key && is_key_frame(&unit) {
            // Lost, as the relay's first packets are (see docs/decisions.md).
            self.dropped_key = true;
            return None;
        }
        Some(unit)
    }

    fn on_event(&mut self, event: PeerEvent) {
        if matches!(event, PeerEvent::KeyFrameRequest) {
            self.requests += 1;
            self.force = true;
        }
    }

    /// What the receiving side got.
    fn on_inbound(&mut self, inbound: Inbound, loss: &DecoderLoss) {
        if let Inbound::Video(unit) = inbound {
            match self.decoder.decode(&unit) {
                Ok(Some(picture)) => {
                    self.shown = self.shown.or(picture.stamp.map(|s| s.counter));
                }
                Ok(None) => {}
                Err(_) => loss.raise(),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_that_missed_the_key_frame_ask_for_one_and_show_a_picture() {
    let mut a = side(1).await;
    let mut b = side(2).await;
    connect(&mut a, &mut b).await;
    // Both send, as in a call: each side has a remote video track and a local one.
    let (mut ab, mut ba) = (Direction::new(), Direction::new());
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    let both = timeout(WAIT, async {
        while ab.shown.is_none() || ba.shown.is_none() {
            tokio::select! {
                _ = tick.tick() => {
                    if let Some(unit) = ab.next() {
                        a.peer.send_video(unit, Duration::from_millis(33)).await.expect("send");
                    }
                    if let Some(unit) = ba.next() {
                        b.peer.send_video(unit, Duration::from_millis(33)).await.expect("send");
                    }
                }
                Some(e) = a.events.recv() => ab.on_event(e),
                Some(e) = b.events.recv() => ba.on_event(e),
                Some(m) = b.inbound.recv() => ab.on_inbound(m, &b.loss),
                Some(m) = a.inbound.recv() => ba.on_inbound(m, &a.loss),
            }
        }
    })
    .await;
    for (name, d) in [("a to b", &ab), ("b to a", &ba)] {
        assert!(
            d.dropped_key,
            "{name}: the encoder's first picture is a key frame"
        );
        assert!(
            both.is_ok() || d.shown.is_some(),
            "{name}: no picture within {WAIT:?}; {} key-frame requests reached the sender",
            d.requests
        );
        assert!(d.requests >= 1, "{name}: the sender saw the request");
        assert!(d.shown > Some(0), "{name}: a later picture: {:?}", d.shown);
    }
    a.peer.close().await;
    b.peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_a_sender_that_never_answers_back_off() {
    let mut a = side(1).await;
    let mut b = side(2).await;
    connect(&mut a, &mut b).await;
    let (mut encoder, mut frame) = sparse_key_frames();
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    let mut requests = 0usize;
    // 3 s of pictures, none a key frame: the receiver can decode nothing and keeps
    // asking, at 0, 0.5 and 1.5 s (then 3.5 s: past the end).
    let mut sent = 0u32;
    while sent < 90 {
        tokio::select! {
            _ = tick.tick() => {
                let unit = encode(&mut encoder, &mut frame, sent);
                sent += 1;
                if unit.is_empty() || is_key_frame(&unit) {
                    continue;
                }
                a.peer.send_video(unit, Duration::from_millis(33)).await.expect("send");
            }
            Some(e) = a.events.recv() => {
                if matches!(e, PeerEvent::KeyFrameRequest) {
                    requests += 1;
                }
            }
            Some(m) = b.inbound.recv() => {
                assert!(!matches!(m, Inbound::Video(_)), "no picture is decodable");
            }
        }
    }
    println!("key-frame requests in 3 s without an answer: {requests}");
    assert!(
        (1..=4).contains(&requests),
        "{requests} requests in 3 s: asked, but rate-limited"
    );
    a.peer.close().await;
    b.peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_of_a_connection_derive_the_same_verification_code() {
    let (mut a, mut b) = (side(11).await, side(12).await);
    assert_eq!(
        a.peer.verification_code("room").await,
        None,
        "nothing negotiated yet"
    );
    connect(&mut a, &mut b).await;
    let ours = a
        .peer
        .verification_code("room")
        .await
        .expect("a code once connected");
    let theirs = b
        .peer
        .verification_code("room")
        .await
        .expect("a code once connected");
    assert_eq!(ours, theirs);
    // Another room, another code; another connection (new certificates), another code.
    assert_ne!(a.peer.verification_code("other room").await.unwrap(), ours);
    let (mut c, mut d) = (side(13).await, side(14).await);
    connect(&mut c, &mut d).await;
    assert_ne!(c.peer.verification_code("room").await.unwrap(), ours);
    for s in [a, b, c, d] {
        s.peer.close().await;
    }
}

/// A relay between the peers (a signaling server, say) swaps the offer's DTLS fingerprint
/// for one of its own, as a man in the middle must. Two things then hold, and this says
/// which: the codes the two ends show differ (each derives it from the fingerprints it
/// negotiated), and the connection itself never comes up, because the answerer's DTLS
/// checks the offerer's real certificate against the substituted fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_rewrites_a_fingerprint_shows_different_codes_and_fails_dtls() {
    let (mut a, mut b, mallory) = (side(21).await, side(22).await, side(23).await);
    let fingerprint = |sdp: &str| {
        sdp.lines()
            .find(|l| l.starts_with("a=fingerprint:"))
            .expect("a fingerprint")
            .to_owned()
    };
    let offer = a.peer.offer(false).await.expect("offer");
    let theirs = mallory.peer.offer(false).await.expect("mallory's offer");
    let rewritten = offer.replace(&fingerprint(&offer), &fingerprint(&theirs));
    assert_ne!(rewritten, offer, "the relay changed the offer");
    let answer = b.peer.answer(rewritten).await.expect("answer");
    a.peer.apply_answer(answer).await.expect("apply answer");

    let (a_code, b_code) = (
        a.peer.verification_code("room").await.expect("a's code"),
        b.peer.verification_code("room").await.expect("b's code"),
    );
    assert_ne!(a_code, b_code, "the two ends are shown different codes");

    // Trickle as a working call would, and watch both ends: neither connects.
    let outcome = timeout(WAIT, async {
        loop {
            tokio::select! {
                Some(e) = a.events.recv() => match e {
                    PeerEvent::Candidate(c) => { let _ = b.peer.add_candidate(c).await; }
                    PeerEvent::State(s @ (PeerState::Connected | PeerState::Failed)) => return ("a", s),
                    _ => {}
                },
                Some(e) = b.events.recv() => match e {
                    PeerEvent::Candidate(c) => { let _ = a.peer.add_candidate(c).await; }
                    PeerEvent::State(s @ (PeerState::Connected | PeerState::Failed)) => return ("b", s),
                    _ => {}
                },
            }
        }
    })
    .await;
    match outcome {
        Ok((who, PeerState::Connected)) => {
            panic!("{who} connected through a rewritten fingerprint")
        }
        Ok((who, state)) => println!("{who}: {state:?}; codes {a_code} / {b_code}"),
        Err(_) => println!("no connection within {WAIT:?}; codes {a_code} / {b_code}"),
    }
    for s in [a, b, mallory] {
        s.peer.close().await;
    }
}
