//! One WebRTC peer connection (webrtc-rs 0.21) to one remote participant: the only
//! module that touches `webrtc` and `rtc` types, so an upgrade of the stack (its API is
//! still settling before 1.0) changes this file and nothing else.
//!
//! What goes in: our own [`PeerSettings`], SDP strings, [`Candidate`]s and encoded
//! frames. What comes out: [`PeerEvent`]s on a channel (candidates, state) and
//! [`Inbound`] media through a callback, called from the reader task of each remote
//! track.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind, TYPE_RTCP_FB_CCM,
    TYPE_RTCP_FB_TRANSPORT_CC,
};
use rtc::sdp::extmap::{SDES_MID_URI, TRANSPORT_CC_URI};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    configure_rtcp_reports, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, RTCStatsReportEntry, Registry, SettingEngineBuilder, StatsSelector,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::bandwidth::{self, BandwidthHandle, Reading};
use crate::census;
use crate::error::MediaError;
use crate::keyframe::DecoderLoss;
use crate::negotiation::Candidate;
use crate::sdp;
use assembly::Assembly;

mod assembly;
mod key_frame_requests;
pub mod resends;
mod retransmission;
mod turn_tcp;

/// How every peer connection of a session is set up.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// STUN/TURN servers, from the call's `iceServers`.
    pub ice_servers: Vec<IceServer>,
    /// Only relayed (TURN) candidates: hides addresses, or proves TURN works.
    pub relay_only: bool,
    /// Local UDP addresses to bind. `0.0.0.0:0` means every interface except loopback;
    /// `127.0.0.1:0` keeps a test on loopback.
    pub bind: Vec<String>,
    /// How often ICE sends connectivity checks while it looks for a path. The stack's
    /// default (200 ms) costs ~400 ms of call setup; see docs/decisions.md.
    pub ice_check_interval: Duration,
    /// Whom `turns:` TURN servers are trusted as (turn_tcp.rs). `CallMedia::start` sets
    /// it from the signaling client when there are `turns:` URLs, so it trusts what the
    /// connection to the server trusts; `None` leaves `turns:` URLs out.
    pub turn_tls: Option<Arc<rustls::ClientConfig>>,
}

impl PeerSettings {
    /// Whether a TURN server is to be reached over TLS (`turns:`), so [`Self::turn_tls`]
    /// is needed.
    pub fn has_turns(&self) -> bool {
        self.ice_servers
            .iter()
            .flat_map(|s| &s.urls)
            .any(|url| turn_tcp::StreamTurn::from_url(url).is_some_and(|t| t.tls))
    }
}

/// One STUN or TURN server.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl std::fmt::Debug for IceServer {
    /// Without the credential: settings get logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// Connection state of one peer, as the call screen shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PeerState {
    Connecting,
    Connected,
    /// The path stopped working; ICE may recover it.
    Disconnected,
    Failed,
    Closed,
}

/// What a peer connection reports to its session.
#[derive(Debug)]
pub enum PeerEvent {
    Candidate(Candidate),
    State(PeerState),
    /// The far end asked for a key frame (RTCP PLI or FIR): it cannot decode what we send.
    KeyFrameRequest,
}

/// Media received from the remote participant.
#[derive(Debug)]
pub enum Inbound {
    /// One complete H.264 access unit (Annex-B).
    Video(Bytes),
    /// One Opus packet.
    Audio(Bytes),
}

/// Receives inbound media; runs on the remote track's reader task.
pub type InboundSink = Arc<dyn Fn(Inbound) + Send + Sync>;

/// Receives the connection's events; runs on the stack's driver task, so it must not block.
pub type EventSink = Arc<dyn Fn(PeerEvent) + Send + Sync>;

/// Network figures for the quality indicator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Round-trip time of the selected ICE pair, ms.
    pub rtt_ms: f64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub packets_lost: i64,
    /// How the selected path reaches the far end: `host` (direct), `srflx` (through a
    /// NAT), `relay` (through TURN); empty before a path is chosen.
    pub path: String,
    /// What the congestion controller allows us to send to this peer, bit/s.
    pub target_bps: f64,
}

