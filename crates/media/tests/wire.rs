//! What two peer connections say to each other, on loopback, without a server: the SDP
//! we offer and answer, the candidates we trickle, and key-frame requests (RTCP PLI)
//! both ways.
//!
//! Every wait is bounded and wakes on an event, never on a sleep.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tincan_media::negotiation::Candidate;
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
    }
}

/// One peer connection with its events and inbound media on channels.
struct Side {
    peer: Peer,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    inbound: mpsc::UnboundedReceiver<Inbound>,
}

async fn side(seed: u32) -> Side {
    let (event_tx, events) = mpsc::unbounded_channel();
    let (inbound_tx, inbound) = mpsc::unbounded_channel();
    let peer = Peer::new(
        &loopback(),
        Arc::new(move |e| {
            let _ = event_tx.send(e);
        }),
        Arc::new(move |m| {
            let _ = inbound_tx.send(m);
        }),
        seed,
    )
    .await
    .expect("peer connection");
    Side {
        peer,
        events,
        inbound,
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
