//! Media test harness: a signed-in [`Peer`] with a [`CallMedia`] for one room, and a
//! pump task that feeds the client's events to media and records what media receives.
//!
//! Tests wait on the record ([`MediaSide::wait_for`]) through a `watch` channel, so they
//! wake on each change instead of sleeping.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use tincan_media::udp_sockets;
use tincan_media::{
    CallMedia, DecodedFrame, MediaConfig, MediaEvent, PeerSettings, PeerState, VideoSettings,
};
use tincan_protocol::{IceServer as WireIceServer, RoomId};
use tincan_sdk::SdkEvent;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::Peer;

/// What one side received from one other participant.
#[derive(Debug, Clone, Default)]
pub struct FromPeer {
    /// Stamp counters of decoded pictures, in arrival order.
    pub counters: Vec<u32>,
    /// When each decoded picture (stamped or not) arrived: frame rate and freezes.
    pub frames_at: Vec<Instant>,
    /// Decoded pictures without a readable stamp.
    pub unstamped: usize,
    /// Glass-to-glass latency of each stamped picture, µs.
    pub latency_us: Vec<u32>,
    pub audio_packets: usize,
    pub audio_samples: usize,
    pub loudest: f32,
    /// Level of the latest audio packet.
    pub last_level: f32,
    pub states: Vec<PeerState>,
    pub connected_at: Option<Instant>,
    pub first_frame_at: Option<Instant>,
    /// The far end's last `(mic, camera)`.
    pub remote: Option<(bool, bool)>,
    /// Whether the far end last said its picture is a shared screen.
    pub screen: Option<bool>,
    /// The latest decoded picture, when the side asked for RGBA copies
    /// (`frame_rgba_width`): what a window would show.
    pub last_picture: Option<DecodedFrame>,
    pub failed: Option<String>,
    pub quality_reports: usize,
    /// The connection's verification code, as this side derived it (the latest).
    pub code: Option<String>,
    /// The media path's kind from the last quality report (`host`, `relay`, …).
    pub path: String,
    /// What our congestion controller allowed us to send them, per quality report, kbit/s.
    pub target_kbps: Vec<f64>,
    /// What we sent them and what we lost of theirs, per quality report (kbit/s, 0–1).
    pub kbps_out: Vec<f64>,
    pub loss: Vec<f64>,
}

impl FromPeer {
    /// Counters strictly increase (no picture out of order or repeated).
    pub fn in_order(&self) -> bool {
        self.counters.windows(2).all(|w| w[0] < w[1])
    }
}

/// Everything one side received, by participant.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub from: BTreeMap<String, FromPeer>,
    /// Sound devices that could not be opened (`microphone`, `speakers`).
    pub unavailable: Vec<String>,
    /// Each `AudioOnly` announcement, in order: `true` went audio only, `false` back.
    pub audio_only: Vec<bool>,
    pub ended: bool,
}

impl Received {
    pub fn of(&self, user: &str) -> FromPeer {
        self.from.get(user).cloned().unwrap_or_default()
    }
}

/// Peer settings for tests: loopback only, no STUN/TURN unless given.
pub fn loopback(ice: &[WireIceServer], relay_only: bool) -> PeerSettings {
    PeerSettings {
        ice_servers: tincan_media::ice_servers(ice),
        relay_only,
        bind: vec!["127.0.0.1:0".to_owned()],
        ice_check_interval: Duration::from_millis(10),
        turn_tls: None,
    }
}

/// Media on loopback with a small picture (320×240 at 15 fps), for calls with many
/// participants, or many calls, on two cores.
pub fn small(me: &str, ice: &[WireIceServer], relay_only: bool) -> MediaConfig {
    let mut config = MediaConfig::new(me, loopback(ice, relay_only));
    config.video = VideoSettings {
        width: 320,
        height: 240,
        fps: 15,
        bitrate_bps: 300_000,
        grain: 0,
    };
    config
}

/// One participant with media.
pub struct MediaSide {
    pub user: String,
    pub client: tincan_sdk::Client,
    pub media: Arc<CallMedia>,
    received: watch::Receiver<Received>,
    stop: Option<oneshot::Sender<()>>,
    pump: JoinHandle<Option<mpsc::Receiver<SdkEvent>>>,
}

impl MediaSide {
    /// Starts media for `peer` in `room` and pumps its events.
    pub fn start(peer: Peer, room: &str, token: &str, config: MediaConfig) -> MediaSide {
        let Peer {
            client,
            mut events,
            user,
        } = peer;
        let room = RoomId::new(room).expect("room id");
        let (media, mut media_events) =
            CallMedia::start(client.clone(), room, token.to_owned(), config);
        let media = Arc::new(media);
        let (tx, received) = watch::channel(Received::default());
        let pump_media = media.clone();
        let (stop, mut stopped) = oneshot::channel();
        let pump = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return Some(events),
                    Some(event) = events.recv() => {
                        if let SdkEvent::Signaling(e) = event {
                            pump_media.on_event(&e);
                        }
                    }
                    event = media_events.recv() => match event {
                        Some(event) => tx.send_modify(|r| record(r, event)),
                        None => return None,
                    },
                }
            }
        });
        MediaSide {
            user,
            client,
            media,
            received,
            stop: Some(stop),
            pump,
        }
    }

    /// Waits until `done` holds for what was received (the test's own timeout bounds it).
    pub async fn wait_for(&mut self, what: &str, done: impl FnMut(&Received) -> bool) -> Received {
        let outcome = tokio::time::timeout(Duration::from_secs(60), self.received.wait_for(done))
            .await
            .map(|r| r.map(|r| r.clone()));
        match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => panic!("{}: media pump ended while waiting for {what}", self.user),
            Err(_) => panic!(
                "{}: no {what} within 60 s; received\n{}",
                self.user,
                summary(&self.received.borrow())
            ),
        }
    }

    pub fn received(&self) -> Received {
        self.received.borrow().clone()
    }

    /// Closes media, stops the pump and gives the signed-in client back.
    pub async fn close(mut self) -> Peer {
        self.media.close().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let events = self
            .pump
            .await
            .expect("media pump")
            .unwrap_or_else(|| mpsc::channel(1).1);
        Peer {
            client: self.client,
            events,
            user: self.user,
        }
    }
}