const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// What every m-section negotiates besides its codec: the MID header extension (BUNDLE
/// demultiplexes by it; without it a peer that sends no `a=ssrc` gets no media), the
/// transport-wide sequence number with its `transport-cc` feedback (congestion control
/// needs both), and for video `ccm fir`, the key-frame request some stacks send instead
/// of PLI.
fn register_extensions(media: &mut MediaEngine) -> Result<(), MediaError> {
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        for uri in [SDES_MID_URI, TRANSPORT_CC_URI] {
            media
                .register_header_extension(
                    RTCRtpHeaderExtensionCapability {
                        uri: uri.to_owned(),
                    },
                    kind,
                    None,
                )
                .map_err(webrtc_err("register header extension"))?;
        }
        media.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(),
                parameter: String::new(),
            },
            kind,
        );
    }
    media.register_feedback(
        RTCPFeedback {
            typ: TYPE_RTCP_FB_CCM.to_owned(),
            parameter: "fir".to_owned(),
        },
        RtpCodecKind::Video,
    );
    Ok(())
}

/// A random number from the standard library's per-process random hash keys: enough
/// for identifiers that must not collide with the far end's.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn webrtc_err(what: &str) -> impl Fn(webrtc::error::Error) -> MediaError + '_ {
    move |e| MediaError::WebRtc(format!("{what}: {e}"))
}

/// A local track and what was negotiated for it.
struct Outgoing {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    mime: &'static str,
    /// Learnt after negotiation; writing with a wrong one is silently dropped.
    payload_type: Option<u8>,
}

impl Outgoing {
    async fn new(
        pc: &Arc<dyn PeerConnection>,
        kind: RtpCodecKind,
        codec: RTCRtpCodec,
        mime: &'static str,
        ssrc: u32,
    ) -> Result<Outgoing, MediaError> {
        let label = if mime == MIME_TYPE_H264 {
            "video"
        } else {
            "audio"
        };
        let track = MediaStreamTrack::new(
            "tincan".to_owned(),
            // Unique, not just "video": the stack routes the far end's feedback (PLI) to a
            // remote track before a local one of the same id, and the far end may be
            // another Tincan client naming its tracks the same way.
            format!("{label}-{:016x}", random_u64()),
            label.to_owned(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        );
        let track = Arc::new(
            TrackLocalStaticSample::new(Instant::now(), track).map_err(webrtc_err("track"))?,
        );
        let sender = pc
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(webrtc_err("add track"))?;
        Ok(Outgoing {
            track,
            sender,
            ssrc,
            mime,
            payload_type: None,
        })
    }

    async fn write(&mut self, data: Bytes, duration: Duration) -> Result<(), MediaError> {
        let pt = match self.payload_type {
            Some(pt) => pt,
            None => {
                let params = self
                    .sender
                    .get_parameters()
                    .await
                    .map_err(webrtc_err("sender parameters"))?;
                let Some(pt) = params
                    .rtp_parameters
                    .codecs
                    .iter()
                    .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(self.mime))
                    .map(|c| c.payload_type)
                else {
                    return Err(MediaError::WebRtc(format!(
                        "{} was not negotiated",
                        self.mime
                    )));
                };
                self.payload_type = Some(pt);
                pt
            }
        };
        let sample = Sample {
            data,
            duration,
            ..Sample::new(Instant::now())
        };
        self.track
            .write_sample(self.ssrc, pt, &sample, &[])
            .await
            .map_err(webrtc_err("write sample"))
    }
}

/// Forwards the stack's callbacks to the session; spawns one reader task per remote track.
struct Handler {
    events: EventSink,
    inbound: InboundSink,
    readers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// The mid of the local description's first m-section: every candidate belongs to it
    /// (one BUNDLE transport), and the far end looks the candidate's m-section up by it.
    mid: Arc<Mutex<Option<String>>>,
    /// Raised by this participant's decoder; the video track's reader asks for a key frame.
    decoder_loss: Arc<DecoderLoss>,
}

