//! The bench's server, signed-in clients, one side's media and one whole call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use tincan_media::{
    pattern, CallMedia, MediaConfig, MediaEvent, PeerSettings, PeerState, VideoSettings,
};
use tincan_protocol::{
    ActionParams, DeviceId, Event, Invitation, InviteParams, MediaType, PlatformId, RoomId, UserId,
};
use tincan_sdk::{ConnectOptions, ConnectionState, DeviceInfo, SdkEvent};
use tincan_server::store::{SqliteStore, Store};

use super::{INVITEE, INVITER, SECRET, WAIT};

// ---------------------------------------------------------------------------------------
// Server and clients

pub(super) async fn start_server() -> String {
    let store = Arc::new(SqliteStore::open_in_memory().expect("store"));
    for u in [INVITER, INVITEE] {
        store.add_user(&uid(u), u, None).expect("user");
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut config = tincan_server::ServerConfig {
        secret: Some(SECRET.into()),
        ..Default::default()
    };
    // Back-to-back calls send more than the per-connection default (20/s) of invites,
    // accepts, hang-ups and media signals; this bench measures media, not the limiter.
    config.limits.rate_per_sec = 1e9;
    config.limits.rate_burst = 1e9;
    tokio::spawn(async move {
        tincan_server::run(listener, config, store, std::future::pending())
            .await
            .expect("server runs");
    });
    format!("http://{addr}")
}

pub(super) fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// One signed-in device; `events` is lent to the media pump during a call.
pub(super) struct Client {
    pub(super) user: String,
    pub(super) client: tincan_sdk::Client,
    pub(super) events: Option<mpsc::Receiver<SdkEvent>>,
}

pub(super) async fn sign_in(url: &str, user: &str) -> Client {
    let signer = tincan_server::TokenSigner::new(SECRET.as_bytes());
    let token = signer.login_token(&uid(user), i64::MAX);
    let device = DeviceInfo::new(
        DeviceId::new(format!("{user}-bench")).unwrap(),
        PlatformId::LINUX,
    );
    let mut options = ConnectOptions::default();
    options.reconnect = false;
    let (client, events) = tincan_sdk::connect_with(url, &token, device, options)
        .await
        .unwrap_or_else(|e| panic!("{user} signs in: {e}"));
    Client {
        user: user.to_owned(),
        client,
        events: Some(events),
    }
}

impl Client {
    /// Waits for the invitation to `room` (other events, e.g. the last call's hang-up, are
    /// skipped).
    pub(super) async fn invitation(&mut self, room: &RoomId) -> Result<(), String> {
        let events = self.events.as_mut().expect("events not lent out");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Err(format!("{}: no invitation within {WAIT:?}", self.user)),
                Ok(None) => return Err(format!("{}: signaling closed", self.user)),
                Ok(Some(SdkEvent::Signaling(Event::ReceiveNewInvitation(info))))
                    if info.invitation.room_id == room.as_str() =>
                {
                    return Ok(())
                }
                Ok(Some(_)) => continue,
            }
        }
    }
}

pub(super) fn invite_params(to: &str) -> InviteParams {
    InviteParams {
        invitation: Invitation {
            invitee_user_id_list: vec![uid(to)],
            timeout: 30,
            media_type: MediaType::Video,
            session_type: 1,
            platform_id: 7,
            ..Invitation::default()
        },
        offline_push_info: None,
    }
}

pub(super) fn action(room: &RoomId) -> ActionParams {
    ActionParams {
        op_user_id: String::new(),
        invitation: Invitation {
            room_id: room.to_string(),
            ..Invitation::default()
        },
    }
}

// ---------------------------------------------------------------------------------------
// One side's media during a call

/// What one side's media reported about the other side.
#[derive(Clone)]
pub(super) struct Record {
    pub(super) connected_at: Option<Instant>,
    pub(super) first_frame_at: Option<Instant>,
    /// Path lost (`Disconnected`/`Failed` peer states) during the call.
    pub(super) path_lost: u32,
    pub(super) failed: Option<String>,
    pub(super) ended: bool,
    /// Counting only while set (the steady-state window).
    pub(super) recording: bool,
    pub(super) frames: u64,
    pub(super) unstamped: u64,
    pub(super) audio_packets: u64,
    pub(super) latency_us: Histogram<u64>,
    pub(super) kbps_in: Vec<f64>,
    pub(super) fps_in: Vec<u32>,
    pub(super) rtt_ms: Vec<f64>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            connected_at: None,
            first_frame_at: None,
            path_lost: 0,
            failed: None,
            ended: false,
            recording: false,
            frames: 0,
            unstamped: 0,
            audio_packets: 0,
            latency_us: Histogram::new(3).unwrap(),
            kbps_in: Vec::new(),
            fps_in: Vec::new(),
            rtt_ms: Vec::new(),
        }
    }
}