fn summary(r: &Received) -> String {
    r.from
        .iter()
        .map(|(u, f)| {
            format!(
                "{u}: {} frames (last {:?}), {} unstamped, {} audio, states {:?}, remote {:?}, failed {:?}, path {:?}, {} quality reports",
                f.counters.len(),
                f.counters.last(),
                f.unstamped,
                f.audio_packets,
                f.states,
                f.remote,
                f.failed,
                f.path,
                f.quality_reports
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn record(r: &mut Received, event: MediaEvent) {
    match event {
        MediaEvent::PeerState { user, state, at } => {
            let from = r.from.entry(user).or_default();
            from.states.push(state);
            if state == PeerState::Connected && from.connected_at.is_none() {
                from.connected_at = Some(at);
            }
        }
        MediaEvent::Frame { user, frame, at } => {
            let from = r.from.entry(user).or_default();
            from.first_frame_at.get_or_insert(at);
            from.frames_at.push(at);
            if !frame.rgba.is_empty() {
                from.last_picture = Some(frame.clone());
            }
            match frame.stamp {
                Some(stamp) => {
                    from.counters.push(stamp.counter);
                    from.latency_us
                        .push(stamp.age_us(tincan_media::pattern::now_us()));
                }
                None => from.unstamped += 1,
            }
        }
        MediaEvent::Audio {
            user,
            samples,
            level,
            ..
        } => {
            let from = r.from.entry(user).or_default();
            from.audio_packets += 1;
            from.audio_samples += samples;
            from.loudest = from.loudest.max(level);
            from.last_level = level;
        }
        MediaEvent::Verification { user, code } => {
            r.from.entry(user).or_default().code = Some(code);
        }
        MediaEvent::RemoteState {
            user,
            mic,
            camera,
            screen,
        } => {
            let from = r.from.entry(user).or_default();
            from.remote = Some((mic, camera));
            from.screen = Some(screen);
        }
        MediaEvent::Quality { user, quality } => {
            let from = r.from.entry(user).or_default();
            from.quality_reports += 1;
            from.path = quality.path;
            from.target_kbps.push(quality.target_kbps);
            from.kbps_out.push(quality.kbps_out);
            from.loss.push(quality.loss);
        }
        MediaEvent::Failed { user, reason } => {
            r.from.entry(user).or_default().failed = Some(reason)
        }
        MediaEvent::Ended => r.ended = true,
        MediaEvent::DeviceUnavailable { device, .. } => r.unavailable.push(device.to_owned()),
        MediaEvent::AudioOnly { on, .. } => r.audio_only.push(on),
        MediaEvent::Preview { .. } => {}
    }
}

/// Media tests count process-wide things (UDP sockets, media threads), so they take
/// turns; other tests use no UDP and start no media.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Live tokio tasks of the current runtime.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (yielding, bounded) until `f` holds; the stack drops an aborted task's sockets
/// on the runtime's next turn, shortly after `close` returns.
pub async fn settle(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        if Instant::now() > deadline {
            panic!(
                "{what} did not settle within 10 s: {} UDP sockets, {} tasks",
                udp_sockets(),
                alive_tasks()
            );
        }
        tokio::task::yield_now().await;
    }
}

/// Alice (`caller`) calls Bob (`callee`) one-to-one and Bob accepts; both run media as
/// `config(me, iceServers of their reply)` says. Returns both sides and the room.
pub async fn one_to_one(
    caller: Peer,
    mut callee: Peer,
    mut config: impl FnMut(&str, &[WireIceServer]) -> MediaConfig,
) -> (MediaSide, MediaSide, String) {
    let invite = caller.invite(&callee.user).await.expect("invite");
    let room = invite.room_id.to_string();
    callee.expect_info("onReceiveNewInvitation").await;
    let inviter = caller.user.clone();
    let a = MediaSide::start(
        caller,
        &room,
        &invite.token,
        config(&inviter, &invite.ice_servers),
    );
    let accept = callee.accept(&room).await.expect("accept");
    let invitee = callee.user.clone();
    let b = MediaSide::start(
        callee,
        &room,
        &accept.token,
        config(&invitee, &accept.ice_servers),
    );
    // The invitee connects to the inviter once its accept succeeded.
    b.media.add_peer(&inviter);
    (a, b, room)
}

/// A test server whose calls get `turn` (time-limited credentials) as their only ICE server.
pub async fn server_with_turn(turn: &crate::turn::Coturn) -> crate::TestServer {
    let mut config = tincan_server::ServerConfig::default();
    config.hub.ice = tincan_server::IceConfig {
        stun_urls: vec![],
        turn_urls: vec![turn.url()],
        turn_secret: Some(turn.secret.clone()),
        turn_ttl_secs: 600,
    };
    crate::TestServer::start_with(config).await
}