impl Handler {
    /// A candidate line (empty: the end of candidates) for the first m-section.
    fn candidate(&self, candidate: String) -> Candidate {
        Candidate {
            candidate,
            sdp_mid: self.mid.lock().expect("mid lock").clone(),
            sdp_mline_index: Some(0),
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            // The stack names no mid (`""`); ours is the first m-section's.
            Ok(init) if !init.candidate.is_empty() => {
                (self.events)(PeerEvent::Candidate(self.candidate(init.candidate)));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "local ICE candidate not serialisable"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            // End of candidates, as browsers signal it: an empty candidate (RFC 8838 §8.2).
            (self.events)(PeerEvent::Candidate(self.candidate(String::new())));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = match state {
            RTCPeerConnectionState::Connected => PeerState::Connected,
            RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
            RTCPeerConnectionState::Failed => PeerState::Failed,
            RTCPeerConnectionState::Closed => PeerState::Closed,
            _ => PeerState::Connecting,
        };
        (self.events)(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let inbound = self.inbound.clone();
        let loss = self.decoder_loss.clone();
        let reader = tokio::spawn(census::task(read_track(track, inbound, loss)));
        self.readers.lock().expect("readers lock").push(reader);
    }
}

/// Drains one remote track until the connection closes: Opus packets go out as they
/// are; H.264 pictures come from [`assembly::Assembly`], and the key frames it asks for
/// go out as PLI, or FIR where that is all the far end takes.
async fn read_track(track: Arc<dyn TrackRemote>, inbound: InboundSink, loss: Arc<DecoderLoss>) {
    let Some(ssrc) = track.ssrcs().await.first().copied() else {
        return;
    };
    let codec = track.codec(ssrc).await;
    let is_video = codec
        .as_ref()
        .is_some_and(|c| c.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264));
    let fir_only = codec.as_ref().is_some_and(|c| {
        let has = |typ: &str, parameter: &str| {
            c.rtcp_feedback
                .iter()
                .any(|f| f.typ == typ && f.parameter == parameter)
        };
        has(TYPE_RTCP_FB_CCM, "fir") && !has("nack", "pli")
    });
    let mut assembly = Assembly::default();
    let mut fir_sequence = 0u8;
    while let Some(event) = track.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        if packet.payload.is_empty() {
            continue;
        }
        if !is_video {
            inbound(Inbound::Audio(packet.payload.clone()));
            continue;
        }
        for end in assembly.push(packet, Instant::now(), &loss) {
            if let Some(unit) = end.decode {
                inbound(Inbound::Video(unit));
            }
            if !end.ask {
                continue;
            }
            let request: Box<dyn rtc::rtcp::Packet> = if fir_only {
                fir_sequence = fir_sequence.wrapping_add(1);
                Box::new(FullIntraRequest {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                    fir: vec![FirEntry {
                        ssrc,
                        sequence_number: fir_sequence,
                    }],
                })
            } else {
                Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                })
            };
            tracing::debug!(ssrc, fir_only, "asking for a key frame");
            if let Err(e) = track.write_rtcp(vec![request]).await {
                tracing::debug!(error = %e, "key-frame request not sent");
            }
        }
    }
}

/// Reports each key-frame request the far end sends about our video (PLI or FIR; see
/// [`key_frame_requests`]) until the connection closes.
async fn read_key_frame_requests(track: Arc<TrackLocalStaticSample>, events: EventSink) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(packets) = event {
            if packets
                .iter()
                .any(|p| key_frame_requests::is_key_frame_request(p.as_ref()))
            {
                tracing::debug!("the far end asks for a key frame");
                events(PeerEvent::KeyFrameRequest);
            }
        }
    }
}

/// One peer connection with its two outgoing tracks.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    /// Set by [`Peer::close`]; a peer dropped without it (a panic in the session task)
    /// still has its connection closed, or the stack's driver would keep its sockets.
    closed: bool,
    video: Outgoing,
    audio: Outgoing,
    readers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Shared with the handler: the first mid of our local description.
    mid: Arc<Mutex<Option<String>>>,
    /// The congestion controller's latest figures.
    bandwidth: BandwidthHandle,
    /// TURN over TCP for the stack (turn_tcp.rs): stopped with the peer.
    _turn_bridges: turn_tcp::Bridges,
    _live: census::PeerGuard,
}