/// Applies one media event; true when a waiter may care (not for every picture).
pub(super) fn apply(r: &mut Record, event: MediaEvent) -> bool {
    match event {
        MediaEvent::PeerState { state, at, .. } => match state {
            PeerState::Connected if r.connected_at.is_none() => {
                r.connected_at = Some(at);
                true
            }
            PeerState::Disconnected | PeerState::Failed => {
                r.path_lost += 1;
                false
            }
            _ => false,
        },
        MediaEvent::Frame { frame, at, .. } => {
            let first = r.first_frame_at.is_none();
            if first {
                r.first_frame_at = Some(at);
            }
            if r.recording {
                r.frames += 1;
                match frame.stamp {
                    Some(stamp) => {
                        let _ = r.latency_us.record(stamp.age_us(pattern::now_us()) as u64);
                    }
                    None => r.unstamped += 1,
                }
            }
            first
        }
        MediaEvent::Audio { .. } => {
            if r.recording {
                r.audio_packets += 1;
            }
            false
        }
        MediaEvent::Quality { quality, .. } => {
            if r.recording {
                r.kbps_in.push(quality.kbps_in);
                r.fps_in.push(quality.fps_in);
                r.rtt_ms.push(quality.rtt_ms);
            }
            false
        }
        MediaEvent::Failed { reason, .. } => {
            r.failed = Some(reason);
            true
        }
        MediaEvent::Ended => {
            r.ended = true;
            true
        }
        // Remote state, and whatever else a newer media crate reports (local preview).
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// One side's [`CallMedia`] and the task that feeds it the client's events and records
/// what it reports.
pub(super) struct Live {
    pub(super) user: String,
    pub(super) media: Arc<CallMedia>,
    pub(super) record: Arc<watch::Sender<Record>>,
    pub(super) stop: Option<oneshot::Sender<()>>,
    pub(super) pump: JoinHandle<mpsc::Receiver<SdkEvent>>,
}

impl Live {
    pub(super) fn start(
        client: &mut Client,
        room: RoomId,
        token: String,
        config: MediaConfig,
    ) -> Live {
        let mut events = client.events.take().expect("events not lent out");
        let (media, mut media_events) =
            CallMedia::start(client.client.clone(), room, token, config);
        let media = Arc::new(media);
        let record = Arc::new(watch::Sender::new(Record::default()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (pump_media, pump_record) = (media.clone(), record.clone());
        let pump = tokio::spawn(async move {
            let mut media_open = true;
            loop {
                tokio::select! {
                    _ = &mut stopped => return events,
                    event = events.recv() => match event {
                        Some(SdkEvent::Signaling(e)) => pump_media.on_event(&e),
                        Some(SdkEvent::Connection(ConnectionState::Connected)) => {}
                        Some(SdkEvent::Connection(state)) => {
                            pump_record.send_modify(|r| {
                                r.failed = Some(format!("signaling connection: {state:?}"))
                            });
                        }
                        Some(_) => {}
                        None => {
                            pump_record.send_modify(|r| r.failed = Some("signaling closed".into()));
                            let _ = (&mut stopped).await;
                            return events;
                        }
                    },
                    event = media_events.recv(), if media_open => match event {
                        Some(event) => {
                            pump_record.send_if_modified(|r| apply(r, event));
                        }
                        None => media_open = false,
                    },
                }
            }
        });
        Live {
            user: client.user.clone(),
            media,
            record,
            stop: Some(stop),
            pump,
        }
    }

    /// Waits until `done` holds for the record; fails on media failure or timeout.
    pub(super) async fn wait(
        &self,
        what: &str,
        done: impl Fn(&Record) -> bool,
    ) -> Result<(), String> {
        let mut rx = self.record.subscribe();
        let outcome = tokio::time::timeout(
            WAIT,
            rx.wait_for(|r| done(r) || r.failed.is_some() || r.ended),
        )
        .await;
        match outcome {
            Err(_) => Err(format!("{}: no {what} within {WAIT:?}", self.user)),
            Ok(Err(_)) => Err(format!("{}: media pump gone waiting for {what}", self.user)),
            Ok(Ok(r)) if done(&r) => Ok(()),
            Ok(Ok(r)) => Err(format!(
                "{}: media {} while waiting for {what}",
                self.user,
                r.failed.clone().unwrap_or_else(|| "ended".into())
            )),
        }
    }

    pub(super) fn snapshot(&self) -> Record {
        self.record.borrow().clone()
    }

    /// Closes media (waiting for all of it), stops the pump and lends the events back.
    pub(super) async fn close(mut self, client: &mut Client) {
        self.media.close().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        client.events = Some(self.pump.await.expect("media pump"));
    }
}

// ---------------------------------------------------------------------------------------
// One call

pub(super) fn media_config(me: &str, ice_check: Duration, video: VideoSettings) -> MediaConfig {
    media_config_sharing(me, ice_check, video, None)
}

/// [`media_config`], sharing the screen `screen` (an id of `tincan devices`) when given.
pub(super) fn media_config_sharing(
    me: &str,
    ice_check: Duration,
    video: VideoSettings,
    screen: Option<&str>,
) -> MediaConfig {
    let peer = PeerSettings {
        ice_servers: vec![],
        relay_only: false,
        bind: vec!["127.0.0.1:0".to_owned()],
        ice_check_interval: ice_check,
        turn_tls: None,
    };
    let mut config = MediaConfig::new(me, peer);
    config.video = video;
    if let Some(id) = screen {
        config.camera_device = tincan_media::VideoInput::Screen(id.to_owned());
    }
    config
}

pub(super) struct Call {
    pub(super) room: RoomId,
    pub(super) inviter: Live,
    pub(super) invitee: Live,
    /// Just before `signalingAccept`.
    pub(super) t0: Instant,
    pub(super) accept_reply: Duration,
}

/// Setup times of one call, from just before `signalingAccept`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Setup {
    pub(super) accept_reply: Duration,
    pub(super) invitee_connected: Duration,
    pub(super) inviter_connected: Duration,
    /// First picture decoded by the invitee (inviter → invitee).
    pub(super) invitee_first_frame: Duration,
    /// First picture decoded by the inviter (invitee → inviter).
    pub(super) inviter_first_frame: Duration,
}

/// Places a call from `a` to `b` and starts media on both sides; `a` shares the screen
/// `sharing` instead of its camera when given.
pub(super) async fn place_call(
    a: &mut Client,
    b: &mut Client,
    ice_check: Duration,
    video: VideoSettings,
    sharing: Option<&str>,
) -> Result<Call, String> {
    let op = tincan_sdk::new_operation_id();
    let invite = a
        .client
        .signaling_invite(&op, invite_params(&b.user))
        .await
        .map_err(|e| format!("invite: {e}"))?;
    let room = invite.room_id.clone();
    let inviter = Live::start(
        a,
        room.clone(),
        invite.token,
        media_config_sharing(&a.user, ice_check, video, sharing),
    );
    if let Err(e) = b.invitation(&room).await {
        inviter.close(a).await;
        return Err(e);
    }
    let t0 = Instant::now();
    let accept = match b.client.signaling_accept(&op, action(&room)).await {
        Ok(r) => r,
        Err(e) => {
            inviter.close(a).await;
            return Err(format!("accept: {e}"));
        }
    };
    let accept_reply = t0.elapsed();
    let invitee = Live::start(
        b,
        room.clone(),
        accept.token,
        media_config(&b.user, ice_check, video),
    );
    invitee.media.add_peer(&a.user);
    Ok(Call {
        room,
        inviter,
        invitee,
        t0,
        accept_reply,
    })
}

impl Call {
    /// Waits for both sides to connect and to decode a first picture.
    pub(super) async fn established(&self) -> Result<Setup, String> {
        for side in [&self.invitee, &self.inviter] {
            side.wait("media connected", |r| r.connected_at.is_some())
                .await?;
        }
        for side in [&self.invitee, &self.inviter] {
            side.wait("first picture", |r| r.first_frame_at.is_some())
                .await?;
        }
        let (i, o) = (self.invitee.snapshot(), self.inviter.snapshot());
        let since = |at: Option<Instant>| at.unwrap().saturating_duration_since(self.t0);
        Ok(Setup {
            accept_reply: self.accept_reply,
            invitee_connected: since(i.connected_at),
            inviter_connected: since(o.connected_at),
            invitee_first_frame: since(i.first_frame_at),
            inviter_first_frame: since(o.first_frame_at),
        })
    }

    /// The inviter hangs up, then both close their media.
    pub(super) async fn end(self, a: &mut Client, b: &mut Client) -> Result<(), String> {
        let hung_up = a
            .client
            .signaling_hung_up(&tincan_sdk::new_operation_id(), action(&self.room))
            .await;
        self.inviter.close(a).await;
        self.invitee.close(b).await;
        hung_up.map(drop).map_err(|e| format!("hang up: {e}"))
    }
}

/// A whole call up to the first pictures, then hung up and closed.
pub(super) async fn one_call(
    a: &mut Client,
    b: &mut Client,
    ice_check: Duration,
    video: VideoSettings,
) -> Result<Setup, String> {
    let call = place_call(a, b, ice_check, video, None).await?;
    let setup = call.established().await;
    let ended = call.end(a, b).await;
    let setup = setup?;
    ended?;
    Ok(setup)
}