impl Peer {
    /// Builds the connection and adds the outgoing audio and video tracks.
    pub async fn new(
        settings: &PeerSettings,
        events: EventSink,
        inbound: InboundSink,
        ssrc_seed: u32,
        decoder_loss: Arc<DecoderLoss>,
    ) -> Result<Peer, MediaError> {
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: h264_codec(),
                    payload_type: 102,
                },
                RtpCodecKind::Video,
            )
            .map_err(webrtc_err("register H.264"))?;
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: opus_codec(),
                    payload_type: 111,
                },
                RtpCodecKind::Audio,
            )
            .map_err(webrtc_err("register Opus"))?;
        // After the codecs: feedback is attached only to codecs already registered.
        register_extensions(&mut media)?;
        let registry =
            configure_rtcp_reports(retransmission::configure(Registry::new(), &mut media));
        let (registry, bandwidth) = bandwidth::congestion_control(registry);
        let registry = registry
            .with(
                Slot::from(resends::SLOT),
                resends::ResendGate::new(bandwidth.clone()),
            )
            .with(
                Slot::from(key_frame_requests::SLOT),
                key_frame_requests::KeyFrameRequests::default(),
            );

        let interval = settings.ice_check_interval.max(Duration::from_millis(1));
        // Keep the stack's default budget of checks per pair (7 × 200 ms ≈ 1.4 s) at the
        // faster interval, so a pair is not declared failed before the far end has our
        // candidates.
        let attempts =
            (Duration::from_millis(1400).as_millis() / interval.as_millis()).clamp(7, 2000) as u16;
        let mut setting = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_ice_connection_attempts(Some(interval), Some(attempts))
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
            // An ICE restart gathers afresh (new sockets, new TURN allocations) instead of
            // reusing candidates of the path that just failed.
            .with_discard_local_candidates_during_ice_restart(true)
            .with_srtp_replay_protection_window(retransmission::SRTP_REPLAY_WINDOW);
        if settings.relay_only {
            // Relayed pairs are all there is; waiting for better ones only delays the call.
            setting = setting.with_relay_acceptance_min_wait(Some(Duration::ZERO));
        }

        let (ice_servers, turn_bridges) =
            turn_tcp::bridged(&settings.ice_servers, settings.turn_tls.as_ref()).await;
        let policy = if settings.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        };
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(ice_servers)
            .with_ice_transport_policy(policy)
            .build();

        let readers = Arc::new(Mutex::new(Vec::new()));
        let mid = Arc::new(Mutex::new(None));
        let handler = Handler {
            events: events.clone(),
            inbound,
            readers: readers.clone(),
            mid: mid.clone(),
            decoder_loss,
        };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting.build())
            .with_handler(Arc::new(handler))
            .with_udp_addrs(settings.bind.clone())
            .build()
            .await
            .map_err(webrtc_err("peer connection"))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let live = census::PeerGuard::new();
        // Random SSRCs (RFC 3550 §8.1): the stack looks up the track of inbound feedback
        // by SSRC among the far end's streams first, so one equal to the far end's (two
        // sessions in one process share the seed's inputs) would misroute its PLIs.
        let ssrc_seed = ssrc_seed ^ random_u64() as u32;
        let video = Outgoing::new(
            &pc,
            RtpCodecKind::Video,
            h264_codec(),
            MIME_TYPE_H264,
            ssrc_seed,
        )
        .await;
        let audio = Outgoing::new(
            &pc,
            RtpCodecKind::Audio,
            opus_codec(),
            MIME_TYPE_OPUS,
            ssrc_seed ^ 0x5A5A_5A5A,
        )
        .await;
        let (video, audio) = match (video, audio) {
            (Ok(v), Ok(a)) => (v, a),
            (Err(e), _) | (_, Err(e)) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        // Ends when the connection closes (the stack drops the track's event queue).
        let requests = tokio::spawn(census::task(read_key_frame_requests(
            video.track.clone(),
            events,
        )));
        readers.lock().expect("readers lock").push(requests);
        Ok(Peer {
            pc,
            closed: false,
            video,
            audio,
            readers,
            mid,
            bandwidth,
            _turn_bridges: turn_bridges,
            _live: live,
        })
    }

    /// Creates an offer, sets it locally and returns its SDP.
    pub async fn offer(&self, ice_restart: bool) -> Result<String, MediaError> {
        let options = ice_restart.then_some(RTCOfferOptions { ice_restart: true });
        let offer = self
            .pc
            .create_offer(options)
            .await
            .map_err(webrtc_err("create offer"))?;
        let sent = sdp::announce_trickle(&offer.sdp);
        self.set_local(offer, "set local offer").await?;
        Ok(sent)
    }

    /// Applies the remote offer and returns the answer, already set locally.
    pub async fn answer(&self, offer_sdp: String) -> Result<String, MediaError> {
        let offer =
            RTCSessionDescription::offer(offer_sdp.clone()).map_err(webrtc_err("parse offer"))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(webrtc_err("set remote offer"))?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(webrtc_err("create answer"))?;
        let sent = sdp::fix_answer(&offer_sdp, &answer.sdp);
        self.set_local(answer, "set local answer").await?;
        Ok(sent)
    }

    /// Sets the stack's description locally, first noting its mid for candidates. The
    /// stack refuses any text but its own (it compares them), so the far end gets the
    /// corrected copy (see [`sdp`]): it differs only in declarations the stack does not
    /// act on.
    async fn set_local(
        &self,
        description: RTCSessionDescription,
        what: &'static str,
    ) -> Result<(), MediaError> {
        *self.mid.lock().expect("mid lock") = sdp::first_mid(&description.sdp);
        self.pc
            .set_local_description(description)
            .await
            .map_err(webrtc_err(what))
    }

    /// The verification code of this connection in `room` ([`crate::verify`]), from the
    /// fingerprints of the descriptions in force (ours, and the far end's, which the
    /// DTLS handshake checked against its certificate); `None` before both are set.
    pub async fn verification_code(&self, room: &str) -> Option<String> {
        let ours = self.pc.current_local_description().await?;
        let theirs = self.pc.current_remote_description().await?;
        crate::verify::code(
            room,
            &crate::verify::fingerprints(&ours.sdp),
            &crate::verify::fingerprints(&theirs.sdp),
        )
    }

    pub async fn apply_answer(&self, answer_sdp: String) -> Result<(), MediaError> {
        let answer =
            RTCSessionDescription::answer(answer_sdp).map_err(webrtc_err("parse answer"))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(webrtc_err("set remote answer"))
    }

    pub async fn add_candidate(&self, c: Candidate) -> Result<(), MediaError> {
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            ..Default::default()
        };
        self.pc
            .add_ice_candidate(init)
            .await
            .map_err(webrtc_err("add candidate"))
    }

    /// Sends one H.264 access unit lasting `duration`.
    pub async fn send_video(&mut self, unit: Bytes, duration: Duration) -> Result<(), MediaError> {
        self.video.write(unit, duration).await
    }

    /// Sends one 20 ms Opus packet.
    pub async fn send_audio(&mut self, packet: Bytes) -> Result<(), MediaError> {
        self.audio.write(packet, Duration::from_millis(20)).await
    }

    /// What the congestion controller says about the path to this peer.
    pub fn bandwidth(&self) -> Reading {
        self.bandwidth.reading()
    }

    /// The stack's counters, for the quality indicator.
    pub async fn counters(&self) -> Counters {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let mut c = Counters {
            target_bps: self.bandwidth.reading().target_bps,
            ..Counters::default()
        };
        if let Some(transport) = report.transport() {
            if let Some(pair) = report
                .candidate_pairs()
                .find(|p| p.stats.id == transport.selected_candidate_pair_id)
            {
                c.rtt_ms = pair.current_round_trip_time * 1000.0;
                // The pair names its candidates without the prefix the entries' ids have.
                let (mut local, mut remote) = (None, None);
                for e in report.iter() {
                    match e {
                        RTCStatsReportEntry::LocalCandidate(l)
                            if l.stats.id.ends_with(&pair.local_candidate_id) =>
                        {
                            local = Some(l.candidate_type.to_string());
                        }
                        RTCStatsReportEntry::RemoteCandidate(r)
                            if r.stats.id.ends_with(&pair.remote_candidate_id) =>
                        {
                            remote = Some(r.candidate_type.to_string());
                        }
                        _ => {}
                    }
                }
                if let Some(local) = local {
                    c.path = crate::path::kind(&local, remote.as_deref().unwrap_or("host")).into();
                }
            }
        }
        for inbound in report.inbound_rtp_streams() {
            c.bytes_received += inbound.bytes_received;
            c.packets_received += inbound.received_rtp_stream_stats.packets_received;
            c.packets_lost += inbound.received_rtp_stream_stats.packets_lost;
        }
        for outbound in report.outbound_rtp_streams() {
            c.bytes_sent += outbound.sent_rtp_stream_stats.bytes_sent;
        }
        c
    }

    /// Closes the connection, then waits for its track readers to finish. The stack
    /// drops the sockets with its driver task, which `close` stops (aborting it after
    /// 100 ms at most).
    pub async fn close(mut self) {
        self.closed = true;
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "peer connection close");
        }
        let readers = std::mem::take(&mut *self.readers.lock().expect("readers lock"));
        for reader in readers {
            let _ = reader.await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let pc = self.pc.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}
